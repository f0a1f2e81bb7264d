//go:build openblas

package objective

/*
#cgo LDFLAGS: -lopenblas
void openblas_set_num_threads(int);
int openblas_get_num_threads(void);
char* openblas_get_corename(void);
char* openblas_get_config(void);
*/
import "C"

import (
	"fmt"
	"strings"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/netlib/blas/netlib"
	G "gorgonia.org/gorgonia"
)

// blas32 is the BLAS the model's matrix products and optimizer updates run on: OpenBLAS, linked
// through gonum's netlib binding.
var blas32 blas.Float32 = netlib.Implementation{}

func init() {
	// Gorgonia's own ops (for graphs users build with them) use it too.
	G.Use(netlib.Implementation{})
}

// BLAS names the BLAS in use, for `floodtune version` and benchmark reports.
func BLAS() string {
	config := strings.Fields(C.GoString(C.openblas_get_config()))
	version := "OpenBLAS"
	if len(config) >= 2 {
		version = config[0] + " " + config[1]
	}
	return fmt.Sprintf("%s (%s kernels)", version, C.GoString(C.openblas_get_corename()))
}

// SetBLASThreads sets how many threads one matrix product may use. Trials run
// one per core with one thread each; results are reproducible bit for bit for
// a fixed thread count.
func SetBLASThreads(n int) {
	if n < 1 {
		n = 1
	}
	C.openblas_set_num_threads(C.int(n))
}

// BLASThreads returns the thread count set by SetBLASThreads (or OpenBLAS's default).
func BLASThreads() int { return int(C.openblas_get_num_threads()) }
