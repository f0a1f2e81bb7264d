package objective

import (
	"fmt"
	"hash"
	"hash/fnv"
	"math"
	"sync/atomic"
	"unsafe"

	"github.com/chewxy/hm"
	"gonum.org/v1/gonum/blas"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// The model's Gorgonia ops. Each op owns its output buffer and returns it at
// every pass, so a training step allocates no tensors; each op instance
// belongs to exactly one node. The backward ops compute only the gradients the
// graph needs: a linear layer on the data computes no gradient for the data.

var (
	tvar  = hm.TypeVariable('a')
	tMat  = &G.TensorType{Dims: 2, Of: tvar}
	tVec  = &G.TensorType{Dims: 1, Of: tvar}
	opSeq atomic.Uint64 // distinguishes op instances in Gorgonia's hash-consing
)

// buffer returns t if it has the shape, else a new float32 tensor of that shape.
func buffer(t *tensor.Dense, shape ...int) *tensor.Dense {
	if t != nil && t.Shape().Eq(tensor.Shape(shape)) {
		return t
	}
	return tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(shape...))
}

// maxInputs is the most inputs an op here takes.
const maxInputs = 3

// unpack returns the data and shapes of an op's n float32 tensor inputs, in
// arrays so that a step allocates nothing for them.
func unpack(in []G.Value, n int) (data [maxInputs][]float32, shapes [maxInputs]tensor.Shape, err error) {
	if len(in) != n {
		return data, shapes, fmt.Errorf("objective: want %d inputs, got %d", n, len(in))
	}
	for i, v := range in {
		t, ok := v.(*tensor.Dense)
		if !ok || t.Dtype() != tensor.Float32 {
			return data, shapes, fmt.Errorf("objective: input %d: want a float32 tensor, got %T", i, v)
		}
		data[i], shapes[i] = t.Float32s(), t.Shape()
	}
	return data, shapes, nil
}

func shapeOf(d G.DimSizer) (tensor.Shape, error) {
	s, ok := d.(tensor.Shape)
	if !ok {
		return nil, fmt.Errorf("objective: cannot infer a shape from %T", d)
	}
	return s, nil
}

// base holds what every op here shares: a name, and an id that keeps
// Gorgonia's hash-consing from merging two ops (each owns its buffer).
type base struct {
	name string
	id   uint64
}

func newBase(name string) base { return base{name: name, id: opSeq.Add(1)} }

func (b base) String() string        { return b.name }
func (b base) WriteHash(h hash.Hash) { fmt.Fprintf(h, "%s#%d", b.name, b.id) }
func (b base) ReturnsPtr() bool      { return false }
func (b base) CallsExtern() bool     { return false }
func (b base) OverwritesInput() int  { return -1 }
func (b base) Hashcode() uint32 {
	h := fnv.New32a()
	b.WriteHash(h)
	return h.Sum32()
}

// gradBase is the base of a backward op, which is not differentiated again.
type gradBase struct{ base }

func (gradBase) DiffWRT(n int) []bool { return make([]bool, n) }
func (g gradBase) SymDiff(G.Nodes, *G.Node, *G.Node) (G.Nodes, error) {
	return nil, fmt.Errorf("objective: %v is not differentiable", g.name)
}

// sameShape is the InferShape of an op whose output has its first input's shape.
func sameShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapeOf(in[0])
	if err != nil {
		return nil, err
	}
	return s.Clone(), nil
}

// linearOp: y = x·Wᵀ + b for x [n,in], W [out,in] (PyTorch's layout), b
// [out], followed by a ReLU when relu is set (fused: one pass over y).
type linearOp struct {
	base
	relu      bool
	gradInput bool
	out       *tensor.Dense
}

func newLinearOp(relu, gradInput bool) *linearOp {
	name := "Linear"
	if relu {
		name = "LinearReLU"
	}
	return &linearOp{base: newBase(name), relu: relu, gradInput: gradInput}
}

func (op *linearOp) Arity() int    { return 3 }
func (op *linearOp) Type() hm.Type { return hm.NewFnType(tMat, tMat, tVec, tMat) }
func (op *linearOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	x, err := shapeOf(in[0])
	if err != nil {
		return nil, err
	}
	w, err := shapeOf(in[1])
	if err != nil {
		return nil, err
	}
	if len(x) != 2 || len(w) != 2 || x[1] != w[1] {
		return nil, fmt.Errorf("objective: linear layer shapes x %v, W %v do not match", x, w)
	}
	return tensor.Shape{x[0], w[0]}, nil
}

func (op *linearOp) Do(in ...G.Value) (G.Value, error) {
	data, shapes, err := unpack(in, 3)
	if err != nil {
		return nil, err
	}
	x, w, b := data[0], data[1], data[2]
	n, k, m := shapes[0][0], shapes[0][1], shapes[1][0]
	op.out = buffer(op.out, n, m)
	y := op.out.Float32s()
	for i := 0; i < n; i++ {
		copy(y[i*m:(i+1)*m], b)
	}
	blas32.Sgemm(blas.NoTrans, blas.Trans, n, m, k, 1, x, k, w, k, 1, y, m)
	if op.relu {
		relu(y)
	}
	return op.out, nil
}

