package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/floodtune/floodtune/plot"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/floodtune/floodtune/search"
	"github.com/floodtune/floodtune/storage"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
)

func newStudyOptimizeCmd() *cobra.Command {
	var workers int
	var metricsAddr string
	var lease, heartbeat, timeout time.Duration
	var maxTrials int
	var remote remoteOptions
	cmd := &cobra.Command{
		Use:   "optimize NAME [--workers N]",
		Short: "Run a study's trials until its budget is spent",
		Long: `optimize runs the study's trials, --workers at a time (one per core by
default, each on one BLAS thread), until the budget is spent: it runs the
enqueued trials first (the plain-training baseline, study enqueue's), then
asks the sampler for new parameters. Start it on as many machines as you
like against one PostgreSQL storage: they share the budget, and a trial whose
worker dies is retried by the others.

Prometheus metrics of the study and of this process's workers are served on
--metrics-addr (127.0.0.1:9464 unless told otherwise; '' turns them off).

--max-trials and --timeout bound this command's share of the work: it
starts no trial after either is reached, lets the running ones finish, and
leaves the rest of the budget to the other processes or to a later run.

On a terminal a progress bar shows the trials done and the best value so
far; elsewhere each finished trial is logged on one line. At the end it
prints the study's summary, as study show does.

Ctrl-C (or SIGTERM) stops cleanly: the running trials are given back to the
study, to be run again, and the command exits with status 0; run the same
command to resume. A second Ctrl-C stops at once, leaving the running trials
to be retried once their lease expires.

A worker whose output is closed under it (its standard output or error is a
pipe whose reader exited, as in 'floodtune study optimize s 2>&1 | head')
stops as on Ctrl-C: nobody would see its progress, so it gives its running
trials back at once, for the other workers or a later run, and exits with
status 141, what a shell reports of a program that SIGPIPE stopped. Run the
same command to resume.

Each running trial's lease is renewed every --heartbeat (at least 100ms); a
trial whose worker stops renewing it is retried by any worker once --lease
has passed (from 1s to 24h, and more than twice --heartbeat).

With --server URL the workers take their trials from a floodtune serve
instead of the database: no database credentials, only a token (the
environment's FLOODTUNE_TOKEN or --token-file; a worker token of the study
is enough), and --ca-file for a server whose certificate a private CA
signed. The server's --lease applies; the workers renew their leases by
reporting every epoch and with a heartbeat in between. Such workers do not
start trials from the study's stored checkpoints (they live in the
database), serve no metrics of their own, and print a line per trial. Ctrl-C
gives the running trials back, to be run again.`,
		Example: `  floodtune study optimize noise20
  floodtune study optimize noise20 --workers 4 --storage postgres://floodtune@db/floodtune
  floodtune study optimize noise20 --max-trials 5 --timeout 30m
  FLOODTUNE_TOKEN=ftk_... floodtune study optimize noise20 --server https://floodtune.example:8321`,
		Args: exactArgs(1, "the study's name"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if workers < 1 || workers > maxWorkers {
				return badInput(fmt.Errorf("--workers must be from 1 to %d, got %d", maxWorkers, workers))
			}
			if err := checkAddr(metricsAddr); err != nil {
				return err
			}
			if err := checkLease(lease, heartbeat); err != nil {
				return badInput(err)
			}
			if maxTrials < 0 || maxTrials > search.MaxTrials {
				return badInput(fmt.Errorf("--max-trials must be from 0 to %d (0: until the study's budget is spent), got %d", search.MaxTrials, maxTrials))
			}
			if timeout != 0 && (timeout < minTimeout || timeout > maxTimeout) {
				return badInput(fmt.Errorf("--timeout must be 0 (no limit) or from %s to %s, got %v", shortDuration(minTimeout), shortDuration(maxTimeout), timeout))
			}
			if remote.server != "" {
				for _, f := range []string{"storage", "lease", "heartbeat", "metrics-addr"} {
					if fl := cmd.Flags().Lookup(f); fl != nil && fl.Changed {
						return badInput(fmt.Errorf("--%s does not go with --server: the server holds the storage and its leases", f))
					}
				}
				if os.Getenv("FLOODTUNE_STORAGE") != "" {
					fmt.Fprintln(cmd.ErrOrStderr(), "floodtune: note: FLOODTUNE_STORAGE is set but not used: with --server the trials come from the server")
				}
				remote.workers, remote.maxTrials, remote.timeout = workers, maxTrials, timeout
				return runRemote(cmd, a[0], remote)
			}
			for _, f := range []string{"token-file", "ca-file"} {
				if fl := cmd.Flags().Lookup(f); fl != nil && fl.Changed {
					return badInput(fmt.Errorf("--%s goes with --server", f))
				}
			}
			return runOptimize(cmd, a[0], search.Options{Workers: workers, Grace: lease, Heartbeat: heartbeat, ReserveThreads: true,
				MaxTrials: maxTrials, Timeout: timeout}, metricsAddr)
		},
	}
	cmd.Flags().IntVar(&workers, "workers", runtime.NumCPU(), "trials run at once in this process")
	metricsFlag(cmd, &metricsAddr)
	cmd.Flags().DurationVar(&lease, "lease", 30*time.Second, "how long a trial stays leased to a worker that stopped renewing it before any worker retries it")
	cmd.Flags().DurationVar(&heartbeat, "heartbeat", 2*time.Second, "how often a running trial's lease is renewed")
	cmd.Flags().IntVar(&maxTrials, "max-trials", 0, "start at most this many trials in this process (0: until the study's budget is spent)")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "start no trial after this long, and let the running ones finish (0: no limit)")
	cmd.Flags().StringVar(&remote.server, "server", "", "take the trials from this floodtune serve (http(s)://host:port) instead of the storage")
	cmd.Flags().StringVar(&remote.tokenFile, "token-file", "", "with --server: read the token from this file (default: $FLOODTUNE_TOKEN)")
	cmd.Flags().StringVar(&remote.caFile, "ca-file", "", "with --server: trust the server certificates this PEM file's CAs signed")
	return cmd
}

