package search

import (
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/c-bata/goptuna"
)

// halving is asynchronous successive halving (Li et al., "A System for
// Massively Parallel Hyperparameter Tuning", 2020) as Optuna has it: rung k
// lies at step minResource·η^k; a trial that reaches a rung records its
// value there and goes on only if that value is among the best 1/η of the
// values every trial recorded at the rung (the best of them, while fewer
// than η trials have reached it).
//
// It replaces Goptuna v0.9.0's successivehalving.Pruner, which counts a
// trial's current rung as the highest it completed rather than the next
// one: it records rung 0 again at every step, with the step's value, and
// compares values of different steps at one rung. On a 12-trial search of
// 20 epochs it pruned every trial, the best ones included, so that the
// study had no complete trial.
type halving struct {
	minResource int // the step of rung 0
	eta         int // the reduction factor
}

// rungKey is the system attribute that holds a trial's value at a rung
// (Goptuna's and Optuna's name).
func rungKey(rung int) string { return fmt.Sprintf("completed_rung_%d", rung) }

func (p *halving) Prune(study *goptuna.Study, trial goptuna.FrozenTrial) (bool, error) {
	step, ok := trial.GetLatestStep()
	if !ok {
		return false, nil
	}
	value := trial.IntermediateValues[step]
	if math.IsNaN(value) {
		return true, nil
	}
	// The rungs the trial completed, from 0 on.
	rung := 0
	for {
		if _, done := trial.SystemAttrs[rungKey(rung)]; !done {
			break
		}
		rung++
	}
	var others []goptuna.FrozenTrial
	for ; step >= p.minResource*int(math.Pow(float64(p.eta), float64(rung))); rung++ {
		if others == nil {
			all, err := study.GetTrials()
			if err != nil {
				return false, err
			}
			others = slices.DeleteFunc(all, func(t goptuna.FrozenTrial) bool { return t.ID == trial.ID })
		}
		if err := study.Storage.SetTrialSystemAttr(trial.ID, rungKey(rung), strconv.FormatFloat(value, 'g', -1, 64)); err != nil {
			return false, err
		}
		if !p.promotable(rung, value, others, study.Direction()) {
			return true, nil
		}
	}
	return false, nil
}

// promotable reports whether value is among the best 1/η of the values
// recorded at rung by others and itself.
func (p *halving) promotable(rung int, value float64, others []goptuna.FrozenTrial, dir goptuna.StudyDirection) bool {
	values := []float64{value}
	for _, t := range others {
		s, ok := t.SystemAttrs[rungKey(rung)]
		if !ok {
			continue
		}
		if v, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(v) {
			values = append(values, v)
		}
	}
	slices.Sort(values)
	if dir == goptuna.StudyDirectionMaximize {
		slices.Reverse(values)
	}
	// values[k] is the k+1-th best; the best len/η go on, and at least one.
	k := max(len(values)/p.eta-1, 0)
	if dir == goptuna.StudyDirectionMaximize {
		return value >= values[k]
	}
	return value <= values[k]
}
