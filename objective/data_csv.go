package objective

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

const (
	// csvMaxLabel bounds labels so that a stray large number cannot ask for
	// a model with millions of outputs.
	csvMaxLabel = 1<<16 - 1
	// csvMaxLine bounds the length of one line.
	csvMaxLine = 64 << 20
)

// csvTable is a parsed csv file.
type csvTable struct {
	floatRows
	maxLabel int32
	distinct int // number of distinct labels
}

// loadCSV loads csv:PATH. Each line holds numeric features then an integer
// label; a non-numeric first line is a header. The test set is TestCSV when
// given (subsampled to TestSize), else a seeded hold-out of TestSize rows or
// of TestFraction of the rows.
func loadCSV(ctx context.Context, s DatasetSpec, path string) (*Data, error) {
	all, err := readCSVFile(path)
	if err != nil {
		return nil, err
	}
	if all.distinct < 2 {
		return nil, fmt.Errorf("csv %s: every row has label %d; need at least 2 classes", path, all.maxLabel)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	features := all.features
	classes := int(all.maxLabel) + 1

	var pool labelledRows
	var test Split
	if s.TestCSV != "" {
		t, err := readCSVFile(s.TestCSV)
		if err != nil {
			return nil, err
		}
		if t.features != features {
			return nil, fmt.Errorf("csv %s: %d features, but %s has %d", s.TestCSV, t.features, path, features)
		}
		classes = max(classes, int(t.maxLabel)+1)
		if s.TestSize > t.len() {
			return nil, fmt.Errorf("csv %s: test size %d is larger than its %d rows", s.TestCSV, s.TestSize, t.len())
		}
		pool = all.floatRows
		test = subsampleRows(t.floatRows, features, s.TestSize, newRand(s.Seed, streamTest))
	} else {
		n := all.len()
		nTest := s.TestSize
		if nTest == 0 {
			nTest = int(math.Round(s.testFraction() * float64(n)))
		}
		if nTest < 1 || nTest >= n {
			return nil, fmt.Errorf("csv %s: cannot hold out %d of %d rows as the test set", path, nTest, n)
		}
		perm := newRand(s.Seed, streamHoldOut).Perm(n)
		test = gatherRows(all.floatRows, features, perm[:nTest])
		rest := gatherRows(all.floatRows, features, perm[nTest:])
		pool = floatRows{x: rest.X, y: rest.Y, features: features}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return assembleData(ctx, s, features, classes, pool, test)
}

// readCSVFile opens and parses one csv file; a missing file wraps
// ErrDatasetNotFound.
func readCSVFile(path string) (csvTable, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return csvTable{}, fmt.Errorf("csv %s: %w: %w", path, ErrDatasetNotFound, err)
		}
		return csvTable{}, fmt.Errorf("csv %s: %w", path, err)
	}
	defer f.Close()
	return parseCSV(f, path)
}

// parseCSV parses r; name is the file name used in errors.
func parseCSV(r io.Reader, name string) (csvTable, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), csvMaxLine)
	var (
		t       csvTable
		cols    int // expected columns; 0 until the first non-empty line
		lineNo  int
		seen    = map[int32]bool{}
		fields  []string
		lineErr = func(format string, args ...any) error {
			return fmt.Errorf("csv %s line %d: %s", name, lineNo, fmt.Sprintf(format, args...))
		}
	)
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		fields = splitCSVLine(fields[:0], line)
		if cols == 0 {
			cols = len(fields)
			if cols < 2 {
				return csvTable{}, lineErr("need at least 2 columns (features, then the label), got %d", cols)
			}
			t.features = cols - 1
			if !allNumbers(fields) {
				continue // header
			}
		}
		if len(fields) != cols {
			return csvTable{}, lineErr("expected %d columns, got %d", cols, len(fields))
		}
		for j, f := range fields[:cols-1] {
			v, err := strconv.ParseFloat(f, 64)
			switch {
			case err != nil && !errors.Is(err, strconv.ErrRange):
				return csvTable{}, lineErr("column %d: %q is not a number", j+1, f)
			case math.IsNaN(v):
				return csvTable{}, lineErr("column %d: feature is NaN", j+1)
			case math.IsInf(v, 0) || math.IsInf(float64(float32(v)), 0):
				return csvTable{}, lineErr("column %d: feature %q is infinite or out of float32 range", j+1, f)
			}
			t.x = append(t.x, float32(v))
		}
		label, err := parseLabel(fields[cols-1])
		if err != nil {
			return csvTable{}, lineErr("column %d: %v", cols, err)
		}
		t.y = append(t.y, label)
		t.maxLabel = max(t.maxLabel, label)
		seen[label] = true
	}
	if err := sc.Err(); err != nil {
		return csvTable{}, fmt.Errorf("csv %s after line %d: %w", name, lineNo, err)
	}
	if len(t.y) == 0 {
		return csvTable{}, fmt.Errorf("csv %s: no data rows", name)
	}
	t.distinct = len(seen)
	return t, nil
}

// splitCSVLine splits a line at commas and trims the fields.
func splitCSVLine(dst []string, line string) []string {
	for f := range strings.SplitSeq(line, ",") {
		dst = append(dst, strings.TrimSpace(f))
	}
	return dst
}

func allNumbers(fields []string) bool {
	for _, f := range fields {
		if _, err := strconv.ParseFloat(f, 64); err != nil && !errors.Is(err, strconv.ErrRange) {
			return false
		}
	}
	return true
}

// parseLabel parses a class label: a non-negative integer, written either
// as an integer or as a float with no fractional part ("3" or "3.0").
func parseLabel(f string) (int32, error) {
	v, err := strconv.ParseFloat(f, 64)
	switch {
	case err != nil && !errors.Is(err, strconv.ErrRange):
		return 0, fmt.Errorf("label %q is not a number", f)
	case math.IsNaN(v) || math.IsInf(v, 0) || v != math.Trunc(v):
		return 0, fmt.Errorf("label %q is not an integer", f)
	case v < 0:
		return 0, fmt.Errorf("label %q is negative", f)
	case v > csvMaxLabel:
		return 0, fmt.Errorf("label %q is too large (at most %d)", f, csvMaxLabel)
	}
	return int32(v), nil
}
