package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/floodtune/floodtune/storage"
	"golang.org/x/term"
)

const smallSpec = `
dataset: {name: gauss2d, train_size: 200, val_size: 100, test_size: 1000}
model: {hidden: [8]}
training: {epochs: 2, batch_size: 50, optimizer: adam, lr: 0.01}
search: {trials: 4, seed: 1}
space: {flood_level: {type: float, low: 0, high: 1}}
`

// newStudyEnv returns a fresh SQLite storage URL and the path of a spec
// file holding spec.
func newStudyEnv(t *testing.T, spec string) (storageURL, specPath string) {
	t.Helper()
	for _, name := range []string{"study", "trial"} {
		if c, _, err := newRootCmd(io.Discard, io.Discard).Find([]string{name}); err != nil || c.Name() != name {
			t.Fatalf("floodtune has no %s command: root.go must register it with root.AddCommand(..., newStudyCmd(), newTrialCmd())", name)
		}
	}
	dir := t.TempDir()
	specPath = filepath.Join(dir, "spec.yaml")
	if err := os.WriteFile(specPath, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	return "sqlite:" + filepath.Join(dir, "x.db"), specPath
}

// mustRun runs the CLI and fails the test unless it exits with 0.
func mustRun(t *testing.T, args ...string) (stdout, stderr string) {
	t.Helper()
	code, out, errOut := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("%v: exit %d, stderr %q", args, code, errOut)
	}
	return out, errOut
}

// trialOut is one element of study trials --format json.
type trialOut struct {
	Number           int                 `json:"number"`
	State            string              `json:"state"`
	Value            *float64            `json:"value"`
	Params           map[string]any      `json:"params"`
	Intermediate     map[string]*float64 `json:"intermediate"`
	UserAttrs        map[string]string   `json:"user_attrs"`
	SystemAttrs      map[string]string   `json:"system_attrs"`
	DatetimeStart    *string             `json:"datetime_start"`
	DatetimeComplete *string             `json:"datetime_complete"`
	RetryOf          *int                `json:"retry_of"`
	Attempt          int                 `json:"attempt"`
}

// intOrNull shows a number of the JSON, or null.
func intOrNull(n *int) string {
	if n == nil {
		return "null"
	}
	return strconv.Itoa(*n)
}

