// Command pipeline shows how an AutoML pipeline embeds floodtune as a Go
// library: it brings its own data, its own Gorgonia model and its own names
// for the options it searches, and lets floodtune's search package propose
// them, store the trials, seed them, prune them and pick the best.
//
// The pipeline
//
//   - opens a storage (-storage, else $FLOODTUNE_STORAGE, else a private
//     in-memory SQLite database);
//   - makes its own noisy two-class problem: two Gaussian blobs in four
//     dimensions, with 20% of the training labels flipped (the validation
//     labels stay clean), drawn with math/rand/v2 from a fixed seed;
//   - creates (or, when it exists already, loads) a study whose spec says
//     trainer: external and searches the pipeline's own options: flood_level,
//     flood (batch or individual flooding), hidden and lr;
//   - trains a one-hidden-layer MLP built with Gorgonia, whose per-sample
//     logistic losses are flooded with flood.Apply at the trial's method and
//     level, by plain minibatch SGD; each trial also suggests the scale of
//     its initial weights as it runs (define-by-run);
//   - runs the first half of the study's budget through ask/tell
//     (Study.Ask, Trial.Report every epoch, Trial.Tell or Trial.Prune), and
//     the rest through Study.Optimize with two workers;
//   - prints the best trial, its decoded parameters, and its flood level
//     and validation accuracy against the plain-training baseline trial.
//
// Run it from this directory:
//
//	go run .
//	go run . -storage sqlite:/tmp/pipeline.db   # kept: a second run loads the study
//	FLOODTUNE_STORAGE=postgres://user@localhost/floodtune go run .
//
// It exits with status 1 on any error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/signal"
	"sort"
	"sync"
	"syscall"

	"github.com/floodtune/floodtune/flood"
	"github.com/floodtune/floodtune/search"
	"github.com/floodtune/floodtune/storage"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// StudyName is the name of the pipeline's study in its storage.
const StudyName = "pipeline-gauss-noise20"

// specYAML is the pipeline's study. The trainer is external: the pipeline
// trains the trials itself, so the spec names no dataset and searches
// options of the pipeline's own naming. flood_level and flood keep the
// meaning floodtune gives them (Trial.FloodLevel, Trial.FloodMethod).
const specYAML = `
trainer: external
search:
  sampler: tpe
  pruner: median
  objective: val_acc
  trials: 12
  seed: 20260501
space:
  flood_level:  {type: float, low: 0.0, high: 1.0}
  flood:        {type: categorical, choices: [flood, iflood]}
  hidden:       {type: int, low: 4, high: 32, step: 4}
  lr:           {type: float, low: 0.01, high: 1.0, log: true}
`

// Sizes of the pipeline's problem and training.
const (
	dims      = 4   // features
	trainSize = 300 // of which noiseRate are mislabelled
	valSize   = 200 // clean labels
	noiseRate = 0.2
	dataSeed  = 42
	batchSize = 50 // trainSize is a multiple
	epochs    = 8
)

func main() {
	def := os.Getenv("FLOODTUNE_STORAGE")
	if def == "" {
		def = "sqlite::memory:"
	}
	storageURL := flag.String("storage", def, "storage URL: sqlite:PATH, sqlite::memory: or postgres://... (default $FLOODTUNE_STORAGE, else sqlite::memory:)")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "pipeline: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, *storageURL, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "pipeline:", err)
		os.Exit(1)
	}
}

// run is the whole pipeline: it trains the study's trials on the storage
// at storageURL and writes what it found to w.
func run(ctx context.Context, storageURL string, w io.Writer) (err error) {
	st, err := storage.Open(ctx, storageURL)
	if err != nil {
		return fmt.Errorf("open the storage: %w", err)
	}
	defer func() {
		if cerr := st.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close the storage: %w", cerr)
		}
	}()

	study, err := openStudy(ctx, st)
	if err != nil {
		return err
	}
	data := makeData(dataSeed)
	objective := func(ctx context.Context, t *search.Trial) (float64, error) { return train(ctx, t, data) }

	// Part A: ask/tell, for the first half of the budget.
	half := study.Budget() / 2
	asked, err := askTell(ctx, study, half, objective)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "ask/tell: %d trials\n", asked)

	// Part B: Optimize with two workers for the rest of the budget. A
	// trial whose training fails is an error of the pipeline's: FailFast
	// stops there and returns it. OnTrial is called from both workers'
	// goroutines.
	var (
		mu        sync.Mutex
		optimized int
	)
	err = study.Optimize(ctx, search.Options{
		Workers:   2,
		Objective: objective,
		FailFast:  true,
		OnTrial: func(r search.Result) {
			mu.Lock()
			defer mu.Unlock()
			optimized++
		},
	})
	if err != nil {
		return fmt.Errorf("optimize study %q: %w", study.Name(), err)
	}
	fmt.Fprintf(w, "optimize: %d trials\n", optimized)

	return summarize(ctx, study, w)
}

