package reliability

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/floodtune/floodtune/internal/pgtest"
	"github.com/floodtune/floodtune/storage"
	"github.com/jackc/pgx/v5"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "floodtune-reliability-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "floodtune")
	build := exec.Command("go", "build", "-o", binary, "../cmd/floodtune")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build floodtune:", err)
		os.Exit(1)
	}
	if err := buildSkewed(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := pgtest.Main(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// spec is a study whose trials take a second or two: enough to kill,
// freeze or interrupt a worker in the middle of one.
const spec = `
dataset: {name: gauss2d, train_size: 3000, val_size: 500, test_size: 2000, label_noise: 0.1}
model: {hidden: [192, 192]}
training: {optimizer: adam, lr: 0.005, batch_size: 50, epochs: 12}
search: {sampler: tpe, trials: %d, seed: 11}
space:
  flood_level: {type: float, low: 0.0, high: 0.6}
`

// env is one scenario's database, study and processes.
type env struct {
	t     *testing.T
	url   string
	st    *storage.Store
	study *storage.Study
	dir   string
}

func newEnv(t *testing.T, budget int) *env {
	t.Helper()
	return newEnvAt(t, pgtest.Schema(t), budget)
}

// newEnvAt is newEnv on the database of dbURL.
func newEnvAt(t *testing.T, dbURL string, budget int) *env {
	t.Helper()
	return newEnvOf(t, dbURL, fmt.Sprintf(spec, budget))
}

// newEnvOf is an env whose study "s" has the spec text specText.
func newEnvOf(t *testing.T, dbURL, specText string) *env {
	t.Helper()
	e := &env{t: t, url: dbURL, dir: t.TempDir()}
	e.create("s", specText)
	var err error
	if e.st, err = storage.Open(context.Background(), e.url); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.st.Close() })
	if e.study, err = e.st.StudyByName(context.Background(), "s"); err != nil {
		t.Fatal(err)
	}
	return e
}

