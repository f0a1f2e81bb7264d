package search_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/floodtune/floodtune/internal/pgtest"
	"github.com/floodtune/floodtune/metrics"
	"github.com/floodtune/floodtune/objective"
	"github.com/floodtune/floodtune/search"
	"github.com/floodtune/floodtune/storage"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const gaussSpec = `
dataset: {name: gauss2d, train_size: 200, val_size: 100, test_size: 1000, label_noise: 0.1}
model: {hidden: [16, 16]}
training: {optimizer: adam, lr: 0.01, batch_size: 50, epochs: 4}
search: {sampler: tpe, trials: 8, seed: 3}
space:
  flood_level: {type: float, low: 0.0, high: 1.0}
  optimizer: {type: categorical, choices: [adam, momentum]}
`

func openSQLite(t *testing.T) *storage.Store {
	t.Helper()
	st, err := storage.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "ft.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestOptimizeSpendsTheBudgetExactly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openSQLite(t)
	spec, err := search.ParseSpec([]byte(gaussSpec))
	if err != nil {
		t.Fatal(err)
	}
	study, err := search.Create(ctx, st, "gauss", spec)
	if err != nil {
		t.Fatal(err)
	}
	var seen atomic.Int32
	if err := search.Optimize(ctx, st, "gauss", search.Options{Workers: 2, OnTrial: func(search.Result) { seen.Add(1) }}); err != nil {
		t.Fatal(err)
	}
	trials, err := st.Trials(ctx, study.ID())
	if err != nil {
		t.Fatal(err)
	}
	if len(trials) != 8 || seen.Load() != 8 {
		t.Fatalf("%d trials stored, %d reported; want 8", len(trials), seen.Load())
	}
	for i, tr := range trials {
		if tr.Number != i || tr.State != storage.Complete {
			t.Fatalf("trial %d: number %d state %s", i, tr.Number, tr.State)
		}
		// A level above the initial loss (ln 2) makes training climb, so
		// any accuracy in [0, 1] is possible.
		if tr.Value < 0 || tr.Value > 1 {
			t.Errorf("trial %d: validation accuracy %v", i, tr.Value)
		}
		if _, err := strconv.ParseFloat(tr.UserAttrs["test_acc"], 64); err != nil {
			t.Errorf("trial %d: no test_acc attribute (%v)", i, tr.UserAttrs)
		}
		if want := strconv.FormatInt(search.TrialSeed(3, i), 10); tr.SystemAttrs[search.SeedAttr] != want {
			t.Errorf("trial %d: seed %q, want %s", i, tr.SystemAttrs[search.SeedAttr], want)
		}
		if s := tr.SystemAttrs[search.SamplerSeedAttr]; s != strconv.FormatInt(search.SamplerSeed(3, i), 10) {
			t.Errorf("trial %d: sampler seed %q, want the seed of trial %d of study seed 3", i, s, i)
		}
		if len(tr.Intermediate) != 4 {
			t.Errorf("trial %d: %d intermediate values, want one per epoch", i, len(tr.Intermediate))
		}
	}
	base := trials[0]
	if base.SystemAttrs[search.BaselineAttr] != "true" || base.Params["flood_level"].Value != 0 {
		t.Fatalf("trial 0 is not the plain-training baseline: %+v %+v", base.SystemAttrs, base.Params)
	}
}

