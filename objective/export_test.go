package objective

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// readExportedSplit reads back the files of one exported split.
func readExportedSplit(t *testing.T, dir string, m ExportedSplitMeta, features int) Split {
	t.Helper()
	xb, err := os.ReadFile(filepath.Join(dir, m.X))
	if err != nil {
		t.Fatal(err)
	}
	yb, err := os.ReadFile(filepath.Join(dir, m.Y))
	if err != nil {
		t.Fatal(err)
	}
	if len(xb) != 4*m.N*features || len(yb) != 4*m.N {
		t.Fatalf("%s has %d bytes and %s %d, want %d and %d", m.X, len(xb), m.Y, len(yb), 4*m.N*features, 4*m.N)
	}
	s := Split{X: make([]float32, m.N*features), Y: make([]int32, m.N), N: m.N}
	for i := range s.X {
		s.X[i] = math.Float32frombits(binary.LittleEndian.Uint32(xb[4*i:]))
	}
	for i := range s.Y {
		s.Y[i] = int32(binary.LittleEndian.Uint32(yb[4*i:]))
	}
	return s
}

func TestExportRoundTrip(t *testing.T) {
	t.Parallel()
	spec := DatasetSpec{Name: "spiral", TrainSize: 150, ValSize: 50, TestSize: 70, LabelNoise: 0.2, Seed: 7}
	d, err := LoadDataset(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "nested", "export")
	src := ExportSource{Dataset: map[string]any{"name": "spiral", "label_noise": 0.2}, Seed: 7}
	if err := d.Export(dir, src); err != nil {
		t.Fatal(err)
	}

	raw, err := os.ReadFile(filepath.Join(dir, ExportMetaFile))
	if err != nil {
		t.Fatal(err)
	}
	var meta ExportMeta
	if err := json.Unmarshal(raw, &meta); err != nil {
		t.Fatalf("meta.json: %v\n%s", err, raw)
	}
	if meta.Name != "spiral" || meta.Features != d.Features || meta.Classes != d.Classes || meta.Seed != 7 {
		t.Errorf("meta.json says %s, %d features, %d classes, seed %d; want spiral, %d, %d, 7",
			meta.Name, meta.Features, meta.Classes, meta.Seed, d.Features, d.Classes)
	}
	if ds, ok := meta.Dataset.(map[string]any); !ok || ds["name"] != "spiral" || ds["label_noise"] != 0.2 {
		t.Errorf("meta.json's dataset is %v, want the source's", meta.Dataset)
	}
	if d.NoisyTrain != 30 || d.NoisyVal != 10 {
		t.Fatalf("the dataset has %d and %d noisy labels, want 30 and 10", d.NoisyTrain, d.NoisyVal)
	}
	for _, tc := range []struct {
		name  string
		want  *Split
		noisy int
	}{
		{"train", &d.Train, d.NoisyTrain},
		{"val", &d.Val, d.NoisyVal},
		{"test", &d.Test, 0},
	} {
		t.Run(tc.name+" comes back bit for bit", func(t *testing.T) {
			m, ok := meta.Splits[tc.name]
			if !ok {
				t.Fatalf("meta.json has no split %q: %s", tc.name, raw)
			}
			if m.N != tc.want.N || m.NoisyLabels != tc.noisy {
				t.Errorf("meta.json: n %d, noisy labels %d; want %d and %d", m.N, m.NoisyLabels, tc.want.N, tc.noisy)
			}
			got := readExportedSplit(t, dir, m, meta.Features)
			if !slices.Equal(got.Y, tc.want.Y) {
				t.Errorf("labels differ")
			}
			for i := range got.X {
				if math.Float32bits(got.X[i]) != math.Float32bits(tc.want.X[i]) {
					t.Fatalf("value %d is %v, want %v", i, got.X[i], tc.want.X[i])
				}
			}
		})
	}

	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{"meta.json", "test_x.f32", "test_y.i32", "train_x.f32", "train_y.i32", "val_x.f32", "val_y.i32"}
	if !slices.Equal(names, want) {
		t.Errorf("the directory holds %v, want %v (no temporary files)", names, want)
	}
}

