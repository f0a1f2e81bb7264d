package objective

import (
	"fmt"
	"unsafe"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// The convolutional network's ops. A convolution is an im2col op, which
// lays every k×k window of the input out as one row of a matrix, followed by
// the linear layer's op (linearOp): one matrix product of that matrix with
// the weights [out, k·k·in], the bias and the ReLU fused, for the whole
// batch at once. Between convolutional layers activations are kept as a
// matrix [n·h·w, channels] (channels last), which makes each window's rows
// contiguous runs of the input; a batch of input images comes channel by
// channel (channels first, as the data hold them) and is turned channels
// last by the first im2col. The weights of a convolution are laid out
// [out, ky, kx, in] to match the im2col rows, and the first dense layer
// reads the last feature map in (y, x, channel) order; a PyTorch network's
// weights [out, in, ky, kx] and its flattening (channel, y, x) are the same
// model with their values permuted (TestConvMatchesPyTorch).

// im2colOp: cols [n·oh·ow, k·k·c] from x, either [n, c·h·w] (channels first:
// the network's input) or [n·h·w, c] (channels last). Row (img, oy, ox)
// holds the window at (oy·s − p, ox·s − p), (ky, kx, channel) in order,
// with zeros where the window leaves the padded input.
type im2colOp struct {
	base
	batch     int
	g         convShape
	chw       bool // the input is channels first
	gradInput bool
	out       *tensor.Dense
	hwc       []float32 // the input turned channels last (chw with several channels)
}

func newIm2colOp(batch int, g convShape, chw, gradInput bool) *im2colOp {
	return &im2colOp{base: newBase("Im2col"), batch: batch, g: g, chw: chw, gradInput: gradInput}
}

func (op *im2colOp) Arity() int    { return 1 }
func (op *im2colOp) Type() hm.Type { return hm.NewFnType(tMat, tMat) }

// inShape is the shape of the op's input.
func (op *im2colOp) inShape() tensor.Shape {
	if op.chw {
		return tensor.Shape{op.batch, op.g.in.size()}
	}
	return tensor.Shape{op.batch * op.g.in.Height * op.g.in.Width, op.g.in.Channels}
}

func (op *im2colOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapeOf(in[0])
	if err != nil {
		return nil, err
	}
	if !s.Eq(op.inShape()) {
		return nil, fmt.Errorf("objective: im2col input %v, want %v", s, op.inShape())
	}
	return tensor.Shape{op.batch * op.g.convRows, op.g.patch}, nil
}

func (op *im2colOp) Do(in ...G.Value) (G.Value, error) {
	data, shapes, err := unpack(in, 1)
	if err != nil {
		return nil, err
	}
	if !shapes[0].Eq(op.inShape()) {
		return nil, fmt.Errorf("objective: im2col input %v, want %v", shapes[0], op.inShape())
	}
	x := data[0]
	if op.chw && op.g.in.Channels > 1 {
		if len(op.hwc) != len(x) {
			op.hwc = make([]float32, len(x))
		}
		toChannelsLast(op.hwc, x, op.batch, op.g.in)
		x = op.hwc
	}
	op.out = buffer(op.out, op.batch*op.g.convRows, op.g.patch)
	im2col(op.out.Float32s(), x, op.batch, &op.g)
	return op.out, nil
}

func (op *im2colOp) DiffWRT(int) []bool { return []bool{op.gradInput} }

func (op *im2colOp) SymDiff(_ G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	if !op.gradInput || op.chw && op.g.in.Channels > 1 {
		return nil, fmt.Errorf("objective: %v computes no gradient for its input", op)
	}
	d, err := G.ApplyOp(&col2imOp{gradBase: gradBase{newBase("Col2im")}, fwd: op}, grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{d}, nil
}

// toChannelsLast writes n images of shape s from channels first (x) to
// channels last (dst).
func toChannelsLast(dst, x []float32, n int, s ImageShape) {
	hw, c := s.Height*s.Width, s.Channels
	for img := range n {
		src, d := x[img*hw*c:(img+1)*hw*c], dst[img*hw*c:(img+1)*hw*c]
		for ch := range c {
			plane := src[ch*hw : (ch+1)*hw]
			for i, v := range plane {
				d[i*c+ch] = v
			}
		}
	}
}

// windowRange returns, for the window whose first column is at x0 on an
// axis of size w, the first and last+1 kernel offsets that fall inside the
// input.
func windowRange(x0, k, w int) (lo, hi int) {
	lo, hi = 0, k
	if x0 < 0 {
		lo = -x0
	}
	if x0+k > w {
		hi = w - x0
	}
	return max(lo, 0), max(min(hi, k), 0)
}

// im2col fills cols from x, channels last.
func im2col(cols, x []float32, n int, g *convShape) {
	c, h, w := g.in.Channels, g.in.Height, g.in.Width
	oh, ow, k := g.conv.Height, g.conv.Width, g.k
	kc := k * c
	for img := range n {
		xi := x[img*h*w*c : (img+1)*h*w*c]
		for oy := range oh {
			y0 := oy*g.s - g.p
			for ox := range ow {
				x0 := ox*g.s - g.p
				row := cols[((img*oh+oy)*ow+ox)*g.patch:][:g.patch]
				lo, hi := windowRange(x0, k, w)
				for ky := range k {
					seg := row[ky*kc : (ky+1)*kc]
					iy := y0 + ky
					if iy < 0 || iy >= h || lo >= hi {
						clear(seg)
						continue
					}
					clear(seg[:lo*c])
					src := (iy*w + x0 + lo) * c
					copy(seg[lo*c:hi*c], xi[src:src+(hi-lo)*c])
					clear(seg[hi*c:])
				}
			}
		}
	}
}

// col2im adds every row of dcols back onto the input positions its window
// read: the gradient of im2col (channels last). dx is overwritten.
func col2im(dx, dcols []float32, n int, g *convShape) {
	clear(dx)
	c, h, w := g.in.Channels, g.in.Height, g.in.Width
	oh, ow, k := g.conv.Height, g.conv.Width, g.k
	kc := k * c
	for img := range n {
		di := dx[img*h*w*c : (img+1)*h*w*c]
		for oy := range oh {
			y0 := oy*g.s - g.p
			for ox := range ow {
				x0 := ox*g.s - g.p
				row := dcols[((img*oh+oy)*ow+ox)*g.patch:][:g.patch]
				lo, hi := windowRange(x0, k, w)
				if lo >= hi {
					continue
				}
				for ky := range k {
					iy := y0 + ky
					if iy < 0 || iy >= h {
						continue
					}
					src := row[ky*kc+lo*c : ky*kc+hi*c]
					dst := di[(iy*w+x0+lo)*c:]
					dst = dst[:len(src)]
					for i, v := range src {
						dst[i] += v
					}
				}
			}
		}
	}
}

// col2imOp: dx [n·h·w, c] from dcols, the gradient of an im2colOp on a
// channels-last input.
type col2imOp struct {
	gradBase
	fwd *im2colOp
	out *tensor.Dense
}

func (op *col2imOp) Arity() int    { return 1 }
func (op *col2imOp) Type() hm.Type { return hm.NewFnType(tMat, tMat) }
func (op *col2imOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return op.fwd.inShape(), nil
}

func (op *col2imOp) Do(in ...G.Value) (G.Value, error) {
	data, shapes, err := unpack(in, 1)
	if err != nil {
		return nil, err
	}
	f := op.fwd
	if want := (tensor.Shape{f.batch * f.g.convRows, f.g.patch}); !shapes[0].Eq(want) {
		return nil, fmt.Errorf("objective: col2im input %v, want %v", shapes[0], want)
	}
	op.out = buffer(op.out, f.inShape()...)
	col2im(op.out.Float32s(), data[0], f.batch, &f.g)
	return op.out, nil
}

// maxPoolOp: max pooling of a channels-last feature map [n·h·w, c] over
// p×p windows moved by p → [n·(h/p)·(w/p), c]. It records where each
// maximum came from, for its gradient; of equal values the first in the
// window (row by row) wins, and a NaN wins over any number, as in PyTorch.
type maxPoolOp struct {
	base
	batch int
	in    ImageShape // the feature map pooled
	p     int
	out   *tensor.Dense
	from  []int32 // per output value, the index of the input value it is
}

func newMaxPoolOp(batch int, in ImageShape, p int) *maxPoolOp {
	return &maxPoolOp{base: newBase("MaxPool"), batch: batch, in: in, p: p}
}

func (op *maxPoolOp) outShape() ImageShape {
	return ImageShape{Channels: op.in.Channels, Height: op.in.Height / op.p, Width: op.in.Width / op.p}
}

func (op *maxPoolOp) Arity() int    { return 1 }
func (op *maxPoolOp) Type() hm.Type { return hm.NewFnType(tMat, tMat) }
func (op *maxPoolOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapeOf(in[0])
	if err != nil {
		return nil, err
	}
	if want := (tensor.Shape{op.batch * op.in.Height * op.in.Width, op.in.Channels}); !s.Eq(want) {
		return nil, fmt.Errorf("objective: max pooling input %v, want %v", s, want)
	}
	o := op.outShape()
	return tensor.Shape{op.batch * o.Height * o.Width, o.Channels}, nil
}

func (op *maxPoolOp) Do(in ...G.Value) (G.Value, error) {
	data, shapes, err := unpack(in, 1)
	if err != nil {
		return nil, err
	}
	if want := (tensor.Shape{op.batch * op.in.Height * op.in.Width, op.in.Channels}); !shapes[0].Eq(want) {
		return nil, fmt.Errorf("objective: max pooling input %v, want %v", shapes[0], want)
	}
	o := op.outShape()
	op.out = buffer(op.out, op.batch*o.Height*o.Width, o.Channels)
	y := op.out.Float32s()
	if len(op.from) != len(y) {
		op.from = make([]int32, len(y))
	}
	maxPool(y, op.from, data[0], op.batch, op.in, op.p)
	return op.out, nil
}

// maxPool pools x (channels last) into y, recording the winners in from.
func maxPool(y []float32, from []int32, x []float32, n int, in ImageShape, p int) {
	if p == 2 {
		maxPool2(y, from, x, n, in)
		return
	}
	c, h, w := in.Channels, in.Height, in.Width
	oh, ow := h/p, w/p
	for img := range n {
		for oy := range oh {
			for ox := range ow {
				o := ((img*oh+oy)*ow + ox) * c
				yo, fo := y[o:o+c], from[o:o+c]
				first := ((img*h+oy*p)*w + ox*p) * c
				copy(yo, x[first:first+c])
				for ch := range fo {
					fo[ch] = int32(first + ch)
				}
				for ky := range p {
					for kx := range p {
						if ky == 0 && kx == 0 {
							continue
						}
						at := ((img*h+oy*p+ky)*w + ox*p + kx) * c
						xs := x[at : at+c]
						xs, fo := xs[:len(yo)], fo[:len(yo)]
						for ch, v := range xs {
							if v > yo[ch] || v != v {
								yo[ch], fo[ch] = v, int32(at+ch)
							}
						}
					}
				}
			}
		}
	}
}

// maxPool2 is maxPool over 2×2 windows, the common case, with each
// window's four rows of channels side by side and the running maximum in
// registers (four times faster than the general loop).
func maxPool2(y []float32, from []int32, x []float32, n int, in ImageShape) {
	c, h, w := in.Channels, in.Height, in.Width
	oh, ow := h/2, w/2
	for img := range n {
		for oy := range oh {
			for ox := range ow {
				o := ((img*oh+oy)*ow + ox) * c
				a := ((img*h+oy*2)*w + ox*2) * c // the window's corners a b / d e
				b, d := a+c, a+w*c
				e := d + c
				r0 := x[a : a+c]
				r1, r2, r3 := x[b:b+len(r0)], x[d:d+len(r0)], x[e:e+len(r0)]
				yo, fo := y[o:o+len(r0)], from[o:o+len(r0)]
				for ch, m := range r0 {
					f := a
					if v := r1[ch]; v > m || v != v {
						m, f = v, b
					}
					if v := r2[ch]; v > m || v != v {
						m, f = v, d
					}
					if v := r3[ch]; v > m || v != v {
						m, f = v, e
					}
					yo[ch], fo[ch] = m, int32(f+ch)
				}
			}
		}
	}
}

func (op *maxPoolOp) DiffWRT(int) []bool { return []bool{true} }

func (op *maxPoolOp) SymDiff(_ G.Nodes, out, grad *G.Node) (G.Nodes, error) {
	d, err := G.ApplyOp(&maxPoolGradOp{gradBase: gradBase{newBase("MaxPoolGrad")}, fwd: op}, out, grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{d}, nil
}

// maxPoolGradOp: dx from the gradient of a maxPoolOp's output, each value
// sent back to the input value it came from (the forward op's record of
// the same pass). It takes the forward output as an operand only so that
// it runs after the forward op.
type maxPoolGradOp struct {
	gradBase
	fwd *maxPoolOp
	out *tensor.Dense
}

func (op *maxPoolGradOp) Arity() int    { return 2 }
func (op *maxPoolGradOp) Type() hm.Type { return hm.NewFnType(tMat, tMat, tMat) }
func (op *maxPoolGradOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	f := op.fwd
	return tensor.Shape{f.batch * f.in.Height * f.in.Width, f.in.Channels}, nil
}

func (op *maxPoolGradOp) Do(in ...G.Value) (G.Value, error) {
	data, _, err := unpack(in, 2)
	if err != nil {
		return nil, err
	}
	g := data[1]
	if len(g) != len(op.fwd.from) {
		return nil, fmt.Errorf("objective: max pooling gradient of %d values for %d outputs", len(g), len(op.fwd.from))
	}
	f := op.fwd
	op.out = buffer(op.out, f.batch*f.in.Height*f.in.Width, f.in.Channels)
	dx := op.out.Float32s()
	clear(dx)
	for i, at := range f.from {
		dx[at] += g[i]
	}
	return op.out, nil
}

// reshapeOp gives a matrix another shape [rows, cols] of as many values
// without a copy: the output shares the input's storage. The network reshapes its
// last feature map [n·h·w, c] into the dense layers' rows [n, h·w·c], and
// their gradient back.
type reshapeOp struct {
	base
	rows, cols int // the output's shape
	grad       bool
	out        *tensor.Dense
}

func newReshapeOp(rows, cols int, grad bool) *reshapeOp {
	name := "Reshape"
	if grad {
		name = "ReshapeGrad"
	}
	return &reshapeOp{base: newBase(name), rows: rows, cols: cols, grad: grad}
}

func (op *reshapeOp) Arity() int    { return 1 }
func (op *reshapeOp) Type() hm.Type { return hm.NewFnType(tMat, tMat) }
func (op *reshapeOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapeOf(in[0])
	if err != nil {
		return nil, err
	}
	if s.TotalSize() != op.rows*op.cols {
		return nil, fmt.Errorf("objective: cannot reshape %v to [%d %d]", s, op.rows, op.cols)
	}
	return tensor.Shape{op.rows, op.cols}, nil
}

func (op *reshapeOp) Do(in ...G.Value) (G.Value, error) {
	data, _, err := unpack(in, 1)
	if err != nil {
		return nil, err
	}
	x := data[0]
	if len(x) != op.rows*op.cols {
		return nil, fmt.Errorf("objective: cannot reshape %d values to [%d %d]", len(x), op.rows, op.cols)
	}
	// The input op returns the same buffer at every pass: the view is made
	// once, and again only if the buffer changes.
	if op.out == nil || unsafe.SliceData(op.out.Float32s()) != unsafe.SliceData(x) {
		op.out = tensor.New(tensor.WithShape(op.rows, op.cols), tensor.WithBacking(x))
	}
	return op.out, nil
}

func (op *reshapeOp) DiffWRT(int) []bool { return []bool{!op.grad} }

func (op *reshapeOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	if op.grad {
		return nil, fmt.Errorf("objective: %v is not differentiable", op)
	}
	s := in[0].Shape()
	d, err := G.ApplyOp(newReshapeOp(s[0], s[1], true), grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{d}, nil
}