// Bounds of study optimize's flags: a typo (1ns for 1s) must not turn into
// a worker that renews its leases a million times a second, or trials
// that another worker retries while they run.
const (
	maxWorkers   = 1024
	minHeartbeat = 100 * time.Millisecond
	minLease     = time.Second
	maxLease     = 24 * time.Hour
	minTimeout   = time.Second
	maxTimeout   = 365 * 24 * time.Hour
)

// checkLease checks --lease and --heartbeat against their bounds, and names
// the bounds when they are not met.
func checkLease(lease, heartbeat time.Duration) error {
	bounds := fmt.Sprintf("--heartbeat must be at least %s, --lease from %s to %s and more than twice --heartbeat",
		shortDuration(minHeartbeat), shortDuration(minLease), shortDuration(maxLease))
	switch {
	case heartbeat < minHeartbeat:
		return fmt.Errorf("--heartbeat %s is too short: %s", shortDuration(heartbeat), bounds)
	case lease < minLease || lease > maxLease:
		return fmt.Errorf("--lease %s is out of bounds: %s", shortDuration(lease), bounds)
	case lease <= 2*heartbeat:
		return fmt.Errorf("--lease %s is not more than twice --heartbeat %s: %s", shortDuration(lease), shortDuration(heartbeat), bounds)
	}
	return nil
}

func runOptimize(cmd *cobra.Command, name string, opts search.Options, metricsAddr string) error {
	workers := opts.Workers
	stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
	st, err := openStorage(cmd, storage.MustExist())
	if err != nil {
		return err
	}
	defer st.Close()
	study, err := findStudy(cmd.Context(), st, name)
	if err != nil {
		return err
	}
	spec, err := studySpec(study)
	if err != nil {
		return err
	}

	// main's signal.NotifyContext cancels cmd.Context() on the first
	// signal; this handler also stops at once on the second.
	ctx, cancel := context.WithCancel(cmd.Context())
	defer cancel()
	prog := newOptimizeProgress(ctx, st, study, spec, stderr)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	stopWatching := make(chan struct{})
	var watching sync.WaitGroup
	watching.Add(1)
	go func() {
		defer watching.Done()
		watchSignals(sigs, stopWatching,
			func(s os.Signal) {
				prog.line(fmt.Sprintf("floodtune: %s: giving the running trials back to study %q; press Ctrl-C again to stop at once", s, study.Name))
				cancel()
			},
			func(s os.Signal) {
				prog.line(fmt.Sprintf("floodtune: %s again: stopped at once; the running trials of study %q will be retried when their lease expires", s, study.Name))
				os.Exit(130)
			})
	}()
	defer func() {
		signal.Stop(sigs)
		close(stopWatching)
		watching.Wait()
	}()

	logger := slog.New(slog.NewTextHandler(prog, &slog.HandlerOptions{Level: slog.LevelWarn}))
	metricsCtx, stopMetrics := context.WithCancel(ctx)
	m, metricsDone := serveMetrics(metricsCtx, metricsAddr, st, true, prog)
	opts.Logger, opts.OnTrial, opts.Metrics = logger, prog.trial, m
	err = search.Optimize(ctx, st, study.Name, opts)
	interrupted := ctx.Err() != nil
	if interrupted && errors.Is(err, ctx.Err()) {
		err = nil // interrupted: said below
	}
	stopMetrics()
	<-metricsDone
	prog.finish()
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("optimize study %q: it was deleted meanwhile: %w", study.Name, err)
	} else if err != nil {
		return fmt.Errorf("optimize study %q: %w", study.Name, err)
	}
	// The summary is read whatever the state of ctx.
	if err := writeSummary(context.WithoutCancel(ctx), stdout, st, study); err != nil {
		return err
	}
	if interrupted {
		extra := []string{}
		if f := cmd.Flags().Lookup("workers"); f != nil && f.Changed {
			extra = append(extra, "--workers", strconv.Itoa(workers))
		}
		why := "was interrupted"
		if outputLost(cmd.Context()) {
			// Most likely unread, but standard error may still be open
			// when standard output was closed.
			why = "was stopped because its output was closed (its running trials were given back)"
		}
		fmt.Fprintf(stderr, "study %q %s; resume it with: %s\n", study.Name, why, studyCommand(cmd, "optimize", study.Name, extra...))
	}
	return nil
}

