package storagebench

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/c-bata/goptuna"
	rdb "github.com/c-bata/goptuna/rdb.v2"
	"github.com/jackc/pgx/v5"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/floodtune/floodtune/internal/pgtest"
	"github.com/floodtune/floodtune/storage"
)

// The backends compared. memory is Goptuna's in-memory storage: a floor
// for reads (no database at all), and it holds one study only, so it takes
// part in BenchmarkStudy but not in BenchmarkAskTell.
const (
	floodtunePG     = "floodtune-pg"
	floodtuneSQLite = "floodtune-sqlite"
	rdbPG           = "rdb.v2-pg"
	memory          = "memory"
)

// dbBackends are the backends on a database, in the order of the tables.
var dbBackends = []string{floodtunePG, floodtuneSQLite, rdbPG}

// backend is one storage under test, on its own fresh database.
type backend struct {
	name string
	url  string // the PostgreSQL database's URL; "" for the others
	// storage returns the goptuna.Storage that worker w uses: floodtune's
	// adapters are per worker (they fence writes by the worker's name) and
	// share one Store; rdb.v2 and memory share one storage.
	storage func(w int) goptuna.Storage
}

// openBackend opens backend name on a fresh database (PostgreSQL) or file
// (SQLite); everything is closed and dropped when tb ends. ctx is the
// context floodtune's adapters use.
func openBackend(tb testing.TB, ctx context.Context, name string) *backend {
	tb.Helper()
	switch name {
	case floodtunePG, floodtuneSQLite:
		url, pgURL := "sqlite:"+filepath.Join(tb.TempDir(), "x.db"), ""
		if name == floodtunePG {
			url = pgtest.Database(tb)
			pgURL = url
		}
		st, err := storage.Open(ctx, url)
		if err != nil {
			tb.Fatalf("open %s: %v", name, err)
		}
		tb.Cleanup(func() { st.Close() })
		return &backend{name: name, url: pgURL, storage: func(w int) goptuna.Storage {
			return storage.NewGoptuna(ctx, st, fmt.Sprintf("worker-%d", w))
		}}
	case rdbPG:
		url := pgtest.Database(tb)
		s := openRDB(tb, url)
		return &backend{name: name, url: url, storage: func(int) goptuna.Storage { return s }}
	case memory:
		s := goptuna.NewInMemoryStorage()
		return &backend{name: name, storage: func(int) goptuna.Storage { return s }}
	}
	tb.Fatalf("unknown backend %q", name)
	return nil
}

