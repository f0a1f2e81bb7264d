package search

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/floodtune/floodtune/flood"
	"github.com/floodtune/floodtune/objective"
	"github.com/floodtune/floodtune/storage"
	"go.yaml.in/yaml/v3"
)

// Spec is a study's specification: the data, the model and training
// options that are fixed, the search's settings, and the space of the
// options that are searched. It is read from YAML or JSON (ParseSpec) or
// built in Go.
type Spec struct {
	// Trainer says what trains the trials: "builtin" (the default)
	// trains floodtune's MLP on Dataset with Model and Training; "external"
	// leaves training to the program that runs the trials (a Go objective,
	// or a client of Ask/Tell), which names its own searched options in
	// Space and may suggest more at run time (Trial.SuggestFloat, ...).
	// An external study needs no dataset; flood_level and flood keep their
	// meaning (Trial.FloodLevel, Trial.FloodMethod).
	Trainer  string           `yaml:"trainer" json:"trainer,omitempty"`
	Dataset  DatasetSpec      `yaml:"dataset" json:"dataset"`
	Model    ModelSpec        `yaml:"model" json:"model"`
	Training TrainingSpec     `yaml:"training" json:"training"`
	Search   SearchSpec       `yaml:"search" json:"search"`
	Space    map[string]Param `yaml:"space" json:"space,omitempty"`
}

// DatasetSpec names the data; see objective.DatasetSpec.
type DatasetSpec struct {
	Name       string  `yaml:"name" json:"name"`
	LabelNoise float64 `yaml:"label_noise" json:"label_noise,omitempty"`
	TrainSize  int     `yaml:"train_size" json:"train_size,omitempty"`
	ValSize    int     `yaml:"val_size" json:"val_size,omitempty"`
	TestSize   int     `yaml:"test_size" json:"test_size,omitempty"`
	DataDir    string  `yaml:"data_dir" json:"data_dir,omitempty"`
	TestCSV    string  `yaml:"test_csv" json:"test_csv,omitempty"`
}

// ModelSpec fixes the model: an MLP (Type mlp, the default) of hidden
// layers Hidden (default 500,500), or a convolutional network (Type cnn) on
// the dataset's images: the layers Conv (default objective.LeNet), then
// dense layers Hidden (default 256). Hidden and Conv may instead be
// searched (space.hidden, categorical choices such as "500,500";
// space.conv, choices in objective.ParseConv's syntax such as
// "16:5:p2:pool2,32:5:p2:pool2").
type ModelSpec struct {
	Type   ModelType             `yaml:"type" json:"type,omitempty"`
	Conv   []objective.ConvLayer `yaml:"conv" json:"conv,omitempty"`
	Hidden []int                 `yaml:"hidden" json:"hidden,omitempty"`
}

// ModelType names the built-in trainer's model family.
type ModelType string

// Model types.
const (
	ModelMLP ModelType = "mlp"
	ModelCNN ModelType = "cnn"
)

// CNN reports whether the model is a convolutional network.
func (m ModelSpec) CNN() bool { return m.Type == ModelCNN }

// defaultCNNHidden are the dense layers of a convolutional network whose
// spec gives none.
var defaultCNNHidden = []int{256}

// TrainingSpec fixes training options; an option left out takes its
// default unless it is searched.
type TrainingSpec struct {
	Optimizer   *string  `yaml:"optimizer" json:"optimizer,omitempty"`
	LR          *float64 `yaml:"lr" json:"lr,omitempty"`
	Momentum    *float64 `yaml:"momentum" json:"momentum,omitempty"`
	WeightDecay *float64 `yaml:"weight_decay" json:"weight_decay,omitempty"`
	BatchSize   *int     `yaml:"batch_size" json:"batch_size,omitempty"`
	Epochs      *int     `yaml:"epochs" json:"epochs,omitempty"`
	Flood       *string  `yaml:"flood" json:"flood,omitempty"`
	FloodLevel  *float64 `yaml:"flood_level" json:"flood_level,omitempty"`
	// TestCurve records the test loss and accuracy after every epoch (trial
	// attributes test_loss_curve and test_acc_curve), for learning curves
	// such as floodtune study plot draws; the search never reads them.
	TestCurve bool `yaml:"test_curve" json:"test_curve,omitempty"`
}

