package metrics

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the worker-level figures of one process.
type Metrics struct {
	trialsFinished *prometheus.CounterVec
	trialDuration  *prometheus.HistogramVec
	epochDuration  *prometheus.HistogramVec
	running        *prometheus.GaugeVec
	workerEpoch    *prometheus.GaugeVec
	workerLoss     *prometheus.GaugeVec
	workerValAcc   *prometheus.GaugeVec
	workerLevel    *prometheus.GaugeVec
	ascent         *prometheus.GaugeVec
	storageOp      *prometheus.HistogramVec
	sampler        *prometheus.HistogramVec
}

// New registers the worker-level metrics in reg and returns them.
//
// It returns an error, and registers nothing, when reg already holds one of
// the metrics' names: New called twice on one registry, or another collector
// that took a floodtune_ name. The error wraps what reg.Register returned
// (a prometheus.AlreadyRegisteredError when the same metric is registered
// again), so errors.As finds it. When a registration fails part way, New
// unregisters the metrics it registered before, so reg holds none of them
// (a prometheus.Registry still remembers their help and labels, as it does
// for any collector unregistered).
//
// A nil reg is an error too, not a panic and not the default registry: to
// record nothing, pass a nil *Metrics instead, whose methods do nothing.
func New(reg prometheus.Registerer) (*Metrics, error) {
	if reg == nil {
		return nil, errors.New("metrics: nil registerer")
	}
	if r, ok := reg.(*prometheus.Registry); ok && r == nil {
		return nil, errors.New("metrics: nil *prometheus.Registry")
	}
	m := &Metrics{
		trialsFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "floodtune_trials_finished_total",
			Help: "Trials this process finished, by study and final state (complete, pruned, fail; given back trials are waiting).",
		}, []string{"study", "state"}),
		trialDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "floodtune_trial_duration_seconds",
			Help:    "Wall time of a trial, from claim to result.",
			Buckets: prometheus.ExponentialBuckets(0.5, 2, 14), // 0.5 s to about 2.3 h
		}, []string{"study"}),
		epochDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "floodtune_epoch_duration_seconds",
			Help:    "Wall time of one training epoch, validation included.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14), // 10 ms to about 80 s
		}, []string{"study"}),
		running: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "floodtune_running_trials",
			Help: "Trials this process is running now.",
		}, []string{"study"}),
		workerEpoch: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "floodtune_worker_epoch",
			Help: "The epoch the worker slot's current trial last finished (0: none yet or idle).",
		}, []string{"study", "slot"}),
		workerLoss: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "floodtune_worker_train_loss",
			Help: "The unflooded training loss of the worker slot's current trial at its last epoch.",
		}, []string{"study", "slot"}),
		workerValAcc: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "floodtune_worker_val_accuracy_ratio",
			Help: "The validation accuracy (0 to 1) of the worker slot's current trial at its last epoch.",
		}, []string{"study", "slot"}),
		workerLevel: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "floodtune_worker_flood_level",
			Help: "The flood level b of the worker slot's current trial.",
		}, []string{"study", "slot"}),
		ascent: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "floodtune_worker_ascent_ratio",
			Help: "The share of the worker slot's current trial's last epoch steps that ascended (loss below b).",
		}, []string{"study", "slot"}),
		storageOp: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "floodtune_storage_operation_duration_seconds",
			Help:    "Latency of the search's storage operations, by operation.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14), // 0.5 ms to about 4 s
		}, []string{"op"}),
		sampler: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "floodtune_sampler_duration_seconds",
			Help:    "Time to sample a trial's parameters, by sampler.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"sampler"}),
	}
	collectors := []struct {
		name string
		c    prometheus.Collector
	}{
		{"floodtune_trials_finished_total", m.trialsFinished},
		{"floodtune_trial_duration_seconds", m.trialDuration},
		{"floodtune_epoch_duration_seconds", m.epochDuration},
		{"floodtune_running_trials", m.running},
		{"floodtune_worker_epoch", m.workerEpoch},
		{"floodtune_worker_train_loss", m.workerLoss},
		{"floodtune_worker_val_accuracy_ratio", m.workerValAcc},
		{"floodtune_worker_flood_level", m.workerLevel},
		{"floodtune_worker_ascent_ratio", m.ascent},
		{"floodtune_storage_operation_duration_seconds", m.storageOp},
		{"floodtune_sampler_duration_seconds", m.sampler},
	}
	for i, c := range collectors {
		if err := reg.Register(c.c); err != nil {
			for _, done := range collectors[:i] {
				reg.Unregister(done.c)
			}
			return nil, fmt.Errorf("metrics: register %s: %w", c.name, err)
		}
	}
	return m, nil
}

