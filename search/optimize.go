package search

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"github.com/c-bata/goptuna"
	"github.com/floodtune/floodtune/metrics"
	"github.com/floodtune/floodtune/objective"
	"github.com/floodtune/floodtune/storage"
	"golang.org/x/sync/errgroup"
)

// Options configure Optimize. The zero value runs one worker per CPU until
// the study's budget is spent.
type Options struct {
	// Workers is the number of trials run at once by this call; default
	// runtime.NumCPU().
	Workers int
	// Name prefixes the call's worker names (NAME/0, NAME/1, ...); default
	// host-pid-random, unique to the process and the call.
	Name string
	// Heartbeat is how often a running trial renews its lease (default
	// DefaultHeartbeat); Grace is how long a lease lasts without renewal
	// before any worker reaps the trial (default DefaultLease), and must
	// be longer than Heartbeat; MaxRetries bounds the retries of a reaped
	// trial (default DefaultMaxRetries; negative: none).
	Heartbeat, Grace time.Duration
	MaxRetries       int
	// MaxTrials bounds the trials this call runs (0: no bound beyond the
	// study's budget); Timeout stops this call from starting trials after
	// it has run that long, and lets the running ones finish (0: none). A
	// study without a budget needs one of them (ErrUnbounded), or a ctx
	// that the caller cancels.
	MaxTrials int
	Timeout   time.Duration
	// Logger receives one line per trial; nil discards.
	Logger *slog.Logger
	// OnTrial is called for every trial this call leased, once its outcome
	// is stored, with the state as stored (see Result). Calls come from
	// the workers' goroutines, one at a time per worker.
	OnTrial func(Result)
	// Objective runs a trial; nil trains the spec's MLP (the built-in
	// trainer; a study with trainer: external needs one).
	Objective Objective
	// Metrics records the workers' figures; nil records nothing.
	Metrics *metrics.Metrics
	// NoConstantLiar lets TPE ignore running trials, as Goptuna does;
	// by default the sampler sees each running trial as finished with the
	// worst value so far, so that parallel workers do not propose the same
	// point.
	NoConstantLiar bool
	// FailFast stops the call at the first trial whose objective fails
	// (an error other than ErrPruned, a NaN, a panic): the other running
	// trials are given back and Optimize returns that error. By default a
	// failed trial is recorded with its reason, OnTrial is told, and the
	// workers go on.
	FailFast bool
	// ReserveThreads lets Optimize set process-wide settings for speed
	// while it runs, which a library does not do unasked: OpenBLAS on one
	// thread (each worker trains on one core), and, in builds with
	// OpenBLAS, GOMAXPROCS raised by Workers (objective.ReserveWorkers), so
	// that a worker inside a BLAS call keeps its P (docs/performance.md
	// has what it saves). The floodtune command sets it; a program that
	// tunes its own threads leaves it off.
	ReserveThreads bool
}

// Objective runs one trial and returns its value (the spec's objective).
// It reports every epoch through t.Report, which returns ErrPruned when the
// pruner stops the trial; returning ErrPruned then prunes it. ctx ends
// when Optimize stops or the trial's lease is lost.
type Objective func(ctx context.Context, t *Trial) (float64, error)

// ErrPruned is returned by Trial.Report when the trial should stop.
var ErrPruned = goptuna.ErrTrialPruned

// Result is the outcome of a trial of an Optimize call, as stored.
type Result struct {
	Number int
	// State is the trial's state in the storage after this call: complete,
	// pruned or fail (a trial given back or reaped is failed, and retried
	// as RetriedBy); running only if its outcome could not be written.
	State     storage.State
	Value     float64
	Params    map[string]any
	Err       error // why it failed, or was given back, or could not be stored
	RetriedBy int   // the number of the retry enqueued in its place; 0 if none

	storageFailed bool // the storage failed the trial: the call stops
}

// Optimize runs the trials of the study name in st; see Study.Optimize.
func Optimize(ctx context.Context, st *storage.Store, name string, opts Options) error {
	s, err := Load(ctx, st, name)
	if err != nil {
		return fmt.Errorf("optimize study %q: %w", name, err)
	}
	return s.Optimize(ctx, opts)
}

