package objective

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/floodtune/floodtune/flood"
)

// refConvForward is an independent float64 implementation of a
// convolutional network's forward pass up to the logits, written the
// direct way (channels first, one output value at a time), with the
// model's weight layout: ConvW [out, ky, kx, in], and the last feature map
// flattened in (y, x, channel) order.
func refConvForward(m *Model, params [][]float64, x []float32, n int) (logits []float64, k int) {
	size := m.Image.size()
	var feats [][]float64
	for img := range n {
		shape := m.Image
		act := make([]float64, size)
		for i, v := range x[img*size : (img+1)*size] {
			act[i] = float64(v)
		}
		for l, cl := range m.Conv {
			w, b := params[2*l], params[2*l+1]
			c, h, wd := shape.Channels, shape.Height, shape.Width
			kk, s, p := cl.Kernel, cl.stride(), cl.Padding
			oh, ow := (h+2*p-kk)/s+1, (wd+2*p-kk)/s+1
			out := make([]float64, cl.Channels*oh*ow)
			for o := range cl.Channels {
				for oy := range oh {
					for ox := range ow {
						v := b[o]
						for ky := range kk {
							for kx := range kk {
								iy, ix := oy*s-p+ky, ox*s-p+kx
								if iy < 0 || iy >= h || ix < 0 || ix >= wd {
									continue
								}
								for ch := range c {
									v += w[o*kk*kk*c+(ky*kk+kx)*c+ch] * act[(ch*h+iy)*wd+ix]
								}
							}
						}
						out[(o*oh+oy)*ow+ox] = math.Max(v, 0)
					}
				}
			}
			act, shape = out, ImageShape{Channels: cl.Channels, Height: oh, Width: ow}
			if cl.pooled() {
				q := cl.Pool
				ph, pw := oh/q, ow/q
				pooled := make([]float64, cl.Channels*ph*pw)
				for o := range cl.Channels {
					for py := range ph {
						for px := range pw {
							mx := math.Inf(-1)
							for ky := range q {
								for kx := range q {
									mx = math.Max(mx, act[(o*oh+py*q+ky)*ow+px*q+kx])
								}
							}
							pooled[(o*ph+py)*pw+px] = mx
						}
					}
				}
				act, shape = pooled, ImageShape{Channels: cl.Channels, Height: ph, Width: pw}
			}
		}
		// Channels last, as the model flattens.
		f := make([]float64, len(act))
		hw := shape.Height * shape.Width
		for ch := range shape.Channels {
			for i := range hw {
				f[i*shape.Channels+ch] = act[ch*hw+i]
			}
		}
		feats = append(feats, f)
	}
	off := 2 * len(m.Conv)
	for l := 0; l+1 < len(m.Sizes); l++ {
		in, out := m.Sizes[l], m.Sizes[l+1]
		w, b := params[off+2*l], params[off+2*l+1]
		for r, a := range feats {
			next := make([]float64, out)
			for o := range out {
				v := b[o]
				for i := range in {
					v += a[i] * w[o*in+i]
				}
				if l+2 < len(m.Sizes) {
					v = math.Max(v, 0)
				}
				next[o] = v
			}
			feats[r] = next
		}
	}
	k = m.Sizes[len(m.Sizes)-1]
	for _, a := range feats {
		logits = append(logits, a...)
	}
	return logits, k
}

