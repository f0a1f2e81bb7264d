package search

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/c-bata/goptuna"
	"github.com/floodtune/floodtune/flood"
	"github.com/floodtune/floodtune/metrics"
	"github.com/floodtune/floodtune/objective"
	"github.com/floodtune/floodtune/storage"
)

// Defaults of the lease settings.
const (
	DefaultHeartbeat  = 2 * time.Second
	DefaultLease      = 30 * time.Second
	DefaultMaxRetries = 2
	// MinHeartbeat is the shortest heartbeat interval accepted.
	MinHeartbeat = 10 * time.Millisecond
)

// AskOptions configure Study.Ask; the zero value asks with the defaults.
type AskOptions struct {
	// Worker is the name the trial is leased under: its writes are
	// refused once another worker holds the trial. Default: a name unique
	// to the handle and the call.
	Worker string
	// Heartbeat is how often Ask's goroutine renews the lease until the
	// trial is told (default DefaultHeartbeat). Negative: no goroutine;
	// the caller renews it with Trial.Heartbeat or Trial.Report.
	Heartbeat time.Duration
	// Lease is how long a trial stays leased to a worker that stopped
	// renewing it (default DefaultLease): before leasing, Ask fails the
	// trials whose lease ran out, of any study, and retries those retried
	// fewer than MaxRetries times (default DefaultMaxRetries; negative:
	// never). Heartbeat must be shorter than Lease.
	Lease      time.Duration
	MaxRetries int
	// NoConstantLiar lets TPE ignore running trials (see
	// Options.NoConstantLiar).
	NoConstantLiar bool
}

// askConfig is how a trial is leased: AskOptions with their defaults, and
// what a worker of Optimize adds.
type askConfig struct {
	worker         string
	heartbeat      time.Duration // <= 0: none
	lease          time.Duration
	maxRetries     int
	reap           bool
	noConstantLiar bool
	slot           int
	metrics        *metrics.Metrics
	logger         *slog.Logger
}

// leaseSettings checks heartbeat, lease and retries and fills in their
// defaults; a negative heartbeat stays negative (no goroutine).
func leaseSettings(heartbeat, lease time.Duration, maxRetries int) (time.Duration, time.Duration, int, error) {
	if lease < 0 {
		return 0, 0, 0, fmt.Errorf("%w: the lease %v is negative", ErrBadOptions, lease)
	}
	if lease == 0 {
		lease = DefaultLease
	}
	if heartbeat == 0 {
		heartbeat = DefaultHeartbeat
	}
	if heartbeat > 0 && heartbeat < MinHeartbeat {
		return 0, 0, 0, fmt.Errorf("%w: a heartbeat every %v would keep the storage busy renewing leases; the least is %v", ErrBadOptions, heartbeat, MinHeartbeat)
	}
	if heartbeat >= lease {
		return 0, 0, 0, fmt.Errorf("%w: the heartbeat (%v) must be shorter than the lease (%v), or every trial would be reaped", ErrBadOptions, heartbeat, lease)
	}
	switch {
	case maxRetries == 0:
		maxRetries = DefaultMaxRetries
	case maxRetries < 0:
		maxRetries = 0
	}
	return heartbeat, lease, maxRetries, nil
}

// Ask leases a trial of the study: the waiting trial with the lowest
// number (an enqueued one, or the retry of a failed one, with its
// parameters), or else a new trial, within the study's budget
// (ErrBudgetExhausted when it is spent), whose searched options the spec's
// sampler proposes. The trial runs under its lease until it is told
// (Tell, Prune, Fail or Release); a goroutine renews the lease meanwhile
// unless opts say otherwise. A trial whose lease runs out is failed and
// retried by whoever reaps it, and its late writes are refused with
// ErrLeaseLost.
//
// If ctx ends while the trial is being leased, the trial is given back and
// Ask returns ctx.Err().
func (s *Study) Ask(ctx context.Context, opts AskOptions) (*Trial, error) {
	if ctx == nil {
		return nil, errors.New("search: nil context")
	}
	hb, lease, retries, err := leaseSettings(opts.Heartbeat, opts.Lease, opts.MaxRetries)
	if err != nil {
		return nil, err
	}
	worker := opts.Worker
	if worker == "" {
		worker = s.prefix + "/ask-" + strconv.FormatInt(s.asks.Add(1), 10)
	}
	t, err := s.ask(ctx, askConfig{worker: worker, heartbeat: hb, lease: lease, maxRetries: retries, reap: true,
		noConstantLiar: opts.NoConstantLiar})
	if err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		_, _ = t.release(context.WithoutCancel(ctx), "its worker stopped while leasing it")
		return nil, ctx.Err()
	}
	return t, nil
}

