package search_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/floodtune/floodtune/flood"
	"github.com/floodtune/floodtune/search"
)

// example is the spec of the study issue: it must work as written.
const example = `
dataset: {name: mnist, label_noise: 0.2}          # or gauss2d/sinusoid2d/spiral/csv:PATH + sizes
model: {hidden: [500, 500]}
training: {optimizer: momentum, lr: 0.1, batch_size: 128, epochs: 10, flood: flood}
search:
  sampler: tpe          # tpe | random | cmaes
  pruner: median        # none | median | successive_halving
  trials: 30            # the study-wide budget, shared by every worker
  seed: 1
  objective: val_acc    # maximise validation accuracy (val_loss: minimise)
space:
  flood_level: {type: float, low: 0.0, high: 1.5}
  lr: {type: float, low: 0.01, high: 0.3, log: true}
  batch_size: {type: categorical, choices: [64, 128, 256]}
`

func TestTheExampleSpecParses(t *testing.T) {
	t.Parallel()
	s, err := search.ParseSpec([]byte(example))
	if err == nil && (s.Direction() != "maximize" || !s.WithBaseline() || s.Search.Trials != 30) {
		t.Fatalf("direction %s, baseline %v, trials %d", s.Direction(), s.WithBaseline(), s.Search.Trials)
	}
	if err != nil {
		t.Fatal(err)
	}
	// The space is searched, the rest fixed; lr and batch_size are both:
	// their fixed values are where the search starts, the sampled values
	// override them.
	c, err := s.Config(map[string]any{"flood_level": 0.8, "lr": 0.05, "batch_size": "256"})
	if err != nil {
		t.Fatal(err)
	}
	if c.FloodLevel != 0.8 || c.LR != 0.05 || c.BatchSize != 256 || c.Optimizer != "momentum" || c.Epochs != 10 || c.Flood != flood.Batch {
		t.Fatalf("config %+v", c)
	}
}

