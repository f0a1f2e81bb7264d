package objective

import (
	"context"
	"errors"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/floodtune/floodtune/flood"
)

// barsData is a small dataset of images for convolutional networks: 1×10×10
// images of a horizontal (class 0), vertical (1) or diagonal (2) bar at a
// random place, on noise, with symmetric label noise in train and
// validation.
func barsData(t *testing.T, noise float64) *Data {
	t.Helper()
	shape := ImageShape{Channels: 1, Height: 10, Width: 10}
	rng := rand.New(rand.NewPCG(5, 8))
	split := func(n int) Split {
		s := Split{X: make([]float32, n*shape.size()), Y: make([]int32, n), N: n}
		for i := range n {
			img := s.X[i*shape.size() : (i+1)*shape.size()]
			for j := range img {
				img[j] = 0.3 * rng.Float32()
			}
			class := rng.IntN(3)
			at := 2 + rng.IntN(6)
			for k := range 8 {
				switch class {
				case 0:
					img[at*10+1+k] += 1
				case 1:
					img[(1+k)*10+at] += 1
				default:
					img[(1+k)*10+1+k] += 1
				}
			}
			s.Y[i] = int32(class)
		}
		return s
	}
	d := &Data{Name: "bars", Features: shape.size(), Classes: 3, Image: shape, Train: split(300), Val: split(100), Test: split(300)}
	d.NoisyTrain = addLabelNoise(d.Train.Y, noise, 3, rand.New(rand.NewPCG(6, 1)))
	d.NoisyVal = addLabelNoise(d.Val.Y, noise, 3, rand.New(rand.NewPCG(6, 2)))
	return d
}

func smallCNNConfig() Config {
	return Config{Conv: []ConvLayer{{Channels: 6, Kernel: 3, Padding: 1, Pool: 2}, {Channels: 8, Kernel: 3}}, Hidden: []int{16},
		Optimizer: Momentum, LR: 0.05, BatchSize: 32, Epochs: 6, Flood: flood.Batch, FloodLevel: 0.1, Seed: 4}
}

