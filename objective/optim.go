package objective

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Optimizer names.
const (
	SGD      = "sgd"
	Momentum = "momentum"
	Adam     = "adam"
)

// Optimizers lists the optimizer names.
var Optimizers = []string{SGD, Momentum, Adam}

// optimizer updates parameters in place from their gradients. The updates
// follow torch.optim (SGD with momentum buffer b ← μb + g, Adam with bias
// correction and L2 weight decay added to the gradient) so that results can
// be compared with PyTorch runs.
type optimizer interface {
	step(params, grads [][]float32)
	// state returns copies of the optimizer's buffers and its step count;
	// restore puts them back.
	state() ([][]float32, int)
	restore(buffers [][]float32, steps int) error
}

// copyAll copies src into dst, allocating dst when it is nil.
func copyAll(dst, src [][]float32) [][]float32 {
	if dst == nil {
		return cloneAll(src)
	}
	for i, x := range src {
		copy(dst[i], x)
	}
	return dst
}

func cloneAll(bufs ...[][]float32) [][]float32 {
	var out [][]float32
	for _, b := range bufs {
		for _, x := range b {
			out = append(out, slices.Clone(x))
		}
	}
	return out
}

// restoreInto copies buffers into dst, which they must match.
func restoreInto(buffers [][]float32, dst ...[][]float32) error {
	i := 0
	for _, d := range dst {
		for _, x := range d {
			if i >= len(buffers) || len(buffers[i]) != len(x) {
				return fmt.Errorf("the checkpoint's optimizer state does not fit the optimizer")
			}
			copy(x, buffers[i])
			i++
		}
	}
	if i != len(buffers) {
		return fmt.Errorf("the checkpoint's optimizer state has %d buffers, the optimizer %d", len(buffers), i)
	}
	return nil
}

func newOptimizer(c Config, params [][]float32) (optimizer, error) {
	lr, wd := float32(c.LR), float32(c.WeightDecay)
	switch strings.ToLower(c.Optimizer) {
	case SGD:
		return &sgd{lr: lr, wd: wd}, nil
	case Momentum:
		o := &momentum{lr: lr, wd: wd, mu: float32(c.momentum())}
		for _, p := range params {
			o.buf = append(o.buf, make([]float32, len(p)))
		}
		return o, nil
	case Adam:
		o := &adam{lr: c.LR, wd: wd, b1: 0.9, b2: 0.999, eps: 1e-8}
		for _, p := range params {
			o.m = append(o.m, make([]float32, len(p)))
			o.v = append(o.v, make([]float32, len(p)))
		}
		return o, nil
	}
	return nil, fmt.Errorf("unknown optimizer %q (want %s)", c.Optimizer, strings.Join(Optimizers, ", "))
}

type sgd struct{ lr, wd float32 }

func (o *sgd) state() ([][]float32, int) { return nil, 0 }
func (o *sgd) restore(b [][]float32, _ int) error {
	return restoreInto(b)
}

// The SGD updates run on the BLAS's vectorised level-1 routines; the
// gradients are scratch space that the next step overwrites.
func (o *sgd) step(params, grads [][]float32) {
	for k, p := range params {
		g := grads[k][:len(p)]
		if o.wd != 0 {
			blas32.Saxpy(len(p), o.wd, p, 1, g, 1) // g += wd·p
		}
		blas32.Saxpy(len(p), -o.lr, g, 1, p, 1) // p -= lr·g
	}
}

type momentum struct {
	lr, wd, mu float32
	buf        [][]float32
}

func (o *momentum) state() ([][]float32, int) { return cloneAll(o.buf), 0 }
func (o *momentum) restore(b [][]float32, _ int) error {
	return restoreInto(b, o.buf)
}

func (o *momentum) step(params, grads [][]float32) {
	c := momentumConsts{wd: o.wd, mu: o.mu, lr: o.lr}
	for k, p := range params {
		g := grads[k][:len(p)]
		momentumUpdate(p, g, o.buf[k], &c)
	}
}

type adam struct {
	lr     float64
	wd     float32
	b1, b2 float32
	eps    float32
	t      int
	m, v   [][]float32
}

func (o *adam) state() ([][]float32, int) { return cloneAll(o.m, o.v), o.t }
func (o *adam) restore(b [][]float32, t int) error {
	o.t = t
	return restoreInto(b, o.m, o.v)
}

func (o *adam) step(params, grads [][]float32) {
	o.t++
	bc1 := 1 - math.Pow(float64(o.b1), float64(o.t))
	bc2 := 1 - math.Pow(float64(o.b2), float64(o.t))
	c := adamConsts{
		wd: o.wd, b1: o.b1, nb1: 1 - o.b1, b2: o.b2, nb2: 1 - o.b2,
		rbc2: float32(1 / math.Sqrt(bc2)), eps: o.eps, step: float32(o.lr / bc1),
	}
	for k, p := range params {
		adamUpdate(p, grads[k], o.m[k], o.v[k], &c)
	}
}