func TestSpecProblemsAreReportedOneByOne(t *testing.T) {
	t.Parallel()
	base := func(space string) string {
		return "dataset: {name: gauss2d}\nsearch: {trials: 10}\n" + space
	}
	for _, tc := range []struct {
		name, spec, want string
	}{
		{"low above high", base("space: {flood_level: {type: float, low: 2, high: 1}}"), "space.flood_level: low 2 is greater than high 1"},
		{"a log scale with low 0", base("space: {lr: {type: float, low: 0, high: 1, log: true}}"), "space.lr: a log scale needs low > 0, got 0"},
		{"a log scale with a negative low", base("space: {lr: {type: float, low: -1, high: 1, log: true}}"), "a log scale needs low > 0"},
		{"a NaN bound", base("space: {flood_level: {type: float, low: .nan, high: 1}}"), "space.flood_level: low, high and step must be finite numbers"},
		{"an infinite bound", base("space: {flood_level: {type: float, low: 0, high: .inf}}"), "must be finite numbers"},
		{"a step on a log scale", base("space: {lr: {type: float, low: 0.01, high: 1, log: true, step: 0.01}}"), "space.lr: step cannot be used with a log scale"},
		{"a zero step", base("space: {flood_level: {type: float, low: 0, high: 1, step: 0}}"), "step must be positive"},
		{"an empty categorical", base("space: {optimizer: {type: categorical, choices: []}}"), "space.optimizer: a categorical parameter needs at least one choice"},
		{"a repeated choice", base("space: {optimizer: {type: categorical, choices: [sgd, sgd]}}"), "choice \"sgd\" appears twice"},
		{"an unknown searched option", base("space: {dropout: {type: float, low: 0, high: 1}}"), "space.dropout: unknown option"},
		{"a type the option cannot have", base("space: {optimizer: {type: float, low: 0, high: 1}}"), "space.optimizer: type \"float\" is not one of categorical"},
		{"an unknown type", base("space: {lr: {type: double, low: 0.1, high: 1}}"), "type \"double\""},
		{"float bounds missing", base("space: {lr: {type: float}}"), "space.lr: needs low and high"},
		{"an int with a fractional bound", base("space: {batch_size: {type: int, low: 16.5, high: 64}}"), "an int parameter needs whole numbers"},
		{"a parameter fixed outside the range it is searched in", "dataset: {name: gauss2d}\ntraining: {lr: 0.5}\nsearch: {trials: 10}\nspace: {lr: {type: float, low: 0.01, high: 0.3}}", "space.lr: lr is fixed at 0.5 under training, outside the space searched ([0.01, 0.3])"},
		{"a parameter fixed to a choice it is not searched among", "dataset: {name: gauss2d}\ntraining: {batch_size: 32}\nsearch: {trials: 10}\nspace: {batch_size: {type: categorical, choices: [64, 128]}}", "batch_size is fixed at 32 under training, outside the space searched (choices 64, 128)"},
		{"hidden fixed outside its choices", "dataset: {name: gauss2d}\nmodel: {hidden: [10]}\nsearch: {trials: 10}\nspace: {hidden: {type: categorical, choices: [\"10,10\"]}}", "hidden is fixed at 10 under model, outside the space searched"},
		{"an unknown model type", "dataset: {name: mnist}\nmodel: {type: resnet}\nsearch: {trials: 1}", "model.type: unknown \"resnet\" (want mlp or cnn)"},
		{"convolutional layers without type cnn", "dataset: {name: mnist}\nmodel: {conv: [{channels: 4, kernel: 3}]}\nsearch: {trials: 1}", "model.conv: convolutional layers need model.type: cnn"},
		{"conv searched without type cnn", "dataset: {name: mnist}\nsearch: {trials: 1}\nspace: {conv: {type: categorical, choices: [\"4:3\"]}}", "space.conv: convolutional layers need model.type: cnn"},
		{"a cnn on rows that are not images", "dataset: {name: gauss2d}\nmodel: {type: cnn}\nsearch: {trials: 1}", "model.type: cnn needs images (mnist or idx:DIR), and the rows of dataset \"gauss2d\" are not"},
		{"a conv layer without channels", "dataset: {name: mnist}\nmodel: {type: cnn, conv: [{kernel: 3}]}\nsearch: {trials: 1}", "model.conv[0]: channels 0 not in [1, 65536]"},
		{"a conv layer padded beyond its kernel", "dataset: {name: mnist}\nmodel: {type: cnn, conv: [{channels: 2, kernel: 3, padding: 3}]}\nsearch: {trials: 1}", "model.conv[0]: padding 3 not in [0, kernel−1 = 2]"},
		{"conv choices that do not parse", "dataset: {name: mnist}\nmodel: {type: cnn}\nsearch: {trials: 1}\nspace: {conv: {type: categorical, choices: [\"16:5\", \"16x5\"]}}", "conv: convolutional layers: layer 1 \"16x5\": no kernel size"},
		{"conv choices too large for mnist's images", "dataset: {name: mnist}\nmodel: {type: cnn}\nsearch: {trials: 1}\nspace: {conv: {type: categorical, choices: [\"16:5\", \"8:5:pool2,8:5:pool2,8:5\"]}}", "a 5×5 kernel does not fit its 8×4×4 input"},
		{"an unknown dataset", "dataset: {name: cifar10}\nsearch: {trials: 10}", "dataset: unknown dataset \"cifar10\""},
		{"no dataset", "search: {trials: 10}", "dataset: no dataset name"},
		{"label noise out of range", "dataset: {name: gauss2d, label_noise: 0.7}\nsearch: {trials: 10}", "label noise 0.7"},
		{"zero trials", "dataset: {name: gauss2d}\nsearch: {trials: 0}", "search.trials: must be between 1 and 100000, got 0"},
		{"too many trials", "dataset: {name: gauss2d}\nsearch: {trials: 1000001}", "search.trials: must be between 1 and 100000"},
		{"too many epochs", "dataset: {name: gauss2d}\ntraining: {epochs: 1000000}\nsearch: {trials: 1}", "epochs: must be between 1 and 100000"},
		{"too many epochs in the space", base("space: {epochs: {type: int, low: 1, high: 10000000}}"), "space at epochs=1e+07"},
		{"a width over the limit", "dataset: {name: gauss2d}\nmodel: {hidden: [100000]}\nsearch: {trials: 1}", "limit of 65536"},
		{"a zero width in the space", base("space: {hidden: {type: categorical, choices: [\"10,0\"]}}"), "width 0 of layer 2"},
		{"a non-positive learning rate in the space", base("space: {lr: {type: float, low: 0, high: 0.1}}"), "learning rate: must be a positive number"},
		{"a negative flood level in the space", base("space: {flood_level: {type: float, low: -0.5, high: 1}}"), "flood level"},
		{"a flood-level range without the baseline's 0", base("space: {flood_level: {type: float, low: 0.2, high: 1}}"), "the baseline trial trains at flood level 0, outside the space searched ([0.2, 1])"},
		{"an unknown sampler", "dataset: {name: gauss2d}\nsearch: {trials: 1, sampler: grid}", "search.sampler: unknown \"grid\""},
		{"an unknown pruner", "dataset: {name: gauss2d}\nsearch: {trials: 1, pruner: hyperband}", "search.pruner: unknown \"hyperband\""},
		{"an unknown objective", "dataset: {name: gauss2d}\nsearch: {trials: 1, objective: test_acc}", "search.objective: unknown \"test_acc\""},
		{"an unknown flooding method", "dataset: {name: gauss2d}\ntraining: {flood: deluge}\nsearch: {trials: 1}", "unknown method \"deluge\""},
		{"an unknown key", "dataset: {name: gauss2d}\nsearch: {trials: 1, budget: 5}", "field budget not found"},
		{"a value of the wrong type", "dataset: {name: gauss2d}\nsearch: {trials: ten}", "cannot unmarshal"},
		{"an empty file", "  \n", "the file is empty"},
		{"binary junk", "\x00\x01\x02\xff\xfe", "not valid YAML or JSON"},
		{"two documents", "dataset: {name: gauss2d}\nsearch: {trials: 1}\n---\nfoo: 1\n", "more than one document"},
		{"an unknown centre", base("space: {flood_level: {type: float, low: 0, high: 1, center: median}}"), "space.flood_level: center: unknown \"median\" (want noise or unflooded)"},
		{"a centre on another option", base("space: {lr: {type: float, low: 0.01, high: 0.1, center: unflooded}}"), "space.lr: center is for flood_level only"},
		{"a centre on a log scale", base("space: {flood_level: {type: float, low: 0.01, high: 1, log: true, center: unflooded}}"), "center needs a float range without log or step"},
		{"a noise centre without noise", base("space: {flood_level: {type: float, low: 0, high: 1, center: noise}}"), "center: noise needs dataset.label_noise > 0"},
		{"center epochs without the unflooded centre", base("space: {flood_level: {type: float, low: 0, high: 1, center_epochs: 3}}"), "center_epochs belongs to center: unflooded"},
		{"too many center epochs", base("space: {flood_level: {type: float, low: 0, high: 1, center: unflooded, center_epochs: 5000}}"), "center_epochs: must be between 1 and 1000"},
		{"an estimate without a centre", base("space: {flood_level: {type: float, low: 0, high: 1, estimate: 0.5}}"), "estimate is set by center"},
		{"a centre with the baseline asked for", "dataset: {name: gauss2d, label_noise: 0.1}\nsearch: {trials: 10, baseline: true}\nspace: {flood_level: {type: float, low: 0, high: 1, center: noise}}", "a centred range need not hold flood level 0"},
		{"a JSON spec with an error", `{"dataset": {"name": "gauss2d"}, "search": {"trials": -1}}`, "search.trials"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := search.ParseSpec([]byte(tc.spec))
			var se *search.SpecError
			if !errors.As(err, &se) {
				t.Fatalf("error %v, want a SpecError", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error spans lines: %q", err)
			}
		})
	}
}

