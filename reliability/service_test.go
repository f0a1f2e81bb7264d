package reliability

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/floodtune/floodtune/internal/pgtest"
	"github.com/floodtune/floodtune/storage"
)

// server is a floodtune serve process.
type server struct {
	cmd  *exec.Cmd
	addr string // host:port of the API
	mu   sync.Mutex
	out  strings.Builder
	done chan error
}

func (s *server) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

var apiLine = regexp.MustCompile(`API on http://([0-9.:]+)/v1`)

// serve starts floodtune serve on the env's storage at addr (host:0 for any
// free port) with a 3s lease, and waits until it listens.
func (e *env) serve(name, addr string) *server {
	e.t.Helper()
	s := &server{done: make(chan error, 1)}
	s.cmd = exec.Command(binary, "serve", "--addr", addr, "--metrics-addr", "", "--lease", "3s", "--storage", e.url)
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	s.cmd.Stdout = io.Discard
	if err := s.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			s.mu.Lock()
			s.out.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
			if m := apiLine.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
		s.done <- s.cmd.Wait()
	}()
	e.t.Cleanup(func() {
		_ = s.cmd.Process.Kill()
		if e.t.Failed() {
			e.t.Logf("output of %s:\n%s", name, s.output())
		}
	})
	select {
	case s.addr = <-found:
	case err := <-s.done:
		e.t.Fatalf("%s exited before listening: %v\n%s", name, err, s.output())
	case <-time.After(30 * time.Second):
		e.t.Fatalf("%s does not listen after 30s:\n%s", name, s.output())
	}
	return s
}

// kill stops the server with SIGKILL and waits for it to go.
func (s *server) kill(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-s.done
}

