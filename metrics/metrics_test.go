package metrics_test

import (
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/floodtune/floodtune/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fixedSource is a StudySource with fixed figures (the storage's own
// implementation is tested against real databases in search and storage).
type fixedSource struct {
	stats []metrics.StudyStat
	err   error
}

func (f fixedSource) StudyStats(context.Context) ([]metrics.StudyStat, error) { return f.stats, f.err }

func TestStudyCollectorExportsEveryStudy(t *testing.T) {
	t.Parallel()
	src := fixedSource{stats: []metrics.StudyStat{
		{Name: "mnist", Trials: map[string]int{"complete": 7, "running": 2, "fail": 1}, Budget: 30, Best: 0.93, BestFloodLevel: 0.8, Reaped: 1},
		{Name: "fresh", Trials: map[string]int{"waiting": 1}, Budget: 0, Best: math.NaN(), BestFloodLevel: math.NaN()},
	}}
	want := `
# HELP floodtune_study_best_flood_level The flood level of a study's best trial.
# TYPE floodtune_study_best_flood_level gauge
floodtune_study_best_flood_level{study="mnist"} 0.8
# HELP floodtune_study_best_value The best value of a study's complete trials.
# TYPE floodtune_study_best_value gauge
floodtune_study_best_value{study="mnist"} 0.93
# HELP floodtune_study_budget_trials A study's trial budget (0: none).
# TYPE floodtune_study_budget_trials gauge
floodtune_study_budget_trials{study="fresh"} 0
floodtune_study_budget_trials{study="mnist"} 30
# HELP floodtune_study_trials Trials of a study by state, read from the storage.
# TYPE floodtune_study_trials gauge
floodtune_study_trials{state="complete",study="fresh"} 0
floodtune_study_trials{state="complete",study="mnist"} 7
floodtune_study_trials{state="fail",study="fresh"} 0
floodtune_study_trials{state="fail",study="mnist"} 1
floodtune_study_trials{state="pruned",study="fresh"} 0
floodtune_study_trials{state="pruned",study="mnist"} 0
floodtune_study_trials{state="running",study="fresh"} 0
floodtune_study_trials{state="running",study="mnist"} 2
floodtune_study_trials{state="waiting",study="fresh"} 1
floodtune_study_trials{state="waiting",study="mnist"} 0
# HELP floodtune_study_trials_reaped_total Trials of a study failed because their worker stopped renewing its lease.
# TYPE floodtune_study_trials_reaped_total counter
floodtune_study_trials_reaped_total{study="fresh"} 0
floodtune_study_trials_reaped_total{study="mnist"} 1
# HELP floodtune_storage_up 1 if the storage answered the last scrape, 0 if not.
# TYPE floodtune_storage_up gauge
floodtune_storage_up 1
`
	if err := testutil.CollectAndCompare(metrics.NewStudyCollector(src), strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}

func TestAStorageThatDoesNotAnswerIsDown(t *testing.T) {
	t.Parallel()
	c := metrics.NewStudyCollector(fixedSource{err: errors.New("connection refused")})
	want := `
# HELP floodtune_storage_up 1 if the storage answered the last scrape, 0 if not.
# TYPE floodtune_storage_up gauge
floodtune_storage_up 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}

func TestWorkerMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewPedanticRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.TrialStarted("s", 0, 0.8)
	m.TrialStarted("s", 1, 0.2)
	m.Epoch("s", 0, 3, 0.9, 0.75, 0.25, 2*time.Second)
	m.TrialFinished("s", 1, "complete", 30*time.Second)
	m.StorageOp("claim", 3*time.Millisecond)
	m.Sampled("tpe", 10*time.Millisecond)
	want := `
# HELP floodtune_running_trials Trials this process is running now.
# TYPE floodtune_running_trials gauge
floodtune_running_trials{study="s"} 1
# HELP floodtune_trials_finished_total Trials this process finished, by study and final state (complete, pruned, fail; given back trials are waiting).
# TYPE floodtune_trials_finished_total counter
floodtune_trials_finished_total{state="complete",study="s"} 1
# HELP floodtune_worker_epoch The epoch the worker slot's current trial last finished (0: none yet or idle).
# TYPE floodtune_worker_epoch gauge
floodtune_worker_epoch{slot="0",study="s"} 3
floodtune_worker_epoch{slot="1",study="s"} 0
# HELP floodtune_worker_flood_level The flood level b of the worker slot's current trial.
# TYPE floodtune_worker_flood_level gauge
floodtune_worker_flood_level{slot="0",study="s"} 0.8
floodtune_worker_flood_level{slot="1",study="s"} 0.2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "floodtune_running_trials", "floodtune_trials_finished_total",
		"floodtune_worker_epoch", "floodtune_worker_flood_level"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(reg, "floodtune_trial_duration_seconds", "floodtune_epoch_duration_seconds",
		"floodtune_storage_operation_duration_seconds", "floodtune_sampler_duration_seconds"); n != 4 {
		t.Fatalf("%d histogram series, want 4", n)
	}
	var none *metrics.Metrics // a nil Metrics records nothing and does not panic
	none.TrialStarted("s", 0, 1)
	none.Epoch("s", 0, 1, 0, 0, 0, 0)
	none.TrialFinished("s", 0, "complete", 0)
	none.StorageOp("x", 0)
	none.Sampled("tpe", 0)
}

// workerMetricNames are the names New registers, in the order it registers them.
var workerMetricNames = []string{
	"floodtune_trials_finished_total",
	"floodtune_trial_duration_seconds",
	"floodtune_epoch_duration_seconds",
	"floodtune_running_trials",
	"floodtune_worker_epoch",
	"floodtune_worker_train_loss",
	"floodtune_worker_val_accuracy_ratio",
	"floodtune_worker_flood_level",
	"floodtune_worker_ascent_ratio",
	"floodtune_storage_operation_duration_seconds",
	"floodtune_sampler_duration_seconds",
}

func TestNewOnARegistryThatHoldsItsMetricsIsAnError(t *testing.T) {
	t.Parallel()
	type testCase struct {
		name string
		// prepare fills reg before the New under test and returns the
		// check of reg after it.
		prepare func(t *testing.T, reg *prometheus.Registry) (after func(t *testing.T))
		// taken is the metric name the error must name.
		taken string
		// alreadyRegistered: the error wraps a prometheus.AlreadyRegisteredError.
		alreadyRegistered bool
	}
	cases := []testCase{{
		name: "a second New on one registry fails and the first one's metrics are still gathered",
		prepare: func(t *testing.T, reg *prometheus.Registry) func(t *testing.T) {
			first, err := metrics.New(reg)
			if err != nil {
				t.Fatalf("the first New: %v", err)
			}
			return func(t *testing.T) {
				first.TrialStarted("s", 0, 0.5)
				first.TrialFinished("s", 0, "complete", time.Second)
				want := `
# HELP floodtune_trials_finished_total Trials this process finished, by study and final state (complete, pruned, fail; given back trials are waiting).
# TYPE floodtune_trials_finished_total counter
floodtune_trials_finished_total{state="complete",study="s"} 1
`
				if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "floodtune_trials_finished_total"); err != nil {
					t.Fatal(err)
				}
				if n := testutil.CollectAndCount(reg, "floodtune_running_trials", "floodtune_trial_duration_seconds"); n != 2 {
					t.Fatalf("%d series of the first New, want 2", n)
				}
			}
		},
		taken:             "floodtune_trials_finished_total",
		alreadyRegistered: true,
	}}
	// A foreign collector that took any one of the names makes New fail at
	// that name and unregister the ones it registered before it.
	for _, name := range workerMetricNames {
		cases = append(cases, testCase{
			name: "a foreign collector that took " + name + " makes New fail and leave no floodtune metric behind",
			prepare: func(t *testing.T, reg *prometheus.Registry) func(t *testing.T) {
				foreign := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: "Somebody else's metric."})
				reg.MustRegister(foreign)
				foreign.Set(42)
				return func(t *testing.T) {
					want := "# HELP " + name + " Somebody else's metric.\n# TYPE " + name + " gauge\n" + name + " 42\n"
					if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
						t.Fatalf("the registry holds more (or less) than the foreign collector: %v", err)
					}
					// Had the failed New left one of the metrics it registered
					// before name, New again would fail on that one, with an
					// AlreadyRegisteredError; it must fail at name again.
					// (A registry never forgets a name's help and labels,
					// even unregistered, so New cannot succeed here.)
					_, err := metrics.New(reg)
					var are prometheus.AlreadyRegisteredError
					if want := "metrics: register " + name + ": "; err == nil || !strings.HasPrefix(err.Error(), want) || errors.As(err, &are) {
						t.Fatalf("New again: %v; want an error starting with %q", err, want)
					}
				}
			},
			taken: name,
		})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := prometheus.NewRegistry()
			after := tc.prepare(t, reg)
			m, err := metrics.New(reg)
			if err == nil {
				t.Fatal("New returned no error")
			}
			if m != nil {
				t.Errorf("New returned %v with its error, want nil", m)
			}
			if want := "metrics: register " + tc.taken + ": "; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error %q does not start with %q", err, want)
			}
			var are prometheus.AlreadyRegisteredError
			if got := errors.As(err, &are); got != tc.alreadyRegistered {
				t.Errorf("errors.As(%v, AlreadyRegisteredError) = %v, want %v", err, got, tc.alreadyRegistered)
			}
			after(t)
		})
	}
}

