package search

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"

	"github.com/c-bata/goptuna"
	"github.com/c-bata/goptuna/tpe"
)

// This file holds the parts of sampling that floodtune does itself rather
// than through Goptuna v0.9.0, whose random sampler never draws the top of
// an int range and draws categorical choices from math/rand's global
// source (not from its seed), whose TPE proposes stepped ints off their
// grid, and whose relative-sampling path panics on a space with a
// categorical option. Every value a trial records is a value of its space,
// drawn from the trial's own seeded stream, and is the value it trains
// with.

// distribution returns the Goptuna distribution of the parameter.
func (p Param) distribution() any {
	switch {
	case p.Type == Categorical:
		return goptuna.CategoricalDistribution{Choices: p.Choices}
	case p.Type == Int && p.Step != nil:
		return goptuna.StepIntUniformDistribution{Low: int(*p.Low), High: int(*p.High), Step: int(*p.Step)}
	case p.Type == Int:
		return goptuna.IntUniformDistribution{Low: int(*p.Low), High: int(*p.High)}
	case p.Log:
		return goptuna.LogUniformDistribution{Low: *p.Low, High: *p.High}
	case p.Step != nil:
		return goptuna.DiscreteUniformDistribution{Low: *p.Low, High: *p.High, Q: *p.Step}
	}
	return goptuna.UniformDistribution{Low: *p.Low, High: *p.High}
}

// uniform draws every value of a distribution with equal chance (on a log
// scale for a log range), from its own seeded stream: floodtune's random
// sampler, and TPE's during its start-up trials.
type uniform struct{ rng *rand.Rand }

func newUniform(seed int64) *uniform {
	return &uniform{rand.New(rand.NewPCG(uint64(seed), 0x666c6f6f64))}
}

// Sample implements goptuna.Sampler.
func (u *uniform) Sample(_ *goptuna.Study, _ goptuna.FrozenTrial, _ string, dist any) (float64, error) {
	switch d := dist.(type) {
	case goptuna.UniformDistribution:
		return d.Low + u.rng.Float64()*(d.High-d.Low), nil
	case goptuna.LogUniformDistribution:
		lo, hi := math.Log(d.Low), math.Log(d.High)
		return math.Exp(lo + u.rng.Float64()*(hi-lo)), nil
	case goptuna.IntUniformDistribution:
		return float64(d.Low + u.rng.IntN(d.High-d.Low+1)), nil
	case goptuna.StepIntUniformDistribution:
		return float64(d.Low + u.rng.IntN((d.High-d.Low)/d.Step+1)*d.Step), nil
	case goptuna.DiscreteUniformDistribution:
		n := int(math.Floor((d.High-d.Low)/d.Q + 1e-9))
		return math.Min(d.Low+float64(u.rng.IntN(n+1))*d.Q, d.High), nil
	case goptuna.CategoricalDistribution:
		return float64(u.rng.IntN(len(d.Choices))), nil
	}
	return 0, goptuna.ErrUnknownDistribution
}

// tpeStartup is the number of trials with a parameter before TPE models
// it; until then its values are drawn uniformly.
const tpeStartup = 10

// tpeSampler is Goptuna's TPE with floodtune's uniform draws during the
// start-up trials.
type tpeSampler struct {
	tpe     *tpe.Sampler
	uniform *uniform
}

func newTPE(seed int64) *tpeSampler {
	return &tpeSampler{tpe.NewSampler(tpe.SamplerOptionSeed(seed), tpe.SamplerOptionNumberOfStartupTrials(tpeStartup)), newUniform(seed)}
}

// Sample implements goptuna.Sampler.
func (s *tpeSampler) Sample(study *goptuna.Study, trial goptuna.FrozenTrial, name string, dist any) (float64, error) {
	trials, err := study.GetTrials()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, t := range trials {
		if _, ok := t.InternalParams[name]; ok && (t.State == goptuna.TrialStateComplete || t.State == goptuna.TrialStatePruned) {
			n++
		}
	}
	if n < tpeStartup {
		return s.uniform.Sample(study, trial, name, dist)
	}
	return s.tpe.Sample(study, trial, name, dist)
}

// snap puts a sampler's internal value on its distribution's grid and in
// its range: an int is whole, a stepped value on its step, a choice an
// index. A value that is not a number is an error.
func snap(dist any, v float64) (float64, error) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("the sampler proposed %v", v)
	}
	clamp := func(x, lo, hi float64) float64 { return math.Min(math.Max(x, lo), hi) }
	grid := func(x, lo, hi, step float64) float64 {
		n := math.Floor((hi-lo)/step + 1e-9)
		k := clamp(math.Round((x-lo)/step), 0, n)
		return math.Min(lo+k*step, hi)
	}
	switch d := dist.(type) {
	case goptuna.UniformDistribution:
		return clamp(v, d.Low, d.High), nil
	case goptuna.LogUniformDistribution:
		return clamp(v, d.Low, d.High), nil
	case goptuna.IntUniformDistribution:
		return clamp(math.Round(v), float64(d.Low), float64(d.High)), nil
	case goptuna.StepIntUniformDistribution:
		return grid(v, float64(d.Low), float64(d.High), float64(d.Step)), nil
	case goptuna.DiscreteUniformDistribution:
		return grid(v, d.Low, d.High, d.Q), nil
	case goptuna.CategoricalDistribution:
		return clamp(math.Round(v), 0, float64(len(d.Choices)-1)), nil
	}
	return 0, goptuna.ErrUnknownDistribution
}

