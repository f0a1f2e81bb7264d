package search

import (
	"math/rand/v2"
	"testing"

	"github.com/c-bata/goptuna"
)

// runHalving runs trials one after another on an in-memory study under p,
// trial i reporting curve(i, step) at steps 1..steps and stopping when p
// prunes it; it returns the step each trial stopped at (steps: it
// completed).
func runHalving(t *testing.T, p goptuna.Pruner, n, steps int, curve func(i, step int) float64) []int {
	t.Helper()
	study, err := goptuna.CreateStudy("halving", goptuna.StudyOptionDirection(goptuna.StudyDirectionMaximize),
		goptuna.StudyOptionStorage(goptuna.NewInMemoryStorage()))
	if err != nil {
		t.Fatal(err)
	}
	stopped := make([]int, n)
	for i := range n {
		id, err := study.Storage.CreateNewTrial(study.ID)
		if err != nil {
			t.Fatal(err)
		}
		stopped[i] = steps
		for step := 1; step <= steps; step++ {
			if err := study.Storage.SetTrialIntermediateValue(id, step, curve(i, step)); err != nil {
				t.Fatal(err)
			}
			frozen, err := study.Storage.GetTrial(id)
			if err != nil {
				t.Fatal(err)
			}
			prune, err := p.Prune(study, frozen)
			if err != nil {
				t.Fatal(err)
			}
			if prune {
				stopped[i] = step
				break
			}
		}
		state := goptuna.TrialStateComplete
		if stopped[i] < steps {
			state = goptuna.TrialStatePruned
		}
		if err := study.Storage.SetTrialState(id, state); err != nil {
			t.Fatal(err)
		}
	}
	return stopped
}

// Successive halving stops a trial at rung k (step η^k) unless it is among
// the best 1/η of the trials that reached that rung, and never stops the
// trial that is best at every step: on 12 trials of 20 steps whose curves
// never cross, the best trial and the first one (with nobody to compare
// with) complete, and the others stop at a rung, each at the first rung
// where it is not in the top quarter.
func TestSuccessiveHalvingKeepsTheBestAndStopsAtRungs(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	base := rng.Perm(12)
	best := 0
	for i, b := range base {
		if b > base[best] {
			best = i
		}
	}
	curve := func(i, step int) float64 { return float64(base[i])/100 + float64(step)/1000 }
	stopped := runHalving(t, &halving{minResource: 1, eta: 4}, 12, 20, curve)
	t.Logf("levels %v: stopped at steps %v", base, stopped)
	if stopped[best] != 20 || stopped[0] != 20 {
		t.Errorf("the best trial (%d) or the first stopped: %v", best, stopped)
	}
	for i, s := range stopped {
		if s != 20 && s != 1 && s != 4 && s != 16 {
			t.Errorf("trial %d stopped at step %d, not at a rung (1, 4, 16)", i, s)
		}
		// At rung 0 trial i competes with every earlier trial: it goes on
		// only if it is within the best max(1, (i+1)/4) of them.
		better := 0
		for j := range i {
			if base[j] > base[i] {
				better++
			}
		}
		if keep := max((i+1)/4, 1); (better < keep) != (s > 1) {
			t.Errorf("trial %d: %d earlier trials better, %d go on at rung 0, yet it stopped at step %d", i, better, keep, s)
		}
	}
}
