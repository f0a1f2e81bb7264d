package main

import (
	"bytes"
	"errors"
	"math"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/floodtune/floodtune/search"
	"github.com/floodtune/floodtune/storage"
)

// The pipeline spends its study's budget exactly, half by ask/tell and half
// by Optimize, every trial ends, and the best trial reads back with the
// pipeline's own names and types and beats chance on the clean validation
// set. A second run on the same storage loads the study and runs nothing.
func TestRunSpendsTheBudgetAndFindsAGoodTrial(t *testing.T) {
	ctx := t.Context()
	url := "sqlite:" + filepath.Join(t.TempDir(), "pipeline.db")

	var out bytes.Buffer
	if err := run(ctx, url, &out); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	t.Logf("output:\n%s", out.String())

	spec, err := search.ParseSpec([]byte(specYAML))
	if err != nil {
		t.Fatal(err)
	}
	budget := spec.Search.Trials
	if budget != 12 {
		t.Fatalf("the spec's budget is %d; the expected lines assume 12", budget)
	}
	for _, line := range []string{"ask/tell: 6 trials\n", "optimize: 6 trials\n", "best trial: #"} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("the output lacks %q", line)
		}
	}

	st, err := storage.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	study, err := search.Load(ctx, st, StudyName)
	if err != nil {
		t.Fatal(err)
	}
	checkStudy(t, study, budget)

	// Again on the same storage: the study exists, its budget is spent.
	out.Reset()
	if err := run(ctx, url, &out); err != nil {
		t.Fatalf("second run: %v\noutput:\n%s", err, out.String())
	}
	for _, line := range []string{"ask/tell: 0 trials\n", "optimize: 0 trials\n"} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("the second run's output lacks %q:\n%s", line, out.String())
		}
	}
	checkStudy(t, study, budget)
}

func checkStudy(t *testing.T, study *search.Study, budget int) {
	t.Helper()
	ctx := t.Context()

	if study.Budget() != budget {
		t.Errorf("the study's budget is %d, want %d", study.Budget(), budget)
	}
	counts, counted, err := study.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if counted != budget {
		t.Errorf("%d trials count toward the budget, want exactly %d (%v)", counted, budget, counts)
	}
	trials, err := study.Trials(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(trials) != budget {
		t.Errorf("%d trials stored, want %d (none retried)", len(trials), budget)
	}

	asked, baselines, withInitScale := 0, 0, 0
	for _, tr := range trials {
		switch tr.State {
		case storage.Complete:
			if math.IsNaN(tr.Value) || tr.Value < 0 || tr.Value > 1 {
				t.Errorf("trial %d is complete with val_acc %v", tr.Number, tr.Value)
			}
		case storage.Pruned:
		default:
			t.Errorf("trial %d is %s (%s), want complete or pruned", tr.Number, tr.State, tr.FailReason)
		}
		if strings.Contains(tr.Worker, "/ask-") {
			asked++
		}
		if tr.Baseline {
			baselines++
			if tr.Params["flood_level"] != 0.0 {
				t.Errorf("the baseline trial %d trains at flood level %v", tr.Number, tr.Params["flood_level"])
			}
		}
		if v, ok := tr.Params["init_scale"].(float64); ok {
			withInitScale++
			if v < 0.1 || v > 1 {
				t.Errorf("trial %d suggested init_scale %v outside [0.1, 1]", tr.Number, v)
			}
		}
	}
	if asked != budget/2 {
		t.Errorf("%d trials ran by ask/tell, want %d", asked, budget/2)
	}
	if baselines != 1 {
		t.Errorf("%d baseline trials, want 1", baselines)
	}
	if withInitScale == 0 {
		t.Error("no trial carries the define-by-run parameter init_scale")
	}

	best, err := study.Best(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !(best.Value > 0.5) {
		t.Errorf("the best validation accuracy is %v, no better than chance", best.Value)
	}
	params, err := study.BestParams(ctx)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(params))
	for name := range params {
		names = append(names, name)
	}
	sort.Strings(names)
	if want := []string{"flood", "flood_level", "hidden", "init_scale", "lr"}; !slices.Equal(names, want) {
		t.Errorf("the best trial's parameters are %v, want %v", names, want)
	}
	if m, ok := params["flood"].(string); !ok || (m != "flood" && m != "iflood") {
		t.Errorf("flood = %v (%T), want the string flood or iflood", params["flood"], params["flood"])
	}
	if h, ok := params["hidden"].(int); !ok || h < 4 || h > 32 || h%4 != 0 {
		t.Errorf("hidden = %v (%T), want an int in 4, 8, ..., 32", params["hidden"], params["hidden"])
	}
	if b, ok := params["flood_level"].(float64); !ok || b < 0 || b > 1 {
		t.Errorf("flood_level = %v (%T), want a float64 in [0, 1]", params["flood_level"], params["flood_level"])
	}
	if lr, ok := params["lr"].(float64); !ok || lr < 0.01 || lr > 1 {
		t.Errorf("lr = %v (%T), want a float64 in [0.01, 1]", params["lr"], params["lr"])
	}
}

// The pipeline's data are what its comments say: the sizes, exactly 20% of
// the training labels flipped, and the same draw from the same seed.
func TestMakeData(t *testing.T) {
	a, b := makeData(dataSeed), makeData(dataSeed)
	if len(a.trainX) != trainSize*dims || len(a.trainY) != trainSize || len(a.valX) != valSize*dims || len(a.valY) != valSize {
		t.Fatalf("sizes: train %d×%d, val %d×%d", len(a.trainY), len(a.trainX)/max(len(a.trainY), 1), len(a.valY), len(a.valX)/max(len(a.valY), 1))
	}
	if !slices.Equal(a.trainX, b.trainX) || !slices.Equal(a.trainY, b.trainY) || !slices.Equal(a.valY, b.valY) {
		t.Error("two draws from the same seed differ")
	}
	// A training label disagrees with the side of its point (the sign of
	// the sum of its features, the Bayes rule) for the flipped 20% and for
	// the clean points that fell on the wrong side (about 8%).
	disagree := func(x, y []float64) float64 {
		n := 0
		for i := range y {
			sum := 0.0
			for _, v := range x[i*dims : (i+1)*dims] {
				sum += v
			}
			if (sum > 0) != (y[i] == 1) {
				n++
			}
		}
		return float64(n) / float64(len(y))
	}
	if got := disagree(a.valX, a.valY); got < 0.02 || got > 0.15 {
		t.Errorf("%.3f of the clean validation labels are on the wrong side, want about 0.08", got)
	}
	if got := disagree(a.trainX, a.trainY); got < 0.2 || got > 0.4 {
		t.Errorf("%.3f of the noisy training labels are on the wrong side, want about 0.2 + 0.6·0.08", got)
	}
}

// A study of the pipeline's name made from another spec is refused, not
// continued.
func TestRunRefusesAStudyOfAnotherSpec(t *testing.T) {
	ctx := t.Context()
	url := "sqlite:" + filepath.Join(t.TempDir(), "pipeline.db")
	st, err := storage.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	other, err := search.ParseSpec([]byte(strings.Replace(specYAML, "trials: 12", "trials: 3", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := search.Create(ctx, st, StudyName, other); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err = run(ctx, url, &out)
	if err == nil || !errors.Is(err, search.ErrSpecMismatch) {
		t.Fatalf("run on a study of another spec: %v, want the spec refused", err)
	}
}