// openStudy creates the pipeline's study, or loads it when a previous run
// created it in the same storage.
func openStudy(ctx context.Context, st *storage.Store) (*search.Study, error) {
	spec, err := search.ParseSpec([]byte(specYAML))
	if err != nil {
		return nil, fmt.Errorf("the pipeline's spec: %w", err)
	}
	// Created on the first run; a later run (or another machine at the
	// same time) resumes it, and a study of that name made from another
	// spec (an older version of this program) is refused.
	study, err := search.LoadOrCreate(ctx, st, StudyName, spec)
	if err != nil {
		return nil, fmt.Errorf("study %q: %w", StudyName, err)
	}
	return study, nil
}

// askTell leases at most n trials of study with Study.Ask, trains each with
// objective and tells its outcome; it stops early when the study's budget
// is spent. It returns the number of trials it ran.
func askTell(ctx context.Context, study *search.Study, n int, objective search.Objective) (int, error) {
	ran := 0
	for ran < n {
		t, err := study.Ask(ctx, search.AskOptions{})
		if errors.Is(err, search.ErrBudgetExhausted) {
			break
		}
		if err != nil {
			return ran, fmt.Errorf("ask for a trial of study %q: %w", study.Name(), err)
		}
		ran++
		value, err := objective(ctx, t)
		switch {
		case errors.Is(err, search.ErrPruned):
			if err := t.Prune(ctx); err != nil {
				return ran, fmt.Errorf("prune trial %d: %w", t.Number, err)
			}
		case err != nil:
			if ctx.Err() != nil {
				// Stopped: give the trial back for a later run.
				if rerr := t.Release(context.WithoutCancel(ctx)); rerr != nil {
					err = errors.Join(err, rerr)
				}
				return ran, fmt.Errorf("trial %d: %w", t.Number, err)
			}
			if ferr := t.Fail(ctx, err); ferr != nil {
				err = errors.Join(err, ferr)
			}
			return ran, fmt.Errorf("trial %d: %w", t.Number, err)
		default:
			if err := t.Tell(ctx, value); err != nil {
				return ran, fmt.Errorf("tell trial %d: %w", t.Number, err)
			}
		}
	}
	return ran, nil
}

// summarize writes the best trial and compares it with the baseline.
func summarize(ctx context.Context, study *search.Study, w io.Writer) error {
	trials, err := study.Trials(ctx)
	if err != nil {
		return err
	}
	states := map[storage.State]int{}
	for _, t := range trials {
		states[t.State]++
	}
	fmt.Fprintf(w, "study %q: %d trials (%d complete, %d pruned, %d failed) of a budget of %d\n", study.Name(),
		len(trials), states[storage.Complete], states[storage.Pruned], states[storage.Fail], study.Budget())

	best, err := study.Best(ctx)
	if err != nil {
		return err
	}
	params, err := study.BestParams(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "best trial: #%d, val_acc %.3f\n", best.Number, best.Value)
	names := make([]string, 0, len(params))
	for name := range params {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(w, "  %-12s = %-10v (%T)\n", name, formatValue(params[name]), params[name])
	}

	for _, t := range trials {
		if !t.Baseline {
			continue
		}
		if t.State != storage.Complete {
			fmt.Fprintf(w, "baseline trial #%d (plain training) is %s\n", t.Number, t.State)
			break
		}
		fmt.Fprintf(w, "flood level %.3f (%s): val_acc %.3f against %.3f of plain training (baseline trial #%d, flood level %v): %+.3f\n",
			params["flood_level"], params["flood"], best.Value, t.Value, t.Number, t.Params["flood_level"], best.Value-t.Value)
		break
	}
	return nil
}

