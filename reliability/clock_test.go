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
func TestAWorkerWithASkewedClockNeitherReapsNorIsReaped(t *testing.T) {
	t.Parallel()
	const (
		budget = 16
		lease  = 3 * time.Second
		skew   = 10 * time.Minute
	)
	// The test looks for a trial of the worker ahead after two lease
	// periods: trials of a few seconds (40 epochs) keep the study going
	// until then on any machine, where trials of 12 epochs, well under a
	// second on a fast one, could finish the study first.
	e := newEnvOf(t, pgtest.Schema(t), strings.Replace(fmt.Sprintf(spec, budget), "epochs: 12", "epochs: 40", 1))
	ahead := e.startSkewed("worker ahead", skew)
	behind := e.startSkewed("worker behind", -skew)
	ofAhead := fmt.Sprintf("-%d-", ahead.cmd.Process.Pid)
	ofBehind := fmt.Sprintf("-%d-", behind.cmd.Process.Pid)
	until(t, 60*time.Second, "both workers run a trial", func() bool {
		a, b := false, false
		for _, tr := range e.trials() {
			a = a || tr.State == storage.Running && strings.Contains(tr.Worker, ofAhead)
			b = b || tr.State == storage.Running && strings.Contains(tr.Worker, ofBehind)
		}
		return a && b
	})
	// Two lease periods: six reaper ticks of each worker.
	time.Sleep(2 * lease)
	var victim *storage.Trial
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
	until(t, 30*time.Second, "the worker ahead runs a trial", func() bool {
		for _, tr := range e.trials() {
			if tr.State == storage.Running && strings.Contains(tr.Worker, ofAhead) && len(tr.Params) > 0 {
				victim = tr
			}
		}
		return victim != nil
	})
	if err := ahead.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	until(t, 30*time.Second, "the killed worker's trial is reaped", func() bool { return e.retried(victim.ID) })
	reaped := time.Since(killed)
	t.Logf("the worker ten minutes behind reaped the trial of the killed worker ten minutes ahead %v after the kill (lease 3s)",
		reaped.Round(10*time.Millisecond))
	if reaped > lease+2*time.Second {
		t.Errorf("reaped after %v, want within the lease (3s) plus one reaper interval (1s) and a poll", reaped)
	}
	if err := behind.wait(t, 3*time.Minute); err != nil {
		t.Fatalf("worker behind: %v", err)
	}
	e.checkStudy(budget)
	for _, tr := range e.trials() {
		if tr.State != storage.Complete && tr.ID != victim.ID {
			t.Errorf("trial %d is %s (%s)", tr.Number, tr.State, tr.SystemAttrs[storage.FailReasonAttr])
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