func TestStudyCreateOptimizeAndInspect(t *testing.T) {
	t.Parallel()
	url, spec := newStudyEnv(t, smallSpec)
	s := "--storage=" + url

	out, _ := mustRun(t, "study", "create", "gauss", "--spec", spec, s)
	if !strings.HasPrefix(out, `created study "gauss": 4 trials, sampler tpe, searching flood_level`+"\n") {
		t.Fatalf("create printed %q", out)
	}

	out, errOut := mustRun(t, "study", "optimize", "gauss", "--workers", "2", "--metrics-addr", "127.0.0.1:0", s)
	if !strings.Contains(errOut, "metrics on http://127.0.0.1:") {
		t.Errorf("optimize did not say where its metrics are:\n%s", errOut)
	}
	for _, want := range []string{`study "gauss": maximize val_acc`, "trials: 4 of budget 4 counted; 4 complete", "best: trial ", "baseline: trial 0 (plain training, b = 0)"} {
		if !strings.Contains(out, want) {
			t.Errorf("optimize's summary lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(errOut, " complete value "); n != 4 {
		t.Errorf("optimize logged %d finished trials, want one line per trial:\n%s", n, errOut)
	}

	out, _ = mustRun(t, "study", "list", s)
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[0], "NAME") ||
		!strings.Contains(lines[1], "gauss") || !strings.Contains(lines[1], "4/4") {
		t.Errorf("list printed:\n%s", out)
	}

	show, _ := mustRun(t, "study", "show", "gauss", s)
	for _, want := range []string{"trials: 4 of budget 4 counted; 4 complete, 0 pruned, 0 fail, 0 running, 0 waiting", "flood level", "test acc", "baseline: trial 0 (plain training, b = 0), val_acc "} {
		if !strings.Contains(show, want) {
			t.Errorf("show lacks %q:\n%s", want, show)
		}
	}

	// JSON: every trial, in number order, the baseline first.
	out, _ = mustRun(t, "study", "trials", "gauss", "--format", "json", s)
	var trials []trialOut
	if err := json.Unmarshal([]byte(out), &trials); err != nil {
		t.Fatalf("trials --format json is not a JSON array: %v\n%s", err, out)
	}
	if len(trials) != 4 {
		t.Fatalf("%d trials, want 4", len(trials))
	}
	best := 0
	for i, tr := range trials {
		if tr.Number != i || tr.State != "complete" || tr.Value == nil {
			t.Fatalf("trial %d: number %d, state %s, value %v", i, tr.Number, tr.State, tr.Value)
		}
		if _, ok := tr.Params["flood_level"].(float64); !ok {
			t.Errorf("trial %d: params %v lack a numeric flood_level", i, tr.Params)
		}
		if len(tr.Intermediate) != 2 || tr.Intermediate["1"] == nil || tr.Intermediate["2"] == nil {
			t.Errorf("trial %d: intermediate values %v, want epochs 1 and 2", i, tr.Intermediate)
		}
		if _, err := strconv.ParseFloat(tr.UserAttrs["test_acc"], 64); err != nil {
			t.Errorf("trial %d: no test_acc in %v", i, tr.UserAttrs)
		}
		for _, ts := range []*string{tr.DatetimeStart, tr.DatetimeComplete} {
			if ts == nil {
				t.Errorf("trial %d: a datetime is null", i)
			} else if _, err := time.Parse(time.RFC3339, *ts); err != nil {
				t.Errorf("trial %d: %v", i, err)
			}
		}
		if tr.RetryOf != nil || tr.Attempt != 0 {
			t.Errorf("trial %d: retry_of %s, attempt %d: no trial was retried", i, intOrNull(tr.RetryOf), tr.Attempt)
		}
		if *tr.Value > *trials[best].Value {
			best = i
		}
	}
	if trials[0].Params["flood_level"] != 0.0 || trials[0].SystemAttrs["baseline"] != "true" {
		t.Errorf("trial 0 is not the plain-training baseline: %+v", trials[0])
	}

	// CSV: number,state,value, the parameters, test_acc.
	out, _ = mustRun(t, "study", "trials", "gauss", "--format", "csv", s)
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatalf("trials --format csv: %v\n%s", err, out)
	}
	if len(rows) != 5 || strings.Join(rows[0], ",") != "number,state,value,flood_level,test_acc" {
		t.Fatalf("trials --format csv:\n%s", out)
	}
	if rows[1][0] != "0" || rows[1][3] != "0" || rows[1][2] != strconv.FormatFloat(*trials[0].Value, 'g', -1, 64) {
		t.Errorf("the baseline's row %v does not match its JSON %+v", rows[1], trials[0])
	}

	out, _ = mustRun(t, "study", "trials", "gauss", s)
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 5 || !strings.Contains(lines[0], "FLOOD_LEVEL") || !strings.Contains(lines[1], "baseline") {
		t.Errorf("trials --format table:\n%s", out)
	}

	// best: the trial with the highest value (the first of equals).
	out, _ = mustRun(t, "study", "best", "gauss", "--format", "json", s)
	var b trialOut
	if err := json.Unmarshal([]byte(out), &b); err != nil {
		t.Fatalf("best --format json: %v\n%s", err, out)
	}
	if b.Number != best || *b.Value != *trials[best].Value || b.RetryOf != nil || b.Attempt != 0 {
		t.Errorf("best is trial %d (%v, retry_of %s, attempt %d), want %d (%v, null, 0)", b.Number, *b.Value, intOrNull(b.RetryOf), b.Attempt, best, *trials[best].Value)
	}
	out, _ = mustRun(t, "study", "best", "gauss", s)
	if !strings.Contains(out, "trial") || !strings.Contains(out, "flood level") {
		t.Errorf("best --format table:\n%s", out)
	}
	if !strings.Contains(show, "best: trial "+strconv.Itoa(best)+",") {
		t.Errorf("show does not name trial %d as the best:\n%s", best, show)
	}

	// rerun: the stored value again, bit for bit.
	for _, n := range []int{0, best} {
		out, _ = mustRun(t, "trial", "rerun", "gauss", strconv.Itoa(n), "--json", s)
		var r struct {
			Number    int      `json:"number"`
			Stored    *float64 `json:"stored"`
			Rerun     *float64 `json:"rerun"`
			Identical bool     `json:"identical"`
		}
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("rerun --json: %v\n%s", err, out)
		}
		if !r.Identical || r.Stored == nil || r.Rerun == nil || *r.Stored != *r.Rerun || *r.Stored != *trials[n].Value {
			t.Errorf("rerun of trial %d: %s", n, out)
		}
	}
	out, _ = mustRun(t, "trial", "rerun", "gauss", "0", s)
	if !strings.Contains(out, "identical bit for bit: yes") {
		t.Errorf("rerun printed:\n%s", out)
	}

	out, _ = mustRun(t, "study", "delete", "gauss", "--yes", s)
	if out != "deleted study \"gauss\" and its 4 trials\n" {
		t.Errorf("delete printed %q", out)
	}
	if code, _, errOut := runCLI(t, "study", "show", "gauss", s); code != 2 || !strings.Contains(errOut, `no study named "gauss"`) {
		t.Errorf("show after delete: exit %d, stderr %q", code, errOut)
	}
}