func TestWithoutTheBaselineAnyFloodRangeWorks(t *testing.T) {
	t.Parallel()
	s, err := search.ParseSpec([]byte("dataset: {name: gauss2d}\nsearch: {trials: 3, baseline: false}\nspace: {flood_level: {type: float, low: 0.2, high: 1}}"))
	if err != nil || s.WithBaseline() {
		t.Fatalf("spec %v, baseline %v", err, s != nil && s.WithBaseline())
	}
	s, err = search.ParseSpec([]byte("dataset: {name: gauss2d}\ntraining: {flood_level: 0.3}\nsearch: {trials: 3}\nspace: {lr: {type: float, low: 0.01, high: 0.1}}"))
	if err != nil || s.WithBaseline() {
		t.Fatalf("a study that does not search the flood level has no baseline trial: %v, %v", err, s != nil && s.WithBaseline())
	}
}

func TestEveryProblemIsReported(t *testing.T) {
	t.Parallel()
	_, err := search.ParseSpec([]byte("dataset: {name: nope}\nsearch: {trials: 0, sampler: grid}\nspace: {lr: {type: float, low: 2, high: 1}}"))
	var se *search.SpecError
	if !errors.As(err, &se) || len(se.Problems) != 4 {
		t.Fatalf("error %v, want 4 problems", err)
	}
}

func TestAJSONSpecParses(t *testing.T) {
	t.Parallel()
	s, err := search.ParseSpec([]byte(`{"dataset": {"name": "sinusoid2d", "train_size": 100}, "search": {"trials": 5, "objective": "val_loss", "baseline": false},
		"space": {"flood": {"type": "categorical", "choices": ["flood", "iflood"]}, "flood_level": {"type": "float", "low": 0, "high": 1, "step": 0.1}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if s.Direction() != "minimize" || s.WithBaseline() {
		t.Fatalf("direction %s, baseline %v", s.Direction(), s.WithBaseline())
	}
	c, err := s.Config(map[string]any{"flood": "iflood", "flood_level": 0.3})
	if err != nil || c.Flood != flood.Individual || c.FloodLevel != 0.3 {
		t.Fatalf("config %+v, %v", c, err)
	}
}

func FuzzParseSpec(f *testing.F) {
	f.Add([]byte(example))
	f.Add([]byte(`{"dataset": {"name": "gauss2d"}, "search": {"trials": 3}}`))
	f.Add([]byte("space: {lr: {type: float, low: .nan, high: 1, log: true}}"))
	f.Add([]byte("a: &a [*a, *a]"))
	f.Add([]byte(strings.Repeat("[", 500)))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := search.ParseSpec(data)
		if err != nil {
			var se *search.SpecError
			if !errors.As(err, &se) {
				t.Fatalf("error %v is not a SpecError", err)
			}
			return
		}
		// A spec that parses gives a valid configuration at its corners.
		if _, err := s.Config(nil); err != nil {
			t.Fatalf("a valid spec gives no configuration: %v", err)
		}
	})
}

func TestTheExampleSpecsAreValid(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../examples/*.yaml")
	more, _ := filepath.Glob("../examples/*/*.yaml")
	files = append(files, more...)
	if err != nil || len(files) == 0 {
		t.Fatalf("no example specs found (%v)", err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := search.ParseSpec(data); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}
