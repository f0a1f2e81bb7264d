package main

import (
	"encoding/json"
	"testing"
)

// What a trial records is what it trains with, at the top of a range too:
// the baseline at a fixed value on the range's top, a trial enqueued there,
// and the random sampler's draws, which reach every value of an int range.
func TestTheTopOfARangeIsKeptAndDrawn(t *testing.T) {
	t.Parallel()
	storageURL, specPath := newStudyEnv(t, `
dataset: {name: gauss2d, train_size: 200, val_size: 100, test_size: 200}
model: {hidden: [8]}
training: {optimizer: adam, lr: 0.01, batch_size: 100}
search: {sampler: random, trials: 40, seed: 3}
space:
  flood_level: {type: float, low: 0, high: 0.5}
  batch_size: {type: int, low: 10, high: 100, step: 10}
  epochs: {type: int, low: 1, high: 3}
`)
	mustRun(t, "study", "create", "top", "--spec", specPath, "--storage", storageURL)
	mustRun(t, "study", "enqueue", "top", "--param", "batch_size=100", "--param", "epochs=3", "--storage", storageURL)
	mustRun(t, "study", "optimize", "top", "--workers", "2", "--storage", storageURL)
	out, _ := mustRun(t, "study", "trials", "top", "--format", "json", "--storage", storageURL)
	var trials []trialOut
	if err := json.Unmarshal([]byte(out), &trials); err != nil {
		t.Fatal(err)
	}
	if len(trials) != 40 {
		t.Fatalf("%d trials, want 40", len(trials))
	}
	if b := trials[0].Params["batch_size"]; b != 100.0 {
		t.Errorf("the baseline ran with batch_size %v, want the fixed 100", b)
	}
	if b, e := trials[1].Params["batch_size"], trials[1].Params["epochs"]; b != 100.0 || e != 3.0 {
		t.Errorf("the trial enqueued at batch_size=100 epochs=3 ran with %v and %v", b, e)
	}
	if got := trials[1].UserAttrs["epochs"]; got != "3" {
		t.Errorf("the enqueued trial trained %s epochs, want 3", got)
	}
	seen := map[string]map[float64]bool{"batch_size": {}, "epochs": {}}
	for _, tr := range trials[2:] {
		for name := range seen {
			seen[name][tr.Params[name].(float64)] = true
		}
	}
	for name, top := range map[string]float64{"batch_size": 100, "epochs": 3} {
		if !seen[name][top] {
			t.Errorf("the random sampler never drew %s = %v in 38 trials: %v", name, top, seen[name])
		}
	}
}