// ErrProposalFailed is matched by the error of an Ask whose trial was
// leased but whose parameters could not be proposed (a sampler's error, a
// value enqueued outside the space): the trial was recorded as failed with
// the reason, and the next Ask leases another.
var ErrProposalFailed = errors.New("the trial's parameters could not be proposed; it was failed")

// ErrStorage is matched by the error of a trial's call that failed in the
// storage (it could not be reached, or refused the write), as opposed to a
// lost lease or the training's own failure. Optimize gives such a trial
// back, to run again, rather than fail it: the infrastructure failed, not
// the trial.
var ErrStorage = errors.New("storage error")

// storageError marks an error of the storage met by a trial.
type storageError struct{ err error }

func (e *storageError) Error() string   { return e.err.Error() }
func (e *storageError) Unwrap() []error { return []error{ErrStorage, e.err} }

// fromStorage marks err, an error of a storage call, as ErrStorage, unless
// it says that the trial is no longer this worker's or no longer exists.
func fromStorage(err error) error {
	if err == nil || errors.Is(err, ErrLeaseLost) || errors.Is(err, storage.ErrNotUpdatable) || errors.Is(err, ErrNotFound) ||
		errors.Is(err, ErrStorage) {
		return err
	}
	return &storageError{err}
}

// infrastructure reports whether err is a failure of the storage rather
// than of the trial.
func infrastructure(err error) bool {
	return errors.Is(err, ErrStorage) || errors.Is(err, ErrUnavailable)
}

// prepareError is a trial that was leased but could not be prepared (its
// parameters not sampled): it was failed with the reason.
type prepareError struct {
	number int
	err    error
}

func (e *prepareError) Error() string {
	return fmt.Sprintf("trial %d: %v: %v", e.number, ErrProposalFailed, e.err)
}
func (e *prepareError) Unwrap() []error { return []error{ErrProposalFailed, e.err} }

// ask leases a trial as Ask does. Leasing is not cancelled half-way: a
// trial that the database gave this worker is returned, to be run or given
// back, never left running with no one to renew its lease.
func (s *Study) ask(ctx context.Context, c askConfig) (*Trial, error) {
	lctx := context.WithoutCancel(ctx)
	if c.reap {
		if err := s.reap(lctx, c); err != nil {
			return nil, err
		}
	}
	m := c.metrics
	t0 := time.Now()
	stored, err := s.st.ClaimWaiting(lctx, s.stored.ID, c.worker)
	m.StorageOp("claim", time.Since(t0))
	if errors.Is(err, storage.ErrNotFound) {
		t0 = time.Now()
		stored, err = s.st.CreateTrial(lctx, s.stored.ID, storage.NewTrial{State: storage.Running, Worker: c.worker, Value: math.NaN()})
		m.StorageOp("create", time.Since(t0))
	}
	if err != nil {
		return nil, fmt.Errorf("lease a trial of study %q: %w", s.Name(), err)
	}
	t0 = time.Now()
	t, err := s.prepare(lctx, c, stored)
	m.Sampled(string(s.spec.SamplerName()), time.Since(t0))
	if err != nil {
		// Not left running: failed with why, so that it is not retried
		// for ever.
		if infrastructure(err) {
			// The storage failed, not the proposal: give the trial back
			// (or leave it to be reaped when the storage cannot even do
			// that).
			_, _ = s.st.GiveBack(lctx, stored.ID, c.worker, "storage error while proposing its parameters: "+err.Error())
			return nil, fmt.Errorf("propose the parameters of trial %d of study %q: %w", stored.Number, s.Name(), err)
		}
		_ = s.st.SetTrialAttr(lctx, stored.ID, c.worker, storage.SystemAttr, ReasonAttr, err.Error())
		_ = s.st.Finish(lctx, stored.ID, c.worker, storage.Fail, math.NaN())
		return nil, &prepareError{stored.Number, err}
	}
	if c.heartbeat > 0 {
		t.startHeartbeat(c.heartbeat)
	}
	return t, nil
}

