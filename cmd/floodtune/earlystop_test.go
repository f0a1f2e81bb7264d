package main

import (
	"regexp"
	"strings"
	"testing"
)

// study show answers "did flooding help?" against both plain baselines:
// the plain trial's last epoch and its best validation epoch (early
// stopping).
func TestStudyShowComparesWithEarlyStopping(t *testing.T) {
	t.Parallel()
	for _, value := range []string{"last", "best"} {
		t.Run(value, func(t *testing.T) {
			t.Parallel()
			storageURL, specPath := newStudyEnv(t, `
dataset: {name: gauss2d, train_size: 300, val_size: 200, test_size: 1000, label_noise: 0.3}
model: {hidden: [32, 32]}
training: {optimizer: adam, lr: 0.02, batch_size: 30, epochs: 15}
search: {sampler: random, trials: 5, seed: 5, epoch_value: `+value+`}
space:
  flood_level: {type: float, low: 0, high: 0.8}
`)
			mustRun(t, "study", "create", "es", "--spec", specPath, "--storage", storageURL)
			mustRun(t, "study", "optimize", "es", "--workers", "1", "--storage", storageURL)
			out, _ := mustRun(t, "study", "show", "es", "--storage", storageURL)
			line := regexp.MustCompile(`early stopping: the baseline at its best epoch \((\d+) of 15\), val_acc [0-9.]+, test acc [0-9.]+`)
			if !line.MatchString(out) {
				t.Fatalf("study show lacks the early-stopping baseline:\n%s", out)
			}
			if !strings.Contains(out, "early stopping: the best trial's test acc is") && !strings.Contains(out, "the baseline is the best trial") {
				t.Errorf("study show does not compare the best trial with early stopping:\n%s", out)
			}
		})
	}
}
