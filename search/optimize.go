package search

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/c-bata/goptuna"
	"github.com/c-bata/goptuna/cmaes"
	"github.com/c-bata/goptuna/medianstopping"
	"github.com/c-bata/goptuna/successivehalving"
	"github.com/c-bata/goptuna/tpe"
	"github.com/floodtune/floodtune/metrics"
	"github.com/floodtune/floodtune/objective"
	"github.com/floodtune/floodtune/storage"
	"golang.org/x/sync/errgroup"
)

// Options configure Optimize.
type Options struct {
	// Workers is the number of trials run at once in this process, each on
	// one BLAS thread; default runtime.NumCPU(). With OpenBLAS, Optimize
	// raises GOMAXPROCS by Workers while it runs (see
	// objective.ReserveWorkers).
	Workers int
	// Name prefixes this process's worker names; default host-pid.
	Name string
	// Heartbeat is how often a running trial renews its lease (default 2s);
	// Grace is how long a lease lasts without renewal before any worker
	// reaps the trial (default 30s); MaxRetries bounds the retries of a
	// reaped trial (default 2).
	Heartbeat, Grace time.Duration
	MaxRetries       int
	// Logger receives one line per trial; nil discards.
	Logger *slog.Logger
	// OnTrial is called after each trial this process finishes.
	OnTrial func(Result)
	// Objective runs a trial; nil trains the spec's MLP (see Train).
	Objective Objective
	// Metrics records the workers' figures; nil records nothing.
	Metrics *metrics.Metrics
	// NoConstantLiar lets TPE ignore running trials, as Goptuna does;
	// by default the sampler sees each running trial as finished with the
	// worst value so far, so that parallel workers do not propose the same
	// point.
	NoConstantLiar bool
}

// Objective runs one trial and returns its value (the spec's objective).
// It reports every epoch through t.Report, which returns ErrPruned when the
// pruner stops the trial.
type Objective func(ctx context.Context, t *Trial) (float64, error)

// ErrPruned is returned by Trial.Report when the trial should stop.
var ErrPruned = goptuna.ErrTrialPruned

// Trial is what an Objective gets: the trial's configuration and seed, and
// a way to report intermediate values.
type Trial struct {
	Number int
	Seed   int64
	Spec   *Spec
	Params map[string]any // the searched options' values
	Config objective.Config
	// Attrs are recorded with the trial as user attributes.
	Attrs  map[string]string
	report func(step int, value float64) error
	last   float64
	slot   int
}

// Report records the value after step (an epoch) and asks the pruner; it
// returns ErrPruned when the trial should stop.
func (t *Trial) Report(step int, value float64) error {
	t.last = value
	return t.report(step, value)
}

// Result is a finished trial of this process.
type Result struct {
	Number int
	State  storage.State
	Value  float64
	Params map[string]any
	Err    error
}

// Optimize runs the study's trials with opts.Workers workers until its
// budget is spent or ctx is cancelled; several processes, on several
// machines, may optimise one study at once. On cancellation, running trials
// are given back (failed and enqueued again) and Optimize returns nil.
func Optimize(ctx context.Context, st *storage.Store, name string, opts Options) error {
	study, err := st.StudyByName(ctx, name)
	if err != nil {
		return fmt.Errorf("optimize study %q: %w", name, err)
	}
	spec, err := LoadSpec(study)
	if err != nil {
		return err
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.NumCPU()
	}
	if opts.Name == "" {
		host, _ := os.Hostname()
		opts.Name = host + "-" + strconv.Itoa(os.Getpid())
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = 2 * time.Second
	}
	if opts.Grace <= 0 {
		opts.Grace = 30 * time.Second
	}
	if opts.MaxRetries == 0 {
		opts.MaxRetries = 2
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	run := &runner{st: st, study: study, spec: spec, opts: opts}
	if opts.Objective == nil {
		run.objective = run.train
	} else {
		run.objective = opts.Objective
	}
	objective.SetBLASThreads(1)
	defer objective.ReserveWorkers(opts.Workers)()

	g, gctx := errgroup.WithContext(ctx)
	reaperCtx, stopReaper := context.WithCancel(gctx)
	defer stopReaper()
	go run.reap(reaperCtx)
	for i := 0; i < opts.Workers; i++ {
		worker := fmt.Sprintf("%s/%d", opts.Name, i)
		g.Go(func() error { return run.work(gctx, worker, i) })
	}
	err = g.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

type runner struct {
	st        *storage.Store
	study     *storage.Study
	spec      *Spec
	opts      Options
	objective Objective

	dataOnce sync.Once
	data     *objective.Data
	dataErr  error
}

// samplerName is the sampler's name, for metrics.
func (r *runner) samplerName() string {
	if r.spec.Search.Sampler == "" {
		return "tpe"
	}
	return r.spec.Search.Sampler
}

// samplerSeed is the seed of worker slot's sampler: each worker's sampler
// draws its own sequence, and no two studies whose seeds differ share one
// (a seed plus the slot would give study 2's second worker the sequence of
// study 3's first).
func (r *runner) samplerSeed(slot int) int64 { return SamplerSeed(r.spec.Search.Seed, slot) }

// SamplerSeed is the seed of the sampler of a study's worker slot.
func SamplerSeed(studySeed int64, slot int) int64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "floodtune-sampler/%d/%d", studySeed, slot)
	return int64(h.Sum64() >> 1)
}

