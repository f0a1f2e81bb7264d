package objective

import (
	"runtime"
	"sync"
)

// reserved counts the trainings that ReserveWorkers has declared running in
// this process, and saved is GOMAXPROCS from before the first of them.
var procs struct {
	sync.Mutex
	reserved int
	saved    int
}

// ReserveWorkers declares that n trainings will run at once in this process
// and, with OpenBLAS, raises GOMAXPROCS by n until release is called (the
// last release restores the value found by the first reservation). With
// gonum's pure-Go BLAS it changes nothing.
//
// A training step makes about ten OpenBLAS calls through cgo, of about a
// millisecond each. A goroutine in a cgo call keeps its P, and when no P is
// idle the runtime takes it away and hands it to a new thread at every call;
// with two trainings on two cores and GOMAXPROCS 2, that handoff made each
// step take 9.3-10.2 ms against 6.4-6.6 ms with two more Ps. One P more per
// training keeps the process's other goroutines (the sampler, storage,
// metrics) their usual share and the trainings their own.
func ReserveWorkers(n int) (release func()) {
	if !cgoBLAS || n <= 0 {
		return func() {}
	}
	procs.Lock()
	defer procs.Unlock()
	if procs.reserved == 0 {
		procs.saved = runtime.GOMAXPROCS(0)
	}
	procs.reserved += n
	runtime.GOMAXPROCS(procs.saved + procs.reserved)
	var once sync.Once
	return func() {
		once.Do(func() {
			procs.Lock()
			defer procs.Unlock()
			procs.reserved -= n
			runtime.GOMAXPROCS(procs.saved + procs.reserved)
		})
	}
}
