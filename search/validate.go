package search

// Validation of a spec: every problem of a spec, said in terms of what to
// change, found at once (SpecError).

import (
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/floodtune/floodtune/objective"
	"github.com/floodtune/floodtune/storage"
)

// validName matches the names an external trainer may give its options.
var validName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,63}$`)

// Validate reports every problem of the spec, before anything is written.
func (s *Spec) Validate() error {
	var probs []string
	add := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }

	switch s.Trainer {
	case "", TrainerBuiltin, TrainerExternal:
	default:
		add("trainer: unknown %q (want builtin or external)", s.Trainer)
	}
	external := s.External()
	if ds := s.DatasetSpec(); !external || ds.Name != "" {
		if err := ds.Validate(); err != nil {
			add("dataset: %s", strings.TrimPrefix(err.Error(), "dataset spec: "))
		}
	}
	switch s.Model.Type {
	case "", ModelMLP:
		if len(s.Model.Conv) > 0 {
			add("model.conv: convolutional layers need model.type: cnn")
		}
		if _, ok := s.Space["conv"]; ok {
			add("space.conv: convolutional layers need model.type: cnn")
		}
	case ModelCNN:
		for i, l := range s.Model.Conv {
			if err := l.Validate(); err != nil {
				add("model.conv[%d]: %v", i, err)
			}
		}
		if name := s.Dataset.Name; !external && name != "" && !objective.ImageDataset(name) {
			add("model.type: cnn needs images (mnist or idx:DIR), and the rows of dataset %q are not", name)
		}
	default:
		add("model.type: unknown %q (want mlp or cnn)", s.Model.Type)
	}
	if external {
		if len(s.Model.Hidden) > 0 || len(s.Model.Conv) > 0 || s.Model.Type != "" {
			add("model: an external trainer builds its own model; search its options under space or fix them in its code")
		}
		for _, name := range s.builtinTraining() {
			add("training.%s: an option of the built-in trainer; an external trainer fixes its own options in its code or searches them under space", name)
		}
	}
	switch s.Search.Sampler {
	case "", "tpe", "random", "cmaes":
	default:
		add("search.sampler: unknown %q (want tpe, random or cmaes)", s.Search.Sampler)
	}
	switch s.Search.Pruner {
	case "", "none", "median", "successive_halving":
	default:
		add("search.pruner: unknown %q (want none, median or successive_halving)", s.Search.Pruner)
	}
	switch {
	case !external:
		switch s.Search.Objective {
		case "", ObjectiveValAcc, ObjectiveValLoss:
		default:
			add("search.objective: unknown %q (want val_acc or val_loss)", s.Search.Objective)
		}
	case s.Search.Objective != "" && !validName.MatchString(string(s.Search.Objective)):
		add("search.objective: %q is not a name (letters, digits, _ . -, at most 64)", s.Search.Objective)
	}
	switch d := storage.Direction(s.Search.Direction); {
	case d != "" && d != Maximize && d != Minimize:
		add("search.direction: unknown %q (want maximize or minimize)", d)
	case d != "" && !external && s.Search.Objective == ObjectiveValLoss && d != Minimize,
		d != "" && !external && s.Search.Objective != ObjectiveValLoss && d != Maximize:
		add("search.direction: %s contradicts the objective %s", d, s.ObjectiveName())
	}
	switch s.Search.EpochValue {
	case "", EpochLast, EpochBest, EpochMeanLast:
		if external && s.Search.EpochValue != "" {
			add("search.epoch_value: a value of the built-in trainer's epochs; an external trainer tells the value it chooses")
		}
	default:
		add("search.epoch_value: unknown %q (want last, best or mean_last)", s.Search.EpochValue)
	}
	switch w := s.Search.EpochWindow; {
	case w != 0 && s.Search.EpochValue != EpochMeanLast:
		add("search.epoch_window: belongs to epoch_value: mean_last")
	case w < 0 || w > objective.MaxEpochs:
		add("search.epoch_window: must be between 1 and %d epochs, got %d", objective.MaxEpochs, w)
	}
	switch {
	case s.Search.Fork != nil && *s.Search.Fork && !s.Search.CommonSeed:
		add("search.fork: trials start from each other's runs only when they share a seed: set search.common_seed: true")
	case s.Search.Fork != nil && external:
		add("search.fork: forks runs of the built-in trainer; an external trainer trains its own")
	}
	if mb := s.Search.CheckpointMB; mb != nil && (*mb < 0 || *mb > maxCheckpointMB) {
		add("search.checkpoint_mb: must be between 0 and %d, got %d", maxCheckpointMB, *mb)
	}
	if es := s.Search.EarlyStopping; es != nil {
		switch {
		case external:
			add("search.early_stopping: stops runs of the built-in trainer; an external trainer stops its own")
		case es.Patience < 1 || es.Patience > objective.MaxEpochs:
			add("search.early_stopping.patience: must be between 1 and %d epochs, got %d", objective.MaxEpochs, es.Patience)
		case !(es.MinDelta >= 0) || math.IsInf(es.MinDelta, 0):
			add("search.early_stopping.min_delta: must be a finite number ≥ 0, got %v", es.MinDelta)
		}
	}
	if s.Search.Trials <= 0 || s.Search.Trials > MaxTrials {
		add("search.trials: must be between 1 and %d, got %d", MaxTrials, s.Search.Trials)
	}

	fixed := s.fixedNames()
	for _, name := range slices.Sorted(maps.Keys(s.Space)) {
		p := s.Space[name]
		where := "space." + name
		opt, ok := options[name]
		if external && name != "flood_level" && name != "flood" {
			// The trainer's own option, whatever floodtune's trainer
			// calls by that name.
			opt, ok = option{}, false
		}
		switch {
		case external && !validName.MatchString(name):
			add("%s: not a name (letters, digits, _ . -, starting with a letter or _, at most 64)", where)
			continue
		case !ok && !external:
			add("%s: unknown option (searchable: %s; a program that trains the trials itself sets trainer: external and names its own)", where, strings.Join(searchable(), ", "))
			continue
		case external && !ok && p.Type != Float && p.Type != Int && p.Type != Categorical:
			add("%s: type %q is not one of float, int, categorical", where, p.Type)
			continue
		case ok && !contains(opt.types, p.Type):
			add("%s: type %q is not one of %s", where, p.Type, strings.Join(opt.types, ", "))
			continue
		}
		msgs := p.problems()
		if external && p.Center != "" {
			msgs = append(msgs, "center needs the built-in trainer, which trains the estimate's short run or knows the dataset's classes")
		}
		msgs = append(msgs, s.centerProblems(name, p)...)
		for _, msg := range msgs {
			add("%s: %s", where, msg)
		}
		// An option both fixed and searched starts from its fixed value
		// (the baseline trial uses it), which must lie in the space.
		if v, ok := fixed[name]; ok && len(msgs) == 0 && !p.holds(v) {
			add("%s: %s is fixed at %v under %s, outside the space searched (%s)", where, name, v, fixedUnder(name), p.describe())
		}
	}

	if p, ok := s.Space["flood_level"]; ok && p.Center != "" && s.WithBaseline() {
		add("space.flood_level: a centred range need not hold flood level 0, where the baseline trial trains; drop search.baseline or the center")
	} else if ok && s.WithBaseline() && len(probs) == 0 && !p.holds(0.0) {
		add("space.flood_level: the baseline trial trains at flood level 0, outside the space searched (%s); include 0 or set search.baseline: false", p.describe())
	}

	// Every extreme of the space, merged with the fixed options, must make
	// a valid training configuration (a positive learning rate, widths
	// within the limits, ...); an external trainer's, a valid flood level
	// and method.
	if len(probs) == 0 && external {
		for _, c := range s.corners() {
			if _, err := s.floodConfig(c); err != nil {
				add("%s%v", describe(c), err)
				break
			}
		}
	} else if len(probs) == 0 {
		for _, c := range s.corners() {
			cfg, err := s.Config(c)
			if err == nil {
				err = cfg.Validate()
			}
			if im, ok := objective.KnownImage(s.Dataset.Name); ok && err == nil && len(cfg.Conv) > 0 {
				_, err = objective.CheckConv(im, cfg.Conv)
			}
			if err != nil {
				add("%s%v", describe(c), err)
				break
			}
		}
	}
	if len(probs) > 0 {
		return &SpecError{Problems: probs}
	}
	return nil
}

// builtinTraining returns the options of training that only the built-in
// trainer reads, among those the spec sets.
func (s *Spec) builtinTraining() []string {
	var out []string
	for name := range s.fixedNames() {
		if name != "flood" && name != "flood_level" && name != "hidden" && name != "conv" {
			out = append(out, name)
		}
	}
	if s.Training.TestCurve {
		out = append(out, "test_curve")
	}
	sort.Strings(out)
	return out
}

// centerProblems checks a parameter's center options.
func (s *Spec) centerProblems(name string, p Param) []string {
	switch p.Center {
	case "", CenterNoise, CenterUnflooded:
	default:
		return []string{fmt.Sprintf("center: unknown %q (want noise or unflooded)", p.Center)}
	}
	var out []string
	if p.CenterEpochs != 0 && p.Center != CenterUnflooded {
		out = append(out, "center_epochs belongs to center: unflooded")
	}
	if p.Center == "" {
		if p.Estimate != nil {
			out = append(out, "estimate is set by center")
		}
		return out
	}
	if name != "flood_level" {
		return append(out, "center is for flood_level only")
	}
	if p.Type != Float || p.Log || p.Step != nil {
		out = append(out, "center needs a float range without log or step")
	}
	if p.Center == CenterNoise && !(s.Dataset.LabelNoise > 0) {
		out = append(out, "center: noise needs dataset.label_noise > 0 (the irreducible loss of clean labels is 0); use center: unflooded")
	}
	if p.CenterEpochs < 0 || p.CenterEpochs > 1000 {
		out = append(out, fmt.Sprintf("center_epochs: must be between 1 and 1000, got %d", p.CenterEpochs))
	}
	if p.Estimate != nil && (math.IsNaN(*p.Estimate) || *p.Estimate < 0 || math.IsInf(*p.Estimate, 0)) {
		out = append(out, fmt.Sprintf("estimate: %v is not a flood level", *p.Estimate))
	}
	return out
}

func (p Param) problems() []string {
	var out []string
	bad := func(f *float64) bool { return f != nil && (math.IsNaN(*f) || math.IsInf(*f, 0)) }
	switch p.Type {
	case Float, Int:
		if p.Low == nil || p.High == nil {
			out = append(out, "needs low and high")
			return out
		}
		if bad(p.Low) || bad(p.High) || bad(p.Step) {
			out = append(out, "low, high and step must be finite numbers")
			return out
		}
		if *p.Low > *p.High {
			out = append(out, fmt.Sprintf("low %v is greater than high %v", *p.Low, *p.High))
		}
		if p.Log && p.Type == Int {
			out = append(out, "a log scale is for float parameters")
		}
		if p.Log && *p.Low <= 0 {
			out = append(out, fmt.Sprintf("a log scale needs low > 0, got %v", *p.Low))
		}
		if p.Step != nil {
			if p.Log {
				out = append(out, "step cannot be used with a log scale")
			} else if *p.Step <= 0 {
				out = append(out, fmt.Sprintf("step must be positive, got %v", *p.Step))
			}
		}
		if p.Type == Int {
			for _, v := range []*float64{p.Low, p.High, p.Step} {
				if v != nil && *v != math.Trunc(*v) {
					out = append(out, fmt.Sprintf("an int parameter needs whole numbers, got %v", *v))
					break
				}
			}
		}
		if len(p.Choices) > 0 {
			out = append(out, "choices belong to a categorical parameter")
		}
	case Categorical:
		switch {
		case len(p.Choices) == 0:
			out = append(out, "a categorical parameter needs at least one choice")
		case len(p.Choices) > MaxChoices:
			out = append(out, fmt.Sprintf("%d choices is more than the limit of %d", len(p.Choices), MaxChoices))
		}
		seen := map[string]bool{}
		for _, c := range p.Choices {
			if seen[c] {
				out = append(out, fmt.Sprintf("choice %q appears twice", c))
				break
			}
			seen[c] = true
		}
		if p.Low != nil || p.High != nil || p.Step != nil || p.Log {
			out = append(out, "low, high, step and log belong to a float or int parameter")
		}
	}
	return out
}

// holds reports whether v lies in the parameter's space.
func (p Param) holds(v any) bool {
	if p.Type == Categorical {
		for _, c := range p.Choices {
			if c == fmt.Sprint(v) {
				return true
			}
		}
		return false
	}
	f, err := toFloat(v)
	return err == nil && f >= *p.Low && f <= *p.High
}

func (p Param) describe() string {
	if p.Type == Categorical {
		return "choices " + strings.Join(p.Choices, ", ")
	}
	return fmt.Sprintf("[%v, %v]", *p.Low, *p.High)
}

func fixedUnder(name string) string {
	if name == "hidden" || name == "conv" {
		return "model"
	}
	return "training"
}

func searchable() []string { return slices.Sorted(maps.Keys(options)) }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// corners returns the value sets that put every searched option at each
// of its extremes (low and high, or every choice), one option at a time.
func (s *Spec) corners() []map[string]any {
	mid := map[string]any{}
	for name, p := range s.Space {
		if p.Type == Categorical {
			mid[name] = p.Choices[0]
		} else {
			mid[name] = *p.Low
		}
	}
	out := []map[string]any{mid}
	for name, p := range s.Space {
		var extremes []any
		if p.Type == Categorical {
			for _, c := range p.Choices {
				extremes = append(extremes, c)
			}
		} else {
			extremes = []any{*p.Low, *p.High}
		}
		for _, v := range extremes {
			c := map[string]any{}
			for k, x := range mid {
				c[k] = x
			}
			c[name] = v
			out = append(out, c)
		}
	}
	return out
}

func describe(values map[string]any) string {
	if len(values) == 0 {
		return "training: "
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%v", k, values[k])
	}
	return "space at " + strings.Join(parts, ", ") + ": "
}
