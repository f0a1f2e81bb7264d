package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/floodtune/floodtune/objective"
	"github.com/floodtune/floodtune/search"
)

const exportSpec = `
dataset: {name: gauss2d, label_noise: 0.1, train_size: 120, val_size: 40, test_size: 60}
model: {hidden: [8]}
training: {epochs: 1, batch_size: 20, optimizer: momentum, lr: 0.1}
search: {trials: 2, seed: 5}
space: {flood_level: {type: float, low: 0, high: 1}}
`

func TestDatasetExportWritesTheStudysData(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	specPath := filepath.Join(dir, "spec.yaml")
	if err := os.WriteFile(specPath, []byte(exportSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "data")
	stdout, _ := mustRun(t, "dataset", "export", "--spec", specPath, "--out", out)
	if !strings.HasPrefix(stdout, "exported gauss2d to "+out+": 120 train / 40 validation / 60 test rows") {
		t.Errorf("export printed %q", stdout)
	}

	// The data of study optimize: the spec's dataset with search.seed.
	spec, err := search.ParseSpec([]byte(exportSpec))
	if err != nil {
		t.Fatal(err)
	}
	ds := spec.DatasetSpec()
	ds.Seed = spec.Search.Seed
	want, err := objective.LoadDataset(context.Background(), ds)
	if err != nil {
		t.Fatal(err)
	}

	raw, err := os.ReadFile(filepath.Join(out, "meta.json"))
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		Name     string `json:"name"`
		Features int    `json:"features"`
		Classes  int    `json:"classes"`
		Seed     int64  `json:"seed"`
		Dataset  struct {
			Name       string  `json:"name"`
			LabelNoise float64 `json:"label_noise"`
			TrainSize  int     `json:"train_size"`
		} `json:"dataset"`
		Splits map[string]struct {
			N           int `json:"n"`
			NoisyLabels int `json:"noisy_labels"`
		} `json:"splits"`
	}
	if err := json.Unmarshal(raw, &meta); err != nil {
		t.Fatalf("meta.json: %v\n%s", err, raw)
	}
	if meta.Name != "gauss2d" || meta.Features != 2 || meta.Classes != 2 || meta.Seed != 5 ||
		meta.Dataset.Name != "gauss2d" || meta.Dataset.LabelNoise != 0.1 || meta.Dataset.TrainSize != 120 {
		t.Errorf("meta.json does not describe the spec's data:\n%s", raw)
	}
	for name, s := range map[string]*objective.Split{"train": &want.Train, "val": &want.Val, "test": &want.Test} {
		if m := meta.Splits[name]; m.N != s.N {
			t.Errorf("meta.json: split %s has n %d, want %d", name, m.N, s.N)
		}
		xb, err := os.ReadFile(filepath.Join(out, name+"_x.f32"))
		if err != nil {
			t.Fatal(err)
		}
		yb, err := os.ReadFile(filepath.Join(out, name+"_y.i32"))
		if err != nil {
			t.Fatal(err)
		}
		if len(xb) != 4*len(s.X) || len(yb) != 4*len(s.Y) {
			t.Fatalf("split %s: %d and %d bytes, want %d and %d", name, len(xb), len(yb), 4*len(s.X), 4*len(s.Y))
		}
		for i, x := range s.X {
			if got := binary.LittleEndian.Uint32(xb[4*i:]); got != math.Float32bits(x) {
				t.Fatalf("split %s: value %d differs from the study's data", name, i)
			}
		}
		for i, y := range s.Y {
			if got := int32(binary.LittleEndian.Uint32(yb[4*i:])); got != y {
				t.Fatalf("split %s: label %d is %d, the study's is %d", name, i, got, y)
			}
		}
	}
	if meta.Splits["train"].NoisyLabels != want.NoisyTrain || meta.Splits["val"].NoisyLabels != want.NoisyVal || want.NoisyTrain != 12 {
		t.Errorf("meta.json counts %d and %d noisy labels, want %d and %d (12 train)",
			meta.Splits["train"].NoisyLabels, meta.Splits["val"].NoisyLabels, want.NoisyTrain, want.NoisyVal)
	}
}

func TestDatasetExportBadInputExitsWithStatus2(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	file := filepath.Join(dir, "file")
	for path, content := range map[string]string{
		good: exportSpec,
		bad:  strings.Replace(exportSpec, "gauss2d", "imagenet", 1),
		file: "",
	} {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "out")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no --spec", []string{"--out", out}, "--spec"},
		{"no --out", []string{"--spec", good}, "--out"},
		{"a missing spec file", []string{"--spec", filepath.Join(dir, "none.yaml"), "--out", out}, "read the spec"},
		{"a bad spec", []string{"--spec", bad, "--out", out}, "unknown dataset"},
		{"an output directory below a file", []string{"--spec", good, "--out", filepath.Join(file, "out")}, "--out"},
		{"an output directory that is a file", []string{"--spec", good, "--out", file}, "--out"},
		{"an argument", []string{"--spec", good, "--out", out, "extra"}, "takes no arguments"},
		{"an unknown flag", []string{"--spec", good, "--out", out, "--seed", "3"}, "unknown flag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runCLI(t, append([]string{"dataset", "export"}, tc.args...)...)
			if code != 2 {
				t.Fatalf("exit %d, want 2 (stdout %q, stderr %q)", code, stdout, stderr)
			}
			if strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr %q, want one line naming %q", stderr, tc.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(out, "meta.json")); err == nil {
		t.Errorf("bad input wrote an export")
	}
}

func TestDatasetExportHelpHasAnExample(t *testing.T) {
	t.Parallel()
	code, stdout, stderr := runCLI(t, "dataset", "export", "--help")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	for _, want := range []string{"Examples:", "floodtune dataset export --spec", "train_x.f32", "meta.json"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("help lacks %q:\n%s", want, stdout)
		}
	}
	code, _, stderr = runCLI(t, "dataset")
	if code != 2 || !strings.Contains(stderr, "export") {
		t.Errorf("dataset without a subcommand: exit %d, stderr %q; want 2 naming export", code, stderr)
	}
}
