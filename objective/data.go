package objective

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
)

// ErrDatasetNotFound is wrapped by LoadDataset when the files of a dataset
// (MNIST's idx files, the files of an idx dataset, a csv file) are missing.
var ErrDatasetNotFound = errors.New("dataset not found")

// Split is one part of a dataset: N rows of Features float32 values,
// row-major, and a label in [0, Classes).
type Split struct {
	X []float32 // len N*Features
	Y []int32   // len N
	N int
}

// Data is a dataset ready for training.
type Data struct {
	Name             string
	Features         int
	Classes          int
	Train, Val, Test Split
	// NoisyTrain, NoisyVal: how many labels label noise changed in each split.
	NoisyTrain, NoisyVal int
	// Image is the shape of a row when the rows are images (mnist, idx):
	// Features = Channels·Height·Width values, channel by channel, each
	// channel row by row. It is zero for data that are not images.
	Image ImageShape
}

// ImageShape is the shape of one image: Channels × Height × Width.
type ImageShape struct {
	Channels, Height, Width int
}

// IsZero reports whether the shape is unset (the rows are not images).
func (s ImageShape) IsZero() bool { return s == ImageShape{} }

// String is the shape as C×H×W.
func (s ImageShape) String() string { return fmt.Sprintf("%d×%d×%d", s.Channels, s.Height, s.Width) }

// DatasetSpec says which dataset to build and how.
//
// TrainSize is always the number of training rows (Data.Train.N) when it is
// given. When ValSize is not given with it, ValSize is derived from
// ValFraction so that train and validation split the pool in the proportion
// (1-ValFraction):ValFraction, e.g. TrainSize 800 gives 200 validation rows.
// For mnist, idx and csv the TrainSize+ValSize rows are a seeded subsample
// of the available training pool. Without TrainSize the whole pool is split.
//
// An idx dataset is any dataset shipped in MNIST's IDX format of unsigned
// bytes (Fashion-MNIST, Kuzushiji-MNIST, EMNIST), named either
// "idx:DIR", a directory holding the training images, training labels,
// test images and test labels files under MNIST's names
// (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte,
// t10k-labels-idx1-ubyte, or names ending in them, "test" for "t10k",
// idx4 for images with channels, each gzipped or not), or
// "idx:TRAIN_IMAGES,TRAIN_LABELS,TEST_IMAGES,TEST_LABELS", the four files
// themselves (a path with commas is such a list unless it is an existing
// directory). Its classes are the labels found: the largest plus one.
type DatasetSpec struct {
	Name         string  // "mnist", "gauss2d", "sinusoid2d", "spiral", "csv:PATH", "idx:DIR" or "idx:TRAIN_IMAGES,TRAIN_LABELS,TEST_IMAGES,TEST_LABELS"
	TrainSize    int     // 0: dataset default
	ValSize      int     // 0: ValFraction of the training pool
	TestSize     int     // 0: dataset default
	ValFraction  float64 // 0 means 0.2
	LabelNoise   float64 // symmetric label noise rate in [0,1): train and validation only, never test
	Seed         int64   // seeds generation, split and noise
	DataDir      string  // mnist: directory with the four idx .gz files; "" searches
	TestCSV      string  // csv: optional separate test file; without it TestFraction of the rows are held out
	TestFraction float64 // csv: 0 means 0.2
}

// Dataset kinds, as named in DatasetSpec.Name.
const (
	kindMNIST      = "mnist"
	kindGauss2D    = "gauss2d"
	kindSinusoid2D = "sinusoid2d"
	kindSpiral     = "spiral"
	kindCSV        = "csv"
	csvPrefix      = "csv:"
	kindIdx        = "idx"
	idxPrefix      = "idx:"
	knownDatasets  = "mnist, gauss2d, sinusoid2d, spiral, csv:PATH, idx:DIR"
)

const (
	defaultValFraction  = 0.2
	defaultTestFraction = 0.2
	// maxDatasetRows bounds every size in a spec, so that a typo cannot ask for
	// gigabytes of synthetic data.
	maxDatasetRows = 1 << 27
)

// Independent random streams derived from DatasetSpec.Seed. Each phase has
// its own stream so that, for one seed, the split does not depend on the
// noise rate and the test set does not depend on the training sizes.
const (
	streamGenerate   uint64 = 0x67656e6572617465 // synthetic training pool
	streamTest       uint64 = 0x746573747365747e // synthetic test set, test subsample
	streamSplit      uint64 = 0x73706c6974706f6f // pool subsample and train/val split
	streamNoiseTrain uint64 = 0x6e6f697365747261 // label noise in train
	streamNoiseVal   uint64 = 0x6e6f69736576616c // label noise in validation
	streamHoldOut    uint64 = 0x686f6c646f757421 // csv test hold-out
)

// newRand is also used by the training loop (train.go) with its own streams.
func newRand(seed int64, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed), stream))
}

