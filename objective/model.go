package objective

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/floodtune/floodtune/flood"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Model is a multilayer perceptron: ReLU hidden layers and a linear output
// layer whose logits feed a softmax cross-entropy. Layer l maps Sizes[l]
// features to Sizes[l+1] with W[l] [Sizes[l+1], Sizes[l]] (PyTorch's layout)
// and B[l] [Sizes[l+1]], float32. Every graph built from a Model shares its tensors, so an update of
// the parameters is seen by all of them.
type Model struct {
	Sizes []int
	W, B  []*tensor.Dense
}

// NewModel returns an MLP with PyTorch's default initialisation of a linear
// layer: weights and biases uniform in ±1/√fan_in.
func NewModel(features int, hidden []int, classes int, rng *rand.Rand) *Model {
	sizes := append(append([]int{features}, hidden...), classes)
	m := &Model{Sizes: sizes}
	for l := 0; l+1 < len(sizes); l++ {
		in, out := sizes[l], sizes[l+1]
		bound := float32(1 / math.Sqrt(float64(in)))
		w := make([]float32, in*out)
		for i := range w {
			w[i] = bound * (2*rng.Float32() - 1)
		}
		b := make([]float32, out)
		for i := range b {
			b[i] = bound * (2*rng.Float32() - 1)
		}
		m.W = append(m.W, tensor.New(tensor.WithShape(out, in), tensor.WithBacking(w)))
		m.B = append(m.B, tensor.New(tensor.WithShape(out), tensor.WithBacking(b)))
	}
	return m
}

// Params returns the parameter slices in the order W0, B0, W1, B1, ...
func (m *Model) Params() [][]float32 {
	ps := make([][]float32, 0, 2*len(m.W))
	for l := range m.W {
		ps = append(ps, m.W[l].Float32s(), m.B[l].Float32s())
	}
	return ps
}

// net is one Gorgonia graph of a Model for a fixed batch size: the forward
// pass to per-sample losses and, for training, the flooded objective and the
// gradients of the parameters, run by a program.
type net struct {
	batch  int
	g      *G.ExprGraph
	x, y   *tensor.Dense // the batch, written in place before each run
	logits *G.Node
	losses *G.Node
	grads  G.Nodes // aligned with Model.Params
	stats  *flood.Stats
	prog   *program
}

// newNet builds the graph. With train set it adds the flooded objective
// (method, level) and the gradients.
func (m *Model) newNet(batch int, train bool, method flood.Method, level float64) (*net, error) {
	g := G.NewGraph()
	n := &net{
		batch: batch,
		g:     g,
		x:     tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(batch, m.Sizes[0])),
		y:     tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(batch)),
	}
	x := G.NewMatrix(g, tensor.Float32, G.WithShape(batch, m.Sizes[0]), G.WithName("x"), G.WithValue(n.x))
	y := G.NewVector(g, tensor.Float32, G.WithShape(batch), G.WithName("y"), G.WithValue(n.y))
	var params G.Nodes
	h := x
	for l := range m.W {
		w := G.NewMatrix(g, tensor.Float32, G.WithShape(m.W[l].Shape()...), G.WithName(fmt.Sprintf("W%d", l)), G.WithValue(m.W[l]))
		b := G.NewVector(g, tensor.Float32, G.WithShape(m.B[l].Shape()...), G.WithName(fmt.Sprintf("b%d", l)), G.WithValue(m.B[l]))
		params = append(params, w, b)
		var err error
		op := newLinearOp(l+1 < len(m.W), l > 0)
		if h, err = G.ApplyOp(op, h, w, b); err != nil {
			return nil, fmt.Errorf("build layer %d: %w", l, err)
		}
	}
	n.logits = h
	var err error
	if n.losses, err = G.ApplyOp(newSoftmaxCEOp(), h, y); err != nil {
		return nil, fmt.Errorf("build loss: %w", err)
	}
	if train {
		var cost *G.Node
		if cost, n.stats, err = flood.Apply(n.losses, method, level); err != nil {
			return nil, err
		}
		if n.grads, err = G.Grad(cost, params...); err != nil {
			return nil, fmt.Errorf("differentiate the model: %w", err)
		}
	}
	if n.prog, err = compile(g); err != nil {
		return nil, err
	}
	return n, nil
}

// load copies rows idx of s into the batch; rows beyond len(idx) are zero
// with label 0 (padding for evaluation).
func (n *net) load(s *Split, features int, idx []int) {
	x, y := n.x.Float32s(), n.y.Float32s()
	for i, r := range idx {
		copy(x[i*features:(i+1)*features], s.X[r*features:(r+1)*features])
		y[i] = float32(s.Y[r])
	}
	if len(idx) < n.batch {
		clear(x[len(idx)*features:])
		clear(y[len(idx):])
	}
}

func (n *net) run() error { return n.prog.run() }

// score adds the loss and correct predictions of the first rows of the batch.
func (n *net) score(rows int) (loss float64, correct int) {
	l := float32s(n.prog.value(n.losses))
	z := float32s(n.prog.value(n.logits))
	k := len(z) / n.batch
	y := n.y.Float32s()
	for i := 0; i < rows; i++ {
		loss += float64(l[i])
		if argmax(z[i*k:(i+1)*k]) == int(y[i]) {
			correct++
		}
	}
	return loss, correct
}

func argmax(v []float32) int {
	best := 0
	for i, x := range v[1:] {
		if x > v[best] {
			best = i + 1
		}
	}
	return best
}

// gradients returns the gradient slices aligned with Model.Params.
func (n *net) gradients(dst [][]float32) [][]float32 {
	dst = dst[:0]
	for _, g := range n.grads {
		dst = append(dst, float32s(n.prog.value(g)))
	}
	return dst
}

// float32s is the data of a float32 value; a dense tensor's without the
// allocation of Value.Data.
func float32s(v G.Value) []float32 {
	if d, ok := v.(*tensor.Dense); ok {
		return d.Float32s()
	}
	return v.Data().([]float32)
}
