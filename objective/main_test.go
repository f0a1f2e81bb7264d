package objective

import (
	"os"
	"testing"
)

// The tests run in parallel, one BLAS thread each, as trials do.
func TestMain(m *testing.M) {
	SetBLASThreads(1)
	os.Exit(m.Run())
}
