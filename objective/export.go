package objective

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/floodtune/floodtune/internal/atomicfile"
)

// Files written by Data.Export, beside one <split>_x.f32 and <split>_y.i32
// pair per split.
const (
	ExportMetaFile = "meta.json"
	// ExportFormat describes the split files; it is recorded in meta.json.
	ExportFormat = "<split>_x.f32: little-endian float32, n×features, row-major (a row of an image is channels×height×width, channel by channel, each channel row by row); <split>_y.i32: little-endian int32, n labels in [0, classes)"
)

// ExportSource says where exported data came from; Export records it in
// meta.json as it is given.
type ExportSource struct {
	// Dataset is the dataset's description, e.g. a study spec's dataset
	// section.
	Dataset any `json:"dataset,omitempty"`
	// Seed is the seed the split and the label noise were drawn with.
	Seed int64 `json:"seed"`
}

// ExportMeta is the content of meta.json.
type ExportMeta struct {
	Name     string `json:"name"`
	Features int    `json:"features"`
	Classes  int    `json:"classes"`
	Format   string `json:"format"`
	// Image is the shape of each row when the rows are images (features =
	// channels×height×width), and absent when they are not.
	Image  *ExportedImage               `json:"image,omitempty"`
	Splits map[string]ExportedSplitMeta `json:"splits"`
	ExportSource
}

// ExportedImage is the shape of one image in meta.json.
type ExportedImage struct {
	Channels int `json:"channels"`
	Height   int `json:"height"`
	Width    int `json:"width"`
}

// exportedImage is the meta.json form of s, nil when the rows are not
// images.
func exportedImage(s ImageShape) *ExportedImage {
	if s.IsZero() {
		return nil
	}
	return &ExportedImage{Channels: s.Channels, Height: s.Height, Width: s.Width}
}

// ExportedSplitMeta describes one exported split.
type ExportedSplitMeta struct {
	N int `json:"n"`
	// NoisyLabels is how many of the split's labels label noise changed.
	NoisyLabels int    `json:"noisy_labels"`
	X           string `json:"x"`
	Y           string `json:"y"`
}

// ExportSplits names the splits in the order Export writes them.
var ExportSplits = []string{"train", "val", "test"}

// Export writes the dataset to dir, created if needed, so that another
// program trains and evaluates on exactly the same rows and labels: for each
// split of ExportSplits, <split>_x.f32 (little-endian float32, N×Features,
// row-major; a row of an image is channel-major, C×H×W) and <split>_y.i32
// (little-endian int32), then meta.json (ExportMeta, with the image shape
// when the rows are images). Each file is written under a temporary name and
// renamed when complete; meta.json comes last, so its presence means the
// export is whole.
func (d *Data) Export(dir string, src ExportSource) error {
	if im := d.Image; !im.IsZero() && im.size() != d.Features {
		return fmt.Errorf("export %s: images of %s are %d values, not the %d features of a row",
			d.Name, im, im.size(), d.Features)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("export %s: %w", d.Name, err)
	}
	meta := ExportMeta{Name: d.Name, Features: d.Features, Classes: d.Classes, Format: ExportFormat,
		Image: exportedImage(d.Image), Splits: map[string]ExportedSplitMeta{}, ExportSource: src}
	noisy := map[string]int{"train": d.NoisyTrain, "val": d.NoisyVal}
	for _, name := range ExportSplits {
		s := d.split(name)
		if len(s.X) != s.N*d.Features || len(s.Y) != s.N {
			return fmt.Errorf("export %s: split %s has %d values and %d labels for %d rows of %d features",
				d.Name, name, len(s.X), len(s.Y), s.N, d.Features)
		}
		m := ExportedSplitMeta{N: s.N, NoisyLabels: noisy[name], X: name + "_x.f32", Y: name + "_y.i32"}
		if err := d.write(dir, m.X, func(w *bufio.Writer) error { return writeFloat32s(w, s.X) }); err != nil {
			return err
		}
		if err := d.write(dir, m.Y, func(w *bufio.Writer) error { return writeInt32s(w, s.Y) }); err != nil {
			return err
		}
		meta.Splits[name] = m
	}
	return d.write(dir, ExportMetaFile, func(w *bufio.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		return enc.Encode(meta)
	})
}

// write writes one file of an export, whole or not at all.
func (d *Data) write(dir, name string, fill func(*bufio.Writer) error) error {
	path := filepath.Join(dir, name)
	if err := atomicfile.Write(path, fill); err != nil {
		return fmt.Errorf("export %s: write %s: %w", d.Name, path, err)
	}
	return nil
}

// split returns the split called name (one of ExportSplits).
func (d *Data) split(name string) *Split {
	switch name {
	case "train":
		return &d.Train
	case "val":
		return &d.Val
	default:
		return &d.Test
	}
}

func writeFloat32s(w *bufio.Writer, v []float32) error {
	var b [4]byte
	for _, x := range v {
		binary.LittleEndian.PutUint32(b[:], math.Float32bits(x))
		if _, err := w.Write(b[:]); err != nil {
			return err
		}
	}
	return nil
}

func writeInt32s(w *bufio.Writer, v []int32) error {
	var b [4]byte
	for _, x := range v {
		binary.LittleEndian.PutUint32(b[:], uint32(x))
		if _, err := w.Write(b[:]); err != nil {
			return err
		}
	}
	return nil
}
