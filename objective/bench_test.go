package objective

import (
	"runtime"
	"testing"

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
// the optimizer updates in place. What remains is Gorgonia's bookkeeping of a
// run, a few hundred bytes per op, the same at every step.
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