func TestAFailingObjectiveFailsItsTrialAndTheWorkerGoesOn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openSQLite(t)
	spec, err := search.ParseSpec([]byte(gaussSpec))
	if err != nil {
		t.Fatal(err)
	}
	study, err := search.Create(ctx, st, "failing", spec)
	if err != nil {
		t.Fatal(err)
	}
	obj := func(_ context.Context, tr *search.Trial) (float64, error) {
		switch tr.Number % 4 {
		case 1:
			panic("boom")
		case 2:
			return math.NaN(), nil
		case 3:
			return 0, errors.New("no data")
		}
		return 0.5, nil
	}
	if err := search.Optimize(ctx, st, "failing", search.Options{Workers: 2, Objective: obj}); err != nil {
		t.Fatal(err)
	}
	trials, _ := st.Trials(ctx, study.ID())
	if len(trials) != 8 {
		t.Fatalf("%d trials, want 8", len(trials))
	}
	for _, tr := range trials {
		want := map[int]string{0: "", 1: "the objective panicked: boom", 2: "the objective returned NaN", 3: "no data"}[tr.Number%4]
		if want == "" {
			if tr.State != storage.Complete {
				t.Errorf("trial %d: %s", tr.Number, tr.State)
			}
			continue
		}
		if tr.State != storage.Fail || tr.SystemAttrs[search.ReasonAttr] != want {
			t.Errorf("trial %d: %s, reason %q; want fail, %q", tr.Number, tr.State, tr.SystemAttrs[search.ReasonAttr], want)
		}
	}
}

func TestOptimizeRecordsMetricsAndTheStorageReportsTheStudy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for name, st := range map[string]*storage.Store{"sqlite": openSQLite(t), "postgres": openPG(t)} {
		t.Run(name, func(t *testing.T) {
			spec, err := search.ParseSpec([]byte(gaussSpec))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := search.Create(ctx, st, "watched", spec); err != nil {
				t.Fatal(err)
			}
			reg := prometheus.NewPedanticRegistry()
			m, err := metrics.New(reg)
			if err != nil {
				t.Fatal(err)
			}
			if err := search.Optimize(ctx, st, "watched", search.Options{Workers: 2, Metrics: m}); err != nil {
				t.Fatal(err)
			}
			if n := testutil.ToFloat64(m.TrialsFinished().WithLabelValues("watched", "complete")); n != 8 {
				t.Fatalf("floodtune_trials_finished_total{state=complete} = %v, want 8", n)
			}
			stats, err := search.Stats{Store: st}.StudyStats(ctx)
			if err != nil || len(stats) != 1 {
				t.Fatalf("%v, %v", stats, err)
			}
			s := stats[0]
			if s.Name != "watched" || s.Trials["complete"] != 8 || s.Budget != 8 || math.IsNaN(s.Best) || math.IsNaN(s.BestFloodLevel) {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

func openPG(t *testing.T) *storage.Store {
	t.Helper()
	st, err := storage.Open(context.Background(), pgtest.Schema(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// With ReserveThreads and OpenBLAS, Optimize gives each worker a P of its
// own while it runs (objective.ReserveWorkers) and restores GOMAXPROCS when
// it returns; without ReserveThreads it leaves GOMAXPROCS alone. Not
// parallel: GOMAXPROCS is the process's.
func TestOptimizeRaisesGOMAXPROCSByItsWorkersOnlyWhenAsked(t *testing.T) {
	for _, reserve := range []bool{false, true} {
		t.Run(fmt.Sprintf("ReserveThreads %v", reserve), func(t *testing.T) { testReserveThreads(t, reserve) })
	}
}

func testReserveThreads(t *testing.T, reserve bool) {
	ctx := context.Background()
	st := openSQLite(t)
	spec, err := search.ParseSpec([]byte(gaussSpec))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := search.Create(ctx, st, "procs", spec); err != nil {
		t.Fatal(err)
	}
	before := runtime.GOMAXPROCS(0)
	var during atomic.Int32
	obj := func(ctx context.Context, tr *search.Trial) (float64, error) {
		during.Store(int32(runtime.GOMAXPROCS(0)))
		return 0.5, nil
	}
	if err := search.Optimize(ctx, st, "procs", search.Options{Workers: 3, Objective: obj, ReserveThreads: reserve}); err != nil {
		t.Fatal(err)
	}
	want := before
	if reserve && strings.HasPrefix(objective.BLAS(), "OpenBLAS") {
		want = before + 3
	}
	if got := int(during.Load()); got != want {
		t.Errorf("GOMAXPROCS during the trials: %d, want %d (%s, %d before)", got, want, objective.BLAS(), before)
	}
	if got := runtime.GOMAXPROCS(0); got != before {
		t.Errorf("GOMAXPROCS after Optimize: %d, want %d as before", got, before)
	}
}