// reap fails and retries the trials of dead workers, in any study.
func (r *runner) reap(ctx context.Context) {
	tick := time.NewTicker(max(r.opts.Grace/3, 100*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			reaped, err := r.st.Reap(ctx, r.opts.Grace, r.opts.MaxRetries)
			if err != nil && ctx.Err() == nil {
				r.opts.Logger.Warn("reap stale trials", "err", err)
			}
			for _, t := range reaped {
				r.opts.Logger.Warn("reaped a trial whose worker stopped renewing its lease", "study", t.StudyID, "trial", t.Number, "retried", t.RetryID != 0)
			}
		}
	}
}

// work runs trials until the budget is spent.
func (r *runner) work(ctx context.Context, worker string, slot int) error {
	adapter := storage.NewGoptuna(ctx, r.st, worker)
	// The sampler's view of the study (with the constant liar) and the
	// pruner's (the trials as they are) are two Goptuna studies on one
	// store.
	var view goptuna.Storage = adapter
	if !r.opts.NoConstantLiar {
		view = liar{adapter, r.spec.Direction() == "maximize"}
	}
	gs, err := r.goptunaStudy(view, slot, false)
	if err != nil {
		return err
	}
	gp, err := r.goptunaStudy(adapter, slot, true)
	if err != nil {
		return err
	}
	// Claiming and creating are not cancelled half-way: a trial that the
	// database gave this worker is always run or given back, never left
	// running with no one to renew its lease.
	claimCtx := context.WithoutCancel(ctx)
	m := r.opts.Metrics
	for ctx.Err() == nil {
		t0 := time.Now()
		t, err := r.st.ClaimWaiting(claimCtx, r.study.ID, worker)
		m.StorageOp("claim", time.Since(t0))
		if errors.Is(err, storage.ErrNotFound) {
			t0 = time.Now()
			t, err = r.st.CreateTrial(claimCtx, r.study.ID, storage.NewTrial{State: storage.Running, Worker: worker, Value: math.NaN()})
			m.StorageOp("create", time.Since(t0))
		}
		if errors.Is(err, storage.ErrBudgetExhausted) {
			// Trials still running elsewhere may fail and be retried:
			// wait for them before stopping.
			counts, _, cerr := r.st.Counts(ctx, r.study.ID)
			if cerr != nil {
				return cerr
			}
			if counts[storage.Running] == 0 && counts[storage.Waiting] == 0 {
				return nil
			}
			select {
			case <-ctx.Done():
			case <-time.After(r.opts.Heartbeat):
			}
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		res := r.runTrial(ctx, gs, gp, worker, slot, t)
		if r.opts.OnTrial != nil && ctx.Err() == nil {
			r.opts.OnTrial(res)
		}
	}
	return nil
}

// goptunaStudy returns a Goptuna study on adapter with the spec's sampler,
// or, with pruning set, its pruner.
func (r *runner) goptunaStudy(adapter goptuna.Storage, slot int, pruning bool) (*goptuna.Study, error) {
	seed := r.samplerSeed(slot)
	opts := []goptuna.StudyOption{goptuna.StudyOptionStorage(adapter), goptuna.StudyOptionLogger(nil)}
	switch r.spec.Search.Sampler {
	case "random":
		opts = append(opts, goptuna.StudyOptionSampler(goptuna.NewRandomSampler(goptuna.RandomSamplerOptionSeed(seed))))
	case "cmaes":
		opts = append(opts, goptuna.StudyOptionSampler(goptuna.NewRandomSampler(goptuna.RandomSamplerOptionSeed(seed))),
			goptuna.StudyOptionRelativeSampler(cmaes.NewSampler(cmaes.SamplerOptionSeed(seed))))
	default:
		opts = append(opts, goptuna.StudyOptionSampler(tpe.NewSampler(tpe.SamplerOptionSeed(seed))))
	}
	switch {
	case !pruning:
	case r.spec.Search.Pruner == "median":
		opts = append(opts, goptuna.StudyOptionPruner(medianstopping.NewMedianPruner()))
	case r.spec.Search.Pruner == "successive_halving":
		p, err := successivehalving.NewPruner()
		if err != nil {
			return nil, err
		}
		opts = append(opts, goptuna.StudyOptionPruner(p))
	}
	return goptuna.LoadStudy(r.study.Name, opts...)
}

// runTrial samples the trial's parameters, runs the objective under a
// lease, and records the outcome.
func (r *runner) runTrial(ctx context.Context, gs, gp *goptuna.Study, worker string, slot int, t *storage.Trial) (res Result) {
	res = Result{Number: t.Number, Value: math.NaN()}
	m, start := r.opts.Metrics, time.Now()
	tctx, cancel := context.WithCancelCause(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.heartbeat(tctx, cancel, t.ID, worker)
	}()
	// Stop the heartbeat, then wait for it, on every return.
	defer wg.Wait()
	defer cancel(nil)

	t0 := time.Now()
	trial, err := r.prepare(tctx, gs, gp, worker, r.samplerSeed(slot), t)
	m.Sampled(r.samplerName(), time.Since(t0))
	level := math.NaN()
	if err == nil {
		trial.slot, level = slot, trial.Config.FloodLevel
	}
	m.TrialStarted(r.study.Name, slot, level)
	defer func() { m.TrialFinished(r.study.Name, slot, string(res.State), time.Since(start)) }()
	if err == nil {
		res.Params = trial.Params
		res.Value, err = r.call(tctx, trial)
	}
	state, value := storage.Complete, res.Value
	// A trial's outcome is recorded even when the worker is stopping: the
	// writes below do not take the stop.
	wctx := context.WithoutCancel(ctx)
	switch {
	case ctx.Err() != nil && err != nil:
		// Stopped in the middle: hand the trial back for another worker.
		if _, gerr := r.st.GiveBack(wctx, t.ID, worker, "its worker stopped"); gerr != nil {
			r.opts.Logger.Warn("give back a trial", "trial", t.Number, "err", gerr)
		}
		res.State, res.Err = storage.Waiting, ctx.Err()
		return res
	case errors.Is(context.Cause(tctx), storage.ErrLeaseLost):
		res.State, res.Err = storage.Fail, context.Cause(tctx)
		r.opts.Logger.Warn("lost the lease of a trial; its result is dropped", "trial", t.Number)
		return res
	case errors.Is(err, ErrPruned):
		state, value = storage.Pruned, trial.last
	case err == nil && math.IsNaN(value):
		err = errors.New("the objective returned NaN")
		fallthrough
	case err != nil:
		state, value = storage.Fail, math.NaN()
		_ = r.st.SetTrialAttr(wctx, t.ID, worker, storage.SystemAttr, ReasonAttr, err.Error())
		res.Err = err
	}
	if trial != nil {
		for k, v := range trial.Attrs {
			_ = r.st.SetTrialAttr(wctx, t.ID, worker, storage.UserAttr, k, v)
		}
	}
	t0 = time.Now()
	ferr := r.st.Finish(wctx, t.ID, worker, state, value)
	m.StorageOp("finish", time.Since(t0))
	if ferr != nil {
		res.Err = errors.Join(res.Err, ferr)
		r.opts.Logger.Warn("finish a trial", "trial", t.Number, "err", ferr)
	}
	res.State, res.Value = state, value
	r.opts.Logger.Info("trial finished", "trial", t.Number, "state", state, "value", value, "params", res.Params, "err", res.Err)
	return res
}

// heartbeat renews the lease until ctx ends; a lost lease cancels the trial.
func (r *runner) heartbeat(ctx context.Context, cancel context.CancelCauseFunc, id int64, worker string) {
	tick := time.NewTicker(r.opts.Heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := r.st.Heartbeat(ctx, id, worker); errors.Is(err, storage.ErrLeaseLost) {
				cancel(err)
				return
			}
		}
	}
}

