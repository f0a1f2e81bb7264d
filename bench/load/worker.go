package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/floodtune/floodtune/search"
	"github.com/floodtune/floodtune/storage"
)

// workResult is what the workers of one process did: the latency of every
// claim (an Ask that leased a trial), report and finish (a Tell that
// succeeded), the numbers of the trials they told, their errors by kind
// (with one message of each), and when the last tell returned.
type workResult struct {
	Claims, Reports, Finishes []time.Duration
	Told                      []int
	Errors                    map[string]int
	Samples                   map[string]string
	LastTell                  int64 // Unix ns
}

func (r *workResult) merge(o *workResult) {
	r.Claims = append(r.Claims, o.Claims...)
	r.Reports = append(r.Reports, o.Reports...)
	r.Finishes = append(r.Finishes, o.Finishes...)
	r.Told = append(r.Told, o.Told...)
	if r.Errors == nil {
		r.Errors, r.Samples = map[string]int{}, map[string]string{}
	}
	for k, n := range o.Errors {
		r.Errors[k] += n
		if _, ok := r.Samples[k]; !ok {
			r.Samples[k] = o.Samples[k]
		}
	}
	r.LastTell = max(r.LastTell, o.LastTell)
}

func (r *workResult) errorCount() int {
	n := 0
	for _, c := range r.Errors {
		n += c
	}
	return n
}

// errorKind names an error by what it is, for counting.
func errorKind(op string, err error) string {
	k := "other"
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		k = "timeout"
	case errors.Is(err, search.ErrLeaseLost):
		k = "lease lost"
	case errors.Is(err, search.ErrUnavailable):
		k = "unavailable"
	case errors.Is(err, search.ErrProposalFailed):
		k = "proposal failed"
	case errors.Is(err, search.ErrStorage):
		k = "storage"
	case errors.Is(err, search.ErrTrialFinished):
		k = "trial finished"
	}
	return op + ": " + k
}

// workers runs g goroutines on the study name of st, each with a study
// handle of its own (as each worker of a fleet has): loop Ask → Report ×
// steps → Tell until the budget is spent and no trial waits (a trial given
// back after an error waits for the next Ask), or ctx ends. The goroutines
// load their handles, call loaded, then wait for start to close.
func workers(ctx context.Context, st *storage.Store, name string, proc, g, steps int, loaded func(), start <-chan struct{}) (*workResult, error) {
	studies := make([]*search.Study, g)
	for i := range studies {
		s, err := search.Load(ctx, st, name)
		if err != nil {
			return nil, err
		}
		studies[i] = s
	}
	loaded()
	var mu sync.Mutex
	total := &workResult{}
	var wg sync.WaitGroup
	for i := range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := work(ctx, studies[i], fmt.Sprintf("p%d-w%d", proc, i), steps, start)
			mu.Lock()
			total.merge(r)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if total.Errors == nil {
		total.Errors, total.Samples = map[string]int{}, map[string]string{}
	}
	return total, nil
}

// objectiveValue is the trivial objective: best at flood level 0.3.
func objectiveValue(floodLevel float64, step int) float64 {
	return float64(step)/100 - (floodLevel-0.3)*(floodLevel-0.3)
}

func work(ctx context.Context, s *search.Study, worker string, steps int, start <-chan struct{}) *workResult {
	r := &workResult{Errors: map[string]int{}, Samples: map[string]string{}}
	fail := func(op string, err error) {
		k := errorKind(op, err)
		r.Errors[k]++
		if _, ok := r.Samples[k]; !ok {
			r.Samples[k] = err.Error()
		}
	}
	pause := func(d time.Duration) {
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
	}
	<-start
	for k := 0; ctx.Err() == nil; k++ {
		t0 := time.Now()
		t, err := s.Ask(ctx, search.AskOptions{Worker: fmt.Sprintf("%s-%d", worker, k), Heartbeat: -1})
		if errors.Is(err, search.ErrBudgetExhausted) {
			// Done, unless a trial given back waits for a worker.
			byState, _, err := s.Counts(ctx)
			if err == nil && byState[storage.Waiting] == 0 {
				return r
			}
			pause(20 * time.Millisecond)
			continue
		}
		if err != nil {
			if ctx.Err() == nil {
				fail("claim", err)
			}
			pause(10 * time.Millisecond)
			continue
		}
		r.Claims = append(r.Claims, time.Since(t0))
		fl, ok := t.FloodLevel(), true
		for step := 1; step <= steps && ok; step++ {
			t0 = time.Now()
			if err := t.Report(ctx, step, objectiveValue(fl, step)); err != nil {
				fail("report", err)
				ok = false
				break
			}
			r.Reports = append(r.Reports, time.Since(t0))
		}
		if ok {
			t0 = time.Now()
			if err := t.Tell(ctx, objectiveValue(fl, steps)); err != nil {
				fail("finish", err)
				ok = false
			} else {
				r.Finishes = append(r.Finishes, time.Since(t0))
				r.Told = append(r.Told, t.Number)
				r.LastTell = time.Now().UnixNano()
			}
		}
		if !ok {
			// Given back: failed, and retried with the same parameters by
			// the next Ask; neither counts twice toward the budget.
			if err := t.Release(context.WithoutCancel(ctx)); err != nil {
				fail("give back", err)
			}
		}
	}
	return r
}

// childMain is a worker process of a run with several processes: it opens
// the store, loads the study, says "ready" on stdout, waits for a line on
// stdin, runs its goroutines and writes its workResult as JSON on stdout.
func childMain(dbURL, name string, proc, g, steps int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	st, err := storage.Open(ctx, dbURL)
	if err != nil {
		return err
	}
	defer st.Close()
	start := make(chan struct{})
	type out struct {
		r   *workResult
		err error
	}
	done := make(chan out, 1)
	ready := make(chan struct{})
	go func() {
		r, err := workers(ctx, st, name, proc, g, steps, func() { close(ready) }, start)
		done <- out{r, err}
	}()
	select {
	case <-ready:
	case o := <-done:
		return o.err
	}
	fmt.Println("ready")
	in := bufio.NewReader(os.Stdin)
	if _, err := in.ReadString('\n'); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	close(start)
	o := <-done
	if o.err != nil {
		return o.err
	}
	if err := json.NewEncoder(os.Stdout).Encode(o.r); err != nil {
		return err
	}
	// The store stays open (its server connections too, to be timed)
	// until the parent closes stdin.
	_, err = io.Copy(io.Discard, in)
	return err
}
