package search_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/floodtune/floodtune/flood"
	"github.com/floodtune/floodtune/search"
	"github.com/floodtune/floodtune/storage"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// A study of the flood level on a synthetic dataset, trained by floodtune's
// own MLP: create it from a spec, optimise it, read the best trial.
func ExampleOptimize() {
	ctx := context.Background()
	st, err := storage.Open(ctx, "sqlite::memory:")
	if err != nil {
		panic(err)
	}
	defer st.Close()
	spec, err := search.ParseSpec([]byte(`
dataset: {name: gauss2d, train_size: 200, val_size: 100, test_size: 1000, label_noise: 0.1}
model: {hidden: [16]}
training: {optimizer: adam, lr: 0.01, batch_size: 50, epochs: 5}
search: {sampler: tpe, trials: 6, seed: 1}
space:
  flood_level: {type: float, low: 0.0, high: 0.6}
`))
	if err != nil {
		panic(err)
	}
	study, err := search.Create(ctx, st, "gauss-noise10", spec)
	if err != nil {
		panic(err)
	}
	if err := study.Optimize(ctx, search.Options{Workers: 2}); err != nil {
		panic(err)
	}
	counts, _, _ := study.Counts(ctx)
	best, _ := study.Best(ctx)
	fmt.Printf("%d complete trials; the best has validation accuracy above 80%%: %v\n", counts[storage.Complete], best.Value > 0.8)
	// Output: 6 complete trials; the best has validation accuracy above 80%: true
}

// A pipeline's own Gorgonia model, flooded with flood.Apply at the trial's
// level and searched over parameters of the pipeline's own: the spec's
// trainer is external (no dataset, names of its choosing), and the
// objective suggests one more parameter as it runs (define-by-run). The
// study still gets the storage, leases, seeds and pruning.
func ExampleStudy_Optimize_ownModel() {
	ctx := context.Background()
	st, err := storage.Open(ctx, "sqlite::memory:")
	if err != nil {
		panic(err)
	}
	defer st.Close()
	spec, err := search.ParseSpec([]byte(`
trainer: external
search: {sampler: tpe, trials: 6, seed: 2, objective: train_mse, direction: minimize}
space:
  flood_level: {type: float, low: 0.0, high: 0.5}
  step_size: {type: float, low: 0.001, high: 0.05, log: true}
`))
	if err != nil {
		panic(err)
	}
	study, err := search.Create(ctx, st, "regression", spec)
	if err != nil {
		panic(err)
	}
	// Fit y = 2x with one weight; the per-sample squared errors are flooded.
	fit := func(ctx context.Context, t *search.Trial) (float64, error) {
		epochs, err := t.SuggestInt("epochs", 5, 20)
		if err != nil {
			return 0, err
		}
		g := G.NewGraph()
		x := G.NewVector(g, tensor.Float64, G.WithShape(4), G.WithValue(tensor.New(tensor.WithBacking([]float64{1, 2, 3, 4}))))
		y := G.NewVector(g, tensor.Float64, G.WithShape(4), G.WithValue(tensor.New(tensor.WithBacking([]float64{2, 4, 6, 8}))))
		w := G.NewScalar(g, tensor.Float64, G.WithValue(0.0))
		losses := G.Must(G.Square(G.Must(G.Sub(G.Must(G.Mul(x, w)), y))))
		cost, stats, err := flood.Apply(losses, t.FloodMethod(), t.FloodLevel())
		if err != nil {
			return 0, err
		}
		grads, err := G.Grad(cost, w)
		if err != nil {
			return 0, err
		}
		vm := G.NewTapeMachine(g)
		defer vm.Close()
		lr := t.Params["step_size"].(float64)
		for epoch := 1; epoch <= epochs; epoch++ {
			vm.Reset()
			if err := vm.RunAll(); err != nil {
				return 0, err
			}
			if err := G.Let(w, w.Value().Data().(float64)-lr*grads[0].Value().Data().(float64)); err != nil {
				return 0, err
			}
			if err := t.Report(ctx, epoch, stats.LastLoss()); err != nil {
				return 0, err
			}
		}
		return stats.LastLoss(), nil
	}
	if err := study.Optimize(ctx, search.Options{Workers: 1, Objective: fit}); err != nil {
		panic(err)
	}
	trials, _ := study.Trials(ctx)
	complete := 0
	for _, t := range trials {
		_, isInt := t.Params["epochs"].(int)
		if t.State == storage.Complete && isInt && !math.IsNaN(t.Value) {
			complete++
		}
	}
	fmt.Println(len(trials), "trials,", complete, "complete with their own epochs; trial 0 trains without flooding:", trials[0].Params["flood_level"] == 0.0)
	// Output: 6 trials, 6 complete with their own epochs; trial 0 trains without flooding: true
}

