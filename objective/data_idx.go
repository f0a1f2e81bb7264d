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
	"slices"
	"strconv"
	"strings"
	"sync"
)

// The IDX format (MNIST's): a big-endian magic number 0, 0, type, dims;
// dims big-endian uint32 sizes, the item count first; then the values,
// row-major. Only unsigned bytes are read: images of n×h×w (idx3) or
// n×c×h×w (idx4) pixels, and n labels (idx1).
const (
	idxUnsignedByte = 0x08
	// idxMaxItemValues bounds the values of one item (C·H·W of an image),
	// so that a lying header cannot describe absurd rows.
	idxMaxItemValues = 1 << 24

	idxListSyntax = "idx:TRAIN_IMAGES,TRAIN_LABELS,TEST_IMAGES,TEST_LABELS"
)

// idxRoles names the four files of an idx dataset, in the order of the
// explicit list.
func idxRoles() [4]string {
	return [...]string{"training images", "training labels", "test images", "test labels"}
}

// idxRoleNames lists, for each role, the names that a file of a directory
// may end with (after a ".gz" is dropped and ".idx" read as "-idx"):
// MNIST's names, and EMNIST's, which say "test" for "t10k".
func idxRoleNames() [4][]string {
	return [...][]string{
		{"train-images-idx3-ubyte", "train-images-idx4-ubyte"},
		{"train-labels-idx1-ubyte"},
		{"t10k-images-idx3-ubyte", "t10k-images-idx4-ubyte", "test-images-idx3-ubyte", "test-images-idx4-ubyte"},
		{"t10k-labels-idx1-ubyte", "test-labels-idx1-ubyte"},
	}
}

// idxWant says what an idx file must hold.
type idxWant struct {
	// dims lists the accepted numbers of dimensions, the item count
	// included: {1} for labels, {3} or {3, 4} for images.
	dims []int
	// check, when not nil, checks the header's sizes before the values
	// are read.
	check func(dims []int) error
}

// idxLabels accepts a labels file, idxImages an images file with or
// without channels.
func idxLabels() idxWant { return idxWant{dims: []int{1}} }
func idxImages() idxWant { return idxWant{dims: []int{3, 4}} }

func (w idxWant) labels() bool { return slices.Equal(w.dims, []int{1}) }

// magics is the accepted magic numbers, e.g. "2051 or 2052".
func (w idxWant) magics() string {
	s := make([]string, len(w.dims))
	for i, d := range w.dims {
		s[i] = strconv.Itoa(idxUnsignedByte<<8 | d)
	}
	return strings.Join(s, " or ")
}

// wrongDims says why a file of nd dimensions is not what w wants.
func (w idxWant) wrongDims(nd int) string {
	switch {
	case w.labels() && (nd == 3 || nd == 4):
		return fmt.Sprintf("this is an images file (%d dimensions), not a labels file", nd)
	case !w.labels() && nd == 1:
		return "this is a labels file (1 dimension), not an images file"
	case w.labels():
		return fmt.Sprintf("%d dimensions, want 1 (n labels)", nd)
	case slices.Contains(w.dims, 4):
		return fmt.Sprintf("%d dimensions, want 3 (n×h×w) or 4 (n×c×h×w)", nd)
	}
	return fmt.Sprintf("%d dimensions, want 3 (n×h×w)", nd)
}

// idxTypeName names the element types of the IDX format.
func idxTypeName(t byte) string {
	switch t {
	case 0x08:
		return "unsigned byte"
	case 0x09:
		return "signed byte"
	case 0x0B:
		return "int16"
	case 0x0C:
		return "int32"
	case 0x0D:
		return "float32"
	case 0x0E:
		return "float64"
	}
	return "unknown type"
}

// pixelTable maps each pixel byte to its float32 value x/255.
type pixelTable [256]float32