func TestACNNLearnsAndIsReproducibleBitForBit(t *testing.T) {
	t.Parallel()
	d := barsData(t, 0)
	c := smallCNNConfig()
	a, err := Train(context.Background(), d, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.TestAcc < 0.9 {
		t.Errorf("test accuracy %.3f after %d epochs, want ≥ 0.9: the network does not learn the bars", a.TestAcc, c.Epochs)
	}
	b, err := Train(context.Background(), d, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !same(a, b) {
		t.Fatalf("two runs differ:\n%+v\n%+v", a, b)
	}
	c.Seed++
	other, err := Train(context.Background(), d, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if other.TrainLoss == a.TrainLoss {
		t.Fatal("another seed gave the same train loss")
	}
}

func TestACNNFloodsAndForksBitForBit(t *testing.T) {
	t.Parallel()
	d := barsData(t, 0.3)
	for _, method := range []flood.Method{flood.Batch, flood.Individual} {
		t.Run(string(method), func(t *testing.T) {
			t.Parallel()
			c := smallCNNConfig()
			c.Flood, c.FloodLevel, c.Epochs = method, 0, 8
			var cps []*Checkpoint
			if _, err := TrainWith(context.Background(), d, c, RunOptions{OnCheckpoint: func(cp *Checkpoint) error {
				cps = append(cps, cp)
				return nil
			}}); err != nil {
				t.Fatal(err)
			}
			last := cps[len(cps)-1]
			// A level that floods first in epoch k+1: between the lowest
			// minimum of epochs 1 to k and epoch k+1's, which is lower.
			mins := last.MinLoss
			if method == flood.Individual {
				mins = last.MinSampleLoss
			}
			k, low := 0, mins[0]
			for i := 1; i < len(mins) && k == 0; i++ {
				if mins[i] < low {
					k = i
				} else {
					low = min(low, mins[i])
				}
			}
			if k == 0 {
				t.Fatalf("the minima %v never fall: the training does not learn", mins)
			}
			flooded := c
			flooded.FloodLevel = (low + mins[k]) / 2
			if e := ForkEpoch(last.MinLoss, last.MinSampleLoss, method, flooded.FloodLevel); e != k {
				t.Fatalf("ForkEpoch = %d, want %d", e, k)
			}
			scratch, err := Train(context.Background(), d, flooded, nil)
			if err != nil {
				t.Fatal(err)
			}
			if scratch.AscentFraction == 0 {
				t.Fatalf("the run at b = %v never flooded", flooded.FloodLevel)
			}
			enc, err := cps[k-1].MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var from Checkpoint
			if err := from.UnmarshalBinary(enc); err != nil {
				t.Fatal(err)
			}
			forked, err := TrainWith(context.Background(), d, flooded, RunOptions{From: &from})
			if err != nil {
				t.Fatal(err)
			}
			if !same(scratch, forked) {
				t.Errorf("forked at epoch %d, the run differs from the run from scratch:\n%+v\n%+v", k, forked, scratch)
			}
			// A checkpoint of an MLP is not a CNN's.
			mlp := flooded
			mlp.Conv = nil
			if err := cps[0].Forkable(d, mlp); err == nil {
				t.Error("a CNN's checkpoint is forkable by an MLP")
			}
		})
	}
}

func TestACNNThatDivergesEndsTheRun(t *testing.T) {
	t.Parallel()
	d := barsData(t, 0)
	c := smallCNNConfig()
	c.Optimizer, c.LR = SGD, 1e8
	_, err := Train(context.Background(), d, c, nil)
	var div *DivergedError
	if !errors.As(err, &div) {
		t.Fatalf("error %v, want a DivergedError", err)
	}
}

func TestCNNConfigErrors(t *testing.T) {
	t.Parallel()
	images := barsData(t, 0)
	gauss := gaussData(t, 0)
	for _, tc := range []struct {
		name string
		d    *Data
		edit func(*Config)
		want string
	}{
		{"on rows that are not images", gauss, func(*Config) {}, "need images, and the rows of gauss2d are not"},
		{"with a kernel larger than the image", images, func(c *Config) { c.Conv = []ConvLayer{{Channels: 2, Kernel: 11}} }, "does not fit"},
		{"with pooling larger than the feature map", images, func(c *Config) { c.Conv = []ConvLayer{{Channels: 2, Kernel: 3, Pool: 9}} }, "pooling by 9 does not fit"},
		{"with a layer of no channels", images, func(c *Config) { c.Conv = []ConvLayer{{Kernel: 3}} }, "convolutional layer 1: channels 0"},
		{"with windows too large for memory", images, func(c *Config) {
			c.Conv = []ConvLayer{{Channels: 1, Kernel: 10, Padding: 9}}
			c.BatchSize = 300
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := smallCNNConfig()
			tc.edit(&c)
			err := c.ValidateFor(tc.d)
			if tc.want == "" {
				// 300 images of 19×19 windows of 100 values: well within
				// the limit, so valid.
				if err != nil {
					t.Fatalf("error %v, want none", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestACNNStepAllocatesNoTensors: after the first steps, a training step of
// a convolutional network allocates nothing of its own. gonum's pure-Go
// BLAS (builds without OpenBLAS) allocates the work queues of its parallel
// matrix products at every call; those are counted apart, from the heap
// profile's stacks.
func TestACNNStepAllocatesNoTensors(t *testing.T) {
	s := StepBench{Image: ImageShape{Channels: 1, Height: 28, Width: 28}, Conv: []ConvLayer{{Channels: 8, Kernel: 5, Padding: 2, Pool: 2}, {Channels: 16, Kernel: 3, Padding: 1, Pool: 2}},
		Hidden: []int{64}, Classes: 10, Batch: 32, Optimizer: Adam, Flood: flood.Individual, Level: 0.1}
	step, err := s.Prepare()
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	// Every allocation sampled, for the steps measured only: the test is
	// not parallel, so no other test runs meanwhile.
	defer func(rate int) { runtime.MemProfileRate = rate }(runtime.MemProfileRate)
	runtime.MemProfileRate = 1
	before := ownAllocBytes()
	const runs = 10
	var failed error
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for range runs {
		if err := step(); err != nil {
			failed = err
		}
	}
	runtime.ReadMemStats(&m1)
	if failed != nil {
		t.Fatal(failed)
	}
	own := float64(ownAllocBytes()-before) / runs
	all := float64(m1.TotalAlloc-m0.TotalAlloc) / runs
	// The smallest activation is 32×7×7×16 float32s, 100 KB.
	if own > 16<<10 {
		t.Fatalf("a step allocates %.0f bytes outside the BLAS (%.0f in all), want < 16 KB: no tensor per step", own, all)
	}
	if cgoBLAS && all > 16<<10 {
		t.Fatalf("a step allocates %.0f bytes, want < 16 KB with OpenBLAS", all)
	}
	t.Logf("%.0f bytes a step outside the BLAS, %.0f in all (%s)", own, all, BLAS())
}

// ownAllocBytes is the heap allocated so far, as the heap profile has it,
// but for what gonum's BLAS allocated.
func ownAllocBytes() int64 {
	// The profile is complete up to the last garbage collection but one.
	runtime.GC()
	runtime.GC()
	n, _ := runtime.MemProfile(nil, true)
	recs := make([]runtime.MemProfileRecord, n+64)
	n, _ = runtime.MemProfile(recs, true)
	var sum int64
	for _, r := range recs[:n] {
		frames := runtime.CallersFrames(r.Stack())
		for {
			f, more := frames.Next()
			if !strings.HasPrefix(f.Function, "runtime.") {
				if !strings.HasPrefix(f.Function, "gonum.org/v1/gonum/blas") {
					sum += r.AllocBytes
				}
				break
			}
			if !more {
				break
			}
		}
	}
	return sum
}

func TestTheStepBreakdownNamesEveryOp(t *testing.T) {
	t.Parallel()
	s := StepBench{Image: ImageShape{Channels: 1, Height: 12, Width: 12}, Conv: []ConvLayer{{Channels: 4, Kernel: 3, Padding: 1, Pool: 2}, {Channels: 4, Kernel: 3, Pool: 2}},
		Hidden: []int{8}, Classes: 3, Batch: 8, Optimizer: Momentum, Flood: flood.Batch, Level: 0.1}
	ops, err := s.Breakdown(2)
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]int{}
	for _, o := range ops {
		calls[o.Op] = o.Calls
		if o.Time < 0 {
			t.Errorf("%s took %v", o.Op, o.Time)
		}
	}
	// Two convolutions: two im2col and pooling ops, one col2im (the first
	// layer's input, the data, needs no gradient); three layers with a
	// ReLU; four weight gradients.
	for op, want := range map[string]int{"Im2col": 2, "MaxPool": 2, "MaxPoolGrad": 2, "Col2im": 1, "LinearReLU": 3, "Linear": 1, "Gemm{true,false}": 4, "optimizer update": 1} {
		if calls[op] != want {
			t.Errorf("%s: %d calls a step, want %d (all: %v)", op, calls[op], want, calls)
		}
	}
}

// TestACNNTrainsOnAnIDXDatasetOfSeveralChannels: images of 3 channels in
// IDX files reach a convolutional network with their shape.
func TestACNNTrainsOnAnIDXDatasetOfSeveralChannels(t *testing.T) {
	t.Parallel()
	shape := ImageShape{Channels: 3, Height: 8, Width: 6}
	set := [4][]byte{
		idxImagesFile(60, shape, true), idxLabelsFile(60, mod5),
		idxImagesFile(20, shape, true), idxLabelsFile(20, mod5),
	}
	dir := writeIdxDir(t, set, idxNames("train-images-idx4-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx4-ubyte", "t10k-labels-idx1-ubyte"))
	d, err := LoadDataset(context.Background(), DatasetSpec{Name: "idx:" + dir, LabelNoise: 0.1, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	c := Config{Conv: []ConvLayer{{Channels: 4, Kernel: 3, Padding: 1, Pool: 2}}, Hidden: []int{8}, Optimizer: Adam, LR: 0.01, BatchSize: 16, Epochs: 2, Flood: flood.Batch, FloodLevel: 0.5, Seed: 1}
	res, err := Train(context.Background(), d, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.newModel(d)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(m.ConvW[0].Float32s()); got != 4*3*3*3 {
		t.Errorf("the first convolution has %d weights, want 4·3·3·3 (3 input channels)", got)
	}
	if res.Epochs != 2 || res.Steps == 0 || !finite(res.TestLoss) {
		t.Errorf("result %+v", res)
	}
}
