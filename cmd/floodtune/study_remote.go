package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/floodtune/floodtune/client"
	"github.com/floodtune/floodtune/objective"
	"github.com/floodtune/floodtune/search"
	"github.com/spf13/cobra"
)

// remoteOptions are study optimize's options with --server.
type remoteOptions struct {
	server, tokenFile, caFile string
	workers, maxTrials        int
	timeout                   time.Duration
}

// remoteToken reads the token of --token-file, else FLOODTUNE_TOKEN.
func remoteToken(file string) (string, error) {
	if file == "" {
		tok := strings.TrimSpace(os.Getenv("FLOODTUNE_TOKEN"))
		if tok == "" {
			return "", badInput(errors.New("--server needs a token: set FLOODTUNE_TOKEN or give --token-file (floodtune token create NAME --scope worker --study STUDY makes one)"))
		}
		return tok, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", badInput(fmt.Errorf("--token-file: %w", err))
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" || strings.ContainsAny(tok, " \n\t") {
		return "", badInput(fmt.Errorf("--token-file %s: want the token alone", file))
	}
	return tok, nil
}

// remoteClient is a client of --server, trusting --ca-file's certificates
// when given.
func remoteClient(o remoteOptions) (*client.Client, error) {
	tok, err := remoteToken(o.tokenFile)
	if err != nil {
		return nil, err
	}
	var opts []client.Option
	if o.caFile != "" {
		pem, err := os.ReadFile(o.caFile)
		if err != nil {
			return nil, badInput(fmt.Errorf("--ca-file: %w", err))
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, badInput(fmt.Errorf("--ca-file %s holds no PEM certificate", o.caFile))
		}
		opts = append(opts, client.WithTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))
	}
	c, err := client.New(o.server, tok, opts...)
	if err != nil {
		return nil, badInput(fmt.Errorf("--server: %w", err))
	}
	return c, nil
}

// remoteError turns the service's answers that are the caller's mistake
// into bad input.
func remoteError(err error, name string) error {
	var ae *client.Error
	if errors.As(err, &ae) {
		switch ae.Status {
		case 401, 403:
			return badInput(fmt.Errorf("the server refused the token: %s", ae.Message))
		case 404:
			return badInput(fmt.Errorf("the server has no study named %q", name))
		}
	}
	return err
}

// runRemote runs the built-in trainer's trials of study name through the
// service at --server, o.workers at a time, until its budget is spent or
// the command's bounds are reached. Interrupted, it gives the running
// trials back.
func runRemote(cmd *cobra.Command, name string, o remoteOptions) error {
	c, err := remoteClient(o)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	study, err := c.Study(ctx, name)
	if err != nil {
		return remoteError(err, name)
	}
	spec, err := search.ParseSpec(study.Spec)
	if err != nil {
		return fmt.Errorf("the spec of study %q that the server sent: %w", name, err)
	}
	if spec.External() {
		return badInput(fmt.Errorf("study %q is of an external trainer: its trials are trained by your own code (clients/python shows how), not by study optimize", name))
	}
	stderr := cmd.ErrOrStderr()
	data, err := spec.LoadData(ctx)
	if err != nil {
		return fmt.Errorf("load the data of study %q: %w", name, err)
	}
	// As study optimize on the storage does (search.Options.ReserveThreads):
	// each worker trains on one core.
	objective.SetBLASThreads(1)
	defer objective.ReserveWorkers(o.workers)()
	w := &remoteWorker{c: c, study: name, spec: spec, data: data, log: stderr, max: int64(o.maxTrials)}
	if o.timeout > 0 {
		w.until = time.Now().Add(o.timeout)
	}
	host, _ := os.Hostname()
	var wg sync.WaitGroup
	errs := make([]error, o.workers)
	for i := range o.workers {
		wg.Go(func() { errs[i] = w.loop(ctx, fmt.Sprintf("%s-%d-%d", sanitizeLabel(host), os.Getpid(), i)) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return remoteError(err, name)
	}
	final, err := c.Study(context.WithoutCancel(ctx), name)
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "study %q: %d of %d trials counted (%s)\n", name, final.Counted, final.Budget, countsLine(final.Counts))
	if final.Best != nil {
		p, _ := json.Marshal(final.Best.Params)
		fmt.Fprintf(cmd.OutOrStdout(), "best: trial %d, value %.6g, params %s\n", final.Best.Number, float64(final.Best.Value), p)
	}
	if ctx.Err() != nil {
		fmt.Fprintf(stderr, "study %q was interrupted; the running trials were given back; resume it with the same command\n", name)
	}
	return nil
}

// countsLine lists trial counts by state in a fixed order.
func countsLine(counts map[string]int) string {
	var parts []string
	for _, s := range []string{"complete", "pruned", "fail", "running", "waiting"} {
		if counts[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
		}
	}
	if len(parts) == 0 {
		return "no trials"
	}
	return strings.Join(parts, ", ")
}

// sanitizeLabel keeps the characters a worker label may have.
func sanitizeLabel(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._:@/-", r)) {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "worker"
	}
	return b.String()
}

// maxAskFailures is how many asks in a row may fail before a worker gives
// up.
const maxAskFailures = 5

