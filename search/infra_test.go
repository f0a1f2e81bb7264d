package search_test

import (
	"context"
	"database/sql"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/floodtune/floodtune/internal/pgtest"
	"github.com/floodtune/floodtune/search"
	"github.com/floodtune/floodtune/storage"
)

// A trial whose report the storage refuses (here a table held locked by
// another session past the lock timeout) is given back to run again, not
// failed: it does not count toward the budget, and the call stops with the
// storage's error so that its caller knows it could not do its job.
func TestATrialTheStorageFailsIsGivenBackAndStopsTheCall(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, locker := lockableStudy(t, "random", 6)
	obj := func(ctx context.Context, tr *search.Trial) (float64, error) {
		if tr.Number == 2 && tr.Params["optimizer"] != nil {
			tx, err := locker.BeginTx(ctx, nil)
			if err != nil {
				return 0, err
			}
			if _, err := tx.ExecContext(ctx, `LOCK TABLE trial_values IN ACCESS EXCLUSIVE MODE`); err != nil {
				return 0, err
			}
			rerr := tr.Report(ctx, 1, 0.5)
			if err := tx.Rollback(); err != nil {
				return 0, err
			}
			if rerr == nil {
				return 0, errors.New("the report went through a locked table")
			}
			return math.NaN(), rerr
		}
		return 1, tr.Report(ctx, 1, 1)
	}
	var mu sync.Mutex
	var results []search.Result
	onTrial := func(r search.Result) {
		mu.Lock()
		defer mu.Unlock()
		results = append(results, r)
	}
	err := s.Optimize(ctx, search.Options{Workers: 1, Objective: obj, OnTrial: onTrial})
	if !errors.Is(err, search.ErrStorage) || !strings.Contains(err.Error(), "lock") {
		t.Fatalf("Optimize when the storage fails a trial: %v, want ErrStorage", err)
	}
	last := results[len(results)-1]
	if last.Number != 2 || last.State != storage.Fail || last.RetriedBy == 0 {
		t.Fatalf("OnTrial of the failed trial: %+v, want trial 2 given back", last)
	}
	counts, counted, err := s.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Trials 0 and 1 count, and the retry of trial 2 in its place.
	if counted != 3 || counts[storage.Complete] != 2 || counts[storage.Waiting] != 1 || counts[storage.Running] != 0 {
		t.Errorf("after the storage error: %v, %d counted; want trials 0 and 1 complete and the retry of 2 waiting in its place", counts, counted)
	}
	// The retry runs with the next call, which spends the budget exactly.
	if err := s.Optimize(ctx, search.Options{Workers: 1, Objective: func(ctx context.Context, tr *search.Trial) (float64, error) { return 1, nil }}); err != nil {
		t.Fatal(err)
	}
	trials, err := s.Trials(ctx)
	if err != nil {
		t.Fatal(err)
	}
	complete := 0
	for _, tr := range trials {
		switch {
		case tr.State == storage.Complete:
			complete++
		case tr.Number == 2 && tr.State == storage.Fail && strings.Contains(tr.FailReason, "storage error"):
		default:
			t.Errorf("trial %d: %s %q", tr.Number, tr.State, tr.FailReason)
		}
		if tr.Attempt == 1 && tr.RetryOf == 2 && tr.Params["optimizer"] != trials[2].Params["optimizer"] {
			t.Errorf("the retry of trial 2 runs with %v, trial 2 had %v", tr.Params, trials[2].Params)
		}
	}
	if complete != 6 {
		t.Errorf("%d complete trials, want the budget of 6", complete)
	}
}

// A sampler that cannot read the study fails as the storage: Ask gives the
// trial back and says so, and the trial does not count.
func TestAnAskWhoseSamplerCannotReadTheStudyGivesTheTrialBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, locker := lockableStudy(t, "tpe", 3)
	tx, err := locker.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `LOCK TABLE trial_values IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	_, err = s.Ask(ctx, search.AskOptions{})
	if rerr := tx.Rollback(); rerr != nil {
		t.Fatal(rerr)
	}
	if !errors.Is(err, search.ErrStorage) || errors.Is(err, search.ErrProposalFailed) {
		t.Fatalf("Ask while the study cannot be read: %v, want ErrStorage", err)
	}
	counts, counted, err := s.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if counts[storage.Fail] != 1 || counts[storage.Waiting] != 1 || counted != 1 {
		t.Errorf("after the failed ask: %v, %d counted; want the trial given back and its retry waiting in its place", counts, counted)
	}
	tr, err := s.Ask(ctx, search.AskOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Tell(ctx, 1); err != nil {
		t.Fatal(err)
	}
}

// lockableStudy is an external study on a PostgreSQL schema whose sessions
// give up waiting for a lock after 200 ms, and a second connection to
// hold locks with.
func lockableStudy(t *testing.T, sampler string, budget int) (*search.Study, *sql.DB) {
	t.Helper()
	url := pgtest.Schema(t) + "&lock_timeout=200"
	st, err := storage.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	locker, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { locker.Close() })
	return createExternal(t, st, "infra", sampler, budget), locker
}
