package search

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/floodtune/floodtune/metrics"
	"github.com/floodtune/floodtune/objective"
)

// FormatCurve writes f of each epoch as a JSON array of numbers, six
// significant digits each.
func FormatCurve(history []objective.EpochReport, f func(objective.EpochReport) float64) string {
	vs := make([]float64, len(history))
	for i, e := range history {
		vs[i] = f(e)
	}
	return formatFloats(vs)
}

// ParseCurve reads a curve that FormatCurve wrote; null reads as NaN.
func ParseCurve(s string) ([]float64, error) {
	var raw []*float64
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return nil, fmt.Errorf("a curve: %w", err)
	}
	out := make([]float64, len(raw))
	for i, v := range raw {
		out[i] = math.NaN()
		if v != nil {
			out[i] = *v
		}
	}
	return out, nil
}

// builtin is the built-in objective of one Optimize call: it trains the
// spec's MLP on its dataset, loaded once for all the call's trials, and
// returns the validation accuracy (or loss).
type builtin struct {
	study   string
	spec    *Spec
	metrics *metrics.Metrics
	logger  *slog.Logger

	once sync.Once
	data *objective.Data
	err  error
}

func (b *builtin) run(ctx context.Context, t *Trial) (float64, error) {
	b.once.Do(func() {
		// Not the trial's context: the data serve every later trial, even
		// if this one is cancelled while they load.
		b.data, b.err = b.spec.LoadData(context.WithoutCancel(ctx))
	})
	if b.err != nil {
		return math.NaN(), b.err
	}
	t.Config = b.spec.runConfig(t.Config, t.Baseline)
	r := BuiltinRun{Config: t.Config, Report: t.Report, Attrs: t.Attrs,
		OnEpoch: func(e objective.EpochReport) {
			b.metrics.Epoch(b.study, t.slot, e.Epoch, e.TrainLoss, e.ValAcc, e.AscentFraction, time.Duration(e.Seconds*float64(time.Second)))
		}}
	var fk *forker
	if b.spec.Forking() {
		fk = newForker(t, b.data, b.logger)
	}
	return b.spec.runBuiltin(ctx, b.data, r, fk)
}

// runConfig is the configuration the built-in trainer runs a trial's cfg
// with: the best epoch by the study's objective, and its test figures
// kept where the study or the baseline needs them.
func (s *Spec) runConfig(cfg objective.Config, baseline bool) objective.Config {
	cfg.BestByLoss = s.Direction() == Minimize
	// The test figures of the run stopped at its best epoch: the answer
	// to "did flooding beat early stopping?" for the baseline, and the
	// chosen model's for a study that values the best epoch.
	cfg.TestAtBest = baseline || s.Search.EpochValue == EpochBest
	return cfg
}

// BuiltinRun is a trial for RunBuiltin: one leased somewhere else than in
// Optimize (through the HTTP service, for example).
type BuiltinRun struct {
	// Config is the trial's configuration, its seed included (what Ask
	// gives a built-in trainer's trial in Trial.Config).
	Config objective.Config
	// Baseline is set for the study's plain-training trial: its test
	// figures at the best epoch are recorded.
	Baseline bool
	// Report records the value of an epoch, and returns ErrPruned to stop
	// the run (Trial.Report's contract).
	Report func(ctx context.Context, epoch int, value float64) error
	// Attrs receives the run's user attributes (curves, test figures,
	// epochs trained); nil: not recorded.
	Attrs map[string]string
	// OnEpoch, if set, sees every epoch's report.
	OnEpoch func(objective.EpochReport)
}

// RunBuiltin trains a trial of the spec's built-in trainer on data (see
// LoadData) as Optimize's workers do, reporting every epoch, with the
// spec's early stopping, and returns the trial's value. It does not fork
// from the study's checkpoints: those live in the storage, which a remote
// worker does not reach. ErrPruned when Report said to stop; then Attrs
// hold what the run had.
func (s *Spec) RunBuiltin(ctx context.Context, data *objective.Data, r BuiltinRun) (float64, error) {
	if r.Report == nil {
		return math.NaN(), errors.New("search: RunBuiltin needs a Report function")
	}
	r.Config = s.runConfig(r.Config, r.Baseline)
	return s.runBuiltin(ctx, data, r, nil)
}

