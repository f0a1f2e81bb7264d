package objective

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/floodtune/floodtune/flood"
)

// Config is one training run's hyperparameters.
type Config struct {
	// Conv, when not empty, makes the model a convolutional network on
	// the data's images: these layers, then dense layers of the widths
	// Hidden. Without it the model is an MLP of hidden layers Hidden.
	Conv        []ConvLayer  `json:"conv,omitempty"`
	Hidden      []int        `json:"hidden"`
	Optimizer   string       `json:"optimizer"`
	LR          float64      `json:"lr"`
	Momentum    float64      `json:"momentum"` // momentum only; 0 means 0.9
	WeightDecay float64      `json:"weight_decay"`
	BatchSize   int          `json:"batch_size"`
	Epochs      int          `json:"epochs"`
	Flood       flood.Method `json:"flood"`
	FloodLevel  float64      `json:"flood_level"`
	Seed        int64        `json:"seed"` // model initialisation and batch order
	// TestCurve evaluates the test split after every epoch as well, for
	// learning curves (EpochReport.TestLoss and TestAcc). Training never
	// reads them.
	TestCurve bool `json:"test_curve,omitempty"`
	// TestAtBest takes the test figures of the best validation epoch
	// (Result.BestTestLoss and BestTestAcc): the run stopped early there.
	// The best epoch's parameters are kept, and the test split evaluated
	// with them once, when the run ends. Training never reads them.
	TestAtBest bool `json:"test_at_best,omitempty"`
	// BestByLoss makes the lowest validation loss, not the highest
	// validation accuracy, pick the best epoch.
	BestByLoss bool `json:"best_by_loss,omitempty"`
}

// Limits that protect the machine from a typo.
const (
	MaxEpochs     = 100_000
	MaxWidth      = 65_536
	MaxLayers     = 64
	MaxParameters = 1 << 28
	// MaxActivations bounds the values of the largest matrix of windows a
	// convolutional layer lays out for one batch (1 GiB of float32).
	MaxActivations = 1 << 28
)

func (c Config) momentum() float64 {
	if c.Momentum == 0 {
		return 0.9
	}
	return c.Momentum
}

// Validate checks the hyperparameters alone; ValidateFor also checks them
// against a dataset.
func (c Config) Validate() error {
	if len(c.Hidden) == 0 {
		return errors.New("hidden layers: give at least one width, e.g. 500,500")
	}
	if len(c.Hidden) > MaxLayers {
		return fmt.Errorf("hidden layers: %d layers is more than the limit of %d", len(c.Hidden), MaxLayers)
	}
	for i, w := range c.Hidden {
		if w <= 0 {
			return fmt.Errorf("hidden layers: width %d of layer %d must be positive", w, i+1)
		}
		if w > MaxWidth {
			return fmt.Errorf("hidden layers: width %d of layer %d is more than the limit of %d", w, i+1, MaxWidth)
		}
	}
	if len(c.Conv) > MaxLayers {
		return fmt.Errorf("convolutional layers: %d layers is more than the limit of %d", len(c.Conv), MaxLayers)
	}
	for i, l := range c.Conv {
		if err := l.Validate(); err != nil {
			return fmt.Errorf("convolutional layer %d: %w", i+1, err)
		}
	}
	switch strings.ToLower(c.Optimizer) {
	case SGD, Momentum, Adam:
	default:
		return fmt.Errorf("optimizer: unknown %q (want %s)", c.Optimizer, strings.Join(Optimizers, ", "))
	}
	if !finite(c.LR) || c.LR <= 0 {
		return fmt.Errorf("learning rate: must be a positive number, got %v", c.LR)
	}
	if !finite(c.Momentum) || c.Momentum < 0 || c.Momentum >= 1 {
		return fmt.Errorf("momentum: must be in [0, 1), got %v", c.Momentum)
	}
	if !finite(c.WeightDecay) || c.WeightDecay < 0 {
		return fmt.Errorf("weight decay: must be a number ≥ 0, got %v", c.WeightDecay)
	}
	if c.BatchSize <= 0 {
		return fmt.Errorf("batch size: must be positive, got %d", c.BatchSize)
	}
	if c.Epochs <= 0 || c.Epochs > MaxEpochs {
		return fmt.Errorf("epochs: must be between 1 and %d, got %d", MaxEpochs, c.Epochs)
	}
	if _, err := flood.ParseMethod(string(c.Flood)); err != nil {
		return err
	}
	if err := flood.CheckLevel(c.FloodLevel); err != nil {
		return fmt.Errorf("flood level: must be a finite number ≥ 0, got %v", c.FloodLevel)
	}
	return nil
}

