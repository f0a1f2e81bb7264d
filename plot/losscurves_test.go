package plot_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/floodtune/floodtune/plot"
	"github.com/floodtune/floodtune/storage"
)

// withLossCurves gives every complete trial of specs test and training
// loss curves of n epochs that depend on its flood level.
func withLossCurves(t *testing.T, specs []trialSpec, n int) []*storage.Trial {
	trials := makeTrials(t, specs)
	for i, tr := range trials {
		if tr.State != storage.Complete {
			continue
		}
		b := specs[i].b
		var test, train []string
		for e := 1; e <= n; e++ {
			test = append(test, fmt.Sprint(0.5+b/float64(e)))
			train = append(train, fmt.Sprint(b+1/float64(e)))
		}
		tr.UserAttrs["test_loss_curve"] = "[" + strings.Join(test, ",") + "]"
		tr.UserAttrs["train_loss_curve"] = "[" + strings.Join(train, ",") + "]"
	}
	return trials
}

func TestPrepareSpreadsTheLossCurvesOverTheFloodLevels(t *testing.T) {
	t.Parallel()
	var specs []trialSpec
	for i := 0; i < 15; i++ {
		specs = append(specs, trialSpec{storage.Complete, 0.1 * float64(i), 0.70 + 0.001*float64(i%7), nan, i == 0, nil})
	}
	specs[9].value = 0.9 // the best, at b = 0.9
	d, err := plot.Prepare(sampleStudy, withLossCurves(t, specs, 6))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.TestLoss) != plot.MaxLossCurves || len(d.TrainLoss) != plot.MaxLossCurves {
		t.Fatalf("%d test and %d training curves, want %d each", len(d.TestLoss), len(d.TrainLoss), plot.MaxLossCurves)
	}
	var best, baseline bool
	for i, c := range d.TestLoss {
		if i > 0 && c.FloodLevel <= d.TestLoss[i-1].FloodLevel {
			t.Errorf("curves not in flood-level order: %v after %v", c.FloodLevel, d.TestLoss[i-1].FloodLevel)
		}
		best = best || c.Best && c.Number == 9
		baseline = baseline || c.Baseline && c.Number == 0
		if len(c.Points) != 6 || c.Points[5].Epoch != 6 || c.Points[5].Value != 0.5+c.FloodLevel/6 {
			t.Errorf("curve of trial %d: %v", c.Number, c.Points)
		}
	}
	if !best || !baseline {
		t.Errorf("the best trial (%v) or the baseline (%v) is missing from the curves", best, baseline)
	}
	// The extremes of the flood levels are drawn.
	if d.TestLoss[0].FloodLevel != 0 || d.TestLoss[len(d.TestLoss)-1].FloodLevel < 1.39 {
		t.Errorf("curves from b = %v to %v, want the range's ends", d.TestLoss[0].FloodLevel, d.TestLoss[len(d.TestLoss)-1].FloodLevel)
	}
}

func TestWriteDrawsTheLossFiguresOnlyWhenTrialsRecordedThem(t *testing.T) {
	t.Parallel()
	for _, recorded := range []bool{false, true} {
		trials := makeTrials(t, sampleSpecs())
		if recorded {
			trials = withLossCurves(t, sampleSpecs(), 4)
		}
		d, err := plot.Prepare(sampleStudy, trials)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		if _, err := d.Write(dir, plot.PNG); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{plot.TestLossFile, plot.TrainLossFile} {
			_, err := os.Stat(filepath.Join(dir, f+".png"))
			if recorded != (err == nil) {
				t.Errorf("curves recorded %v: %s.png exists: %v", recorded, f, err == nil)
			}
		}
	}
}
