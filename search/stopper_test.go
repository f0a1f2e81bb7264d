package search

import "testing"

// Early stopping ends a run after Patience epochs without an improvement
// of more than MinDelta, in the objective's direction; the run's first
// epoch with ascents starts the count afresh.
func TestEarlyStoppingKnowsFlooding(t *testing.T) {
	t.Parallel()
	type epoch struct{ v, ascent float64 }
	for _, c := range []struct {
		name     string
		es       EarlyStopping
		minimize bool
		epochs   []epoch
		want     int // the epoch after which the run stops; 0: never
	}{
		{"plain, patience 2", EarlyStopping{Patience: 2}, false,
			[]epoch{{0.5, 0}, {0.6, 0}, {0.55, 0}, {0.58, 0}, {0.7, 0}}, 4},
		{"an improvement resets the count", EarlyStopping{Patience: 2}, false,
			[]epoch{{0.5, 0}, {0.4, 0}, {0.6, 0}, {0.5, 0}, {0.5, 0}}, 5},
		{"within min_delta is no improvement", EarlyStopping{Patience: 2, MinDelta: 0.05}, false,
			[]epoch{{0.5, 0}, {0.52, 0}, {0.54, 0}, {0.6, 0}}, 3},
		{"a loss improves downwards", EarlyStopping{Patience: 1}, true,
			[]epoch{{0.9, 0}, {0.8, 0}, {0.85, 0}}, 3},
		{"the first flooded epoch starts the count afresh", EarlyStopping{Patience: 2}, false,
			[]epoch{{0.6, 0}, {0.5, 0}, {0.4, 0.3}, {0.5, 0.4}, {0.65, 0.4}}, 0},
		{"then counts as before", EarlyStopping{Patience: 2}, false,
			[]epoch{{0.6, 0}, {0.5, 0}, {0.4, 0.3}, {0.5, 0.4}, {0.55, 0.4}, {0.58, 0.4}}, 5},
		{"only the first flooded epoch", EarlyStopping{Patience: 1}, false,
			[]epoch{{0.6, 0.1}, {0.5, 0.2}, {0.7, 0.2}}, 2},
	} {
		s := newStopper(&c.es, c.minimize)
		got := 0
		for i, e := range c.epochs {
			if s.stop(e.v, e.ascent) {
				got = i + 1
				break
			}
		}
		if got != c.want {
			t.Errorf("%s: stopped after epoch %d, want %d", c.name, got, c.want)
		}
	}
	if newStopper(nil, false).stop(0, 0) {
		t.Error("a run without early stopping stopped")
	}
}