// openRDB opens Goptuna's rdb.v2 storage on the PostgreSQL database of url
// as rdb.v2's documentation does (gorm.Open, RunAutoMigrate, NewStorage),
// with gorm's logger silenced (it prints every "record not found") and
// database/sql allowed to keep 8 idle connections, as many as floodtune's
// pool holds: its default of 2 would make the 8 workers reconnect all the
// time, which would measure connection set-up rather than the storage.
func openRDB(tb testing.TB, url string) *rdb.Storage {
	tb.Helper()
	db, err := gorm.Open(postgres.Open(url), &gorm.Config{Logger: logger.Default.LogMode(logger.Silent)})
	if err != nil {
		tb.Fatalf("open rdb.v2: %v", err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		tb.Fatalf("open rdb.v2: %v", err)
	}
	tb.Cleanup(func() { sqlDB.Close() })
	sqlDB.SetMaxIdleConns(8)
	if err := rdb.RunAutoMigrate(db); err != nil {
		tb.Fatalf("migrate rdb.v2: %v", err)
	}
	return rdb.NewStorage(db)
}

// The search space of the ask/tell objective and of the stored studies.
var (
	distX  = goptuna.UniformDistribution{Low: -10, High: 10}
	distY  = goptuna.IntUniformDistribution{Low: -10, High: 10}
	distLR = goptuna.LogUniformDistribution{Low: 1e-5, High: 1e-1}
)

// objective is the trivial objective of BenchmarkAskTell: x² + y².
func objective(t goptuna.Trial) (float64, error) {
	x, err := t.SuggestFloat("x", distX.Low, distX.High)
	if err != nil {
		return 0, err
	}
	y, err := t.SuggestInt("y", distY.Low, distY.High)
	if err != nil {
		return 0, err
	}
	return x*x + float64(y*y), nil
}

// newSampler returns the sampler of worker w: each worker has its own,
// with its own seed (Goptuna's samplers all default to seed 0, and TPE
// holds a lock while it reloads the trials, so a shared one would
// serialise the workers).
func newSampler(kind string, w int) goptuna.Sampler {
	switch kind {
	case "random":
		return goptuna.NewRandomSampler(goptuna.RandomSamplerOptionSeed(int64(w + 1)))
	case "tpe":
		return newTPE(int64(w + 1))
	}
	panic("unknown sampler " + kind)
}

// errLogger is a goptuna.Logger that keeps Goptuna's error messages, which
// Study.Optimize otherwise only logs (a trial that cannot be created is
// retried forever).
type errLogger struct {
	n     atomic.Int64
	mu    sync.Mutex
	first string
}

func (l *errLogger) Debug(string, ...any) {}
func (l *errLogger) Info(string, ...any)  {}
func (l *errLogger) Warn(string, ...any)  {}
func (l *errLogger) Error(msg string, fields ...any) {
	l.n.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.first == "" {
		l.first = fmt.Sprint(append([]any{msg}, fields...)...)
	}
}

// studySeq names the studies of a test binary uniquely.
var studySeq atomic.Int64

// optimize creates a study on be and runs workers goroutines, each with
// its own goptuna.Study loaded from its own storage and its own sampler,
// each for perWorker trials. It returns the study's name and the time the
// workers took (study creation excluded). It fails when a worker fails or
// Goptuna logged an error (a trial that could not be created, a write that
// was refused).
func optimize(ctx context.Context, be *backend, sampler string, workers, perWorker int) (string, time.Duration, error) {
	name := fmt.Sprintf("asktell-%d", studySeq.Add(1))
	log := &errLogger{}
	if _, err := goptuna.CreateStudy(name, goptuna.StudyOptionStorage(be.storage(0)),
		goptuna.StudyOptionDirection(goptuna.StudyDirectionMinimize), goptuna.StudyOptionLogger(log)); err != nil {
		return name, 0, fmt.Errorf("%s: create study: %w", be.name, err)
	}
	studies := make([]*goptuna.Study, workers)
	for w := range studies {
		st, err := goptuna.LoadStudy(name, goptuna.StudyOptionStorage(be.storage(w)),
			goptuna.StudyOptionSampler(newSampler(sampler, w)), goptuna.StudyOptionLogger(log))
		if err != nil {
			return name, 0, fmt.Errorf("%s: load study: %w", be.name, err)
		}
		// Optimize retries a trial it could not create forever; the
		// context ends such a run instead of hanging the benchmark.
		st.WithContext(ctx)
		studies[w] = st
	}
	errs := make([]error, workers)
	var wg sync.WaitGroup
	t0 := time.Now()
	for w, st := range studies {
		wg.Go(func() { errs[w] = st.Optimize(objective, perWorker) })
	}
	wg.Wait()
	elapsed := time.Since(t0)
	for w, err := range errs {
		if err != nil {
			return name, elapsed, fmt.Errorf("%s: worker %d: %w (first logged error: %s)", be.name, w, err, log.first)
		}
	}
	if n := log.n.Load(); n > 0 {
		return name, elapsed, fmt.Errorf("%s: Goptuna logged %d errors, the first: %s", be.name, n, log.first)
	}
	return name, elapsed, nil
}

// checkOptimized checks that the study name on be holds n complete trials
// numbered 0..n-1, each with x and y and the objective's value.
func checkOptimized(be *backend, name string, n int) error {
	s := be.storage(0)
	id, err := s.GetStudyIDFromName(name)
	if err != nil {
		return err
	}
	trials, err := s.GetAllTrials(id)
	if err != nil {
		return err
	}
	if len(trials) != n {
		return fmt.Errorf("%s: %d trials, want %d", be.name, len(trials), n)
	}
	seen := make([]bool, n)
	for _, t := range trials {
		if t.State != goptuna.TrialStateComplete {
			return fmt.Errorf("%s: trial %d is %s, want complete", be.name, t.Number, t.State)
		}
		if t.Number < 0 || t.Number >= n || seen[t.Number] {
			return fmt.Errorf("%s: trial number %d is out of range or repeated", be.name, t.Number)
		}
		seen[t.Number] = true
		x, okX := t.Params["x"].(float64)
		y, okY := t.Params["y"].(int)
		if !okX || !okY || len(t.Params) != 2 {
			return fmt.Errorf("%s: trial %d has params %v, want x (float64) and y (int)", be.name, t.Number, t.Params)
		}
		if want := x*x + float64(y*y); t.Value != want {
			return fmt.Errorf("%s: trial %d has value %v, want %v", be.name, t.Number, t.Value, want)
		}
	}
	return nil
}

// studyTrial returns the i-th trial of the stored studies, the same for
// every backend: three parameters (a float, an int, a log-float), three
// intermediate values, complete with the objective's value except every
// tenth, pruned after one or two steps.
func studyTrial(i int) goptuna.FrozenTrial {
	r := rand.New(rand.NewPCG(42, uint64(i)))
	x := distX.Low + r.Float64()*(distX.High-distX.Low)
	y := float64(distY.Low + r.IntN(distY.High-distY.Low))
	lr := math.Exp(math.Log(distLR.Low) + r.Float64()*(math.Log(distLR.High)-math.Log(distLR.Low)))
	value := x*x + y*y + lr
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second)
	ft := goptuna.FrozenTrial{
		State: goptuna.TrialStateComplete, Value: value,
		DatetimeStart: start, DatetimeComplete: start.Add(time.Second),
		InternalParams:     map[string]float64{"x": x, "y": y, "lr": lr},
		Params:             map[string]any{"x": x, "y": int(y), "lr": lr},
		Distributions:      map[string]any{"x": distX, "y": distY, "lr": distLR},
		IntermediateValues: map[int]float64{},
		UserAttrs:          map[string]string{},
		SystemAttrs:        map[string]string{},
	}
	steps := 3
	if i%10 == 9 {
		ft.State, steps = goptuna.TrialStatePruned, 1+i%2
	}
	for s := range steps {
		ft.Value = value * float64(4-s) / 3
		ft.IntermediateValues[s] = ft.Value
	}
	if ft.State == goptuna.TrialStateComplete {
		ft.Value = value
	}
	return ft
}

