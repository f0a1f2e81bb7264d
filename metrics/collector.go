package metrics

import (
	"context"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// StudyStat is what the collector exports of one study.
type StudyStat struct {
	Name string
	// Trials by state: waiting, running, complete, pruned, fail.
	Trials map[string]int
	// Budget is the study's trial budget (0: none).
	Budget int
	// Best is the best value and BestFloodLevel the flood level of the
	// best trial; NaN when there is none.
	Best, BestFloodLevel float64
	// Reaped counts the trials failed because their worker's lease expired.
	Reaped int
}

// StudySource reads the studies' figures from the storage.
type StudySource interface {
	StudyStats(ctx context.Context) ([]StudyStat, error)
}

// StudyCollector exports every study of a source at scrape time.
type StudyCollector struct {
	src     StudySource
	timeout time.Duration

	trials, budget, best, bestLevel, reaped, up *prometheus.Desc
}

// NewStudyCollector returns a collector of src's studies.
func NewStudyCollector(src StudySource) *StudyCollector {
	return &StudyCollector{
		src:       src,
		timeout:   10 * time.Second,
		trials:    prometheus.NewDesc("floodtune_study_trials", "Trials of a study by state, read from the storage.", []string{"study", "state"}, nil),
		budget:    prometheus.NewDesc("floodtune_study_budget_trials", "A study's trial budget (0: none).", []string{"study"}, nil),
		best:      prometheus.NewDesc("floodtune_study_best_value", "The best value of a study's complete trials.", []string{"study"}, nil),
		bestLevel: prometheus.NewDesc("floodtune_study_best_flood_level", "The flood level of a study's best trial.", []string{"study"}, nil),
		reaped:    prometheus.NewDesc("floodtune_study_trials_reaped_total", "Trials of a study failed because their worker stopped renewing its lease.", []string{"study"}, nil),
		up:        prometheus.NewDesc("floodtune_storage_up", "1 if the storage answered the last scrape, 0 if not.", nil, nil),
	}
}

// Describe sends the collector's descriptions.
func (c *StudyCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.trials, c.budget, c.best, c.bestLevel, c.reaped, c.up} {
		ch <- d
	}
}

// States are the trial states the collector always exports, 0 included.
var States = []string{"waiting", "running", "complete", "pruned", "fail"}

// Collect reads the studies and sends their figures.
func (c *StudyCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	stats, err := c.src.StudyStats(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	for _, s := range stats {
		for _, state := range States {
			ch <- prometheus.MustNewConstMetric(c.trials, prometheus.GaugeValue, float64(s.Trials[state]), s.Name, state)
		}
		ch <- prometheus.MustNewConstMetric(c.budget, prometheus.GaugeValue, float64(s.Budget), s.Name)
		ch <- prometheus.MustNewConstMetric(c.reaped, prometheus.CounterValue, float64(s.Reaped), s.Name)
		if !math.IsNaN(s.Best) {
			ch <- prometheus.MustNewConstMetric(c.best, prometheus.GaugeValue, s.Best, s.Name)
		}
		if !math.IsNaN(s.BestFloodLevel) {
			ch <- prometheus.MustNewConstMetric(c.bestLevel, prometheus.GaugeValue, s.BestFloodLevel, s.Name)
		}
	}
}
