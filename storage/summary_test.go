package storage_test

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/floodtune/floodtune/storage"
)

func TestSummaries(t *testing.T) {
	runConformance(t, []conformanceTest{{"Summaries counts, finds the best and its flood level, and counts reaped trials", func(t *testing.T, e *env) {
		ctx := t.Context()
		max := newStudy(t, e.st, storage.NewStudy{Name: "max", Direction: storage.Maximize, Budget: 10})
		min := newStudy(t, e.st, storage.NewStudy{Name: "min", Direction: storage.Minimize})
		newStudy(t, e.st, storage.NewStudy{Name: "empty", Direction: storage.Maximize})
		dist := []byte(`{"type":"UniformDistribution","attributes":{"low":0,"high":2}}`)
		for i, v := range []float64{0.5, 0.9, 0.7} {
			for _, st := range []*storage.Study{max, min} {
				if _, err := e.st.CreateTrial(ctx, st.ID, storage.NewTrial{State: storage.Complete, Value: v,
					Params: map[string]storage.Param{"flood_level": {Value: float64(i) / 10, Distribution: dist}}}); err != nil {
					t.Fatal(err)
				}
			}
		}
		// One running trial whose worker stopped an hour ago, one alive:
		// the stale heartbeat is moved back in the table rather than
		// slept for, so that the live one is never as old as the grace
		// however slow the machine (a 200 ms grace after a 300 ms sleep
		// reaped it too when the heartbeat and the reap were 200 ms
		// apart).
		stale := newTrial(t, e.st, max.ID, running("w"))
		newTrial(t, e.st, max.ID, running("w2"))
		ageHeartbeat(t, e, stale.ID, time.Hour)
		if r, err := e.st.Reap(ctx, time.Minute, 0); err != nil || len(r) != 1 || r[0].TrialID != stale.ID {
			t.Fatalf("Reap = %+v, %v; want trial %d reaped", r, err, stale.ID)
		}
		sums, err := e.st.Summaries(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(sums) != 3 {
			t.Fatalf("%d summaries, want 3", len(sums))
		}
		got := map[string]storage.Summary{}
		for _, s := range sums {
			got[s.Name] = s
		}
		if s := got["max"]; s.Best != 0.9 || s.BestFloodLevel != 0.1 || s.Budget != 10 || s.Reaped != 1 ||
			s.Trials[storage.Complete] != 3 || s.Trials[storage.Fail] != 1 || s.Trials[storage.Running] != 1 {
			t.Errorf("max: %+v", s)
		}
		if s := got["min"]; s.Best != 0.5 || s.BestFloodLevel != 0 || s.Reaped != 0 {
			t.Errorf("min: %+v", s)
		}
		if s := got["empty"]; !math.IsNaN(s.Best) || !math.IsNaN(s.BestFloodLevel) || len(s.Trials) != 0 {
			t.Errorf("empty: %+v", s)
		}
	}}})
}

// ageHeartbeat moves the last heartbeat of trial id back by d, in the
// table: a worker that stopped that long ago, without the test waiting.
func ageHeartbeat(t testing.TB, e *env, id int64, d time.Duration) {
	t.Helper()
	query := fmt.Sprintf("UPDATE trials SET heartbeat_at = heartbeat_at - make_interval(secs => %d) WHERE id = $1", int(d.Seconds()))
	if e.backend == "sqlite" {
		query = fmt.Sprintf("UPDATE trials SET heartbeat_at = heartbeat_at - %d WHERE id = $1", d.Microseconds())
	}
	if res, err := rawDB(t, e).ExecContext(t.Context(), query, id); err != nil {
		t.Fatalf("%s: %v", query, err)
	} else if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("%s: %d rows, want 1", query, n)
	}
}
