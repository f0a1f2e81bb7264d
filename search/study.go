package search

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/c-bata/goptuna"
	"github.com/floodtune/floodtune/objective"
	"github.com/floodtune/floodtune/storage"
)

// System attributes that the search records on trials.
const (
	SeedAttr        = "seed"         // the trial's seed (model initialisation, batch order)
	SamplerSeedAttr = "sampler_seed" // the seed of the sampler that chose its parameters
	BaselineAttr    = "baseline"     // "true" on the plain-training trial enqueued first
	ReasonAttr      = storage.FailReasonAttr
)

// User attributes of the built-in objective's trials that hold per-epoch
// curves (FormatCurve, ParseCurve): the training loss (unflooded, the
// mean over the epoch's minibatches) and the validation loss always, the
// test loss and accuracy with training.test_curve.
const (
	TrainLossCurveAttr = "train_loss_curve"
	ValLossCurveAttr   = "val_loss_curve"
	TestLossCurveAttr  = "test_loss_curve"
	TestAccCurveAttr   = "test_acc_curve"
)

// FormatCurve writes f of each epoch as a JSON array of numbers, six
// significant digits each.
func FormatCurve(history []objective.EpochReport, f func(objective.EpochReport) float64) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, e := range history {
		if i > 0 {
			b.WriteByte(',')
		}
		v := f(e)
		if math.IsNaN(v) || math.IsInf(v, 0) {
			b.WriteString("null")
			continue
		}
		b.WriteString(strconv.FormatFloat(v, 'g', 6, 64))
	}
	b.WriteByte(']')
	return b.String()
}

// ParseCurve reads a curve that FormatCurve wrote; null reads as NaN.
func ParseCurve(s string) ([]float64, error) {
	var raw []*float64
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return nil, fmt.Errorf("a curve: %w", err)
	}
	out := make([]float64, len(raw))
	for i, v := range raw {
		out[i] = math.NaN()
		if v != nil {
			out[i] = *v
		}
	}
	return out, nil
}

// ErrBadSpec wraps a spec's problems when a study is created.
var ErrBadSpec = errors.New("bad study spec")

// Create validates spec and creates the study name in st with the spec's
// budget and seed; unless the spec says otherwise, it enqueues the baseline
// trial: plain training (flood level 0), the other searched options at their
// fixed values (or their lowest). A centred flood-level range (see
// Param.Center) is resolved in spec first, and a trial at its estimate is
// enqueued. Nothing is written when the spec is bad.
func Create(ctx context.Context, st *storage.Store, name string, spec *Spec) (*storage.Study, error) {
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSpec, err)
	}
	centred, err := spec.resolveCenter(ctx)
	if err != nil {
		return nil, fmt.Errorf("centre the flood-level range of study %q: %w", name, err)
	}
	if centred {
		if err := spec.Validate(); err != nil {
			return nil, fmt.Errorf("%w: the centred range: %w", ErrBadSpec, err)
		}
	}
	raw, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("encode the spec of study %q: %w", name, err)
	}
	dir := storage.Maximize
	if spec.Direction() == "minimize" {
		dir = storage.Minimize
	}
	study, err := st.CreateStudy(ctx, storage.NewStudy{Name: name, Direction: dir, Spec: raw, Budget: spec.Search.Trials, Seed: spec.Search.Seed})
	if err != nil {
		return nil, err
	}
	if spec.WithBaseline() {
		values := spec.baselineValues()
		if _, err := Enqueue(ctx, st, study, spec, values, map[string]string{BaselineAttr: "true"}); err != nil {
			return study, fmt.Errorf("enqueue the baseline trial of study %q: %w", name, err)
		}
	}
	if p := spec.Space["flood_level"]; p.Estimate != nil {
		values := spec.baselineValues()
		values["flood_level"] = *p.Estimate
		if _, err := Enqueue(ctx, st, study, spec, values, map[string]string{EstimateAttr: p.Center}); err != nil {
			return study, fmt.Errorf("enqueue the trial at the estimated flood level of study %q: %w", name, err)
		}
	}
	return study, nil
}

