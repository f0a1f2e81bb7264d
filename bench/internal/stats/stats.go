// Package stats holds the small measurements the benchmark programs share:
// order statistics of durations and the machine's load average.
package stats

import (
	"math"
	"os"
	"slices"
	"strings"
	"time"
)

// Percentile returns the p-quantile of ds by the nearest rank; 0 for none.
// ds is not changed.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// Median returns the median of ds, the mean of the middle two for an even
// count; ds is not changed. ds must not be empty.
func Median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if k := len(s); k%2 == 0 {
		return (s[k/2-1] + s[k/2]) / 2
	}
	return s[len(s)/2]
}

// LoadAverage returns the 1-, 5- and 15-minute load averages of
// /proc/loadavg, or "unknown".
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
