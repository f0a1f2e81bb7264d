package reliability

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/floodtune/floodtune/internal/pgtest"
	"github.com/floodtune/floodtune/search"
	"github.com/floodtune/floodtune/storage"
)

// forkSpec is a flood-level search with common seeds whose levels repeat
// (categorical), on data whose plain run's minibatch losses fall over many
// epochs: trials start from each other's plain epochs. It takes more
// search options.
const forkSpec = `
dataset: {name: gauss2d, train_size: 1000, val_size: 400, test_size: 400, label_noise: 0.2}
model: {hidden: [32]}
training: {optimizer: momentum, lr: 0.005, batch_size: 50, epochs: 12}
search: {sampler: random, trials: 10, seed: 5, common_seed: true%s}
space:
  flood_level: {type: categorical, choices: ["0", "0.3", "0.385", "0.41", "0.45", "0.55", "0.7"]}
`

// Trials of one PostgreSQL study run by three processes start from the
// plain epochs another process stored, and end with the values, epoch
// values and figures of the same study trained from scratch, bit for bit;
// the study keeps its checkpoints, within its bound, while trials remain,
// and none once its last trial has ended.
func TestProcessesForkFromEachOthersCheckpoints(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnvOf(t, pgtest.Schema(t), fmt.Sprintf(forkSpec, ", checkpoint_mb: 1"))
	e.create("ref", fmt.Sprintf(forkSpec, ", fork: false"))

	// Process A runs the baseline, which stores its plain epochs.
	if err := e.start("process A", "--max-trials", "1").wait(t, 3*time.Minute); err != nil {
		t.Fatalf("process A: %v", err)
	}
	n, bytes, err := e.st.CheckpointUsage(ctx, e.study.ID)
	if err != nil || n == 0 || bytes > 1<<20 {
		t.Fatalf("after the baseline: %d checkpoints, %d bytes (bound 1 MiB), err %v", n, bytes, err)
	}
	t.Logf("the baseline stored %d checkpoints, %d bytes", n, bytes)

	// Processes B and C share the rest.
	b, c := e.start("process B"), e.start("process C")
	for _, w := range []*worker{b, c} {
		if err := w.wait(t, 3*time.Minute); err != nil {
			t.Errorf("%s: %v", w.name, err)
		}
	}
	e.checkStudy(10)
	if n, bytes, err := e.st.CheckpointUsage(ctx, e.study.ID); err != nil || n != 0 {
		t.Errorf("after the study's last trial: %d checkpoints (%d bytes) left, err %v", n, bytes, err)
	}
	if err := e.startStudy("ref", "reference").wait(t, 3*time.Minute); err != nil {
		t.Fatalf("the reference run: %v", err)
	}
	ref, err := e.st.StudyByName(ctx, "ref")
	if err != nil {
		t.Fatal(err)
	}
	scratch, err := e.st.Trials(ctx, ref.ID)
	if err != nil {
		t.Fatal(err)
	}
	forked := e.trials()
	if len(forked) != len(scratch) {
		t.Fatalf("%d trials forked, %d from scratch", len(forked), len(scratch))
	}
	baseline := workerPrefix(forked[0].Worker)
	starts := 0
	for i, tr := range forked {
		if got, want := runOutcome(tr), runOutcome(scratch[i]); got != want {
			t.Errorf("trial %d differs from its run from scratch:\n%s\nfrom scratch:\n%s", tr.Number, got, want)
		}
		from, ok := tr.UserAttrs[search.ForkedFromEpochAttr]
		t.Logf("trial %d: flood level choice %v, worker %s, started from epoch %q", tr.Number, tr.Params["flood_level"].Value, tr.Worker, from)
		if !ok {
			continue
		}
		starts++
		if src := tr.UserAttrs[search.ForkedFromTrialAttr]; src != "0" || workerPrefix(tr.Worker) == baseline {
			t.Errorf("trial %d (worker %s) started from epoch %s of trial %s; want the baseline's, stored by process A (%s)", tr.Number, tr.Worker, from, src, baseline)
		}
	}
	t.Logf("%d of %d trials started from the baseline's checkpoints", starts, len(forked))
	if starts == 0 {
		t.Error("no trial started from a checkpoint: the test tells nothing")
	}
}

// runOutcome is what a stored trial's run gave: its parameters, value,
// epoch values and the figures its run recorded, without timings and the
// attributes that say how it ran.
func runOutcome(tr *storage.Trial) string {
	attrs := maps.Clone(tr.UserAttrs)
	for _, k := range []string{"seconds", search.ElapsedCurveAttr, search.ForkedFromEpochAttr, search.ForkedFromTrialAttr, search.TrainedEpochsAttr} {
		delete(attrs, k)
	}
	s := fmt.Sprintf("state %s value %v\n", tr.State, tr.Value)
	for _, name := range slices.Sorted(maps.Keys(tr.Params)) {
		s += fmt.Sprintf("param %s=%v\n", name, tr.Params[name].Value)
	}
	for _, step := range slices.Sorted(maps.Keys(tr.Intermediate)) {
		s += fmt.Sprintf("epoch %d: %v\n", step, tr.Intermediate[step])
	}
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		s += k + "=" + strconv.Quote(attrs[k]) + "\n"
	}
	return s
}
