package flood

import (
	"errors"
	"fmt"
	"math"
	"strings"

	G "gorgonia.org/gorgonia"
)

// Method selects how the flood level is applied.
type Method string

const (
	// None is plain training: the mean loss, no flooding.
	None Method = "none"
	// Batch floods the minibatch mean loss: |J − b| + b.
	Batch Method = "flood"
	// Individual floods every sample's loss: mean(|ℓ_i − b| + b) (iFlood).
	Individual Method = "iflood"
)

// Methods lists every method, in the order they are documented.
var Methods = []Method{None, Batch, Individual}

// ErrInvalidLevel is returned for a flood level that is negative, NaN or infinite.
var ErrInvalidLevel = errors.New("flood: level must be a finite number ≥ 0")

// ParseMethod parses a method name. "batch" is accepted for Batch and
// "individual" for Individual.
func ParseMethod(s string) (Method, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "none", "":
		return None, nil
	case "flood", "batch":
		return Batch, nil
	case "iflood", "individual":
		return Individual, nil
	}
	return "", fmt.Errorf("flood: unknown method %q (want none, flood or iflood)", s)
}

// CheckLevel returns an error that is ErrInvalidLevel unless b can be used
// as a flood level: a finite number, 0 or more.
func CheckLevel(b float64) error {
	if math.IsNaN(b) || math.IsInf(b, 0) || b < 0 {
		return fmt.Errorf("%w, got %v", ErrInvalidLevel, b)
	}
	return nil
}

// Stats records what the flooded objective saw at each forward pass of the
// graph it belongs to. It is not safe for concurrent use: one graph, one
// goroutine, as with any Gorgonia machine.
type Stats struct {
	method  Method
	level   float64
	loss    float64 // the unflooded mean loss of the last pass
	ascent  float64 // share of the last pass that ascends: 0 or 1 (Batch), a fraction (Individual)
	steps   int
	ascents float64
}

// Method returns the method the objective was built with.
func (s *Stats) Method() Method { return s.method }

// Level returns the flood level b.
func (s *Stats) Level() float64 { return s.level }

// LastLoss returns the unflooded mean loss J of the last forward pass.
func (s *Stats) LastLoss() float64 { return s.loss }

// LastAscent returns the share of the last forward pass that is an ascent
// step: 1 or 0 for batch flooding (J < b or not), the fraction of samples with
// ℓ_i < b for individual flooding, 0 for None.
func (s *Stats) LastAscent() float64 { return s.ascent }

// Steps returns the number of forward passes recorded since the last Reset.
func (s *Stats) Steps() int { return s.steps }

// AscentFraction returns the mean of LastAscent over the recorded passes (the
// "flood proportion"); 0 when nothing was recorded.
func (s *Stats) AscentFraction() float64 {
	if s.steps == 0 {
		return 0
	}
	return s.ascents / float64(s.steps)
}

// Reset forgets the recorded passes.
func (s *Stats) Reset() { s.steps, s.ascents, s.loss, s.ascent = 0, 0, 0, 0 }

func (s *Stats) record(loss, ascent float64) {
	s.loss, s.ascent = loss, ascent
	s.steps++
	s.ascents += ascent
}

// Apply returns the node to minimise for the per-sample losses (a vector) under
// the given method and level b, and the Stats it records into.
//
// A scalar losses node is taken as an already averaged J; it works with None
// and Batch only, since Individual needs every sample's loss.
func Apply(losses *G.Node, m Method, b float64) (*G.Node, *Stats, error) {
	if err := CheckLevel(b); err != nil {
		return nil, nil, err
	}
	switch m {
	case None, Batch, Individual:
	default:
		return nil, nil, fmt.Errorf("flood: unknown method %q (want none, flood or iflood)", string(m))
	}
	dims := losses.Dims()
	if dims > 1 {
		return nil, nil, fmt.Errorf("flood: losses must be a vector of per-sample losses or a scalar, got shape %v", losses.Shape())
	}
	if dims == 0 && m == Individual {
		return nil, nil, errors.New("flood: individual flooding needs per-sample losses (a vector), got a scalar")
	}
	dt, err := dtypeOf(losses)
	if err != nil {
		return nil, nil, err
	}
	stats := &Stats{method: m, level: b}
	op := &floodOp{method: m, level: b, vector: dims == 1, dtype: dt, stats: stats}
	cost, err := G.ApplyOp(op, losses)
	if err != nil {
		return nil, nil, fmt.Errorf("flood: apply %s at level %v: %w", m, b, err)
	}
	return cost, stats, nil
}