// workerToken makes a worker token of study "s".
func (e *env) workerToken(name string) string {
	e.t.Helper()
	out, err := exec.Command(binary, "token", "create", name, "--scope", "worker", "--study", "s", "--storage", e.url).Output()
	if err != nil {
		e.t.Fatalf("token create: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// remote starts a study optimize worker that takes its trials from the
// servers at urls (comma-separated) with token.
func (e *env) remote(name, urls, token string, args ...string) *worker {
	e.t.Helper()
	cmd := exec.Command(binary, append([]string{"study", "optimize", "s", "--server", urls, "--workers", "1"}, args...)...)
	cmd.Env = append(os.Environ(), "FLOODTUNE_TOKEN="+token, "FLOODTUNE_STORAGE=")
	return e.run(name, cmd)
}

// runningUnder returns a running trial whose worker's name starts with
// prefix, or nil.
func (e *env) runningUnder(prefix string) *storage.Trial {
	for _, t := range e.trials() {
		if t.State == storage.Running && strings.HasPrefix(t.Worker, prefix) {
			return t
		}
	}
	return nil
}

// freePort returns a loopback address with a port that was free a moment
// ago (for a server that must come back on the same address).
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// A server killed with SIGKILL while workers train through it, and
// restarted on its address: the workers' calls wait for it and go on;
// nothing is lost or recorded twice.
func TestTheServiceKilledAndRestartedLosesNothing(t *testing.T) {
	t.Parallel()
	const budget = 6
	e := newEnv(t, budget)
	addr := freePort(t)
	srv := e.serve("serve", addr)
	token := e.workerToken("w")
	a := e.remote("worker A", "http://"+srv.addr, token)
	b := e.remote("worker B", "http://"+srv.addr, token)
	until(t, 60*time.Second, "a trial runs through the service", func() bool { return e.runningTrial() != nil })
	var inFlight []int64
	for _, tr := range e.trials() {
		if tr.State == storage.Running {
			inFlight = append(inFlight, tr.ID)
		}
	}
	srv.kill(t)
	killed := time.Now()
	time.Sleep(time.Second) // an outage the workers' calls meet, shorter than the lease
	e.serve("serve, restarted", addr)
	t.Logf("the server was back %v after the kill, with %d trials running", time.Since(killed).Round(time.Millisecond), len(inFlight))
	for _, w := range []*worker{a, b} {
		if err := w.wait(t, 3*time.Minute); err != nil {
			t.Fatalf("%s: %v\n%s", w.name, err, w.out.String())
		}
	}
	e.checkStudy(budget)
	for _, tr := range e.trials() {
		if tr.State != storage.Complete && !strings.HasPrefix(tr.SystemAttrs[storage.FailReasonAttr], "lease expired") {
			t.Errorf("trial %d is %s (%q)", tr.Number, tr.State, tr.SystemAttrs[storage.FailReasonAttr])
		}
	}
	completed := 0
	for _, id := range inFlight {
		if tr, err := e.st.Trial(context.Background(), id); err == nil && tr.State == storage.Complete {
			completed++
		}
	}
	t.Logf("%d of the %d trials running at the kill completed under their first lease", completed, len(inFlight))
}

// Two replicas of the service on one database, the workers spread over
// both, and one replica killed: its workers go on through the other, with
// the trials they hold (a lease is the database's, not a replica's).
func TestTwoReplicasOneKilled(t *testing.T) {
	t.Parallel()
	const budget = 8
	e := newEnv(t, budget)
	r1, r2 := e.serve("replica 1", "127.0.0.1:0"), e.serve("replica 2", "127.0.0.1:0")
	u1, u2 := "http://"+r1.addr, "http://"+r2.addr
	token := e.workerToken("w")
	var ws []*worker
	for i := range 2 {
		ws = append(ws, e.remote(fmt.Sprint("worker on 1, then 2, #", i), u1+","+u2, token))
		ws = append(ws, e.remote(fmt.Sprint("worker on 2, then 1, #", i), u2+","+u1, token))
	}
	until(t, 60*time.Second, "trials run through both replicas", func() bool {
		running := 0
		for _, tr := range e.trials() {
			if tr.State == storage.Running && len(tr.Params) > 0 {
				running++
			}
		}
		return running >= 2
	})
	r1.kill(t)
	for _, w := range ws {
		if err := w.wait(t, 3*time.Minute); err != nil {
			t.Fatalf("%s: %v\n%s", w.name, err, w.out.String())
		}
	}
	e.checkStudy(budget)
	// Only an ask whose answer the killed replica never sent can leave a
	// trial to be reaped; every trial that was leased goes on.
	complete := 0
	for _, tr := range e.trials() {
		if tr.State == storage.Complete {
			complete++
			continue
		}
		reason := tr.SystemAttrs[storage.FailReasonAttr]
		t.Logf("trial %d: %s (%q)", tr.Number, tr.State, reason)
		if !strings.HasPrefix(reason, "lease expired") || len(tr.Intermediate) > 0 {
			t.Errorf("trial %d is %s (%q) with %d epochs reported: a trial that trained through the killed replica must go on through the other", tr.Number, tr.State, reason, len(tr.Intermediate))
		}
	}
	t.Logf("%d trials, %d complete", len(e.trials()), complete)
}

// A worker killed in the middle of a trial: the trial is reaped when its
// lease runs out and retried by another worker through the service.
func TestAWorkerKilledMidTrialThroughTheServiceIsRetried(t *testing.T) {
	t.Parallel()
	const budget = 4
	e := newEnv(t, budget)
	srv := e.serve("serve", "127.0.0.1:0")
	token := e.workerToken("w")
	a := e.remote("worker A", "http://"+srv.addr, token)
	// Frozen first: seen running, the trial cannot end before the kill.
	victim := e.freezeInTrial(a, 60*time.Second)
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	b := e.remote("worker B", "http://"+srv.addr, token)
	t.Logf("reaped and retried %v after the kill (lease 3s)",
		until(t, time.Minute, "the killed worker's trial is retried", func() bool { return e.retried(victim.ID) }).Round(10*time.Millisecond))
	if err := b.wait(t, 3*time.Minute); err != nil {
		t.Fatalf("worker B: %v", err)
	}
	after, err := e.st.Trial(context.Background(), victim.ID)
	if err != nil {
		t.Fatal(err)
	}
	if after.State != storage.Fail || after.RetriedBy == 0 {
		t.Fatalf("the killed worker's trial is %s, retried by %d: want failed and retried", after.State, after.RetriedBy)
	}
	retry, err := e.st.Trial(context.Background(), after.RetriedBy)
	if err != nil || retry.State != storage.Complete {
		t.Errorf("the retry: %v, %v", retry, err)
	}
	e.checkStudy(budget)
}

// A worker frozen past its lease, then thawed: its report or tell is
// refused (409), the retry's result stands, and the worker says so and
// goes on.
func TestALateTellThroughTheServiceIsRefused(t *testing.T) {
	t.Parallel()
	const budget = 4
	e := newEnv(t, budget)
	srv := e.serve("serve", "127.0.0.1:0")
	token := e.workerToken("w")
	a := e.remote("worker A", "http://"+srv.addr, token)
	frozen := e.freezeInTrial(a, 60*time.Second)
	b := e.remote("worker B", "http://"+srv.addr, token)
	t.Logf("reaped and retried %v after the freeze (lease 3s)",
		until(t, 60*time.Second, "the frozen worker's trial is reaped and retried", func() bool { return e.retried(frozen.ID) }).Round(10*time.Millisecond))
	if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	for _, w := range []*worker{b, a} {
		if err := w.wait(t, 3*time.Minute); err != nil {
			t.Fatalf("%s: %v\n%s", w.name, err, w.out.String())
		}
	}
	after, err := e.st.Trial(context.Background(), frozen.ID)
	if err != nil {
		t.Fatal(err)
	}
	if after.State != storage.Fail || !strings.HasPrefix(after.SystemAttrs[storage.FailReasonAttr], "lease expired") {
		t.Errorf("the frozen trial is %s (%q), want failed by the reaper", after.State, after.SystemAttrs[storage.FailReasonAttr])
	}
	retry, err := e.st.Trial(context.Background(), after.RetriedBy)
	if err != nil || retry.State != storage.Complete {
		t.Errorf("the retry: %v, %v", retry, err)
	}
	if out := a.out.String(); !strings.Contains(out, "lease was lost") && !strings.Contains(out, "refused its outcome") {
		t.Errorf("worker A did not say its lease was lost:\n%s", out)
	} else {
		t.Logf("worker A, thawed, said: %s", strings.TrimSpace(strings.Split(strings.SplitAfter(out, "floodtune: trial")[1], "\n")[0]))
	}
	e.checkStudy(budget)
}

// debianPython is the interpreter of Debian's python3-torch.
const debianPython = "/usr/bin/python3"

// pythonStudy is study "s" served by floodtune serve, its data exported for
// examples/python/torch_worker.py.
type pythonStudy struct {
	*env
	srv   *server
	token string // a worker token of the study
	data  string // the export's directory
}

// newPythonStudy creates study "s" of specText, exports its data, serves it
// and makes a worker token. It skips the test (fails it in CI) when Debian's
// python3 cannot import torch and numpy.
func newPythonStudy(t *testing.T, specText string) *pythonStudy {
	t.Helper()
	if err := exec.Command(debianPython, "-c", "import torch, numpy").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s cannot import torch and numpy (%v): install python3-torch (scripts/ensure-python-torch.sh does)", debianPython, err)
		}
		t.Skipf("%s cannot import torch and numpy (%v): install Debian's python3-torch", debianPython, err)
	}
	p := &pythonStudy{env: newEnvOf(t, pgtest.Schema(t), specText)}
	p.data = filepath.Join(p.dir, "data")
	p.floodtune("dataset", "export", "--spec", filepath.Join(p.dir, "s.yaml"), "--out", p.data)
	p.srv = p.serve("serve", "127.0.0.1:0")
	p.token = p.workerToken("w")
	return p
}

// python starts the Python worker "py" on the data of dir for at most
// trials trials.
func (p *pythonStudy) python(dir string, trials int) *worker {
	p.t.Helper()
	cmd := exec.Command(debianPython, "../examples/python/torch_worker.py", "--server", "http://"+p.srv.addr,
		"--study", "s", "--data", dir, "--worker", "py", "--trials", fmt.Sprint(trials))
	cmd.Env = append(os.Environ(), "FLOODTUNE_TOKEN="+p.token)
	return p.run("python worker", cmd)
}

// shareWithGo runs the Python worker for at most pyTrials trials and, once
// it holds one, a Go worker, until the budget is spent. It checks that every
// trial completed with its attributes and one report for each of its epochs,
// and returns how many trials each language ran.
func (p *pythonStudy) shareWithGo(budget, pyTrials, epochs int) map[string]int {
	t := p.t
	t.Helper()
	py := p.python(p.data, pyTrials)
	// The Go worker starts once the Python one holds a trial: both work.
	until(t, 2*time.Minute, "the Python worker leases a trial", func() bool { return p.runningUnder("py#") != nil })
	gw := p.remote("go worker", "http://"+p.srv.addr, p.token)
	for _, w := range []*worker{py, gw} {
		if err := w.wait(t, 3*time.Minute); err != nil {
			t.Fatalf("%s: %v\n%s", w.name, err, w.out.String())
		}
	}
	p.checkStudy(budget)
	byLang := map[string]int{}
	for _, tr := range p.trials() {
		if tr.State != storage.Complete {
			t.Errorf("trial %d is %s (%q)", tr.Number, tr.State, tr.SystemAttrs[storage.FailReasonAttr])
			continue
		}
		switch {
		case strings.HasPrefix(tr.Worker, "py#"):
			byLang["python"]++
			if tr.UserAttrs["worker_lang"] != "python" || tr.UserAttrs["test_acc"] == "" || len(tr.Intermediate) != epochs {
				t.Errorf("Python's trial %d: attrs %v, %d epochs reported", tr.Number, tr.UserAttrs, len(tr.Intermediate))
			}
		default:
			byLang["go"]++
			if tr.UserAttrs["test_acc"] == "" || tr.UserAttrs["val_loss_curve"] == "" || len(tr.Intermediate) != epochs {
				t.Errorf("Go's trial %d: attrs %v, %d epochs reported", tr.Number, tr.UserAttrs, len(tr.Intermediate))
			}
		}
	}
	t.Logf("trials by worker: %v", byLang)
	return byLang
}

// A Python worker (clients/python, examples/python/torch_worker.py, PyTorch)
// and a Go worker share a study through the service.
func TestAPythonWorkerAndAGoWorkerShareAStudy(t *testing.T) {
	t.Parallel()
	const budget = 8
	p := newPythonStudy(t, fmt.Sprintf(`
dataset: {name: gauss2d, train_size: 600, val_size: 200, test_size: 500, label_noise: 0.1}
model: {hidden: [32, 32]}
training: {optimizer: adam, lr: 0.01, batch_size: 50, epochs: 6}
search: {sampler: tpe, trials: %d, seed: 3}
space:
  flood_level: {type: float, low: 0.0, high: 0.6}
`, budget))
	byLang := p.shareWithGo(budget, 3, 6)
	if byLang["python"] < 1 || byLang["python"] > 3 || byLang["go"] < budget-3 {
		t.Errorf("trials by worker: %v, want 1 to 3 by Python and the rest by Go", byLang)
	}
}

// cnnSpec is a small convolutional network on mnist, its trials a second or
// two.
const cnnSpec = `
dataset: {name: mnist, train_size: 300, val_size: 100, test_size: 200, label_noise: 0.2}
model: {type: cnn, conv: [{channels: 4, kernel: 3, padding: 1, pool: 2}], hidden: [16]}
training: {optimizer: momentum, lr: 0.1, batch_size: 30, epochs: 2}
search: {sampler: random, trials: %d, seed: 5}
space:
  flood_level: {type: float, low: 0.0, high: 0.5}
`

// The Python worker trains the convolutional network of a CNN study on the
// exported images, beside a Go worker.
func TestAPythonWorkerAndAGoWorkerShareACNNStudy(t *testing.T) {
	t.Parallel()
	const budget = 4
	p := newPythonStudy(t, fmt.Sprintf(cnnSpec, budget))
	byLang := p.shareWithGo(budget, 2, 2)
	if byLang["python"] < 1 || byLang["python"]+byLang["go"] != budget {
		t.Errorf("trials by worker: %v, want at least 1 by Python and %d in all", byLang, budget)
	}
}

// A Python worker whose export does not say the images' shape cannot
// build a CNN trial's network: it says to re-export and gives the trial
// back, unfailed, for another worker.
func TestAPythonWorkerWithoutTheImageShapeGivesACNNTrialBack(t *testing.T) {
	t.Parallel()
	p := newPythonStudy(t, fmt.Sprintf(cnnSpec, 2))
	metaFile := filepath.Join(p.data, "meta.json")
	raw, err := os.ReadFile(metaFile)
	if err != nil {
		t.Fatal(err)
	}
	var meta map[string]any
	if err := json.Unmarshal(raw, &meta); err != nil {
		t.Fatal(err)
	}
	if _, ok := meta["image"]; !ok {
		t.Fatalf("meta.json of mnist has no image shape:\n%s", raw)
	}
	delete(meta, "image") // as an export by an older floodtune
	if raw, err = json.Marshal(meta); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(metaFile, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	py := p.python(p.data, 1)
	err = py.wait(t, 2*time.Minute)
	out := py.out.String()
	if err == nil || !strings.Contains(out, "has no image shape") || !strings.Contains(out, "re-export") {
		t.Errorf("the Python worker exited with %v, saying:\n%s\nwant an error that the export has no image shape", err, out)
	}
	trials := p.trials()
	if len(trials) != 2 {
		t.Fatalf("%d trials, want the one given back and its retry", len(trials))
	}
	if tr := trials[0]; tr.State != storage.Fail || tr.RetriedBy == 0 {
		t.Errorf("the Python worker's trial is %s, retried by %d: want it given back", tr.State, tr.RetriedBy)
	}
	if tr := trials[1]; tr.State != storage.Waiting || tr.Attempt != 1 {
		t.Errorf("the retry is %s, attempt %d: want waiting, attempt 1", tr.State, tr.Attempt)
	}
}
