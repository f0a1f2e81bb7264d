// Command tpecost measures what one TPE suggestion costs as a study grows:
// at 1,000, 10,000 and 50,000 complete trials (-sizes), the storage time
// (reading the study's trials) apart from the sampler's own time, the
// first suggestion of a fresh process (cold: nothing of the study cached
// by floodtune; the server's buffers are warm) and the following ones
// (warm).
//
// One study in a fresh database of the -db server, created through
// storage.CreateStudy with the spec of an external trainer (TPE over
// flood_level and a log-uniform lr) and no budget (a budget makes every
// new trial count the study's trials). Its first 20 trials run through
// search.Study.Ask/Tell; then it is filled with complete trials through
// storage.CreateTrial (a final state, the parameters with the
// distributions the search recorded, -epochs intermediate values, the two
// system and -attrs user attributes a built-in trial has) by -fill
// goroutines on connections with synchronous_commit=off (storage has no
// batch path: NewStudy's trials must be waiting), grown from one size to
// the next and vacuumed before it is measured. Per size:
//
//	Trials cold/warm  storage.Store.Trials on a new Store, then again on it
//	                  (median of -reps)
//	list query        Store.Trials' first query (ids, states, completion
//	                  times of every trial) alone, the same SQL on a pgx
//	                  connection: the database's and the wire's share
//	GetAllTrials warm the adapter's GetAllTrials once, on an adapter kept
//	                  across suggestions as a search.Study keeps one
//	storage cold/warm the adapter's GetAllTrials (Store.Trials and the
//	                  conversion to Goptuna's trials) inside one suggestion
//	                  of both parameters, done as Study.Ask does it (TPE
//	                  with search's start-up setting, one load per
//	                  parameter), on a new Store and then again: "storage"
//	                  is the time inside GetAllTrials, "sampler" the rest
//	                  of tpe.Sampler.Sample
//	Ask cold/warm     search.Study.Ask end to end (reap, create, both
//	                  suggestions with the constant liar, the parameter and
//	                  seed writes) on a new Store, then again (median of
//	                  -reps; each asked trial is told)
//
// The goal line says whether one suggestion's storage time is under 50 ms
// at the largest size, warm and cold. -cpuprofile profiles -reps warm Asks
// at the largest size.
//
//	go -C bench run ./tpecost -db postgres://postgres@127.0.0.1:5432/postgres -sizes 1000,10000,50000
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net/url"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/floodtune/floodtune/bench/internal/stats"

	"github.com/c-bata/goptuna"
	"github.com/c-bata/goptuna/tpe"
	"github.com/jackc/pgx/v5"

	"github.com/floodtune/floodtune/search"
	"github.com/floodtune/floodtune/storage"
)

const (
	envDatabaseURL = "FLOODTUNE_BENCH_DATABASE_URL"
	goal           = 50 * time.Millisecond
	tpeStartup     = 10 // search's TPE start-up trials (search/sampling.go)
)

type config struct {
	db                              string
	sizes                           []int
	epochs, attrs, reps, fill, seed int
	cpuProfile                      string
}

func main() {
	db := flag.String("db", os.Getenv(envDatabaseURL), "PostgreSQL URL of a role that may create databases (default $"+envDatabaseURL+")")
	sizes := flag.String("sizes", "1000,10000,50000", "study sizes, increasing")
	epochs := flag.Int("epochs", 10, "intermediate values per stored trial")
	attrs := flag.Int("attrs", 11, "user attributes per stored trial")
	reps := flag.Int("reps", 5, "warm repetitions (medians)")
	fill := flag.Int("fill", 8, "goroutines filling the study")
	seed := flag.Int("seed", 1, "the study's seed")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the warm Asks at the largest size")
	flag.Parse()
	fail := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "tpecost: "+format+"\n", args...)
		os.Exit(2)
	}
	if *db == "" {
		fail("no PostgreSQL: give -db or set %s (bench/tpecost.sh starts a throw-away server)", envDatabaseURL)
	}
	cfg := config{db: *db, epochs: *epochs, attrs: *attrs, reps: max(*reps, 1), fill: max(*fill, 1), seed: *seed, cpuProfile: *cpuProfile}
	for f := range strings.SplitSeq(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 100 || (len(cfg.sizes) > 0 && n <= cfg.sizes[len(cfg.sizes)-1]) {
			fail("-sizes %q: want increasing numbers >= 100", *sizes)
		}
		cfg.sizes = append(cfg.sizes, n)
	}
	if err := run(context.Background(), os.Stdout, cfg); err != nil {
		fmt.Fprintf(os.Stderr, "tpecost: %v\n", err)
		os.Exit(1)
	}
}

