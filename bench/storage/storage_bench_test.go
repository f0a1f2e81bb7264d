package storagebench

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/floodtune/floodtune/bench/internal/stats"

	"github.com/c-bata/goptuna"
	"github.com/c-bata/goptuna/tpe"
)

var (
	flagWorkers = flag.Int("asktell.workers", 8, "concurrent workers of BenchmarkAskTell")
	flagTrials  = flag.Int("asktell.trials", 400, "trials of one BenchmarkAskTell run (a fresh study each run; rounded down to a multiple of the workers)")
	flagSizes   = flag.String("study.sizes", "1000,10000", "study sizes of BenchmarkStudy, comma-separated, increasing")
)

func newTPE(seed int64) goptuna.Sampler { return tpe.NewSampler(tpe.SamplerOptionSeed(seed)) }

// BenchmarkAskTell measures the throughput of ask/tell: -asktell.workers
// goroutines (8) each run goptuna's Study.Optimize on their own Study value
// and storage adapter until the study holds -asktell.trials trials (400).
// Each run starts on a fresh database holding one empty study, since
// Goptuna reloads all of a study's trials at every trial (and TPE twice
// more, once per suggestion): the cost of a trial grows with the study.
// The figure is trials/s over the workers' wall time.
func BenchmarkAskTell(b *testing.B) {
	workers := *flagWorkers
	perWorker := max(*flagTrials/workers, 1)
	for _, sampler := range []string{"random", "tpe"} {
		b.Run("sampler="+sampler, func(b *testing.B) {
			for _, name := range dbBackends {
				b.Run(name, func(b *testing.B) {
					var busy time.Duration
					for range b.N {
						b.StopTimer()
						ctx, cancel := context.WithTimeout(b.Context(), 5*time.Minute)
						be := openBackend(b, ctx, name)
						b.StartTimer()
						study, elapsed, err := optimize(ctx, be, sampler, workers, perWorker)
						b.StopTimer()
						busy += elapsed
						if err == nil {
							err = checkOptimized(be, study, workers*perWorker)
						}
						cancel()
						if err != nil {
							b.Fatal(err)
						}
						b.StartTimer()
					}
					tps := float64(b.N*workers*perWorker) / busy.Seconds()
					b.ReportMetric(tps, "trials/s")
					b.ReportMetric(0, "ns/op")
					record(b, tableAskTell, sampler, name, tps)
				})
			}
		})
	}
}

// BenchmarkStudy measures reading a study of 1,000 and then 10,000 trials
// (-study.sizes): loading it with GetAllTrials, and one TPE suggestion
// (tpe.Sampler.Sample for one parameter, which reloads every trial and
// fits the Parzen estimators). Each backend holds one study on its own
// database, filled by CloneTrial in the same order with the same trials
// (three parameters, up to three intermediate values each), grown from one
// size to the next and vacuumed (PostgreSQL) before it is measured. The
// figures are medians over the iterations.
func BenchmarkStudy(b *testing.B) {
	sizes, err := parseSizes(*flagSizes)
	if err != nil {
		b.Fatal(err)
	}
	all := append(slices.Clone(dbBackends), memory)
	studies := map[string]*study{}
	for _, name := range all {
		studies[name] = newStudy(b, b.Context(), name)
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("trials=%d", n), func(b *testing.B) {
			// Grow every backend's study first, then let the databases
			// settle, so that no measurement shares the machine with a
			// fill or with autovacuum.
			for _, name := range all {
				st := studies[name]
				if err := st.grow(n); err != nil {
					b.Fatal(err)
				}
				recordFill(b, n, name, st.filling)
				if err := st.vacuum(b.Context()); err != nil {
					b.Fatal(err)
				}
			}
			b.Run("op=GetAllTrials", func(b *testing.B) {
				for _, name := range all {
					b.Run(name, func(b *testing.B) {
						st := studies[name]
						times := make([]time.Duration, 0, b.N)
						b.ResetTimer()
						for range b.N {
							t0 := time.Now()
							trials, err := st.s.GetAllTrials(st.id)
							times = append(times, time.Since(t0))
							if err != nil {
								b.Fatal(err)
							}
							if len(trials) != n {
								b.Fatalf("%s: %d trials, want %d", name, len(trials), n)
							}
						}
						med := stats.Median(times)
						b.ReportMetric(med.Seconds()*1e3, "median-ms/load")
						record(b, tableLoad, strconv.Itoa(n), name, med.Seconds())
					})
				}
			})
			b.Run("op=TPESample", func(b *testing.B) {
				for _, name := range all {
					b.Run(name, func(b *testing.B) {
						st := studies[name]
						gs, err := goptuna.LoadStudy(st.name, goptuna.StudyOptionStorage(st.s), goptuna.StudyOptionLogger(nil))
						if err != nil {
							b.Fatal(err)
						}
						sampler := newTPE(1)
						running := goptuna.FrozenTrial{ID: -1, Number: n, State: goptuna.TrialStateRunning}
						times := make([]time.Duration, 0, b.N)
						b.ResetTimer()
						for range b.N {
							t0 := time.Now()
							_, err := sampler.Sample(gs, running, "x", distX)
							times = append(times, time.Since(t0))
							if err != nil {
								b.Fatal(err)
							}
						}
						med := stats.Median(times)
						b.ReportMetric(med.Seconds()*1e3, "median-ms/sample")
						record(b, tableTPE, strconv.Itoa(n), name, med.Seconds())
					})
				}
			})
		})
	}
}

func parseSizes(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || (len(out) > 0 && n <= out[len(out)-1]) {
			return nil, fmt.Errorf("-study.sizes %q: want increasing positive integers separated by commas", s)
		}
		out = append(out, n)
	}
	return out, nil
}