// Ask and tell: the program leases trials, trains however it likes (here a
// closed-form score stands in for training), reports each epoch and tells
// the result, until the study's budget is spent. Any number of such loops,
// in any number of processes, may share one study.
func ExampleStudy_Ask() {
	ctx := context.Background()
	st, err := storage.Open(ctx, "sqlite::memory:")
	if err != nil {
		panic(err)
	}
	defer st.Close()
	spec, err := search.ParseSpec([]byte(`
trainer: external
search: {sampler: random, trials: 5, seed: 3, baseline: false}
space:
  flood_level: {type: float, low: 0.0, high: 1.0}
`))
	if err != nil {
		panic(err)
	}
	study, err := search.Create(ctx, st, "ask-tell", spec)
	if err != nil {
		panic(err)
	}
	for {
		t, err := study.Ask(ctx, search.AskOptions{})
		if errors.Is(err, search.ErrBudgetExhausted) {
			break
		} else if err != nil {
			panic(err)
		}
		b := t.FloodLevel()
		acc := 0.0
		for epoch := 1; epoch <= 3; epoch++ {
			acc = float64(epoch) / 3 * (0.9 - (b-0.4)*(b-0.4))
			if err := t.Report(ctx, epoch, acc); err != nil {
				panic(err)
			}
		}
		t.Attrs["note"] = "closed form"
		if err := t.Tell(ctx, acc); err != nil {
			panic(err)
		}
	}
	counts, counted, _ := study.Counts(ctx)
	fmt.Println(counts[storage.Complete], "complete of a budget of", counted)
	// Output: 5 complete of a budget of 5
}

// Reading the best trial back: parameters come decoded, a categorical
// option as its choice and an int as an int.
func ExampleStudy_BestParams() {
	ctx := context.Background()
	st, err := storage.Open(ctx, "sqlite::memory:")
	if err != nil {
		panic(err)
	}
	defer st.Close()
	spec, err := search.ParseSpec([]byte(`
trainer: external
search: {sampler: random, trials: 10, seed: 4}
space:
  flood_level: {type: float, low: 0.0, high: 1.0}
  optimizer: {type: categorical, choices: [sgd, adam]}
  width: {type: int, low: 16, high: 256, step: 16}
`))
	if err != nil {
		panic(err)
	}
	study, err := search.Create(ctx, st, "decoded", spec)
	if err != nil {
		panic(err)
	}
	score := func(ctx context.Context, t *search.Trial) (float64, error) {
		v := 0.5 - math.Abs(t.FloodLevel()-0.3)
		if t.Params["optimizer"] == "adam" {
			v += 1
		}
		return v, nil
	}
	if err := study.Optimize(ctx, search.Options{Workers: 1, Objective: score}); err != nil {
		panic(err)
	}
	best, err := study.BestParams(ctx)
	if err != nil {
		panic(err)
	}
	names := make([]string, 0, len(best))
	for name := range best {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Printf("%s: %T\n", name, best[name])
	}
	fmt.Println("optimizer:", best["optimizer"])
	// Output:
	// flood_level: float64
	// optimizer: string
	// width: int
	// optimizer: adam
}
