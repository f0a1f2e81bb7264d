// Command stepbench times floodtune's training step: the MLP 784-500-500-10
// (or, with -model cnn, the LeNet-style network of bench/torch_step.py: 5×5
// convolutions of 16 and 32 channels padded by 2, each max-pooled by 2, then
// dense 1568-256-10) on 28×28 inputs at batch 128, float32, flooded loss,
// SGD with momentum, on random data. It prints the median time of a step
// over several blocks, in milliseconds, and the heap allocated per step.
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
	hidden := flag.String("hidden", "", "hidden widths (default 500,500 for the MLP, 256 for the CNN)")
	model := flag.String("model", "mlp", "mlp or cnn")
	breakdown := flag.Bool("breakdown", false, "print where a step's time goes, op by op (a markdown table), instead of the step time")
	conv := flag.String("conv", objective.FormatConv(objective.LeNet), "the CNN's convolutional layers")
	flag.Parse()
	bench := objective.StepBench{Features: 784, Classes: 10, Batch: *batch, Optimizer: objective.Momentum, Flood: flood.Batch, Level: 0.1}
	switch *model {
	case "mlp":
		if *hidden == "" {
			*hidden = "500,500"
		}
	case "cnn":
		if *hidden == "" {
			*hidden = "256"
		}
		layers, err := objective.ParseConv(*conv)
		if err != nil {
			fmt.Fprintf(os.Stderr, "stepbench: %v\n", err)
			os.Exit(2)
		}
		bench.Conv, bench.Image = layers, objective.ImageShape{Channels: 1, Height: 28, Width: 28}
	default:
		fmt.Fprintf(os.Stderr, "stepbench: bad -model %q (want mlp or cnn)\n", *model)
		os.Exit(2)
	}
	var widths []int
	for _, f := range strings.Split(*hidden, ",") {
		w, err := strconv.Atoi(f)
		if err != nil {
			fmt.Fprintf(os.Stderr, "stepbench: bad -hidden %q\n", *hidden)
			os.Exit(2)
		}
		widths = append(widths, w)
	}
	bench.Hidden = widths
	objective.SetBLASThreads(*threads)
	if *breakdown {
		ops, err := bench.Breakdown(*steps)
		if err != nil {
			fmt.Fprintf(os.Stderr, "stepbench: %v\n", err)
			os.Exit(1)
		}
		var total time.Duration
		for _, o := range ops {
			total += o.Time
		}
		fmt.Println("| op | calls a step | ms a step | share |")
		fmt.Println("|---|---|---|---|")
		for _, o := range ops {
			name := o.Op
			if what, ok := opRoles[name]; ok {
				name += " (" + what + ")"
			}
			fmt.Printf("| %s | %d | %.2f | %.0f%% |\n", name, o.Calls, float64(o.Time.Microseconds())/1000, 100*float64(o.Time)/float64(total))
		}
		fmt.Printf("| all | | %.2f | |\n", float64(total.Microseconds())/1000)
		return
	}
	step, err := bench.Prepare()
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

// opRoles says what each op of the model does in a step.
var opRoles = map[string]string{
	"LinearReLU":              "forward GEMM + bias + ReLU of the convolutions and hidden layers",
	"Linear":                  "forward GEMM + bias of the output layer",
	"Gemm{true,false}":        "weight gradients gᵀ·x",
	"Gemm{false,false}":       "input gradients g·W",
	"Im2col":                  "windows of the convolutions' inputs laid out as rows",
	"Col2im":                  "window gradients added back onto the input",
	"MaxPool":                 "max pooling",
	"MaxPoolGrad":             "max pooling's gradient",
	"ColSum":                  "bias gradients",
	"ReLUGrad":                "ReLU's gradient",
	"SoftmaxCrossEntropy":     "per-sample losses",
	"SoftmaxCrossEntropyGrad": "their gradient",
	"Reshape":                 "feature map to dense rows, no copy",
	"ReshapeGrad":             "and back, no copy",
}
