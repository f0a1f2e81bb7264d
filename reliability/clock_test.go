package reliability

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/floodtune/floodtune/internal/pgtest"
	"github.com/floodtune/floodtune/storage"
)

// skewedBinary is floodtune built so that its wall clock is off by the
// seconds in $FLOODTUNE_TEST_CLOCK_SKEW. Go reads the clock through the
// vDSO, not libc, so preloaded fake-time libraries do not reach it: the
// build replaces time.Now instead (go build -overlay), which moves every
// wall-clock reading of the process, in floodtune and in its libraries,
// while timers and durations keep the monotonic clock, as on a host whose
// clock is set wrong.
var skewedBinary string

const skewEnv = "FLOODTUNE_TEST_CLOCK_SKEW"

// buildSkewed builds skewedBinary into dir.
func buildSkewed(dir string) error {
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		return fmt.Errorf("go env GOROOT: %w", err)
	}
	timeDir := filepath.Join(strings.TrimSpace(string(out)), "src", "time")
	src, err := os.ReadFile(filepath.Join(timeDir, "time.go"))
	if err != nil {
		return err
	}
	const now = "func Now() Time {\n\tsec, nsec, mono := runtimeNow()\n"
	if !strings.Contains(string(src), now) {
		return fmt.Errorf("time.Now of this Go release does not start with %q: the clock-skew build needs updating", now)
	}
	patched := strings.Replace(string(src), now, now+"\tsec += clockSkew\n", 1)
	// The time package may import neither strconv nor os.
	const skew = `package time

import "syscall"

var clockSkew = func() int64 {
	s, _ := syscall.Getenv("` + skewEnv + `")
	var n int64
	for i, c := range s {
		if i == 0 && c == '-' {
			continue
		}
		n = n*10 + int64(c-'0')
	}
	if len(s) > 0 && s[0] == '-' {
		return -n
	}
	return n
}()
`
	overlay := map[string]map[string]string{"Replace": {
		filepath.Join(timeDir, "time.go"):          filepath.Join(dir, "time.go"),
		filepath.Join(timeDir, "zz_clock_skew.go"): filepath.Join(dir, "clock_skew.go"),
	}}
	js, _ := json.Marshal(overlay)
	for name, data := range map[string][]byte{"time.go": []byte(patched), "clock_skew.go": []byte(skew), "overlay.json": js} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	skewedBinary = filepath.Join(dir, "floodtune-skewed")
	build := exec.Command("go", "build", "-overlay", filepath.Join(dir, "overlay.json"), "-o", skewedBinary, "../cmd/floodtune")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build floodtune with a skewed clock: %w", err)
	}
	return nil
}

// startSkewed starts a worker whose clock is off by skew.
func (e *env) startSkewed(name string, skew time.Duration) *worker {
	e.t.Helper()
	cmd := exec.Command(skewedBinary)
	cmd.Env = append(os.Environ(), skewEnv+"="+strconv.FormatInt(int64(skew/time.Second), 10))
	return e.launch(cmd, e.url, "s", name)
}

