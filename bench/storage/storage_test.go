package storagebench

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/c-bata/goptuna"
)

// Every backend ends a short optimisation of 8 concurrent workers with
// exactly the trials asked for, all complete, numbered without gaps, each
// with the objective's value of its parameters.
func TestAskTellEndsWithTheTrialsAskedFor(t *testing.T) {
	for _, sampler := range []string{"random", "tpe"} {
		for _, name := range dbBackends {
			t.Run(sampler+"/"+name, func(t *testing.T) {
				t.Parallel()
				be := openBackend(t, t.Context(), name)
				const workers, perWorker = 8, 3
				study, _, err := optimize(t.Context(), be, sampler, workers, perWorker)
				if err != nil {
					t.Fatal(err)
				}
				if err := checkOptimized(be, study, workers*perWorker); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

// Every backend of BenchmarkStudy holds and returns the same trials, in
// the same order, and TPE suggests from them. (Goptuna's TPE draws from
// math/rand's global source as well as its seeded one, so its suggestions
// cannot be compared between backends.)
func TestStoredStudiesHoldTheSameTrials(t *testing.T) {
	const n = 40 // > TPE's 10 start-up trials, with pruned trials among them
	var want []goptuna.FrozenTrial
	for i := range n {
		want = append(want, studyTrial(i))
	}
	for _, name := range append(dbBackends, memory) {
		st := newStudy(t, t.Context(), name)
		if err := st.grow(n); err != nil {
			t.Fatal(err)
		}
		got, err := st.s.GetAllTrials(st.id)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != n {
			t.Fatalf("%s: %d trials, want %d", name, len(got), n)
		}
		for i, g := range got {
			if err := sameTrial(g, want[i], i); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
		gs, err := goptuna.LoadStudy(st.name, goptuna.StudyOptionStorage(st.s), goptuna.StudyOptionLogger(nil))
		if err != nil {
			t.Fatal(err)
		}
		v, err := newTPE(1).Sample(gs, goptuna.FrozenTrial{ID: -1, Number: n, State: goptuna.TrialStateRunning}, "x", distX)
		if err != nil {
			t.Fatalf("%s: TPE: %v", name, err)
		}
		if v < distX.Low || v > distX.High {
			t.Errorf("%s: TPE suggests x = %v, outside [%v, %v]", name, v, distX.Low, distX.High)
		}
	}
}

func sameTrial(got, want goptuna.FrozenTrial, number int) error {
	switch {
	case got.Number != number:
		return fmt.Errorf("trial %d has number %d", number, got.Number)
	case got.State != want.State:
		return fmt.Errorf("trial %d is %s, want %s", number, got.State, want.State)
	case got.Value != want.Value:
		return fmt.Errorf("trial %d has value %v, want %v", number, got.Value, want.Value)
	case !reflect.DeepEqual(got.InternalParams, want.InternalParams):
		return fmt.Errorf("trial %d has internal params %v, want %v", number, got.InternalParams, want.InternalParams)
	case !reflect.DeepEqual(got.Params, want.Params):
		return fmt.Errorf("trial %d has params %v, want %v", number, got.Params, want.Params)
	case !reflect.DeepEqual(got.Distributions, want.Distributions):
		return fmt.Errorf("trial %d has distributions %v, want %v", number, got.Distributions, want.Distributions)
	case !reflect.DeepEqual(got.IntermediateValues, want.IntermediateValues):
		return fmt.Errorf("trial %d has intermediate values %v, want %v", number, got.IntermediateValues, want.IntermediateValues)
	}
	return nil
}
