package search_test

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"testing"

	"github.com/floodtune/floodtune/search"
	"github.com/floodtune/floodtune/storage"
)

// A trial's value is its last epoch's, its best epoch's, or the mean of its
// last epochs, as search.epoch_value says; every trial records its best
// epoch, and the baseline (and, valued at their best epoch, every trial) the
// test accuracy there.
func TestTheEpochValueOfABuiltInTrial(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		value     string
		objective string
		value2    func(steps []float64, maximize bool) float64
	}{
		{"last", "val_acc", func(v []float64, _ bool) float64 { return v[len(v)-1] }},
		{"best", "val_acc", func(v []float64, _ bool) float64 { return extreme(v, true) }},
		{"best", "val_loss", func(v []float64, _ bool) float64 { return extreme(v, false) }},
		{"mean_last", "val_acc", func(v []float64, _ bool) float64 { return (v[len(v)-1] + v[len(v)-2] + v[len(v)-3]) / 3 }},
	} {
		t.Run(c.value+" "+c.objective, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			st := openSQLite(t)
			window := ""
			if c.value == "mean_last" {
				window = ", epoch_window: 3"
			}
			spec, err := search.ParseSpec(fmt.Appendf(nil, `
dataset: {name: gauss2d, train_size: 300, val_size: 100, test_size: 500, label_noise: 0.3}
model: {hidden: [16]}
training: {optimizer: adam, lr: 0.05, batch_size: 50, epochs: 8}
search: {sampler: random, trials: 4, seed: 8, objective: %s, epoch_value: %s%s}
space:
  flood_level: {type: float, low: 0, high: 0.8}
`, c.objective, c.value, window))
			if err != nil {
				t.Fatal(err)
			}
			s, err := search.Create(ctx, st, "epochs", spec)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Optimize(ctx, search.Options{Workers: 1}); err != nil {
				t.Fatal(err)
			}
			trials, err := s.Trials(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, tr := range trials {
				if tr.State != storage.Complete {
					t.Fatalf("trial %d: %s %s", tr.Number, tr.State, tr.FailReason)
				}
				steps := make([]float64, len(tr.Intermediate))
				for step, v := range tr.Intermediate {
					steps[step-1] = v
				}
				if want := c.value2(steps, c.objective == "val_acc"); math.Abs(tr.Value-want) > 1e-12 {
					t.Errorf("trial %d: value %v, want %v from its epochs %v", tr.Number, tr.Value, want, steps)
				}
				epoch, err := strconv.Atoi(tr.UserAttrs[search.BestEpochAttr])
				if err != nil || epoch < 1 || epoch > 8 || steps[epoch-1] != extreme(steps, c.objective == "val_acc") {
					t.Errorf("trial %d: best epoch %q of %v", tr.Number, tr.UserAttrs[search.BestEpochAttr], steps)
				}
				_, tested := tr.UserAttrs[search.BestTestAccAttr]
				if want := tr.Baseline || c.value == "best"; tested != want {
					t.Errorf("trial %d (baseline %v): test accuracy at the best epoch recorded: %v, want %v", tr.Number, tr.Baseline, tested, want)
				}
			}
		})
	}
	if _, err := search.ParseSpec([]byte("dataset: {name: gauss2d}\nsearch: {trials: 2, epoch_value: median}")); err == nil {
		t.Error("epoch_value: median was accepted")
	}
	if _, err := search.ParseSpec([]byte("dataset: {name: gauss2d}\nsearch: {trials: 2, epoch_window: 3}")); err == nil {
		t.Error("epoch_window without epoch_value: mean_last was accepted")
	}
}

// extreme is the largest of v, or the smallest; the first of equals.
func extreme(v []float64, largest bool) float64 {
	best := v[0]
	for _, x := range v[1:] {
		if largest && x > best || !largest && x < best {
			best = x
		}
	}
	return best
}

// With common_seed, trials that differ only in their flood level train from
// one seed; the others, and every trial without it, have seeds of their own.
func TestCommonSeedsAreSharedByTrialsThatDifferOnlyInTheirFloodLevel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, common := range []bool{false, true} {
		st := openSQLite(t)
		spec, err := search.ParseSpec(fmt.Appendf(nil, `
trainer: external
search: {sampler: random, trials: 12, seed: 4, common_seed: %v}
space:
  flood_level: {type: float, low: 0, high: 1}
  flood: {type: categorical, choices: [flood, iflood]}
  width: {type: categorical, choices: ["64", "128"]}
`, common))
		if err != nil {
			t.Fatal(err)
		}
		s, err := search.Create(ctx, st, "crn", spec)
		if err != nil {
			t.Fatal(err)
		}
		seeds := map[int64][]string{}
		byWidth := map[string]map[int64]bool{}
		for range 12 {
			tr, err := s.Ask(ctx, search.AskOptions{})
			if err != nil {
				t.Fatal(err)
			}
			w := tr.Params["width"].(string)
			seeds[tr.Seed] = append(seeds[tr.Seed], w)
			if byWidth[w] == nil {
				byWidth[w] = map[int64]bool{}
			}
			byWidth[w][tr.Seed] = true
			if err := tr.Tell(ctx, tr.FloodLevel()); err != nil {
				t.Fatal(err)
			}
		}
		if common {
			for w, ss := range byWidth {
				if len(ss) != 1 {
					t.Errorf("common_seed: the trials of width %s have %d seeds", w, len(ss))
				}
			}
			if len(seeds) != len(byWidth) {
				t.Errorf("common_seed: %d seeds for %d widths: %v", len(seeds), len(byWidth), seeds)
			}
		} else if len(seeds) != 12 {
			t.Errorf("without common_seed, 12 trials have %d seeds", len(seeds))
		}
	}
}
