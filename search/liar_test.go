package search_test

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/floodtune/floodtune/search"
	"github.com/floodtune/floodtune/storage"
)

// duplicates runs a TPE study of 48 trials with 4 workers, and counts the
// pairs of trials that ran at the same time and are closer than 2% of the
// space's width in both dimensions: the points a parallel search wastes.
func duplicates(b testing.TB, liar bool, seed int64) int {
	ctx := context.Background()
	st, err := storage.Open(ctx, "sqlite:"+filepath.Join(b.TempDir(), "dup.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	spec, err := search.ParseSpec([]byte(fmt.Sprintf(`
dataset: {name: gauss2d}
search: {sampler: tpe, trials: 48, seed: %d, baseline: false}
space:
  flood_level: {type: float, low: 0, high: 1}
  lr: {type: float, low: 0.001, high: 1}
`, seed)))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := search.Create(ctx, st, "dup", spec); err != nil {
		b.Fatal(err)
	}
	obj := func(ctx context.Context, t *search.Trial) (float64, error) {
		time.Sleep(20 * time.Millisecond)
		x, y := t.Config.FloodLevel, t.Config.LR
		return -(x-0.3)*(x-0.3) - (y-0.7)*(y-0.7), nil
	}
	if err := search.Optimize(ctx, st, "dup", search.Options{Workers: 4, Objective: obj, NoConstantLiar: !liar}); err != nil {
		b.Fatal(err)
	}
	study, _ := st.StudyByName(ctx, "dup")
	trials, _ := st.Trials(ctx, study.ID)
	n := 0
	for i := range trials {
		for j := i + 1; j < len(trials); j++ {
			a, c := trials[i].Params, trials[j].Params
			overlap := trials[i].StartedAt.Before(trials[j].CompletedAt) && trials[j].StartedAt.Before(trials[i].CompletedAt)
			if overlap && math.Abs(a["flood_level"].Value-c["flood_level"].Value) < 0.02 && math.Abs(a["lr"].Value-c["lr"].Value) < 0.02 {
				n++
			}
		}
	}
	return n
}

// BenchmarkParallelTPEDuplicates reports the near-duplicate pairs among 48
// trials of 4 parallel TPE workers, with and without the constant liar,
// summed over 5 seeds.
func BenchmarkParallelTPEDuplicates(b *testing.B) {
	for _, liar := range []bool{false, true} {
		b.Run(fmt.Sprintf("liar=%v", liar), func(b *testing.B) {
			total := 0
			for i := 0; i < b.N; i++ {
				for seed := int64(1); seed <= 5; seed++ {
					total += duplicates(b, liar, seed)
				}
			}
			b.ReportMetric(float64(total)/float64(b.N), "dup-pairs/5-studies")
		})
	}
}
