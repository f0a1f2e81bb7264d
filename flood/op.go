package flood

import (
	"fmt"
	"hash"
	"hash/fnv"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// floodOp maps per-sample losses (or a scalar mean loss) to the flooded
// objective. It records every forward pass into its Stats.
type floodOp struct {
	method Method
	level  float64
	vector bool // input is a vector of per-sample losses; else a scalar J
	dtype  tensor.Dtype
	stats  *Stats
	out    scalarBuf
}

func dtypeOf(n *G.Node) (tensor.Dtype, error) {
	dt := n.Dtype()
	if dt != tensor.Float32 && dt != tensor.Float64 {
		return tensor.Dtype{}, fmt.Errorf("flood: losses must be float32 or float64, got %v", dt)
	}
	return dt, nil
}

func (op *floodOp) Arity() int { return 1 }

func (op *floodOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	if op.vector {
		return hm.NewFnType(&G.TensorType{Dims: 1, Of: a}, a)
	}
	return hm.NewFnType(a, a)
}

func (op *floodOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return tensor.ScalarShape(), nil }
func (op *floodOp) ReturnsPtr() bool                               { return false }
func (op *floodOp) CallsExtern() bool                              { return false }
func (op *floodOp) OverwritesInput() int                           { return -1 }

// WriteHash includes the Stats' address: two objectives over the same losses
// are two nodes, each recording into its own Stats.
func (op *floodOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "flood{%s,%v,%v,%p}", op.method, op.level, op.vector, op.stats)
}

func (op *floodOp) Hashcode() uint32 { return hashOf(op) }
func (op *floodOp) String() string   { return fmt.Sprintf("Flood{%s, b=%v}", op.method, op.level) }

func (op *floodOp) Do(inputs ...G.Value) (G.Value, error) {
	if len(inputs) != 1 {
		return nil, fmt.Errorf("flood: %v takes 1 input, got %d", op, len(inputs))
	}
	switch op.dtype {
	case tensor.Float32:
		xs, err := values[float32](inputs[0], op.vector)
		if err != nil {
			return nil, err
		}
		return op.out.set32(float32(forward(op, xs))), nil
	default:
		xs, err := values[float64](inputs[0], op.vector)
		if err != nil {
			return nil, err
		}
		return op.out.set64(forward(op, xs)), nil
	}
}

// forward computes the objective in float64, summing in index order so that
// every method sees the same mean J, and records the pass.
func forward[T float32 | float64](op *floodOp, xs []T) float64 {
	n := float64(len(xs))
	var sum float64
	for _, x := range xs {
		sum += float64(x)
	}
	j := sum / n
	b := op.level
	switch op.method {
	case Batch:
		ascent := 0.0
		if j < b {
			ascent = 1
		}
		op.stats.record(j, ascent)
		return math.Abs(j-b) + b
	case Individual:
		var flooded float64
		below := 0
		for _, x := range xs {
			l := float64(x)
			if l < b {
				below++
			}
			flooded += math.Abs(l-b) + b
		}
		op.stats.record(j, float64(below)/n)
		return flooded / n
	default:
		op.stats.record(j, 0)
		return j
	}
}

func (op *floodOp) DiffWRT(int) []bool { return []bool{true} }

func (op *floodOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if len(inputs) != 1 {
		return nil, fmt.Errorf("flood: %v takes 1 input, got %d", op, len(inputs))
	}
	d, err := G.ApplyOp(&floodGradOp{parent: op}, inputs[0], grad)
	if err != nil {
		return nil, fmt.Errorf("flood: gradient of %v: %w", op, err)
	}
	return G.Nodes{d}, nil
}

// floodGradOp computes d(objective)/d(losses) from the losses and the upstream
// gradient g: s_i·(g/n) with s_i the sign of (J − b) for Batch, of (ℓ_i − b)
// for Individual, and 1 for None (see sign for the value at 0).
type floodGradOp struct {
	parent *floodOp
	out32  *tensor.Dense
	out64  *tensor.Dense
	sbuf   scalarBuf
}

func (op *floodGradOp) Arity() int { return 2 }

func (op *floodGradOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	if op.parent.vector {
		t := &G.TensorType{Dims: 1, Of: a}
		return hm.NewFnType(t, a, t)
	}
	return hm.NewFnType(a, a, a)
}

func (op *floodGradOp) InferShape(inputs ...G.DimSizer) (tensor.Shape, error) {
	if len(inputs) != 2 {
		return nil, fmt.Errorf("flood: %v takes 2 inputs, got %d", op, len(inputs))
	}
	s, ok := inputs[0].(tensor.Shape)
	if !ok {
		return nil, fmt.Errorf("flood: %v: cannot infer shape from %T", op, inputs[0])
	}
	return s.Clone(), nil
}