// SearchSpec sets the search.
type SearchSpec struct {
	Sampler   Sampler       `yaml:"sampler" json:"sampler,omitempty"`     // tpe (default), random, cmaes
	Pruner    Pruner        `yaml:"pruner" json:"pruner,omitempty"`       // none (default), median, successive_halving
	Trials    int           `yaml:"trials" json:"trials"`                 // the study-wide budget
	Seed      int64         `yaml:"seed" json:"seed,omitempty"`           // seeds the sampler and every trial
	Objective ObjectiveName `yaml:"objective" json:"objective,omitempty"` // val_acc (default, maximised) or val_loss (minimised); an external trainer's own name
	// Direction is maximize or minimize; by default minimize for val_loss
	// and maximize otherwise. An external trainer names it when its
	// objective is a loss.
	Direction string `yaml:"direction" json:"direction,omitempty"`
	// Baseline enqueues a plain-training trial (b = 0) first; default true.
	Baseline *bool `yaml:"baseline" json:"baseline,omitempty"`
	// EpochValue says which epochs of the built-in trainer's run make the
	// trial's value: last (the default: the final model's), best (the
	// best epoch's: the run stopped early at its best validation epoch,
	// whose test figures the trial records too), or mean_last (the mean
	// over the last EpochWindow epochs, default 3: the final model's,
	// with the epoch-to-epoch noise of a flooded run smoothed out).
	EpochValue  string `yaml:"epoch_value" json:"epoch_value,omitempty"`
	EpochWindow int    `yaml:"epoch_window" json:"epoch_window,omitempty"`
	// CommonSeed gives trials that differ only in their flood level (and
	// flooding method) one training seed: the same initial model and the
	// same batch order (common random numbers). Levels are then compared
	// without the noise of the seed, and a flooded trial follows its plain
	// counterpart exactly until its loss first drops below the level.
	// By default every trial has a seed of its own.
	CommonSeed bool `yaml:"common_seed" json:"common_seed,omitempty"`
	// Fork, with CommonSeed (default true then), starts each trial of the
	// built-in trainer from the stored state of a run of its
	// configuration at the last epoch before its flood level first
	// ascends, instead of training those epochs again (the result is the
	// same, bit for bit); CheckpointMB bounds the study's stored states
	// (default 256; 0 stores none). See Spec.Forking.
	Fork         *bool `yaml:"fork" json:"fork,omitempty"`
	CheckpointMB *int  `yaml:"checkpoint_mb" json:"checkpoint_mb,omitempty"`
	// EarlyStopping ends a built-in trainer's run once its validation
	// value stops improving.
	EarlyStopping *EarlyStopping `yaml:"early_stopping" json:"early_stopping,omitempty"`
}

// EarlyStopping ends a run once its validation value (the objective's:
// accuracy or loss) has not improved on its best by more than MinDelta for
// Patience epochs in a row. It knows flooding: a run's first epoch with
// ascents starts its count afresh, because the validation value of a
// flooded run often drops when it starts to ascend and recovers later.
// The trial's value is then taken from the epochs run (with epoch_value:
// best, the best of them: stopping loses nothing unless the run would
// have improved after Patience epochs without).
type EarlyStopping struct {
	Patience int     `yaml:"patience" json:"patience"`
	MinDelta float64 `yaml:"min_delta" json:"min_delta,omitempty"`
}

// Epoch values of a built-in trainer's trial (SearchSpec.EpochValue).
const (
	EpochLast     = "last"
	EpochBest     = "best"
	EpochMeanLast = "mean_last"
)

// defaultEpochWindow is the window of mean_last.
const defaultEpochWindow = 3

// Param is one searched option.
type Param struct {
	Type    string   `yaml:"type" json:"type"` // float, int or categorical
	Low     *float64 `yaml:"low" json:"low,omitempty"`
	High    *float64 `yaml:"high" json:"high,omitempty"`
	Log     bool     `yaml:"log" json:"log,omitempty"`
	Step    *float64 `yaml:"step" json:"step,omitempty"`
	Choices []string `yaml:"choices" json:"choices,omitempty"`
	// Center, for flood_level only, moves the range onto an estimate of
	// the training loss that flooding should hold, keeping its width
	// high − low (cut at 0): "noise" takes the irreducible loss of the
	// dataset's symmetric label noise η over K classes,
	// −(1−η)ln(1−η) − η ln(η/(K−1)); "unflooded" takes the final training
	// loss of a short run without flooding (CenterEpochs epochs, default
	// 3), which fits the clean part of the labels before it memorises the
	// noise. Create resolves it (Estimate, Low, High) and enqueues a trial
	// at the estimate. A centred range need not hold 0, so it goes without
	// the baseline trial.
	Center       string `yaml:"center" json:"center,omitempty"`
	CenterEpochs int    `yaml:"center_epochs" json:"center_epochs,omitempty"`
	// Estimate is the resolved centre; Create sets it.
	Estimate *float64 `yaml:"estimate" json:"estimate,omitempty"`
}

