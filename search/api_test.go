package search_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/c-bata/goptuna"
	"github.com/floodtune/floodtune/search"
	"github.com/floodtune/floodtune/storage"
)

// externalSpec is a study whose trials a Go program trains itself.
const externalSpec = `
trainer: external
search: {sampler: %s, trials: %d, seed: 5, baseline: false}
space:
  flood_level: {type: float, low: 0.0, high: 1.0}
  lr: {type: float, low: 0.001, high: 0.1, log: true}
  optimizer: {type: categorical, choices: [sgd, adam]}
  width: {type: int, low: 8, high: 64, step: 8}
`

func createExternal(t *testing.T, st *storage.Store, name, sampler string, budget int) *search.Study {
	t.Helper()
	spec, err := search.ParseSpec(fmt.Appendf(nil, externalSpec, sampler, budget))
	if err != nil {
		t.Fatal(err)
	}
	s, err := search.Create(context.Background(), st, name, spec)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// paramKey is a trial's parameters as comparable text, the internal values
// exactly.
func paramKey(t *storage.Trial) string {
	return fmt.Sprint(t.Params)
}

// sampled returns the trials whose parameters a sampler proposed: neither
// enqueued (the baseline, study enqueue) nor retries of another.
func sampled(trials []*storage.Trial) []*storage.Trial {
	var out []*storage.Trial
	for _, t := range trials {
		if _, enqueued := t.SystemAttrs[storage.FixedParamsAttr]; !enqueued && t.RetryOf == 0 {
			out = append(out, t)
		}
	}
	return out
}

// checkDistinct fails when two sampled trials share their parameters.
func checkDistinct(t *testing.T, trials []*storage.Trial) {
	t.Helper()
	seen := map[string]int{}
	for _, tr := range sampled(trials) {
		k := paramKey(tr)
		if prev, ok := seen[k]; ok {
			t.Errorf("trials %d and %d were both proposed with %s", prev, tr.Number, k)
		}
		seen[k] = tr.Number
	}
}

func TestAskLeasesTrialsWithinTheBudgetAndTellRecordsThem(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openSQLite(t)
	s := createExternal(t, st, "asked", "random", 3)
	var asked []*search.Trial
	for i := range 3 {
		tr, err := s.Ask(ctx, search.AskOptions{})
		if err != nil {
			t.Fatalf("ask %d: %v", i, err)
		}
		asked = append(asked, tr)
	}
	if _, err := s.Ask(ctx, search.AskOptions{}); !errors.Is(err, search.ErrBudgetExhausted) {
		t.Fatalf("a fourth ask on a budget of 3: %v, want ErrBudgetExhausted", err)
	}
	workers := map[string]bool{}
	for i, tr := range asked {
		workers[tr.Worker()] = true
		if tr.Number != i {
			t.Errorf("ask %d leased trial %d", i, tr.Number)
		}
		if _, ok := tr.Params["optimizer"].(string); !ok {
			t.Errorf("trial %d: optimizer %#v, want a choice", tr.Number, tr.Params["optimizer"])
		}
		if w, ok := tr.Params["width"].(int); !ok || w%8 != 0 {
			t.Errorf("trial %d: width %#v, want an int on the step grid", tr.Number, tr.Params["width"])
		}
		if tr.FloodLevel() != tr.Params["flood_level"] {
			t.Errorf("trial %d: FloodLevel %v, params %v", tr.Number, tr.FloodLevel(), tr.Params["flood_level"])
		}
		if err := tr.Report(ctx, 1, 0.5); err != nil {
			t.Fatal(err)
		}
		tr.Attrs["note"] = "told"
	}
	if len(workers) != 3 {
		t.Errorf("the three asks leased under %d worker names, want one each: %v", len(workers), workers)
	}
	if err := asked[0].Tell(ctx, 0.9); err != nil {
		t.Fatal(err)
	}
	if err := asked[1].Prune(ctx); err != nil {
		t.Fatal(err)
	}
	if err := asked[2].Fail(ctx, errors.New("out of memory")); err != nil {
		t.Fatal(err)
	}
	if err := asked[0].Tell(ctx, 0.1); !errors.Is(err, search.ErrTrialFinished) {
		t.Errorf("a second tell: %v, want ErrTrialFinished", err)
	}
	trials, err := s.Trials(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		state  storage.State
		value  float64
		reason string
	}{{storage.Complete, 0.9, ""}, {storage.Pruned, 0.5, ""}, {storage.Fail, math.NaN(), "out of memory"}}
	for i, w := range want {
		got := trials[i]
		if got.State != w.state || !(got.Value == w.value || math.IsNaN(w.value) && math.IsNaN(got.Value)) || got.FailReason != w.reason {
			t.Errorf("trial %d: %s %v %q, want %s %v %q", i, got.State, got.Value, got.FailReason, w.state, w.value, w.reason)
		}
		if got.UserAttrs["note"] != "told" || got.Intermediate[1] != 0.5 {
			t.Errorf("trial %d: attrs %v, intermediate %v", i, got.UserAttrs, got.Intermediate)
		}
		if got.Params["optimizer"] != asked[i].Params["optimizer"] || got.Params["width"] != asked[i].Params["width"] {
			t.Errorf("trial %d read back with %v, leased with %v", i, got.Params, asked[i].Params)
		}
	}
	best, err := s.BestParams(ctx)
	if err != nil || best["width"] != asked[0].Params["width"] {
		t.Errorf("best params %v (%v), want trial 0's %v", best, err, asked[0].Params)
	}
}

// A trial whose lease ran out is reaped by the next Ask, which leases its
// retry with the same parameters; the first holder's writes are refused.
func TestAReapedTrialRefusesItsWorkerAndIsRetriedWithItsParameters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openSQLite(t)
	s := createExternal(t, st, "reaped", "tpe", 5)
	first, err := s.Ask(ctx, search.AskOptions{Heartbeat: -1})
	if err != nil {
		t.Fatal(err)
	}
	own, err := first.SuggestFloat("dropout", 0, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	// The lease is judged by the database's clock: wait longer than the
	// next ask's lease.
	time.Sleep(300 * time.Millisecond)
	retry, err := s.Ask(ctx, search.AskOptions{Lease: 100 * time.Millisecond, Heartbeat: -1})
	if err != nil {
		t.Fatal(err)
	}
	// Messages name trials by number, and a database id as an id.
	stored, err := st.TrialByNumber(ctx, s.ID(), first.Number)
	if err != nil {
		t.Fatal(err)
	}
	msg := first.Report(ctx, 2, 0.3).Error()
	asNumber := func(n int64) bool {
		return strings.Contains(msg, fmt.Sprintf("trial %d:", n)) || strings.Contains(msg, fmt.Sprintf("trial %d ", n))
	}
	if !asNumber(int64(first.Number)) || !strings.Contains(msg, fmt.Sprintf("trial id %d ", stored.ID)) || asNumber(stored.ID) {
		t.Errorf("the late tell's error mixes trial %d's number with its id %d: %s", first.Number, stored.ID, msg)
	}
	for _, check := range []struct {
		what string
		err  error
	}{
		{"report", first.Report(ctx, 1, 0.3)},
		{"heartbeat", first.Heartbeat(ctx)},
		{"tell", first.Tell(ctx, 0.3)},
	} {
		if !errors.Is(check.err, search.ErrLeaseLost) {
			t.Errorf("%s after the trial was reaped: %v, want ErrLeaseLost", check.what, check.err)
		}
	}
	if retry.Number == first.Number {
		t.Fatalf("the retry has the number %d of the trial it retries", retry.Number)
	}
	for name := range s.Spec().Space {
		if v := first.Params[name]; retry.Params[name] != v {
			t.Errorf("the retry's %s is %v, the reaped trial's %v", name, retry.Params[name], v)
		}
	}
	again, err := retry.SuggestFloat("dropout", 0, 0.5)
	if err != nil || again != own {
		t.Errorf("the retry's suggested dropout %v (%v), the reaped trial's %v", again, err, own)
	}
	if err := retry.Tell(ctx, 0.7); err != nil {
		t.Fatal(err)
	}
	rec, err := s.Trial(ctx, retry.Number)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Attempt != 1 || rec.RetryOf != first.Number || rec.State != storage.Complete {
		t.Errorf("the retry reads back as attempt %d of trial %d, %s; want attempt 1 of %d, complete", rec.Attempt, rec.RetryOf, rec.State, first.Number)
	}
	if orig, _ := s.Trial(ctx, first.Number); orig.State != storage.Fail || !strings.Contains(orig.FailReason, "lease") {
		t.Errorf("the reaped trial reads back %s %q", orig.State, orig.FailReason)
	}
}

func TestSuggestionsAreDefineByRunAndConsistent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openSQLite(t)
	s := createExternal(t, st, "suggest", "tpe", 4)
	tr, err := s.Ask(ctx, search.AskOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Tell(ctx, 0)
	d1, err := tr.SuggestFloat("dropout", 0, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	if d2, err := tr.SuggestFloat("dropout", 0, 0.5); err != nil || d2 != d1 {
		t.Errorf("a second suggestion of dropout: %v (%v), want the first's %v", d2, err, d1)
	}
	if _, err := tr.SuggestFloat("dropout", 0, 0.9); err == nil {
		t.Error("dropout suggested again over another range: no error")
	}
	if lr, err := tr.SuggestFloat("lr", 0.001, 0.1, search.Log()); err != nil || lr != tr.Params["lr"] {
		t.Errorf("the spec's lr suggested with its own range: %v (%v), want the sampled %v", lr, err, tr.Params["lr"])
	}
	if _, err := tr.SuggestFloat("lr", 0.001, 0.1); err == nil {
		t.Error("the spec's lr suggested without its log scale: no error")
	}
	layers, err := tr.SuggestInt("layers", 1, 4)
	if err != nil || layers < 1 || layers > 4 {
		t.Errorf("layers %d (%v)", layers, err)
	}
	act, err := tr.SuggestCategorical("activation", []string{"relu", "tanh"})
	if err != nil || (act != "relu" && act != "tanh") {
		t.Errorf("activation %q (%v)", act, err)
	}
	for _, bad := range []func() error{
		func() error { _, err := tr.SuggestFloat("bad name!", 0, 1); return err },
		func() error { _, err := tr.SuggestFloat("inverted", 1, 0); return err },
		func() error { _, err := tr.SuggestFloat("loggy", 0, 1, search.Log()); return err },
		func() error { _, err := tr.SuggestCategorical("none", nil); return err },
	} {
		if bad() == nil {
			t.Error("a bad suggestion was accepted")
		}
	}
	if err := tr.Tell(ctx, 0.5); err != nil {
		t.Fatal(err)
	}
	rec, err := s.Trial(ctx, tr.Number)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Params["dropout"] != d1 || rec.Params["layers"] != layers || rec.Params["activation"] != act {
		t.Errorf("read back %v; suggested dropout %v, layers %v, activation %v", rec.Params, d1, layers, act)
	}
	if _, err := tr.SuggestFloat("later", 0, 1); !errors.Is(err, search.ErrTrialFinished) {
		t.Errorf("a suggestion after tell: %v, want ErrTrialFinished", err)
	}
}

// Calls of Optimize one after another on one study (a resumed study) each
// run their share and never repeat a proposal; two at once in one program
// neither.
func TestOptimizeCallsNeverRepeatEachOthersProposals(t *testing.T) {
	t.Parallel()
	for _, sampler := range []string{"random", "tpe", "cmaes"} {
		t.Run(sampler, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			st := openSQLite(t)
			s := createExternal(t, st, "resumed", sampler, 24)
			obj := func(ctx context.Context, tr *search.Trial) (float64, error) {
				return -math.Abs(tr.FloodLevel()-0.4) - math.Abs(math.Log10(tr.Params["lr"].(float64))+2), nil
			}
			if err := s.Optimize(ctx, search.Options{Workers: 1, MaxTrials: 6, Objective: obj}); err != nil {
				t.Fatal(err)
			}
			counts, _, _ := s.Counts(ctx)
			if counts[storage.Complete] != 6 {
				t.Fatalf("MaxTrials 6 ran %v", counts)
			}
			again, err := search.Load(ctx, st, "resumed")
			if err != nil {
				t.Fatal(err)
			}
			if err := again.Optimize(ctx, search.Options{Workers: 1, MaxTrials: 6, Objective: obj}); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for i := range 2 {
				wg.Go(func() { errs[i] = search.Optimize(ctx, st, "resumed", search.Options{Workers: 2, Objective: obj}) })
			}
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				t.Fatal(err)
			}
			trials, err := st.Trials(ctx, s.ID())
			if err != nil {
				t.Fatal(err)
			}
			if len(trials) != 24 {
				t.Fatalf("%d trials, want the budget of 24", len(trials))
			}
			checkDistinct(t, trials)
			// Each call names its workers afresh.
			prefix := func(tr *storage.Trial) string { return tr.Worker[:strings.LastIndex(tr.Worker, "/")] }
			if a, b := prefix(trials[0]), prefix(trials[6]); a == b {
				t.Errorf("two Optimize calls ran under one worker name %q", a)
			}
			calls := map[string]bool{}
			for _, tr := range trials {
				calls[prefix(tr)] = true
			}
			// The two calls at once share the last 12 trials as they
			// come: one of them may run none.
			if len(calls) < 3 {
				t.Errorf("the Optimize calls ran under %d worker names: %v", len(calls), calls)
			}
		})
	}
}