func (op *linearOp) DiffWRT(int) []bool { return []bool{op.gradInput, true, true} }

func (op *linearOp) SymDiff(in G.Nodes, out, grad *G.Node) (G.Nodes, error) {
	var err error
	if op.relu {
		if grad, err = G.ApplyOp(&reluGradOp{gradBase: gradBase{newBase("ReLUGrad")}}, out, grad); err != nil {
			return nil, err
		}
	}
	var dx *G.Node
	if op.gradInput {
		// dx = g · W
		if dx, err = G.ApplyOp(newGemmOp(false, false), grad, in[1]); err != nil {
			return nil, err
		}
	}
	// dW = gᵀ · x
	dw, err := G.ApplyOp(newGemmOp(true, false), grad, in[0])
	if err != nil {
		return nil, err
	}
	db, err := G.ApplyOp(&colSumOp{gradBase: gradBase{newBase("ColSum")}}, grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dx, dw, db}, nil
}

// relu sets the negative elements of y to 0 without branches (the signs of a
// layer's outputs are unpredictable), two float32s per 64-bit word.
func relu(y []float32) {
	w := words(y)
	for i, x := range w {
		w[i] = x &^ (((x >> 31) & lowBits) * 0xffffffff)
	}
	if len(y)%2 == 1 {
		u := math.Float32bits(y[len(y)-1])
		y[len(y)-1] = math.Float32frombits(u &^ uint32(int32(u)>>31))
	}
}

// reluMask sets d[i] = g[i] where y[i] > 0, else 0, for y ≥ 0 (a ReLU's
// output): y[i] > 0 exactly when its bits are not zero, and adding 0x7fffffff
// to a non-zero 31-bit value sets bit 31.
func reluMask(d, g, y []float32) {
	wd, wg, wy := words(d), words(g[:len(d)]), words(y[:len(d)])
	for i, x := range wy {
		wd[i] = wg[i] & ((((x + 0x7fffffff7fffffff) >> 31) & lowBits) * 0xffffffff)
	}
	if n := len(d); n%2 == 1 {
		if y[n-1] > 0 {
			d[n-1] = g[n-1]
		} else {
			d[n-1] = 0
		}
	}
}

const lowBits = 0x0000000100000001

// words views the whole pairs of f as 64-bit words.
func words(f []float32) []uint64 {
	if len(f) < 2 {
		return nil
	}
	return unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(f))), len(f)/2)
}

// gemmOp: C = op(A)·op(B), op being an optional transpose.
type gemmOp struct {
	gradBase
	transA, transB bool
	out            *tensor.Dense
}

func newGemmOp(transA, transB bool) *gemmOp {
	return &gemmOp{gradBase: gradBase{newBase(fmt.Sprintf("Gemm{%v,%v}", transA, transB))}, transA: transA, transB: transB}
}

func (op *gemmOp) Arity() int    { return 2 }
func (op *gemmOp) Type() hm.Type { return hm.NewFnType(tMat, tMat, tMat) }

func (op *gemmOp) dims(a, b tensor.Shape) (m, n, k int, err error) {
	ar, ac := a[0], a[1]
	if op.transA {
		ar, ac = ac, ar
	}
	br, bc := b[0], b[1]
	if op.transB {
		br, bc = bc, br
	}
	if ac != br {
		return 0, 0, 0, fmt.Errorf("objective: %v shapes %v, %v do not match", op, a, b)
	}
	return ar, bc, ac, nil
}

func (op *gemmOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	a, err := shapeOf(in[0])
	if err != nil {
		return nil, err
	}
	b, err := shapeOf(in[1])
	if err != nil {
		return nil, err
	}
	m, n, _, err := op.dims(a, b)
	if err != nil {
		return nil, err
	}
	return tensor.Shape{m, n}, nil
}

func (op *gemmOp) Do(in ...G.Value) (G.Value, error) {
	data, shapes, err := unpack(in, 2)
	if err != nil {
		return nil, err
	}
	a, b, as, bs := data[0], data[1], shapes[0], shapes[1]
	m, n, k, err := op.dims(as, bs)
	if err != nil {
		return nil, err
	}
	ta, tb := blas.NoTrans, blas.NoTrans
	if op.transA {
		ta = blas.Trans
	}
	if op.transB {
		tb = blas.Trans
	}
	op.out = buffer(op.out, m, n)
	blas32.Sgemm(ta, tb, m, n, k, 1, a, as[1], b, bs[1], 0, op.out.Float32s(), n)
	return op.out, nil
}

// colSumOp sums a matrix's rows: [n,m] → [m].
type colSumOp struct {
	gradBase
	out *tensor.Dense
}

