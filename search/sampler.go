package search

import (
	"fmt"
	"hash/fnv"
	"sync"

	"github.com/c-bata/goptuna"
	"github.com/c-bata/goptuna/cmaes"
	"github.com/c-bata/goptuna/medianstopping"
)

// Sampler names a sampler a spec may choose.
type Sampler string

// The samplers; SamplerTPE is the default.
const (
	SamplerTPE    Sampler = "tpe"
	SamplerRandom Sampler = "random"
	SamplerCMAES  Sampler = "cmaes"
)

// Pruner names a pruner a spec may choose.
type Pruner string

// The pruners; PrunerNone is the default.
const (
	PrunerNone              Pruner = "none"
	PrunerMedian            Pruner = "median"
	PrunerSuccessiveHalving Pruner = "successive_halving"
)

// SamplerSeed is the seed of the sampler that proposes the parameters of
// trial number of a study: every trial draws from its own stream, so no two
// trials of a study share one, whichever worker, process or machine
// proposes them, and a resumed study goes on with new streams.
func SamplerSeed(studySeed int64, number int) int64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "floodtune-sampler/%d/%d", studySeed, number)
	return int64(h.Sum64() >> 1)
}

// SamplerName is the spec's sampler, its default spelt out.
func (s *Spec) SamplerName() Sampler {
	if s.Search.Sampler == "" {
		return SamplerTPE
	}
	return s.Search.Sampler
}

// PrunerName is the spec's pruner, its default spelt out.
func (s *Spec) PrunerName() Pruner {
	if s.Search.Pruner == "" {
		return PrunerNone
	}
	return s.Search.Pruner
}

// independentSampler returns the sampler that proposes the parameters of
// one trial, seeded for it.
func (s *Spec) independentSampler(seed int64) goptuna.Sampler {
	switch s.SamplerName() {
	case SamplerRandom, SamplerCMAES:
		return newUniform(seed)
	}
	return newTPE(seed)
}

// pruner returns the spec's pruner, nil for none.
func (s *Spec) pruner() (goptuna.Pruner, error) {
	switch s.Search.Pruner {
	case PrunerMedian:
		return medianstopping.NewMedianPruner(), nil
	case PrunerSuccessiveHalving:
		return &halving{minResource: 1, eta: 4}, nil
	}
	return nil, nil
}

// relative is a Study handle's CMA-ES sampler. CMA-ES keeps state from one
// trial to the next (its mean, step size and generation), so a handle keeps
// one for all the trials it asks for, seeded by the number of the first:
// two handles (processes, Optimize calls) never share a stream, and a
// study run by one handle is reproducible from its seed.
type relative struct {
	mu      sync.Mutex
	sampler *cmaes.Sampler
}

// get returns the sampler, made for trial number if there is none yet.
func (r *relative) get(studySeed int64, number int) goptuna.RelativeSampler {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sampler == nil {
		r.sampler = cmaes.NewSampler(cmaes.SamplerOptionSeed(SamplerSeed(studySeed, number)))
	}
	return lockedRelative{r}
}

// lockedRelative serialises the calls of concurrent trials into one CMA-ES
// sampler, which is not safe for concurrent use.
type lockedRelative struct{ r *relative }

func (l lockedRelative) SampleRelative(s *goptuna.Study, t goptuna.FrozenTrial, space map[string]interface{}) (map[string]float64, error) {
	l.r.mu.Lock()
	defer l.r.mu.Unlock()
	return l.r.sampler.SampleRelative(s, t, space)
}

// bound answers a Goptuna study's questions about itself from what the
// handle already knows, so that binding a Goptuna study to each trial costs
// no query.
type bound struct {
	goptuna.Storage
	id   int
	name string
	dir  goptuna.StudyDirection
}

// GetAllTrials marks the storage's errors, so that a sampler that could not
// read the study fails as the storage, not as the trial.
func (b bound) GetAllTrials(id int) ([]goptuna.FrozenTrial, error) {
	trials, err := b.Storage.GetAllTrials(id)
	return trials, fromStorage(err)
}

// GetTrial marks the storage's errors (see GetAllTrials).
func (b bound) GetTrial(id int) (goptuna.FrozenTrial, error) {
	t, err := b.Storage.GetTrial(id)
	return t, fromStorage(err)
}

func (b bound) GetStudyIDFromName(name string) (int, error) {
	if name == b.name {
		return b.id, nil
	}
	return b.Storage.GetStudyIDFromName(name)
}

func (b bound) GetStudyDirection(id int) (goptuna.StudyDirection, error) {
	if id == b.id {
		return b.dir, nil
	}
	return b.Storage.GetStudyDirection(id)
}

// trialsOnce answers GetAllTrials from its first answer: the trials as
// they were when one value began to be drawn, which TPE's start-up check
// and TPE itself both read, loaded once.
type trialsOnce struct {
	goptuna.Storage
	trials []goptuna.FrozenTrial
	err    error
	loaded bool
}

func (o *trialsOnce) GetAllTrials(id int) ([]goptuna.FrozenTrial, error) {
	if !o.loaded {
		o.trials, o.err = o.Storage.GetAllTrials(id)
		o.loaded = true
	}
	return o.trials, o.err
}
