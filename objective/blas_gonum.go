//go:build !openblas

package objective

import (
	"runtime"
	"sync/atomic"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// blas32 is the BLAS the model's matrix products and optimizer updates run on: gonum's pure-Go BLAS,
// which needs no C library. Build with -tags openblas (the Makefile does when
// libopenblas is installed) for a several times faster step.
var blas32 blas.Float32 = gonum.Implementation{}

// cgoBLAS tells ReserveWorkers that BLAS calls stay in Go.
const cgoBLAS = false

var blasThreads atomic.Int64

// BLAS names the BLAS in use, for `floodtune version` and benchmark reports.
func BLAS() string { return "gonum pure-Go BLAS (build with -tags openblas for OpenBLAS)" }

// SetBLASThreads records the thread count. gonum's BLAS splits a product over
// GOMAXPROCS goroutines and has no setting of its own; its blocks are summed in
// a fixed order, so results do not depend on the count.
func SetBLASThreads(n int) {
	if n < 1 {
		n = 1
	}
	blasThreads.Store(int64(n))
}

// BLASThreads returns the recorded thread count (GOMAXPROCS when unset).
func BLASThreads() int {
	if n := blasThreads.Load(); n > 0 {
		return int(n)
	}
	return runtime.GOMAXPROCS(0)
}
