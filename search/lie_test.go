package search

import (
	"testing"

	"github.com/c-bata/goptuna"
)

// The constant liar: a running trial with parameters looks complete at the
// worst complete value, in the study's direction; the others, and the
// caller's slice, are untouched.
func TestLieGivesRunningTrialsTheWorstCompleteValue(t *testing.T) {
	params := map[string]float64{"x": 0.5}
	trials := []goptuna.FrozenTrial{
		{Number: 0, State: goptuna.TrialStateComplete, Value: 0.7},
		{Number: 1, State: goptuna.TrialStateComplete, Value: 0.2},
		{Number: 2, State: goptuna.TrialStateRunning, InternalParams: params},
		{Number: 3, State: goptuna.TrialStateRunning},                      // no parameters yet: left out of the lie
		{Number: 4, State: goptuna.TrialStatePruned, Value: -5},            // not complete: not a value to lie with
		{Number: 5, State: goptuna.TrialStateFail, InternalParams: params}, // failed stays failed
	}
	for _, c := range []struct {
		maximize bool
		worst    float64
	}{{true, 0.2}, {false, 0.7}} {
		got := lie(trials, c.maximize)
		if got[2].State != goptuna.TrialStateComplete || got[2].Value != c.worst {
			t.Errorf("maximize %v: the running trial is %v at %v, want complete at %v", c.maximize, got[2].State, got[2].Value, c.worst)
		}
		for _, i := range []int{0, 1, 3, 4, 5} {
			if got[i].State != trials[i].State || got[i].Value != trials[i].Value {
				t.Errorf("maximize %v: trial %d changed to %v at %v", c.maximize, i, got[i].State, got[i].Value)
			}
		}
		if trials[2].State != goptuna.TrialStateRunning {
			t.Fatal("lie changed the caller's slice")
		}
	}
	// With nothing complete there is no value to lie with.
	running := []goptuna.FrozenTrial{{State: goptuna.TrialStateRunning, InternalParams: params}}
	if got := lie(running, true); got[0].State != goptuna.TrialStateRunning {
		t.Errorf("with no complete trial the running one became %v", got[0].State)
	}
}