func TestStudyEnqueueAddsAWaitingTrial(t *testing.T) {
	t.Parallel()
	url, spec := newStudyEnv(t, strings.Replace(smallSpec, "space: {flood_level: {type: float, low: 0, high: 1}}",
		"space: {flood_level: {type: float, low: 0, high: 1}, optimizer: {type: categorical, choices: [adam, sgd]}, epochs: {type: int, low: 1, high: 3}}", 1))
	s := "--storage=" + url
	mustRun(t, "study", "create", "queued", "--spec", spec, "--no-baseline", s)
	out, _ := mustRun(t, "study", "enqueue", "queued", "--param", "flood_level=0.5", "--param", "optimizer=sgd", "--param", "epochs=3", s)
	if !strings.HasPrefix(out, `enqueued trial 0 of study "queued"`) {
		t.Errorf("enqueue printed %q", out)
	}
	out, _ = mustRun(t, "study", "trials", "queued", "--format", "json", s)
	var trials []trialOut
	if err := json.Unmarshal([]byte(out), &trials); err != nil {
		t.Fatal(err)
	}
	if len(trials) != 1 {
		t.Fatalf("%d trials, want only the enqueued one (--no-baseline):\n%s", len(trials), out)
	}
	tr := trials[0]
	if tr.State != "waiting" || tr.Value != nil || tr.DatetimeStart != nil || tr.DatetimeComplete != nil {
		t.Errorf("the enqueued trial: %+v", tr)
	}
	if tr.Params["flood_level"] != 0.5 || tr.Params["optimizer"] != "sgd" || tr.Params["epochs"] != 3.0 {
		t.Errorf("the enqueued trial's params: %v", tr.Params)
	}
	if code, _, errOut := runCLI(t, "study", "best", "queued", s); code != 1 || !strings.Contains(errOut, "no complete trial") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("best without a complete trial: exit %d, stderr %q", code, errOut)
	}

	// The waiting trial runs first, with its values.
	mustRun(t, "study", "optimize", "queued", "--workers", "1", "--metrics-addr", "", s)
	out, _ = mustRun(t, "study", "trials", "queued", "--format", "csv", s)
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(rows) != 5 {
		t.Fatalf("trials --format csv: %v\n%s", err, out)
	}
	if got := strings.Join(rows[1][:6], ","); !strings.HasPrefix(got, "0,complete,") || !strings.HasSuffix(got, ",3,0.5,sgd") {
		t.Errorf("the enqueued trial ran as %q, want number 0 complete with epochs 3, flood_level 0.5, optimizer sgd", got)
	}
}

