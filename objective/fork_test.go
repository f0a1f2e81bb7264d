package objective

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/floodtune/floodtune/flood"
)

// A run at flood level b that starts from the plain run's checkpoint at the
// last epoch before it would first flood gives the result of the run from
// scratch, bit for bit, for batch and individual flooding and every
// optimizer; one that starts an epoch later (after flooding would have
// begun) does not, so the fork point is as late as it may be.
func TestAForkedRunIsTheRunFromScratchBitForBit(t *testing.T) {
	t.Parallel()
	d := gaussData(t, 0.3)
	for _, opt := range Optimizers {
		for _, method := range []flood.Method{flood.Batch, flood.Individual} {
			t.Run(fmt.Sprintf("%s %s", opt, method), func(t *testing.T) {
				t.Parallel()
				c := smallConfig()
				c.Optimizer, c.Flood, c.FloodLevel, c.Epochs, c.BatchSize = opt, method, 0, 10, 25
				if opt == Adam {
					c.LR = 0.01
				}
				c.WeightDecay = 1e-4
				var cps []*Checkpoint
				plain, err := TrainWith(context.Background(), d, c, RunOptions{OnCheckpoint: func(cp *Checkpoint) error {
					cps = append(cps, cp)
					return nil
				}})
				if err != nil {
					t.Fatal(err)
				}
				last := cps[len(cps)-1]
				mins := last.MinLoss
				if method == flood.Individual {
					mins = last.MinSampleLoss
				}
				// A level that floods first in epoch k+1: the smallest
				// minimum of epochs 1 to k, above which epoch k+1 falls.
				k, b := 0, 0.0
				for i := 1; i < len(mins); i++ {
					low := mins[0]
					for _, m := range mins[:i] {
						low = min(low, m)
					}
					if mins[i] < low {
						k, b = i, low
						if i >= 2 {
							break
						}
					}
				}
				if k == 0 {
					t.Skipf("the minima %v never fall below an earlier epoch's", mins)
				}
				e := ForkEpoch(last.MinLoss, last.MinSampleLoss, method, b)
				if e != k {
					t.Fatalf("ForkEpoch = %d at b = %v with minima %v, want %d", e, b, mins, k)
				}
				t.Logf("b = %.4f floods first in epoch %d: the run starts from the plain run's epoch %d", b, k+1, k)
				flooded := c
				flooded.FloodLevel = b
				scratch, err := Train(context.Background(), d, flooded, nil)
				if err != nil {
					t.Fatal(err)
				}
				if scratch.AscentFraction == 0 {
					t.Fatalf("the run at b = %v never flooded", b)
				}
				// From the checkpoint as storage holds it: encoded, decoded.
				enc, err := cps[e-1].MarshalBinary()
				if err != nil {
					t.Fatal(err)
				}
				var from Checkpoint
				if err := from.UnmarshalBinary(enc); err != nil {
					t.Fatal(err)
				}
				var epochs []int
				forked, err := TrainWith(context.Background(), d, flooded, RunOptions{From: &from, OnEpoch: func(r EpochReport) error {
					epochs = append(epochs, r.Epoch)
					return nil
				}})
				if err != nil {
					t.Fatal(err)
				}
				if len(epochs) != c.Epochs-e || epochs[0] != e+1 {
					t.Errorf("the forked run trained epochs %v, want %d to %d", epochs, e+1, c.Epochs)
				}
				if !same(scratch, forked) {
					t.Errorf("forked at epoch %d, the run differs from the run from scratch:\n%+v\n%+v", e, forked, scratch)
				}
				if same(scratch, plain) {
					t.Fatal("flooding changed nothing: the test tells nothing")
				}
				// One epoch too late: the checkpoint is refused, and the run
				// forced from it differs.
				if err := cps[e].Forkable(d, flooded); err == nil {
					t.Errorf("the checkpoint of epoch %d, after flooding would have begun, is forkable", e+1)
				}
				late := *cps[e]
				late.MinLoss, late.MinSampleLoss = append([]float64(nil), mins[:e+1]...), append([]float64(nil), mins[:e+1]...)
				for i := range late.MinLoss {
					late.MinLoss[i], late.MinSampleLoss[i] = b+1, b+1
				}
				tooLate, err := TrainWith(context.Background(), d, flooded, RunOptions{From: &late})
				if err != nil {
					t.Fatal(err)
				}
				if same(scratch, tooLate) {
					t.Errorf("a fork after flooding would have begun gave the same result: the test cannot tell")
				}
			})
		}
	}
}

