package objective

import (
	"fmt"
	"runtime"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/floodtune/floodtune/flood"
)

// BenchmarkStep times one training step of the MLP 784-500-500-10 at batch
// 128 with flooding and SGD with momentum, on whatever BLAS the build uses.
func BenchmarkStep(b *testing.B) {
	SetBLASThreads(1)
	s := StepBench{Features: 784, Hidden: []int{500, 500}, Classes: 10, Batch: 128, Optimizer: Momentum, Flood: flood.Batch, Level: 0.1}
	run, err := s.Prepare()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := run(); err != nil {
			b.Fatal(err)
		}
	}
}

// A training step allocates no tensors: every op reuses its output buffer and
// the optimizer updates in place. What remains is the same at every step:
// about a hundred bytes with OpenBLAS, about 50 KB of the goroutines that
// gonum's pure-Go BLAS splits a product over.
func TestStepAllocatesNoTensors(t *testing.T) {
	s := StepBench{Features: 784, Hidden: []int{500, 500}, Classes: 10, Batch: 128, Optimizer: Momentum, Flood: flood.Individual, Level: 0.1}
	step, err := s.Prepare()
	if err != nil {
		t.Fatal(err)
	}
	var failed error
	measure := func(runs int) float64 {
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		for i := 0; i < runs; i++ {
			if err := step(); err != nil {
				failed = err
			}
		}
		runtime.ReadMemStats(&m1)
		return float64(m1.TotalAlloc-m0.TotalAlloc) / float64(runs)
	}
	measure(3)
	first, later := measure(20), measure(20)
	if failed != nil {
		t.Fatal(failed)
	}
	// The smallest hidden activation is 128×500 float32s, 256 KB.
	const limit = 64 << 10
	if first > limit || later > limit {
		t.Fatalf("a step allocates %.0f then %.0f bytes, want < %d (no tensor per step)", first, later, limit)
	}
	if later > 1.5*first+1024 {
		t.Fatalf("allocation per step grows: %.0f then %.0f bytes", first, later)
	}
}

// BenchmarkStepGorgoniaBuiltinOps times the same step built from Gorgonia's
// own ops (Mul, BroadcastAdd, Rectify, LogSoftMax, HadamardProd, Sum) and its
// momentum solver, the way a Gorgonia user would write it: the baseline that
// the fused ops of this package are measured against in docs/performance.md.
func BenchmarkStepGorgoniaBuiltinOps(b *testing.B) {
	SetBLASThreads(1)
	const batch, classes = 128, 10
	sizes := []int{784, 500, 500, classes}
	g := G.NewGraph()
	x := G.NewMatrix(g, tensor.Float32, G.WithShape(batch, sizes[0]), G.WithName("x"), G.WithInit(G.Uniform(0, 1)))
	onehot := make([]float32, batch*classes)
	for i := 0; i < batch; i++ {
		onehot[i*classes+i%classes] = 1
	}
	y := G.NewMatrix(g, tensor.Float32, G.WithShape(batch, classes), G.WithName("y"),
		G.WithValue(tensor.New(tensor.WithShape(batch, classes), tensor.WithBacking(onehot))))
	var params G.Nodes
	h := x
	for l := 0; l+1 < len(sizes); l++ {
		w := G.NewMatrix(g, tensor.Float32, G.WithShape(sizes[l], sizes[l+1]), G.WithInit(G.GlorotU(1)))
		bias := G.NewMatrix(g, tensor.Float32, G.WithShape(1, sizes[l+1]), G.WithInit(G.Zeroes()))
		params = append(params, w, bias)
		h = G.Must(G.BroadcastAdd(G.Must(G.Mul(h, w)), bias, nil, []byte{0}))
		if l+2 < len(sizes) {
			h = G.Must(G.Rectify(h))
		}
	}
	losses := G.Must(G.Neg(G.Must(G.Sum(G.Must(G.HadamardProd(G.Must(G.LogSoftMax(h)), y)), 1))))
	cost, _, err := flood.Apply(losses, flood.Batch, 0.1)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := G.Grad(cost, params...); err != nil {
		b.Fatal(err)
	}
	vm := G.NewTapeMachine(g, G.BindDualValues(params...))
	solver := G.NewMomentum(G.WithLearnRate(0.01), G.WithMomentum(0.9))
	step := func() {
		if err := vm.RunAll(); err != nil {
			b.Fatal(err)
		}
		if err := solver.Step(G.NodesToValueGrads(params)); err != nil {
			b.Fatal(err)
		}
		vm.Reset()
	}
	for i := 0; i < 5; i++ {
		step()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		step()
	}
}