func TestTheJSONOfARetryNamesTheTrialItRetries(t *testing.T) {
	t.Parallel()
	url, spec := newStudyEnv(t, strings.Replace(smallSpec, "trials: 4", "trials: 2", 1))
	mustRun(t, "study", "create", "retried", "--spec", spec, "--storage", url)

	// The baseline (trial 0) is given back twice, as a worker that stops
	// does: trial 1 retries 0, trial 2 retries 1 and completes.
	ctx := context.Background()
	st, err := storage.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	study, err := st.StudyByName(ctx, "retried")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		tr, err := st.ClaimWaiting(ctx, study.ID, "test/0")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.GiveBack(ctx, tr.ID, "test/0", "its worker stopped"); err != nil {
			t.Fatal(err)
		}
	}
	last, err := st.ClaimWaiting(ctx, study.ID, "test/0")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Finish(ctx, last.ID, "test/0", storage.Complete, 0.75); err != nil {
		t.Fatal(err)
	}

	out, _ := mustRun(t, "study", "trials", "retried", "--format", "json", "--storage", url)
	var trials []trialOut
	if err := json.Unmarshal([]byte(out), &trials); err != nil {
		t.Fatalf("trials --format json: %v\n%s", err, out)
	}
	// Every trial has both keys, null on a first run.
	var raw []map[string]any
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatal(err)
	}
	for i, r := range raw {
		for _, key := range []string{"retry_of", "attempt"} {
			if _, ok := r[key]; !ok {
				t.Errorf("trial %d has no %q: %v", i, key, r)
			}
		}
	}
	want := []struct {
		state   string
		retryOf string
		attempt int
	}{{"fail", "null", 0}, {"fail", "0", 1}, {"complete", "1", 2}}
	if len(trials) != len(want) {
		t.Fatalf("%d trials, want %d:\n%s", len(trials), len(want), out)
	}
	for i, w := range want {
		tr := trials[i]
		if tr.Number != i || tr.State != w.state || intOrNull(tr.RetryOf) != w.retryOf || tr.Attempt != w.attempt {
			t.Errorf("trial %d: number %d, %s, retry_of %s, attempt %d; want %s, retry_of %s, attempt %d",
				i, tr.Number, tr.State, intOrNull(tr.RetryOf), tr.Attempt, w.state, w.retryOf, w.attempt)
		}
	}

	// best, the same shape: trial 2, which retries trial 1.
	out, _ = mustRun(t, "study", "best", "retried", "--format", "json", "--storage", url)
	var b trialOut
	if err := json.Unmarshal([]byte(out), &b); err != nil {
		t.Fatalf("best --format json: %v\n%s", err, out)
	}
	if b.Number != 2 || intOrNull(b.RetryOf) != "1" || b.Attempt != 2 {
		t.Errorf("best is trial %d, retry_of %s, attempt %d; want trial 2, retry_of 1, attempt 2\n%s", b.Number, intOrNull(b.RetryOf), b.Attempt, out)
	}
}