// reap fails and retries the trials whose lease ran out.
func (s *Study) reap(ctx context.Context, c askConfig) error {
	reaped, err := s.st.Reap(ctx, c.lease, c.maxRetries)
	if err != nil {
		return fmt.Errorf("reap the trials of stopped workers: %w", err)
	}
	if c.logger != nil {
		for _, t := range reaped {
			c.logger.Warn("reaped a trial whose worker stopped renewing its lease", "study_id", t.StudyID, "trial", t.Number, "retried", t.RetryID != 0)
		}
	}
	return nil
}

// prepare samples the searched options of a leased trial and builds it.
func (s *Study) prepare(ctx context.Context, c askConfig, stored *storage.Trial) (_ *Trial, err error) {
	tctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	defer func() {
		if err != nil {
			cancel(err)
		}
	}()
	t := &Trial{Number: stored.Number, Spec: s.spec, Params: map[string]any{}, Attrs: map[string]string{},
		study: s, id: stored.ID, worker: c.worker, slot: c.slot, last: math.NaN(), spaces: map[string]Param{},
		ctx: tctx, cancel: cancel, manual: c.heartbeat <= 0, renewed: stored.HeartbeatAt}
	if err := s.attach(t); err != nil {
		return nil, err
	}
	dir := s.stored.Direction.Goptuna()
	view := t.gs.Storage
	if !c.noConstantLiar {
		view = bound{liar{t.adapter, s.stored.Direction == storage.Maximize}, int(s.stored.ID), s.Name(), dir}
		t.gs.Storage = view
	}
	samplerSeed := SamplerSeed(s.spec.Search.Seed, stored.Number)
	t.gs.Sampler = s.spec.independentSampler(samplerSeed)
	if raw, ok := stored.SystemAttrs[storage.FixedParamsAttr]; ok {
		// An enqueued trial, or a retry: the values it must run with.
		if err := json.Unmarshal([]byte(raw), &t.fixed); err != nil {
			return nil, fmt.Errorf("the enqueued parameters of trial %d: %w", stored.Number, err)
		}
	} else if s.spec.SamplerName() == SamplerCMAES {
		rel := s.cma.get(s.spec.Search.Seed, stored.Number)
		b := view.(bound)
		if t.rel, t.relSpace, err = relativeParams(b, s.stored.Direction == storage.Maximize, rel, t.frozen()); err != nil {
			return nil, fmt.Errorf("relative sampler: %w", err)
		}
	}
	// Every value of the trial is drawn from the study as it was when the
	// first began to be: loaded once.
	t.gs.Storage = &trialsOnce{Storage: view}
	defer func() { t.gs.Storage = view }()
	for _, name := range slices.Sorted(maps.Keys(s.spec.Space)) {
		p := s.spec.Space[name]
		v, err := t.draw(name, p)
		if err != nil {
			return nil, fmt.Errorf("sample %s: %w", name, err)
		}
		t.Params[name], t.spaces[name] = v, p
	}
	cfg, err := s.spec.trialConfig(t.Params)
	if err != nil {
		return nil, err
	}
	t.Baseline = stored.SystemAttrs[BaselineAttr] == "true"
	t.Attempt = stored.Attempt
	t.Seed = s.spec.trialSeed(stored.Number, t.Params)
	cfg.Seed = t.Seed
	t.Config = cfg
	for _, a := range []struct {
		key string
		v   int64
	}{{SeedAttr, t.Seed}, {SamplerSeedAttr, samplerSeed}} {
		if err := s.st.SetTrialAttr(ctx, stored.ID, c.worker, storage.SystemAttr, a.key, strconv.FormatInt(a.v, 10)); err != nil {
			return nil, fromStorage(err)
		}
	}
	return t, nil
}