// baselineValues are the values of the baseline trial: flood level 0, each
// other searched option at its fixed value, else its first choice or the
// middle of its range (geometric for a log scale), so that plain training
// is not judged at an extreme.
func (s *Spec) baselineValues() map[string]any {
	fixed := s.fixedNames()
	values := map[string]any{}
	for name, p := range s.Space {
		switch {
		case name == "flood_level":
			values[name] = 0.0
		case fixed[name] != nil:
			values[name] = fixed[name]
		case p.Type == Categorical:
			values[name] = p.Choices[0]
		default:
			values[name] = p.middle()
		}
	}
	return values
}

// Enqueue adds a waiting trial with the given values of searched options
// (a value outside its space is an error; options not given are sampled).
func Enqueue(ctx context.Context, st *storage.Store, study *storage.Study, spec *Spec, values map[string]any, attrs map[string]string) (*storage.Trial, error) {
	fixed := map[string]float64{}
	names := make([]string, 0, len(values))
	for name := range values {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		p, ok := spec.Space[name]
		if !ok {
			return nil, fmt.Errorf("%s is not searched in study %q", name, study.Name)
		}
		internal, err := p.internal(values[name])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		fixed[name] = internal
	}
	b, err := json.Marshal(fixed)
	if err != nil {
		return nil, err
	}
	sys := map[string]string{storage.FixedParamsAttr: string(b)}
	for k, v := range attrs {
		sys[k] = v
	}
	return st.CreateTrial(ctx, study.ID, storage.NewTrial{State: storage.Waiting, Value: math.NaN(), SystemAttrs: sys})
}

// internal returns Goptuna's internal representation of v: the number
// itself, or a categorical choice's index.
func (p Param) internal(v any) (float64, error) {
	if !p.holds(v) {
		return 0, fmt.Errorf("%v is outside the space (%s)", v, p.describe())
	}
	if p.Type == Categorical {
		for i, c := range p.Choices {
			if c == fmt.Sprint(v) {
				return float64(i), nil
			}
		}
	}
	return toFloat(v)
}

// distribution returns the Goptuna distribution of the parameter.
func (p Param) distribution() interface{} {
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

// suggest asks Goptuna for the parameter's value in trial t.
func (p Param) suggest(t goptuna.Trial, name string) (any, error) {
	switch {
	case p.Type == Categorical:
		return t.SuggestCategorical(name, p.Choices)
	case p.Type == Int && p.Step != nil:
		return t.SuggestStepInt(name, int(*p.Low), int(*p.High), int(*p.Step))
	case p.Type == Int:
		return t.SuggestInt(name, int(*p.Low), int(*p.High))
	case p.Log:
		return t.SuggestLogFloat(name, *p.Low, *p.High)
	case p.Step != nil:
		return t.SuggestDiscreteFloat(name, *p.Low, *p.High, *p.Step)
	}
	return t.SuggestFloat(name, *p.Low, *p.High)
}

// TrialSeed derives a trial's seed from the study's seed and the trial's
// number.
func TrialSeed(studySeed int64, number int) int64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "floodtune/%d/%d", studySeed, number)
	return int64(h.Sum64() >> 1)
}

// LoadSpec returns the spec stored with a study.
func LoadSpec(study *storage.Study) (*Spec, error) {
	var s Spec
	if err := json.Unmarshal(study.Spec, &s); err != nil {
		return nil, fmt.Errorf("read the spec of study %q: %w", study.Name, err)
	}
	return &s, nil
}

// middle returns the middle of a float or int parameter's range, on its
// scale and step grid.
func (p Param) middle() float64 {
	lo, hi := *p.Low, *p.High
	m := (lo + hi) / 2
	if p.Log {
		m = math.Sqrt(lo * hi)
	}
	if p.Step != nil {
		m = lo + math.Round((m-lo)/(*p.Step))**p.Step
	}
	if p.Type == Int {
		m = math.Round(m)
	}
	return math.Min(math.Max(m, lo), hi)
}