// ValidateFor checks c against the dataset it will train on.
func (c Config) ValidateFor(d *Data) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if c.BatchSize > d.Train.N {
		return fmt.Errorf("batch size: %d is larger than the training set (%d rows)", c.BatchSize, d.Train.N)
	}
	params, features := 0, d.Features
	if len(c.Conv) > 0 {
		if d.Image.IsZero() {
			return fmt.Errorf("convolutional layers: they need images, and the rows of %s are not (use mnist or idx:DIR, or an MLP)", d.Name)
		}
		shapes, err := convShapes(d.Image, c.Conv)
		if err != nil {
			return err
		}
		for _, s := range shapes {
			params += (s.patch + 1) * s.conv.Channels
			if cols := c.BatchSize * s.convRows * s.patch; cols > MaxActivations {
				return fmt.Errorf("convolutional layers: layer %d's windows take %d values for a batch of %d, more than the limit of %d", len(shapes), cols, c.BatchSize, MaxActivations)
			}
		}
		features = shapes[len(shapes)-1].out.size()
	}
	sizes := append(append([]int{features}, c.Hidden...), d.Classes)
	for l := 0; l+1 < len(sizes); l++ {
		params += (sizes[l] + 1) * sizes[l+1]
	}
	if params > MaxParameters {
		return fmt.Errorf("hidden layers: the model would have %d parameters, more than the limit of %d", params, MaxParameters)
	}
	return nil
}

