package flood_test

import (
	"fmt"

	"github.com/floodtune/floodtune/flood"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Flooding a model's per-sample losses: below the level b the gradient is the
// negated plain gradient, so the optimizer climbs back towards b.
func ExampleApply() {
	for _, b := range []float64{0.5, 2} {
		// Gorgonia differentiates a graph once: one graph per objective.
		g := G.NewGraph()
		// A one-parameter "model" whose per-sample losses are ℓ_i = (w·x_i)².
		w := G.NewScalar(g, tensor.Float64, G.WithName("w"), G.WithValue(0.5))
		x := G.NewVector(g, tensor.Float64, G.WithShape(3), G.WithName("x"),
			G.WithValue(tensor.New(tensor.WithBacking([]float64{1, 2, 3}))))
		losses := G.Must(G.Square(G.Must(G.Mul(x, w)))) // [0.25 1 2.25], mean J ≈ 1.17

		cost, stats, err := flood.Apply(losses, flood.Batch, b)
		if err != nil {
			panic(err)
		}
		grads, err := G.Grad(cost, w)
		if err != nil {
			panic(err)
		}
		if err := G.NewTapeMachine(g).RunAll(); err != nil {
			panic(err)
		}
		fmt.Printf("b=%.1f: J=%.3f flooded=%.3f dJ~/dw=%+.3f ascent=%v\n",
			b, stats.LastLoss(), cost.Value().Data(), grads[0].Value().Data(), stats.LastAscent() == 1)
	}
	// Output:
	// b=0.5: J=1.167 flooded=1.167 dJ~/dw=+4.667 ascent=false
	// b=2.0: J=1.167 flooded=2.833 dJ~/dw=-4.667 ascent=true
}
