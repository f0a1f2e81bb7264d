// Command overhead measures floodtune's search overhead per trial: every
// part of a trial but training. It creates a study through the public API
// (search.ParseSpec, search.Create) and optimises it with search.Optimize
// and an objective that trains nothing, so that what a worker spends on a
// trial is all overhead: claiming or creating the trial, TPE's sampling over
// the study's history (with the constant liar), the writes of parameters,
// seeds, intermediate values and attributes, and finishing the trial.
//
// The search space is a flood level in [0, 1.5] and a log-uniform learning
// rate in [0.01, 0.3], TPE, 2 workers. The objective reports -epochs
// intermediate values and records the user attributes that the built-in
// objective records, then returns the value of a smooth toy surface plus
// noise (the same as bench/overhead/optuna_overhead.py's).
//
// A trial's overhead is the time its worker took from finishing its
// previous trial to finishing this one (from the start of Optimize for its
// first), with the two workers running at once as they do in a search. The
// program prints the mean over trial numbers 90-109 ("at 100 trials") and
// over the last 20 trials ("at N trials"), the same means for the parts of
// a trial, and a profile by hundreds of trials. Its last line is
//
//	RESULT	floodtune	<storage>	<ms at 100>	<ms at N>	<N>
//
// which bench/overhead.sh reads.
//
//	go -C bench run ./overhead -storage sqlite:/tmp/x.db -trials 1000
//	go -C bench run ./overhead -storage postgres://user@host/db -trials 1000
//
// A SQLite file must not exist yet. On PostgreSQL the study goes into a new
// schema of the URL's database, dropped at the end.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"net/url"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/floodtune/floodtune/search"
	"github.com/floodtune/floodtune/storage"
)

// window is the block of trial numbers [lo, hi) whose mean is reported.
type window struct{ lo, hi int }

// windows returns the two windows reported for a study of n trials: around
// trial 100 and the last 20.
func windows(n int) (at100, atN window) {
	return window{90, 110}, window{n - 20, n}
}

func main() {
	rawURL := flag.String("storage", "", "sqlite:PATH (a new file) or postgres://... (a new schema is created in its database and dropped)")
	trials := flag.Int("trials", 1000, "trials in the study (at least 110)")
	workers := flag.Int("workers", 2, "workers of search.Optimize")
	epochs := flag.Int("epochs", 10, "intermediate values reported per trial")
	seed := flag.Int64("seed", 1, "the study's seed")
	csvPath := flag.String("csv", "", "write the per-trial figures to this CSV file")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the optimisation to this file")
	flag.Parse()
	if *rawURL == "" || *trials < 110 || *workers < 1 || *epochs < 1 {
		fmt.Fprintln(os.Stderr, "overhead: want -storage URL, -trials >= 110, -workers >= 1, -epochs >= 1")
		os.Exit(2)
	}
	if err := run(*rawURL, *trials, *workers, *epochs, *seed, *csvPath, *cpuProfile); err != nil {
		fmt.Fprintf(os.Stderr, "overhead: %v\n", err)
		os.Exit(1)
	}
}

// trialTimes are the instants of one trial, by the worker that ran it.
type trialTimes struct {
	start    time.Time // the objective is called
	reported time.Time // its intermediate values are written
	returned time.Time // it returns
	finished time.Time // OnTrial: the trial is finished in the store
}

