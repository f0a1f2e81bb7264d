package search

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/c-bata/goptuna"
	"github.com/floodtune/floodtune/storage"
)

// ErrOutsideSpace is matched (errors.Is) by every *SpaceError.
var ErrOutsideSpace = errors.New("value outside the search space")

// SpaceError says that a value given for a searched option (to Enqueue, to
// ParseValue) is not in its space: outside the range, off the step grid,
// not a whole number for an int, not one of the choices.
type SpaceError struct {
	Param string // the option's name
	Value any    // the value given
	Space string // the option's space, as the spec describes it
	Why   string // what is wrong with it
}

func (e *SpaceError) Error() string {
	return fmt.Sprintf("%s: %v %s", e.Param, e.Value, e.Why)
}

// Is makes errors.Is(err, ErrOutsideSpace) hold.
func (e *SpaceError) Is(target error) bool { return target == ErrOutsideSpace }

// ParseValue parses the text of a value of the searched option name (a
// number, or a categorical choice) and checks that it lies in its space;
// see Value.
func (s *Spec) ParseValue(name, raw string) (any, error) {
	p, ok := s.Space[name]
	if !ok {
		return nil, fmt.Errorf("%s is not searched (searched: %s)", name, s.searchedNames())
	}
	raw = strings.TrimSpace(raw)
	if p.Type == Categorical {
		return p.value(name, raw)
	}
	f, err := strconv.ParseFloat(raw, 64)
	if err != nil {
		return nil, &SpaceError{Param: name, Value: strconv.Quote(raw), Space: p.describe(), Why: "is not a number"}
	}
	return p.value(name, f)
}

// searchedNames lists the searched options, for messages.
func (s *Spec) searchedNames() string {
	names := slices.Sorted(maps.Keys(s.Space))
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// value checks v against the parameter's space and returns it in its
// external form: a float64, an int, or a categorical choice.
func (p Param) value(name string, v any) (any, error) {
	bad := func(why string) error { return &SpaceError{Param: name, Value: v, Space: p.describe(), Why: why} }
	if p.Type == Categorical {
		for _, c := range p.Choices {
			if c == fmt.Sprint(v) {
				return c, nil
			}
		}
		return nil, bad("is not one of the choices " + strings.Join(p.Choices, ", "))
	}
	f, err := toFloat(v)
	switch {
	case err != nil || math.IsNaN(f) || math.IsInf(f, 0):
		return nil, bad("is not a finite number")
	case p.Low == nil || p.High == nil || f < *p.Low || f > *p.High:
		return nil, bad("is outside the space " + p.describe())
	case p.Type == Int && f != math.Trunc(f):
		return nil, bad("is not a whole number")
	}
	if p.Step != nil && *p.Step > 0 {
		k := (f - *p.Low) / *p.Step
		if math.Abs(k-math.Round(k)) > 1e-9 {
			return nil, bad(fmt.Sprintf("is not on the space's grid %v, %v, ... (step %v)", *p.Low, *p.Low+*p.Step, *p.Step))
		}
	}
	if p.Type == Int {
		return int(f), nil
	}
	return f, nil
}

// internal returns Goptuna's internal representation of v, a value of the
// option name: the number itself, or a categorical choice's index.
func (p Param) internal(name string, v any) (float64, error) {
	ext, err := p.value(name, v)
	if err != nil {
		return 0, err
	}
	switch x := ext.(type) {
	case string:
		for i, c := range p.Choices {
			if c == x {
				return float64(i), nil
			}
		}
	case int:
		return float64(x), nil
	}
	return ext.(float64), nil
}

// TrialParams returns a stored trial's parameters in their external form (a
// float64, an int, or a categorical choice): those sampled or suggested so
// far, read through their stored distributions, and, for a trial that has
// not started, the values it was enqueued with.
func (s *Spec) TrialParams(t *storage.Trial) (map[string]any, error) {
	out, err := DecodeParams(t)
	if err != nil {
		return nil, err
	}
	raw, ok := t.SystemAttrs[storage.FixedParamsAttr]
	if !ok {
		return out, nil
	}
	var fixed map[string]float64
	if err := json.Unmarshal([]byte(raw), &fixed); err != nil {
		return nil, fmt.Errorf("the enqueued parameters of trial %d: %w", t.Number, err)
	}
	for name, internal := range fixed {
		if _, sampled := out[name]; sampled {
			continue
		}
		p, ok := s.Space[name]
		if !ok {
			out[name] = internal
			continue
		}
		switch p.Type {
		case Categorical:
			c, err := choice(p.Choices, internal)
			if err != nil {
				return nil, fmt.Errorf("the enqueued parameter %q of trial %d: %w", name, t.Number, err)
			}
			out[name] = c
		case Int:
			out[name] = int(math.Round(internal))
		default:
			out[name] = internal
		}
	}
	return out, nil
}

// DecodeParams returns the parameters a trial has recorded, in their
// external form, read through their stored Goptuna distributions: a float
// parameter's internal value is its value, an int's the integer, a
// categorical's the index of its choice.
func DecodeParams(t *storage.Trial) (map[string]any, error) {
	out := make(map[string]any, len(t.Params))
	for name, p := range t.Params {
		dist, err := goptuna.JSONToDistribution(p.Distribution)
		if err != nil {
			return nil, fmt.Errorf("parameter %q of trial %d: read its distribution: %w", name, t.Number, err)
		}
		if c, ok := dist.(goptuna.CategoricalDistribution); ok {
			if _, err := choice(c.Choices, p.Value); err != nil {
				return nil, fmt.Errorf("parameter %q of trial %d: %w", name, t.Number, err)
			}
		}
		v, err := goptuna.ToExternalRepresentation(dist, p.Value)
		if err != nil {
			return nil, fmt.Errorf("parameter %q of trial %d: %w", name, t.Number, err)
		}
		out[name] = v
	}
	return out, nil
}

// choice returns the choice of index i, Goptuna's internal value of a
// categorical option, or why it is none.
func choice(choices []string, i float64) (string, error) {
	if i != math.Trunc(i) || i < 0 || int(i) >= len(choices) {
		return "", fmt.Errorf("choice index %v is outside the %d choices", i, len(choices))
	}
	return choices[int(i)], nil
}
