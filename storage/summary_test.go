package storage_test

import (
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
		newTrial(t, e.st, max.ID, running("w"))
		alive := newTrial(t, e.st, max.ID, running("w2"))
		time.Sleep(300 * time.Millisecond)
		if err := e.st.Heartbeat(ctx, alive.ID, "w2"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.st.Reap(ctx, 200*time.Millisecond, 0); err != nil {
			t.Fatal(err)
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