func TestStudyBadInputExitsWithStatus2(t *testing.T) {
	t.Parallel()
	url, spec := newStudyEnv(t, smallSpec)
	dir := filepath.Dir(spec)
	badSpec := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(badSpec, []byte("dataset: {name: cifar}\nsearch: {trials: 0}\nspace: {flood_level: {type: float, low: 2, high: 1}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "study", "create", "taken", "--spec", spec, "--storage", url)

	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"a missing spec file", []string{"study", "create", "new", "--spec", filepath.Join(dir, "nope.yaml")}, []string{"nope.yaml", "no such file"}},
		{"no spec file", []string{"study", "create", "new"}, []string{"--spec FILE is required"}},
		{"a spec with every problem named", []string{"study", "create", "new", "--spec", badSpec}, []string{"3 problems", "cifar", "search.trials", "low 2 is greater than high 1"}},
		{"a name in use", []string{"study", "create", "taken", "--spec", spec}, []string{`a study named "taken" already exists`}},
		{"a name with a control character", []string{"study", "create", "bad\tname", "--spec", spec}, []string{"control characters"}},
		{"no name", []string{"study", "create", "--spec", spec}, []string{"the new study's name"}},
		{"an unknown study to show", []string{"study", "show", "nope"}, []string{`no study named "nope"`}},
		{"an unknown study to optimize", []string{"study", "optimize", "nope"}, []string{`no study named "nope"`}},
		{"an unknown study's trials", []string{"study", "trials", "nope"}, []string{`no study named "nope"`}},
		{"an unknown study's best", []string{"study", "best", "nope"}, []string{`no study named "nope"`}},
		{"an unknown study to enqueue in", []string{"study", "enqueue", "nope", "--param", "flood_level=0.5"}, []string{`no study named "nope"`}},
		{"an unknown study to delete", []string{"study", "delete", "nope", "--yes"}, []string{`no study named "nope"`}},
		{"an unknown study to rerun", []string{"trial", "rerun", "nope", "0"}, []string{`no study named "nope"`}},
		{"a parameter not searched", []string{"study", "enqueue", "taken", "--param", "lr=0.1"}, []string{"lr is not searched", "flood_level"}},
		{"a parameter outside its space", []string{"study", "enqueue", "taken", "--param", "flood_level=1.5"}, []string{"outside the space [0, 1]"}},
		{"a parameter that is not a number", []string{"study", "enqueue", "taken", "--param", "flood_level=high"}, []string{`"high" is not a number`}},
		{"a parameter without a value", []string{"study", "enqueue", "taken", "--param", "flood_level"}, []string{"OPTION=VALUE"}},
		{"a parameter given twice", []string{"study", "enqueue", "taken", "--param", "flood_level=0.1", "--param", "flood_level=0.2"}, []string{"twice"}},
		{"no parameter", []string{"study", "enqueue", "taken"}, []string{"--param"}},
		{"an unknown trials format", []string{"study", "trials", "taken", "--format", "xml"}, []string{"--format", "table, csv or json", `"xml"`}},
		{"an unknown best format", []string{"study", "best", "taken", "--format", "csv"}, []string{"--format", "table or json"}},
		{"zero workers", []string{"study", "optimize", "taken", "--workers", "0"}, []string{"--workers"}},
		{"a trial number that is not a number", []string{"trial", "rerun", "taken", "first"}, []string{"trial number"}},
		{"an unknown trial", []string{"trial", "rerun", "taken", "7"}, []string{`study "taken" has no trial 7`}},
		{"a trial that has not run", []string{"trial", "rerun", "taken", "0"}, []string{"has not run yet"}},
		{"a study command without a subcommand", []string{"study"}, []string{"needs a subcommand"}},
		{"an unknown flag", []string{"study", "list", "--verbose"}, []string{"unknown flag"}},
	}
	if !term.IsTerminal(int(os.Stdin.Fd())) {
		cases = append(cases, struct {
			name string
			args []string
			want []string
		}{"a delete without --yes and no terminal", []string{"study", "delete", "taken"}, []string{"--yes"}})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runCLI(t, append(tc.args, "--storage", url)...)
			if code != 2 {
				t.Fatalf("exit %d, want 2 (stderr %q)", code, errOut)
			}
			lines := strings.Split(strings.TrimSpace(errOut), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "floodtune: ") {
				t.Fatalf("stderr %q, want one line", errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(lines[0], w) {
					t.Errorf("stderr %q lacks %q", errOut, w)
				}
			}
			if out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
		})
	}
}

// cancelOnWrite is a writer that cancels a context once it is written a
// line containing trigger.
type cancelOnWrite struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	trigger string
	cancel  context.CancelFunc
}

func (w *cancelOnWrite) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if bytes.Contains(p, []byte(w.trigger)) {
		w.cancel()
	}
	return w.buf.Write(p)
}

