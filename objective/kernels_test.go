package objective

import (
	"math"
	"math/rand/v2"
	"testing"
)

// kernelSizes cover empty input, a tail shorter than a vector, exact vectors
// and vectors with a tail.
var kernelSizes = []int{0, 1, 7, 8, 9, 64, 1003}

func normals(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64())
	}
	return s
}

func TestAdamKernelMatchesGenericBitForBit(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range kernelSizes {
		fill := func() []float32 { return normals(rng, n) }
		p, g, m := fill(), fill(), fill()
		v := fill()
		for i := range v {
			v[i] *= v[i] // second moments are ≥ 0
		}
		c := adamConsts{wd: 1e-2, b1: 0.9, nb1: 0.1, b2: 0.999, nb2: 1 - float32(0.999), rbc2: 3.2, eps: 1e-8, step: 1e-3}
		p2, g2, m2, v2 := append([]float32(nil), p...), append([]float32(nil), g...), append([]float32(nil), m...), append([]float32(nil), v...)
		for step := 0; step < 3; step++ {
			adamUpdate(p, g, m, v, &c)
			adamGeneric(p2, g2, m2, v2, &c)
		}
		for i := range p {
			if p[i] != p2[i] || m[i] != m2[i] || v[i] != v2[i] {
				t.Fatalf("n=%d: element %d differs: p %v/%v m %v/%v v %v/%v", n, i, p[i], p2[i], m[i], m2[i], v[i], v2[i])
			}
		}
	}
}

func TestMomentumKernelMatchesGenericBitForBit(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(5, 6))
	for _, n := range kernelSizes {
		fill := func() []float32 { return normals(rng, n) }
		p, g, b := fill(), fill(), fill()
		p2, g2, b2 := append([]float32(nil), p...), append([]float32(nil), g...), append([]float32(nil), b...)
		c := momentumConsts{wd: 1e-3, mu: 0.9, lr: 0.1}
		for step := 0; step < 3; step++ {
			momentumUpdate(p, g, b, &c)
			momentumGeneric(p2, g2, b2, &c)
		}
		for i := range p {
			if p[i] != p2[i] || b[i] != b2[i] {
				t.Fatalf("n=%d: element %d differs: p %v/%v b %v/%v", n, i, p[i], p2[i], b[i], b2[i])
			}
		}
	}
}

// The updates of Adam and SGD with momentum against torch.optim on a scalar
// with loss w², w = 1, lr 0.1, weight decay 0.5. The expected values were
// printed by torch 1.13 (float32) for three steps.
func TestOptimizersFollowTorchOnAScalar(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opt  optimizer
		want []float32
	}{
		{"adam", &adam{lr: 0.1, wd: 0.5, b1: 0.9, b2: 0.999, eps: 1e-8, m: [][]float32{{0}}, v: [][]float32{{0}}},
			[]float32{0.8999999761581421, 0.8004121780395508, 0.7015862464904785}},
		{"sgd", &sgd{lr: 0.1, wd: 0.5}, []float32{0.75, 0.5625, 0.421875}},
		{"momentum", &momentum{lr: 0.1, wd: 0.5, mu: 0.9, buf: [][]float32{{0}}},
			[]float32{0.75, 0.3375000059604645, -0.11812496185302734}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := []float32{1}
			for i, want := range tc.want {
				tc.opt.step([][]float32{w}, [][]float32{{2 * w[0]}})
				if math.Abs(float64(w[0]-want)) > 1e-6 {
					t.Fatalf("step %d: w = %v, torch %v", i+1, w[0], want)
				}
			}
		})
	}
}