func TestNewWithoutARegistryIsAnError(t *testing.T) {
	t.Parallel()
	var none *prometheus.Registry
	for name, reg := range map[string]prometheus.Registerer{
		"a nil Registerer":           nil,
		"a nil *prometheus.Registry": none,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m, err := metrics.New(reg)
			if err == nil || m != nil {
				t.Fatalf("New(%s) = %v, %v; want nil and an error", name, m, err)
			}
		})
	}
}

func TestTheMetricsPassPrometheusLint(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewPedanticRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	reg.MustRegister(metrics.NewStudyCollector(fixedSource{stats: []metrics.StudyStat{{Name: "a", Trials: map[string]int{}, Best: 1, BestFloodLevel: 0}}}))
	m.TrialStarted("a", 0, 0.5)
	m.Epoch("a", 0, 1, 1, 0.5, 0, time.Second)
	m.TrialFinished("a", 0, "complete", time.Minute)
	m.StorageOp("finish", time.Millisecond)
	m.Sampled("tpe", time.Millisecond)
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

func TestServerServesMetricsOnLoopback(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewStudyCollector(fixedSource{stats: []metrics.StudyStat{{Name: "x", Trials: map[string]int{"complete": 1}, Best: 0.5, BestFloodLevel: 0.1}}}))
	ready := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&metrics.Server{Addr: "127.0.0.1:0", Gatherer: reg, Ready: ready}).Run(ctx) }()
	addr := <-ready
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `floodtune_study_trials{state="complete",study="x"} 1`) {
		t.Fatalf("status %d, body:\n%s", resp.StatusCode, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	if metrics.DefaultAddr != "127.0.0.1:9464" {
		t.Fatalf("the default address %s is not loopback", metrics.DefaultAddr)
	}
}
