package search

import (
	"context"

	"github.com/floodtune/floodtune/metrics"
	"github.com/floodtune/floodtune/storage"
)

// Stats reads a store's studies for metrics.NewStudyCollector: the figures
// come from the storage at every scrape, so they hold for every process and
// machine that works on the studies.
type Stats struct{ Store *storage.Store }

var _ metrics.StudySource = Stats{}

// StudyStats implements metrics.StudySource.
func (s Stats) StudyStats(ctx context.Context) ([]metrics.StudyStat, error) {
	sums, err := s.Store.Summaries(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]metrics.StudyStat, len(sums))
	for i, sum := range sums {
		trials := make(map[string]int, len(sum.Trials))
		for st, n := range sum.Trials {
			trials[string(st)] = n
		}
		out[i] = metrics.StudyStat{Name: sum.Name, Trials: trials, Budget: sum.Budget, Best: sum.Best,
			BestFloodLevel: sum.BestFloodLevel, Reaped: sum.Reaped}
	}
	return out, nil
}
