package objective

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/floodtune/floodtune/flood"
)

// StepBench describes a training-step benchmark on random data: the model,
// batch size, optimizer and flooding of one step.
// With Conv the model is a convolutional network on images of shape Image
// (Features is then Image's size).
type StepBench struct {
	Features  int
	Image     ImageShape
	Conv      []ConvLayer
	Hidden    []int
	Classes   int
	Batch     int
	Optimizer string
	Flood     flood.Method
	Level     float64
}

// Prepare builds the model and graph and returns a function that runs one
// training step (forward, backward, update) on a fixed random batch.
func (s StepBench) Prepare() (func() error, error) {
	step, _, err := s.prepare()
	return step, err
}

// OpTime is the time a kind of op took in the steps of a Breakdown.
type OpTime struct {
	Op    string        // the op's name, e.g. Im2col, LinearReLU, Gemm{true,false}, or "optimizer update"
	Calls int           // calls per step
	Time  time.Duration // per step
}

// Breakdown runs steps training steps after a few to warm up and returns
// where a step's time goes, by kind of op, the most expensive first.
func (s StepBench) Breakdown(steps int) ([]OpTime, error) {
	_, tr, err := s.prepare()
	if err != nil {
		return nil, err
	}
	n := tr.full
	for range 3 {
		if err := n.run(); err != nil {
			return nil, err
		}
	}
	p := n.prog
	p.spent = make([]time.Duration, len(p.steps))
	var update time.Duration
	for range steps {
		if err := n.run(); err != nil {
			return nil, err
		}
		t0 := time.Now()
		tr.grads = n.gradients(tr.grads)
		tr.opt.step(tr.params, tr.grads)
		update += time.Since(t0)
	}
	byOp := map[string]*OpTime{}
	for i, ins := range p.steps {
		name := ins.op.String()
		if strings.HasPrefix(name, "Flood") {
			name = "flooded loss"
		}
		o := byOp[name]
		if o == nil {
			o = &OpTime{Op: name}
			byOp[name] = o
		}
		o.Calls++
		o.Time += p.spent[i]
	}
	out := []OpTime{{Op: "optimizer update", Calls: 1, Time: update}}
	for _, o := range byOp {
		out = append(out, *o)
	}
	for i := range out {
		out[i].Time /= time.Duration(steps)
	}
	slices.SortFunc(out, func(a, b OpTime) int { return cmp.Compare(b.Time, a.Time) })
	return out, nil
}

func (s StepBench) prepare() (func() error, *trainer, error) {
	rng := newRand(1, streamInit)
	if len(s.Conv) > 0 {
		s.Features = s.Image.size()
	}
	d := &Data{Features: s.Features, Classes: s.Classes, Image: s.Image}
	d.Train = Split{N: s.Batch, X: make([]float32, s.Batch*s.Features), Y: make([]int32, s.Batch)}
	for i := range d.Train.X {
		d.Train.X[i] = rng.Float32()
	}
	for i := range d.Train.Y {
		d.Train.Y[i] = int32(rng.IntN(s.Classes))
	}
	c := Config{Conv: s.Conv, Hidden: s.Hidden, Optimizer: s.Optimizer, LR: 0.01, BatchSize: s.Batch, Epochs: 1, Flood: s.Flood, FloodLevel: s.Level}
	if err := c.ValidateFor(d); err != nil {
		return nil, nil, err
	}
	m, err := c.newModel(d)
	if err != nil {
		return nil, nil, err
	}
	tr, err := newTrainer(m, d, c)
	if err != nil {
		return nil, nil, err
	}
	idx := make([]int, s.Batch)
	for i := range idx {
		idx[i] = i
	}
	n := tr.full
	n.load(&d.Train, s.Features, idx)
	return func() error {
		if err := n.run(); err != nil {
			return fmt.Errorf("step: %w", err)
		}
		tr.grads = n.gradients(tr.grads)
		tr.opt.step(tr.params, tr.grads)
		return nil
	}, tr, nil
}