// TrialsFinished returns the floodtune_trials_finished_total counters.
func (m *Metrics) TrialsFinished() *prometheus.CounterVec { return m.trialsFinished }

// A nil *Metrics records nothing, so callers need no checks.

// TrialStarted marks a trial of study started by worker slot at flood level b.
func (m *Metrics) TrialStarted(study string, slot int, b float64) {
	if m == nil {
		return
	}
	s := strconv.Itoa(slot)
	m.running.WithLabelValues(study).Inc()
	m.workerLevel.WithLabelValues(study, s).Set(b)
	m.workerEpoch.WithLabelValues(study, s).Set(0)
}

// Epoch records a finished epoch of slot's trial.
func (m *Metrics) Epoch(study string, slot, epoch int, trainLoss, valAcc, ascent float64, took time.Duration) {
	if m == nil {
		return
	}
	s := strconv.Itoa(slot)
	m.workerEpoch.WithLabelValues(study, s).Set(float64(epoch))
	m.workerLoss.WithLabelValues(study, s).Set(trainLoss)
	m.workerValAcc.WithLabelValues(study, s).Set(valAcc)
	m.ascent.WithLabelValues(study, s).Set(ascent)
	m.epochDuration.WithLabelValues(study).Observe(took.Seconds())
}

// TrialFinished records the end of slot's trial in state.
func (m *Metrics) TrialFinished(study string, slot int, state string, took time.Duration) {
	if m == nil {
		return
	}
	m.running.WithLabelValues(study).Dec()
	m.workerEpoch.WithLabelValues(study, strconv.Itoa(slot)).Set(0)
	m.trialsFinished.WithLabelValues(study, state).Inc()
	m.trialDuration.WithLabelValues(study).Observe(took.Seconds())
}

// StorageOp records the latency of a storage operation.
func (m *Metrics) StorageOp(op string, took time.Duration) {
	if m == nil {
		return
	}
	m.storageOp.WithLabelValues(op).Observe(took.Seconds())
}

// Sampled records the time a sampler took for a trial's parameters.
func (m *Metrics) Sampled(sampler string, took time.Duration) {
	if m == nil {
		return
	}
	m.sampler.WithLabelValues(sampler).Observe(took.Seconds())
}

// API counts and times the requests to the HTTP API.
type API struct {
	requests *prometheus.CounterVec
	seconds  *prometheus.HistogramVec
}

// NewAPI registers the HTTP API's request metrics in reg.
func NewAPI(reg prometheus.Registerer) (*API, error) {
	m := &API{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "floodtune_api_requests_total",
			Help: "Requests to the HTTP API, by route, method and status code.",
		}, []string{"route", "method", "code"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "floodtune_api_request_duration_seconds",
			Help:    "Time to answer a request to the HTTP API, by route.",
			Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}, []string{"route"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.seconds} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register the API's request metrics: %w", err)
		}
	}
	return m, nil
}

// ObserveRequest records a request to route (a bounded name: the API's
// routes), by method and status; a nil *API records nothing.
func (m *API) ObserveRequest(route, method string, status int, d time.Duration) {
	if m == nil {
		return
	}
	switch method {
	case "GET", "HEAD", "POST", "DELETE":
	default:
		method = "other"
	}
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.seconds.WithLabelValues(route).Observe(d.Seconds())
}