func (w *cancelOnWrite) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func TestAnInterruptedStudyResumes(t *testing.T) {
	t.Parallel()
	url, spec := newStudyEnv(t, strings.Replace(smallSpec, "trials: 4", "trials: 6", 1))
	mustRun(t, "study", "create", "resumable", "--spec", spec, "--storage", url)

	// Cancel the command's context, as the first Ctrl-C does, once a trial
	// is done.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out bytes.Buffer
	errOut := &cancelOnWrite{trigger: " complete value ", cancel: cancel}
	code := run(ctx, []string{"study", "optimize", "resumable", "--workers", "1", "--metrics-addr", "", "--storage", url}, &out, errOut)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if !strings.Contains(errOut.String(), `study "resumable" was interrupted; resume it with: floodtune study optimize resumable --storage `) {
		t.Fatalf("stderr lacks the line on resuming:\n%s", errOut)
	}
	if !strings.Contains(out.String(), `study "resumable"`) || strings.Contains(out.String(), "6 complete") {
		t.Fatalf("the summary after an interruption:\n%s", out.String())
	}

	// The same command finishes the budget; a trial given back does not
	// count toward it.
	stdout, _ := mustRun(t, "study", "optimize", "resumable", "--workers", "1", "--metrics-addr", "", "--storage", url)
	if !strings.Contains(stdout, "trials: 6 of budget 6 counted; 6 complete") {
		t.Fatalf("after resuming:\n%s", stdout)
	}
}

func TestASecondSignalStopsAtOnce(t *testing.T) {
	t.Parallel()
	sigs := make(chan os.Signal, 2)
	stop := make(chan struct{})
	var got []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		watchSignals(sigs, stop,
			func(s os.Signal) { got = append(got, "first "+s.String()) },
			func(s os.Signal) { got = append(got, "second "+s.String()) })
	}()
	sigs <- os.Interrupt
	sigs <- syscall.SIGTERM
	for len(sigs) > 0 {
		time.Sleep(time.Millisecond)
	}
	close(stop)
	<-done
	if strings.Join(got, ", ") != "first interrupt, second terminated" {
		t.Fatalf("handled %v", got)
	}
}

// TestCLIProcess is the floodtune process of TestSIGINTGivesTheTrialsBack:
// it runs main() when FLOODTUNE_TEST_ARGS is set, and does nothing
// otherwise.
func TestCLIProcess(t *testing.T) {
	raw := os.Getenv("FLOODTUNE_TEST_ARGS")
	if raw == "" {
		return
	}
	var args []string
	if err := json.Unmarshal([]byte(raw), &args); err != nil {
		t.Fatal(err)
	}
	os.Args = append([]string{"floodtune"}, args...)
	main()
}

func TestSIGINTGivesTheTrialsBack(t *testing.T) {
	t.Parallel()
	// Enough trials that the budget is not spent before the signal.
	url, spec := newStudyEnv(t, strings.Replace(smallSpec, "trials: 4", "trials: 5000", 1))
	mustRun(t, "study", "create", "long", "--spec", spec, "--storage", url)

	args, _ := json.Marshal([]string{"study", "optimize", "long", "--workers", "2", "--metrics-addr", "", "--storage", url})
	cmd := exec.Command(os.Args[0], "-test.run=^TestCLIProcess$")
	cmd.Env = append(os.Environ(), "FLOODTUNE_TEST_ARGS="+string(args))
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(20*time.Second, func() { _ = cmd.Process.Kill() })
	defer timer.Stop()
	var lines []string
	signalled := false
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if strings.Contains(sc.Text(), " complete value ") && !signalled {
			signalled = true
			if err := cmd.Process.Signal(os.Interrupt); err != nil {
				t.Fatal(err)
			}
		}
	}
	_, _ = io.Copy(io.Discard, stderr)
	err = cmd.Wait()
	all := strings.Join(lines, "\n")
	if err != nil {
		t.Fatalf("the process ended with %v; stderr:\n%s", err, all)
	}
	if !strings.Contains(all, "giving the running trials back") || !strings.Contains(all, `study "long" was interrupted; resume it with`) {
		t.Fatalf("stderr:\n%s", all)
	}
	if !strings.Contains(stdout.String(), " 0 running") {
		t.Fatalf("trials still running after the interruption:\n%s\nstderr:\n%s", stdout.String(), all)
	}
}
