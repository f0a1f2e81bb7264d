package objective

import (
	"context"
	"math"
	"math/rand/v2"
)

// Defaults of the synthetic datasets (Ishida et al., 2020, section 4.1).
const (
	syntheticFeatures    = 2
	syntheticClasses     = 2
	syntheticDefaultPool = 1000  // split 800/200 by the default ValFraction
	syntheticDefaultTest = 20000 // clean labels, independent stream
)

func isSynthetic(kind string) bool {
	return kind == kindGauss2D || kind == kindSinusoid2D || kind == kindSpiral
}

// syntheticPoolSize is the number of training-pool points to generate:
// TrainSize plus the (given or derived) ValSize, or the default pool.
func syntheticPoolSize(s DatasetSpec) int {
	if s.TrainSize == 0 {
		return syntheticDefaultPool
	}
	nVal := s.ValSize
	if nVal == 0 {
		vf := s.valFraction()
		nVal = int(math.Round(float64(s.TrainSize) * vf / (1 - vf)))
	}
	return s.TrainSize + nVal
}

// pointFunc draws one labelled point into x (len 2) and returns its label.
type pointFunc func(rng *rand.Rand, x []float32) int32

func syntheticGenerator(kind string) pointFunc {
	switch kind {
	case kindGauss2D:
		return gauss2dPoint
	case kindSinusoid2D:
		return sinusoid2dPoint
	default:
		return spiralPoint
	}
}

// gauss2dPoint: y uniform in {0,1}, x ~ N(y·(1,1), I/10).
func gauss2dPoint(rng *rand.Rand, x []float32) int32 {
	y := int32(rng.IntN(2))
	sd := math.Sqrt(0.1)
	x[0] = float32(float64(y) + sd*rng.NormFloat64())
	x[1] = float32(float64(y) + sd*rng.NormFloat64())
	return y
}

// sinusoid2dPoint: x uniform on the disk of radius 2,
// y = 1 if 1.5·x1 + sin(1.5·x2) > 0 else 0.
// The label is computed from the stored float32 coordinates, so that it
// agrees exactly with the formula applied to the data.
func sinusoid2dPoint(rng *rand.Rand, x []float32) int32 {
	r := 2 * math.Sqrt(rng.Float64())
	theta := 2 * math.Pi * rng.Float64()
	x[0] = float32(r * math.Cos(theta))
	x[1] = float32(r * math.Sin(theta))
	return sinusoid2dLabel(x[0], x[1])
}

func sinusoid2dLabel(x1, x2 float32) int32 {
	if 1.5*float64(x1)+math.Sin(1.5*float64(x2)) > 0 {
		return 1
	}
	return 0
}

// spiralJitter is the standard deviation of the gaussian noise added to each
// coordinate of a spiral point.
const spiralJitter = 0.1

// spiralPoint draws a point of two interleaved Archimedean spiral arms:
//
//	y uniform in {0,1}, u uniform in [0,1), t = √u
//	r = 2·t, θ = 3π·t + π·y
//	x = r·(cos θ, sin θ) + N(0, 0.1²·I)
//
// Each arm makes 1.5 turns out to radius 2; the arms are π apart, so
// neighbouring passes of the two arms are 2/3 apart in radius. t = √u spreads
// the points roughly evenly along the arm, whose length grows like θ².
func spiralPoint(rng *rand.Rand, x []float32) int32 {
	y := int32(rng.IntN(2))
	t := math.Sqrt(rng.Float64())
	r := 2 * t
	theta := 3*math.Pi*t + math.Pi*float64(y)
	x[0] = float32(r*math.Cos(theta) + spiralJitter*rng.NormFloat64())
	x[1] = float32(r*math.Sin(theta) + spiralJitter*rng.NormFloat64())
	return y
}

// generatePoints draws n labelled points.
func generatePoints(point pointFunc, n int, rng *rand.Rand) floatRows {
	r := floatRows{x: make([]float32, n*syntheticFeatures), y: make([]int32, n), features: syntheticFeatures}
	for i := range n {
		r.y[i] = point(rng, r.x[i*syntheticFeatures:(i+1)*syntheticFeatures])
	}
	return r
}

func loadSynthetic(ctx context.Context, s DatasetSpec, kind string) (*Data, error) {
	point := syntheticGenerator(kind)
	pool := generatePoints(point, syntheticPoolSize(s), newRand(s.Seed, streamGenerate))
	nTest := s.TestSize
	if nTest == 0 {
		nTest = syntheticDefaultTest
	}
	test := generatePoints(point, nTest, newRand(s.Seed, streamTest))
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return assembleData(ctx, s, syntheticFeatures, syntheticClasses, pool,
		Split{X: test.x, Y: test.y, N: nTest})
}