// Centres of a flood-level range.
const (
	CenterNoise     = "noise"
	CenterUnflooded = "unflooded"
)

// defaultCenterEpochs is the length of the unflooded run of center:
// unflooded.
const defaultCenterEpochs = 3

// Trainers.
const (
	TrainerBuiltin  = "builtin"
	TrainerExternal = "external"
)

// Directions of a study's objective (the storage's own values).
const (
	Maximize = storage.Maximize
	Minimize = storage.Minimize
)

// ObjectiveName names what a trial's value measures: the built-in
// trainer's ObjectiveValAcc (the default) or ObjectiveValLoss, or an
// external trainer's own name.
type ObjectiveName string

// The built-in trainer's objectives.
const (
	ObjectiveValAcc  ObjectiveName = "val_acc"
	ObjectiveValLoss ObjectiveName = "val_loss"
)

// Parameter types.
const (
	Float       = "float"
	Int         = "int"
	Categorical = "categorical"
)

// Limits that protect the machine from a spec's typo.
const (
	MaxTrials    = 100_000
	MaxChoices   = 1_000
	MaxSpecBytes = 1 << 20
)

// option describes a searchable option: the parameter types it may have,
// how a value is applied to a trial's configuration, and the value a spec
// fixes for it outside space, if any. Each option is listed here once.
type option struct {
	types []string
	apply func(c *objective.Config, v any) error
	fixed func(s *Spec) (any, bool)
}

// options are the options that space may search.
var options = map[string]option{
	"lr": {[]string{Float, Categorical}, setFloat(func(c *objective.Config) *float64 { return &c.LR }),
		fixedPtr(func(t *TrainingSpec) *float64 { return t.LR })},
	"momentum": {[]string{Float, Categorical}, setFloat(func(c *objective.Config) *float64 { return &c.Momentum }),
		fixedPtr(func(t *TrainingSpec) *float64 { return t.Momentum })},
	"weight_decay": {[]string{Float, Categorical}, setFloat(func(c *objective.Config) *float64 { return &c.WeightDecay }),
		fixedPtr(func(t *TrainingSpec) *float64 { return t.WeightDecay })},
	"flood_level": {[]string{Float, Categorical}, setFloat(func(c *objective.Config) *float64 { return &c.FloodLevel }),
		fixedPtr(func(t *TrainingSpec) *float64 { return t.FloodLevel })},
	"batch_size": {[]string{Int, Categorical}, setInt(func(c *objective.Config) *int { return &c.BatchSize }),
		fixedPtr(func(t *TrainingSpec) *int { return t.BatchSize })},
	"epochs": {[]string{Int, Categorical}, setInt(func(c *objective.Config) *int { return &c.Epochs }),
		fixedPtr(func(t *TrainingSpec) *int { return t.Epochs })},
	"optimizer": {[]string{Categorical}, func(c *objective.Config, v any) error {
		c.Optimizer = fmt.Sprint(v)
		return nil
	}, fixedPtr(func(t *TrainingSpec) *string { return t.Optimizer })},
	"flood": {[]string{Categorical}, func(c *objective.Config, v any) error {
		m, err := flood.ParseMethod(fmt.Sprint(v))
		c.Flood = m
		return err
	}, fixedPtr(func(t *TrainingSpec) *string { return t.Flood })},
	"conv": {[]string{Categorical}, func(c *objective.Config, v any) error {
		l, err := objective.ParseConv(fmt.Sprint(v))
		c.Conv = l
		return err
	}, func(s *Spec) (any, bool) {
		if len(s.Model.Conv) == 0 {
			return nil, false
		}
		return objective.FormatConv(s.Model.Conv), true
	}},
	"hidden": {[]string{Categorical}, func(c *objective.Config, v any) error {
		w, err := ParseWidths(fmt.Sprint(v))
		c.Hidden = w
		return err
	}, func(s *Spec) (any, bool) {
		if len(s.Model.Hidden) == 0 {
			return nil, false
		}
		parts := make([]string, len(s.Model.Hidden))
		for i, w := range s.Model.Hidden {
			parts[i] = strconv.Itoa(w)
		}
		return strings.Join(parts, ","), true
	}},
}