// attach gives the trial t, leased under t.worker, its views of the study
// for sampling and pruning.
func (s *Study) attach(t *Trial) error {
	adapter := s.adapter.With(t.ctx, t.worker)
	dir := s.stored.Direction.Goptuna()
	gs, err := goptuna.LoadStudy(s.Name(), goptuna.StudyOptionStorage(bound{adapter, int(s.stored.ID), s.Name(), dir}),
		goptuna.StudyOptionLogger(nil))
	if err != nil {
		return err
	}
	t.gs, t.adapter = gs, adapter
	pruner, err := s.spec.pruner()
	if err != nil {
		return err
	}
	if pruner != nil {
		if t.pruning, err = goptuna.LoadStudy(s.Name(), goptuna.StudyOptionStorage(bound{adapter, int(s.stored.ID), s.Name(), dir}),
			goptuna.StudyOptionPruner(pruner), goptuna.StudyOptionLogger(nil)); err != nil {
			return err
		}
	}
	return nil
}

// Leased returns a handle on the trial numbered number, running under the
// lease of worker: the trial an Ask under AskOptions.Worker leased, taken
// up again by another process (a replica of the HTTP service, for
// example) for its calls: Report, Heartbeat, Tell, PruneAt, Fail, Release.
// It reads only the trial's row: the handle's Params, Config and Seed are
// not filled in (Study.Trial reads them), and Prune records the value
// reported through this handle, if any (PruneAt takes one). It has no
// heartbeat goroutine (Report and Heartbeat renew the lease). Every write
// of the handle is fenced by the lease: ErrLeaseLost once the trial is no
// longer running under worker, and so is Leased's error then. ErrNotFound
// if the study has no such trial.
func (s *Study) Leased(ctx context.Context, number int, worker string) (*Trial, error) {
	head, err := s.st.TrialHead(ctx, s.stored.ID, number)
	if err != nil {
		return nil, fmt.Errorf("read trial %d of study %q: %w", number, s.Name(), fromStorage(err))
	}
	if head.State != storage.Running || head.Worker != worker {
		return nil, fmt.Errorf("%w: trial %d of study %q is %s, not running under that lease", ErrLeaseLost, number, s.Name(), head.State)
	}
	tctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	t := &Trial{Number: head.Number, Spec: s.spec, Params: map[string]any{}, Attrs: map[string]string{},
		study: s, id: head.ID, worker: worker, last: math.NaN(), spaces: map[string]Param{},
		ctx: tctx, cancel: cancel, manual: true, renewed: head.HeartbeatAt, Attempt: head.Attempt}
	if err := s.attach(t); err != nil {
		cancel(err)
		return nil, err
	}
	return t, nil
}

// trialConfig is a trial's configuration: the built-in trainer's whole
// configuration, or an external trainer's flood method and level.
func (s *Spec) trialConfig(values map[string]any) (objective.Config, error) {
	if s.External() {
		return s.floodConfig(values)
	}
	return s.Config(values)
}

// leaseErr turns Goptuna's "cannot be updated", which the storage adapter
// returns for a write to a trial that is no longer this worker's, back into
// ErrLeaseLost.
func leaseErr(err error) error {
	if errors.Is(err, goptuna.ErrTrialCannotBeUpdated) {
		return fmt.Errorf("%w: %w", ErrLeaseLost, err)
	}
	return err
}