func run(rawURL string, n, workers, epochs int, seed int64, csvPath, cpuProfile string) error {
	ctx := context.Background()
	kind := "sqlite"
	if strings.HasPrefix(rawURL, "postgres:") || strings.HasPrefix(rawURL, "postgresql:") {
		kind = "postgresql"
		u, drop, err := freshSchema(ctx, rawURL)
		if err != nil {
			return err
		}
		defer drop()
		rawURL = u
	} else if path, ok := strings.CutPrefix(rawURL, "sqlite:"); ok {
		if _, err := os.Stat(path); err == nil {
			return fmt.Errorf("%s exists: give a new file", path)
		}
	}
	st, err := storage.Open(ctx, rawURL)
	if err != nil {
		return err
	}
	defer st.Close()

	spec, err := search.ParseSpec([]byte(fmt.Sprintf(`
dataset: {name: mnist, label_noise: 0.2, train_size: 10000, val_size: 2500}
model: {hidden: [500, 500]}
training: {optimizer: momentum, lr: 0.1, batch_size: 128, epochs: %d, flood: flood}
search: {sampler: tpe, pruner: none, trials: %d, seed: %d, objective: val_acc}
space:
  flood_level: {type: float, low: 0.0, high: 1.5}
  lr: {type: float, low: 0.01, high: 0.3, log: true}
`, epochs, n, seed)))
	if err != nil {
		return err
	}
	const name = "overhead"
	study, err := search.Create(ctx, st, name, spec)
	if err != nil {
		return err
	}

	var mu sync.Mutex
	times := map[int]*trialTimes{}
	objective := func(ctx context.Context, t *search.Trial) (float64, error) {
		tt := &trialTimes{start: time.Now()}
		mu.Lock()
		times[t.Number] = tt
		mu.Unlock()
		rng := mrand.New(mrand.NewPCG(uint64(t.Seed), 0))
		value := surface(t.Config.FloodLevel, t.Config.LR) + 0.005*rng.NormFloat64()
		curve := make([]string, epochs)
		for e := 1; e <= epochs; e++ {
			v := value * (1 - math.Exp(-3*float64(e)/float64(epochs))) / (1 - math.Exp(-3))
			curve[e-1] = strconv.FormatFloat(v, 'g', 6, 64)
			if err := t.Report(ctx, e, v); err != nil {
				return math.NaN(), err
			}
		}
		tt.reported = time.Now()
		// The user attributes the built-in objective records.
		f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
		for k, v := range map[string]string{
			"ascent_fraction": f(0.3 * rng.Float64()), "epochs": strconv.Itoa(epochs), "seconds": "20",
			"test_acc": f(value + 0.01), "test_loss": f(0.5 + rng.Float64()), "train_loss": f(1 + rng.Float64()),
			"train_acc": f(0.8), "val_loss": f(0.5 + rng.Float64()), "val_acc": f(value),
			"train_loss_curve": "[" + strings.Join(curve, ",") + "]", "val_loss_curve": "[" + strings.Join(curve, ",") + "]",
		} {
			t.Attrs[k] = v
		}
		tt.returned = time.Now()
		return value, nil
	}
	var failed []string
	onTrial := func(r search.Result) {
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		if tt := times[r.Number]; tt != nil {
			tt.finished = now
		}
		if r.State != storage.Complete {
			failed = append(failed, fmt.Sprintf("trial %d: %s %v", r.Number, r.State, r.Err))
		}
	}

	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	t0 := time.Now()
	err = search.Optimize(ctx, st, name, search.Options{Workers: workers, Name: "bench", Objective: objective, OnTrial: onTrial, ReserveThreads: true})
	total := time.Since(t0)
	if err != nil {
		return err
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d trials did not complete: %s", len(failed), strings.Join(failed, "; "))
	}

	// Which worker ran which trial is in the store.
	stored, err := st.Trials(ctx, study.ID())
	if err != nil {
		return err
	}
	if len(stored) != n {
		return fmt.Errorf("the study holds %d trials, want %d", len(stored), n)
	}
	byWorker := map[string][]int{}
	for _, t := range stored {
		if times[t.Number] == nil || times[t.Number].finished.IsZero() {
			return fmt.Errorf("trial %d was not timed", t.Number)
		}
		byWorker[t.Worker] = append(byWorker[t.Worker], t.Number)
	}
	rows := make([]row, n)
	for _, numbers := range byWorker {
		slices.SortFunc(numbers, func(a, b int) int { return times[a].finished.Compare(times[b].finished) })
		prev := t0
		for _, num := range numbers {
			tt := times[num]
			rows[num] = row{
				cycle:  ms(tt.finished.Sub(prev)),
				before: ms(tt.start.Sub(prev)),
				report: ms(tt.reported.Sub(tt.start)),
				attrs:  ms(tt.returned.Sub(tt.reported)),
				after:  ms(tt.finished.Sub(tt.returned)),
			}
			prev = tt.finished
		}
	}
	if csvPath != "" {
		if err := writeCSV(csvPath, rows); err != nil {
			return err
		}
	}

	at100, atN := windows(n)
	fmt.Printf("floodtune, %s: %d trials, %d workers, %d intermediate values a trial, %.1f s (%.0f trials/s)\n",
		kind, n, workers, epochs, total.Seconds(), float64(n)/total.Seconds())
	fmt.Printf("  ms a trial (mean)                at %d (trials %d-%d)   at %d (trials %d-%d)\n", at100.hi-10, at100.lo, at100.hi-1, n, atN.lo, atN.hi-1)
	for _, p := range []struct {
		what string
		f    func(row) float64
	}{
		{"whole trial", func(r row) float64 { return r.cycle }},
		{"  claim/create, sample, params, seeds", func(r row) float64 { return r.before }},
		{"  intermediate values", func(r row) float64 { return r.report }},
		{"  rest of the objective", func(r row) float64 { return r.attrs }},
		{"  attributes and finish", func(r row) float64 { return r.after }},
	} {
		fmt.Printf("  %-38s %8.2f %27.2f\n", p.what, mean(rows, at100, p.f), mean(rows, atN, p.f))
	}
	fmt.Print("  by hundreds of trials, mean ms:")
	for lo := 0; lo < n; lo += 100 {
		fmt.Printf(" %.1f", mean(rows, window{lo, min(lo+100, n)}, func(r row) float64 { return r.cycle }))
	}
	fmt.Println()
	cycle := func(r row) float64 { return r.cycle }
	fmt.Printf("RESULT\tfloodtune\t%s\t%.3f\t%.3f\t%d\n", kind, mean(rows, at100, cycle), mean(rows, atN, cycle), n)
	return nil
}

