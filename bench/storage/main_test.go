package storagebench

import (
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/floodtune/floodtune/internal/pgtest"
)

func TestMain(m *testing.M) {
	code := pgtest.Main(m)
	printSummary(os.Stdout)
	os.Exit(code)
}

// The tables of the summary.
const (
	tableAskTell = "asktell"
	tableLoad    = "load"
	tableTPE     = "tpe"
	tableFill    = "fill"
)

// results holds the figures of the benchmarks, by table, row and backend:
// trials/s for ask/tell, seconds otherwise (medians for loads and
// suggestions). The harness runs a benchmark's function several times with
// a growing b.N and reports the last run: a figure recorded again under
// the same *testing.B replaces the one before. With -count, each count is
// a new *testing.B, and the tables show the median over the counts.
var results = struct {
	sync.Mutex
	m    map[string]map[string]map[string]map[*testing.B]float64
	rows map[string][]string // rows in order of appearance
}{m: map[string]map[string]map[string]map[*testing.B]float64{}, rows: map[string][]string{}}

func record(b *testing.B, table, row, backend string, v float64) {
	results.Lock()
	defer results.Unlock()
	if results.m[table] == nil {
		results.m[table] = map[string]map[string]map[*testing.B]float64{}
	}
	if results.m[table][row] == nil {
		results.m[table][row] = map[string]map[*testing.B]float64{}
		results.rows[table] = append(results.rows[table], row)
	}
	if results.m[table][row][backend] == nil {
		results.m[table][row][backend] = map[*testing.B]float64{}
	}
	results.m[table][row][backend][b] = v
}

// figure returns the median of the figures recorded for table, row and
// backend, and whether there are any.
func figure(table, row, backend string) (float64, bool) {
	var vs []float64
	for _, v := range results.m[table][row][backend] {
		vs = append(vs, v)
	}
	if len(vs) == 0 {
		return 0, false
	}
	slices.Sort(vs)
	if n := len(vs); n%2 == 0 {
		return (vs[n/2-1] + vs[n/2]) / 2, true
	}
	return vs[len(vs)/2], true
}

// recordFill records the time a backend's stored study took to fill up to
// n trials (cumulative: the 10,000-trial figure includes the first 1,000).
func recordFill(b *testing.B, n int, backend string, d time.Duration) {
	record(b, tableFill, strconv.Itoa(n), backend, d.Seconds())
}

// printSummary prints the figures recorded as Markdown tables, with
// floodtune-PostgreSQL's speed-up over rdb.v2 (above 1: floodtune is
// faster).
func printSummary(w io.Writer) {
	results.Lock()
	defer results.Unlock()
	if len(results.m) == 0 {
		return
	}
	fmt.Fprintf(w, "\n## Storage: floodtune against Goptuna's rdb.v2 (same PostgreSQL server, same run)\n")
	if f := flag.Lookup("test.count"); f != nil && f.Value.String() != "1" {
		fmt.Fprintf(w, "\nEach figure is the median of the -count=%s runs.\n", f.Value)
	}
	cols := []string{floodtunePG, floodtuneSQLite, rdbPG}
	if results.m[tableAskTell] != nil {
		fmt.Fprintf(w, "\n### Ask/tell throughput, trials/s (%d workers, a fresh study of %d trials per run)\n\n",
			*flagWorkers, *flagWorkers*max(*flagTrials / *flagWorkers, 1))
		header(w, "sampler", cols, "floodtune-pg / rdb.v2")
		for _, row := range results.rows[tableAskTell] {
			line(w, tableAskTell, row, cols, func(v float64) string { return fmt.Sprintf("%.0f", v) }, func(ft, rdb float64) float64 { return ft / rdb })
		}
	}
	cols = append(cols, memory)
	for _, tb := range []struct{ table, title, unit string }{
		{tableLoad, "Loading a study (GetAllTrials), ms (median)", "trials"},
		{tableTPE, "One TPE suggestion (tpe.Sampler.Sample, one parameter, reloads all trials), ms (median)", "trials"},
		{tableFill, "Filling the stored study trial by trial with CloneTrial (not timed by the benchmarks), s, cumulative", "trials"},
	} {
		if results.m[tb.table] == nil {
			continue
		}
		fmt.Fprintf(w, "\n### %s\n\n", tb.title)
		header(w, tb.unit, cols, "speed-up of floodtune-pg over rdb.v2")
		for _, row := range results.rows[tb.table] {
			scale, format := 1e3, "%.2f"
			if tb.table == tableFill {
				scale, format = 1, "%.1f"
			}
			line(w, tb.table, row, cols, func(v float64) string { return fmt.Sprintf(format, v*scale) }, func(ft, rdb float64) float64 { return rdb / ft })
		}
	}
	fmt.Fprintln(w)
}

func header(w io.Writer, first string, cols []string, ratio string) {
	fmt.Fprintf(w, "| %s |", first)
	for _, c := range cols {
		fmt.Fprintf(w, " %s |", c)
	}
	fmt.Fprintf(w, " %s |\n|---|", ratio)
	for range cols {
		fmt.Fprint(w, "---:|")
	}
	fmt.Fprintln(w, "---:|")
}

// line prints a row of a table, and the speed-up of floodtune-pg over
// rdb.v2 computed by ratio from their figures.
func line(w io.Writer, table, row string, cols []string, format func(float64) string, ratio func(ft, rdb float64) float64) {
	fmt.Fprintf(w, "| %s |", row)
	for _, c := range cols {
		if v, ok := figure(table, row, c); ok {
			fmt.Fprintf(w, " %s |", format(v))
		} else {
			fmt.Fprint(w, " – |")
		}
	}
	ft, okFT := figure(table, row, floodtunePG)
	rdb, okRDB := figure(table, row, rdbPG)
	if okFT && okRDB {
		fmt.Fprintf(w, " %.2f× |\n", ratio(ft, rdb))
	} else {
		fmt.Fprint(w, " – |\n")
	}
}
