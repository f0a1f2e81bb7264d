package search_test

import (
	"context"
	"fmt"
	"math"

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
	if err := search.Optimize(ctx, st, "gauss-noise10", search.Options{Workers: 2}); err != nil {
		panic(err)
	}
	counts, _, _ := st.Counts(ctx, study.ID)
	best, _ := st.Best(ctx, study.ID)
	fmt.Printf("%d complete trials; the best has validation accuracy above 80%%: %v\n", counts[storage.Complete], best.Value > 0.8)
	// Output: 6 complete trials; the best has validation accuracy above 80%: true
}

// A Go program's own Gorgonia model with flooding applied to its loss,
// searched by floodtune: the objective builds the graph, trains it and
// reports every epoch; the study still gets the storage, leases, seeds and
// pruning.
func ExampleObjective() {
	ctx := context.Background()
	st, err := storage.Open(ctx, "sqlite::memory:")
	if err != nil {
		panic(err)
	}
	defer st.Close()
	spec, err := search.ParseSpec([]byte(`
dataset: {name: gauss2d}
search: {sampler: random, trials: 4, seed: 2, objective: val_loss}
space:
  flood_level: {type: float, low: 0.0, high: 0.5}
  lr: {type: float, low: 0.01, high: 0.2, log: true}
`))
	if err != nil {
		panic(err)
	}
	if _, err := search.Create(ctx, st, "regression", spec); err != nil {
		panic(err)
	}
	// Fit y = 2x with one weight; the per-sample squared errors are flooded.
	objective := func(ctx context.Context, t *search.Trial) (float64, error) {
		g := G.NewGraph()
		x := G.NewVector(g, tensor.Float64, G.WithShape(4), G.WithValue(tensor.New(tensor.WithBacking([]float64{1, 2, 3, 4}))))
		y := G.NewVector(g, tensor.Float64, G.WithShape(4), G.WithValue(tensor.New(tensor.WithBacking([]float64{2, 4, 6, 8}))))
		w := G.NewScalar(g, tensor.Float64, G.WithValue(0.0))
		losses := G.Must(G.Square(G.Must(G.Sub(G.Must(G.Mul(x, w)), y))))
		cost, stats, err := flood.Apply(losses, t.Config.Flood, t.Config.FloodLevel)
		if err != nil {
			return 0, err
		}
		grads, err := G.Grad(cost, w)
		if err != nil {
			return 0, err
		}
		vm := G.NewTapeMachine(g)
		for epoch := 1; epoch <= 20; epoch++ {
			vm.Reset()
			if err := vm.RunAll(); err != nil {
				return 0, err
			}
			step := t.Config.LR * grads[0].Value().Data().(float64)
			if err := G.Let(w, w.Value().Data().(float64)-step); err != nil {
				return 0, err
			}
			if err := t.Report(epoch, stats.LastLoss()); err != nil {
				return 0, err
			}
		}
		return stats.LastLoss(), nil
	}
	if err := search.Optimize(ctx, st, "regression", search.Options{Workers: 1, Objective: objective}); err != nil {
		panic(err)
	}
	study, _ := st.StudyByName(ctx, "regression")
	trials, _ := st.Trials(ctx, study.ID)
	finite := 0
	for _, t := range trials {
		if t.State == storage.Complete && !math.IsNaN(t.Value) {
			finite++
		}
	}
	fmt.Println(len(trials), "trials,", finite, "complete with a loss; trial 0 is plain training:", trials[0].Params["flood_level"].Value == 0)
	// Output: 4 trials, 4 complete with a loss; trial 0 is plain training: true
}