// lenet is the network of bench/torch_step.py's CNN and of make bench-step.
var lenet = StepBench{Image: ImageShape{Channels: 1, Height: 28, Width: 28}, Conv: LeNet, Hidden: []int{256}, Classes: 10, Batch: 128,
	Optimizer: Momentum, Flood: flood.Batch, Level: 0.1}

// BenchmarkCNNStep times one training step of the LeNet-style network
// (conv 5×5 1→16 pad 2, pool 2, conv 5×5 16→32 pad 2, pool 2, dense
// 1568-256-10) at batch 128 with flooding and SGD with momentum.
func BenchmarkCNNStep(b *testing.B) {
	SetBLASThreads(1)
	run, err := lenet.Prepare()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := run(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCNNStepGorgoniaBuiltinOps times the same network built from
// Gorgonia's own ops (Conv2d, BroadcastAdd, Rectify, MaxPool2D, Reshape,
// Mul, LogSoftMax) and its momentum solver, as a Gorgonia user would write
// it: the baseline of the convolutional ops in docs/performance.md.
func BenchmarkCNNStepGorgoniaBuiltinOps(b *testing.B) {
	SetBLASThreads(1)
	const batch, classes = 128, 10
	g := G.NewGraph()
	x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(batch, 1, 28, 28), G.WithName("x"), G.WithInit(G.Uniform(0, 1)))
	onehot := make([]float32, batch*classes)
	for i := 0; i < batch; i++ {
		onehot[i*classes+i%classes] = 1
	}
	y := G.NewMatrix(g, tensor.Float32, G.WithShape(batch, classes), G.WithName("y"),
		G.WithValue(tensor.New(tensor.WithShape(batch, classes), tensor.WithBacking(onehot))))
	var params G.Nodes
	h := x
	in := 1
	for l, out := range []int{16, 32} {
		w := G.NewTensor(g, tensor.Float32, 4, G.WithShape(out, in, 5, 5), G.WithName(fmt.Sprintf("cw%d", l)), G.WithInit(G.GlorotU(1)))
		bias := G.NewTensor(g, tensor.Float32, 4, G.WithShape(1, out, 1, 1), G.WithName(fmt.Sprintf("cb%d", l)), G.WithInit(G.Zeroes()))
		params = append(params, w, bias)
		h = G.Must(G.Conv2d(h, w, tensor.Shape{5, 5}, []int{2, 2}, []int{1, 1}, []int{1, 1}))
		h = G.Must(G.BroadcastAdd(h, bias, nil, []byte{0, 2, 3}))
		h = G.Must(G.Rectify(h))
		h = G.Must(G.MaxPool2D(h, tensor.Shape{2, 2}, []int{0, 0}, []int{2, 2}))
		in = out
	}
	h = G.Must(G.Reshape(h, tensor.Shape{batch, 32 * 7 * 7}))
	sizes := []int{32 * 7 * 7, 256, classes}
	for l := 0; l+1 < len(sizes); l++ {
		w := G.NewMatrix(g, tensor.Float32, G.WithShape(sizes[l], sizes[l+1]), G.WithInit(G.GlorotU(1)))
		bias := G.NewMatrix(g, tensor.Float32, G.WithShape(1, sizes[l+1]), G.WithInit(G.Zeroes()))
		params = append(params, w, bias)
		h = G.Must(G.BroadcastAdd(G.Must(G.Mul(h, w)), bias, nil, []byte{0}))
		if l+2 < len(sizes) {
			h = G.Must(G.Rectify(h))
		}
	}
	losses := G.Must(G.Neg(G.Must(G.Sum(G.Must(G.HadamardProd(G.Must(G.LogSoftMax(h)), y)), 1))))
	cost, _, err := flood.Apply(losses, flood.Batch, 0.1)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := G.Grad(cost, params...); err != nil {
		b.Fatal(err)
	}
	vm := G.NewTapeMachine(g, G.BindDualValues(params...))
	solver := G.NewMomentum(G.WithLearnRate(0.01), G.WithMomentum(0.9))
	step := func() {
		if err := vm.RunAll(); err != nil {
			b.Fatal(err)
		}
		if err := solver.Step(G.NodesToValueGrads(params)); err != nil {
			b.Fatal(err)
		}
		vm.Reset()
	}
	for i := 0; i < 2; i++ {
		step()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		step()
	}
}
