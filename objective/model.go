package objective

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/floodtune/floodtune/flood"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Model is a multilayer perceptron, or a convolutional network whose
// convolutional layers feed one: ReLU hidden layers and a linear output
// layer whose logits feed a softmax cross-entropy. Dense layer l maps
// Sizes[l] features to Sizes[l+1] with W[l] [Sizes[l+1], Sizes[l]]
// (PyTorch's layout) and B[l] [Sizes[l+1]], float32. A convolutional
// network takes images of shape Image through the layers Conv, whose
// weights ConvW[l] are [Channels, Kernel·Kernel·in] laid out (out, ky, kx,
// in) and biases ConvB[l] [Channels] (see ops_conv.go); Sizes[0] is then the
// size of the last feature map. Every graph built from a Model shares its
// tensors, so an update of the parameters is seen by all of them.
type Model struct {
	Sizes        []int
	W, B         []*tensor.Dense
	Image        ImageShape
	Conv         []ConvLayer
	ConvW, ConvB []*tensor.Dense
	shapes       []convShape
}

// NewModel returns an MLP with PyTorch's default initialisation of a linear
// layer: weights and biases uniform in ±1/√fan_in.
func NewModel(features int, hidden []int, classes int, rng *rand.Rand) *Model {
	m := &Model{}
	m.addDense(append(append([]int{features}, hidden...), classes), rng)
	return m
}

// NewConvModel returns a convolutional network on images of shape image:
// the layers conv, then dense layers of the widths hidden, then the output
// layer. Every layer has PyTorch's default initialisation, weights and
// biases uniform in ±1/√fan_in (fan_in = in·Kernel² for a convolution),
// drawn layer by layer from the first.
func NewConvModel(image ImageShape, conv []ConvLayer, hidden []int, classes int, rng *rand.Rand) (*Model, error) {
	shapes, err := convShapes(image, conv)
	if err != nil {
		return nil, err
	}
	m := &Model{Image: image, Conv: conv, shapes: shapes}
	for _, s := range shapes {
		w, b := uniformLayer(s.conv.Channels, s.patch, rng)
		m.ConvW = append(m.ConvW, w)
		m.ConvB = append(m.ConvB, b)
	}
	m.addDense(append(append([]int{shapes[len(shapes)-1].out.size()}, hidden...), classes), rng)
	return m, nil
}

func (m *Model) addDense(sizes []int, rng *rand.Rand) {
	m.Sizes = sizes
	for l := 0; l+1 < len(sizes); l++ {
		w, b := uniformLayer(sizes[l+1], sizes[l], rng)
		m.W = append(m.W, w)
		m.B = append(m.B, b)
	}
}

// uniformLayer draws a layer's weights [out, in] and then its biases [out]
// uniformly in ±1/√in.
func uniformLayer(out, in int, rng *rand.Rand) (w, b *tensor.Dense) {
	bound := float32(1 / math.Sqrt(float64(in)))
	wv := make([]float32, in*out)
	for i := range wv {
		wv[i] = bound * (2*rng.Float32() - 1)
	}
	bv := make([]float32, out)
	for i := range bv {
		bv[i] = bound * (2*rng.Float32() - 1)
	}
	return tensor.New(tensor.WithShape(out, in), tensor.WithBacking(wv)), tensor.New(tensor.WithShape(out), tensor.WithBacking(bv))
}

// Params returns the parameter slices in the order of the layers, each
// layer's weights then its biases: ConvW0, ConvB0, ..., W0, B0, W1, B1, ...
func (m *Model) Params() [][]float32 {
	ps := make([][]float32, 0, 2*(len(m.ConvW)+len(m.W)))
	for l := range m.ConvW {
		ps = append(ps, m.ConvW[l].Float32s(), m.ConvB[l].Float32s())
	}
	for l := range m.W {
		ps = append(ps, m.W[l].Float32s(), m.B[l].Float32s())
	}
	return ps
}

// features is the size of an input row.
func (m *Model) features() int {
	if len(m.shapes) > 0 {
		return m.Image.size()
	}
	return m.Sizes[0]
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
		x:     tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(batch, m.features())),
		y:     tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(batch)),
	}
	x := G.NewMatrix(g, tensor.Float32, G.WithShape(batch, m.features()), G.WithName("x"), G.WithValue(n.x))
	y := G.NewVector(g, tensor.Float32, G.WithShape(batch), G.WithName("y"), G.WithValue(n.y))
	var params G.Nodes
	h := x
	for l, s := range m.shapes {
		// im2col, then the linear layer's op on its rows, with the ReLU.
		var err error
		if h, err = G.ApplyOp(newIm2colOp(batch, s, l == 0, l > 0), h); err != nil {
			return nil, fmt.Errorf("build convolutional layer %d: %w", l+1, err)
		}
		w := G.NewMatrix(g, tensor.Float32, G.WithShape(m.ConvW[l].Shape()...), G.WithName(fmt.Sprintf("ConvW%d", l)), G.WithValue(m.ConvW[l]))
		b := G.NewVector(g, tensor.Float32, G.WithShape(m.ConvB[l].Shape()...), G.WithName(fmt.Sprintf("ConvB%d", l)), G.WithValue(m.ConvB[l]))
		params = append(params, w, b)
		if h, err = G.ApplyOp(newLinearOp(true, l > 0), h, w, b); err != nil {
			return nil, fmt.Errorf("build convolutional layer %d: %w", l+1, err)
		}
		if s.pool > 1 {
			if h, err = G.ApplyOp(newMaxPoolOp(batch, s.conv, s.pool), h); err != nil {
				return nil, fmt.Errorf("build the pooling of convolutional layer %d: %w", l+1, err)
			}
		}
	}
	if len(m.shapes) > 0 {
		var err error
		if h, err = G.ApplyOp(newReshapeOp(batch, m.Sizes[0], false), h); err != nil {
			return nil, fmt.Errorf("build the dense layers' input: %w", err)
		}
	}
	for l := range m.W {
		w := G.NewMatrix(g, tensor.Float32, G.WithShape(m.W[l].Shape()...), G.WithName(fmt.Sprintf("W%d", l)), G.WithValue(m.W[l]))
		b := G.NewVector(g, tensor.Float32, G.WithShape(m.B[l].Shape()...), G.WithName(fmt.Sprintf("b%d", l)), G.WithValue(m.B[l]))
		params = append(params, w, b)
		var err error
		// The first dense layer of an MLP reads the data: no gradient for it.
		op := newLinearOp(l+1 < len(m.W), l > 0 || len(m.shapes) > 0)
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
