//go:build openblas

// Package openblas links OpenBLAS (Debian: libopenblas-dev) into floodtune:
// gonum's netlib binding for its BLAS routines, and OpenBLAS's own calls for
// its thread count and build. It is built with -tags openblas only.
package openblas

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

	"gonum.org/v1/netlib/blas/netlib"
)

// Implementation is OpenBLAS behind gonum's blas interfaces.
type Implementation = netlib.Implementation

// Describe names the OpenBLAS version and the kernels it chose for this CPU.
func Describe() string {
	config := strings.Fields(C.GoString(C.openblas_get_config()))
	version := "OpenBLAS"
	if len(config) >= 2 {
		version = config[0] + " " + config[1]
	}
	return fmt.Sprintf("%s (%s kernels)", version, C.GoString(C.openblas_get_corename()))
}

// SetThreads sets how many threads one BLAS call may use.
func SetThreads(n int) { C.openblas_set_num_threads(C.int(n)) }

// Threads returns the thread count in force.
func Threads() int { return int(C.openblas_get_num_threads()) }