// fixedPtr reads an option that training fixes through a pointer field.
func fixedPtr[T any](field func(*TrainingSpec) *T) func(*Spec) (any, bool) {
	return func(s *Spec) (any, bool) {
		if p := field(&s.Training); p != nil {
			return *p, true
		}
		return nil, false
	}
}

func setFloat(field func(*objective.Config) *float64) func(*objective.Config, any) error {
	return func(c *objective.Config, v any) error {
		f, err := toFloat(v)
		*field(c) = f
		return err
	}
}

func setInt(field func(*objective.Config) *int) func(*objective.Config, any) error {
	return func(c *objective.Config, v any) error {
		f, err := toFloat(v)
		if err == nil && f != math.Trunc(f) {
			err = fmt.Errorf("%v is not a whole number", v)
		}
		*field(c) = int(f)
		return err
	}
}

func toFloat(v any) (float64, error) {
	switch x := v.(type) {
	case float64:
		return x, nil
	case int:
		return float64(x), nil
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not a number", x)
		}
		return f, nil
	}
	return 0, fmt.Errorf("%v (%T) is not a number", v, v)
}

// ParseWidths parses "500,500" into layer widths.
func ParseWidths(s string) ([]int, error) {
	fields := strings.Split(s, ",")
	widths := make([]int, 0, len(fields))
	for _, f := range fields {
		w, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("hidden layers: %q is not a comma-separated list of widths such as 500,500", s)
		}
		widths = append(widths, w)
	}
	return widths, nil
}

// SpecError lists every problem of a spec, one clear message each.
type SpecError struct{ Problems []string }

// Is makes errors.Is(err, ErrBadSpec) hold for every spec problem.
func (e *SpecError) Is(target error) bool { return target == ErrBadSpec }

func (e *SpecError) Error() string {
	if len(e.Problems) == 1 {
		return "spec: " + e.Problems[0]
	}
	return fmt.Sprintf("spec has %d problems: %s", len(e.Problems), strings.Join(e.Problems, "; "))
}

// ParseSpec reads a spec from YAML or JSON (JSON is YAML), refusing unknown
// keys, and validates it.
func ParseSpec(data []byte) (*Spec, error) {
	if len(data) > MaxSpecBytes {
		return nil, &SpecError{[]string{fmt.Sprintf("the file has %d bytes, more than the limit of %d", len(data), MaxSpecBytes)}}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, &SpecError{[]string{"the file is empty"}}
	}
	var s Spec
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &SpecError{[]string{"the file holds no document"}}
		}
		return nil, &SpecError{[]string{yamlProblem(err)}}
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, &SpecError{[]string{"the file holds more than one document"}}
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// yamlProblem turns the YAML decoder's error into one line.
func yamlProblem(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return strings.Join(te.Errors, "; ")
	}
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	return "not valid YAML or JSON: " + strings.ReplaceAll(msg, "\n", " ")
}

// Direction returns search.direction if set, else Minimize for the
// objective val_loss and Maximize for any other.
func (s *Spec) Direction() storage.Direction {
	switch {
	case s.Search.Direction != "":
		return storage.Direction(s.Search.Direction)
	case s.Search.Objective == ObjectiveValLoss:
		return Minimize
	}
	return Maximize
}

// External reports whether the trials are trained by the program that runs
// them rather than by floodtune's built-in trainer.
func (s *Spec) External() bool { return s.Trainer == TrainerExternal }

// WithBaseline reports whether a plain-training trial (flood level 0) is
// enqueued first: by default when the flood level is searched.
func (s *Spec) WithBaseline() bool {
	p, searched := s.Space["flood_level"]
	if p.Center != "" && s.Search.Baseline == nil {
		return false
	}
	return searched && (s.Search.Baseline == nil || *s.Search.Baseline)
}

