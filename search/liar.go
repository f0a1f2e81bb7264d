package search

import "github.com/c-bata/goptuna"

// liar is the sampler's view of a study under the constant-liar strategy:
// every running trial that already has parameters looks finished, with the
// worst value of the finished trials, so that TPE steers away from points
// being evaluated right now instead of proposing them again.
type liar struct {
	goptuna.Storage
	maximize bool
}

func (l liar) GetAllTrials(studyID int) ([]goptuna.FrozenTrial, error) {
	trials, err := l.Storage.GetAllTrials(studyID)
	if err != nil {
		return nil, err
	}
	return lie(trials, l.maximize), nil
}

// lie returns trials with every running trial that has parameters turned
// into a complete one at the worst complete value; trials itself is not
// changed. With no complete trial there is nothing to lie with.
func lie(trials []goptuna.FrozenTrial, maximize bool) []goptuna.FrozenTrial {
	worst, any := 0.0, false
	for _, t := range trials {
		if t.State != goptuna.TrialStateComplete {
			continue
		}
		if !any || (maximize && t.Value < worst) || (!maximize && t.Value > worst) {
			worst, any = t.Value, true
		}
	}
	if !any {
		return trials
	}
	out := make([]goptuna.FrozenTrial, len(trials))
	for i, t := range trials {
		if t.State == goptuna.TrialStateRunning && len(t.InternalParams) > 0 {
			t.State, t.Value = goptuna.TrialStateComplete, worst
		}
		out[i] = t
	}
	return out
}