func (op *colSumOp) Arity() int    { return 1 }
func (op *colSumOp) Type() hm.Type { return hm.NewFnType(tMat, tVec) }
func (op *colSumOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapeOf(in[0])
	if err != nil {
		return nil, err
	}
	return tensor.Shape{s[1]}, nil
}

func (op *colSumOp) Do(in ...G.Value) (G.Value, error) {
	data, shapes, err := unpack(in, 1)
	if err != nil {
		return nil, err
	}
	g, n, m := data[0], shapes[0][0], shapes[0][1]
	op.out = buffer(op.out, m)
	s := op.out.Float32s()
	copy(s, g[:m])
	for i := 1; i < n; i++ {
		row := g[i*m : (i+1)*m]
		for j, v := range row {
			s[j] += v
		}
	}
	return op.out, nil
}

// reluGradOp: dx = g where y > 0, else 0 (from the ReLU's output y).
type reluGradOp struct {
	gradBase
	out *tensor.Dense
}

func (op *reluGradOp) Arity() int                                        { return 2 }
func (op *reluGradOp) Type() hm.Type                                     { return hm.NewFnType(tMat, tMat, tMat) }
func (op *reluGradOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) { return sameShape(in...) }

func (op *reluGradOp) Do(in ...G.Value) (G.Value, error) {
	data, shapes, err := unpack(in, 2)
	if err != nil {
		return nil, err
	}
	y, g := data[0], data[1]
	op.out = buffer(op.out, shapes[0]...)
	d := op.out.Float32s()
	reluMask(d, g, y)
	return op.out, nil
}

// softmaxCEOp: per-sample softmax cross-entropy ℓ_i = logsumexp(z_i) − z_i[y_i]
// for logits z [n,K] and labels y [n] (class indices stored as float32).
// Computed in float64 per row, in one fused pass, so that it is stable for any
// logits and needs no separate softmax, log and product nodes.
type softmaxCEOp struct {
	base
	out *tensor.Dense
}

func newSoftmaxCEOp() *softmaxCEOp { return &softmaxCEOp{base: newBase("SoftmaxCrossEntropy")} }

func (op *softmaxCEOp) Arity() int    { return 2 }
func (op *softmaxCEOp) Type() hm.Type { return hm.NewFnType(tMat, tVec, tVec) }
func (op *softmaxCEOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapeOf(in[0])
	if err != nil {
		return nil, err
	}
	return tensor.Shape{s[0]}, nil
}

func (op *softmaxCEOp) Do(in ...G.Value) (G.Value, error) {
	data, shapes, err := unpack(in, 2)
	if err != nil {
		return nil, err
	}
	z, y := data[0], data[1]
	n, k := shapes[0][0], shapes[0][1]
	op.out = buffer(op.out, n)
	l := op.out.Float32s()
	for i := 0; i < n; i++ {
		row := z[i*k : (i+1)*k]
		lse := logSumExp(row)
		l[i] = float32(lse - float64(row[int(y[i])]))
	}
	return op.out, nil
}

func logSumExp(row []float32) float64 {
	mx := row[0]
	for _, v := range row[1:] {
		if v > mx {
			mx = v
		}
	}
	var s float64
	for _, v := range row {
		s += math.Exp(float64(v - mx))
	}
	return float64(mx) + math.Log(s)
}

func (op *softmaxCEOp) DiffWRT(int) []bool { return []bool{true, false} }
func (op *softmaxCEOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	d, err := G.ApplyOp(&softmaxCEGradOp{gradBase: gradBase{newBase("SoftmaxCrossEntropyGrad")}}, in[0], in[1], grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{d, nil}, nil
}

// softmaxCEGradOp: dz_i = g_i · (softmax(z_i) − onehot(y_i)).
type softmaxCEGradOp struct {
	gradBase
	out *tensor.Dense
}

func (op *softmaxCEGradOp) Arity() int    { return 3 }
func (op *softmaxCEGradOp) Type() hm.Type { return hm.NewFnType(tMat, tVec, tVec, tMat) }
func (op *softmaxCEGradOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return sameShape(in...)
}

func (op *softmaxCEGradOp) Do(in ...G.Value) (G.Value, error) {
	data, shapes, err := unpack(in, 3)
	if err != nil {
		return nil, err
	}
	z, y, g := data[0], data[1], data[2]
	n, k := shapes[0][0], shapes[0][1]
	op.out = buffer(op.out, n, k)
	d := op.out.Float32s()
	for i := 0; i < n; i++ {
		row := z[i*k : (i+1)*k]
		drow := d[i*k : (i+1)*k]
		lse := logSumExp(row)
		gi := float64(g[i])
		for j, v := range row {
			drow[j] = float32(gi * math.Exp(float64(v)-lse))
		}
		c := int(y[i])
		drow[c] = float32(gi * (math.Exp(float64(row[c])-lse) - 1))
	}
	return op.out, nil
}