// The same spec and study seed propose the same parameters for a trial
// number with the random sampler, however the trials were spread over
// calls and workers.
func TestRandomProposalsAreAFunctionOfTheStudySeedAndTrialNumber(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	obj := func(ctx context.Context, tr *search.Trial) (float64, error) { return tr.FloodLevel(), nil }
	run := func(calls, workers int) []string {
		st := openSQLite(t)
		s := createExternal(t, st, "seeded", "random", 12)
		for range calls {
			if err := s.Optimize(ctx, search.Options{Workers: workers, MaxTrials: 12 / calls, Objective: obj}); err != nil {
				t.Fatal(err)
			}
		}
		trials, err := st.Trials(ctx, s.ID())
		if err != nil {
			t.Fatal(err)
		}
		out := make([]string, len(trials))
		for i, tr := range trials {
			out[i] = paramKey(tr)
		}
		return out
	}
	one, spread := run(1, 1), run(3, 2)
	for i := range one {
		if one[i] != spread[i] {
			t.Errorf("trial %d: %s in one call of one worker, %s in three calls of two", i, one[i], spread[i])
		}
	}
}

func TestOptimizeStopsStartingTrialsAtItsTimeout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openSQLite(t)
	s := createExternal(t, st, "timed", "random", 50)
	obj := func(ctx context.Context, tr *search.Trial) (float64, error) {
		time.Sleep(50 * time.Millisecond)
		return 1, nil
	}
	if err := s.Optimize(ctx, search.Options{Workers: 1, Timeout: time.Millisecond, Objective: obj}); err != nil {
		t.Fatal(err)
	}
	counts, _, _ := s.Counts(ctx)
	if n := counts[storage.Complete]; n > 1 || counts[storage.Running] > 0 {
		t.Errorf("a 1 ms timeout with 50 ms trials ran %v, want at most the one trial started in time, finished", counts)
	}
}