// frozen is the trial as a sampler sees it while it samples: its ids.
func (t *Trial) frozen() goptuna.FrozenTrial {
	return goptuna.FrozenTrial{ID: int(t.id), StudyID: int(t.study.stored.ID), Number: t.Number, State: goptuna.TrialStateRunning}
}

// draw chooses the value of the parameter name of the trial and records it
// with its distribution: the value the trial was enqueued or retried with,
// else the relative sampler's, else the independent sampler's, put on the
// space's grid. It returns the value in its external form.
func (t *Trial) draw(name string, p Param) (any, error) {
	dist := p.distribution()
	var internal float64
	if v, ok := t.fixed[name]; ok {
		if p.Type == Categorical {
			if _, err := choice(p.Choices, v); err != nil {
				return nil, fmt.Errorf("the enqueued value: %w", err)
			}
		} else if _, err := p.value(name, v); err != nil {
			return nil, fmt.Errorf("the enqueued value: %w", err)
		}
		internal = v
	} else if v, ok := t.rel[name]; ok && reflect.DeepEqual(t.relSpace[name], dist) {
		internal = v
	} else {
		// The sampler reads the study's trials more than once per value:
		// load them once (prepare does so for all of a trial's values).
		if _, once := t.gs.Storage.(*trialsOnce); !once {
			view := t.gs.Storage
			t.gs.Storage = &trialsOnce{Storage: view}
			defer func() { t.gs.Storage = view }()
		}
		v, err := t.gs.Sampler.Sample(t.gs, t.frozen(), name, dist)
		if err != nil {
			return nil, err
		}
		internal = v
	}
	internal, err := snap(dist, internal)
	if err != nil {
		return nil, err
	}
	if err := t.adapter.SetTrialParam(int(t.id), name, internal, dist); err != nil {
		return nil, fromStorage(leaseErr(err))
	}
	return goptuna.ToExternalRepresentation(dist, internal)
}

// Trial is a leased trial: its number, seed and parameters, and the calls
// that report on it and tell its outcome. An Objective gets one from
// Optimize; Study.Ask returns one. Its methods are safe for concurrent use.
type Trial struct {
	Number int
	Seed   int64 // for the model's initialisation and the data order
	Spec   *Spec
	// Params holds the searched options' values (a float64, an int or a
	// categorical choice), those suggested at run time included.
	Params map[string]any
	// Config is the built-in trainer's configuration of the trial (for an
	// external trainer, only its flood method and level and its seed).
	Config objective.Config
	// Attrs are recorded with the trial as user attributes when it is
	// told.
	Attrs map[string]string
	// Baseline is set on the plain-training trial Create enqueued first
	// (and on its retries).
	Baseline bool
	// Attempt is 0 for a trial's first run, n for its n-th retry.
	Attempt int

	study    *Study
	id       int64
	worker   string
	slot     int
	gs       *goptuna.Study   // the sampler's view, for suggestions
	adapter  *storage.Goptuna // the trial's worker's
	fixed    map[string]float64
	rel      map[string]float64 // the relative sampler's proposal
	relSpace map[string]any
	pruning  *goptuna.Study // nil without a pruner
	ctx      context.Context
	cancel   context.CancelCauseFunc
	manual   bool // the caller renews the lease
	renewed  time.Time
	lastStep int

	mu      sync.Mutex
	last    float64
	spaces  map[string]Param // the space of each parameter, for repeated suggestions
	done    bool
	stopHB  context.CancelFunc
	hbGroup sync.WaitGroup
}

// Worker returns the name the trial is leased under.
func (t *Trial) Worker() string { return t.worker }

// Context returns a context that ends when the trial is told, or when its
// lease is lost (then context.Cause is ErrLeaseLost): an objective that
// runs outside Optimize selects on it to stop a trial no longer its own.
func (t *Trial) Context() context.Context { return t.ctx }

// FloodLevel returns the flood level b the trial trains with: its searched
// value, else training.flood_level, else 0 (no flooding).
func (t *Trial) FloodLevel() float64 { return t.Config.FloodLevel }