func formatValue(v any) any {
	if f, ok := v.(float64); ok {
		return fmt.Sprintf("%.4g", f)
	}
	return v
}

// data is the pipeline's problem: rows of features (dims of them) and
// labels in {0, 1}.
type data struct {
	trainX []float64 // trainSize × dims, row-major
	trainY []float64
	valX   []float64 // valSize × dims
	valY   []float64
}

// makeData draws two Gaussian blobs, N(−μ, I) for class 0 and N(+μ, I) for
// class 1, and flips noiseRate of the training labels. Clean, the best
// classifier is right about 92% of the time.
func makeData(seed uint64) *data {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	const mu = 0.7 // per dimension: the classes are 2·0.7·√4 = 2.8 σ apart
	draw := func(n int) ([]float64, []float64) {
		x, y := make([]float64, n*dims), make([]float64, n)
		for i := range n {
			label := float64(r.IntN(2))
			y[i] = label
			for j := range dims {
				x[i*dims+j] = (2*label-1)*mu + r.NormFloat64()
			}
		}
		return x, y
	}
	d := &data{}
	d.trainX, d.trainY = draw(trainSize)
	d.valX, d.valY = draw(valSize)
	// Exactly noiseRate of the training labels, chosen at random, flipped.
	for _, i := range r.Perm(trainSize)[:int(noiseRate*trainSize)] {
		d.trainY[i] = 1 - d.trainY[i]
	}
	return d
}