// kind returns the dataset kind named by s.Name ("" when unknown) and, for
// csv and idx, the path.
func (s DatasetSpec) kind() (kind, path string) {
	switch s.Name {
	case kindMNIST, kindGauss2D, kindSinusoid2D, kindSpiral:
		return s.Name, ""
	}
	if p, ok := strings.CutPrefix(s.Name, csvPrefix); ok {
		return kindCSV, p
	}
	if p, ok := strings.CutPrefix(s.Name, idxPrefix); ok {
		return kindIdx, p
	}
	return "", ""
}

// knownClasses returns the number of classes of the dataset when it is known
// before loading it, and 0 otherwise (csv, idx): label noise is then
// checked against the classes found when the data are loaded.
func knownClasses(kind string) int {
	switch kind {
	case kindMNIST:
		return mnistClasses
	case kindGauss2D, kindSinusoid2D, kindSpiral:
		return 2
	}
	return 0
}

func (s DatasetSpec) valFraction() float64 {
	if s.ValFraction == 0 {
		return defaultValFraction
	}
	return s.ValFraction
}

func (s DatasetSpec) testFraction() float64 {
	if s.TestFraction == 0 {
		return defaultTestFraction
	}
	return s.TestFraction
}

// Validate reports every problem of the spec in one error, or nil.
func (s DatasetSpec) Validate() error {
	var probs []string
	add := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }

	kind, path := s.kind()
	switch {
	case kind == "" && s.Name == "":
		add("no dataset name (known: %s)", knownDatasets)
	case kind == "":
		add("unknown dataset %q (known: %s)", s.Name, knownDatasets)
	case kind == kindCSV && strings.TrimSpace(path) == "":
		add("csv dataset without a path (want csv:PATH)")
	case kind == kindIdx:
		if _, _, err := parseIdxSource(path); err != nil {
			add("%v", err)
		}
	}

	sizesOK := true
	for _, f := range []struct {
		name string
		v    int
	}{{"train size", s.TrainSize}, {"validation size", s.ValSize}, {"test size", s.TestSize}} {
		switch {
		case f.v < 0:
			add("%s %d is negative", f.name, f.v)
			sizesOK = false
		case f.v > maxDatasetRows:
			add("%s %d is too large (at most %d)", f.name, f.v, maxDatasetRows)
			sizesOK = false
		}
	}
	if s.ValFraction != 0 && !(s.ValFraction > 0 && s.ValFraction < 1) {
		add("validation fraction %v not in (0, 1)", s.ValFraction)
		sizesOK = false
	}
	if s.TestFraction != 0 && !(s.TestFraction > 0 && s.TestFraction < 1) {
		add("test fraction %v not in (0, 1)", s.TestFraction)
	}

	if err := checkLabelNoise(s.LabelNoise, knownClasses(kind)); err != nil {
		add("%v", err)
	}

	if kind != "" && kind != kindCSV {
		if s.TestCSV != "" {
			add("test csv %q given for dataset %q, which is not a csv dataset", s.TestCSV, s.Name)
		}
		if s.TestFraction != 0 {
			add("test fraction given for dataset %q, which is not a csv dataset (use test size)", s.Name)
		}
	}
	if kind != "" && kind != kindMNIST && s.DataDir != "" {
		hint := ""
		if kind == kindIdx {
			hint = " (an idx dataset names its directory: idx:DIR)"
		}
		add("data directory %q given for dataset %q, which is not mnist%s", s.DataDir, s.Name, hint)
	}

	if sizesOK && isSynthetic(kind) {
		if _, _, err := trainValSizes(s, syntheticPoolSize(s)); err != nil {
			add("%v", err)
		}
	}

	if len(probs) > 0 {
		return errors.New("dataset spec: " + strings.Join(probs, "; "))
	}
	return nil
}

// checkLabelNoise checks a label noise rate; classes is 0 when not known yet.
func checkLabelNoise(noise float64, classes int) error {
	if math.IsNaN(noise) || noise < 0 || noise >= 1 {
		return fmt.Errorf("label noise %v not in [0, 1)", noise)
	}
	if classes >= 2 {
		if limit := float64(classes-1) / float64(classes); noise >= limit {
			return fmt.Errorf("label noise %v too high for %d classes: must be below %.4g so that the true class stays the most frequent label", noise, classes, limit)
		}
	}
	return nil
}

// LoadDataset validates s and builds the dataset it describes.
// Errors name the dataset; missing files wrap ErrDatasetNotFound.
func LoadDataset(ctx context.Context, s DatasetSpec) (*Data, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	kind, path := s.kind()
	switch kind {
	case kindMNIST:
		return loadMNIST(ctx, s)
	case kindCSV:
		return loadCSV(ctx, s, path)
	case kindIdx:
		return loadIdx(ctx, s, path)
	default:
		return loadSynthetic(ctx, s, kind)
	}
}