// shortDuration shows a bound as a person writes it: 24h, not 24h0m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// watchSignals calls first on the first signal and second on the next,
// until stop is closed.
func watchSignals(sigs <-chan os.Signal, stop <-chan struct{}, first, second func(os.Signal)) {
	n := 0
	for {
		select {
		case <-stop:
			return
		case s := <-sigs:
			n++
			if n == 1 {
				first(s)
			} else {
				second(s)
			}
		}
	}
}

// optimizeProgress shows the trials as they finish: a bar on a terminal,
// one line per trial elsewhere. It is also the io.Writer of the search's
// warnings, which it prints above the bar.
type optimizeProgress struct {
	ctx   context.Context
	st    *storage.Store
	study *storage.Study
	spec  *search.Spec
	w     io.Writer

	mu  sync.Mutex
	bar *progressbar.ProgressBar
}

func newOptimizeProgress(ctx context.Context, st *storage.Store, study *storage.Study, spec *search.Spec, w io.Writer) *optimizeProgress {
	p := &optimizeProgress{ctx: context.WithoutCancel(ctx), st: st, study: study, spec: spec, w: w}
	if isTerminal(w) {
		total := study.Budget
		if total <= 0 {
			total = -1 // no limit: a spinner
		}
		p.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription("best -"),
			progressbar.OptionShowCount(),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionClearOnFinish(),
		)
		p.refresh()
	}
	return p
}

// refresh sets the bar to the study's finished trials and best value (the
// work of every process on the study, not only this one's).
func (p *optimizeProgress) refresh() {
	counts, counted, err := p.st.Counts(p.ctx, p.study.ID)
	if err == nil {
		_ = p.bar.Set(max(counted-counts[storage.Running]-counts[storage.Waiting], 0))
	}
	if best, err := p.st.Best(p.ctx, p.study.ID); err == nil {
		desc := "best " + plot.FormatValue(best.Value)
		if params, err := p.spec.TrialParams(best); err == nil {
			if b, ok := floodLevel(p.spec, params); ok {
				desc += " (b=" + plot.FormatParam(b) + ")"
			}
		}
		p.bar.Describe(desc)
	}
}

// trial is search.Options.OnTrial.
func (p *optimizeProgress) trial(r search.Result) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r.RetriedBy != 0 {
		p.printLine(fmt.Sprintf("trial %d given back: it runs again as trial %d", r.Number, r.RetriedBy))
		return
	}
	if p.bar != nil {
		if r.State == storage.Fail && r.Err != nil {
			_ = p.bar.Clear()
			fmt.Fprintf(p.w, "trial %d failed: %s\n", r.Number, oneLine(r.Err.Error()))
		}
		p.refresh()
		return
	}
	line := fmt.Sprintf("trial %d %s", r.Number, r.State)
	switch {
	case r.State == storage.Fail && r.Err != nil:
		line += ": " + oneLine(r.Err.Error())
	default:
		line += " value " + plot.FormatValue(r.Value)
	}
	if len(r.Params) > 0 {
		line += " " + plot.FormatParams(r.Params, " ")
	}
	if t, err := p.st.TrialByNumber(p.ctx, p.study.ID, r.Number); err == nil && !t.StartedAt.IsZero() && !t.CompletedAt.IsZero() {
		line += " (" + formatSeconds(t.CompletedAt.Sub(t.StartedAt)) + ")"
	}
	fmt.Fprintln(p.w, printable(line))
}

// line prints a line above the bar.
func (p *optimizeProgress) line(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.printLine(s)
}

// printLine prints a line above the bar, escaped (see printable): the
// search's log lines and the progress lines quote parameters, errors and
// names from the storage; p.mu is held.
func (p *optimizeProgress) printLine(s string) {
	if p.bar != nil {
		_ = p.bar.Clear()
	}
	fmt.Fprintln(p.w, printable(s))
	if p.bar != nil {
		_ = p.bar.RenderBlank()
	}
}

// Write prints the search's log lines above the bar.
func (p *optimizeProgress) Write(b []byte) (int, error) {
	p.line(string(trimNewline(b)))
	return len(b), nil
}

func trimNewline(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

func (p *optimizeProgress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		_ = p.bar.Finish()
		p.bar = nil
	}
}