// refMeanCE is the mean softmax cross-entropy of logits [n, k].
func refMeanCE(logits []float64, k int, y []int32) float64 {
	total := 0.0
	for r := range y {
		row := logits[r*k : (r+1)*k]
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
	return total / float64(len(y))
}

// testConvNet is a small network that exercises every part of the
// convolutional ops: two input channels (turned channels last), padding,
// a stride, pooling with a window that leaves a row out, a layer without
// pooling, and dense layers.
var testConvNet = struct {
	image  ImageShape
	conv   []ConvLayer
	hidden []int
}{
	image:  ImageShape{Channels: 2, Height: 7, Width: 6},
	conv:   []ConvLayer{{Channels: 3, Kernel: 3, Padding: 1, Pool: 2}, {Channels: 4, Kernel: 2, Stride: 2, Padding: 1}},
	hidden: []int{5},
}

func randomImages(rng *rand.Rand, n int, s ImageShape, classes int) ([]float32, []int32) {
	x := make([]float32, n*s.size())
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	y := make([]int32, n)
	for i := range y {
		y[i] = int32(rng.IntN(classes))
	}
	return x, y
}

func TestConvGradientMatchesFiniteDifferences(t *testing.T) {
	t.Parallel()
	const n, classes = 4, 3
	rng := rand.New(rand.NewPCG(3, 9))
	tc := testConvNet
	m, err := NewConvModel(tc.image, tc.conv, tc.hidden, classes, rng)
	if err != nil {
		t.Fatal(err)
	}
	x, y := randomImages(rng, n, tc.image, classes)
	net, err := m.newNet(n, true, flood.None, 0)
	if err != nil {
		t.Fatal(err)
	}
	split := Split{X: x, Y: y, N: n}
	net.load(&split, tc.image.size(), []int{0, 1, 2, 3})
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
	loss := func() float64 {
		z, k := refConvForward(m, ref, x, n)
		return refMeanCE(z, k, y)
	}
	if got, want := net.stats.LastLoss(), loss(); math.Abs(got-want) > 1e-5 {
		t.Fatalf("loss = %v, reference %v", got, want)
	}
	grads := net.gradients(nil)
	const h = 1e-5
	checked := 0
	for k := range ref {
		for i := range ref[k] {
			orig := ref[k][i]
			ref[k][i] = orig + h
			up := loss()
			ref[k][i] = orig - h
			down := loss()
			ref[k][i] = orig
			fd := (up - down) / (2 * h)
			if got := float64(grads[k][i]); math.Abs(got-fd) > 1e-4+1e-3*math.Abs(fd) {
				t.Errorf("gradient of parameter %d[%d] = %v, finite difference %v", k, i, got, fd)
			}
			if fd != 0 {
				checked++
			}
		}
	}
	if checked < len(ref[0])/2 {
		t.Errorf("only %d gradients are non-zero: the test network is dead", checked)
	}
}

func TestConvShapes(t *testing.T) {
	t.Parallel()
	mnist := ImageShape{Channels: 1, Height: 28, Width: 28}
	shapes, err := convShapes(mnist, LeNet)
	if err != nil {
		t.Fatal(err)
	}
	if got := shapes[1].out; got != (ImageShape{Channels: 32, Height: 7, Width: 7}) {
		t.Errorf("LeNet's last feature map is %v, want 32×7×7", got)
	}
	for _, tc := range []struct {
		name   string
		layers []ConvLayer
		want   string
	}{
		{"a kernel larger than the padded input", []ConvLayer{{Channels: 4, Kernel: 31, Padding: 1}}, "does not fit"},
		{"pooling larger than the feature map", []ConvLayer{{Channels: 4, Kernel: 5, Stride: 4}, {Channels: 4, Kernel: 3, Pool: 5}}, "pooling by 5 does not fit"},
		{"no channels", []ConvLayer{{Kernel: 3}}, "channels 0"},
		{"padding as large as the kernel", []ConvLayer{{Channels: 1, Kernel: 3, Padding: 3}}, "padding 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := convShapes(mnist, tc.layers)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestParseConv(t *testing.T) {
	t.Parallel()
	got, err := ParseConv("16:5:p2:pool2, 32:5:p2:pool2")
	if err != nil {
		t.Fatal(err)
	}
	if FormatConv(got) != FormatConv(LeNet) || len(got) != 2 || got[1] != LeNet[1] {
		t.Errorf("ParseConv = %+v, want LeNet", got)
	}
	if s := "8:3:s2:p1,4:1"; FormatConv(mustParseConv(t, s)) != s {
		t.Errorf("%q does not round-trip: %q", s, FormatConv(mustParseConv(t, s)))
	}
	for _, tc := range []struct{ in, want string }{
		{"", "none given"},
		{"16", "no kernel size"},
		{"x:5", `channels "x"`},
		{"16:5:q1", `unknown option "q1"`},
		{"16:5:p1:p2", "given twice"},
		{"16:5:poolx", "not pool followed by a whole number"},
		{"16:0", "kernel 0"},
		{"16:3,0:3", `layer 2 "0:3": channels 0`},
	} {
		if _, err := ParseConv(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseConv(%q) = %v, want an error containing %q", tc.in, err, tc.want)
		}
	}
}

func mustParseConv(t *testing.T, s string) []ConvLayer {
	t.Helper()
	l, err := ParseConv(s)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestConvMatchesPyTorch runs the network of testdata/cnn_torch.py with the
// weights and inputs PyTorch used and compares the loss, the per-sample
// losses and every gradient with the values PyTorch computed, plain and
// flooded (batch flooding below and above the loss, individual flooding).
func TestConvMatchesPyTorch(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join("testdata", "cnn_torch.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		X      []float32   `json:"x"`
		Y      []int32     `json:"y"`
		Params [][]float32 `json:"params"`
		Cases  []struct {
			Method flood.Method `json:"method"`
			Level  float64      `json:"level"`
			Loss   float64      `json:"loss"`
			Losses []float64    `json:"losses"`
			Grads  [][]float32  `json:"grads"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatal(err)
	}
	tc := testConvNet
	const classes = 3
	n := len(ref.Y)
	m, err := NewConvModel(tc.image, tc.conv, tc.hidden, classes, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	// PyTorch's layouts → the model's: convolution weights [out, in, ky, kx]
	// → [out, ky, kx, in]; the first dense layer's columns (channel, y, x)
	// → (y, x, channel).
	last := m.shapes[len(m.shapes)-1].out
	toModel := func(k int, v []float32) []float32 {
		out := make([]float32, len(v))
		switch {
		case k < 2*len(m.Conv) && k%2 == 0:
			s := m.shapes[k/2]
			c, kk := s.in.Channels, s.k
			for o := range s.conv.Channels {
				for ch := range c {
					for ky := range kk {
						for kx := range kk {
							out[o*kk*kk*c+(ky*kk+kx)*c+ch] = v[((o*c+ch)*kk+ky)*kk+kx]
						}
					}
				}
			}
		case k == 2*len(m.Conv):
			hw, c := last.Height*last.Width, last.Channels
			cols := hw * c
			for o := range len(v) / cols {
				for ch := range c {
					for i := range hw {
						out[o*cols+i*c+ch] = v[o*cols+ch*hw+i]
					}
				}
			}
		default:
			copy(out, v)
		}
		return out
	}
	params := m.Params()
	if len(params) != len(ref.Params) {
		t.Fatalf("the model has %d parameter tensors, PyTorch's %d", len(params), len(ref.Params))
	}
	for k, p := range params {
		if len(p) != len(ref.Params[k]) {
			t.Fatalf("parameter %d has %d values, PyTorch's %d", k, len(p), len(ref.Params[k]))
		}
		copy(p, toModel(k, ref.Params[k]))
	}
	split := Split{X: ref.X, Y: ref.Y, N: n}
	idx := []int{0, 1, 2, 3}
	close := func(got, want float64) bool { return math.Abs(got-want) <= 2e-6+2e-5*math.Abs(want) }
	for _, c := range ref.Cases {
		t.Run(fmt.Sprintf("%s at %v", c.Method, c.Level), func(t *testing.T) {
			net, err := m.newNet(n, true, c.Method, c.Level)
			if err != nil {
				t.Fatal(err)
			}
			net.load(&split, tc.image.size(), idx)
			if err := net.run(); err != nil {
				t.Fatal(err)
			}
			if got := net.stats.LastLoss(); !close(got, c.Loss) {
				t.Errorf("loss %v, PyTorch %v", got, c.Loss)
			}
			for i, l := range float32s(net.prog.value(net.losses)) {
				if !close(float64(l), c.Losses[i]) {
					t.Errorf("loss of sample %d: %v, PyTorch %v", i, l, c.Losses[i])
				}
			}
			nonZero := 0
			for k, g := range net.gradients(nil) {
				want := toModel(k, c.Grads[k])
				for i := range g {
					if !close(float64(g[i]), float64(want[i])) {
						t.Errorf("gradient of parameter %d[%d]: %v, PyTorch %v", k, i, g[i], want[i])
					}
					if want[i] != 0 {
						nonZero++
					}
				}
			}
			if nonZero < len(params[0]) {
				t.Errorf("only %d of PyTorch's gradients are non-zero: the test compares little", nonZero)
			}
		})
	}
}