func withParams(rawURL, db string, kv ...string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		panic(err)
	}
	u.Path = "/" + db
	q := u.Query()
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func exec(ctx context.Context, rawURL string, stmts ...string) error {
	conn, err := pgx.Connect(ctx, rawURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

type figures struct {
	n                        int
	fill                     time.Duration
	trialsCold, trialsWarm   time.Duration
	storeCold, storeWarm     time.Duration // per suggestion (both parameters)
	samplerCold, samplerWarm time.Duration
	askCold, askWarm         time.Duration
	loadWarm, listQuery      time.Duration // one GetAllTrials; the list query alone
	listRows                 int
	loadsPerSuggestion       int
}

func run(ctx context.Context, w io.Writer, cfg config) error {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	dbName := "tpecost_" + hex.EncodeToString(b)
	if err := exec(ctx, cfg.db, "CREATE DATABASE "+pgx.Identifier{dbName}.Sanitize()); err != nil {
		return fmt.Errorf("create database: %w", err)
	}
	defer func() {
		if err := exec(context.Background(), cfg.db, "DROP DATABASE "+pgx.Identifier{dbName}.Sanitize()+" WITH (FORCE)"); err != nil {
			fmt.Fprintf(os.Stderr, "tpecost: drop database %s: %v\n", dbName, err)
		}
	}()
	dbURL := withParams(cfg.db, dbName)
	var version string
	if conn, err := pgx.Connect(ctx, dbURL); err == nil {
		_ = conn.QueryRow(ctx, `SELECT current_setting('server_version')`).Scan(&version)
		conn.Close(ctx)
	}
	fmt.Fprintf(w, "## TPE: one suggestion as the study grows\n\n")
	fmt.Fprintf(w, "PostgreSQL %s at %s; %s, %d CPUs; load average before: %s\n", version, storage.Redact(cfg.db), runtime.Version(), runtime.NumCPU(), stats.LoadAverage())
	fmt.Fprintf(w, "one study (external trainer, TPE over flood_level and a log-uniform lr, constant liar in Ask), complete trials with %d intermediate values, 2 system and %d user attributes each; medians of %d warm repetitions\n\n", cfg.epochs, cfg.attrs, cfg.reps)

	spec, err := search.ParseSpec(fmt.Appendf(nil, `trainer: external
search: {sampler: tpe, pruner: none, trials: %d, seed: %d, baseline: false}
space:
  flood_level: {type: float, low: 0.0, high: 1.5}
  lr: {type: float, low: 0.01, high: 0.3, log: true}
`, search.MaxTrials, cfg.seed))
	if err != nil {
		return err
	}
	raw, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	st, err := storage.Open(ctx, dbURL)
	if err != nil {
		return err
	}
	defer st.Close()
	const name = "tpecost"
	stored, err := st.CreateStudy(ctx, storage.NewStudy{Name: name, Direction: storage.Maximize, Spec: raw, Seed: int64(cfg.seed)})
	if err != nil {
		return err
	}
	// The first trials through the search: the distributions it records.
	study, err := search.Load(ctx, st, name)
	if err != nil {
		return err
	}
	for range 20 {
		t, err := study.Ask(ctx, search.AskOptions{Heartbeat: -1})
		if err != nil {
			return err
		}
		if err := t.Tell(ctx, value(t.Params["flood_level"].(float64), t.Params["lr"].(float64))); err != nil {
			return err
		}
	}
	first, err := st.TrialByNumber(ctx, stored.ID, 0)
	if err != nil {
		return err
	}
	dists := map[string]json.RawMessage{}
	for k, p := range first.Params {
		dists[k] = p.Distribution
	}
	fillURL := withParams(cfg.db, dbName, "synchronous_commit", "off", "pool_max_conns", strconv.Itoa(cfg.fill))
	filler, err := storage.Open(ctx, fillURL)
	if err != nil {
		return err
	}
	defer filler.Close()

	var rows []figures
	have := 20
	for i, n := range cfg.sizes {
		t0 := time.Now()
		if err := grow(ctx, filler, stored.ID, have, n, cfg, dists); err != nil {
			return err
		}
		fillTime := time.Since(t0)
		have = n
		if err := exec(ctx, dbURL, "VACUUM (ANALYZE)"); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "tpecost: %d trials stored (%.1f s); measuring (load average %s)\n", n, fillTime.Seconds(), stats.LoadAverage())
		f, err := measure(ctx, dbURL, stored.ID, name, n, cfg, i == len(cfg.sizes)-1)
		if err != nil {
			return fmt.Errorf("%d trials: %w", n, err)
		}
		f.fill = fillTime
		rows = append(rows, f)
		have += 1 + cfg.reps // the asked trials
	}

	fmt.Fprintln(w, "| trials | Trials() cold ms | Trials() warm ms | its list query alone ms | GetAllTrials warm ms | storage per suggestion cold ms | warm ms | sampler per suggestion cold ms | warm ms | Ask cold ms | Ask warm ms |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, f := range rows {
		fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", f.n, ms(f.trialsCold), ms(f.trialsWarm), ms(f.listQuery), ms(f.loadWarm), ms(f.storeCold), ms(f.storeWarm),
			ms(f.samplerCold), ms(f.samplerWarm), ms(f.askCold), ms(f.askWarm))
	}
	fmt.Fprintln(w)
	last := rows[len(rows)-1]
	fmt.Fprintf(w, "A suggestion of both parameters loads the study %d time(s) (once per trial, as search.Study.Ask does). Filling took %s s for the sizes in turn (CreateTrial, %d goroutines, synchronous_commit=off).\n\n",
		last.loadsPerSuggestion, strings.Join(func() []string {
			var s []string
			for _, f := range rows {
				s = append(s, fmt.Sprintf("%.0f", f.fill.Seconds()))
			}
			return s
		}(), " / "), cfg.fill)
	fmt.Fprintf(w, "Goal: one suggestion at %d trials under %v of storage time: warm %s (%s ms), cold %s (%s ms)\n",
		last.n, goal, met(last.storeWarm < goal), ms(last.storeWarm), met(last.storeCold < goal), ms(last.storeCold))
	fmt.Fprintf(w, "load average after: %s\n", stats.LoadAverage())
	return nil
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }

func value(level, lr float64) float64 {
	d := math.Log(lr / 0.1)
	return 0.9 - 0.05*(level-0.94)*(level-0.94) - 0.02*d*d
}

// grow adds complete trials until the study holds n.
func grow(ctx context.Context, st *storage.Store, studyID int64, have, n int, cfg config, dists map[string]json.RawMessage) error {
	var next atomic.Int64
	next.Store(int64(have))
	var wg sync.WaitGroup
	errs := make(chan error, cfg.fill)
	for range cfg.fill {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				if _, err := st.CreateTrial(ctx, studyID, storedTrial(int(i), cfg, dists)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func storedTrial(i int, cfg config, dists map[string]json.RawMessage) storage.NewTrial {
	r := mrand.New(mrand.NewPCG(7, uint64(i)))
	level := 1.5 * r.Float64()
	lr := math.Exp(math.Log(0.01) + r.Float64()*(math.Log(0.3)-math.Log(0.01)))
	v := value(level, lr) + 0.005*r.NormFloat64()
	nt := storage.NewTrial{State: storage.Complete, Worker: "fill", Value: v,
		Params: map[string]storage.Param{
			"flood_level": {Value: level, Distribution: dists["flood_level"]},
			"lr":          {Value: lr, Distribution: dists["lr"]},
		},
		Intermediate: map[int]float64{},
		SystemAttrs:  map[string]string{search.SeedAttr: strconv.Itoa(r.Int()), search.SamplerSeedAttr: strconv.Itoa(r.Int())},
		UserAttrs:    map[string]string{},
	}
	for e := 1; e <= cfg.epochs; e++ {
		nt.Intermediate[e] = v * float64(e) / float64(cfg.epochs)
	}
	for k := range cfg.attrs {
		nt.UserAttrs["attr_"+strconv.Itoa(k)] = strconv.FormatFloat(r.Float64(), 'g', -1, 64)
	}
	return nt
}

// timed is a goptuna.Storage whose GetAllTrials is timed and, as search's
// sampling does, answered from its first answer for one parameter.
type timed struct {
	goptuna.Storage
	spent  time.Duration
	loads  int
	trials []goptuna.FrozenTrial
}

func (t *timed) GetAllTrials(id int) ([]goptuna.FrozenTrial, error) {
	if t.trials != nil {
		return t.trials, nil
	}
	t0 := time.Now()
	ts, err := t.Storage.GetAllTrials(id)
	t.spent += time.Since(t0)
	t.loads++
	t.trials = ts
	return ts, err
}

// suggest samples both parameters as Study.Ask does (one load of the study
// for both) and returns the time in GetAllTrials and in the rest.
func suggest(adapter *storage.Goptuna, studyID int64, name string, n int, seed int64) (store, sampler time.Duration, loads int, err error) {
	view := &timed{Storage: adapter}
	gs, err := goptuna.LoadStudy(name, goptuna.StudyOptionStorage(view), goptuna.StudyOptionLogger(nil))
	if err != nil {
		return 0, 0, 0, err
	}
	smp := tpe.NewSampler(tpe.SamplerOptionSeed(seed), tpe.SamplerOptionNumberOfStartupTrials(tpeStartup))
	trial := goptuna.FrozenTrial{ID: -1, StudyID: int(studyID), Number: n, State: goptuna.TrialStateRunning}
	dists := map[string]any{
		"flood_level": goptuna.UniformDistribution{Low: 0, High: 1.5},
		"lr":          goptuna.LogUniformDistribution{Low: 0.01, High: 0.3},
	}
	// One load for all of a trial's values, as search.Study.Ask draws them.
	view.trials = nil
	var total time.Duration
	for _, p := range []string{"flood_level", "lr"} {
		t0 := time.Now()
		if _, err := smp.Sample(gs, trial, p, dists[p]); err != nil {
			return 0, 0, 0, err
		}
		total += time.Since(t0)
	}
	return view.spent, total - view.spent, view.loads, nil
}

func measure(ctx context.Context, dbURL string, studyID int64, name string, n int, cfg config, profile bool) (figures, error) {
	f := figures{n: n}
	// Store.Trials, cold then warm.
	{
		st, err := storage.Open(ctx, dbURL)
		if err != nil {
			return f, err
		}
		t0 := time.Now()
		if _, err := st.Trials(ctx, studyID); err != nil {
			st.Close()
			return f, err
		}
		f.trialsCold = time.Since(t0)
		var warm []time.Duration
		for range cfg.reps {
			t0 = time.Now()
			if _, err := st.Trials(ctx, studyID); err != nil {
				st.Close()
				return f, err
			}
			warm = append(warm, time.Since(t0))
		}
		f.trialsWarm = stats.Median(warm)
		st.Close()
	}
	// One suggestion, storage apart from the sampler, cold then warm.
	{
		st, err := storage.Open(ctx, dbURL)
		if err != nil {
			return f, err
		}
		// One adapter per store, as a search.Study keeps one (its cache of
		// converted trials is shared by the study's trials).
		adapter := storage.NewGoptuna(ctx, st, "bench")
		s, p, loads, err := suggest(adapter, studyID, name, n, int64(cfg.seed))
		if err != nil {
			st.Close()
			return f, err
		}
		f.storeCold, f.samplerCold, f.loadsPerSuggestion = s, p, loads
		var ss, ps, gs []time.Duration
		for range cfg.reps {
			t0 := time.Now()
			if _, err := adapter.GetAllTrials(int(studyID)); err != nil {
				st.Close()
				return f, err
			}
			gs = append(gs, time.Since(t0))
			s, p, _, err := suggest(adapter, studyID, name, n, int64(cfg.seed))
			if err != nil {
				st.Close()
				return f, err
			}
			ss, ps = append(ss, s), append(ps, p)
		}
		f.storeWarm, f.samplerWarm, f.loadWarm = stats.Median(ss), stats.Median(ps), stats.Median(gs)
		st.Close()
	}
	// The first query of Store.Trials alone, the same SQL on a pgx
	// connection: what the database and the wire cost of a warm load.
	{
		conn, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			return f, err
		}
		var qs []time.Duration
		for range cfg.reps {
			t0 := time.Now()
			rows, err := conn.Query(ctx, `SELECT id, state, completed_at FROM trials WHERE study_id = $1 ORDER BY number`, studyID)
			if err != nil {
				conn.Close(ctx)
				return f, err
			}
			k := 0
			for rows.Next() {
				k++
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				conn.Close(ctx)
				return f, err
			}
			qs = append(qs, time.Since(t0))
			f.listRows = k
		}
		f.listQuery = stats.Median(qs)
		conn.Close(ctx)
	}
	// Ask end to end, cold then warm.
	st, err := storage.Open(ctx, dbURL)
	if err != nil {
		return f, err
	}
	defer st.Close()
	study, err := search.Load(ctx, st, name)
	if err != nil {
		return f, err
	}
	ask := func() (time.Duration, error) {
		t0 := time.Now()
		t, err := study.Ask(ctx, search.AskOptions{Heartbeat: -1})
		d := time.Since(t0)
		if err != nil {
			return d, err
		}
		return d, t.Tell(ctx, value(t.Params["flood_level"].(float64), t.Params["lr"].(float64)))
	}
	if f.askCold, err = ask(); err != nil {
		return f, err
	}
	if profile && cfg.cpuProfile != "" {
		pf, err := os.Create(cfg.cpuProfile)
		if err != nil {
			return f, err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return f, err
		}
		defer pprof.StopCPUProfile()
	}
	var warm []time.Duration
	for range cfg.reps {
		d, err := ask()
		if err != nil {
			return f, err
		}
		warm = append(warm, d)
	}
	f.askWarm = stats.Median(warm)
	return f, nil
}