// study is a stored study on one backend, filled with studyTrial(0),
// studyTrial(1), ... in that order.
type study struct {
	be      *backend
	s       goptuna.Storage
	name    string
	id      int
	n       int           // trials stored
	filling time.Duration // time spent filling it
}

func newStudy(tb testing.TB, ctx context.Context, name string) *study {
	tb.Helper()
	be := openBackend(tb, ctx, name)
	s := be.storage(0)
	st, err := goptuna.CreateStudy("stored", goptuna.StudyOptionStorage(s), goptuna.StudyOptionLogger(nil),
		goptuna.StudyOptionDirection(goptuna.StudyDirectionMinimize))
	if err != nil {
		tb.Fatalf("%s: create study: %v", name, err)
	}
	return &study{be: be, s: s, name: "stored", id: st.ID}
}

// vacuum runs VACUUM (ANALYZE) on the study's PostgreSQL database, as
// autovacuum would have done on a study in use: without it, autovacuum
// wakes up on the freshly filled tables in the middle of a measurement
// (and the planner works from empty statistics).
func (st *study) vacuum(ctx context.Context) error {
	if st.be.url == "" {
		return nil
	}
	conn, err := pgx.Connect(ctx, st.be.url)
	if err != nil {
		return fmt.Errorf("%s: vacuum: %w", st.be.name, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "VACUUM (ANALYZE)"); err != nil {
		return fmt.Errorf("%s: vacuum: %w", st.be.name, err)
	}
	return nil
}

// grow adds trials until the study holds n, one CloneTrial after the
// other (so that trial numbers follow studyTrial's order on every backend).
func (st *study) grow(n int) error {
	t0 := time.Now()
	defer func() { st.filling += time.Since(t0) }()
	for ; st.n < n; st.n++ {
		if _, err := st.s.CloneTrial(st.id, studyTrial(st.n)); err != nil {
			return fmt.Errorf("%s: clone trial %d: %w", st.be.name, st.n, err)
		}
	}
	return nil
}