func newPixelTable() *pixelTable {
	var t pixelTable
	for i := range t {
		t[i] = float32(i) / 255
	}
	return &t
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

// idxArray is the content of an idx file: its sizes, the item count
// first, and its values, row-major.
type idxArray struct {
	dims []int
	data []byte
}

// readIdx decodes an idx file of unsigned bytes that w accepts, gzipped or
// not as its first two bytes tell. It reads the whole file, so that gzip
// checks the CRC and length and trailing data is refused. Errors name the
// path; the caller prefixes the dataset. A missing file wraps
// ErrDatasetNotFound.
func readIdx(ctx context.Context, path string, w idxWant) (idxArray, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return idxArray{}, fmt.Errorf("%w: %w", ErrDatasetNotFound, err)
		}
		return idxArray{}, err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.IsDir() {
		return idxArray{}, fmt.Errorf("%s is a directory, want an idx file", path)
	}
	br := bufio.NewReaderSize(f, 1<<16)
	var src io.Reader = br
	gz := false
	if head, _ := br.Peek(2); len(head) == 2 && head[0] == 0x1f && head[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return idxArray{}, idxReadError(path, true, "gzip header", err)
		}
		defer zr.Close()
		src, gz = zr, true
	}
	r := ctxReader{ctx: ctx, r: src}

	var magic [4]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil {
		return idxArray{}, idxReadError(path, gz, "header", err)
	}
	if err := w.checkMagic(path, gz, magic); err != nil {
		return idxArray{}, err
	}
	header := make([]byte, 4*int(magic[3]))
	if _, err := io.ReadFull(r, header); err != nil {
		return idxArray{}, idxReadError(path, gz, "header", err)
	}
	dims := make([]int, magic[3])
	for i := range dims {
		dims[i] = int(binary.BigEndian.Uint32(header[4*i:]))
	}
	n := dims[0]
	switch {
	case n == 0:
		return idxArray{}, fmt.Errorf("%s holds no items", path)
	case n > maxDatasetRows:
		return idxArray{}, fmt.Errorf("%s: header promises %d items, more than the %d supported", path, n, maxDatasetRows)
	}
	itemSize := 1
	for _, d := range dims[1:] {
		if d == 0 {
			return idxArray{}, fmt.Errorf("%s: items of %s values hold nothing", path, joinDims(dims[1:]))
		}
		if d > idxMaxItemValues || itemSize > idxMaxItemValues/d {
			return idxArray{}, fmt.Errorf("%s: items of %s values are too large (at most %d values each)", path, joinDims(dims[1:]), idxMaxItemValues)
		}
		itemSize *= d
	}
	if w.check != nil {
		if err := w.check(dims); err != nil {
			return idxArray{}, fmt.Errorf("%s: %w", path, err)
		}
	}

	// Grow the buffer as data arrives rather than trusting the header for
	// one huge allocation; MNIST itself fits the first allocation.
	size := int64(n) * int64(itemSize)
	var buf bytes.Buffer
	buf.Grow(int(min(size, 1<<26)))
	got, err := buf.ReadFrom(io.LimitReader(r, size))
	if err != nil {
		return idxArray{}, idxReadError(path, gz, "data", err)
	}
	if got != size {
		return idxArray{}, fmt.Errorf("%s is truncated: its header promises %d items (%d bytes of data), it holds %d bytes", path, n, size, got)
	}
	var extra [1]byte
	switch k, err := io.ReadFull(r, extra[:]); {
	case k > 0:
		return idxArray{}, fmt.Errorf("%s has data after the %d items its header promises", path, n)
	case err != io.EOF:
		return idxArray{}, idxReadError(path, gz, "end", err)
	}
	return idxArray{dims: dims, data: buf.Bytes()}, nil
}

// checkMagic checks the magic number of an idx file.
func (w idxWant) checkMagic(path string, gz bool, m [4]byte) error {
	switch {
	case (m[0] != 0 || m[1] != 0) && gz:
		return fmt.Errorf("%s: the gzip content is not an IDX file: it starts with bytes % x, not with the two zero bytes of an IDX header", path, m)
	case m[0] != 0 || m[1] != 0:
		return fmt.Errorf("%s is not a gzip file and not an IDX file: it starts with bytes % x, not with the two zero bytes of an IDX header", path, m)
	}
	magic := binary.BigEndian.Uint32(m[:])
	if m[2] != idxUnsignedByte {
		return fmt.Errorf("%s: magic number %d, want %s: type 0x%02X (%s): only unsigned bytes (0x%02X) are supported",
			path, magic, w.magics(), m[2], idxTypeName(m[2]), idxUnsignedByte)
	}
	if !slices.Contains(w.dims, int(m[3])) {
		return fmt.Errorf("%s: magic number %d, want %s: %s", path, magic, w.magics(), w.wrongDims(int(m[3])))
	}
	return nil
}