func TestExportOverwritesAnEarlierExport(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, size := range []int{40, 20} {
		d, err := LoadDataset(context.Background(), DatasetSpec{Name: "gauss2d", TrainSize: size, ValSize: 10, TestSize: 10, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Export(dir, ExportSource{Seed: 1}); err != nil {
			t.Fatal(err)
		}
	}
	st, err := os.Stat(filepath.Join(dir, "train_y.i32"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != 4*20 {
		t.Errorf("train_y.i32 has %d bytes after the second export, want %d", st.Size(), 4*20)
	}
}

func TestExportToAnUnwritablePlaceFails(t *testing.T) {
	t.Parallel()
	d, err := LoadDataset(context.Background(), DatasetSpec{Name: "gauss2d", TrainSize: 20, ValSize: 10, TestSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// A directory below a regular file cannot be made, even by root.
	if err := d.Export(filepath.Join(file, "out"), ExportSource{}); err == nil {
		t.Fatal("export below a regular file succeeded")
	}
}

// readExportMeta reads back the meta.json of an export, and its raw text.
func readExportMeta(t *testing.T, dir string) (ExportMeta, map[string]any) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, ExportMetaFile))
	if err != nil {
		t.Fatal(err)
	}
	var meta ExportMeta
	var fields map[string]any
	if err := json.Unmarshal(raw, &meta); err != nil {
		t.Fatalf("meta.json: %v\n%s", err, raw)
	}
	if err := json.Unmarshal(raw, &fields); err != nil {
		t.Fatalf("meta.json: %v\n%s", err, raw)
	}
	return meta, fields
}

func TestExportRecordsTheImageShape(t *testing.T) {
	t.Parallel()
	t.Run("mnist's rows are 1×28×28 images", func(t *testing.T) {
		t.Parallel()
		idx := t.TempDir()
		writeIdxSet(t, idx, 10, 4, nil)
		d := mustLoad(t, DatasetSpec{Name: "mnist", DataDir: idx})
		dir := t.TempDir()
		if err := d.Export(dir, ExportSource{}); err != nil {
			t.Fatal(err)
		}
		meta, fields := readExportMeta(t, dir)
		want := ExportedImage{Channels: 1, Height: 28, Width: 28}
		if meta.Image == nil || *meta.Image != want {
			t.Errorf("meta.json's image is %+v, want %+v", meta.Image, want)
		}
		img, _ := fields["image"].(map[string]any)
		if img["channels"] != 1.0 || img["height"] != 28.0 || img["width"] != 28.0 {
			t.Errorf(`meta.json's "image" is %v, want {"channels": 1, "height": 28, "width": 28}`, fields["image"])
		}
	})
	t.Run("gauss2d's rows are not images, and meta.json says nothing of a shape", func(t *testing.T) {
		t.Parallel()
		d := mustLoad(t, DatasetSpec{Name: "gauss2d", TrainSize: 20, ValSize: 10, TestSize: 10, Seed: 1})
		dir := t.TempDir()
		if err := d.Export(dir, ExportSource{}); err != nil {
			t.Fatal(err)
		}
		meta, fields := readExportMeta(t, dir)
		if _, ok := fields["image"]; ok || meta.Image != nil {
			t.Errorf(`meta.json has "image": %v`, fields["image"])
		}
	})
	t.Run("a shape that is not the rows' size is refused", func(t *testing.T) {
		t.Parallel()
		d := &Data{Name: "odd", Features: 12, Classes: 2, Image: ImageShape{Channels: 3, Height: 2, Width: 3}}
		dir := filepath.Join(t.TempDir(), "out")
		err := d.Export(dir, ExportSource{})
		if err == nil || !strings.Contains(err.Error(), "3×2×3") || !strings.Contains(err.Error(), "12 features") {
			t.Errorf("export of 3×2×3 images in rows of 12: error %v", err)
		}
		if _, statErr := os.Stat(dir); !os.IsNotExist(statErr) {
			t.Errorf("the refused export made its directory (%v)", statErr)
		}
	})
}
