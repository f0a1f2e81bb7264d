package search_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/floodtune/floodtune/search"
	"github.com/floodtune/floodtune/storage"
)

// forkSpec is a flood-level search with common seeds on a dataset whose
// plain run's minibatch losses fall over many epochs, so that the levels
// enqueued below first flood at different epochs. It takes the
// search-block options under test.
const forkSpec = `
dataset: {name: gauss2d, train_size: 400, val_size: 200, test_size: 400, label_noise: 0.2}
model: {hidden: [32]}
training: {optimizer: momentum, lr: 0.02, batch_size: 50, epochs: 12}
search: {sampler: random, trials: 8, seed: 3, common_seed: true%s}
space:
  flood_level: {type: float, low: 0, high: 1}
`

// forkLevels are the levels enqueued after the baseline: some flood from
// the first epoch on, some only after several.
var forkLevels = []float64{0.45, 0.4, 0.35, 0.3, 0.6, 0.25, 0.2}

// runForkStudy runs forkSpec with extra, on one worker, and returns its
// trials and store.
func runForkStudy(t *testing.T, extra string) ([]search.TrialRecord, *search.Study) {
	t.Helper()
	ctx := context.Background()
	spec, err := search.ParseSpec(fmt.Appendf(nil, forkSpec, extra))
	if err != nil {
		t.Fatal(err)
	}
	s, err := search.Create(ctx, openSQLite(t), "fork", spec)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range forkLevels {
		if _, err := s.Enqueue(ctx, map[string]any{"flood_level": b}, nil); err != nil {
			t.Fatal(err)
		}
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
	}
	return trials, s
}

// outcome is what a trial's run gave: its value, its epochs' values and
// the figures of its final and best epochs, without timings and the
// attributes that say how it ran.
func outcome(tr search.TrialRecord) string {
	attrs := maps.Clone(tr.UserAttrs)
	for _, k := range []string{"seconds", search.ElapsedCurveAttr, search.ForkedFromEpochAttr, search.ForkedFromTrialAttr, search.TrainedEpochsAttr, "worker"} {
		delete(attrs, k)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "value %v\n", tr.Value)
	for _, step := range slices.Sorted(maps.Keys(tr.Intermediate)) {
		fmt.Fprintf(&b, "epoch %d: %v\n", step, tr.Intermediate[step])
	}
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		fmt.Fprintf(&b, "%s=%s\n", k, attrs[k])
	}
	return b.String()
}

// A search whose trials start from stored checkpoints gives every trial
// the value, epoch values and figures of the same search trained from
// scratch, bit for bit, with the run's value taken at its last or its
// best epoch, and with early stopping; the trials that did start from a
// checkpoint trained fewer epochs, and the study's checkpoints are gone
// once its last trial has ended.
func TestAForkedSearchIsTheSearchFromScratch(t *testing.T) {
	t.Parallel()
	for _, extra := range []string{"", ", epoch_value: best", ", epoch_value: best, early_stopping: {patience: 2}"} {
		t.Run(strings.TrimPrefix(extra, ", "), func(t *testing.T) {
			t.Parallel()
			forked, s := runForkStudy(t, extra)
			scratch, _ := runForkStudy(t, extra+", fork: false")
			if len(forked) != len(scratch) {
				t.Fatalf("%d trials forked, %d from scratch", len(forked), len(scratch))
			}
			starts, saved := 0, 0
			for i, tr := range forked {
				if got, want := outcome(tr), outcome(scratch[i]); got != want {
					t.Errorf("trial %d (b = %v) differs from its run from scratch:\n%s\nfrom scratch:\n%s", tr.Number, tr.Params["flood_level"], got, want)
				}
				if _, ok := scratch[i].UserAttrs[search.ForkedFromEpochAttr]; ok {
					t.Errorf("trial %d of the search with fork: false started from a checkpoint", tr.Number)
				}
				from, _ := strconv.Atoi(tr.UserAttrs[search.ForkedFromEpochAttr])
				epochs, _ := strconv.Atoi(tr.UserAttrs["epochs"])
				trained, err := strconv.Atoi(tr.UserAttrs[search.TrainedEpochsAttr])
				if err != nil || trained != epochs-from {
					t.Errorf("trial %d: trained %q epochs of %d, started from epoch %d", tr.Number, tr.UserAttrs[search.TrainedEpochsAttr], epochs, from)
				}
				if from > 0 {
					starts++
					saved += from
					if src, err := strconv.Atoi(tr.UserAttrs[search.ForkedFromTrialAttr]); err != nil || src >= tr.Number {
						t.Errorf("trial %d started from the run of trial %q, not an earlier one", tr.Number, tr.UserAttrs[search.ForkedFromTrialAttr])
					}
				}
			}
			t.Logf("%d of %d trials started from a checkpoint, %d epochs not trained again", starts, len(forked), saved)
			if starts < 3 {
				t.Errorf("%d trials started from a checkpoint, want at least 3: the test tells little", starts)
			}
			n, bytes, err := s.Store().CheckpointUsage(context.Background(), s.ID())
			if err != nil || n != 0 {
				t.Errorf("after the study's last trial: %d checkpoints (%d bytes) left, err %v", n, bytes, err)
			}
		})
	}
}