// same compares two results but for their timings.
func same(a, b *Result) bool {
	x, y := *a, *b
	x.Seconds, y.Seconds = 0, 0
	x.History, y.History = append([]EpochReport(nil), a.History...), append([]EpochReport(nil), b.History...)
	for i := range x.History {
		x.History[i].Seconds = 0
	}
	for i := range y.History {
		y.History[i].Seconds = 0
	}
	return reflect.DeepEqual(x, y)
}

func TestACheckpointOfAnotherRunIsRefused(t *testing.T) {
	t.Parallel()
	d := gaussData(t, 0.3)
	c := smallConfig()
	c.FloodLevel = 0
	var cp *Checkpoint
	if _, err := TrainWith(context.Background(), d, c, RunOptions{OnCheckpoint: func(x *Checkpoint) error {
		if cp == nil {
			cp = x
		}
		return nil
	}}); err != nil {
		t.Fatal(err)
	}
	for name, change := range map[string]func(*Config){
		"another seed":       func(c *Config) { c.Seed++ },
		"another lr":         func(c *Config) { c.LR *= 2 },
		"another batch size": func(c *Config) { c.BatchSize++ },
		"another optimizer":  func(c *Config) { c.Optimizer = Adam },
		"another width":      func(c *Config) { c.Hidden = []int{32, 16} },
	} {
		other := c
		change(&other)
		if _, err := TrainWith(context.Background(), d, other, RunOptions{From: cp}); err == nil {
			t.Errorf("%s: the checkpoint was accepted", name)
		}
	}
}

// A checkpoint decodes to what was encoded, NaN figures included, and a
// damaged or foreign encoding is refused with a reason.
func TestACheckpointRoundTrips(t *testing.T) {
	t.Parallel()
	cp := &Checkpoint{Epoch: 2, Steps: 8, OptSteps: 8,
		Params:   [][]float32{{1, -2.5, float32(math.Inf(1))}, {0.25}},
		OptState: [][]float32{{3, 4, 5}, {-0}},
		History:  []EpochReport{{Epoch: 1, ValAcc: 0.5, TestLoss: math.NaN()}, {Epoch: 2, ValAcc: 0.75}},
		MinLoss:  []float64{0.9, 0.8}, MinSampleLoss: []float64{0.1, 0.05},
		Best:   Result{BestEpoch: 2, BestValAcc: 0.75, BestTested: true, BestTestAcc: 0.7},
		Config: Config{Hidden: []int{3}, Optimizer: Adam, LR: 0.01, BatchSize: 4, Epochs: 5, Flood: flood.Batch, FloodLevel: 0.3, Seed: 7}}
	enc, err := cp.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var got Checkpoint
	if err := got.UnmarshalBinary(enc); err != nil {
		t.Fatal(err)
	}
	if !math.IsNaN(got.History[0].TestLoss) {
		t.Errorf("the NaN test loss of epoch 1 decoded as %v", got.History[0].TestLoss)
	}
	got.History[0].TestLoss, cp.History[0].TestLoss = 0, 0
	if !reflect.DeepEqual(&got, cp) {
		t.Errorf("decoded\n%+v\nwant\n%+v", &got, cp)
	}
	for name, data := range map[string][]byte{
		"empty":     nil,
		"foreign":   []byte("PK\x03\x04 a zip file"),
		"truncated": enc[:len(enc)-3],
		"longer":    append(slices.Clone(enc), 0),
		"version":   append(append([]byte(checkpointMagic), 99), enc[len(checkpointMagic)+1:]...),
	} {
		var cp Checkpoint
		err := cp.UnmarshalBinary(data)
		if err == nil || !strings.HasPrefix(err.Error(), "decode a checkpoint: ") {
			t.Errorf("%s: err = %v, want a decode error", name, err)
		}
	}
}

