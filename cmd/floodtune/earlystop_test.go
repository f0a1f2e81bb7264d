package main

import (
	"regexp"
	"strconv"
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

// study show says how much the runs trained against the epochs they count
// when trials fork from stored plain epochs and stop early.
func TestStudyShowSaysWhatForkingAndEarlyStoppingSaved(t *testing.T) {
	t.Parallel()
	storageURL, specPath := newStudyEnv(t, `
dataset: {name: gauss2d, train_size: 400, val_size: 200, test_size: 400, label_noise: 0.2}
model: {hidden: [32]}
training: {optimizer: momentum, lr: 0.02, batch_size: 50, epochs: 12}
search: {sampler: random, trials: 6, seed: 3, common_seed: true, early_stopping: {patience: 4}}
space:
  flood_level: {type: categorical, choices: ["0", "0.2", "0.3"]}
`)
	mustRun(t, "study", "create", "fk", "--spec", specPath, "--storage", storageURL)
	mustRun(t, "study", "optimize", "fk", "--workers", "1", "--storage", storageURL)
	out, _ := mustRun(t, "study", "show", "fk", "--storage", storageURL)
	m := regexp.MustCompile(`training: (\d+) epochs trained of the (\d+) the runs count; (\d+) trials started from stored plain epochs, (\d+) stopped early\n`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("study show lacks the training line:\n%s", out)
	}
	trained, run, forked := atoi(t, m[1]), atoi(t, m[2]), atoi(t, m[3])
	if forked == 0 || trained >= run || run > 6*12 {
		t.Errorf("trained %d of %d epochs, %d trials forked: want forks that saved epochs\n%s", trained, run, forked, out)
	}
	if strings.Contains(out, "checkpoints stored") {
		t.Errorf("the study has ended, yet study show reports stored checkpoints:\n%s", out)
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