// idxReadError describes an error met reading the named part of path; an
// early end is a truncated file.
func idxReadError(path string, gz bool, part string, err error) error {
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return err
	case gz && errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%s is truncated: its gzip stream ends early, in the %s: %w", path, part, err)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%s is truncated: it ends in the %s", path, part)
	}
	return fmt.Errorf("%s: read the %s: %w", path, part, err)
}

// joinDims writes sizes as h×w or c×h×w.
func joinDims(dims []int) string {
	s := make([]string, len(dims))
	for i, d := range dims {
		s[i] = strconv.Itoa(d)
	}
	return strings.Join(s, "×")
}

// idxRows are images of unsigned bytes, features values each, and their
// labels, as read from idx files.
type idxRows struct {
	pix      []byte // len(labels)·features
	labels   []byte
	features int
	scale    *pixelTable
}

func (r idxRows) len() int { return len(r.labels) }

func (r idxRows) copyRow(dst []float32, i int) {
	src := r.pix[i*r.features : (i+1)*r.features]
	dst = dst[:len(src)]
	for j, p := range src {
		dst[j] = r.scale[p]
	}
}

func (r idxRows) label(i int) int32 { return int32(r.labels[i]) }

// idxPair is an images file and its labels file, decoded.
type idxPair struct {
	rows  idxRows
	shape ImageShape
}

// readIdxPair reads an images file that images accepts and its labels
// file, and checks that they hold as many images as labels. Errors name the
// files; the caller prefixes the dataset.
func readIdxPair(ctx context.Context, imagesPath, labelsPath string, images idxWant) (idxPair, error) {
	img, err := readIdx(ctx, imagesPath, images)
	if err != nil {
		return idxPair{}, err
	}
	lab, err := readIdx(ctx, labelsPath, idxLabels())
	if err != nil {
		return idxPair{}, err
	}
	if n, nl := img.dims[0], lab.dims[0]; n != nl {
		return idxPair{}, fmt.Errorf("%s has %d images but %s has %d labels", imagesPath, n, labelsPath, nl)
	}
	shape := ImageShape{Channels: 1, Height: img.dims[1], Width: img.dims[2]}
	if len(img.dims) == 4 {
		shape = ImageShape{Channels: img.dims[1], Height: img.dims[2], Width: img.dims[3]}
	}
	features := shape.Channels * shape.Height * shape.Width
	return idxPair{rows: idxRows{pix: img.data, labels: lab.data, features: features}, shape: shape}, nil
}

// parseIdxSource reads the PATH of idx:PATH: a directory, or four files
// separated by commas. A path with commas is a list unless it names an
// existing directory.
func parseIdxSource(p string) (dir string, files []string, err error) {
	if strings.TrimSpace(p) == "" {
		return "", nil, errors.New("idx dataset without a path (want idx:DIR or " + idxListSyntax + ")")
	}
	if !strings.Contains(p, ",") {
		return p, nil, nil
	}
	if st, err := os.Stat(p); err == nil && st.IsDir() {
		return p, nil, nil
	}
	parts := strings.Split(p, ",")
	if len(parts) != 4 {
		return "", nil, fmt.Errorf("idx dataset lists %d files, want a directory or exactly four files: %s", len(parts), idxListSyntax)
	}
	roles := idxRoles()
	for i, f := range parts {
		f = strings.TrimSpace(f)
		if f == "" {
			return "", nil, fmt.Errorf("idx dataset lists no %s file (entry %d of %s is empty)", roles[i], i+1, idxListSyntax)
		}
		files = append(files, f)
	}
	return "", files, nil
}