// An OnEpoch that returns StopRun ends the run after that epoch with the
// result of a run of that many epochs, bit for bit.
func TestStopRunEndsTheRunAsIfItWereTheLastEpoch(t *testing.T) {
	t.Parallel()
	d := gaussData(t, 0.3)
	c := smallConfig()
	c.Epochs, c.Flood, c.FloodLevel = 6, flood.Batch, 0.2
	stopped, err := Train(context.Background(), d, c, func(r EpochReport) error {
		if r.Epoch == 4 {
			return fmt.Errorf("early stopping: %w", StopRun)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	c.Epochs = 4
	short, err := Train(context.Background(), d, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if stopped.Epochs != 4 || !same(stopped, short) {
		t.Errorf("stopped after epoch 4:\n%+v\na run of 4 epochs:\n%+v", stopped, short)
	}
}

// The test figures of the best epoch, taken once at the end of the run
// from the parameters kept since (TestAtBest), are those a run that
// evaluates the test split after every epoch (TestCurve) sees at that
// epoch; a run forked from a checkpoint whose best epoch is still to be
// tested, or stopped early, takes the same.
func TestTheBestEpochsTestFiguresAreTakenFromItsParameters(t *testing.T) {
	t.Parallel()
	d := gaussData(t, 0.3)
	c := smallConfig()
	c.Epochs, c.Flood, c.FloodLevel, c.BatchSize = 10, flood.Batch, 0.3, 25
	curve := c
	curve.TestCurve = true
	every, err := Train(context.Background(), d, curve, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.TestAtBest = true
	var cps []*Checkpoint
	atEnd, err := TrainWith(context.Background(), d, c, RunOptions{OnCheckpoint: func(cp *Checkpoint) error {
		cps = append(cps, cp)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if !atEnd.BestTested || atEnd.BestEpoch != every.BestEpoch || atEnd.BestTestAcc != every.BestTestAcc || atEnd.BestTestLoss != every.BestTestLoss {
		t.Fatalf("tested at the end: epoch %d, %v / %v (tested %v); tested every epoch: epoch %d, %v / %v",
			atEnd.BestEpoch, atEnd.BestTestAcc, atEnd.BestTestLoss, atEnd.BestTested, every.BestEpoch, every.BestTestAcc, every.BestTestLoss)
	}
	if atEnd.BestEpoch == c.Epochs {
		t.Fatal("the best epoch is the last: the test cannot tell the kept parameters from the final ones")
	}
	// A checkpoint after the best epoch holds the best epoch's
	// parameters apart; one at it, none.
	pendingApart := false
	for _, cp := range cps {
		if !cp.BestPending || cp.Best.BestTested {
			t.Fatalf("the checkpoint of epoch %d: pending %v, tested %v", cp.Epoch, cp.BestPending, cp.Best.BestTested)
		}
		if (cp.BestParams == nil) != (cp.Best.BestEpoch == cp.Epoch) {
			t.Errorf("the checkpoint of epoch %d (best epoch %d) holds best parameters apart: %v", cp.Epoch, cp.Best.BestEpoch, cp.BestParams != nil)
		}
		pendingApart = pendingApart || cp.BestParams != nil
	}
	if !pendingApart {
		t.Fatal("no checkpoint holds the best epoch's parameters apart: the test tells little")
	}
	// Plain training with TestAtBest forked from each of its own
	// checkpoints, through their encoding, gives the same result.
	plain := c
	plain.FloodLevel = 0
	cps = nil
	whole, err := TrainWith(context.Background(), d, plain, RunOptions{OnCheckpoint: func(cp *Checkpoint) error {
		cps = append(cps, cp)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, cp := range cps {
		enc, err := cp.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var from Checkpoint
		if err := from.UnmarshalBinary(enc); err != nil {
			t.Fatal(err)
		}
		forked, err := TrainWith(context.Background(), d, plain, RunOptions{From: &from})
		if err != nil {
			t.Fatal(err)
		}
		if !same(forked, whole) {
			t.Errorf("forked from epoch %d (best epoch %d): %+v\nwhole: %+v", cp.Epoch, cp.Best.BestEpoch, forked, whole)
		}
	}
}
