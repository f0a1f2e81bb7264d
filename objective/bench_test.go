package objective

import (
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