// IrreducibleLoss is the expected cross-entropy of the best possible
// classifier under symmetric label noise η over K classes:
// −(1−η)·ln(1−η) − η·ln(η/(K−1)). It is 0 at η=0 and NaN when η is NaN or
// outside [0, 1] or when classes < 2 (with η > 0).
func IrreducibleLoss(noise float64, classes int) float64 {
	switch {
	case math.IsNaN(noise) || noise < 0 || noise > 1:
		return math.NaN()
	case noise == 0:
		return 0
	case classes < 2:
		return math.NaN()
	}
	clean := 0.0 // (1−η)·ln(1−η) → 0 as η → 1
	if noise < 1 {
		clean = (1 - noise) * math.Log1p(-noise)
	}
	return -clean - noise*math.Log(noise/float64(classes-1))
}

// trainValSizes returns the number of training and validation rows drawn from a
// pool of avail rows.
func trainValSizes(s DatasetSpec, avail int) (nTrain, nVal int, err error) {
	vf := s.valFraction()
	if s.TrainSize > 0 {
		nTrain, nVal = s.TrainSize, s.ValSize
		if nVal == 0 {
			nVal = int(math.Round(float64(nTrain) * vf / (1 - vf)))
		}
		if nTrain+nVal > avail {
			return 0, 0, fmt.Errorf("train size %d plus validation size %d is %d rows, but the training pool has only %d",
				nTrain, nVal, nTrain+nVal, avail)
		}
	} else {
		nVal = s.ValSize
		if nVal == 0 {
			nVal = int(math.Round(float64(avail) * vf))
		}
		if nVal > avail {
			return 0, 0, fmt.Errorf("validation size %d is larger than the training pool of %d rows", nVal, avail)
		}
		nTrain = avail - nVal
	}
	if nTrain < 1 || nVal < 1 {
		return 0, 0, fmt.Errorf("training pool too small: %d train and %d validation rows, need at least 1 of each", nTrain, nVal)
	}
	return nTrain, nVal, nil
}

// labelledRows is a table of labelled rows from which splits are gathered.
type labelledRows interface {
	len() int
	// copyRow writes row i, as float32 features, into dst.
	copyRow(dst []float32, i int)
	label(i int) int32
}

// floatRows are rows already held as float32 values.
type floatRows struct {
	x        []float32
	y        []int32
	features int
}

func (r floatRows) len() int { return len(r.y) }

func (r floatRows) copyRow(dst []float32, i int) {
	copy(dst, r.x[i*r.features:(i+1)*r.features])
}

func (r floatRows) label(i int) int32 { return r.y[i] }

// gatherRows copies the rows idx of r, in that order, into a new Split.
func gatherRows(r labelledRows, features int, idx []int) Split {
	sp := Split{X: make([]float32, len(idx)*features), Y: make([]int32, len(idx)), N: len(idx)}
	for k, i := range idx {
		r.copyRow(sp.X[k*features:(k+1)*features], i)
		sp.Y[k] = r.label(i)
	}
	return sp
}

// allRowsInOrder gathers every row of r in order.
func allRowsInOrder(r labelledRows, features int) Split {
	idx := make([]int, r.len())
	for i := range idx {
		idx[i] = i
	}
	return gatherRows(r, features, idx)
}

// subsampleRows returns the rows of r as a Split: all of them in order when
// size is 0 or the pool size, else a seeded sample of size rows.
func subsampleRows(r labelledRows, features, size int, rng *rand.Rand) Split {
	if size == 0 || size == r.len() {
		return allRowsInOrder(r, features)
	}
	return gatherRows(r, features, rng.Perm(r.len())[:size])
}

// assembleData splits pool into train and validation, adds label noise to both,
// and returns the finished Data.
func assembleData(ctx context.Context, s DatasetSpec, features, classes int, pool labelledRows, test Split) (*Data, error) {
	if err := checkLabelNoise(s.LabelNoise, classes); err != nil {
		return nil, fmt.Errorf("%s: %w", s.Name, err)
	}
	nTrain, nVal, err := trainValSizes(s, pool.len())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Name, err)
	}
	perm := newRand(s.Seed, streamSplit).Perm(pool.len())
	d := &Data{
		Name:     s.Name,
		Features: features,
		Classes:  classes,
		Train:    gatherRows(pool, features, perm[:nTrain]),
		Val:      gatherRows(pool, features, perm[nTrain:nTrain+nVal]),
		Test:     test,
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.NoisyTrain = addLabelNoise(d.Train.Y, s.LabelNoise, classes, newRand(s.Seed, streamNoiseTrain))
	d.NoisyVal = addLabelNoise(d.Val.Y, s.LabelNoise, classes, newRand(s.Seed, streamNoiseVal))
	return d, nil
}

// addLabelNoise replaces exactly round(noise·len(y)) labels, chosen by a
// seeded permutation, with a uniformly chosen other class, and returns how
// many it changed.
func addLabelNoise(y []int32, noise float64, classes int, rng *rand.Rand) int {
	m := int(math.Round(noise * float64(len(y))))
	if m == 0 || classes < 2 {
		return 0
	}
	for _, i := range rng.Perm(len(y))[:m] {
		// Adding 1..K-1 modulo K reaches every other class exactly once.
		y[i] = int32((int(y[i]) + 1 + rng.IntN(classes-1)) % classes)
	}
	return m
}
