package flood_test

import (
	"errors"
	"math"
	"testing"

	"github.com/floodtune/floodtune/flood"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// problem is a small least-squares model whose per-sample losses are
// ℓ_i = (x_i·w − y_i)², with the data fixed so the losses are known.
type problem struct {
	g      *G.ExprGraph
	w      *G.Node
	losses *G.Node
	cost   *G.Node
	grad   *G.Node
	stats  *flood.Stats
	vm     G.VM
}

var (
	xs = []float64{0.5, -1.0, 1.5, 0.25, 2.0, -0.75, 1.0, -0.5, 0.2, 0.3, -1.2, 0.7}
	ys = []float64{1.0, 0.0, 2.0, -1.0}
	w0 = []float64{0.3, -0.2, 0.5}
)

func newProblem(t *testing.T, dt tensor.Dtype, m flood.Method, b float64) *problem {
	t.Helper()
	g := G.NewGraph()
	x := G.NewMatrix(g, dt, G.WithShape(4, 3), G.WithName("x"), G.WithValue(tensorOf(dt, []int{4, 3}, xs)))
	y := G.NewVector(g, dt, G.WithShape(4), G.WithName("y"), G.WithValue(tensorOf(dt, []int{4}, ys)))
	w := G.NewVector(g, dt, G.WithShape(3), G.WithName("w"), G.WithValue(tensorOf(dt, []int{3}, w0)))
	r := G.Must(G.Sub(G.Must(G.Mul(x, w)), y))
	losses := G.Must(G.Square(r))
	cost, stats, err := flood.Apply(losses, m, b)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	grads, err := G.Grad(cost, w)
	if err != nil {
		t.Fatalf("grad: %v", err)
	}
	return &problem{g: g, w: w, losses: losses, cost: cost, grad: grads[0], stats: stats, vm: G.NewTapeMachine(g)}
}

func tensorOf(dt tensor.Dtype, shape []int, v []float64) *tensor.Dense {
	if dt == tensor.Float32 {
		f := make([]float32, len(v))
		for i := range v {
			f[i] = float32(v[i])
		}
		return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(f))
	}
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(append([]float64(nil), v...)))
}

// run evaluates the graph at w and returns the cost, the losses and the gradient.
func (p *problem) run(t *testing.T, w []float64) (cost float64, losses, grad []float64) {
	t.Helper()
	dt := p.w.Dtype()
	if err := G.Let(p.w, tensorOf(dt, []int{3}, w)); err != nil {
		t.Fatal(err)
	}
	p.vm.Reset()
	if err := p.vm.RunAll(); err != nil {
		t.Fatalf("run: %v", err)
	}
	return scalar(p.cost.Value()), floats(p.losses.Value()), floats(p.grad.Value())
}

func scalar(v G.Value) float64 {
	switch x := v.(type) {
	case *G.F32:
		return float64(*x)
	case *G.F64:
		return float64(*x)
	}
	panic("not a scalar")
}

func floats(v G.Value) []float64 {
	switch d := v.Data().(type) {
	case []float32:
		out := make([]float64, len(d))
		for i := range d {
			out[i] = float64(d[i])
		}
		return out
	case []float64:
		return append([]float64(nil), d...)
	}
	panic("not a vector")
}

func mean(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

func TestValueMatchesDefinition(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		m    flood.Method
		b    float64
	}{
		{"plain training is the mean loss", flood.None, 0},
		{"batch flooding above the level is the mean loss", flood.Batch, 0.1},
		{"batch flooding below the level mirrors the mean around b", flood.Batch, 50},
		{"individual flooding mirrors each sample around b", flood.Individual, 1.0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := newProblem(t, tensor.Float64, tc.m, tc.b)
			cost, losses, _ := p.run(t, w0)
			var want float64
			switch tc.m {
			case flood.None:
				want = mean(losses)
			case flood.Batch:
				want = math.Abs(mean(losses)-tc.b) + tc.b
			case flood.Individual:
				s := 0.0
				for _, l := range losses {
					s += math.Abs(l-tc.b) + tc.b
				}
				want = s / float64(len(losses))
			}
			if math.Abs(cost-want) > 1e-12 {
				t.Fatalf("cost = %v, want %v (losses %v)", cost, want, losses)
			}
			if got := p.stats.LastLoss(); math.Abs(got-mean(losses)) > 1e-12 {
				t.Fatalf("LastLoss = %v, want the unflooded mean %v", got, mean(losses))
			}
		})
	}
}