// train trains the pipeline's MLP for one trial and returns its validation
// accuracy after the last epoch. It reports the accuracy every epoch and
// returns search.ErrPruned when the study's pruner stops the trial.
//
// The model is x → ReLU(x·W1 + b1) → ·w2 + b2 = z, one logit; the loss of a
// sample with label y is the logistic loss softplus(−s·z), s = 2y − 1, and
// the minibatch's per-sample losses are flooded with the trial's method and
// level.
func train(ctx context.Context, t *search.Trial, d *data) (float64, error) {
	hidden, ok := t.Params["hidden"].(int)
	if !ok {
		return 0, fmt.Errorf("hidden is %v (%T), not an int", t.Params["hidden"], t.Params["hidden"])
	}
	lr, ok := t.Params["lr"].(float64)
	if !ok {
		return 0, fmt.Errorf("lr is %v (%T), not a float", t.Params["lr"], t.Params["lr"])
	}
	// Define-by-run: the scale of the initial weights is searched too,
	// though the spec does not name it.
	initScale, err := t.SuggestFloat("init_scale", 0.1, 1, search.Log())
	if err != nil {
		return 0, err
	}

	// The trial's seed fixes the initial weights and the minibatch order.
	r := rand.New(rand.NewPCG(uint64(t.Seed), 0x5eed))
	normal := func(n int, scale float64) []float64 {
		out := make([]float64, n)
		for i := range out {
			out[i] = scale * r.NormFloat64()
		}
		return out
	}
	w1Data := normal(dims*hidden, initScale/math.Sqrt(dims))
	b1Data := make([]float64, hidden)
	w2Data := normal(hidden, initScale/math.Sqrt(float64(hidden)))
	xData := make([]float64, batchSize*dims)
	sData := make([]float64, batchSize)

	g := G.NewGraph()
	x := G.NewMatrix(g, tensor.Float64, G.WithShape(batchSize, dims), G.WithName("x"),
		G.WithValue(tensor.New(tensor.WithShape(batchSize, dims), tensor.WithBacking(xData))))
	s := G.NewVector(g, tensor.Float64, G.WithShape(batchSize), G.WithName("s"),
		G.WithValue(tensor.New(tensor.WithShape(batchSize), tensor.WithBacking(sData))))
	w1 := G.NewMatrix(g, tensor.Float64, G.WithShape(dims, hidden), G.WithName("W1"),
		G.WithValue(tensor.New(tensor.WithShape(dims, hidden), tensor.WithBacking(w1Data))))
	b1 := G.NewMatrix(g, tensor.Float64, G.WithShape(1, hidden), G.WithName("b1"),
		G.WithValue(tensor.New(tensor.WithShape(1, hidden), tensor.WithBacking(b1Data))))
	w2 := G.NewVector(g, tensor.Float64, G.WithShape(hidden), G.WithName("w2"),
		G.WithValue(tensor.New(tensor.WithShape(hidden), tensor.WithBacking(w2Data))))
	b2 := G.NewScalar(g, tensor.Float64, G.WithName("b2"), G.WithValue(0.0))

	var cost *G.Node
	var stats *flood.Stats
	var grads G.Nodes
	err = func() (err error) {
		// Gorgonia's graph builders panic through G.Must; keep it an error.
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("build the model: %v", r)
			}
		}()
		h := G.Must(G.Rectify(G.Must(G.BroadcastAdd(G.Must(G.Mul(x, w1)), b1, nil, []byte{0}))))
		z := G.Must(G.Add(G.Must(G.Mul(h, w2)), b2))
		losses := G.Must(G.Softplus(G.Must(G.Neg(G.Must(G.HadamardProd(s, z))))))
		if cost, stats, err = flood.Apply(losses, t.FloodMethod(), t.FloodLevel()); err != nil {
			return fmt.Errorf("flood the loss: %w", err)
		}
		if grads, err = G.Grad(cost, w1, b1, w2, b2); err != nil {
			return fmt.Errorf("differentiate the loss: %w", err)
		}
		return nil
	}()
	if err != nil {
		return 0, err
	}
	vm := G.NewTapeMachine(g)
	defer vm.Close()

	order := make([]int, trainSize)
	for i := range order {
		order[i] = i
	}
	acc := 0.0
	for epoch := 1; epoch <= epochs; epoch++ {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for start := 0; start+batchSize <= trainSize; start += batchSize {
			for k, i := range order[start : start+batchSize] {
				copy(xData[k*dims:(k+1)*dims], d.trainX[i*dims:(i+1)*dims])
				sData[k] = 2*d.trainY[i] - 1
			}
			vm.Reset()
			if err := vm.RunAll(); err != nil {
				return 0, fmt.Errorf("epoch %d: %w", epoch, err)
			}
			// Plain SGD on the weights' backing slices.
			for i, p := range [][]float64{w1Data, b1Data, w2Data} {
				grad, ok := grads[i].Value().Data().([]float64)
				if !ok || len(grad) != len(p) {
					return 0, fmt.Errorf("epoch %d: the gradient of parameter %d is not %d float64s", epoch, i, len(p))
				}
				for j := range p {
					p[j] -= lr * grad[j]
				}
			}
			gb2, ok := grads[3].Value().Data().(float64)
			if !ok {
				return 0, fmt.Errorf("epoch %d: the gradient of b2 is not a float64", epoch)
			}
			if err := G.Let(b2, b2.Value().Data().(float64)-lr*gb2); err != nil {
				return 0, fmt.Errorf("epoch %d: update b2: %w", epoch, err)
			}
		}
		if loss := stats.LastLoss(); math.IsNaN(loss) || math.IsInf(loss, 0) {
			return 0, fmt.Errorf("epoch %d: the training loss diverged (%v)", epoch, loss)
		}
		acc = accuracy(d.valX, d.valY, w1Data, b1Data, w2Data, b2.Value().Data().(float64), hidden)
		if err := t.Report(ctx, epoch, acc); err != nil {
			return 0, err // search.ErrPruned when the pruner stops the trial
		}
	}
	t.Attrs["final_train_loss"] = fmt.Sprintf("%.4f", stats.LastLoss())
	return acc, nil
}

// accuracy is the share of rows of x (dims features each) whose predicted
// class, the sign of the model's logit, is their label.
func accuracy(x, y, w1, b1, w2 []float64, b2 float64, hidden int) float64 {
	right := 0
	h := make([]float64, hidden)
	for i := range y {
		row := x[i*dims : (i+1)*dims]
		for k := range hidden {
			a := b1[k]
			for j, xj := range row {
				a += xj * w1[j*hidden+k]
			}
			h[k] = max(a, 0)
		}
		z := b2
		for k, hk := range h {
			z += hk * w2[k]
		}
		if (z > 0) == (y[i] == 1) {
			right++
		}
	}
	return float64(right) / float64(len(y))
}