// findIdxFiles finds the four files of an idx dataset in dir by their
// names. A file and its gzipped twin (as torchvision keeps them) count as
// one, the plain file.
func findIdxFiles(dir string) ([4]string, error) {
	var files [4]string
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return files, fmt.Errorf("idx: %w: %w", ErrDatasetNotFound, err)
	case err != nil:
		return files, fmt.Errorf("idx: %w", err)
	case !st.IsDir():
		return files, fmt.Errorf("idx: %s is a file, not a directory; give a directory or the four files as %s", dir, idxListSyntax)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return files, fmt.Errorf("idx: read directory: %w", err)
	}

	var found [4][]string
	names := idxRoleNames()
	for _, e := range entries {
		key := strings.ReplaceAll(strings.TrimSuffix(e.Name(), ".gz"), ".idx", "-idx")
		for role, suffixes := range names {
			if !slices.ContainsFunc(suffixes, func(s string) bool { return strings.HasSuffix(key, s) }) {
				continue
			}
			if st, err := os.Stat(filepath.Join(dir, e.Name())); err == nil && !st.IsDir() {
				found[role] = append(found[role], e.Name())
			}
		}
	}

	var missing, ambiguous []string
	roles := idxRoles()
	for role, cands := range found {
		var distinct []string
		for _, c := range cands {
			if plain, ok := strings.CutSuffix(c, ".gz"); !ok || !slices.Contains(cands, plain) {
				distinct = append(distinct, c)
			}
		}
		switch len(distinct) {
		case 0:
			missing = append(missing, fmt.Sprintf("no %s file (a name ending in %s, .gz or not)",
				roles[role], strings.Join(names[role], " or ")))
		case 1:
			files[role] = filepath.Join(dir, distinct[0])
		default:
			ambiguous = append(ambiguous, fmt.Sprintf("%d %s files (%s)", len(distinct), roles[role], strings.Join(distinct, ", ")))
		}
	}
	probs := strings.Join(append(missing, ambiguous...), "; ")
	switch {
	case len(missing) > 0:
		return files, fmt.Errorf("idx: %w: directory %s has %s; give the four files explicitly as %s",
			ErrDatasetNotFound, dir, probs, idxListSyntax)
	case len(ambiguous) > 0:
		return files, fmt.Errorf("idx: directory %s has %s; give the four files explicitly as %s",
			dir, probs, idxListSyntax)
	}
	return files, nil
}

// loadIdx loads idx:PATH: the training images are the training pool, the
// test images the test set. The number of classes is the largest label of
// either plus one.
func loadIdx(ctx context.Context, s DatasetSpec, path string) (*Data, error) {
	dir, list, err := parseIdxSource(path)
	if err != nil {
		return nil, fmt.Errorf("idx: %w", err)
	}
	var files [4]string
	if list != nil {
		copy(files[:], list)
	} else if files, err = findIdxFiles(dir); err != nil {
		return nil, err
	}

	var train, test idxPair
	var trainErr, testErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		if train, trainErr = readIdxPair(ctx, files[0], files[1], idxImages()); trainErr != nil {
			trainErr = fmt.Errorf("idx: %w", trainErr)
		}
	})
	if test, testErr = readIdxPair(ctx, files[2], files[3], idxImages()); testErr != nil {
		testErr = fmt.Errorf("idx: %w", testErr)
	}
	wg.Wait()
	if err := errors.Join(trainErr, testErr); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, err
	}
	if train.shape != test.shape {
		return nil, fmt.Errorf("idx: training images %s are %s but test images %s are %s; both must have one shape",
			files[0], train.shape, files[2], test.shape)
	}
	maxLabel := max(slices.Max(train.rows.labels), slices.Max(test.rows.labels))
	if maxLabel == 0 {
		return nil, fmt.Errorf("idx: every label of %s and %s is 0; need at least 2 classes", files[1], files[3])
	}
	classes := int(maxLabel) + 1

	train.rows.scale = newPixelTable()
	test.rows.scale = train.rows.scale
	features := train.rows.features
	if s.TestSize > test.rows.len() {
		return nil, fmt.Errorf("idx: test size %d is larger than the %d test images of %s", s.TestSize, test.rows.len(), files[2])
	}
	testSplit := subsampleRows(test.rows, features, s.TestSize, newRand(s.Seed, streamTest))
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d, err := assembleData(ctx, s, features, classes, train.rows, testSplit)
	if err != nil {
		return nil, err
	}
	d.Image = train.shape
	return d, nil
}