func (op *floodGradOp) ReturnsPtr() bool     { return false }
func (op *floodGradOp) CallsExtern() bool    { return false }
func (op *floodGradOp) OverwritesInput() int { return -1 }
func (op *floodGradOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "floodGrad{%s,%v,%v,%p}", op.parent.method, op.parent.level, op.parent.vector, op.parent.stats)
}
func (op *floodGradOp) Hashcode() uint32 { return hashOf(op) }
func (op *floodGradOp) String() string {
	return fmt.Sprintf("FloodGrad{%s, b=%v}", op.parent.method, op.parent.level)
}
func (op *floodGradOp) DiffWRT(int) []bool { return []bool{false, false} }
func (op *floodGradOp) SymDiff(G.Nodes, *G.Node, *G.Node) (G.Nodes, error) {
	return nil, fmt.Errorf("flood: %v has no second derivative", op)
}

func (op *floodGradOp) Do(inputs ...G.Value) (G.Value, error) {
	if len(inputs) != 2 {
		return nil, fmt.Errorf("flood: %v takes 2 inputs, got %d", op, len(inputs))
	}
	p := op.parent
	switch p.dtype {
	case tensor.Float32:
		xs, err := values[float32](inputs[0], p.vector)
		if err != nil {
			return nil, err
		}
		g, err := values[float32](inputs[1], false)
		if err != nil {
			return nil, err
		}
		if !p.vector {
			var d [1]float32
			backward(p, xs, g[0], d[:])
			return op.sbuf.set32(d[0]), nil
		}
		op.out32 = ensureVector(op.out32, tensor.Float32, len(xs))
		backward(p, xs, g[0], op.out32.Float32s())
		return op.out32, nil
	default:
		xs, err := values[float64](inputs[0], p.vector)
		if err != nil {
			return nil, err
		}
		g, err := values[float64](inputs[1], false)
		if err != nil {
			return nil, err
		}
		if !p.vector {
			var d [1]float64
			backward(p, xs, g[0], d[:])
			return op.sbuf.set64(d[0]), nil
		}
		op.out64 = ensureVector(op.out64, tensor.Float64, len(xs))
		backward(p, xs, g[0], op.out64.Float64s())
		return op.out64, nil
	}
}

func backward[T float32 | float64](p *floodOp, xs []T, g T, d []T) {
	c := g / T(len(xs))
	b := p.level
	switch p.method {
	case Batch:
		var sum float64
		for _, x := range xs {
			sum += float64(x)
		}
		s := sign[T](sum/float64(len(xs)) - b)
		for i := range d {
			d[i] = s * c
		}
	case Individual:
		for i, x := range xs {
			d[i] = sign[T](float64(x)-b) * c
		}
	default:
		for i := range d {
			d[i] = c
		}
	}
}

// sign is the derivative of |v| with the right derivative taken at 0: a loss
// exactly at the level descends. With b = 0 and non-negative losses this makes
// every method's gradient equal to plain training's, bit for bit.
func sign[T float32 | float64](v float64) T {
	if v < 0 {
		return -1
	}
	return 1
}

// values returns the numbers held by v: a vector's elements, or a scalar as a
// one-element slice.
func values[T float32 | float64](v G.Value, vector bool) ([]T, error) {
	switch x := v.(type) {
	case *G.F32:
		if s, ok := any([]float32{float32(*x)}).([]T); ok && !vector {
			return s, nil
		}
	case *G.F64:
		if s, ok := any([]float64{float64(*x)}).([]T); ok && !vector {
			return s, nil
		}
	case tensor.Tensor:
		if s, ok := x.Data().([]T); ok && (!vector || x.Dims() == 1) {
			return s, nil
		}
		if s, ok := x.Data().(T); ok && !vector {
			return []T{s}, nil
		}
	}
	return nil, fmt.Errorf("flood: unexpected value %T (vector=%v)", v, vector)
}

func ensureVector(t *tensor.Dense, dt tensor.Dtype, n int) *tensor.Dense {
	if t != nil && t.Shape().TotalSize() == n {
		return t
	}
	return tensor.New(tensor.Of(dt), tensor.WithShape(n))
}

// scalarBuf holds an op's scalar output, reused at every pass.
type scalarBuf struct {
	f32 *G.F32
	f64 *G.F64
}

func (s *scalarBuf) set32(v float32) *G.F32 {
	if s.f32 == nil {
		s.f32 = G.NewF32(v)
	}
	*s.f32 = G.F32(v)
	return s.f32
}

func (s *scalarBuf) set64(v float64) *G.F64 {
	if s.f64 == nil {
		s.f64 = G.NewF64(v)
	}
	*s.f64 = G.F64(v)
	return s.f64
}

func hashOf(op interface{ WriteHash(hash.Hash) }) uint32 {
	h := fnv.New32a()
	op.WriteHash(h)
	return h.Sum32()
}
