package search

import (
	"fmt"
	"slices"
)

// SuggestOption refines a suggested range: Log or Step.
type SuggestOption func(*Param)

// Log samples the range on a log scale (floats with low > 0).
func Log() SuggestOption { return func(p *Param) { p.Log = true } }

// Step samples the range on the grid low, low+step, ..., high.
func Step(step float64) SuggestOption { return func(p *Param) { p.Step = &step } }

// SuggestFloat returns the value of the float option name in [low, high],
// define-by-run: the first call in a trial samples it with the study's
// sampler (or takes the value the trial was enqueued or retried with) and
// records it; a later call with the same range returns the same value. An
// option the spec searches returns the value already chosen, if the range
// is the spec's.
func (t *Trial) SuggestFloat(name string, low, high float64, opts ...SuggestOption) (float64, error) {
	p := Param{Type: Float, Low: &low, High: &high}
	for _, o := range opts {
		o(&p)
	}
	v, err := t.suggest(name, p)
	if err != nil {
		return 0, err
	}
	return v.(float64), nil
}

// SuggestInt returns the value of the int option name in [low, high] (Step
// applies); see SuggestFloat.
func (t *Trial) SuggestInt(name string, low, high int, opts ...SuggestOption) (int, error) {
	lo, hi := float64(low), float64(high)
	p := Param{Type: Int, Low: &lo, High: &hi}
	for _, o := range opts {
		o(&p)
	}
	v, err := t.suggest(name, p)
	if err != nil {
		return 0, err
	}
	return v.(int), nil
}

// SuggestCategorical returns one of choices for the option name; see
// SuggestFloat.
func (t *Trial) SuggestCategorical(name string, choices []string) (string, error) {
	p := Param{Type: Categorical, Choices: slices.Clone(choices)}
	v, err := t.suggest(name, p)
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

func (t *Trial) suggest(name string, p Param) (any, error) {
	if !validName.MatchString(name) {
		return nil, fmt.Errorf("suggest %q: not a name (letters, digits, _ . -, starting with a letter or _, at most 64)", name)
	}
	if probs := p.problems(); len(probs) > 0 {
		return nil, fmt.Errorf("suggest %s: %s", name, probs[0])
	}
	if err := t.check(); err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if prev, ok := t.spaces[name]; ok {
		if !sameSpace(prev, p) {
			return nil, fmt.Errorf("suggest %s: already in trial %d over %s, now asked over %s", name, t.Number, prev.describeFull(), p.describeFull())
		}
		return t.Params[name], nil
	}
	v, err := t.draw(name, p)
	if err != nil {
		return nil, fmt.Errorf("suggest %s in trial %d: %w", name, t.Number, err)
	}
	t.Params[name], t.spaces[name] = v, p
	return v, nil
}

// sameSpace reports whether two parameters search the same space.
func sameSpace(a, b Param) bool {
	eq := func(x, y *float64) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	return a.Type == b.Type && a.Log == b.Log && eq(a.Low, b.Low) && eq(a.High, b.High) && eq(a.Step, b.Step) &&
		slices.Equal(a.Choices, b.Choices)
}

// describeFull describes a space with its scale and step.
func (p Param) describeFull() string {
	d := p.Type + " " + p.describe()
	if p.Log {
		d += " log"
	}
	if p.Step != nil {
		d += fmt.Sprintf(" step %v", *p.Step)
	}
	return d
}
