//go:build openblas

package objective

import (
	"github.com/floodtune/floodtune/internal/openblas"
	"gonum.org/v1/gonum/blas"
	G "gorgonia.org/gorgonia"
)

// blas32 is the BLAS the model's matrix products and optimizer updates run
// on: OpenBLAS, linked through gonum's netlib binding.
var blas32 blas.Float32 = openblas.Implementation{}

// cgoBLAS tells ReserveWorkers that BLAS calls go through cgo.
const cgoBLAS = true

func init() {
	// Gorgonia's own ops (for graphs users build with them) use it too.
	G.Use(openblas.Implementation{})
}

// BLAS names the BLAS in use, for `floodtune version` and benchmark reports.
func BLAS() string { return openblas.Describe() }

// SetBLASThreads sets how many threads one matrix product may use. Trials run
// one per core with one thread each; results are reproducible bit for bit for
// a fixed thread count.
func SetBLASThreads(n int) { openblas.SetThreads(max(n, 1)) }

// BLASThreads returns the thread count set by SetBLASThreads (or OpenBLAS's default).
func BLASThreads() int { return openblas.Threads() }