// intersection is the search space that every complete trial shares: the
// parameters they all have, with the same distribution (Goptuna's own
// compares distributions with ==, which panics on a categorical one).
func intersection(trials []goptuna.FrozenTrial) map[string]any {
	var space map[string]any
	for _, t := range trials {
		if t.State != goptuna.TrialStateComplete {
			continue
		}
		if space == nil {
			space = make(map[string]any, len(t.Distributions))
			for name, d := range t.Distributions {
				space[name] = d
			}
			continue
		}
		for name, d := range space {
			if other, ok := t.Distributions[name]; !ok || !reflect.DeepEqual(other, d) {
				delete(space, name)
			}
		}
	}
	return space
}

// relativeParams asks CMA-ES for the numeric parameters of a trial, all
// at once; nil when it has none to give yet. Goptuna's CMA-ES minimises
// whatever the study's direction and searches with one step size for all
// dimensions, so it sees the study through cmaView: values negated for a
// maximised study, and every parameter mapped onto [0, 1] (a log range on
// its log scale, a grid widened by half a step on both sides, so that snap
// reaches its ends as often as its inside).
func relativeParams(b bound, maximize bool, rel goptuna.RelativeSampler, trial goptuna.FrozenTrial) (map[string]float64, map[string]any, error) {
	trials, err := b.GetAllTrials(b.id)
	if err != nil {
		return nil, nil, err
	}
	space := map[string]any{}
	axes := map[string]axis{}
	for name, d := range intersection(trials) {
		if single, _ := goptuna.DistributionIsSingle(d); single {
			continue
		}
		switch d := d.(type) {
		case goptuna.UniformDistribution:
			axes[name] = axis{lo: d.Low, hi: d.High}
		case goptuna.LogUniformDistribution:
			axes[name] = axis{lo: math.Log(d.Low), hi: math.Log(d.High), log: true}
		case goptuna.IntUniformDistribution:
			axes[name] = axis{lo: float64(d.Low) - 0.5, hi: float64(d.High) + 0.5}
		case goptuna.StepIntUniformDistribution:
			half := float64(d.Step) / 2
			axes[name] = axis{lo: float64(d.Low) - half, hi: float64(d.High) + half}
		case goptuna.DiscreteUniformDistribution:
			axes[name] = axis{lo: d.Low - d.Q/2, hi: d.High + d.Q/2}
		default:
			continue
		}
		space[name] = d
	}
	if len(space) == 0 {
		return nil, nil, nil
	}
	box := make(map[string]any, len(space))
	for name := range space {
		box[name] = goptuna.UniformDistribution{Low: 0, High: 1}
	}
	b.Storage, b.dir = cmaView{b.Storage, maximize, axes}, goptuna.StudyDirectionMinimize
	study, err := goptuna.LoadStudy(b.name, goptuna.StudyOptionStorage(b), goptuna.StudyOptionRelativeSampler(rel), goptuna.StudyOptionLogger(nil))
	if err != nil {
		return nil, nil, err
	}
	unit, err := rel.SampleRelative(study, trial, box)
	if errors.Is(err, goptuna.ErrUnsupportedSearchSpace) || unit == nil {
		return nil, nil, nil
	} else if err != nil {
		return nil, nil, err
	}
	params := make(map[string]float64, len(unit))
	for name, u := range unit {
		params[name] = axes[name].from(u)
	}
	return params, space, nil
}

// axis maps a parameter's range onto [0, 1] for CMA-ES.
type axis struct {
	lo, hi float64 // on the log scale for log
	log    bool
}

func (a axis) to(x float64) float64 {
	if a.log {
		x = math.Log(x)
	}
	return (x - a.lo) / (a.hi - a.lo)
}

func (a axis) from(u float64) float64 {
	x := a.lo + u*(a.hi-a.lo)
	if a.log {
		x = math.Exp(x)
	}
	return x
}

// cmaView is a study as CMA-ES sees it (see relativeParams).
type cmaView struct {
	goptuna.Storage
	maximize bool
	axes     map[string]axis
}

func (v cmaView) GetAllTrials(studyID int) ([]goptuna.FrozenTrial, error) {
	trials, err := v.Storage.GetAllTrials(studyID)
	if err != nil {
		return nil, err
	}
	out := make([]goptuna.FrozenTrial, len(trials))
	for i, t := range trials {
		if v.maximize {
			t.Value = -t.Value
		}
		// The maps are shared with the storage's cache: copy, then map.
		params := make(map[string]float64, len(t.InternalParams))
		dists := make(map[string]any, len(t.Distributions))
		for name, x := range t.InternalParams {
			params[name], dists[name] = x, t.Distributions[name]
			if a, ok := v.axes[name]; ok {
				params[name], dists[name] = a.to(x), goptuna.UniformDistribution{Low: 0, High: 1}
			}
		}
		t.InternalParams, t.Distributions = params, dists
		out[i] = t
	}
	return out, nil
}