// newModel draws the initial model of a run of c on d.
func (c Config) newModel(d *Data) (*Model, error) {
	rng := newRand(c.Seed, streamInit)
	if len(c.Conv) > 0 {
		return NewConvModel(d.Image, c.Conv, c.Hidden, d.Classes, rng)
	}
	return NewModel(d.Features, c.Hidden, d.Classes, rng), nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// EpochReport is what a run reports after every epoch.
type EpochReport struct {
	Epoch int `json:"epoch"` // 1-based
	// TrainLoss and TrainAcc are the means over the epoch's minibatches of
	// the unflooded loss and the accuracy, taken before each step.
	TrainLoss float64 `json:"train_loss"`
	TrainAcc  float64 `json:"train_acc"`
	ValLoss   float64 `json:"val_loss"`
	ValAcc    float64 `json:"val_acc"`
	// TestLoss and TestAcc are the test split's, with Config.TestCurve only.
	TestLoss float64 `json:"test_loss,omitempty"`
	TestAcc  float64 `json:"test_acc,omitempty"`
	// AscentFraction is the share of this epoch's steps that ascended.
	AscentFraction float64 `json:"ascent_fraction"`
	Seconds        float64 `json:"seconds"` // this epoch, evaluation included
}

// Result is a finished run: losses and accuracies of the final model on the
// whole of each split (training labels as noisy as they were trained on).
type Result struct {
	TrainLoss      float64 `json:"train_loss"`
	TrainAcc       float64 `json:"train_acc"`
	ValLoss        float64 `json:"val_loss"`
	ValAcc         float64 `json:"val_acc"`
	TestLoss       float64 `json:"test_loss"`
	TestAcc        float64 `json:"test_acc"`
	AscentFraction float64 `json:"ascent_fraction"`
	Epochs         int     `json:"epochs"`
	Steps          int     `json:"steps"`
	Seconds        float64 `json:"seconds"`
	// BestEpoch is the epoch of the best validation accuracy (the lowest
	// validation loss with Config.BestByLoss), the first of equals;
	// BestValLoss and BestValAcc are that epoch's; BestTestLoss and
	// BestTestAcc its test figures, with Config.TestAtBest or TestCurve
	// (BestTested).
	BestEpoch    int           `json:"best_epoch"`
	BestValLoss  float64       `json:"best_val_loss"`
	BestValAcc   float64       `json:"best_val_acc"`
	BestTestLoss float64       `json:"-"`
	BestTestAcc  float64       `json:"-"`
	BestTested   bool          `json:"-"`
	History      []EpochReport `json:"history,omitempty"`
}

// better reports whether rep is a better validation epoch than the best so
// far under c.
func (c Config) better(rep EpochReport, res *Result) bool {
	if res.BestEpoch == 0 {
		return true
	}
	if c.BestByLoss {
		return rep.ValLoss < res.BestValLoss
	}
	return rep.ValAcc > res.BestValAcc
}

// DivergedError ends a run whose loss became NaN or infinite.
type DivergedError struct {
	Epoch int
	Loss  float64
}

func (e *DivergedError) Error() string {
	return fmt.Sprintf("diverged at epoch %d: the loss is %v (try a lower learning rate)", e.Epoch, e.Loss)
}

// EpochFunc is called after every epoch. An error stops the run: Train
// returns it (wrapped) with the result so far; StopRun instead ends the run
// there as if that epoch were its last.
type EpochFunc func(EpochReport) error

// StopRun, returned by an EpochFunc, ends the run after the epoch as if it
// were the last (early stopping): the result is that of a run of that many
// epochs, its final model evaluated.
//
//lint:ignore ST1012 a signal, not a failure, named as filepath.SkipDir and fs.SkipAll are; renaming would break embedders.
var StopRun = errors.New("stop the run after this epoch")

// evalBatch is the batch size of evaluation passes.
const evalBatch = 1000

// Train trains a new model on d under c, calling onEpoch (if not nil) after
// every epoch. The same data, config and BLAS thread count give the same
// result, bit for bit.
func Train(ctx context.Context, d *Data, c Config, onEpoch EpochFunc) (*Result, error) {
	return TrainWith(ctx, d, c, RunOptions{OnEpoch: onEpoch})
}

// TrainWith trains as Train does, from a checkpoint if o says so, handing
// out a checkpoint after every epoch if o asks. A run that starts from a
// checkpoint gives the result of the run from scratch, bit for bit.
func TrainWith(ctx context.Context, d *Data, c Config, o RunOptions) (*Result, error) {
	if err := c.ValidateFor(d); err != nil {
		return nil, err
	}
	if o.From != nil {
		if err := o.From.Forkable(d, c); err != nil {
			return nil, fmt.Errorf("start from a checkpoint: %w", err)
		}
	}
	t0 := time.Now()
	model, err := c.newModel(d)
	if err != nil {
		return nil, err
	}
	tr, err := newTrainer(model, d, c)
	if err != nil {
		return nil, err
	}
	res := &Result{}
	shuffle := newRand(c.Seed, streamShuffle)
	order := make([]int, d.Train.N)
	for i := range order {
		order[i] = i
	}
	var minLoss, minSample []float64
	// best holds the parameters of the best epoch so far while its test
	// figures are pending (TestAtBest): the test split is evaluated once,
	// when the run ends, rather than at every new best.
	var best [][]float32
	testBest := func() error {
		if best == nil {
			return nil
		}
		loss, acc, err := tr.evaluateWith(ctx, best, &d.Test)
		if err != nil {
			return err
		}
		res.BestTestLoss, res.BestTestAcc, res.BestTested = loss, acc, true
		best = nil
		return nil
	}
	first := 1
	if cp := o.From; cp != nil {
		if err := tr.restore(cp); err != nil {
			return nil, err
		}
		// The batch order of the epochs done: the shuffles replayed.
		for range cp.Epoch {
			shuffle.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		}
		res.History = slices.Clone(cp.History[:cp.Epoch])
		res.Epochs = cp.Epoch
		res.BestEpoch, res.BestValLoss, res.BestValAcc = cp.Best.BestEpoch, cp.Best.BestValLoss, cp.Best.BestValAcc
		res.BestTestLoss, res.BestTestAcc, res.BestTested = cp.Best.BestTestLoss, cp.Best.BestTestAcc, cp.Best.BestTested
		switch {
		case cp.BestPending && c.TestAtBest && !c.TestCurve:
			// The best epoch's test figures are still to be taken, from
			// its parameters.
			best = cloneAll(cp.bestParams())
		case res.BestEpoch > 0 && !res.BestTested && (c.TestAtBest || c.TestCurve):
			// The run started from asks for test figures the plain run
			// did not take: only the epochs from here can have them.
			res.BestEpoch = 0
		case res.BestTested && !c.TestAtBest && !c.TestCurve:
			// Figures this run would not have taken.
			res.BestTestLoss, res.BestTestAcc, res.BestTested = 0, 0, false
		}
		minLoss, minSample = slices.Clone(cp.MinLoss[:cp.Epoch]), slices.Clone(cp.MinSampleLoss[:cp.Epoch])
		first = cp.Epoch + 1
	}
epochs:
	for epoch := first; epoch <= c.Epochs; epoch++ {
		te := time.Now()
		shuffle.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		rep, mins, err := tr.epoch(ctx, epoch, order)
		if err != nil {
			res.Epochs = epoch - 1
			res.Seconds = time.Since(t0).Seconds()
			return res, err
		}
		minLoss, minSample = append(minLoss, mins[0]), append(minSample, mins[1])
		if rep.ValLoss, rep.ValAcc, err = tr.evaluate(ctx, &d.Val); err != nil {
			return res, err
		}
		if !finite(rep.ValLoss) {
			return res, &DivergedError{Epoch: epoch, Loss: rep.ValLoss}
		}
		if c.TestCurve {
			if rep.TestLoss, rep.TestAcc, err = tr.evaluate(ctx, &d.Test); err != nil {
				return res, err
			}
		}
		if c.better(rep, res) {
			res.BestEpoch, res.BestValLoss, res.BestValAcc = epoch, rep.ValLoss, rep.ValAcc
			res.BestTestLoss, res.BestTestAcc, res.BestTested = 0, 0, false
			switch {
			case c.TestCurve:
				res.BestTestLoss, res.BestTestAcc, res.BestTested = rep.TestLoss, rep.TestAcc, true
			case c.TestAtBest:
				best = copyAll(best, tr.params)
			}
		}
		rep.Seconds = time.Since(te).Seconds()
		res.History = append(res.History, rep)
		res.Epochs = epoch
		if o.OnCheckpoint != nil {
			if err := o.OnCheckpoint(tr.checkpoint(epoch, res, minLoss, minSample, best)); err != nil {
				res.Seconds = time.Since(t0).Seconds()
				return res, fmt.Errorf("checkpoint after epoch %d: %w", epoch, err)
			}
		}
		if o.OnEpoch != nil {
			err := o.OnEpoch(rep)
			if errors.Is(err, StopRun) {
				break epochs
			}
			if err != nil {
				if terr := testBest(); terr != nil {
					return res, terr
				}
				res.Seconds = time.Since(t0).Seconds()
				return res, fmt.Errorf("stopped after epoch %d: %w", epoch, err)
			}
		}
	}
	if err := testBest(); err != nil {
		return res, err
	}
	if res.TrainLoss, res.TrainAcc, err = tr.evaluate(ctx, &d.Train); err != nil {
		return res, err
	}
	last := res.History[len(res.History)-1]
	res.ValLoss, res.ValAcc = last.ValLoss, last.ValAcc
	if res.TestLoss, res.TestAcc, err = tr.evaluate(ctx, &d.Test); err != nil {
		return res, err
	}
	res.Steps = tr.steps
	res.AscentFraction = tr.ascentFraction()
	res.Seconds = time.Since(t0).Seconds()
	return res, nil
}

// Random streams of a training run, beside the dataset's.
const (
	streamInit    uint64 = 0x696e69746d6f646c
	streamShuffle uint64 = 0x73687566666c6521
)

// trainer holds one run's graphs and optimizer state.
type trainer struct {
	model  *Model
	data   *Data
	cfg    Config
	full   *net         // batches of BatchSize
	rest   *net         // the last, smaller batch of an epoch, if any
	eval   map[int]*net // forward-only graphs by batch size
	opt    optimizer
	params [][]float32
	grads  [][]float32
	steps  int
	// ascents is the sum over the steps of their ascent shares.
	ascents float64
}

func newTrainer(m *Model, d *Data, c Config) (*trainer, error) {
	method, err := flood.ParseMethod(string(c.Flood))
	if err != nil {
		return nil, err
	}
	t := &trainer{model: m, data: d, cfg: c, params: m.Params()}
	if t.full, err = m.newNet(c.BatchSize, true, method, c.FloodLevel); err != nil {
		return nil, err
	}
	if r := d.Train.N % c.BatchSize; r != 0 {
		if t.rest, err = m.newNet(r, true, method, c.FloodLevel); err != nil {
			return nil, err
		}
	}
	t.eval = make(map[int]*net)
	if t.opt, err = newOptimizer(c, t.params); err != nil {
		return nil, err
	}
	return t, nil
}

// epoch runs one pass over the training rows in the given order. It
// returns, beside the report, the smallest minibatch loss J and the
// smallest per-sample loss of its steps (see ForkEpoch).
func (t *trainer) epoch(ctx context.Context, epoch int, order []int) (EpochReport, [2]float64, error) {
	rep := EpochReport{Epoch: epoch}
	mins := [2]float64{math.Inf(1), math.Inf(1)}
	var loss float64
	var correct, steps int
	var ascents float64
	f := t.data.Features
	for start := 0; start < len(order); start += t.cfg.BatchSize {
		if err := ctx.Err(); err != nil {
			return rep, mins, err
		}
		idx := order[start:min(start+t.cfg.BatchSize, len(order))]
		n := t.full
		if len(idx) < t.cfg.BatchSize {
			n = t.rest
		}
		n.load(&t.data.Train, f, idx)
		if err := n.run(); err != nil {
			return rep, mins, fmt.Errorf("training step %d: %w", t.steps+1, err)
		}
		j := n.stats.LastLoss()
		if !finite(j) {
			return rep, mins, &DivergedError{Epoch: epoch, Loss: j}
		}
		mins[0], mins[1] = min(mins[0], j), min(mins[1], n.minSampleLoss(len(idx)))
		l, c := n.score(len(idx))
		loss += l
		correct += c
		ascents += n.stats.LastAscent()
		t.ascents += n.stats.LastAscent()
		steps++
		t.steps++
		t.grads = n.gradients(t.grads)
		t.opt.step(t.params, t.grads)
	}
	rep.TrainLoss = loss / float64(len(order))
	rep.TrainAcc = float64(correct) / float64(len(order))
	rep.AscentFraction = ascents / float64(steps)
	return rep, mins, nil
}

// evaluate returns the mean loss and the accuracy of the model on s.
// evaluateWith evaluates s as evaluate does, with the model's parameters
// set to params for the while.
func (t *trainer) evaluateWith(ctx context.Context, params [][]float32, s *Split) (loss, acc float64, err error) {
	current := cloneAll(t.params)
	for i, p := range t.params {
		copy(p, params[i])
	}
	defer func() {
		for i, p := range t.params {
			copy(p, current[i])
		}
	}()
	return t.evaluate(ctx, s)
}

func (t *trainer) evaluate(ctx context.Context, s *Split) (loss, acc float64, err error) {
	if s.N == 0 {
		return math.NaN(), math.NaN(), nil
	}
	// A split smaller than evalBatch gets a graph of its own size, so that
	// a small validation set is not padded at every epoch.
	size := min(t.evalBatch(), s.N)
	n, ok := t.eval[size]
	if !ok {
		if n, err = t.model.newNet(size, false, flood.None, 0); err != nil {
			return 0, 0, err
		}
		t.eval[size] = n
	}
	idx := make([]int, 0, n.batch)
	var correct int
	for start := 0; start < s.N; start += n.batch {
		if err := ctx.Err(); err != nil {
			return 0, 0, err
		}
		idx = idx[:0]
		for r := start; r < min(start+n.batch, s.N); r++ {
			idx = append(idx, r)
		}
		n.load(s, t.data.Features, idx)
		if err := n.run(); err != nil {
			return 0, 0, fmt.Errorf("evaluation: %w", err)
		}
		l, c := n.score(len(idx))
		loss += l
		correct += c
	}
	return loss / float64(s.N), float64(correct) / float64(s.N), nil
}

// evalBatch is the batch size of the evaluation passes: evalBatch rows, or
// for a convolutional network as many as keep its largest matrix of
// windows within evalWindows values (and at least the training batch).
func (t *trainer) evalBatch() int {
	largest := 0
	for _, s := range t.model.shapes {
		largest = max(largest, s.convRows*s.patch)
	}
	if largest == 0 {
		return evalBatch
	}
	return max(min(evalBatch, evalWindows/largest), t.cfg.BatchSize, 1)
}

// evalWindows bounds the matrix of windows of an evaluation pass of a
// convolutional network (64 MiB of float32).
const evalWindows = 1 << 24

// ascentFraction is the share of the run's steps that ascended: the sum
// of every step's ascent share, in step order, over the steps (those of
// the epochs a run started from, which did not ascend, included), so that
// a run started from a checkpoint gives the same figure, bit for bit.
func (t *trainer) ascentFraction() float64 {
	if t.steps == 0 {
		return 0
	}
	return t.ascents / float64(t.steps)
}