// surface is the toy validation accuracy of both benchmarks: best near the
// flood level 0.94 and the learning rate 0.1.
func surface(level, lr float64) float64 {
	d := math.Log(lr / 0.1)
	return 0.9 - 0.05*(level-0.94)*(level-0.94) - 0.02*d*d
}

// row holds a trial's figures in milliseconds: the whole cycle of its worker
// and its parts.
type row struct{ cycle, before, report, attrs, after float64 }

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func mean(rows []row, w window, f func(row) float64) float64 {
	s := 0.0
	for _, r := range rows[w.lo:w.hi] {
		s += f(r)
	}
	return s / float64(w.hi-w.lo)
}

func writeCSV(path string, rows []row) error {
	var b strings.Builder
	b.WriteString("number,cycle_ms,before_ms,report_ms,objective_ms,after_ms\n")
	for i, r := range rows {
		fmt.Fprintf(&b, "%d,%.3f,%.3f,%.3f,%.3f,%.3f\n", i, r.cycle, r.before, r.report, r.attrs, r.after)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// freshSchema creates a new schema in the database of rawURL and returns a
// URL whose connections use it, and a function that drops it.
func freshSchema(ctx context.Context, rawURL string) (string, func(), error) {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "overhead_" + hex.EncodeToString(b)
	conn, err := pgx.Connect(ctx, rawURL)
	if err != nil {
		return "", nil, fmt.Errorf("connect to %s: %w", storage.Redact(rawURL), err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		return "", nil, fmt.Errorf("create schema %s: %w", schema, err)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", nil, errors.New("want a URL like postgres://user@host:5432/db")
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	drop := func() {
		conn, err := pgx.Connect(context.Background(), rawURL)
		if err != nil {
			fmt.Fprintf(os.Stderr, "overhead: drop schema %s: %v\n", schema, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			fmt.Fprintf(os.Stderr, "overhead: drop schema %s: %v\n", schema, err)
		}
	}
	return u.String(), drop, nil
}