// A study made through the Goptuna adapter has no spec and no budget: it
// reads as an external trainer's, Optimize refuses to run it without a
// limit, and runs it with one, its objective suggesting every parameter.
func TestAStudyWithoutABudgetNeedsALimit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openSQLite(t)
	if _, err := goptuna.CreateStudy("goptuna-made", goptuna.StudyOptionStorage(storage.NewGoptuna(ctx, st, "setup")),
		goptuna.StudyOptionDirection(goptuna.StudyDirectionMinimize), goptuna.StudyOptionLogger(nil)); err != nil {
		t.Fatal(err)
	}
	s, err := search.Load(ctx, st, "goptuna-made")
	if err != nil {
		t.Fatal(err)
	}
	if !s.Spec().External() || s.Direction() != storage.Minimize || s.Budget() != 0 {
		t.Fatalf("external %v, direction %s, budget %d", s.Spec().External(), s.Direction(), s.Budget())
	}
	obj := func(ctx context.Context, tr *search.Trial) (float64, error) {
		x, err := tr.SuggestFloat("x", -5, 5)
		return x * x, err
	}
	done := make(chan error, 1)
	go func() { done <- s.Optimize(ctx, search.Options{Workers: 1, Objective: obj}) }()
	select {
	case err := <-done:
		if !errors.Is(err, search.ErrUnbounded) {
			t.Fatalf("Optimize without a budget or limit: %v, want ErrUnbounded", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Optimize of a study without a budget did not return")
	}
	if err := s.Optimize(ctx, search.Options{Workers: 2, MaxTrials: 5, Objective: obj}); err != nil {
		t.Fatal(err)
	}
	trials, err := s.Trials(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(trials) != 5 {
		t.Fatalf("MaxTrials 5 made %d trials", len(trials))
	}
	best, err := s.Best(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range trials {
		if tr.State != storage.Complete || tr.Value < best.Value {
			t.Errorf("trial %d: %s %v; best %v", tr.Number, tr.State, tr.Value, best.Value)
		}
	}
	if _, ok := best.Params["x"].(float64); !ok {
		t.Errorf("best params %v", best.Params)
	}
}

// Cancelling Optimize gives the running trials back, returns ctx.Err(),
// and tells OnTrial of each with the state as stored.
func TestCancellationReturnsTheContextsErrorAndReportsEveryTrial(t *testing.T) {
	t.Parallel()
	st := openSQLite(t)
	s := createExternal(t, st, "cancelled", "random", 10)
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{}, 2)
	obj := func(ctx context.Context, tr *search.Trial) (float64, error) {
		started <- struct{}{}
		<-ctx.Done()
		return math.NaN(), ctx.Err()
	}
	var mu sync.Mutex
	var results []search.Result
	go func() {
		<-started
		<-started
		cancel()
	}()
	err := s.Optimize(ctx, search.Options{Workers: 2, Objective: obj, OnTrial: func(r search.Result) {
		mu.Lock()
		defer mu.Unlock()
		results = append(results, r)
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Optimize after cancel: %v, want context.Canceled", err)
	}
	if len(results) != 2 {
		t.Fatalf("OnTrial saw %d trials, want the 2 that ran", len(results))
	}
	bg := context.Background()
	for _, r := range results {
		stored, err := s.Trial(bg, r.Number)
		if err != nil {
			t.Fatal(err)
		}
		if r.State != stored.State || r.State != storage.Fail || r.RetriedBy == 0 {
			t.Errorf("trial %d: OnTrial says %s retried by %d, stored %s", r.Number, r.State, r.RetriedBy, stored.State)
		}
		retry, err := s.Trial(bg, r.RetriedBy)
		if err != nil || retry.State != storage.Waiting || retry.RetryOf != r.Number {
			t.Errorf("trial %d's retry %d: %+v (%v)", r.Number, r.RetriedBy, retry, err)
		}
	}
}

func TestOnTrialReportsTheStoredOutcome(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openSQLite(t)
	s := createExternal(t, st, "outcomes", "random", 4)
	obj := func(ctx context.Context, tr *search.Trial) (float64, error) {
		switch tr.Number {
		case 0:
			return 0.5, nil
		case 1:
			if err := tr.Report(ctx, 1, 0.25); err != nil {
				return 0, err
			}
			return math.NaN(), search.ErrPruned
		case 2:
			return math.NaN(), nil
		}
		panic("a bug in the objective")
	}
	var mu sync.Mutex
	got := map[int]search.Result{}
	if err := s.Optimize(ctx, search.Options{Workers: 1, Objective: obj, OnTrial: func(r search.Result) {
		mu.Lock()
		defer mu.Unlock()
		got[r.Number] = r
	}}); err != nil {
		t.Fatal(err)
	}
	want := map[int]storage.State{0: storage.Complete, 1: storage.Pruned, 2: storage.Fail, 3: storage.Fail}
	for n, state := range want {
		stored, err := s.Trial(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		if got[n].State != state || stored.State != state {
			t.Errorf("trial %d: OnTrial %s, stored %s, want %s", n, got[n].State, stored.State, state)
		}
	}
	if got[1].Value != 0.25 {
		t.Errorf("the pruned trial's value %v, want its last report 0.25", got[1].Value)
	}
	if r, _ := s.Trial(ctx, 3); !strings.Contains(r.FailReason, "panicked") {
		t.Errorf("the panicking trial's reason %q", r.FailReason)
	}
}

func TestBadArgumentsAreErrorsNotPanics(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openSQLite(t)
	s := createExternal(t, st, "args", "random", 4)
	spec := s.Spec()
	var nilCtx context.Context
	cases := []struct {
		name string
		err  func() error
		is   error
	}{
		{"Create without a store", func() error { _, err := search.Create(ctx, nil, "x", spec); return err }, nil},
		{"Create without a context", func() error { _, err := search.Create(nilCtx, st, "x", spec); return err }, nil},
		{"Create without a spec", func() error { _, err := search.Create(ctx, st, "x", nil); return err }, search.ErrBadSpec},
		{"Load without a store", func() error { _, err := search.Load(ctx, nil, "args"); return err }, nil},
		{"Load of a missing study", func() error { _, err := search.Load(ctx, st, "missing"); return err }, search.ErrNotFound},
		{"Optimize without a store", func() error { return search.Optimize(ctx, nil, "args", search.Options{}) }, nil},
		{"Optimize without a context", func() error { return s.Optimize(nilCtx, search.Options{}) }, nil},
		{"a heartbeat as long as the lease", func() error {
			return s.Optimize(ctx, search.Options{Heartbeat: time.Second, Grace: time.Second})
		}, search.ErrBadOptions},
		{"negative workers", func() error { return s.Optimize(ctx, search.Options{Workers: -1}) }, search.ErrBadOptions},
		{"a heartbeat of a nanosecond", func() error { return s.Optimize(ctx, search.Options{Heartbeat: time.Nanosecond}) }, search.ErrBadOptions},
		{"negative MaxTrials", func() error { return s.Optimize(ctx, search.Options{MaxTrials: -1}) }, search.ErrBadOptions},
		{"an external study without an objective", func() error { return s.Optimize(ctx, search.Options{}) }, nil},
		{"Ask with a heartbeat longer than the lease", func() error {
			_, err := s.Ask(ctx, search.AskOptions{Heartbeat: time.Minute, Lease: time.Second})
			return err
		}, search.ErrBadOptions},
		{"Ask without a context", func() error { _, err := s.Ask(nilCtx, search.AskOptions{}); return err }, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.err()
			if err == nil {
				t.Fatal("no error")
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("%v is not %v", err, c.is)
			}
		})
	}
	if counts, _, _ := s.Counts(ctx); counts[storage.Running]+counts[storage.Complete]+counts[storage.Fail] != 0 {
		t.Errorf("refused calls left trials behind: %v", counts)
	}
}

func TestEverySpecProblemIsErrBadSpec(t *testing.T) {
	t.Parallel()
	for _, text := range []string{
		"",
		"dataset: [",
		"dataset: {name: nope}\nsearch: {trials: 3}",
		"dataset: {name: gauss2d}\nsearch: {trials: 3}\nspace: {dropout: {type: float, low: 0, high: 1}}",
		"trainer: external\nsearch: {trials: 3}\ntraining: {lr: 0.1}",
		"trainer: external\nsearch: {trials: 3}\nspace: {flood_level: {type: float, low: -1, high: 1}}",
		"trainer: external\nsearch: {trials: 3}\nspace: {flood_level: {type: float, low: 0, high: 1, center: noise}}",
		"trainer: external\nsearch: {trials: 3}\nspace: {'not a name': {type: float, low: 0, high: 1}}",
		"trainer: sometimes\nsearch: {trials: 3}",
		"dataset: {name: gauss2d}\nsearch: {trials: 3, objective: val_loss, direction: maximize}",
	} {
		_, err := search.ParseSpec([]byte(text))
		if !errors.Is(err, search.ErrBadSpec) {
			t.Errorf("ParseSpec(%q): %v, want ErrBadSpec", text, err)
		}
	}
	bad := search.Spec{Dataset: search.DatasetSpec{Name: "gauss2d"}}
	if err := bad.Validate(); !errors.Is(err, search.ErrBadSpec) {
		t.Errorf("Validate of a spec without trials: %v, want ErrBadSpec", err)
	}
	if _, err := search.ParseSpec([]byte("dataset: {name: gauss2d}\nsearch: {trials: 3}\nspace: {dropout: {type: float, low: 0, high: 1}}")); err == nil ||
		!strings.Contains(err.Error(), "trainer: external") {
		t.Errorf("an unknown option of the built-in trainer does not point at trainer: external: %v", err)
	}
	ok := "trainer: external\nsearch: {trials: 3, objective: f1}\nspace:\n  dropout: {type: float, low: 0, high: 0.5}\n  hidden: {type: int, low: 4, high: 32, step: 4}\n  epochs: {type: categorical, choices: [short, long]}\n  flood: {type: categorical, choices: [flood, iflood]}\n  flood_level: {type: float, low: 0, high: 1}\ntraining: {flood_level: 0.2}"
	if _, err := search.ParseSpec([]byte(ok)); err != nil {
		t.Errorf("an external trainer's spec with its own names: %v", err)
	}
}

func TestEnqueueChecksEveryValueAgainstItsSpace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openSQLite(t)
	s := createExternal(t, st, "enqueue", "random", 10)
	for _, bad := range []map[string]any{
		{"width": 12},            // off the step grid
		{"width": 72},            // above the range
		{"width": 16.5},          // not whole
		{"lr": 0.5},              // above the range
		{"optimizer": "rmsprop"}, // not a choice
		{"flood_level": math.NaN()},
	} {
		_, err := s.Enqueue(ctx, bad, nil)
		var se *search.SpaceError
		if !errors.Is(err, search.ErrOutsideSpace) || !errors.As(err, &se) {
			t.Errorf("enqueue %v: %v, want a *SpaceError", bad, err)
		}
	}
	if _, err := s.Enqueue(ctx, map[string]any{"dropout": 0.1}, nil); err == nil {
		t.Error("enqueue of an option the study does not search: no error")
	}
	rec, err := s.Enqueue(ctx, map[string]any{"width": 64, "optimizer": "adam", "lr": 0.1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rec.State != storage.Waiting || rec.Params["width"] != 64 || rec.Params["optimizer"] != "adam" {
		t.Errorf("enqueued trial reads back %s %v", rec.State, rec.Params)
	}
	tr, err := s.Ask(ctx, search.AskOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Tell(ctx, 1)
	if tr.Number != rec.Number || tr.Params["width"] != 64 || tr.Params["optimizer"] != "adam" || tr.Params["lr"] != 0.1 {
		t.Errorf("the enqueued trial runs as %d with %v", tr.Number, tr.Params)
	}
	if v, err := s.Spec().ParseValue("width", "48"); err != nil || v != 48 {
		t.Errorf("ParseValue(width, 48) = %v, %v", v, err)
	}
}

// reachSpec searches every kind of range; a study of it keeps track of the
// values its trials drew.
const reachSpec = `
trainer: external
search: {sampler: %s, trials: 60, seed: 9, baseline: false, direction: %s}
space:
  epochs: {type: int, low: 1, high: 3}
  batch: {type: int, low: 10, high: 30, step: 10}
  ratio: {type: float, low: 0.0, high: 1.0, step: 0.25}
  optimizer: {type: categorical, choices: [sgd, momentum, adam]}
  flood_level: {type: float, low: 0, high: 1}
`

// reachValues are the values of reachSpec's grids.
var reachValues = map[string][]any{
	"epochs":    {1, 2, 3},
	"batch":     {10, 20, 30},
	"ratio":     {0.0, 0.25, 0.5, 0.75, 1.0},
	"optimizer": {"sgd", "momentum", "adam"},
}

// drawn optimises a study of reachSpec and returns the values its trials
// drew, by parameter.
func drawn(t *testing.T, sampler, direction string, obj search.Objective) map[string]map[any]bool {
	t.Helper()
	ctx := context.Background()
	st := openSQLite(t)
	spec, err := search.ParseSpec(fmt.Appendf(nil, reachSpec, sampler, direction))
	if err != nil {
		t.Fatal(err)
	}
	s, err := search.Create(ctx, st, "reach", spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Optimize(ctx, search.Options{Workers: 1, Objective: obj}); err != nil {
		t.Fatal(err)
	}
	trials, err := s.Trials(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]map[any]bool{}
	for _, tr := range trials {
		if tr.State != storage.Complete {
			t.Errorf("trial %d: %s %s", tr.Number, tr.State, tr.FailReason)
		}
		for name, v := range tr.Params {
			if seen[name] == nil {
				seen[name] = map[any]bool{}
			}
			seen[name][v] = true
		}
	}
	for name, values := range reachValues {
		for v := range seen[name] {
			if !slices.Contains(values, v) {
				t.Errorf("%s = %#v was drawn, outside its grid %v", name, v, values)
			}
		}
	}
	return seen
}

// Every value of every range is drawn by the random sampler and TPE, the
// top of an int range included, and every drawn value is on its grid: the
// value a trial records is the value it trains with.
func TestEveryValueOfASpaceIsReachable(t *testing.T) {
	t.Parallel()
	flat := func(ctx context.Context, tr *search.Trial) (float64, error) { return 1, nil }
	for _, sampler := range []string{"random", "tpe"} {
		t.Run(sampler, func(t *testing.T) {
			t.Parallel()
			seen := drawn(t, sampler, "maximize", flat)
			for name, values := range reachValues {
				for _, v := range values {
					if !seen[name][v] {
						t.Errorf("%s = %v never drawn in 60 trials", name, v)
					}
				}
			}
		})
	}
}

// CMA-ES, which samples a continuous box, reaches both ends of every
// numeric range when the objective leads it there.
func TestCMAESReachesTheEndsOfItsRanges(t *testing.T) {
	t.Parallel()
	sum := func(ctx context.Context, tr *search.Trial) (float64, error) {
		return float64(tr.Params["epochs"].(int))/3 + float64(tr.Params["batch"].(int))/30 + tr.Params["ratio"].(float64), nil
	}
	for _, c := range []struct {
		direction string
		index     func(n int) int
	}{{"maximize", func(n int) int { return n - 1 }}, {"minimize", func(int) int { return 0 }}} {
		t.Run(c.direction, func(t *testing.T) {
			t.Parallel()
			seen := drawn(t, "cmaes", c.direction, sum)
			for _, name := range []string{"epochs", "batch", "ratio"} {
				values := reachValues[name]
				if end := values[c.index(len(values))]; !seen[name][end] {
					t.Errorf("%s = %v never drawn in 60 trials that %s it", name, end, c.direction)
				}
			}
		})
	}
}

// The spec's pruner answers Report: trials whose reports fall behind the
// median of the trials before them are pruned at their last report.
func TestReportAsksTheSpecsPruner(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openSQLite(t)
	spec, err := search.ParseSpec([]byte(`
trainer: external
search: {sampler: random, trials: 20, seed: 6, pruner: median, baseline: false}
space:
  flood_level: {type: float, low: 0, high: 1}
`))
	if err != nil {
		t.Fatal(err)
	}
	s, err := search.Create(ctx, st, "pruned", spec)
	if err != nil {
		t.Fatal(err)
	}
	obj := func(ctx context.Context, tr *search.Trial) (float64, error) {
		v := 0.0
		for epoch := 1; epoch <= 5; epoch++ {
			v = float64(epoch) * tr.FloodLevel()
			if err := tr.Report(ctx, epoch, v); err != nil {
				return math.NaN(), err
			}
		}
		return v, nil
	}
	if err := s.Optimize(ctx, search.Options{Workers: 1, Objective: obj}); err != nil {
		t.Fatal(err)
	}
	trials, err := s.Trials(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pruned := 0
	for _, tr := range trials {
		if tr.State != storage.Pruned {
			continue
		}
		pruned++
		last := 0
		for step := range tr.Intermediate {
			last = max(last, step)
		}
		if last == 5 || tr.Value != tr.Intermediate[last] {
			t.Errorf("trial %d pruned at value %v after step %d (%v)", tr.Number, tr.Value, last, tr.Intermediate)
		}
	}
	if pruned == 0 {
		t.Errorf("the median pruner pruned none of 20 trials whose curves are their flood level times the epoch")
	}
}

func TestFailFastStopsAtTheFirstFailedTrial(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openSQLite(t)
	s := createExternal(t, st, "failfast", "random", 10)
	boom := errors.New("out of memory")
	obj := func(ctx context.Context, tr *search.Trial) (float64, error) {
		if tr.Number == 2 {
			return math.NaN(), boom
		}
		return 1, nil
	}
	err := s.Optimize(ctx, search.Options{Workers: 1, FailFast: true, Objective: obj})
	if !errors.Is(err, boom) {
		t.Fatalf("Optimize with FailFast: %v, want the objective's error", err)
	}
	counts, _, _ := s.Counts(ctx)
	if counts[storage.Complete] != 2 || counts[storage.Fail] != 1 || counts[storage.Running] != 0 {
		t.Errorf("FailFast stopped with %v, want 2 complete and trial 2 failed", counts)
	}
	if err := s.Optimize(ctx, search.Options{Workers: 1, Objective: obj}); err != nil {
		t.Fatalf("Optimize without FailFast: %v", err)
	}
	if counts, _, _ = s.Counts(ctx); counts[storage.Complete] != 9 {
		t.Errorf("the rest of the study: %v", counts)
	}
}

func TestLoadOrCreateResumesItsStudyAndRefusesAnotherSpec(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openSQLite(t)
	spec, err := search.ParseSpec(fmt.Appendf(nil, externalSpec, "tpe", 6))
	if err != nil {
		t.Fatal(err)
	}
	first, err := search.LoadOrCreate(ctx, st, "resume", spec)
	if err != nil {
		t.Fatal(err)
	}
	again, err := search.LoadOrCreate(ctx, st, "resume", spec)
	if err != nil || again.ID() != first.ID() {
		t.Fatalf("LoadOrCreate again: %v (%v), want study %d", again, err, first.ID())
	}
	changed, err := search.ParseSpec(fmt.Appendf(nil, externalSpec, "tpe", 7))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := search.LoadOrCreate(ctx, st, "resume", changed); !errors.Is(err, search.ErrSpecMismatch) {
		t.Errorf("LoadOrCreate with another budget: %v, want ErrSpecMismatch", err)
	}
}

// A waiting trial whose stored value is not in the space (written by an
// older release, or by hand) is failed with the reason when it is leased,
// never silently given another value.
func TestAnEnqueuedValueOutsideTheSpaceFailsItsTrial(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openSQLite(t)
	s := createExternal(t, st, "offgrid", "random", 4)
	if _, err := st.CreateTrial(ctx, s.ID(), storage.NewTrial{State: storage.Waiting, Value: math.NaN(),
		SystemAttrs: map[string]string{storage.FixedParamsAttr: `{"width": 13}`}}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Ask(ctx, search.AskOptions{})
	if !errors.Is(err, search.ErrProposalFailed) || !errors.Is(err, search.ErrOutsideSpace) {
		t.Fatalf("ask for the off-grid trial: %v, want ErrProposalFailed and ErrOutsideSpace", err)
	}
	rec, err := s.Trial(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if rec.State != storage.Fail || !strings.Contains(rec.FailReason, "13") {
		t.Errorf("the off-grid trial: %s %q", rec.State, rec.FailReason)
	}
	next, err := s.Ask(ctx, search.AskOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := next.Tell(ctx, 1); err != nil {
		t.Fatal(err)
	}
}