// Optimize runs the study's trials with opts.Workers workers until its
// budget is spent, or this call's MaxTrials or Timeout is reached; several
// calls, in several processes on several machines, may optimise one study
// at once, and never propose the same parameters. The workers lease trials
// with Ask and tell them as the objective returns. When ctx ends, running
// trials are given back (failed and enqueued again, to run elsewhere or on
// resumption) and Optimize returns ctx.Err(). When the storage fails a
// trial (ErrStorage: it cannot be reached, or refuses a write), the trial
// is given back too, to run again without counting twice, and Optimize
// stops with that error: the call could not do its job.
func (s *Study) Optimize(ctx context.Context, opts Options) error {
	if ctx == nil {
		return errors.New("search: nil context")
	}
	c, err := s.poolConfig(opts)
	if err != nil {
		return err
	}
	if s.stored.Budget <= 0 && opts.MaxTrials == 0 && opts.Timeout == 0 {
		return fmt.Errorf("optimize study %q: %w: set a budget (search.trials), Options.MaxTrials or Options.Timeout", s.Name(), ErrUnbounded)
	}
	run := opts.Objective
	if run == nil {
		if s.spec.External() {
			return fmt.Errorf("optimize study %q: its trials are trained by an external trainer: give Options.Objective", s.Name())
		}
		b := &builtin{study: s.Name(), spec: s.spec, metrics: opts.Metrics, logger: c.logger}
		run = b.run
	}
	workers := opts.Workers
	if workers == 0 {
		workers = runtime.NumCPU()
	}
	if opts.ReserveThreads {
		objective.SetBLASThreads(1)
		defer objective.ReserveWorkers(workers)()
	}
	name := opts.Name
	if name == "" {
		name = defaultWorkerName()
	}
	p := &pool{study: s, objective: run, onTrial: opts.OnTrial, logger: c.logger, left: opts.MaxTrials, limited: opts.MaxTrials > 0,
		failFast: opts.FailFast, changed: make(chan struct{})}
	if opts.Timeout > 0 {
		p.deadline = time.Now().Add(opts.Timeout)
	}

	g, gctx := errgroup.WithContext(ctx)
	reaperCtx, stopReaper := context.WithCancel(gctx)
	defer stopReaper()
	go p.reap(reaperCtx, c)
	for i := range workers {
		wc := c
		wc.worker, wc.slot = fmt.Sprintf("%s/%d", name, i), i
		g.Go(func() error { return p.work(gctx, wc) })
	}
	err = g.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// poolConfig checks opts and returns the lease settings of its workers.
func (s *Study) poolConfig(opts Options) (askConfig, error) {
	switch {
	case opts.Workers < 0:
		return askConfig{}, fmt.Errorf("%w: %d workers", ErrBadOptions, opts.Workers)
	case opts.MaxTrials < 0:
		return askConfig{}, fmt.Errorf("%w: MaxTrials %d is negative", ErrBadOptions, opts.MaxTrials)
	case opts.Timeout < 0:
		return askConfig{}, fmt.Errorf("%w: Timeout %v is negative", ErrBadOptions, opts.Timeout)
	case opts.Heartbeat < 0:
		return askConfig{}, fmt.Errorf("%w: Heartbeat %v is negative", ErrBadOptions, opts.Heartbeat)
	}
	hb, lease, retries, err := leaseSettings(opts.Heartbeat, opts.Grace, opts.MaxRetries)
	if err != nil {
		return askConfig{}, err
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return askConfig{heartbeat: hb, lease: lease, maxRetries: retries, noConstantLiar: opts.NoConstantLiar,
		metrics: opts.Metrics, logger: logger}, nil
}

// pool is the state an Optimize call's workers share.
type pool struct {
	study     *Study
	objective Objective
	onTrial   func(Result)
	logger    *slog.Logger

	failFast bool

	mu       sync.Mutex
	left     int // trials MaxTrials still allows
	limited  bool
	deadline time.Time     // of Timeout; zero: none
	changed  chan struct{} // closed, and replaced, when a worker ends a trial
}

// ended wakes the workers that wait for the study's last trials.
func (p *pool) ended() {
	p.mu.Lock()
	defer p.mu.Unlock()
	close(p.changed)
	p.changed = make(chan struct{})
}

// waitChange returns a channel closed when a worker of the call next ends
// a trial.
func (p *pool) waitChange() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.changed
}

// take reserves the start of a trial within the call's limits.
func (p *pool) take() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.deadline.IsZero() && !time.Now().Before(p.deadline) {
		return false
	}
	if p.limited {
		if p.left == 0 {
			return false
		}
		p.left--
	}
	return true
}