func TestGradientMatchesFiniteDifferences(t *testing.T) {
	t.Parallel()
	// At w0 the losses are about [0.01, 1.1, 0.42, 3.4] with mean ≈ 1.23: the
	// levels below put b on both sides of J and between individual losses,
	// away from every kink.
	for _, tc := range []struct {
		name string
		m    flood.Method
		b    float64
	}{
		{"plain", flood.None, 0},
		{"batch flooding while descending (J > b)", flood.Batch, 0.5},
		{"batch flooding while ascending (J < b)", flood.Batch, 2.0},
		{"individual flooding with samples on both sides of b", flood.Individual, 0.8},
		{"individual flooding with every sample below b", flood.Individual, 5.0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := newProblem(t, tensor.Float64, tc.m, tc.b)
			_, losses, grad := p.run(t, w0)
			for _, l := range losses {
				if math.Abs(l-tc.b) < 1e-3 && tc.m == flood.Individual {
					t.Fatalf("test point too close to a kink: loss %v, b %v", l, tc.b)
				}
			}
			const h = 1e-6
			for i := range w0 {
				wp := append([]float64(nil), w0...)
				wm := append([]float64(nil), w0...)
				wp[i] += h
				wm[i] -= h
				cp, _, _ := p.run(t, wp)
				cm, _, _ := p.run(t, wm)
				fd := (cp - cm) / (2 * h)
				if math.Abs(fd-grad[i]) > 1e-6*math.Max(1, math.Abs(fd)) {
					t.Errorf("d cost/d w[%d] = %v, finite difference %v", i, grad[i], fd)
				}
			}
		})
	}
}

func TestAscentStepIsTheNegatedPlainStep(t *testing.T) {
	t.Parallel()
	for _, dt := range []tensor.Dtype{tensor.Float32, tensor.Float64} {
		t.Run(dt.String(), func(t *testing.T) {
			t.Parallel()
			_, plainLosses, plain := newProblem(t, dt, flood.None, 0).run(t, w0)
			p := newProblem(t, dt, flood.Batch, mean(plainLosses)+1)
			_, _, flooded := p.run(t, w0)
			for i := range plain {
				if flooded[i] != -plain[i] {
					t.Fatalf("gradient[%d] = %v, want exactly %v", i, flooded[i], -plain[i])
				}
			}
			if p.stats.LastAscent() != 1 {
				t.Fatalf("LastAscent = %v, want 1 for a step below the level", p.stats.LastAscent())
			}
		})
	}
}

func TestLevelZeroIsPlainTrainingBitForBit(t *testing.T) {
	t.Parallel()
	for _, m := range []flood.Method{flood.Batch, flood.Individual} {
		t.Run(string(m), func(t *testing.T) {
			t.Parallel()
			plainCost, _, plain := newProblem(t, tensor.Float32, flood.None, 0).run(t, w0)
			cost, _, grad := newProblem(t, tensor.Float32, m, 0).run(t, w0)
			if m == flood.Batch && cost != plainCost {
				t.Fatalf("cost %v, want exactly the plain %v", cost, plainCost)
			}
			for i := range plain {
				if grad[i] != plain[i] {
					t.Fatalf("gradient[%d] = %v, want exactly %v", i, grad[i], plain[i])
				}
			}
		})
	}
}

func TestIndividualFloodingEqualsPlainWhenEveryLossIsAboveTheLevel(t *testing.T) {
	t.Parallel()
	_, losses, plain := newProblem(t, tensor.Float32, flood.None, 0).run(t, w0)
	minLoss := math.Inf(1)
	for _, l := range losses {
		minLoss = math.Min(minLoss, l)
	}
	p := newProblem(t, tensor.Float32, flood.Individual, minLoss/2)
	cost, _, grad := p.run(t, w0)
	for i := range plain {
		if grad[i] != plain[i] {
			t.Fatalf("gradient[%d] = %v, want exactly %v", i, grad[i], plain[i])
		}
	}
	if math.Abs(cost-mean(losses)) > 1e-6 {
		t.Fatalf("cost = %v, want the mean loss %v", cost, mean(losses))
	}
	if p.stats.LastAscent() != 0 {
		t.Fatalf("LastAscent = %v, want 0", p.stats.LastAscent())
	}
}

func TestIndividualAscentShareCountsSamplesBelowTheLevel(t *testing.T) {
	t.Parallel()
	p := newProblem(t, tensor.Float64, flood.Individual, 0.8)
	_, losses, _ := p.run(t, w0)
	below := 0
	for _, l := range losses {
		if l < 0.8 {
			below++
		}
	}
	if below == 0 || below == len(losses) {
		t.Fatalf("test needs samples on both sides of b, losses %v", losses)
	}
	if got, want := p.stats.LastAscent(), float64(below)/float64(len(losses)); got != want {
		t.Fatalf("LastAscent = %v, want %v", got, want)
	}
	p.run(t, w0)
	if p.stats.Steps() != 2 || p.stats.AscentFraction() != float64(below)/float64(len(losses)) {
		t.Fatalf("after two passes Steps=%d AscentFraction=%v", p.stats.Steps(), p.stats.AscentFraction())
	}
	p.stats.Reset()
	if p.stats.Steps() != 0 || p.stats.AscentFraction() != 0 {
		t.Fatalf("Reset left Steps=%d AscentFraction=%v", p.stats.Steps(), p.stats.AscentFraction())
	}
}

