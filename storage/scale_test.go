package storage_test

import (
	"fmt"
	"testing"

	"github.com/floodtune/floodtune/storage"
)

// scaleTrial is trial i of the scale test, with 3 parameters, 5
// intermediate values and 2 attributes.
func scaleTrial(i int) storage.NewTrial {
	states := []storage.State{storage.Complete, storage.Pruned, storage.Fail}
	return storage.NewTrial{
		State: states[i%len(states)], Value: float64(i) / 7,
		Params: map[string]storage.Param{
			"flood":  uniform(float64(i%100)/100, 0, 1),
			"lr":     uniform(1/float64(i+1), 0, 1),
			"epochs": {Value: float64(i % 20), Distribution: []byte(`{"name":"IntUniformDistribution","attributes":{"high":20,"low":0}}`)},
		},
		Intermediate: map[int]float64{0: float64(i), 1: float64(i) / 2, 2: float64(i) / 3, 3: float64(i) / 4, 4: float64(i) / 5},
		UserAttrs:    map[string]string{"note": fmt.Sprint("trial ", i)},
		SystemAttrs:  map[string]string{"seed": fmt.Sprint(i * 31)},
	}
}

// Reading a study's trials takes a constant number of queries, not one or
// more per trial: a thousand trials load in well under a second.
func TestScaleConformance(t *testing.T) {
	runConformance(t, []conformanceTest{
		{"a thousand trials load at once with every detail", func(t *testing.T, e *env) {
			const n, workers = 1000, 8
			st := newStudy(t, e.st, storage.NewStudy{})
			race(workers, func(w int) {
				for i := w; i < n; i += workers {
					if _, err := e.st.CreateTrial(t.Context(), st.ID, scaleTrial(i)); err != nil {
						t.Errorf("CreateTrial: %v", err)
						return
					}
				}
			})
			if t.Failed() {
				return
			}
			// How fast is measured by bench/storage, not asserted here.
			ts, err := e.st.Trials(t.Context(), st.ID)
			if err != nil {
				t.Fatal(err)
			}
			checkNumbers(t, ts, n)
			// The trials were created in parallel: find each one's index by
			// its user attribute, then compare everything.
			seen := map[int]bool{}
			for _, tr := range ts {
				var i int
				if _, err := fmt.Sscanf(tr.UserAttrs["note"], "trial %d", &i); err != nil || seen[i] {
					t.Fatalf("trial %d has note %q", tr.Number, tr.UserAttrs["note"])
				}
				seen[i] = true
				nt := scaleTrial(i)
				want := &storage.Trial{ID: tr.ID, StudyID: st.ID, Number: tr.Number, State: nt.State, Value: nt.Value,
					StartedAt: tr.StartedAt, CompletedAt: tr.CompletedAt, HeartbeatAt: tr.HeartbeatAt,
					Params: nt.Params, Intermediate: nt.Intermediate, UserAttrs: nt.UserAttrs, SystemAttrs: nt.SystemAttrs}
				if d := trialDiff(tr, want); d != "" {
					t.Errorf("trial %d (created as %d): %s", tr.Number, i, d)
				}
				if tr.StartedAt.IsZero() || tr.CompletedAt.IsZero() {
					t.Errorf("trial %d: started %v, completed %v", tr.Number, tr.StartedAt, tr.CompletedAt)
				}
			}
			// Goptuna reads them all at every suggestion of TPE.
			g := storage.NewGoptuna(t.Context(), e.st, "w")
			all, err := g.GetAllTrials(int(st.ID))
			if err != nil || len(all) != n {
				t.Fatalf("GetAllTrials = %d trials, %v", len(all), err)
			}
			for i, ft := range all {
				if len(ft.Params) != 3 || len(ft.IntermediateValues) != 5 || len(ft.UserAttrs) != 1 || len(ft.SystemAttrs) != 1 || ft.Number != i {
					t.Fatalf("GetAllTrials: trial %d: %+v", i, ft)
				}
			}
		}},
	})
}

// BenchmarkTrials measures loading a study of 1,000 trials.
func BenchmarkTrials(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			st := openStore(b, be.url(b))
			study := newStudy(b, st, storage.NewStudy{})
			for i := range 1000 {
				newTrial(b, st, study.ID, scaleTrial(i))
			}
			for b.Loop() {
				if _, err := st.Trials(b.Context(), study.ID); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
