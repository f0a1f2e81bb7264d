package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/floodtune/floodtune/storage"
)

// The environment of a helper process (TestHelperProcess).
const (
	envHelperURL    = "FLOODTUNE_STORAGE_HELPER_URL"
	envHelperStudy  = "FLOODTUNE_STORAGE_HELPER_STUDY"
	envHelperWorker = "FLOODTUNE_STORAGE_HELPER_WORKER"
	envHelperPeers  = "FLOODTUNE_STORAGE_HELPER_PEERS" // how many processes start creating trials together
	helperResult    = "helper created "
)

// Several processes, each with its own store, share a study's budget.
func TestProcessConformance(t *testing.T) {
	runConformance(t, []conformanceTest{
		{"four processes creating trials fill the budget exactly", func(t *testing.T, e *env) {
			const processes, budget = 4, 40
			newStudy(t, e.st, storage.NewStudy{Name: "shared", Budget: budget})
			type result struct {
				worker string
				out    bytes.Buffer
				err    error
			}
			results := make([]*result, processes)
			done := make(chan struct{})
			for i := range results {
				r := &result{worker: fmt.Sprintf("process-%d", i)}
				results[i] = r
				cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
				cmd.Env = append(os.Environ(),
					envHelperURL+"="+e.url, envHelperStudy+"=shared", envHelperWorker+"="+r.worker,
					envHelperPeers+"="+strconv.Itoa(processes))
				cmd.Stdout, cmd.Stderr = &r.out, &r.out
				go func() {
					r.err = cmd.Run()
					done <- struct{}{}
				}()
			}
			for range results {
				<-done
			}
			total := 0
			for _, r := range results {
				if r.err != nil {
					t.Fatalf("%s: %v\n%s", r.worker, r.err, r.out.String())
				}
				_, after, ok := strings.Cut(r.out.String(), helperResult)
				n, err := strconv.Atoi(strings.Fields(after + " x")[0])
				if !ok || err != nil {
					t.Fatalf("%s printed no result:\n%s", r.worker, r.out.String())
				}
				t.Logf("%s created %d trials", r.worker, n)
				total += n
			}
			st, err := e.st.StudyByName(t.Context(), "shared")
			if err != nil {
				t.Fatal(err)
			}
			ts := getTrials(t, e.st, st.ID)
			checkNumbers(t, ts, budget)
			byWorker := map[string]int{}
			for _, tr := range ts {
				byWorker[tr.Worker]++
				if tr.State != storage.Complete || tr.Value != float64(tr.Number) {
					t.Errorf("trial %d: %s with value %v", tr.Number, tr.State, tr.Value)
				}
			}
			if total != budget {
				t.Errorf("the processes say they created %d trials, want %d", total, budget)
			}
			for _, r := range results {
				if !strings.Contains(r.out.String(), fmt.Sprintf("%s%d", helperResult, byWorker[r.worker])) {
					t.Errorf("%s created %d trials by the store, but said:\n%s", r.worker, byWorker[r.worker], r.out.String())
				}
			}
		}},
	})
}

// TestHelperProcess is not a test: it is the body of the processes that
// TestProcessConformance starts. It creates and completes trials in a study
// until its budget is spent, then prints how many it created.
func TestHelperProcess(t *testing.T) {
	url := os.Getenv(envHelperURL)
	if url == "" {
		t.Skip("run by TestProcessConformance only")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := storage.Open(ctx, url)
	if err != nil {
		fmt.Fprintf(os.Stderr, "open: %v\n", err)
		os.Exit(2)
	}
	defer st.Close()
	study, err := st.StudyByName(ctx, os.Getenv(envHelperStudy))
	if err != nil {
		fmt.Fprintf(os.Stderr, "study: %v\n", err)
		os.Exit(2)
	}
	worker := os.Getenv(envHelperWorker)
	// Start together: each says it is ready in a study attribute and waits
	// for the others.
	peers, _ := strconv.Atoi(os.Getenv(envHelperPeers))
	if err := st.SetStudyAttr(ctx, study.ID, storage.SystemAttr, "ready "+worker, "yes"); err != nil {
		fmt.Fprintf(os.Stderr, "say ready: %v\n", err)
		os.Exit(2)
	}
	for {
		s, err := st.Study(ctx, study.ID)
		if err != nil {
			fmt.Fprintf(os.Stderr, "wait for the others: %v\n", err)
			os.Exit(2)
		}
		if len(s.SystemAttrs) >= peers {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	created := 0
	for {
		tr, err := st.CreateTrial(ctx, study.ID, storage.NewTrial{State: storage.Running, Worker: worker, Value: nan})
		if errors.Is(err, storage.ErrBudgetExhausted) {
			break
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "create trial: %v\n", err)
			os.Exit(2)
		}
		created++
		time.Sleep(time.Millisecond) // a trial takes time: let the others in
		if err := st.Finish(ctx, tr.ID, worker, storage.Complete, float64(tr.Number)); err != nil {
			fmt.Fprintf(os.Stderr, "finish trial: %v\n", err)
			os.Exit(2)
		}
	}
	fmt.Printf("%s%d\n", helperResult, created)
}