// ObjectiveName is the spec's objective, its default spelt out.
func (s *Spec) ObjectiveName() ObjectiveName {
	if s.Search.Objective == "" {
		return ObjectiveValAcc
	}
	return s.Search.Objective
}

// fixedNames returns the options fixed under training or model, with
// their values.
func (s *Spec) fixedNames() map[string]any {
	out := map[string]any{}
	for name, o := range options {
		if v, ok := o.fixed(s); ok {
			out[name] = v
		}
	}
	return out
}

// DatasetSpec returns the dataset part as objective's spec (the seed is
// the trial's).
func (s *Spec) DatasetSpec() objective.DatasetSpec {
	d := s.Dataset
	return objective.DatasetSpec{Name: d.Name, LabelNoise: d.LabelNoise, TrainSize: d.TrainSize, ValSize: d.ValSize,
		TestSize: d.TestSize, DataDir: d.DataDir, TestCSV: d.TestCSV}
}

// LoadData loads the study's data: the split and the label noise drawn with
// search.seed, the same for every trial of the study.
func (s *Spec) LoadData(ctx context.Context) (*objective.Data, error) {
	ds := s.DatasetSpec()
	ds.Seed = s.Search.Seed
	return objective.LoadDataset(ctx, ds)
}

// Defaults of the options a spec neither fixes nor searches.
var defaultConfig = objective.Config{
	Hidden: []int{500, 500}, Optimizer: objective.Momentum, LR: 0.1, BatchSize: 128, Epochs: 10, Flood: flood.Batch,
}

// Config returns the training configuration of a trial: the defaults, the
// fixed options, then values (searched option name → value: a float64, an
// int or a categorical choice).
func (s *Spec) Config(values map[string]any) (objective.Config, error) {
	c := defaultConfig
	c.Hidden = append([]int(nil), defaultConfig.Hidden...)
	t := s.Training
	if s.Model.CNN() {
		c.Conv = append([]objective.ConvLayer(nil), objective.LeNet...)
		if len(s.Model.Conv) > 0 {
			c.Conv = append([]objective.ConvLayer(nil), s.Model.Conv...)
		}
		c.Hidden = append([]int(nil), defaultCNNHidden...)
	}
	if len(s.Model.Hidden) > 0 {
		c.Hidden = append([]int(nil), s.Model.Hidden...)
	}
	if t.Optimizer != nil {
		c.Optimizer = *t.Optimizer
	}
	if t.LR != nil {
		c.LR = *t.LR
	}
	if t.Momentum != nil {
		c.Momentum = *t.Momentum
	}
	if t.WeightDecay != nil {
		c.WeightDecay = *t.WeightDecay
	}
	if t.BatchSize != nil {
		c.BatchSize = *t.BatchSize
	}
	if t.Epochs != nil {
		c.Epochs = *t.Epochs
	}
	if t.Flood != nil {
		m, err := flood.ParseMethod(*t.Flood)
		if err != nil {
			return c, fmt.Errorf("training.flood: %w", err)
		}
		c.Flood = m
	}
	if t.FloodLevel != nil {
		c.FloodLevel = *t.FloodLevel
	}
	c.TestCurve = t.TestCurve
	for name, v := range values {
		opt, ok := options[name]
		if !ok {
			return c, fmt.Errorf("%s: unknown option", name)
		}
		if err := opt.apply(&c, v); err != nil {
			return c, fmt.Errorf("%s: %w", name, err)
		}
	}
	return c, nil
}

// floodConfig returns the flood method and level of an external trainer's
// trial: the defaults, the fixed training.flood and training.flood_level,
// then the values of flood and flood_level among values; other options are
// the trainer's own.
func (s *Spec) floodConfig(values map[string]any) (objective.Config, error) {
	c := objective.Config{Flood: defaultConfig.Flood}
	if t := s.Training.Flood; t != nil {
		m, err := flood.ParseMethod(*t)
		if err != nil {
			return c, fmt.Errorf("training.flood: %w", err)
		}
		c.Flood = m
	}
	if t := s.Training.FloodLevel; t != nil {
		c.FloodLevel = *t
	}
	for _, name := range []string{"flood", "flood_level"} {
		if v, ok := values[name]; ok {
			if err := options[name].apply(&c, v); err != nil {
				return c, fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	if err := flood.CheckLevel(c.FloodLevel); err != nil {
		return c, err
	}
	return c, nil
}
