package search_test

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/floodtune/floodtune/internal/pgtest"
	"github.com/floodtune/floodtune/search"
	"github.com/floodtune/floodtune/storage"
)

// TestHelperOptimizeProcess is one worker process of
// TestThreeProcessesShareOneStudy; it does nothing in a normal run.
func TestHelperOptimizeProcess(t *testing.T) {
	url := os.Getenv("FLOODTUNE_HELPER_URL")
	if url == "" {
		t.Skip("only run as a helper process")
	}
	ctx := context.Background()
	st, err := storage.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// Real training, small: the trials overlap across processes.
	study := os.Getenv("FLOODTUNE_HELPER_STUDY")
	if study == "" {
		study = "shared"
	}
	if err := search.Optimize(ctx, st, study, search.Options{Workers: 2, Name: os.Getenv("FLOODTUNE_HELPER_NAME")}); err != nil {
		t.Fatal(err)
	}
}

func TestThreeProcessesShareOneStudy(t *testing.T) {
	t.Parallel()
	url := pgtest.Schema(t)
	ctx := context.Background()
	st, err := storage.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	spec, err := search.ParseSpec([]byte(`
dataset: {name: gauss2d, train_size: 400, val_size: 100, test_size: 1000, label_noise: 0.1}
model: {hidden: [32, 32]}
training: {optimizer: adam, lr: 0.01, batch_size: 50, epochs: 10}
search: {sampler: tpe, trials: 15, seed: 7}
space:
  flood_level: {type: float, low: 0, high: 0.6}
`))
	if err != nil {
		t.Fatal(err)
	}
	study, err := search.Create(ctx, st, "shared", spec)
	if err != nil {
		t.Fatal(err)
	}
	var procs []*exec.Cmd
	for i := 0; i < 3; i++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperOptimizeProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), "FLOODTUNE_HELPER_URL="+url, "FLOODTUNE_HELPER_NAME=proc"+strconv.Itoa(i))
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs = append(procs, cmd)
	}
	for i, cmd := range procs {
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("process %d: %v", i, err)
			}
		case <-time.After(5 * time.Minute):
			cmd.Process.Kill()
			t.Fatalf("process %d did not finish", i)
		}
	}
	trials, err := st.Trials(ctx, study.ID())
	if err != nil {
		t.Fatal(err)
	}
	workers := map[string]bool{}
	for i, tr := range trials {
		if tr.Number != i || tr.State != storage.Complete {
			t.Errorf("trial %d: number %d, state %s", i, tr.Number, tr.State)
		}
		workers[tr.Worker[:5]] = true
	}
	if len(trials) != 15 {
		t.Fatalf("%d trials, want exactly the budget of 15", len(trials))
	}
	t.Logf("trials ran in %v", workers)
	if len(workers) < 2 {
		t.Errorf("trials ran in %d process(es), want the study shared: %v", len(workers), workers)
	}
}

// TestACNNStudyIsSharedByTwoProcesses runs a study of convolutional
// networks on MNIST end to end: two worker processes on one PostgreSQL
// study, the architecture searched beside the flood level, and trials
// forked from the stored checkpoints of others.
func TestACNNStudyIsSharedByTwoProcesses(t *testing.T) {
	t.Parallel()
	url := pgtest.Schema(t)
	ctx := context.Background()
	st, err := storage.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	spec, err := search.ParseSpec([]byte(`
dataset: {name: mnist, train_size: 600, val_size: 100, test_size: 300, label_noise: 0.2}
model: {type: cnn, hidden: [16]}
training: {optimizer: momentum, lr: 0.1, batch_size: 30, epochs: 3}
search: {sampler: tpe, trials: 8, seed: 3, common_seed: true}
space:
  flood_level: {type: float, low: 0, high: 1.2}
  conv: {type: categorical, choices: ["4:5:p2:pool2", "4:3:pool2,8:3:pool2"]}
`))
	if err != nil {
		t.Fatal(err)
	}
	study, err := search.Create(ctx, st, "cnn", spec)
	if err != nil {
		t.Fatal(err)
	}
	var procs []*exec.Cmd
	for i := range 2 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperOptimizeProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), "FLOODTUNE_HELPER_URL="+url, "FLOODTUNE_HELPER_STUDY=cnn", "FLOODTUNE_HELPER_NAME=cnn"+strconv.Itoa(i))
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs = append(procs, cmd)
	}
	for i, cmd := range procs {
		if err := cmd.Wait(); err != nil {
			t.Errorf("process %d: %v", i, err)
		}
	}
	trials, err := st.Trials(ctx, study.ID())
	if err != nil {
		t.Fatal(err)
	}
	if len(trials) != 8 {
		t.Fatalf("%d trials, want exactly the budget of 8", len(trials))
	}
	workers, archs := map[string]bool{}, map[string]int{}
	forked, lowest := 0, 1.0
	for _, tr := range trials {
		if tr.State != storage.Complete {
			t.Errorf("trial %d: state %s, attributes %v", tr.Number, tr.State, tr.UserAttrs)
			continue
		}
		workers[tr.Worker[:4]] = true
		params, err := spec.TrialParams(tr)
		if err != nil {
			t.Fatal(err)
		}
		archs[params["conv"].(string)]++
		// Above chance (10 classes) on the clean test images after 3
		// epochs on 600 noisy ones.
		acc, _ := search.AttrFloat(tr, search.TestAccAttr)
		lowest = min(lowest, acc)
		if !(acc > 0.2) {
			t.Errorf("trial %d (%v): test accuracy %v", tr.Number, params, acc)
		}
		if tr.UserAttrs[search.ForkedFromEpochAttr] != "" {
			forked++
		}
	}
	t.Logf("architectures %v, workers %v, %d trials forked, the lowest test accuracy %.3f", archs, workers, forked, lowest)
	if len(workers) < 2 {
		t.Errorf("trials ran in %d process(es), want the study shared: %v", len(workers), workers)
	}
	if len(archs) < 2 {
		t.Errorf("the trials tried %v: want both architectures", archs)
	}
}