func TestScalarLossIsFloodedAsTheBatchMean(t *testing.T) {
	t.Parallel()
	g := G.NewGraph()
	w := G.NewScalar(g, tensor.Float64, G.WithName("w"), G.WithValue(0.5))
	j := G.Must(G.Square(w)) // J = w², 0.25 at w = 0.5
	cost, stats, err := flood.Apply(j, flood.Batch, 1.0)
	if err != nil {
		t.Fatal(err)
	}
	grads, err := G.Grad(cost, w)
	if err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(g)
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	if got := scalar(cost.Value()); math.Abs(got-1.75) > 1e-12 {
		t.Fatalf("cost = %v, want |0.25 − 1| + 1 = 1.75", got)
	}
	if got := scalar(grads[0].Value()); math.Abs(got-(-1.0)) > 1e-12 {
		t.Fatalf("gradient = %v, want −2w = −1 (ascent)", got)
	}
	if stats.LastAscent() != 1 {
		t.Fatalf("LastAscent = %v, want 1", stats.LastAscent())
	}
	if _, _, err := flood.Apply(j, flood.Individual, 1.0); err == nil {
		t.Fatal("individual flooding of a scalar loss: want an error")
	}
}

func TestNonFiniteAndZeroLosses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		losses []float64
		m      flood.Method
		b      float64
		check  func(float64) bool
	}{
		{"a NaN loss gives a NaN objective", []float64{0.5, math.NaN()}, flood.Batch, 0.2, math.IsNaN},
		{"an infinite loss gives an infinite objective", []float64{0.5, math.Inf(1)}, flood.Individual, 0.2, func(v float64) bool { return math.IsInf(v, 1) }},
		{"zero losses at level zero give zero", []float64{0, 0}, flood.Batch, 0, func(v float64) bool { return v == 0 }},
		{"zero losses below the level give 2b", []float64{0, 0}, flood.Individual, 0.3, func(v float64) bool { return math.Abs(v-0.6) < 1e-12 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := G.NewGraph()
			l := G.NewVector(g, tensor.Float64, G.WithShape(len(tc.losses)), G.WithValue(tensor.New(tensor.WithBacking(append([]float64(nil), tc.losses...)))))
			cost, _, err := flood.Apply(l, tc.m, tc.b)
			if err != nil {
				t.Fatal(err)
			}
			if err := G.NewTapeMachine(g).RunAll(); err != nil {
				t.Fatal(err)
			}
			if got := scalar(cost.Value()); !tc.check(got) {
				t.Fatalf("cost = %v", got)
			}
		})
	}
}

func TestInvalidArguments(t *testing.T) {
	t.Parallel()
	g := G.NewGraph()
	v := G.NewVector(g, tensor.Float32, G.WithShape(4), G.WithInit(G.Zeroes()))
	m := G.NewMatrix(g, tensor.Float32, G.WithShape(2, 2), G.WithInit(G.Zeroes()))
	for _, tc := range []struct {
		name   string
		losses *G.Node
		m      flood.Method
		b      float64
		is     error
	}{
		{"a negative level", v, flood.Batch, -0.1, flood.ErrInvalidLevel},
		{"a NaN level", v, flood.Batch, math.NaN(), flood.ErrInvalidLevel},
		{"an infinite level", v, flood.Individual, math.Inf(1), flood.ErrInvalidLevel},
		{"an unknown method", v, flood.Method("flooding"), 0.1, nil},
		{"a matrix of losses", m, flood.Batch, 0.1, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := flood.Apply(tc.losses, tc.m, tc.b)
			if err == nil {
				t.Fatal("want an error")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("error %v, want one wrapping %v", err, tc.is)
			}
		})
	}
}

func TestParseMethod(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]flood.Method{
		"none": flood.None, "flood": flood.Batch, "batch": flood.Batch,
		"iflood": flood.Individual, "Individual": flood.Individual, "": flood.None,
	} {
		got, err := flood.ParseMethod(in)
		if err != nil || got != want {
			t.Errorf("ParseMethod(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := flood.ParseMethod("flooded"); err == nil {
		t.Error(`ParseMethod("flooded"): want an error`)
	}
}
