package objective

import (
	"fmt"

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
		return nil, err
	}
	m, err := c.newModel(d)
	if err != nil {
		return nil, err
	}
	tr, err := newTrainer(m, d, c)
	if err != nil {
		return nil, err
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
	}, nil
}