// untake returns a reservation that did not start a trial.
func (p *pool) untake() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.limited {
		p.left++
	}
}

// reap fails and retries the trials of dead workers, in any study.
func (p *pool) reap(ctx context.Context, c askConfig) {
	tick := time.NewTicker(max(c.lease/3, 100*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := p.study.reap(ctx, c); err != nil && ctx.Err() == nil {
				p.logger.Warn("reap stale trials", "err", err)
			}
		}
	}
}

// work runs trials until the budget or the call's limits are reached.
func (p *pool) work(ctx context.Context, c askConfig) error {
	s := p.study
	for ctx.Err() == nil {
		if !p.take() {
			return nil
		}
		changed := p.waitChange()
		t, err := s.ask(ctx, c)
		var pe *prepareError
		switch {
		case errors.Is(err, ErrBudgetExhausted):
			p.untake()
			// Trials still running may fail and be retried: wait for
			// them before stopping, woken by this call's workers as they
			// end theirs and by the heartbeat's clock for the others'.
			counts, _, cerr := s.st.Counts(ctx, s.stored.ID)
			if cerr != nil {
				if ctx.Err() != nil {
					return nil
				}
				return cerr
			}
			if counts[storage.Running] == 0 && counts[storage.Waiting] == 0 {
				s.dropCheckpoints(ctx, p.logger)
				return nil
			}
			select {
			case <-ctx.Done():
			case <-changed:
			case <-time.After(c.heartbeat):
			}
			continue
		case errors.As(err, &pe):
			p.logger.Warn("trial failed before it ran", "trial", pe.number, "err", pe.err)
			p.report(Result{Number: pe.number, State: storage.Fail, Value: math.NaN(), Err: pe.err})
			p.ended()
			if p.failFast {
				return err
			}
			continue
		case err != nil:
			p.untake()
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		res := p.run(ctx, c, t)
		p.report(res)
		p.ended()
		if res.storageFailed {
			return fmt.Errorf("trial %d: %w", res.Number, res.Err)
		}
		if p.failFast && res.State == storage.Fail && res.RetriedBy == 0 && !errors.Is(res.Err, ErrLeaseLost) && ctx.Err() == nil {
			return fmt.Errorf("trial %d failed: %w", res.Number, res.Err)
		}
	}
	return nil
}

func (p *pool) report(r Result) {
	if p.onTrial != nil {
		p.onTrial(r)
	}
}

// run runs the objective on a leased trial and stores its outcome.
func (p *pool) run(ctx context.Context, c askConfig, t *Trial) Result {
	m, start, s := c.metrics, time.Now(), p.study
	res := Result{Number: t.Number, Value: math.NaN(), Params: t.Params}
	m.TrialStarted(s.Name(), c.slot, t.Config.FloodLevel)
	metricState := ""
	defer func() { m.TrialFinished(s.Name(), c.slot, metricState, time.Since(start)) }()

	octx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(t.ctx, func() { cancel(context.Cause(t.ctx)) })
	value, err := p.call(octx, t)
	stop()
	cancel(nil)

	// A trial's outcome is recorded even when the worker is stopping: the
	// writes below do not take the stop.
	wctx := context.WithoutCancel(ctx)
	var werr error
	switch {
	case errors.Is(context.Cause(t.ctx), ErrLeaseLost):
		t.abandon()
		res.Err = context.Cause(t.ctx)
		p.logger.Warn("lost the lease of a trial; its result is dropped", "trial", t.Number)
		res.State, metricState = s.storedState(wctx, t), string(storage.Fail)
		return res
	case ctx.Err() != nil && err != nil:
		// Stopped in the middle: hand the trial back for another worker.
		metricState = string(storage.Waiting)
		p.giveBack(wctx, t, &res, ctx.Err(), "its worker stopped")
		return res
	case infrastructure(err):
		// The storage failed the trial, not its training: it runs again.
		metricState = string(storage.Waiting)
		res.storageFailed = true
		p.giveBack(wctx, t, &res, err, "storage error: "+err.Error())
		return res
	case errors.Is(err, ErrPruned):
		res.State = storage.Pruned
		t.mu.Lock()
		res.Value = t.last
		t.mu.Unlock()
		werr = t.Prune(wctx)
	case err == nil && math.IsNaN(value):
		err = errors.New("the objective returned NaN")
		fallthrough
	case err != nil:
		res.State, res.Err = storage.Fail, err
		werr = t.Fail(wctx, err)
	default:
		res.State, res.Value = storage.Complete, value
		werr = t.Tell(wctx, value)
	}
	if werr != nil && infrastructure(werr) {
		p.logger.Warn("store the outcome of a trial", "trial", t.Number, "err", werr)
		metricState = string(storage.Waiting)
		res.Value, res.storageFailed = math.NaN(), true
		p.giveBack(wctx, t, &res, werr, "storage error: "+werr.Error())
		return res
	}
	if werr != nil {
		res.Err = errors.Join(res.Err, werr)
		res.State = s.storedState(wctx, t)
		p.logger.Warn("store the outcome of a trial", "trial", t.Number, "err", werr)
	}
	metricState = string(res.State)
	p.logger.Info("trial finished", "trial", t.Number, "state", res.State, "value", res.Value, "params", res.Params, "err", res.Err)
	return res
}

// giveBack gives back a trial the call cannot finish (its worker stops, or
// the storage failed it) with reason, and records in res why and the state
// stored.
func (p *pool) giveBack(ctx context.Context, t *Trial, res *Result, cause error, reason string) {
	res.Err = cause
	retry, err := t.rescue(ctx, reason)
	if err != nil {
		// Not even that: the lease runs out, and whoever reaps the trial
		// retries it.
		p.logger.Warn("give back a trial", "trial", t.Number, "err", err)
		res.Err = errors.Join(cause, err)
		res.State = p.study.storedState(ctx, t)
		return
	}
	res.State, res.RetriedBy = storage.Fail, retry
}

// storedState reads a trial's state back after a write that failed.
func (s *Study) storedState(ctx context.Context, t *Trial) storage.State {
	stored, err := s.st.Trial(ctx, t.id)
	if err != nil {
		return storage.Running
	}
	return stored.State
}

// call runs the objective, turning a panic into the trial's failure.
func (p *pool) call(ctx context.Context, t *Trial) (v float64, err error) {
	defer func() {
		if r := recover(); r != nil {
			p.logger.Error("the objective panicked", "trial", t.Number, "panic", r, "stack", string(debug.Stack()))
			v, err = math.NaN(), fmt.Errorf("the objective panicked: %v", r)
		}
	}()
	return p.objective(ctx, t)
}

// dropCheckpoints deletes the stored checkpoints of a study whose trials
// have all ended: no trial will start from them any more.
func (s *Study) dropCheckpoints(ctx context.Context, logger *slog.Logger) {
	if !s.spec.Forking() {
		return
	}
	n, bytes, err := s.st.DeleteCheckpoints(ctx, s.stored.ID)
	switch {
	case err != nil:
		logger.Warn("delete the study's checkpoints", "err", err)
	case n > 0:
		logger.Info("the study has ended: deleted its checkpoints", "checkpoints", n, "bytes", bytes)
	}
}