// TestAWorkerWithASkewedClockNeitherReapsNorIsReaped runs two workers whose
// clocks are ten minutes ahead and ten minutes behind. Leases are taken
// and judged by the database's clock, so for several lease periods neither
// reaps the other's live trials; when the one ahead is killed, the one
// behind still reaps its trial within the lease plus a reaper interval.
//
// Nothing here waits on the speed of training. The budget is far more than
// any machine trains during the test (on a fast one 40 epochs took well
// under a second, and a study of 16 trials ended within the two lease
// periods, leaving no trial of the worker ahead to see running), so both
// workers run until the test stops them: the one ahead is killed, the
// one behind is sent SIGTERM, which gives its running trial back. The
// trial to kill is taken while its worker is frozen, so it cannot end
// between being seen and the kill; and the reaping is timed by the
// database's own stamps, the trial's last heartbeat and its failure.
func TestAWorkerWithASkewedClockNeitherReapsNorIsReaped(t *testing.T) {
	t.Parallel()
	const (
		budget = 10_000 // never spent: the workers are stopped
		lease  = 3 * time.Second
		skew   = 10 * time.Minute
	)
	e := newEnvAt(t, pgtest.Schema(t), budget)
	ahead := e.startSkewed("worker ahead", skew)
	behind := e.startSkewed("worker behind", -skew)
	ofBehind := fmt.Sprintf("-%d-", behind.cmd.Process.Pid)
	// Each worker has leased a trial: both have started (and a
	// trial's worker, once set, stays).
	until(t, 60*time.Second, "both workers lease a trial", func() bool {
		a, b := false, false
		for _, tr := range e.trials() {
			a = a || ahead.owns(tr)
			b = b || strings.Contains(tr.Worker, ofBehind)
		}
		return a && b
	})
	// Two lease periods: six reaper ticks of each worker, while both
	// train (the budget cannot run out).
	time.Sleep(2 * lease)
	for _, w := range []*worker{ahead, behind} {
		if w.exited() {
			t.Fatalf("%s exited while the other was alive: the study must outlast the test", w.name)
		}
	}
	for _, tr := range e.trials() {
		switch {
		case tr.State == storage.Fail:
			t.Errorf("trial %d of %s was failed while both workers were alive: %s", tr.Number, tr.Worker, tr.SystemAttrs[storage.FailReasonAttr])
		case tr.State == storage.Running:
			// The lease is stamped by the database, not the worker.
			if d := time.Since(tr.HeartbeatAt); d < -time.Second || d > 2*time.Second {
				t.Errorf("trial %d's last heartbeat is %v old: stamped by a skewed clock", tr.Number, d)
			}
		}
	}
	// Kill the worker ahead in the middle of a trial. Frozen, it cannot
	// finish the trial seen running; only a result it had sent just
	// before the freeze could still land, and then the trial is
	// complete, not reaped: a new worker ahead is started and killed in
	// its turn.
	var victim *storage.Trial
	var killed time.Time
	for attempt := 1; victim == nil; attempt++ {
		if attempt > 1 {
			ahead = e.startSkewed(fmt.Sprintf("worker ahead (%d)", attempt), skew)
		}
		tr := e.freezeInTrial(ahead, 60*time.Second)
		if err := ahead.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		killed = time.Now()
		var after *storage.Trial
		until(t, 30*time.Second, fmt.Sprintf("trial %d of the killed worker ends", tr.Number), func() bool {
			after = e.trial(tr.ID)
			return after.State.Final()
		})
		switch {
		case after.State == storage.Fail && after.RetriedBy != 0:
			victim = after
		case after.State == storage.Complete && attempt < 3:
			t.Logf("trial %d completed: its result was on its way when its worker was frozen; again with another worker ahead", tr.Number)
		default:
			t.Fatalf("trial %d of the killed worker is %s (%q, retried by %d), want failed by the reaper and retried",
				tr.Number, after.State, after.SystemAttrs[storage.FailReasonAttr], after.RetriedBy)
		}
	}
	t.Logf("the worker ten minutes behind reaped the trial of the killed worker ten minutes ahead: seen %v after the kill (lease 3s)",
		time.Since(killed).Round(10*time.Millisecond))
	if reason := victim.SystemAttrs[storage.FailReasonAttr]; !strings.HasPrefix(reason, "lease expired") {
		t.Errorf("trial %d failed with %q, want its lease expired", victim.Number, reason)
	}
	// By the database's clock, from the trial's last heartbeat to its
	// failure: a skewed judge would reap at once (ahead) or never
	// (behind).
	if d := victim.CompletedAt.Sub(victim.HeartbeatAt); d < lease || d > lease+2*time.Second {
		t.Errorf("trial %d was reaped %v after its last heartbeat, want within the lease (3s) plus one reaper interval (1s) and a second", victim.Number, d)
	}
	// The worker behind runs the retry, then is stopped.
	var retry *storage.Trial
	until(t, 2*time.Minute, "the retry of the killed worker's trial completes", func() bool {
		retry = e.trial(victim.RetriedBy)
		return retry.State.Final()
	})
	if retry.State != storage.Complete || retry.Params["flood_level"].Value != victim.Params["flood_level"].Value {
		t.Errorf("the retry of trial %d is %s with flood level %v, want complete with %v", victim.Number, retry.State,
			retry.Params["flood_level"].Value, victim.Params["flood_level"].Value)
	}
	if err := behind.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := behind.wait(t, time.Minute); err != nil {
		t.Fatalf("worker behind after SIGTERM: %v (want exit status 0)", err)
	}
	// Every number once; the victim and what the worker behind gave back
	// at SIGTERM are failed and retried; nothing else failed.
	for i, tr := range e.trials() {
		if tr.Number != i {
			t.Errorf("trial at position %d has number %d: a gap or a duplicate", i, tr.Number)
		}
		reason := tr.SystemAttrs[storage.FailReasonAttr]
		switch {
		case tr.State == storage.Complete, tr.State == storage.Waiting, tr.ID == victim.ID:
		case tr.State == storage.Fail && tr.RetriedBy != 0 && strings.Contains(tr.Worker, ofBehind) && !strings.HasPrefix(reason, "lease expired"):
			// Given back at SIGTERM.
		default:
			t.Errorf("trial %d of %s is %s (%q)", tr.Number, tr.Worker, tr.State, reason)
		}
	}
	// The worker's own log stamps the reaping with its clock: ten minutes
	// behind, which shows that the skew was in force.
	m := regexp.MustCompile(`time=(\S+) level=WARN msg="reaped a trial`).FindStringSubmatch(behind.out.String())
	if m == nil {
		t.Fatalf("the worker behind logged no reaping:\n%s", behind.out.String())
	}
	stamp, err := time.Parse(time.RFC3339Nano, m[1])
	if err != nil {
		t.Fatal(err)
	}
	if off := stamp.Sub(killed); off > -skew+time.Minute || off < -skew-time.Minute {
		t.Errorf("the worker behind logged the reaping at %v, %v from the real time: its clock was not skewed by -%v", stamp, off, skew)
	}
}
