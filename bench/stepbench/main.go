// Command stepbench times floodtune's training step: the MLP 784-500-500-10
// at batch 128, float32, flooded loss, SGD with momentum, on random data. It
// prints the median time of a step over several blocks, in milliseconds, and
// the heap allocated per step.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/floodtune/floodtune/flood"
	"github.com/floodtune/floodtune/objective"
)

func main() {
	threads := flag.Int("threads", 1, "BLAS threads")
	steps := flag.Int("steps", 100, "steps per block")
	blocks := flag.Int("blocks", 5, "blocks; the median block is reported")
	batch := flag.Int("batch", 128, "batch size")
	hidden := flag.String("hidden", "500,500", "hidden widths")
	flag.Parse()
	var widths []int
	for _, f := range strings.Split(*hidden, ",") {
		w, err := strconv.Atoi(f)
		if err != nil {
			fmt.Fprintf(os.Stderr, "stepbench: bad -hidden %q\n", *hidden)
			os.Exit(2)
		}
		widths = append(widths, w)
	}
	objective.SetBLASThreads(*threads)
	step, err := objective.StepBench{Features: 784, Hidden: widths, Classes: 10, Batch: *batch, Optimizer: objective.Momentum, Flood: flood.Batch, Level: 0.1}.Prepare()
	if err != nil {
		fmt.Fprintf(os.Stderr, "stepbench: %v\n", err)
		os.Exit(1)
	}
	for i := 0; i < 20; i++ {
		if err := step(); err != nil {
			fmt.Fprintf(os.Stderr, "stepbench: %v\n", err)
			os.Exit(1)
		}
	}
	var ms []float64
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for b := 0; b < *blocks; b++ {
		t := time.Now()
		for i := 0; i < *steps; i++ {
			_ = step()
		}
		ms = append(ms, float64(time.Since(t).Microseconds())/1000/float64(*steps))
	}
	runtime.ReadMemStats(&m1)
	sort.Float64s(ms)
	fmt.Printf("%.3f %d %s\n", ms[len(ms)/2], (m1.TotalAlloc-m0.TotalAlloc)/uint64(*blocks**steps), strings.ReplaceAll(objective.BLAS(), " ", "_"))
}
