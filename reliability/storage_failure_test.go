package reliability

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/floodtune/floodtune/internal/pgtest"
	"github.com/floodtune/floodtune/storage"
	"github.com/jackc/pgx/v5"
)

// A storage that refuses the worker's writes (a table held locked past the
// lock timeout, as a long migration or a stuck maintenance job would) is a
// failure of the infrastructure, not of the trial: the worker gives its
// trial back, does not count it toward the budget, and exits non-zero with
// the storage's error; the next run retries the trial and spends the
// budget exactly.
func TestAStorageThatRefusesWritesStopsTheWorkerWithoutFailingTrials(t *testing.T) {
	t.Parallel()
	const budget = 6
	e := newEnvAt(t, pgtest.Schema(t)+"&lock_timeout=300", budget)
	w := e.start("worker")
	var victim *storage.Trial
	until(t, 60*time.Second, "the worker runs a trial", func() bool {
		victim = e.runningTrial()
		return victim != nil
	})
	ctx := context.Background()
	locker, err := pgx.Connect(ctx, e.url)
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Close(ctx)
	tx, err := locker.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Every epoch's report writes trial_values, and the sampler reads it.
	if _, err := tx.Exec(ctx, `LOCK TABLE trial_values IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	werr := w.wait(t, 2*time.Minute)
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	var exit *exec.ExitError
	if werr == nil || !strings.Contains(w.out.String(), "lock") {
		t.Fatalf("the worker whose storage refused its writes exited with %v:\n%s", werr, w.out.String())
	} else if !errors.As(werr, &exit) || exit.ExitCode() != 1 {
		t.Errorf("exit %v, want status 1", werr)
	}
	var givenBack int
	for _, tr := range e.trials() {
		switch {
		case tr.State == storage.Running:
			t.Errorf("trial %d is still running after its worker exited", tr.Number)
		case tr.State == storage.Fail && tr.RetriedBy == 0:
			t.Errorf("trial %d failed and counts toward the budget: %s", tr.Number, tr.SystemAttrs[storage.FailReasonAttr])
		case tr.State == storage.Fail:
			givenBack++
			if !strings.Contains(tr.SystemAttrs[storage.FailReasonAttr], "storage error") {
				t.Errorf("trial %d was given back with the reason %q", tr.Number, tr.SystemAttrs[storage.FailReasonAttr])
			}
		}
	}
	if givenBack != 1 {
		t.Errorf("%d trials given back, want the one the storage failed", givenBack)
	}
	again := e.start("worker again")
	if err := again.wait(t, 3*time.Minute); err != nil {
		t.Fatalf("the run after the storage came back: %v", err)
	}
	e.checkStudy(budget)
}