// prepare samples the searched options and builds the trial.
func (r *runner) prepare(ctx context.Context, gs, gp *goptuna.Study, worker string, samplerSeed int64, t *storage.Trial) (*Trial, error) {
	gt := goptuna.Trial{Study: gs, ID: int(t.ID)}
	if gs.RelativeSampler != nil {
		if err := gt.CallRelativeSampler(); err != nil {
			return nil, fmt.Errorf("relative sampler: %w", err)
		}
	}
	names := make([]string, 0, len(r.spec.Space))
	for name := range r.spec.Space {
		names = append(names, name)
	}
	sort.Strings(names)
	params := map[string]any{}
	for _, name := range names {
		v, err := r.spec.Space[name].suggest(gt, name)
		if err != nil {
			return nil, fmt.Errorf("sample %s: %w", name, err)
		}
		params[name] = v
	}
	cfg, err := r.spec.Config(params)
	if err != nil {
		return nil, err
	}
	seed := TrialSeed(r.spec.Search.Seed, t.Number)
	cfg.Seed = seed
	for k, v := range map[string]int64{SeedAttr: seed, SamplerSeedAttr: samplerSeed} {
		if err := r.st.SetTrialAttr(ctx, t.ID, worker, storage.SystemAttr, k, strconv.FormatInt(v, 10)); err != nil {
			return nil, err
		}
	}
	trial := &Trial{Number: t.Number, Seed: seed, Spec: r.spec, Params: params, Config: cfg, Attrs: map[string]string{}}
	pt := goptuna.Trial{Study: gp, ID: int(t.ID)}
	trial.report = func(step int, value float64) error {
		if gp.Pruner == nil {
			return r.st.Report(ctx, t.ID, worker, step, value)
		}
		return pt.ShouldPrune(step, value)
	}
	return trial, nil
}