// FloodMethod returns the flooding method the trial trains with: its
// searched value, else training.flood, else batch flooding.
func (t *Trial) FloodMethod() flood.Method { return t.Config.Flood }

// startHeartbeat renews the lease every interval until the trial is told;
// a lost lease ends the trial's context with ErrLeaseLost.
func (t *Trial) startHeartbeat(every time.Duration) {
	hctx, stop := context.WithCancel(t.ctx)
	t.stopHB = stop
	t.hbGroup.Add(1)
	go func() {
		defer t.hbGroup.Done()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-hctx.Done():
				return
			case <-tick.C:
				if err := t.study.st.Heartbeat(hctx, t.id, t.worker); errors.Is(err, storage.ErrLeaseLost) {
					t.cancel(err)
					return
				}
			}
		}
	}()
}

// Heartbeat renews the trial's lease; ErrLeaseLost when it is no longer
// this worker's.
func (t *Trial) Heartbeat(ctx context.Context) error {
	if err := t.check(); err != nil {
		return err
	}
	return t.renew(ctx)
}

// renew renews the lease and records when, on the database's clock.
func (t *Trial) renew(ctx context.Context) error {
	at, err := t.study.st.Renew(ctx, t.id, t.worker)
	if err != nil {
		return fmt.Errorf("renew the lease of trial %d: %w", t.Number, fromStorage(err))
	}
	t.mu.Lock()
	t.renewed = at
	t.mu.Unlock()
	return nil
}

// Renewed returns when the trial's lease was last renewed by this handle,
// on the database's clock: it runs out a lease's length later unless
// renewed again.
func (t *Trial) Renewed() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.renewed
}

// check returns ErrTrialFinished once the trial was told.
func (t *Trial) check() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return fmt.Errorf("trial %d: %w", t.Number, ErrTrialFinished)
	}
	return nil
}

// Report records the objective's value after step (an epoch, counted
// from 1) and asks the study's pruner whether to go on: it returns
// ErrPruned when the trial should stop (then Prune it, or return ErrPruned
// from an Objective), and ErrLeaseLost when the trial is no longer this
// worker's. Without a heartbeat goroutine it also renews the lease.
func (t *Trial) Report(ctx context.Context, step int, value float64) error {
	if step < 0 {
		return fmt.Errorf("report trial %d: step %d is negative", t.Number, step)
	}
	if err := t.check(); err != nil {
		return err
	}
	t.mu.Lock()
	if step >= t.lastStep {
		t.last, t.lastStep = value, step
	}
	t.mu.Unlock()
	st := t.study.st
	if err := st.Report(ctx, t.id, t.worker, step, value); err != nil {
		return fmt.Errorf("report step %d of trial %d: %w", step, t.Number, fromStorage(err))
	}
	if t.manual {
		if err := t.renew(ctx); err != nil {
			return err
		}
	}
	if t.pruning == nil {
		return nil
	}
	frozen, err := t.pruning.Storage.GetTrial(int(t.id))
	if err != nil {
		return fmt.Errorf("read trial %d for the pruner: %w", t.Number, fromStorage(err))
	}
	prune, err := t.pruning.Pruner.Prune(t.pruning, frozen)
	if err != nil {
		return fmt.Errorf("prune trial %d: %w", t.Number, err)
	}
	if prune {
		return ErrPruned
	}
	return nil
}

// finish marks the trial told and stops its heartbeat; false if it was
// already.
func (t *Trial) finish() bool {
	t.mu.Lock()
	if t.done {
		t.mu.Unlock()
		return false
	}
	t.done = true
	stop := t.stopHB
	t.mu.Unlock()
	if stop != nil {
		stop()
		t.hbGroup.Wait()
	}
	return true
}

