package objective

import (
	"context"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/floodtune/floodtune/flood"
)

func gaussData(t *testing.T, noise float64) *Data {
	t.Helper()
	d, err := LoadDataset(context.Background(), DatasetSpec{Name: "gauss2d", TrainSize: 200, ValSize: 100, TestSize: 2000, LabelNoise: noise, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func smallConfig() Config {
	return Config{Hidden: []int{32, 32}, Optimizer: Momentum, LR: 0.05, BatchSize: 32, Epochs: 5, Flood: flood.Batch, FloodLevel: 0.2, Seed: 11}
}

func TestTrainLearnsGauss2D(t *testing.T) {
	t.Parallel()
	d := gaussData(t, 0)
	var epochs []EpochReport
	res, err := Train(context.Background(), d, Config{Hidden: []int{32}, Optimizer: Adam, LR: 0.01, BatchSize: 50, Epochs: 20, Seed: 1}, func(r EpochReport) error {
		epochs = append(epochs, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Two Gaussians a distance √2 apart with variance 0.1: the Bayes
	// accuracy is Φ(√2/2/√0.1) ≈ 98.7%.
	if res.TestAcc < 0.95 {
		t.Fatalf("test accuracy %.3f, want ≥ 0.95", res.TestAcc)
	}
	if len(epochs) != 20 || epochs[19].Epoch != 20 || res.Epochs != 20 {
		t.Fatalf("%d epoch reports, last %+v; want 20", len(epochs), epochs[len(epochs)-1])
	}
	if res.Steps != 20*4 {
		t.Fatalf("steps = %d, want 80 (200 rows, batch 50, 20 epochs)", res.Steps)
	}
	if epochs[19].TrainLoss >= epochs[0].TrainLoss {
		t.Fatalf("train loss did not fall: %v → %v", epochs[0].TrainLoss, epochs[19].TrainLoss)
	}
	if res.AscentFraction != 0 {
		t.Fatalf("ascent fraction %v without flooding", res.AscentFraction)
	}
}

func TestTrainIsReproducibleBitForBit(t *testing.T) {
	t.Parallel()
	d := gaussData(t, 0.1)
	c := smallConfig()
	c.BatchSize = 48 // 200 rows: a last batch of 8 each epoch
	a, err := Train(context.Background(), d, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Train(context.Background(), d, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.Seconds, b.Seconds = 0, 0
	for i := range a.History {
		a.History[i].Seconds, b.History[i].Seconds = 0, 0
	}
	if !reflect.DeepEqual(a, b) {
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

// trainSteps runs steps training steps and returns the parameters.
func trainSteps(t *testing.T, d *Data, c Config, steps int) [][]float32 {
	t.Helper()
	m := NewModel(d.Features, c.Hidden, d.Classes, newRand(c.Seed, streamInit))
	tr, err := newTrainer(m, d, c)
	if err != nil {
		t.Fatal(err)
	}
	order := make([]int, d.Train.N)
	for i := range order {
		order[i] = i
	}
	for tr.steps < steps {
		if _, _, err := tr.epoch(context.Background(), 1, order); err != nil {
			t.Fatal(err)
		}
	}
	return m.Params()
}

func TestFloodLevelZeroReproducesPlainTraining(t *testing.T) {
	t.Parallel()
	d := gaussData(t, 0.2)
	for _, opt := range Optimizers {
		for _, m := range []flood.Method{flood.Batch, flood.Individual} {
			t.Run(opt+"/"+string(m), func(t *testing.T) {
				t.Parallel()
				c := smallConfig()
				c.Optimizer = opt
				c.WeightDecay = 1e-4
				c.Flood, c.FloodLevel = flood.None, 0
				plain := trainSteps(t, d, c, 30)
				c.Flood = m
				flooded := trainSteps(t, d, c, 30)
				if !reflect.DeepEqual(plain, flooded) {
					t.Fatal("parameters after 30 steps differ from plain training")
				}
				c.FloodLevel = 1.0 // above the initial loss of about ln 2
				if reflect.DeepEqual(plain, trainSteps(t, d, c, 30)) {
					t.Fatal("a level of 1.0 changed nothing: the test cannot tell")
				}
			})
		}
	}
}

func TestFloodingHoldsTheTrainingLossNearTheLevel(t *testing.T) {
	t.Parallel()
	// The setting of the flooding paper's Gaussian experiment, smaller: with
	// b = 0.3 the training loss settles around b instead of going to 0.
	d := gaussData(t, 0.05)
	c := Config{Hidden: []int{100, 100}, Optimizer: Adam, LR: 1e-3, BatchSize: 50, Epochs: 400, Seed: 2, Flood: flood.None}
	plain, err := Train(context.Background(), d, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Flood, c.FloodLevel = flood.Batch, 0.3
	flooded, err := Train(context.Background(), d, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("train loss: plain %.3f, flooded %.3f; ascent fraction %.2f", plain.TrainLoss, flooded.TrainLoss, flooded.AscentFraction)
	if plain.TrainLoss > 0.2 {
		t.Fatalf("plain training loss %.3f, want it driven well below the level, under 0.2", plain.TrainLoss)
	}
	if math.Abs(flooded.TrainLoss-0.3) > 0.05 {
		t.Fatalf("flooded training loss %.3f, want 0.3 ± 0.05", flooded.TrainLoss)
	}
	if flooded.AscentFraction < 0.2 || flooded.AscentFraction > 0.8 {
		t.Fatalf("ascent fraction %.2f: a flooded run at its level should ascend about half the time", flooded.AscentFraction)
	}
}

func TestTrainStops(t *testing.T) {
	t.Parallel()
	d := gaussData(t, 0)
	t.Run("when the epoch callback returns an error", func(t *testing.T) {
		t.Parallel()
		stop := errors.New("pruned")
		res, err := Train(context.Background(), d, smallConfig(), func(r EpochReport) error {
			if r.Epoch == 2 {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) {
			t.Fatalf("error %v, want the callback's", err)
		}
		if res == nil || res.Epochs != 2 {
			t.Fatalf("result %+v, want 2 epochs", res)
		}
	})
	t.Run("when the context is cancelled", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		_, err := Train(ctx, d, smallConfig(), func(EpochReport) error { cancel(); return nil })
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v, want context.Canceled", err)
		}
	})
	t.Run("with a clear error when the loss diverges", func(t *testing.T) {
		t.Parallel()
		c := smallConfig()
		c.Optimizer, c.LR = SGD, 1e6
		_, err := Train(context.Background(), d, c, nil)
		var div *DivergedError
		if !errors.As(err, &div) {
			t.Fatalf("error %v, want a DivergedError", err)
		}
		if div.Epoch < 1 || !strings.Contains(err.Error(), "diverged at epoch") {
			t.Fatalf("error %q", err)
		}
	})
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	d := gaussData(t, 0)
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no hidden layer", func(c *Config) { c.Hidden = nil }, "hidden layers"},
		{"a zero width", func(c *Config) { c.Hidden = []int{10, 0} }, "width 0 of layer 2"},
		{"a negative width", func(c *Config) { c.Hidden = []int{-3} }, "must be positive"},
		{"a width over the limit", func(c *Config) { c.Hidden = []int{MaxWidth + 1} }, "limit"},
		{"an unknown optimizer", func(c *Config) { c.Optimizer = "rmsprop" }, "unknown \"rmsprop\""},
		{"a zero learning rate", func(c *Config) { c.LR = 0 }, "learning rate"},
		{"a NaN learning rate", func(c *Config) { c.LR = math.NaN() }, "learning rate"},
		{"momentum of 1", func(c *Config) { c.Momentum = 1 }, "momentum"},
		{"negative weight decay", func(c *Config) { c.WeightDecay = -1 }, "weight decay"},
		{"batch size 0", func(c *Config) { c.BatchSize = 0 }, "batch size"},
		{"batch size above the training set", func(c *Config) { c.BatchSize = 201 }, "larger than the training set (200 rows)"},
		{"zero epochs", func(c *Config) { c.Epochs = 0 }, "epochs"},
		{"a negative flood level", func(c *Config) { c.FloodLevel = -0.1 }, "flood level"},
		{"a NaN flood level", func(c *Config) { c.FloodLevel = math.NaN() }, "flood level"},
		{"an infinite flood level", func(c *Config) { c.FloodLevel = math.Inf(1) }, "flood level"},
		{"an unknown flood method", func(c *Config) { c.Flood = "flooding" }, "unknown method"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := smallConfig()
			tc.edit(&c)
			err := c.ValidateFor(d)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	if err := smallConfig().ValidateFor(d); err != nil {
		t.Fatalf("a valid config: %v", err)
	}
}

// The best validation epoch is tracked as the run goes, and its test
// figures, evaluated only at each new best, are those of the test curve at
// that epoch: evaluating changes nothing of the training.
func TestTheBestEpochAndItsTestFigures(t *testing.T) {
	t.Parallel()
	d := gaussData(t, 0.3)
	for _, byLoss := range []bool{false, true} {
		c := smallConfig()
		c.Epochs, c.BestByLoss = 12, byLoss
		c.TestCurve = true
		curve, err := Train(context.Background(), d, c, nil)
		if err != nil {
			t.Fatal(err)
		}
		c.TestCurve, c.TestAtBest = false, true
		atBest, err := Train(context.Background(), d, c, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := 0
		for i, e := range curve.History {
			if want == 0 || !byLoss && e.ValAcc > curve.History[want-1].ValAcc || byLoss && e.ValLoss < curve.History[want-1].ValLoss {
				want = i + 1
			}
		}
		best := curve.History[want-1]
		for _, r := range []*Result{curve, atBest} {
			if r.BestEpoch != want || r.BestValAcc != best.ValAcc || r.BestValLoss != best.ValLoss || !r.BestTested ||
				r.BestTestAcc != best.TestAcc || r.BestTestLoss != best.TestLoss {
				t.Errorf("by loss %v: best epoch %d (val %v/%v, test %v/%v, tested %v), want epoch %d of the curve (%+v)", byLoss,
					r.BestEpoch, r.BestValLoss, r.BestValAcc, r.BestTestLoss, r.BestTestAcc, r.BestTested, want, best)
			}
		}
		if atBest.TestAcc != curve.TestAcc || atBest.ValLoss != curve.ValLoss {
			t.Errorf("evaluating the test split at the best epochs changed the run: %v/%v against %v/%v", atBest.TestAcc, atBest.ValLoss, curve.TestAcc, curve.ValLoss)
		}
		if want == c.Epochs {
			t.Logf("by loss %v: the best epoch is the last; the test cannot tell early stopping apart", byLoss)
		}
	}
	c := smallConfig()
	plain, err := Train(context.Background(), d, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if plain.BestTested || plain.BestEpoch == 0 {
		t.Errorf("without TestAtBest: tested %v, best epoch %d", plain.BestTested, plain.BestEpoch)
	}
}