// call runs the objective, turning a panic into the trial's failure.
func (r *runner) call(ctx context.Context, t *Trial) (v float64, err error) {
	defer func() {
		if p := recover(); p != nil {
			r.opts.Logger.Error("the objective panicked", "trial", t.Number, "panic", p, "stack", string(debug.Stack()))
			v, err = math.NaN(), fmt.Errorf("the objective panicked: %v", p)
		}
	}()
	return r.objective(ctx, t)
}

// train is the built-in objective: train the spec's MLP on its dataset and
// return the validation accuracy (or loss).
func (r *runner) train(ctx context.Context, t *Trial) (float64, error) {
	r.dataOnce.Do(func() {
		// Not the trial's context: the data serve every later trial, even
		// if this one is cancelled while they load.
		r.data, r.dataErr = r.spec.LoadData(context.WithoutCancel(ctx))
	})
	if r.dataErr != nil {
		return math.NaN(), r.dataErr
	}
	minimize := r.spec.Direction() == "minimize"
	res, err := objective.Train(ctx, r.data, t.Config, func(e objective.EpochReport) error {
		r.opts.Metrics.Epoch(r.study.Name, t.slot, e.Epoch, e.TrainLoss, e.ValAcc, e.AscentFraction, time.Duration(e.Seconds*float64(time.Second)))
		v := e.ValAcc
		if minimize {
			v = e.ValLoss
		}
		return t.Report(e.Epoch, v)
	})
	if res != nil {
		curves := map[string]func(objective.EpochReport) float64{
			TrainLossCurveAttr: func(e objective.EpochReport) float64 { return e.TrainLoss },
			ValLossCurveAttr:   func(e objective.EpochReport) float64 { return e.ValLoss },
		}
		if t.Config.TestCurve {
			curves[TestLossCurveAttr] = func(e objective.EpochReport) float64 { return e.TestLoss }
			curves[TestAccCurveAttr] = func(e objective.EpochReport) float64 { return e.TestAcc }
		}
		for name, f := range curves {
			t.Attrs[name] = FormatCurve(res.History, f)
		}
		t.Attrs["ascent_fraction"] = strconv.FormatFloat(res.AscentFraction, 'g', -1, 64)
		t.Attrs["epochs"] = strconv.Itoa(res.Epochs)
		t.Attrs["seconds"] = strconv.FormatFloat(res.Seconds, 'g', 6, 64)
	}
	if err != nil {
		return math.NaN(), err
	}
	for k, v := range map[string]float64{"test_acc": res.TestAcc, "test_loss": res.TestLoss, "train_loss": res.TrainLoss, "train_acc": res.TrainAcc, "val_loss": res.ValLoss, "val_acc": res.ValAcc} {
		t.Attrs[k] = strconv.FormatFloat(v, 'g', -1, 64)
	}
	if minimize {
		return res.ValLoss, nil
	}
	return res.ValAcc, nil
}

// liar is the sampler's view of a study under the constant-liar strategy:
// every running trial that already has parameters looks finished, with the
// worst value of the finished trials, so that TPE steers away from points
// being evaluated right now instead of proposing them again.
type liar struct {
	*storage.Goptuna
	maximize bool
}

func (l liar) GetAllTrials(studyID int) ([]goptuna.FrozenTrial, error) {
	trials, err := l.Goptuna.GetAllTrials(studyID)
	if err != nil {
		return nil, err
	}
	worst, any := 0.0, false
	for _, t := range trials {
		if t.State != goptuna.TrialStateComplete {
			continue
		}
		if !any || (l.maximize && t.Value < worst) || (!l.maximize && t.Value > worst) {
			worst, any = t.Value, true
		}
	}
	if !any {
		return trials, nil
	}
	out := make([]goptuna.FrozenTrial, len(trials))
	for i, t := range trials {
		if t.State == goptuna.TrialStateRunning && len(t.InternalParams) > 0 {
			t.State, t.Value = goptuna.TrialStateComplete, worst
		}
		out[i] = t
	}
	return out, nil
}