// With search.checkpoint_mb: 0 nothing is stored, and no trial starts from
// a checkpoint; a study not yet ended keeps its checkpoints.
func TestCheckpointsAreBoundedAndKeptUntilTheStudyEnds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	trials, _ := runForkStudy(t, ", checkpoint_mb: 0")
	for _, tr := range trials {
		if e, ok := tr.UserAttrs[search.ForkedFromEpochAttr]; ok {
			t.Errorf("trial %d started from the checkpoint of epoch %s with checkpoint_mb: 0", tr.Number, e)
		}
	}

	spec, err := search.ParseSpec(fmt.Appendf(nil, forkSpec, ""))
	if err != nil {
		t.Fatal(err)
	}
	s, err := search.Create(ctx, openSQLite(t), "fork", spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Optimize(ctx, search.Options{Workers: 1, MaxTrials: 1}); err != nil {
		t.Fatal(err)
	}
	n, bytes, err := s.Store().CheckpointUsage(ctx, s.ID())
	if err != nil || n == 0 || bytes == 0 {
		t.Errorf("after the baseline, with 7 trials to go: %d checkpoints (%d bytes), err %v; want some", n, bytes, err)
	}
}

// The spec's forking and early-stopping options are checked before
// anything is written, each with a message that says what to change.
func TestForkAndEarlyStoppingOptionsAreValidated(t *testing.T) {
	t.Parallel()
	const space = "\nspace: {flood_level: {type: float, low: 0, high: 1}}"
	for _, c := range []struct{ search, want string }{
		{"fork: true", "search.fork: trials start from each other's runs only when they share a seed: set search.common_seed: true"},
		{"common_seed: true, checkpoint_mb: -1", "search.checkpoint_mb: must be between 0 and 1048576, got -1"},
		{"early_stopping: {patience: 0}", "search.early_stopping.patience: must be between 1 and 100000 epochs, got 0"},
		{"early_stopping: {patience: 3, min_delta: -0.1}", "search.early_stopping.min_delta: must be a finite number ≥ 0, got -0.1"},
		{"early_stopping: {patience: 3, min_delta: .nan}", "search.early_stopping.min_delta: must be a finite number ≥ 0, got NaN"},
		{"early_stopping: {patience: 3, after: 2}", "after"},
	} {
		_, err := search.ParseSpec([]byte("dataset: {name: gauss2d}\nsearch: {trials: 4, " + c.search + "}" + space))
		if !errors.Is(err, search.ErrBadSpec) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("search: {%s}: err = %v, want one that says %q", c.search, err, c.want)
		}
	}
	for _, ok := range []string{"common_seed: true", "common_seed: true, fork: false", "common_seed: true, checkpoint_mb: 0",
		"early_stopping: {patience: 1}", "early_stopping: {patience: 4, min_delta: 0.005}"} {
		if _, err := search.ParseSpec([]byte("dataset: {name: gauss2d}\nsearch: {trials: 4, " + ok + "}" + space)); err != nil {
			t.Errorf("search: {%s}: %v", ok, err)
		}
	}
	ext := "trainer: external\nsearch: {trials: 4, objective: score, %s}\nspace: {flood_level: {type: float, low: 0, high: 1}}"
	for _, c := range []struct{ search, want string }{
		{"common_seed: true, fork: true", "search.fork: forks runs of the built-in trainer"},
		{"early_stopping: {patience: 2}", "search.early_stopping: stops runs of the built-in trainer"},
	} {
		_, err := search.ParseSpec(fmt.Appendf(nil, ext, c.search))
		if !errors.Is(err, search.ErrBadSpec) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("external, search: {%s}: err = %v, want one that says %q", c.search, err, c.want)
		}
	}
	s, err := search.ParseSpec([]byte("dataset: {name: gauss2d}\nsearch: {trials: 4, common_seed: true}" + space))
	if err != nil || !s.Forking() {
		t.Errorf("common_seed: true forks by default: Forking() = %v, err %v", s != nil && s.Forking(), err)
	}
}
