package storage_test

import (
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/c-bata/goptuna"

	"github.com/floodtune/floodtune/storage"
)

// The guarantees of the package documentation, under concurrent workers
// that share one store or use several (several pools, as several processes
// would).
func TestConcurrencyConformance(t *testing.T) {
	runConformance(t, concurrencyTests)
}

// poolCounts are the numbers of stores that concurrent tests share.
var poolCounts = []int{1, 4}

// grace is the lease of the reaping tests: short, so that they sleep little.
const grace = 300 * time.Millisecond

// stale waits until the trials whose worker stopped heartbeating now are
// older than grace.
func stale() { time.Sleep(grace + 150*time.Millisecond) }

var concurrencyTests = []conformanceTest{
	{"trial numbers are unique and gap-free however many workers create trials", func(t *testing.T, e *env) {
		for _, pools := range poolCounts {
			t.Run(fmt.Sprintf("%d stores", pools), func(t *testing.T) {
				stores := e.stores(t, pools)
				st := newStudy(t, e.st, storage.NewStudy{Name: fmt.Sprint(pools)})
				const workers, each = 32, 5
				errs := make(chan error, workers*each)
				race(workers, func(i int) {
					s := stores[i%len(stores)]
					for j := range each {
						nt := running(fmt.Sprintf("w%d", i))
						if j%2 == 1 {
							nt = waiting(nil)
						}
						if _, err := s.CreateTrial(t.Context(), st.ID, nt); err != nil {
							errs <- err
						}
					}
				})
				close(errs)
				for err := range errs {
					t.Errorf("CreateTrial: %v", err)
				}
				checkNumbers(t, getTrials(t, e.st, st.ID), workers*each)
			})
		}
	}},
	{"the budget is never exceeded by workers racing to create trials", func(t *testing.T, e *env) {
		for _, pools := range poolCounts {
			t.Run(fmt.Sprintf("%d stores", pools), func(t *testing.T) {
				stores := e.stores(t, pools)
				const budget, workers = 10, 32
				st := newStudy(t, e.st, storage.NewStudy{Name: fmt.Sprint(pools), Budget: budget})
				var created, refused atomic.Int32
				race(workers, func(i int) {
					_, err := stores[i%len(stores)].CreateTrial(t.Context(), st.ID, running(fmt.Sprintf("w%d", i)))
					switch {
					case err == nil:
						created.Add(1)
					case errors.Is(err, storage.ErrBudgetExhausted):
						refused.Add(1)
					default:
						t.Errorf("CreateTrial: %v, want nil or ErrBudgetExhausted", err)
					}
				})
				if created.Load() != budget || refused.Load() != workers-budget {
					t.Errorf("%d created, %d refused; want %d and %d", created.Load(), refused.Load(), budget, workers-budget)
				}
				checkNumbers(t, getTrials(t, e.st, st.ID), budget)
			})
		}
	}},
	{"a failed trial that was retried gives its place in the budget to its retry", func(t *testing.T, e *env) {
		ctx := t.Context()
		st := newStudy(t, e.st, storage.NewStudy{Budget: 3})
		var trials []*storage.Trial
		for i := range 3 {
			trials = append(trials, newTrial(t, e.st, st.ID, running(fmt.Sprintf("w%d", i))))
		}
		exhausted := func(when string) {
			t.Helper()
			_, err := e.st.CreateTrial(ctx, st.ID, running("late"))
			wantErr(t, "CreateTrial "+when, err, storage.ErrBudgetExhausted)
			if _, counted, err := e.st.Counts(ctx, st.ID); err != nil || counted != 3 {
				t.Errorf("%s: %d trials count toward the budget (%v), want 3", when, counted, err)
			}
		}
		exhausted("with the budget spent")
		// A trial that fails by itself counts.
		if err := e.st.Finish(ctx, trials[0].ID, "w0", storage.Fail, nan); err != nil {
			t.Fatal(err)
		}
		exhausted("after a trial failed")
		// A trial given back is retried: the retry takes its place.
		retry, err := e.st.GiveBack(ctx, trials[1].ID, "w1", "worker stops")
		if err != nil {
			t.Fatal(err)
		}
		exhausted("after a trial was given back")
		// A stale trial is reaped and retried: the same.
		stale()
		reaped, err := e.st.Reap(ctx, grace, 3)
		if err != nil || len(reaped) != 1 || reaped[0].TrialID != trials[2].ID || reaped[0].RetryID == 0 {
			t.Fatalf("Reap = %+v, %v; want trial %d reaped and retried", reaped, err, trials[2].ID)
		}
		exhausted("after a trial was reaped")
		// The retries run and complete; still no room for another trial.
		for _, id := range []int64{retry.ID, reaped[0].RetryID} {
			if err := e.st.Claim(ctx, id, "w9"); err != nil {
				t.Fatal(err)
			}
			if err := e.st.Finish(ctx, id, "w9", storage.Complete, 1); err != nil {
				t.Fatal(err)
			}
		}
		exhausted("after the retries completed")
		// A reaped trial without retry (limit reached) still counts.
		st2 := newStudy(t, e.st, storage.NewStudy{Name: "no retries", Budget: 1})
		tr := newTrial(t, e.st, st2.ID, running("w"))
		stale()
		if reaped, err := e.st.Reap(ctx, grace, 0); err != nil || len(reaped) != 1 || reaped[0].TrialID != tr.ID || reaped[0].RetryID != 0 {
			t.Fatalf("Reap with no retries = %+v, %v", reaped, err)
		}
		_, err = e.st.CreateTrial(ctx, st2.ID, running("late"))
		wantErr(t, "CreateTrial after a reaped trial without retry", err, storage.ErrBudgetExhausted)
	}},
	{"the budget holds while workers give trials back and run the retries", func(t *testing.T, e *env) {
		for _, pools := range poolCounts {
			t.Run(fmt.Sprintf("%d stores", pools), func(t *testing.T) {
				stores := e.stores(t, pools)
				const budget, workers = 10, 16
				st := newStudy(t, e.st, storage.NewStudy{Name: fmt.Sprint(pools), Budget: budget})
				var givenBack atomic.Int32
				deadline := time.Now().Add(30 * time.Second)
				race(workers, func(i int) {
					s, w := stores[i%len(stores)], fmt.Sprintf("w%d", i)
					ctx := t.Context()
					for {
						tr, err := s.CreateTrial(ctx, st.ID, running(w))
						if errors.Is(err, storage.ErrBudgetExhausted) {
							tr, err = s.ClaimWaiting(ctx, st.ID, w)
							if errors.Is(err, storage.ErrNotFound) {
								// Done when every trial that counts is
								// complete; else a retry may still come.
								by, _, err := s.Counts(ctx, st.ID)
								if err != nil {
									t.Errorf("Counts: %v", err)
									return
								}
								if by[storage.Complete] >= budget || time.Now().After(deadline) {
									return
								}
								time.Sleep(5 * time.Millisecond)
								continue
							}
						}
						if err != nil {
							t.Errorf("worker %s: %v", w, err)
							return
						}
						// Every third first attempt is given back (the worker
						// stops), the rest complete.
						if tr.Attempt == 0 && tr.Number%3 == 0 {
							if _, err := s.GiveBack(ctx, tr.ID, w, "stopping"); err != nil {
								t.Errorf("GiveBack: %v", err)
							}
							givenBack.Add(1)
							continue
						}
						if err := s.Finish(ctx, tr.ID, w, storage.Complete, float64(tr.Number)); err != nil {
							t.Errorf("Finish: %v", err)
						}
					}
				})
				by, counted, err := e.st.Counts(t.Context(), st.ID)
				if err != nil {
					t.Fatal(err)
				}
				want := map[storage.State]int{storage.Complete: budget}
				if n := int(givenBack.Load()); n > 0 {
					want[storage.Fail] = n
				}
				if counted != budget || !maps.Equal(by, want) {
					t.Errorf("Counts = %v, %d counted; want %v, %d counted", by, counted, want, budget)
				}
				checkNumbers(t, getTrials(t, e.st, st.ID), budget+int(givenBack.Load()))
			})
		}
	}},
	{"each waiting trial is claimed exactly once", func(t *testing.T, e *env) {
		for _, pools := range poolCounts {
			t.Run(fmt.Sprintf("%d stores", pools), func(t *testing.T) {
				stores := e.stores(t, pools)
				st := newStudy(t, e.st, storage.NewStudy{Name: fmt.Sprint(pools)})
				const trials, claimers = 50, 16
				for i := range trials {
					newTrial(t, e.st, st.ID, waiting(map[string]storage.Param{"x": uniform(float64(i)/trials, 0, 1)}))
				}
				var mu sync.Mutex
				claimedBy := map[int64][]string{}
				race(claimers, func(i int) {
					s, w := stores[i%len(stores)], fmt.Sprintf("w%d", i)
					for {
						tr, err := s.ClaimWaiting(t.Context(), st.ID, w)
						if errors.Is(err, storage.ErrNotFound) {
							return
						}
						if err != nil {
							t.Errorf("ClaimWaiting: %v", err)
							return
						}
						if tr.State != storage.Running || tr.Worker != w {
							t.Errorf("claimed trial %d is %s under %q, want running under %q", tr.ID, tr.State, tr.Worker, w)
						}
						mu.Lock()
						claimedBy[tr.ID] = append(claimedBy[tr.ID], w)
						mu.Unlock()
					}
				})
				if len(claimedBy) != trials {
					t.Errorf("%d trials claimed, want %d", len(claimedBy), trials)
				}
				for id, ws := range claimedBy {
					if len(ws) != 1 {
						t.Errorf("trial %d claimed by %v", id, ws)
					}
				}
				for _, tr := range getTrials(t, e.st, st.ID) {
					if ws := claimedBy[tr.ID]; tr.State != storage.Running || len(ws) == 0 || tr.Worker != ws[0] {
						t.Errorf("trial %d: %s under %q, claimed by %v", tr.ID, tr.State, tr.Worker, ws)
					}
				}
				_, err := e.st.ClaimWaiting(t.Context(), st.ID, "late")
				wantErr(t, "ClaimWaiting after all were claimed", err, storage.ErrNotFound)
			})
		}
	}},
	{"a worker that lost its trial gets ErrLeaseLost and changes nothing", func(t *testing.T, e *env) {
		ctx := t.Context()
		st := newStudy(t, e.st, storage.NewStudy{})
		start := func(t *testing.T, worker string) *storage.Trial {
			tr := newTrial(t, e.st, st.ID, running(worker))
			if err := e.st.SetParam(ctx, tr.ID, worker, "x", uniform(0.5, 0, 1)); err != nil {
				t.Fatal(err)
			}
			if err := e.st.Report(ctx, tr.ID, worker, 0, 1.5); err != nil {
				t.Fatal(err)
			}
			if err := e.st.SetValue(ctx, tr.ID, worker, 1.5); err != nil {
				t.Fatal(err)
			}
			if err := e.st.SetTrialAttr(ctx, tr.ID, worker, storage.UserAttr, "k", "v"); err != nil {
				t.Fatal(err)
			}
			return tr
		}
		scenarios := []struct {
			name string
			lose func(t *testing.T) *storage.Trial // returns the trial worker-1 lost
			// attrs is the error of SetTrialAttr: ErrNotUpdatable when the
			// trial is finished.
			attrs error
		}{
			{"after it gave the trial back", func(t *testing.T) *storage.Trial {
				tr := start(t, "worker-1")
				if _, err := e.st.GiveBack(ctx, tr.ID, "worker-1", "stopping"); err != nil {
					t.Fatal(err)
				}
				return tr
			}, storage.ErrNotUpdatable},
			{"after the trial was reaped", func(t *testing.T) *storage.Trial {
				tr := start(t, "worker-1")
				stale()
				if r, err := e.st.Reap(ctx, grace, 3); err != nil || len(r) != 1 {
					t.Fatalf("Reap = %+v, %v", r, err)
				}
				return tr
			}, storage.ErrNotUpdatable},
			{"after the trial was reaped without retry", func(t *testing.T) *storage.Trial {
				tr := start(t, "worker-1")
				stale()
				if r, err := e.st.Reap(ctx, grace, 0); err != nil || len(r) != 1 || r[0].RetryID != 0 {
					t.Fatalf("Reap = %+v, %v", r, err)
				}
				return tr
			}, storage.ErrNotUpdatable},
			{"while another worker runs the trial", func(t *testing.T) *storage.Trial {
				return start(t, "worker-2")
			}, storage.ErrLeaseLost},
		}
		ops := []struct {
			name string
			call func(tr *storage.Trial) error
			want error // nil: the scenario's attrs error
		}{
			{"Heartbeat", func(tr *storage.Trial) error { return e.st.Heartbeat(ctx, tr.ID, "worker-1") }, storage.ErrLeaseLost},
			{"Report", func(tr *storage.Trial) error { return e.st.Report(ctx, tr.ID, "worker-1", 0, 99) }, storage.ErrLeaseLost},
			{"Report at a new step", func(tr *storage.Trial) error { return e.st.Report(ctx, tr.ID, "worker-1", 5, 99) }, storage.ErrLeaseLost},
			{"SetValue", func(tr *storage.Trial) error { return e.st.SetValue(ctx, tr.ID, "worker-1", 99) }, storage.ErrLeaseLost},
			{"SetParam", func(tr *storage.Trial) error {
				return e.st.SetParam(ctx, tr.ID, "worker-1", "x", uniform(0.75, 0, 1))
			}, storage.ErrLeaseLost},
			{"SetParam of a new name", func(tr *storage.Trial) error {
				return e.st.SetParam(ctx, tr.ID, "worker-1", "y", uniform(0.75, 0, 1))
			}, storage.ErrLeaseLost},
			{"SetTrialAttr user", func(tr *storage.Trial) error {
				return e.st.SetTrialAttr(ctx, tr.ID, "worker-1", storage.UserAttr, "k", "changed")
			}, nil},
			{"SetTrialAttr system", func(tr *storage.Trial) error {
				return e.st.SetTrialAttr(ctx, tr.ID, "worker-1", storage.SystemAttr, "new", "x")
			}, nil},
			{"Finish complete", func(tr *storage.Trial) error {
				return e.st.Finish(ctx, tr.ID, "worker-1", storage.Complete, 99)
			}, storage.ErrLeaseLost},
			{"Finish pruned", func(tr *storage.Trial) error {
				return e.st.Finish(ctx, tr.ID, "worker-1", storage.Pruned, nan)
			}, storage.ErrLeaseLost},
			{"Finish fail", func(tr *storage.Trial) error {
				return e.st.Finish(ctx, tr.ID, "worker-1", storage.Fail, 99)
			}, storage.ErrLeaseLost},
			{"GiveBack", func(tr *storage.Trial) error {
				_, err := e.st.GiveBack(ctx, tr.ID, "worker-1", "again")
				return err
			}, storage.ErrLeaseLost},
		}
		for _, sc := range scenarios {
			t.Run(sc.name, func(t *testing.T) {
				tr := sc.lose(t)
				before := getTrial(t, e.st, tr.ID)
				_, countedBefore, _ := e.st.Counts(ctx, st.ID)
				trialsBefore := len(getTrials(t, e.st, st.ID))
				for _, op := range ops {
					want := op.want
					if want == nil {
						want = sc.attrs
					}
					err := op.call(tr)
					if !errors.Is(err, want) {
						t.Errorf("%s: error %v, want %v", op.name, err, want)
					}
					if d := trialDiff(getTrial(t, e.st, tr.ID), before); d != "" {
						t.Errorf("%s changed the trial: %s", op.name, d)
					}
				}
				if _, counted, _ := e.st.Counts(ctx, st.ID); counted != countedBefore || len(getTrials(t, e.st, st.ID)) != trialsBefore {
					t.Errorf("the lost worker's calls created trials")
				}
				// Through Goptuna, the same calls fail with exactly the
				// error that Goptuna knows.
				g := storage.NewGoptuna(ctx, e.st, "worker-1")
				for name, call := range map[string]func() error{
					"SetTrialValue":             func() error { return g.SetTrialValue(int(tr.ID), 7) },
					"SetTrialIntermediateValue": func() error { return g.SetTrialIntermediateValue(int(tr.ID), 3, 7) },
					"SetTrialParam": func() error {
						return g.SetTrialParam(int(tr.ID), "z", 0.5, goptuna.UniformDistribution{Low: 0, High: 1})
					},
					"SetTrialUserAttr":        func() error { return g.SetTrialUserAttr(int(tr.ID), "k", "goptuna") },
					"SetTrialState(complete)": func() error { return g.SetTrialState(int(tr.ID), goptuna.TrialStateComplete) },
					"SetTrialState(fail)":     func() error { return g.SetTrialState(int(tr.ID), goptuna.TrialStateFail) },
				} {
					if err := call(); err != goptuna.ErrTrialCannotBeUpdated {
						t.Errorf("Goptuna %s: %v, want exactly goptuna.ErrTrialCannotBeUpdated", name, err)
					}
				}
				if d := trialDiff(getTrial(t, e.st, tr.ID), before); d != "" {
					t.Errorf("the Goptuna calls changed the trial: %s", d)
				}
			})
		}
	}},
	{"a stale trial is reaped and retried with its parameters, a live one is not", func(t *testing.T, e *env) {
		ctx := t.Context()
		st := newStudy(t, e.st, storage.NewStudy{Name: "reaped"})
		params := map[string]storage.Param{"flood": uniform(0.125, 0, 1), "lr": uniform(0.01, 0, 1)}
		dead := newTrial(t, e.st, st.ID, storage.NewTrial{State: storage.Running, Worker: "dead", Value: nan, Params: params,
			Intermediate: map[int]float64{0: 3}, UserAttrs: map[string]string{"k": "v"}})
		alive := newTrial(t, e.st, st.ID, running("alive"))
		done := newTrial(t, e.st, st.ID, storage.NewTrial{State: storage.Complete, Value: 1})
		waits := newTrial(t, e.st, st.ID, waiting(nil))
		// The live worker heartbeats while the dead one does not.
		stop := make(chan struct{})
		var beats sync.WaitGroup
		beats.Add(1)
		go func() {
			defer beats.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
				if err := e.st.Heartbeat(ctx, alive.ID, "alive"); err != nil {
					t.Errorf("Heartbeat: %v", err)
					return
				}
			}
		}()
		stale()
		reaped, err := e.st.Reap(ctx, grace, 3)
		close(stop)
		beats.Wait()
		if err != nil {
			t.Fatal(err)
		}
		if len(reaped) != 1 || reaped[0].TrialID != dead.ID || reaped[0].StudyID != st.ID || reaped[0].Number != dead.Number || reaped[0].RetryID == 0 {
			t.Fatalf("Reap = %+v, want trial %d (number %d) reaped with a retry", reaped, dead.ID, dead.Number)
		}
		old := getTrial(t, e.st, dead.ID)
		if old.State != storage.Fail || old.SystemAttrs[storage.FailReasonAttr] == "" || old.RetriedBy != reaped[0].RetryID || old.CompletedAt.IsZero() {
			t.Errorf("reaped trial: %s, fail reason %q, retried by %d, completed %v; want fail, a reason, retried by %d",
				old.State, old.SystemAttrs[storage.FailReasonAttr], old.RetriedBy, old.CompletedAt, reaped[0].RetryID)
		}
		if !sameParams(old.Params, params) || old.Intermediate[0] != 3 || old.UserAttrs["k"] != "v" {
			t.Errorf("the reaped trial lost its details: %+v", old)
		}
		retry := getTrial(t, e.st, reaped[0].RetryID)
		if retry.State != storage.Waiting || retry.Attempt != 1 || retry.RetryOf != dead.ID || retry.RetriedBy != 0 || retry.StudyID != st.ID ||
			retry.Number != waits.Number+1 || retry.HasValue() || len(retry.Intermediate) != 0 || retry.Worker != "" {
			t.Errorf("retry %+v; want waiting, attempt 1, retry of %d, the next number %d", retry, dead.ID, waits.Number+1)
		}
		if !sameParams(retry.Params, params) {
			t.Errorf("retry's params %s, want %s", paramsString(retry.Params), paramsString(params))
		}
		fixed := fixedParams(t, retry)
		if want := map[string]float64{"flood": 0.125, "lr": 0.01}; !maps.Equal(fixed, want) {
			t.Errorf("retry's %s = %v, want %v", storage.FixedParamsAttr, fixed, want)
		}
		for _, tr := range []*storage.Trial{alive, done, waits} {
			if got := getTrial(t, e.st, tr.ID); got.State != tr.State || got.RetriedBy != 0 {
				t.Errorf("trial %d was %s and is now %s (retried by %d): only the stale trial may be reaped", tr.ID, tr.State, got.State, got.RetriedBy)
			}
		}
		// A second reap finds nothing more (the live worker stopped only now).
		if again, err := e.st.Reap(ctx, grace, 3); err != nil || len(again) != 0 {
			t.Errorf("second Reap = %+v, %v; want nothing", again, err)
		}
		// Goptuna, claiming the retry, suggests the same parameters again.
		g := storage.NewGoptuna(ctx, e.st, "worker-3")
		if err := e.st.Claim(ctx, waits.ID, "someone"); err != nil { // leave only the retry waiting
			t.Fatal(err)
		}
		got := retriedParams(t, g, "reaped", []string{"flood", "lr"})
		if want := map[string]float64{"flood": 0.125, "lr": 0.01}; !maps.Equal(got, want) {
			t.Errorf("Goptuna suggested %v for the retry, want %v", got, want)
		}
		if tr := getTrial(t, e.st, retry.ID); tr.State != storage.Complete || tr.Worker != "worker-3" {
			t.Errorf("the retry is %s under %q after Goptuna ran it", tr.State, tr.Worker)
		}
	}},
	{"reaping respects the retry limit", func(t *testing.T, e *env) {
		ctx := t.Context()
		st := newStudy(t, e.st, storage.NewStudy{})
		const maxRetries = 2
		tr := newTrial(t, e.st, st.ID, storage.NewTrial{State: storage.Running, Worker: "w", Value: nan,
			Params: map[string]storage.Param{"x": uniform(0.5, 0, 1)}})
		for attempt := 0; ; attempt++ {
			stale()
			reaped, err := e.st.Reap(ctx, grace, maxRetries)
			if err != nil || len(reaped) != 1 || reaped[0].TrialID != tr.ID {
				t.Fatalf("attempt %d: Reap = %+v, %v", attempt, reaped, err)
			}
			if attempt == maxRetries {
				if reaped[0].RetryID != 0 {
					t.Errorf("attempt %d was retried beyond the limit of %d retries", attempt, maxRetries)
				}
				if got := getTrial(t, e.st, tr.ID); got.State != storage.Fail || got.RetriedBy != 0 {
					t.Errorf("last attempt: %s, retried by %d", got.State, got.RetriedBy)
				}
				break
			}
			if reaped[0].RetryID == 0 {
				t.Fatalf("attempt %d was not retried (limit %d)", attempt, maxRetries)
			}
			retry := getTrial(t, e.st, reaped[0].RetryID)
			if retry.Attempt != attempt+1 || retry.RetryOf != tr.ID || !sameParams(retry.Params, tr.Params) {
				t.Errorf("retry of attempt %d: attempt %d, retry of %d, params %s", attempt, retry.Attempt, retry.RetryOf, paramsString(retry.Params))
			}
			claimed, err := e.st.ClaimWaiting(ctx, st.ID, "w")
			if err != nil || claimed.ID != retry.ID {
				t.Fatalf("ClaimWaiting = %+v, %v; want the retry", claimed, err)
			}
			tr = claimed
		}
		by, _, err := e.st.Counts(ctx, st.ID)
		if err != nil || !maps.Equal(by, map[storage.State]int{storage.Fail: maxRetries + 1}) {
			t.Errorf("Counts = %v, %v; want %d failed", by, err, maxRetries+1)
		}
	}},
	{"reapers running at once reap each stale trial once", func(t *testing.T, e *env) {
		stores := e.stores(t, 4)
		st := newStudy(t, e.st, storage.NewStudy{})
		const trials, reapers = 20, 8
		for i := range trials {
			newTrial(t, e.st, st.ID, storage.NewTrial{State: storage.Running, Worker: fmt.Sprint("w", i), Value: nan,
				Params: map[string]storage.Param{"x": uniform(float64(i)/trials, 0, 1)}})
		}
		stale()
		var mu sync.Mutex
		reapedBy := map[int64]int{}
		retries := map[int64]int64{}
		race(reapers, func(i int) {
			r, err := stores[i%len(stores)].Reap(t.Context(), grace, 3)
			if err != nil {
				t.Errorf("Reap: %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, x := range r {
				reapedBy[x.TrialID]++
				retries[x.TrialID] = x.RetryID
			}
		})
		if len(reapedBy) != trials {
			t.Errorf("%d trials reaped, want %d", len(reapedBy), trials)
		}
		for id, n := range reapedBy {
			if n != 1 {
				t.Errorf("trial %d reaped %d times", id, n)
			}
		}
		ts := getTrials(t, e.st, st.ID)
		checkNumbers(t, ts, 2*trials)
		retryOf := map[int64]int64{}
		for _, tr := range ts {
			switch tr.State {
			case storage.Fail:
				if tr.RetriedBy == 0 || tr.RetriedBy != retries[tr.ID] {
					t.Errorf("reaped trial %d retried by %d, Reap said %d", tr.ID, tr.RetriedBy, retries[tr.ID])
				}
			case storage.Waiting:
				retryOf[tr.RetryOf]++
			default:
				t.Errorf("trial %d is %s", tr.ID, tr.State)
			}
		}
		for id, n := range retryOf {
			if n != 1 || reapedBy[id] != 1 {
				t.Errorf("trial %d has %d retries", id, n)
			}
		}
	}},
	{"a trial finished while it is reaped stays finished", func(t *testing.T, e *env) {
		stores := e.stores(t, 4)
		st := newStudy(t, e.st, storage.NewStudy{})
		const rounds, trials, reapers = 5, 12, 4
		var finished, lost int
		for round := range rounds {
			ts := make([]*storage.Trial, trials)
			for i := range ts {
				ts[i] = newTrial(t, e.st, st.ID, running(fmt.Sprint("w", i)))
			}
			stale()
			finishErr := make([]error, trials)
			var mu sync.Mutex
			reapedBy := map[int64]int{}
			race(trials+reapers, func(i int) {
				s := stores[i%len(stores)]
				if i < trials {
					finishErr[i] = s.Finish(t.Context(), ts[i].ID, fmt.Sprint("w", i), storage.Complete, float64(i))
					return
				}
				r, err := s.Reap(t.Context(), grace, 3)
				if err != nil {
					t.Errorf("Reap: %v", err)
				}
				mu.Lock()
				defer mu.Unlock()
				for _, x := range r {
					reapedBy[x.TrialID]++
				}
			})
			for i, tr := range ts {
				got := getTrial(t, e.st, tr.ID)
				switch {
				case finishErr[i] == nil:
					finished++
					if got.State != storage.Complete || got.Value != float64(i) || got.RetriedBy != 0 || reapedBy[tr.ID] != 0 {
						t.Errorf("round %d: Finish of trial %d succeeded, but the trial is %s with value %v, retried by %d, reaped %d times",
							round, tr.ID, got.State, got.Value, got.RetriedBy, reapedBy[tr.ID])
					}
				case errors.Is(finishErr[i], storage.ErrLeaseLost):
					lost++
					if got.State != storage.Fail || got.RetriedBy == 0 || reapedBy[tr.ID] != 1 {
						t.Errorf("round %d: Finish of trial %d lost the lease, but the trial is %s, retried by %d, reaped %d times",
							round, tr.ID, got.State, got.RetriedBy, reapedBy[tr.ID])
					}
				default:
					t.Errorf("round %d: Finish of trial %d: %v", round, tr.ID, finishErr[i])
				}
			}
			// Leave no waiting retry behind for the next round's reapers.
			for {
				tr, err := e.st.ClaimWaiting(t.Context(), st.ID, "cleaner")
				if errors.Is(err, storage.ErrNotFound) {
					break
				} else if err != nil {
					t.Fatal(err)
				}
				if err := e.st.Finish(t.Context(), tr.ID, "cleaner", storage.Complete, 0); err != nil {
					t.Fatal(err)
				}
			}
		}
		t.Logf("%d trials finished first, %d reaped first", finished, lost)
	}},
	{"one Reap reaps every stale trial, however many there are", func(t *testing.T, e *env) {
		st := newStudy(t, e.st, storage.NewStudy{})
		const n = 150
		race(8, func(w int) {
			for i := w; i < n; i += 8 {
				if _, err := e.st.CreateTrial(t.Context(), st.ID, running(fmt.Sprint("w", i))); err != nil {
					t.Errorf("CreateTrial: %v", err)
				}
			}
		})
		stale()
		reaped, err := e.st.Reap(t.Context(), grace, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(reaped) != n {
			t.Errorf("Reap reaped %d of %d stale trials; its documentation says it fails every one", len(reaped), n)
		}
	}},
	{"racing to create the same study, one wins and the others get ErrStudyExists", func(t *testing.T, e *env) {
		stores := e.stores(t, 4)
		const n = 16
		errs := make([]error, n)
		race(n, func(i int) {
			_, errs[i] = stores[i%len(stores)].CreateStudy(t.Context(), storage.NewStudy{Name: "contested", Direction: storage.Minimize})
		})
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, storage.ErrStudyExists):
				t.Errorf("CreateStudy: %v, want nil or ErrStudyExists", err)
			}
		}
		if all, err := e.st.Studies(t.Context()); won != 1 || err != nil || len(all) != 1 {
			t.Errorf("%d CreateStudy calls succeeded and %d studies exist (%v); want 1 and 1", won, len(all), err)
		}
	}},
	{"a finished trial cannot be finished again, by its worker or another", func(t *testing.T, e *env) {
		ctx := t.Context()
		st := newStudy(t, e.st, storage.NewStudy{})
		for _, state := range []storage.State{storage.Complete, storage.Pruned, storage.Fail} {
			t.Run(string(state), func(t *testing.T) {
				tr := newTrial(t, e.st, st.ID, running("w"))
				if err := e.st.Finish(ctx, tr.ID, "w", state, 2.5); err != nil {
					t.Fatal(err)
				}
				before := getTrial(t, e.st, tr.ID)
				// Several late calls at once, in every final state.
				errs := make([]error, 9)
				states := []storage.State{storage.Complete, storage.Pruned, storage.Fail}
				race(len(errs), func(i int) { errs[i] = e.st.Finish(ctx, tr.ID, "w", states[i%3], 1) })
				for i, err := range errs {
					wantErr(t, fmt.Sprintf("Finish(%s) of a %s trial", states[i%3], state), err, storage.ErrLeaseLost)
				}
				err := e.st.Finish(ctx, tr.ID, "someone else", state, 2.5)
				wantErr(t, "Finish by another worker", err, storage.ErrLeaseLost)
				if d := trialDiff(getTrial(t, e.st, tr.ID), before); d != "" {
					t.Errorf("the finished trial changed: %s", d)
				}
			})
		}
	}},
}
