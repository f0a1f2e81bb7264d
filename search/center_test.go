package search_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"testing"

	"github.com/floodtune/floodtune/objective"
	"github.com/floodtune/floodtune/search"
	"github.com/floodtune/floodtune/storage"
)

// created creates a study of spec on a fresh store and returns its trials
// and its spec as stored.
func created(t *testing.T, spec string) (*search.Spec, []*storage.Trial) {
	t.Helper()
	ctx := context.Background()
	st := openSQLite(t)
	s, err := search.ParseSpec([]byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	study, err := search.Create(ctx, st, "c", s)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := search.LoadSpec(study.Stored())
	if err != nil {
		t.Fatal(err)
	}
	trials, err := st.Trials(ctx, study.ID())
	if err != nil {
		t.Fatal(err)
	}
	return stored, trials
}

func TestANoiseCentreMovesTheRangeOntoTheIrreducibleLoss(t *testing.T) {
	t.Parallel()
	spec, trials := created(t, `
dataset: {name: gauss2d, label_noise: 0.1, train_size: 200, val_size: 100, test_size: 500}
model: {hidden: [8]}
search: {trials: 5, seed: 2}
space:
  flood_level: {type: float, low: 0, high: 0.4, center: noise}
  lr: {type: float, low: 0.01, high: 0.1, log: true}
`)
	want := objective.IrreducibleLoss(0.1, 2) // 0.325
	p := spec.Space["flood_level"]
	if p.Estimate == nil || math.Abs(*p.Estimate-want) > 1e-12 {
		t.Fatalf("estimate %v, want the irreducible loss %v", p.Estimate, want)
	}
	if math.Abs(*p.Low-(want-0.2)) > 1e-12 || math.Abs(*p.High-(want+0.2)) > 1e-12 {
		t.Errorf("range [%v, %v], want [%v, %v]: the width 0.4 centred on the estimate", *p.Low, *p.High, want-0.2, want+0.2)
	}
	// No baseline (0 is outside the range): the one waiting trial is at
	// the estimate, the other options in the middle of their ranges.
	if len(trials) != 1 || trials[0].State != storage.Waiting || trials[0].SystemAttrs[search.EstimateAttr] != "noise" {
		t.Fatalf("trials %+v, want one waiting trial at the estimate", trials)
	}
	fixed := trials[0].SystemAttrs[storage.FixedParamsAttr]
	if fixed == "" {
		t.Fatal("the estimate's trial has no fixed parameters")
	}
}

func TestACentreIsCutAtZero(t *testing.T) {
	t.Parallel()
	spec, _ := created(t, `
dataset: {name: gauss2d, label_noise: 0.01, train_size: 200, val_size: 100, test_size: 500}
model: {hidden: [8]}
search: {trials: 5}
space:
  flood_level: {type: float, low: 0, high: 1, center: noise}
`)
	p := spec.Space["flood_level"]
	if *p.Low != 0 || *p.High != 1 {
		t.Errorf("range [%v, %v] around the estimate %v, want [0, 1]: cut at 0, the width kept", *p.Low, *p.High, *p.Estimate)
	}
}

func TestAnUnfloodedCentreTakesTheTrainingLossOfAShortPlainRun(t *testing.T) {
	t.Parallel()
	const spec = `
dataset: {name: gauss2d, label_noise: 0.1, train_size: 300, val_size: 100, test_size: 500}
model: {hidden: [32]}
training: {optimizer: adam, lr: 0.01, batch_size: 50}
search: {trials: 3, seed: 4}
space:
  flood_level: {type: float, low: 0, high: 0.5, center: unflooded, center_epochs: 4}
`
	stored, _ := created(t, spec)
	est := *stored.Space["flood_level"].Estimate
	// The same run, by hand: b = 0, 4 epochs, the study's split.
	s, _ := search.ParseSpec([]byte(spec))
	ds := s.DatasetSpec()
	ds.Seed = 4
	d, err := objective.LoadDataset(context.Background(), ds)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := s.Config(map[string]any{"flood_level": 0.0})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Epochs, cfg.Seed = 4, search.TrialSeed(4, -1)
	res, err := objective.Train(context.Background(), d, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if est != res.TrainLoss || !(est > 0) {
		t.Errorf("estimate %v, want the final training loss of the 4-epoch plain run, %v", est, res.TrainLoss)
	}
	// A second Create of the stored spec keeps the resolved range.
	again, _ := created(t, mustJSON(t, stored))
	if *again.Space["flood_level"].Estimate != est {
		t.Errorf("the stored spec was centred again: %v, then %v", est, *again.Space["flood_level"].Estimate)
	}
}

func TestCurvesRoundTrip(t *testing.T) {
	t.Parallel()
	h := []objective.EpochReport{{TrainLoss: 1.25}, {TrainLoss: math.NaN()}, {TrainLoss: 1.0 / 3}}
	s := search.FormatCurve(h, func(e objective.EpochReport) float64 { return e.TrainLoss })
	if s != "[1.25,null,0.333333]" {
		t.Errorf("FormatCurve = %s", s)
	}
	got, err := search.ParseCurve(s)
	if err != nil || len(got) != 3 || got[0] != 1.25 || !math.IsNaN(got[1]) || got[2] != 0.333333 {
		t.Errorf("ParseCurve(%s) = %v, %v", s, got, err)
	}
	if _, err := search.ParseCurve("[1,"); err == nil {
		t.Error("ParseCurve of a cut curve: no error")
	}
}

func TestTrialsRecordTheirCurves(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openSQLite(t)
	spec, err := search.ParseSpec([]byte(`
dataset: {name: gauss2d, train_size: 200, val_size: 100, test_size: 500, label_noise: 0.1}
model: {hidden: [16]}
training: {optimizer: adam, lr: 0.01, batch_size: 50, epochs: 3, test_curve: true}
search: {trials: 2, seed: 5}
space:
  flood_level: {type: float, low: 0, high: 0.5}
`))
	if err != nil {
		t.Fatal(err)
	}
	study, err := search.Create(ctx, st, "curves", spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := search.Optimize(ctx, st, "curves", search.Options{Workers: 1}); err != nil {
		t.Fatal(err)
	}
	trials, err := st.Trials(ctx, study.ID())
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range trials {
		for _, name := range []string{search.TrainLossCurveAttr, search.ValLossCurveAttr, search.TestLossCurveAttr, search.TestAccCurveAttr} {
			c, err := search.ParseCurve(tr.UserAttrs[name])
			if err != nil || len(c) != 3 {
				t.Fatalf("trial %d's %s = %q (%v), want 3 epochs", tr.Number, name, tr.UserAttrs[name], err)
			}
		}
		// The last epoch's test values are the final model's.
		acc, _ := search.ParseCurve(tr.UserAttrs[search.TestAccCurveAttr])
		loss, _ := search.ParseCurve(tr.UserAttrs[search.TestLossCurveAttr])
		if d := math.Abs(acc[2] - attrFloat(t, tr, "test_acc")); d > 1e-5 {
			t.Errorf("trial %d: last test accuracy of the curve %v, final %v", tr.Number, acc[2], tr.UserAttrs["test_acc"])
		}
		if d := math.Abs(loss[2] - attrFloat(t, tr, "test_loss")); d > 1e-5*loss[2] {
			t.Errorf("trial %d: last test loss of the curve %v, final %v", tr.Number, loss[2], tr.UserAttrs["test_loss"])
		}
	}
}

func mustJSON(t *testing.T, s *search.Spec) string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func attrFloat(t *testing.T, tr *storage.Trial, k string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(tr.UserAttrs[k], 64)
	if err != nil {
		t.Fatalf("trial %d's %s: %v", tr.Number, k, err)
	}
	return v
}

func TestSamplerSeedsDifferAcrossStudiesAndTrials(t *testing.T) {
	t.Parallel()
	seen := map[int64]string{}
	for seed := int64(0); seed < 64; seed++ {
		for number := 0; number < 256; number++ {
			s := search.SamplerSeed(seed, number)
			if prev, ok := seen[s]; ok {
				t.Fatalf("study seed %d, trial %d has the sampler seed of %s", seed, number, prev)
			}
			seen[s] = fmt.Sprintf("study seed %d, trial %d", seed, number)
		}
	}
}