// remoteWorker runs trials of one study through the service.
type remoteWorker struct {
	c       *client.Client
	study   string
	spec    *search.Spec
	data    *objective.Data
	log     io.Writer
	logMu   sync.Mutex
	max     int64 // 0: no limit
	started atomic.Int64
	until   time.Time
}

func (w *remoteWorker) logf(format string, a ...any) {
	w.logMu.Lock()
	defer w.logMu.Unlock()
	fmt.Fprintf(w.log, format+"\n", a...)
}

// loop asks for trials and runs them until the budget is spent, a bound is
// reached or ctx ends.
func (w *remoteWorker) loop(ctx context.Context, label string) error {
	failures := 0
	for ctx.Err() == nil {
		if w.max > 0 && w.started.Add(1) > w.max || !w.until.IsZero() && time.Now().After(w.until) {
			return nil
		}
		t, err := w.c.Ask(ctx, w.study, label)
		switch {
		case errors.Is(err, client.ErrExhausted):
			return nil
		case ctx.Err() != nil:
			return nil
		case err != nil:
			var ae *client.Error
			if errors.As(err, &ae) && ae.Status != 503 {
				return fmt.Errorf("ask for a trial of study %q: %w", w.study, err)
			}
			// The storage or a proposal failed (503), or the answer was
			// lost on the way (a trial it leased is retried when its
			// lease runs out): ask again, a few times.
			if failures++; failures > maxAskFailures {
				return fmt.Errorf("ask for a trial of study %q: %d failures in a row, the last: %w", w.study, failures, err)
			}
			w.logf("floodtune: ask: %v; asking again", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(failures) * 200 * time.Millisecond):
			}
			continue
		}
		failures = 0
		if err := w.run(ctx, t); err != nil {
			return err
		}
	}
	return nil
}

// run trains one leased trial and tells its outcome; an interrupted run is
// given back.
func (w *remoteWorker) run(ctx context.Context, t *client.Leased) error {
	start := time.Now()
	var cfg objective.Config
	if err := json.Unmarshal(t.Config, &cfg); err != nil {
		_, _ = t.Fail(context.WithoutCancel(ctx), "the configuration the server sent: "+err.Error(), nil)
		return fmt.Errorf("trial %d: the configuration the server sent: %w", t.Number, err)
	}
	// The lease is renewed by every report; a heartbeat covers long epochs.
	tctx, stop := context.WithCancel(ctx)
	defer stop()
	lost := make(chan struct{})
	go func() {
		every := time.Duration(t.LeaseSeconds / 3 * float64(time.Second))
		tick := time.NewTicker(max(every, 100*time.Millisecond))
		defer tick.Stop()
		for {
			select {
			case <-tctx.Done():
				return
			case <-tick.C:
				if err := t.Heartbeat(tctx); errors.Is(err, client.ErrLeaseLost) {
					close(lost)
					stop()
					return
				}
			}
		}
	}()
	attrs := map[string]string{}
	value, err := w.spec.RunBuiltin(tctx, w.data, search.BuiltinRun{Config: cfg, Baseline: t.Baseline, Attrs: attrs,
		Report: func(ctx context.Context, epoch int, v float64) error {
			prune, err := t.Report(ctx, epoch, v)
			if err != nil {
				return err
			}
			if prune {
				return search.ErrPruned
			}
			return nil
		}})
	stop()
	bg := context.WithoutCancel(ctx)
	var rec *client.Trial
	switch {
	case errors.Is(err, client.ErrLeaseLost) || isClosed(lost):
		w.logf("floodtune: trial %d: its lease was lost (it ran longer than the server's lease without a word); the server retries it", t.Number)
		return nil
	case ctx.Err() != nil:
		_, rerr := t.Release(bg)
		if rerr != nil && !errors.Is(rerr, client.ErrLeaseLost) {
			w.logf("floodtune: trial %d: give it back: %v (it is retried when its lease runs out)", t.Number, rerr)
		}
		return nil
	case errors.Is(err, search.ErrPruned):
		rec, err = t.Prune(bg, attrs)
	case err != nil:
		var ae *client.Error
		if errors.As(err, &ae) {
			return fmt.Errorf("trial %d: %w", t.Number, err)
		}
		rec, err = t.Fail(bg, err.Error(), attrs)
	default:
		rec, err = t.Tell(bg, value, attrs)
	}
	if errors.Is(err, client.ErrLeaseLost) {
		w.logf("floodtune: trial %d: the server refused its outcome: its lease ran out and it was retried", t.Number)
		return nil
	}
	if err != nil {
		return fmt.Errorf("trial %d: tell its outcome: %w", t.Number, err)
	}
	v := float64(rec.Value)
	shown := "no value"
	if !math.IsNaN(v) {
		shown = fmt.Sprintf("%.6g", v)
	}
	w.logf("trial %d: %s, %s (flood level %.4g, %s) in %s", rec.Number, rec.State, shown, t.FloodLevel, t.FloodMethod, time.Since(start).Round(10*time.Millisecond))
	return nil
}

// isClosed reports whether ch is closed.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
