package objective

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/floodtune/floodtune/flood"
)

// refLoss is an independent float64 implementation of the model's forward
// pass: the mean softmax cross-entropy of an MLP with ReLU hidden layers.
func refLoss(m *Model, params [][]float64, x []float32, y []int32, n int) float64 {
	act := make([]float64, len(x))
	for i, v := range x {
		act[i] = float64(v)
	}
	for l := 0; l+1 < len(m.Sizes); l++ {
		in, out := m.Sizes[l], m.Sizes[l+1]
		w, b := params[2*l], params[2*l+1]
		next := make([]float64, n*out)
		for r := 0; r < n; r++ {
			for o := 0; o < out; o++ {
				s := b[o]
				for i := 0; i < in; i++ {
					s += act[r*in+i] * w[o*in+i]
				}
				if l+2 < len(m.Sizes) && s < 0 {
					s = 0
				}
				next[r*out+o] = s
			}
		}
		act = next
	}
	k := m.Sizes[len(m.Sizes)-1]
	total := 0.0
	for r := 0; r < n; r++ {
		row := act[r*k : (r+1)*k]
		mx := math.Inf(-1)
		for _, v := range row {
			mx = math.Max(mx, v)
		}
		s := 0.0
		for _, v := range row {
			s += math.Exp(v - mx)
		}
		total += mx + math.Log(s) - row[y[r]]
	}
	return total / float64(n)
}

func TestModelGradientMatchesFiniteDifferences(t *testing.T) {
	t.Parallel()
	const n, features, classes = 6, 5, 3
	rng := rand.New(rand.NewPCG(7, 7))
	m := NewModel(features, []int{7, 4}, classes, rng)
	x := make([]float32, n*features)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	y := make([]int32, n)
	for i := range y {
		y[i] = int32(rng.IntN(classes))
	}
	net, err := m.newNet(n, true, flood.None, 0)
	if err != nil {
		t.Fatal(err)
	}
	split := Split{X: x, Y: y, N: n}
	net.load(&split, features, []int{0, 1, 2, 3, 4, 5})
	if err := net.run(); err != nil {
		t.Fatal(err)
	}
	params := m.Params()
	ref := make([][]float64, len(params))
	for k, p := range params {
		ref[k] = make([]float64, len(p))
		for i, v := range p {
			ref[k][i] = float64(v)
		}
	}
	if got, want := net.stats.LastLoss(), refLoss(m, ref, x, y, n); math.Abs(got-want) > 1e-5 {
		t.Fatalf("loss = %v, reference %v", got, want)
	}
	grads := net.gradients(nil)
	const h = 1e-5
	for k := range ref {
		for i := range ref[k] {
			orig := ref[k][i]
			ref[k][i] = orig + h
			up := refLoss(m, ref, x, y, n)
			ref[k][i] = orig - h
			down := refLoss(m, ref, x, y, n)
			ref[k][i] = orig
			fd := (up - down) / (2 * h)
			if got := float64(grads[k][i]); math.Abs(got-fd) > 1e-4+1e-3*math.Abs(fd) {
				t.Errorf("gradient of parameter %d[%d] = %v, finite difference %v", k, i, got, fd)
			}
		}
	}
}

func TestReLUKernels(t *testing.T) {
	t.Parallel()
	negZero := float32(math.Copysign(0, -1))
	inf := float32(math.Inf(1))
	for _, n := range []int{0, 1, 2, 7, 64} {
		y := make([]float32, n)
		g := make([]float32, n)
		for i := range y {
			switch i % 5 {
			case 0:
				y[i] = -float32(i) - 0.5
			case 1:
				y[i] = float32(i) + 0.25
			case 2:
				y[i] = negZero
			case 3:
				y[i] = inf
			default:
				y[i] = 1e-40 // subnormal, positive
			}
			g[i] = float32(i) + 1
		}
		want := make([]float32, n)
		for i, v := range y {
			if v > 0 {
				want[i] = v
			}
		}
		relu(y)
		for i := range y {
			if y[i] != want[i] || math.Signbit(float64(y[i])) {
				t.Fatalf("n=%d: relu[%d] = %v, want +%v", n, i, y[i], want[i])
			}
		}
		d := make([]float32, n)
		reluMask(d, g, y)
		for i := range d {
			w := float32(0)
			if y[i] > 0 {
				w = g[i]
			}
			if d[i] != w {
				t.Fatalf("n=%d: reluMask[%d] = %v, want %v (y=%v)", n, i, d[i], w, y[i])
			}
		}
	}
}
