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
	if err := search.Optimize(ctx, st, "shared", search.Options{Workers: 2, Name: os.Getenv("FLOODTUNE_HELPER_NAME")}); err != nil {
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