// runBuiltin runs r on data; with fk, from the study's checkpoints and
// keeping its own.
func (s *Spec) runBuiltin(ctx context.Context, data *objective.Data, r BuiltinRun, fk *forker) (float64, error) {
	start := time.Now()
	minimize := s.Direction() == Minimize
	attrs := r.Attrs
	if attrs == nil {
		attrs = map[string]string{}
	}
	value := func(e objective.EpochReport) float64 {
		if minimize {
			return e.ValLoss
		}
		return e.ValAcc
	}
	stop := newStopper(s.Search.EarlyStopping, minimize)
	var elapsed []float64
	report := func(e objective.EpochReport) error {
		elapsed = append(elapsed, time.Since(start).Seconds())
		if err := r.Report(ctx, e.Epoch, value(e)); err != nil {
			return err
		}
		if stop.stop(value(e), e.AscentFraction) {
			attrs[StoppedAtEpochAttr] = strconv.Itoa(e.Epoch)
			return objective.StopRun
		}
		return nil
	}

	cfg := r.Config
	run := cfg
	var opts objective.RunOptions
	if fk != nil {
		cp, from, err := fk.from(ctx, data, func() *stopper { return newStopper(s.Search.EarlyStopping, minimize) })
		if err != nil {
			return math.NaN(), err
		}
		if cp != nil {
			// The epochs of the checkpoint, reported as the run from
			// scratch would have; early stopping that ends the run at
			// the checkpoint's last epoch (fk.from picks none later)
			// leaves nothing to train.
			for _, e := range cp.History[:cp.Epoch] {
				err := report(e)
				if errors.Is(err, objective.StopRun) {
					run.Epochs = e.Epoch
					break
				}
				if err != nil {
					return math.NaN(), err
				}
			}
			opts.From = cp
			attrs[ForkedFromEpochAttr] = strconv.Itoa(cp.Epoch)
			attrs[ForkedFromTrialAttr] = strconv.Itoa(from)
		}
		opts.OnCheckpoint = func(cp *objective.Checkpoint) error { return fk.keep(ctx, cp) }
	}
	opts.OnEpoch = func(e objective.EpochReport) error {
		if r.OnEpoch != nil {
			r.OnEpoch(e)
		}
		return report(e)
	}
	res, err := objective.TrainWith(ctx, data, run, opts)
	if res != nil {
		curves := map[string]func(objective.EpochReport) float64{
			TrainLossCurveAttr: func(e objective.EpochReport) float64 { return e.TrainLoss },
			ValLossCurveAttr:   func(e objective.EpochReport) float64 { return e.ValLoss },
		}
		if cfg.TestCurve {
			curves[TestLossCurveAttr] = func(e objective.EpochReport) float64 { return e.TestLoss }
			curves[TestAccCurveAttr] = func(e objective.EpochReport) float64 { return e.TestAcc }
		}
		for name, f := range curves {
			attrs[name] = FormatCurve(res.History, f)
		}
		attrs[ElapsedCurveAttr] = formatFloats(elapsed)
		if res.BestEpoch > 0 {
			attrs[BestEpochAttr] = strconv.Itoa(res.BestEpoch)
			attrs[BestValAccAttr] = strconv.FormatFloat(res.BestValAcc, 'g', -1, 64)
			attrs[BestValLossAttr] = strconv.FormatFloat(res.BestValLoss, 'g', -1, 64)
			if res.BestTested {
				attrs[BestTestAccAttr] = strconv.FormatFloat(res.BestTestAcc, 'g', -1, 64)
				attrs[BestTestLossAttr] = strconv.FormatFloat(res.BestTestLoss, 'g', -1, 64)
			}
		}
		trained := res.Epochs
		if opts.From != nil {
			trained -= opts.From.Epoch
		}
		attrs[AscentFractionAttr] = strconv.FormatFloat(res.AscentFraction, 'g', -1, 64)
		attrs[EpochsAttr] = strconv.Itoa(res.Epochs)
		attrs[TrainedEpochsAttr] = strconv.Itoa(max(trained, 0))
		attrs[SecondsAttr] = strconv.FormatFloat(time.Since(start).Seconds(), 'g', 6, 64)
	}
	if err != nil {
		return math.NaN(), err
	}
	for k, v := range map[string]float64{TestAccAttr: res.TestAcc, TestLossAttr: res.TestLoss, TrainLossAttr: res.TrainLoss, TrainAccAttr: res.TrainAcc, ValLossAttr: res.ValLoss, ValAccAttr: res.ValAcc} {
		attrs[k] = strconv.FormatFloat(v, 'g', -1, 64)
	}
	return s.epochValue(res), nil
}

// formatFloats writes xs as a JSON array, six significant digits each;
// NaN and infinities as null.
func formatFloats(xs []float64) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, x := range xs {
		if i > 0 {
			b.WriteByte(',')
		}
		if math.IsNaN(x) || math.IsInf(x, 0) {
			b.WriteString("null")
			continue
		}
		b.WriteString(strconv.FormatFloat(x, 'g', 6, 64))
	}
	b.WriteByte(']')
	return b.String()
}

// stopper applies a spec's early stopping to a run's epochs, one by one.
type stopper struct {
	es       *EarlyStopping
	minimize bool
	best     float64
	since    int  // epochs since the best
	flooded  bool // the run has ascended
	epochs   int
}

func newStopper(es *EarlyStopping, minimize bool) *stopper {
	return &stopper{es: es, minimize: minimize}
}

// stop takes the next epoch's validation value and the share of its steps
// that ascended, and reports whether the run ends after it.
func (s *stopper) stop(v, ascent float64) bool {
	if s.es == nil {
		return false
	}
	s.epochs++
	d := v - s.best
	if s.minimize {
		d = -d
	}
	if s.epochs == 1 || d > s.es.MinDelta {
		s.best, s.since = v, 0
	} else {
		s.since++
	}
	if ascent > 0 && !s.flooded {
		// The first epoch with ascents: the count starts afresh.
		s.flooded, s.since = true, 0
	}
	return s.since >= s.es.Patience
}

// epochValue is a run's value under the spec's objective and epoch value.
func (s *Spec) epochValue(res *objective.Result) float64 {
	minimize := s.Direction() == Minimize
	pick := func(e objective.EpochReport) float64 {
		if minimize {
			return e.ValLoss
		}
		return e.ValAcc
	}
	switch s.Search.EpochValue {
	case EpochBest:
		if minimize {
			return res.BestValLoss
		}
		return res.BestValAcc
	case EpochMeanLast:
		k := s.Search.EpochWindow
		if k == 0 {
			k = defaultEpochWindow
		}
		h := res.History[max(len(res.History)-k, 0):]
		sum := 0.0
		for _, e := range h {
			sum += pick(e)
		}
		return sum / float64(len(h))
	}
	if minimize {
		return res.ValLoss
	}
	return res.ValAcc
}