// end records the trial's final state with value, after its user
// attributes, and ends its context.
func (t *Trial) end(ctx context.Context, state storage.State, value float64, reason string) error {
	if !t.finish() {
		return fmt.Errorf("trial %d: %w", t.Number, ErrTrialFinished)
	}
	defer t.cancel(nil)
	st := t.study.st
	if reason != "" {
		if err := st.SetTrialAttr(ctx, t.id, t.worker, storage.SystemAttr, ReasonAttr, reason); err != nil {
			return fmt.Errorf("record why trial %d failed: %w", t.Number, fromStorage(err))
		}
	}
	t.mu.Lock()
	attrs := maps.Clone(t.Attrs)
	t.mu.Unlock()
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		if err := st.SetTrialAttr(ctx, t.id, t.worker, storage.UserAttr, k, attrs[k]); err != nil {
			return fmt.Errorf("record attribute %q of trial %d: %w", k, t.Number, fromStorage(err))
		}
	}
	if err := st.Finish(ctx, t.id, t.worker, state, value); err != nil {
		return fmt.Errorf("finish trial %d as %s: %w", t.Number, state, fromStorage(err))
	}
	return nil
}

// Tell completes the trial with the objective's value. A NaN value fails
// the trial instead, and Tell says so.
func (t *Trial) Tell(ctx context.Context, value float64) error {
	if math.IsNaN(value) {
		if err := t.end(ctx, storage.Fail, math.NaN(), "the objective's value is NaN"); err != nil {
			return err
		}
		return fmt.Errorf("trial %d: the value is NaN: recorded as failed", t.Number)
	}
	return t.end(ctx, storage.Complete, value, "")
}

// Prune ends the trial as pruned, at the value it reported last.
func (t *Trial) Prune(ctx context.Context) error {
	t.mu.Lock()
	last := t.last
	t.mu.Unlock()
	return t.end(ctx, storage.Pruned, last, "")
}

// PruneAt ends the trial as pruned, at value (the objective's value when
// it stopped; Prune takes the value reported last).
func (t *Trial) PruneAt(ctx context.Context, value float64) error {
	return t.end(ctx, storage.Pruned, value, "")
}

// Fail ends the trial as failed, with reason as its fail_reason. A failed
// trial counts toward the budget and is not retried.
func (t *Trial) Fail(ctx context.Context, reason error) error {
	msg := "failed"
	if reason != nil {
		msg = reason.Error()
	}
	return t.end(ctx, storage.Fail, math.NaN(), msg)
}

// Release gives the trial back: it is failed, and a retry with the same
// parameters waits for the next Ask; neither counts twice toward the
// budget. It is what a worker that stops does with the trials it holds.
func (t *Trial) Release(ctx context.Context) error {
	_, err := t.release(ctx, "given back by its worker")
	return err
}

// ReleaseWith gives the trial back, as Release does, with reason as the
// failed trial's fail_reason.
func (t *Trial) ReleaseWith(ctx context.Context, reason string) error {
	_, err := t.release(ctx, reason)
	return err
}

// release gives the trial back with reason and returns the number of its
// retry.
func (t *Trial) release(ctx context.Context, reason string) (int, error) {
	if !t.finish() {
		return 0, fmt.Errorf("trial %d: %w", t.Number, ErrTrialFinished)
	}
	return t.giveBack(ctx, reason)
}

// rescue gives back a trial whose outcome could not be stored because the
// storage failed, or whose worker stops, whether or not it was told
// meanwhile, and returns the number of its retry.
func (t *Trial) rescue(ctx context.Context, reason string) (int, error) {
	t.finish()
	return t.giveBack(ctx, reason)
}

// giveBack gives the finished trial back with reason and ends its context.
func (t *Trial) giveBack(ctx context.Context, reason string) (int, error) {
	defer t.cancel(nil)
	r, err := t.study.st.GiveBack(ctx, t.id, t.worker, reason)
	if err != nil {
		return 0, fmt.Errorf("give back trial %d: %w", t.Number, fromStorage(err))
	}
	return r.Number, nil
}

// abandon stops the heartbeat of a trial whose lease was lost, without
// writing anything.
func (t *Trial) abandon() {
	if t.finish() {
		t.cancel(nil)
	}
}