// floodtune runs a floodtune command on the env's storage and fails the
// test unless it exits 0.
func (e *env) floodtune(args ...string) {
	e.t.Helper()
	if out, err := exec.Command(binary, append(args, "--storage", e.url)...).CombinedOutput(); err != nil {
		e.t.Fatalf("floodtune %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// create creates the study name of the spec text.
func (e *env) create(name, specText string) {
	e.t.Helper()
	specFile := filepath.Join(e.dir, name+".yaml")
	if err := os.WriteFile(specFile, []byte(specText), 0o644); err != nil {
		e.t.Fatal(err)
	}
	e.floodtune("study", "create", name, "--spec", specFile)
}

// worker is a floodtune study optimize process.
type worker struct {
	cmd  *exec.Cmd
	out  bytes.Buffer
	done chan error
	name string
}

func (e *env) start(name string, args ...string) *worker {
	e.t.Helper()
	return e.startStudy("s", name, args...)
}

// startStudy starts a worker process on study.
func (e *env) startStudy(study, name string, args ...string) *worker {
	e.t.Helper()
	return e.launch(exec.Command(binary), e.url, study, name, args...)
}

// launch starts cmd (a floodtune binary, or a command that runs one, with
// its environment) as a worker process on study in the database of
// storageURL: the arguments of study optimize follow cmd's own.
func (e *env) launch(cmd *exec.Cmd, storageURL, study, name string, args ...string) *worker {
	e.t.Helper()
	cmd.Args = append(append(cmd.Args, "study", "optimize", study, "--storage", storageURL, "--metrics-addr", "",
		"--workers", "1", "--lease", "3s", "--heartbeat", "300ms"), args...)
	return e.run(name, cmd)
}

// run starts cmd as the process name, its output kept (and shown if the
// test fails), killed when the test ends.
func (e *env) run(name string, cmd *exec.Cmd) *worker {
	e.t.Helper()
	w := &worker{name: name, done: make(chan error, 1), cmd: cmd}
	w.cmd.Stdout, w.cmd.Stderr = &w.out, &w.out
	if err := w.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() { w.done <- w.cmd.Wait() }()
	e.t.Cleanup(func() {
		_ = w.cmd.Process.Kill()
		if e.t.Failed() {
			e.t.Logf("output of %s:\n%s", w.name, w.out.String())
		}
	})
	return w
}

// wait waits for the process to exit and returns its error.
func (w *worker) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case err := <-w.done:
		return err
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %v", w.name, timeout)
		return nil
	}
}

// until polls cond until it holds or the timeout passes.
func until(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < timeout {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v", what, timeout)
	return 0
}

func (e *env) trials() []*storage.Trial {
	ts, err := e.st.Trials(context.Background(), e.study.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	return ts
}

// runningTrial returns a running trial that already has its parameters,
// or nil.
func (e *env) runningTrial() *storage.Trial {
	for _, t := range e.trials() {
		if t.State == storage.Running && len(t.Params) > 0 {
			return t
		}
	}
	return nil
}

// trial reads trial id.
func (e *env) trial(id int64) *storage.Trial {
	e.t.Helper()
	tr, err := e.st.Trial(context.Background(), id)
	if err != nil {
		e.t.Fatalf("read trial id %d: %v", id, err)
	}
	return tr
}

// owns reports whether tr was leased by the process w (worker names hold
// the process id between dashes).
func (w *worker) owns(tr *storage.Trial) bool {
	return strings.Contains(tr.Worker, fmt.Sprintf("-%d-", w.cmd.Process.Pid))
}

// exited reports whether the process w has exited.
func (w *worker) exited() bool {
	select {
	case err := <-w.done:
		w.done <- err
		return true
	default:
		return false
	}
}

// freezeInTrial freezes w (SIGSTOP) while it runs a trial that already has
// its parameters, and returns that trial; w is left stopped, for the
// caller to kill or let go on (SIGCONT). A trial seen running and then
// signalled may have ended in between (a trial lasts a fraction of a
// second on a fast machine, and a loaded one can hold the test up between
// the two): frozen, the worker cannot end the trial that is seen.
func (e *env) freezeInTrial(w *worker, timeout time.Duration) *storage.Trial {
	e.t.Helper()
	running := func() *storage.Trial {
		for _, tr := range e.trials() {
			if tr.State == storage.Running && len(tr.Params) > 0 && w.owns(tr) {
				return tr
			}
		}
		return nil
	}
	signal := func(sig syscall.Signal) {
		e.t.Helper()
		if err := w.cmd.Process.Signal(sig); err != nil {
			e.t.Fatalf("send %v to %s: %v", sig, w.name, err)
		}
	}
	var tr *storage.Trial
	until(e.t, timeout, w.name+" runs a trial", func() bool {
		if w.exited() {
			e.t.Fatalf("%s exited before it could be stopped in a trial", w.name)
		}
		if running() == nil {
			return false
		}
		signal(syscall.SIGSTOP)
		if tr = running(); tr != nil {
			return true
		}
		signal(syscall.SIGCONT)
		return false
	})
	return tr
}

// retried reports whether trial id was failed and retried.
func (e *env) retried(id int64) bool {
	tr, err := e.st.Trial(context.Background(), id)
	return err == nil && tr.State == storage.Fail && tr.RetriedBy != 0
}

// checkStudy checks what every scenario must leave: every number once, no
// gaps, every trial in a final state, and the trials that count equal to
// the budget.
func (e *env) checkStudy(budget int) {
	e.t.Helper()
	counted := 0
	for i, t := range e.trials() {
		if t.Number != i {
			e.t.Errorf("trial at position %d has number %d: a gap or a duplicate", i, t.Number)
		}
		if !t.State.Final() {
			e.t.Errorf("trial %d is %s after the study ended", t.Number, t.State)
		}
		if t.RetriedBy == 0 {
			counted++
		}
	}
	if counted != budget {
		e.t.Errorf("%d trials count toward the budget, want exactly %d", counted, budget)
	}
}

func TestAKilledWorkersTrialIsRetried(t *testing.T) {
	t.Parallel()
	const budget = 6
	e := newEnv(t, budget)
	a := e.start("worker A")
	// Frozen first: seen running, the trial cannot end before the kill.
	victim := e.freezeInTrial(a, 60*time.Second)
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	b := e.start("worker B")
	until(t, 30*time.Second, "the killed worker's trial is failed and retried", func() bool { return e.retried(victim.ID) })
	reaped := time.Since(killed)
	t.Logf("trial %d reaped and retried %v after its worker was killed (lease 3s)", victim.Number, reaped.Round(10*time.Millisecond))
	if reaped > 3*time.Second+2*time.Second {
		t.Errorf("reaped after %v, want within the lease (3s) plus one reaper interval (1s) and a poll", reaped)
	}
	if err := b.wait(t, 3*time.Minute); err != nil {
		t.Fatalf("worker B: %v", err)
	}
	e.checkStudy(budget)
	failed, err := e.st.Trial(context.Background(), victim.ID)
	if err != nil {
		t.Fatal(err)
	}
	retry, err := e.st.Trial(context.Background(), failed.RetriedBy)
	if err != nil {
		t.Fatalf("the retry of trial %d: %v", victim.Number, err)
	}
	if retry.Params["flood_level"].Value != victim.Params["flood_level"].Value || retry.State != storage.Complete {
		t.Errorf("the retry of trial %d is %s with flood level %v, want complete with %v", victim.Number, retry.State,
			retry.Params["flood_level"].Value, victim.Params["flood_level"].Value)
	}
}

func TestEightWorkerProcessesRaceOnOneStudy(t *testing.T) {
	t.Parallel()
	const budget = 16
	e := newEnv(t, budget)
	var ws []*worker
	for i := 0; i < 8; i++ {
		ws = append(ws, e.start(fmt.Sprintf("worker %d", i)))
	}
	for _, w := range ws {
		if err := w.wait(t, 4*time.Minute); err != nil {
			t.Errorf("%s: %v", w.name, err)
		}
		if s := w.out.String(); strings.Contains(s, "deadlock") || strings.Contains(s, "panic") {
			t.Errorf("%s reported: %s", w.name, s)
		}
	}
	e.checkStudy(budget)
	for _, tr := range e.trials() {
		if tr.State != storage.Complete {
			t.Errorf("trial %d is %s (%s)", tr.Number, tr.State, tr.SystemAttrs[storage.FailReasonAttr])
		}
	}
}

func TestAFrozenWorkersLateResultIsRejected(t *testing.T) {
	t.Parallel()
	const budget = 5
	e := newEnv(t, budget)
	a := e.start("worker A")
	frozen := e.freezeInTrial(a, 60*time.Second)
	b := e.start("worker B")
	until(t, 30*time.Second, "the frozen worker's trial is reaped and retried", func() bool { return e.retried(frozen.ID) })
	if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if err := b.wait(t, 3*time.Minute); err != nil {
		t.Fatalf("worker B: %v", err)
	}
	if err := a.wait(t, time.Minute); err != nil {
		t.Fatalf("worker A after SIGCONT: %v", err)
	}
	after, err := e.st.Trial(context.Background(), frozen.ID)
	if err != nil {
		t.Fatal(err)
	}
	if after.State != storage.Fail || !strings.HasPrefix(after.SystemAttrs[storage.FailReasonAttr], "lease expired") {
		t.Errorf("the frozen trial is %s (%q), want failed by the reaper: its late result must not stand", after.State, after.SystemAttrs[storage.FailReasonAttr])
	}
	retry, err := e.st.Trial(context.Background(), after.RetriedBy)
	if err != nil || retry.State != storage.Complete {
		t.Errorf("the retry is %v (%v), want complete", retry, err)
	}
	t.Logf("worker A said:\n%s", a.out.String())
	if !strings.Contains(a.out.String(), "lost the lease") && !strings.Contains(a.out.String(), "no longer running under this worker") {
		t.Errorf("worker A did not say it lost the lease:\n%s", a.out.String())
	}
	e.checkStudy(budget)
}

func TestSIGTERMHandsTheRunningTrialsBack(t *testing.T) {
	t.Parallel()
	const budget = 6
	e := newEnv(t, budget)
	a := e.start("worker A", "--workers", "2")
	until(t, 60*time.Second, "worker A runs two trials", func() bool {
		n := 0
		for _, tr := range e.trials() {
			if tr.State == storage.Running {
				n++
			}
		}
		return n == 2
	})
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	if err := a.wait(t, 3*time.Second); err != nil {
		t.Fatalf("worker A after SIGTERM: %v (want exit status 0)", err)
	}
	t.Logf("worker A exited %v after SIGTERM", time.Since(stopped).Round(10*time.Millisecond))
	for _, tr := range e.trials() {
		if tr.State == storage.Running {
			t.Errorf("trial %d is still running after its worker stopped", tr.Number)
		}
	}
	b := e.start("worker B", "--workers", "2")
	if err := b.wait(t, 3*time.Minute); err != nil {
		t.Fatalf("worker B: %v", err)
	}
	e.checkStudy(budget)
}

func TestWorkersRecoverWhenTheirConnectionsAreTerminated(t *testing.T) {
	t.Parallel()
	const budget = 8
	// A database of its own: the terminator kills every floodtune
	// connection to it, and tests on schemas of the shared database run
	// beside this one.
	e := newEnvAt(t, pgtest.Database(t), budget)
	a, b := e.start("worker A"), e.start("worker B")
	admin, err := pgx.Connect(context.Background(), e.url+"&application_name=reliability-admin")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	terminated := 0
	for i := 0; i < 3; i++ {
		time.Sleep(1500 * time.Millisecond)
		var n int
		if err := admin.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE application_name = 'floodtune' AND datname = current_database() AND pid <> pg_backend_pid()`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		terminated += n
	}
	t.Logf("terminated %d backend connections of the workers", terminated)
	for _, w := range []*worker{a, b} {
		if err := w.wait(t, 3*time.Minute); err != nil {
			t.Errorf("%s: %v", w.name, err)
		}
	}
	e.checkStudy(budget)
}

// Not parallel: the restart cuts every connection of the test binary.
func TestWorkersRecoverFromADatabaseRestart(t *testing.T) {
	const budget = 10
	e := newEnv(t, budget)
	a, b := e.start("worker A"), e.start("worker B")
	until(t, 60*time.Second, "a trial completes", func() bool {
		for _, tr := range e.trials() {
			if tr.State == storage.Complete {
				return true
			}
		}
		return false
	})
	completed := func() int {
		n := 0
		for _, tr := range e.trials() {
			if tr.State == storage.Complete {
				n++
			}
		}
		return n
	}
	before := completed()
	pgtest.Restart(t)
	restarted := time.Now()
	// The test's own store reconnects too.
	var recovery time.Duration
	until(t, 60*time.Second, "a trial completes after the restart", func() bool {
		if completed() > before {
			recovery = time.Since(restarted)
			return true
		}
		return false
	})
	t.Logf("first trial completed %v after the database restart", recovery.Round(10*time.Millisecond))
	for _, w := range []*worker{a, b} {
		if err := w.wait(t, 3*time.Minute); err != nil {
			t.Errorf("%s: %v", w.name, err)
		}
	}
	e.checkStudy(budget)
}

func TestDivergingTrialsFailWithTheirReasonAndTheWorkerGoesOn(t *testing.T) {
	t.Parallel()
	const budget = 6
	e := newEnv(t, budget)
	// A study of learning rates up to 1e4: SGD diverges there.
	e.create("diverge", `
dataset: {name: gauss2d, train_size: 500, val_size: 100, test_size: 500}
model: {hidden: [32]}
training: {optimizer: sgd, batch_size: 50, epochs: 5}
search: {sampler: random, trials: 6, seed: 3, baseline: false}
space:
  lr: {type: float, low: 0.01, high: 10000, log: true}
`)
	// A trial at a rate where SGD surely diverges, whatever the sampler
	// draws for the others.
	e.floodtune("study", "enqueue", "diverge", "--param", "lr=10000")
	w := e.startStudy("diverge", "worker", "--workers", "2")
	if err := w.wait(t, 2*time.Minute); err != nil {
		t.Fatalf("the worker stopped: %v\n%s", err, w.out.String())
	}
	study, err := e.st.StudyByName(context.Background(), "diverge")
	if err != nil {
		t.Fatal(err)
	}
	trials, err := e.st.Trials(context.Background(), study.ID)
	if err != nil {
		t.Fatal(err)
	}
	diverged := 0
	for _, tr := range trials {
		reason := tr.SystemAttrs[storage.FailReasonAttr]
		switch tr.State {
		case storage.Fail:
			if !strings.Contains(reason, "diverged at epoch") {
				t.Errorf("trial %d failed with %q, want a divergence", tr.Number, reason)
			}
			diverged++
		case storage.Complete:
		default:
			t.Errorf("trial %d is %s", tr.Number, tr.State)
		}
	}
	if len(trials) != 6 || diverged == 0 {
		t.Fatalf("%d trials, %d diverged: want 6, the one at lr 1e4 among the diverged", len(trials), diverged)
	}
	if tr := trials[0]; tr.Params["lr"].Value != 10000 || tr.State != storage.Fail {
		t.Errorf("trial 0 (lr %v) is %s, want failed: SGD at lr 1e4 diverges", tr.Params["lr"].Value, tr.State)
	}
	t.Logf("%d of 6 trials diverged and failed with their reason; the worker finished the study", diverged)
}

func TestThePasswordNeverAppearsInAnyOutput(t *testing.T) {
	t.Parallel()
	const secret = "Sup3rS3cretPassw0rd"
	e := newEnv(t, 3)
	// The throw-away server trusts local connections, so the password is
	// never needed, but every part of floodtune sees it in the URL.
	u := strings.Replace(e.url, "postgres@", "postgres:"+secret+"@", 1)
	if u == e.url {
		t.Skip("the server URL has no user to add a password to")
	}
	var all strings.Builder
	run := func(args ...string) {
		out, _ := exec.Command(binary, append(args, "--storage", u)...).CombinedOutput()
		all.Write(out)
	}
	run("study", "optimize", "s", "--workers", "2", "--metrics-addr", "")
	run("study", "show", "s")
	run("study", "list")
	run("study", "trials", "s", "--format", "json")
	run("study", "best", "s", "--format", "json")
	run("migrate", "status")
	run("study", "show", "no-such-study")
	run("study", "create", "s", "--spec", "/nonexistent")
	bad := strings.Replace(u, "127.0.0.1", "127.0.0.1:1", 1) // a port where nothing listens
	out, _ := exec.Command(binary, "study", "list", "--storage", bad).CombinedOutput()
	all.Write(out)
	if strings.Contains(all.String(), secret) {
		t.Fatalf("the password appears in floodtune's output:\n%s", all.String())
	}
	if !strings.Contains(all.String(), "xxxxx") {
		t.Errorf("no output showed the redacted URL; the test did not exercise an error with the URL:\n%s", all.String())
	}
}
