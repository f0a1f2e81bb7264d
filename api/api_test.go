package api_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/floodtune/floodtune/client"
	"github.com/floodtune/floodtune/storage"
)

// externalSpec is a study whose trials its clients train themselves.
const externalSpec = `trainer: external
search: {trials: %d, seed: 7, pruner: %s}
space:
  flood_level: {type: float, low: 0.0, high: 1.0}
  lr: {type: float, low: 0.001, high: 0.1, log: true}
  optimizer: {type: categorical, choices: [sgd, adam]}
`

// newClient is a Go client of e's service whose every request and answer
// is checked against the OpenAPI document.
func (e *env) client(t *testing.T, token string) *client.Client {
	t.Helper()
	c, err := client.New(e.http.URL, token, client.WithHTTPClient(&http.Client{Transport: newConformance(t, false)}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// createStudy creates a study of budget trials with the pruner and returns
// a worker token of it.
func (e *env) createStudy(t *testing.T, name string, budget int, pruner string) string {
	t.Helper()
	if _, err := e.client(t, e.admin).CreateStudy(t.Context(), name, fmt.Sprintf(externalSpec, budget, pruner)); err != nil {
		t.Fatal(err)
	}
	return e.token(t, name+"-worker", storage.ScopeWorker, name)
}

// objective is the clients' stand-in for training: best at flood level 0.3.
func objective(level float64, epoch int) float64 {
	return float64(epoch)/10 - (level-0.3)*(level-0.3)
}

func TestAStudyRunsToItsBudgetThroughTheService(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	worker := e.createStudy(t, "four-clients", 12, "none")
	ctx := t.Context()
	var wg sync.WaitGroup
	var mu sync.Mutex
	told := map[int]float64{}
	for i := range 4 {
		wg.Go(func() {
			c := e.client(t, worker)
			for {
				tr, err := c.Ask(ctx, "four-clients", fmt.Sprint("client-", i))
				if errors.Is(err, client.ErrExhausted) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				if tr.Config != nil || (tr.FloodMethod != "flood" && tr.FloodMethod != "none") || tr.Token == "" || tr.Deadline.IsZero() {
					t.Errorf("trial %d: config %s, method %q, lease %q until %v", tr.Number, tr.Config, tr.FloodMethod, tr.Token, tr.Deadline)
				}
				var v float64
				for epoch := 1; epoch <= 3; epoch++ {
					v = objective(tr.FloodLevel, epoch)
					if prune, err := tr.Report(ctx, epoch, v); err != nil || prune {
						t.Errorf("trial %d, epoch %d: prune %v, %v", tr.Number, epoch, prune, err)
					}
				}
				if err := tr.Heartbeat(ctx); err != nil {
					t.Error(err)
				}
				rec, err := tr.Tell(ctx, v, map[string]string{"client": fmt.Sprint(i)})
				if err != nil {
					t.Error(err)
					return
				}
				if rec.State != "complete" || float64(rec.Value) != v || rec.UserAttrs["client"] != fmt.Sprint(i) {
					t.Errorf("tell's answer: %+v", rec)
				}
				mu.Lock()
				if _, dup := told[tr.Number]; dup {
					t.Errorf("trial %d leased twice", tr.Number)
				}
				told[tr.Number] = v
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(told) != 12 {
		t.Fatalf("%d trials told, want the budget of 12", len(told))
	}
	c := e.client(t, e.read)
	s, err := c.Study(ctx, "four-clients")
	if err != nil {
		t.Fatal(err)
	}
	if s.Counted != 12 || s.Counts["complete"] != 12 || s.Budget != 12 || s.Direction != "maximize" {
		t.Errorf("study: counted %d, counts %v, budget %d, direction %s", s.Counted, s.Counts, s.Budget, s.Direction)
	}
	if s.Baseline == nil || !s.Baseline.Baseline || s.Baseline.Params["flood_level"] != 0.0 {
		t.Errorf("baseline %+v", s.Baseline)
	}
	best := math.Inf(-1)
	for _, v := range told {
		best = max(best, v)
	}
	if s.Best == nil || float64(s.Best.Value) != best {
		t.Errorf("best %+v, want value %v", s.Best, best)
	}
	// Pages of five, then the rest.
	var numbers []int
	after := -1
	for range 4 {
		status, body, _ := e.do(t, "GET", fmt.Sprintf("/v1/studies/four-clients/trials?limit=5&after=%d", after), e.read, nil, false)
		var page struct {
			Trials    []client.Trial `json:"trials"`
			NextAfter *int           `json:"next_after"`
		}
		if status != 200 || json.Unmarshal([]byte(body), &page) != nil {
			t.Fatalf("page after %d: %d %s", after, status, body)
		}
		for _, tr := range page.Trials {
			numbers = append(numbers, tr.Number)
			if len(tr.Intermediate) != 3 || float64(tr.Intermediate["3"]) != told[tr.Number] {
				t.Errorf("trial %d: intermediate %v, told %v", tr.Number, tr.Intermediate, told[tr.Number])
			}
		}
		if page.NextAfter == nil {
			break
		}
		after = *page.NextAfter
	}
	if !slices.Equal(numbers, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}) {
		t.Errorf("trial numbers over the pages: %v", numbers)
	}
	all, err := c.Trials(ctx, "four-clients", "complete")
	if err != nil || len(all) != 12 {
		t.Errorf("Trials: %d, %v", len(all), err)
	}
}

func TestAWorkerWhoseLeaseRanOutIsRefusedAndTheRetryStands(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	worker := e.createStudy(t, "fenced", 3, "none")
	ctx := t.Context()
	slow, fast := e.client(t, worker), e.client(t, worker)
	lost, err := slow.Ask(ctx, "fenced", "slow")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lost.Report(ctx, 1, 0.5); err != nil {
		t.Fatal(err)
	}
	// The slow worker's lease runs out (as if it had stopped renewing
	// it for longer than the lease): the reaper fails the trial and
	// enqueues its retry.
	reaped, err := e.st.Reap(ctx, 0, 2)
	if err != nil || len(reaped) != 1 {
		t.Fatalf("reaped %v, %v", reaped, err)
	}
	for name, call := range map[string]func() error{
		"report":    func() error { _, err := lost.Report(ctx, 2, 0.6); return err },
		"heartbeat": func() error { return lost.Heartbeat(ctx) },
		"tell":      func() error { _, err := lost.Tell(ctx, 0.9, nil); return err },
		"prune":     func() error { _, err := lost.Prune(ctx, nil); return err },
		"fail":      func() error { _, err := lost.Fail(ctx, "gave up", nil); return err },
	} {
		var ae *client.Error
		if err := call(); !errors.Is(err, client.ErrLeaseLost) || !errors.As(err, &ae) || ae.Status != 409 {
			t.Errorf("%s after the reap: %v, want 409 lease_lost", name, err)
		}
	}
	retry, err := fast.Ask(ctx, "fenced", "fast")
	if err != nil {
		t.Fatal(err)
	}
	if retry.Attempt != 1 || retry.FloodLevel != lost.FloodLevel || retry.Seed == 0 || fmt.Sprint(retry.Params) != fmt.Sprint(lost.Params) {
		t.Errorf("the retry: attempt %d, level %v, params %v; the lost trial's level %v, params %v", retry.Attempt, retry.FloodLevel, retry.Params, lost.FloodLevel, lost.Params)
	}
	if _, err := retry.Tell(ctx, 0.7, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := lost.Tell(ctx, 0.9, nil); !errors.Is(err, client.ErrLeaseLost) {
		t.Errorf("the lost worker's tell after the retry's: %v", err)
	}
	trials, err := fast.Trials(ctx, "fenced", "")
	if err != nil {
		t.Fatal(err)
	}
	var states []string
	for _, tr := range trials {
		states = append(states, fmt.Sprintf("%d:%s:%v", tr.Number, tr.State, float64(tr.Value)))
	}
	want := []string{fmt.Sprintf("%d:fail:NaN", lost.Number), fmt.Sprintf("%d:complete:0.7", retry.Number)}
	if lost.Number != 0 { // the baseline is trial 0 and was asked first
		t.Fatalf("the first ask leased trial %d, want the baseline, 0", lost.Number)
	}
	if !slices.Equal(states, want) {
		t.Errorf("trials %v, want %v", states, want)
	}
	if !strings.HasPrefix(trials[0].FailReason, "lease expired") {
		t.Errorf("the reaped trial's reason: %q", trials[0].FailReason)
	}
}

func TestATellRepeatedAfterALostAnswerRecordsOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	worker := e.createStudy(t, "retold", 4, "none")
	ctx := t.Context()
	c := e.client(t, worker)
	for _, outcome := range []string{"complete", "pruned", "fail", "nan"} {
		tr, err := c.Ask(ctx, "retold", "w")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tr.Report(ctx, 1, 0.25); err != nil {
			t.Fatal(err)
		}
		tell := func() (*client.Trial, error) {
			switch outcome {
			case "complete":
				return tr.Tell(ctx, 0.5, map[string]string{"k": "v"})
			case "pruned":
				return tr.Prune(ctx, map[string]string{"k": "v"})
			case "nan":
				return tr.Tell(ctx, math.NaN(), map[string]string{"k": "v"})
			}
			return tr.Fail(ctx, "out of memory", map[string]string{"k": "v"})
		}
		first, err := tell()
		if err != nil {
			t.Fatalf("%s: %v", outcome, err)
		}
		again, err := tell()
		if err != nil {
			t.Errorf("%s told again (its first answer lost): %v", outcome, err)
		} else if fmt.Sprint(*first) != fmt.Sprint(*again) {
			t.Errorf("%s: the repeated tell answered\n%+v\nnot\n%+v", outcome, *again, *first)
		}
		wantState := map[string]string{"complete": "complete", "pruned": "pruned", "fail": "fail", "nan": "fail"}[outcome]
		if first.State != wantState || first.UserAttrs["k"] != "v" {
			t.Errorf("%s: recorded as %s with attrs %v", outcome, first.State, first.UserAttrs)
		}
		// Another outcome under the same lease is refused.
		if _, err := tr.Tell(ctx, 0.99, nil); outcome != "complete" && !errors.Is(err, client.ErrLeaseLost) {
			t.Errorf("%s, then told complete 0.99: %v, want lease_lost", outcome, err)
		} else if outcome == "complete" && !errors.Is(err, client.ErrLeaseLost) {
			t.Errorf("complete 0.5, then complete 0.99: %v, want lease_lost", err)
		}
	}
	s, err := c.Study(ctx, "retold")
	if err != nil {
		t.Fatal(err)
	}
	if s.Counted != 4 || s.Counts["complete"] != 1 || s.Counts["pruned"] != 1 || s.Counts["fail"] != 2 || s.Counts["waiting"] != 0 {
		t.Errorf("counted %d, counts %v", s.Counted, s.Counts)
	}
}

func TestTheStudysPrunerAnswersReports(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	worker := e.createStudy(t, "pruned", 10, "median")
	ctx := t.Context()
	c := e.client(t, worker)
	for range 6 {
		tr, err := c.Ask(ctx, "pruned", "w")
		if err != nil {
			t.Fatal(err)
		}
		for epoch := 1; epoch <= 3; epoch++ {
			if _, err := tr.Report(ctx, epoch, 0.8); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := tr.Tell(ctx, 0.8, nil); err != nil {
			t.Fatal(err)
		}
	}
	good, err := c.Ask(ctx, "pruned", "w")
	if err != nil {
		t.Fatal(err)
	}
	if prune, err := good.Report(ctx, 1, 0.9); err != nil || prune {
		t.Errorf("a report above the median: prune %v, %v", prune, err)
	}
	bad, err := c.Ask(ctx, "pruned", "w")
	if err != nil {
		t.Fatal(err)
	}
	prune, err := bad.Report(ctx, 1, 0.1)
	if err != nil || !prune {
		t.Fatalf("a report far below the median: prune %v, %v", prune, err)
	}
	rec, err := bad.Prune(ctx, nil)
	if err != nil || rec.State != "pruned" || float64(rec.Value) != 0.1 {
		t.Errorf("pruned: %+v, %v", rec, err)
	}
}

func TestAskSaysWhenTheBudgetIsSpent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	worker := e.createStudy(t, "spent", 1, "none")
	status, body, _ := e.do(t, "POST", "/v1/studies/spent/ask", worker, `{}`, false)
	var asked struct {
		Trial struct{ Number int }   `json:"trial"`
		Lease struct{ Token string } `json:"lease"`
	}
	if status != 200 || json.Unmarshal([]byte(body), &asked) != nil || asked.Lease.Token == "" {
		t.Fatalf("first ask: %d %s", status, body)
	}
	// Spent, but the trial still runs and may yet be retried: wait.
	status, body, _ = e.do(t, "POST", "/v1/studies/spent/ask", worker, nil, false)
	if status != 200 || !strings.Contains(body, `"status":"wait"`) || !strings.Contains(body, `"retry_after":`) {
		t.Errorf("ask while the last trial runs: %d %s", status, body)
	}
	status, body, _ = e.do(t, "POST", fmt.Sprintf("/v1/studies/spent/trials/%d/tell", asked.Trial.Number), worker,
		`{"lease":"`+asked.Lease.Token+`","state":"complete","value":0.5}`, false)
	if status != 200 {
		t.Fatalf("tell: %d %s", status, body)
	}
	for range 2 {
		status, body, _ = e.do(t, "POST", "/v1/studies/spent/ask", worker, nil, false)
		if status != 200 || strings.TrimSpace(body) != `{"status":"exhausted"}` {
			t.Errorf("ask past the budget, every trial ended: %d %s", status, body)
		}
	}
}

func TestTheDocumentIsValidAndServed(t *testing.T) {
	t.Parallel()
	if _, err := theDoc(); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	status, body, h := e.do(t, "GET", "/v1/openapi.yaml", e.read, nil, false)
	if status != 200 || body != string(apiDoc()) || h.Get("Content-Type") != "application/yaml" {
		t.Errorf("GET /v1/openapi.yaml: %d, %s, %d bytes", status, h.Get("Content-Type"), len(body))
	}
}

func TestMetricsNeedAReadToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withMetrics)
	e.createStudy(t, "watched", 3, "none")
	status, body, _ := e.do(t, "GET", "/metrics", e.read, nil, false)
	if status != 200 || !strings.Contains(body, `floodtune_study_trials{state="waiting",study="watched"} 1`) {
		t.Errorf("GET /metrics with a read token: %d\n%s", status, body)
	}
	worker := e.token(t, "w", storage.ScopeWorker, "watched")
	for token, want := range map[string]int{"": 401, worker: 403} {
		if status, _, _ := e.do(t, "GET", "/metrics", token, nil, false); status != want {
			t.Errorf("GET /metrics with token %q: %d, want %d", token, status, want)
		}
	}
}

func TestAReleasedTrialIsRunAgainWithItsParameters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	worker := e.createStudy(t, "released", 2, "none")
	ctx := t.Context()
	c := e.client(t, worker)
	first, err := c.Ask(ctx, "released", "stopping")
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second as if the first answer was lost
		rec, err := first.Release(ctx)
		if err != nil || rec.State != "fail" || !strings.Contains(rec.FailReason, "given back") {
			t.Fatalf("release: %+v, %v", rec, err)
		}
	}
	retry, err := c.Ask(ctx, "released", "next")
	if err != nil {
		t.Fatal(err)
	}
	if retry.Attempt != 1 || retry.FloodLevel != first.FloodLevel || retry.Baseline != first.Baseline {
		t.Errorf("the retry: attempt %d, level %v, baseline %v; released: level %v, baseline %v", retry.Attempt, retry.FloodLevel, retry.Baseline, first.FloodLevel, first.Baseline)
	}
	if _, err := first.Tell(ctx, 1, nil); !errors.Is(err, client.ErrLeaseLost) {
		t.Errorf("a tell after the release: %v", err)
	}
	s, err := c.Study(ctx, "released")
	if err != nil {
		t.Fatal(err)
	}
	if s.Counted != 1 || s.Counts["running"] != 1 || s.Counts["fail"] != 1 {
		t.Errorf("counted %d, counts %v: the released trial counts once", s.Counted, s.Counts)
	}
}

func TestStudiesAreCreatedListedAndDeleted(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	admin := e.client(t, e.admin)
	spec := map[string]any{
		"trainer": "external",
		"search":  map[string]any{"trials": 3, "baseline": false},
		"space":   map[string]any{"flood_level": map[string]any{"type": "float", "low": 0, "high": 0.5}},
	}
	s, err := admin.CreateStudy(ctx, "from-json", spec)
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "from-json" || s.Budget != 3 || s.Counted != 0 || s.Baseline != nil || !strings.Contains(string(s.Spec), `"flood_level"`) {
		t.Errorf("created: %+v", s)
	}
	if _, err := admin.CreateStudy(ctx, "from-yaml", "trainer: external\nsearch: {trials: 2}\nspace: {flood_level: {type: float, low: 0, high: 1}}"); err != nil {
		t.Fatal(err)
	}
	worker := e.token(t, "yaml-worker", storage.ScopeWorker, "from-yaml")
	for token, want := range map[string][]string{e.read: {"from-json", "from-yaml"}, worker: {"from-yaml"}} {
		list, err := e.client(t, token).Studies(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range list {
			names = append(names, s.Name)
		}
		if !slices.Equal(names, want) {
			t.Errorf("token %s lists %v, want %v", token[:8], names, want)
		}
	}
	if err := admin.DeleteStudy(ctx, "from-json"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Study(ctx, "from-json"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("a deleted study: %v", err)
	}
	if err := admin.DeleteStudy(ctx, "from-json"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("deleted twice: %v", err)
	}
	// Deleting a study revokes its worker tokens with it.
	if err := admin.DeleteStudy(ctx, "from-yaml"); err != nil {
		t.Fatal(err)
	}
	if status, _, _ := e.do(t, "GET", "/v1/studies", worker, nil, false); status != 401 {
		t.Errorf("the worker token of a deleted study: %d, want 401", status)
	}
}

// A study deleted and created again under its name elsewhere (the CLI,
// another replica) is found again by the worker calls, which this replica
// serves from a handle it keeps for a while.
func TestAStudyRecreatedElsewhereIsFoundAgain(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	e.createStudy(t, "again", 3, "none")
	admin := e.client(t, e.admin)
	tr, err := admin.Ask(ctx, "again", "w")
	if err != nil {
		t.Fatal(err)
	}
	old, err := e.st.StudyByName(ctx, "again")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.st.DeleteStudy(ctx, old.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Report(ctx, 1, 0.5); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("a report to a deleted study: %v", err)
	}
	if _, err := admin.CreateStudy(ctx, "again", fmt.Sprintf(externalSpec, 3, "none")); err != nil {
		t.Fatal(err)
	}
	tr2, err := admin.Ask(ctx, "again", "w")
	if err != nil {
		t.Fatalf("ask in the study created again: %v", err)
	}
	if _, err := tr2.Tell(ctx, 0.5, nil); err != nil {
		t.Fatal(err)
	}
	s, err := admin.Study(ctx, "again")
	if err != nil || s.Counts["complete"] != 1 {
		t.Errorf("the new study: %+v, %v", s, err)
	}
}
