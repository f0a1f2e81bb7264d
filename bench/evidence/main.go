// Command evidence runs the floodtune studies behind the tables of
// docs/results.md and prints the tables: plain training against the flood
// level chosen on validation accuracy, with flooding and with individual
// flooding, over several seeds; the test loss across flood levels epoch by
// epoch; and flood-level searches with and without a prior.
//
//	go -C bench build -o ../bin/evidence ./evidence
//	bin/evidence [-parts science,curves,prior] [-seeds 1,2,3] [-settings ...] [-methods flood,iflood]
//
// from the repository's root, whose paths -storage, -specs and -plots name
// by default (make results does both).
//
// Studies are kept in -storage: a study that already finished is read, not
// run again, so an interrupted run resumes where it stopped.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/floodtune/floodtune/objective"
	"github.com/floodtune/floodtune/plot"
	"github.com/floodtune/floodtune/search"
	"github.com/floodtune/floodtune/storage"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "evidence:", err)
		os.Exit(1)
	}
}

type runner struct {
	st      *storage.Store
	specs   string
	workers int
	log     io.Writer
}

func run() error {
	storageURL := flag.String("storage", "sqlite:out/evidence/evidence.db", "where the studies are kept")
	specs := flag.String("specs", "examples/evidence", "the directory of the specs")
	parts := flag.String("parts", "science,curves,prior", "what to run: science, curves, prior (comma-separated)")
	seedList := flag.String("seeds", "1,2,3", "the study seeds (comma-separated)")
	settings := flag.String("settings", "gauss2d,sinusoid2d,mnist-noise0,mnist-noise20,mnist-noise40", "the science part's specs")
	methods := flag.String("methods", "flood,iflood", "the science part's flooding methods (comma-separated)")
	workers := flag.Int("workers", 2, "trials at once")
	plots := flag.String("plots", "docs/plots/test-loss", "where the curves part draws its figures")
	flag.Parse()
	var seeds []int64
	for _, s := range strings.Split(*seedList, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return fmt.Errorf("-seeds: %w", err)
		}
		seeds = append(seeds, n)
	}
	if strings.HasPrefix(*storageURL, "sqlite:") {
		if err := os.MkdirAll(filepath.Dir(strings.TrimPrefix(*storageURL, "sqlite:")), 0o755); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	st, err := storage.Open(ctx, *storageURL)
	if err != nil {
		return err
	}
	defer st.Close()
	r := &runner{st: st, specs: *specs, workers: *workers, log: os.Stderr}
	for _, part := range strings.Split(*parts, ",") {
		switch strings.TrimSpace(part) {
		case "science":
			err = r.science(ctx, strings.Split(*settings, ","), strings.Split(*methods, ","), seeds)
		case "curves":
			err = r.curves(ctx, *plots)
		case "prior":
			err = r.prior(ctx, seeds)
		default:
			err = fmt.Errorf("-parts: unknown %q (want science, curves or prior)", part)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// study runs (or reads, when it has finished) the study name of the spec
// file, changed by edit, with values enqueued first, and returns its
// trials and spec.
func (r *runner) study(ctx context.Context, name, specFile string, edit func(*search.Spec), enqueue []map[string]any) ([]*storage.Trial, *search.Spec, error) {
	data, err := os.ReadFile(filepath.Join(r.specs, specFile))
	if err != nil {
		return nil, nil, err
	}
	spec, err := search.ParseSpec(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", specFile, err)
	}
	edit(spec)
	study, err := r.st.StudyByName(ctx, name)
	if errors.Is(err, storage.ErrNotFound) {
		created, err := search.Create(ctx, r.st, name, spec)
		if err != nil {
			return nil, nil, err
		}
		for _, v := range enqueue {
			if _, err := created.Enqueue(ctx, v, nil); err != nil {
				return nil, nil, err
			}
		}
		study = created.Stored()
	} else if err != nil {
		return nil, nil, err
	}
	if spec, err = search.LoadSpec(study); err != nil {
		return nil, nil, err
	}
	counts, counted, err := r.st.Counts(ctx, study.ID)
	if err != nil {
		return nil, nil, err
	}
	if counted < study.Budget || counts[storage.Running]+counts[storage.Waiting] > 0 {
		t0 := time.Now()
		fmt.Fprintf(r.log, "study %s: running %d trials...\n", name, study.Budget)
		quiet := slog.New(slog.NewTextHandler(r.log, &slog.HandlerOptions{Level: slog.LevelWarn}))
		if err := search.Optimize(ctx, r.st, name, search.Options{Workers: r.workers, Logger: quiet, ReserveThreads: true}); err != nil {
			return nil, nil, err
		}
		fmt.Fprintf(r.log, "study %s: done in %s\n", name, time.Since(t0).Round(time.Second))
	}
	trials, err := r.st.Trials(ctx, study.ID)
	return trials, spec, err
}

// outcome is what a study says about flooding.
type outcome struct {
	plainAcc, plainLoss float64 // the baseline trial's test accuracy and loss
	// The baseline stopped at its best validation epoch (early stopping):
	// that epoch and its test accuracy and loss, NaN for a study run by a
	// floodtune that did not record them.
	stopAcc, stopLoss, stopEpoch float64
	acc, loss, b                 float64 // the trial chosen on validation accuracy
	valPlain, val                float64
}

func attr(t *storage.Trial, k string) float64 {
	v, err := strconv.ParseFloat(t.UserAttrs[k], 64)
	if err != nil {
		return math.NaN()
	}
	return v
}

// chosen returns the complete trial with the best value among the first n
// (all when n <= 0), the lowest number on ties.
func chosen(trials []*storage.Trial, n int) *storage.Trial {
	var best *storage.Trial
	for _, t := range trials {
		if n > 0 && t.Number >= n {
			continue
		}
		if t.State == storage.Complete && (best == nil || t.Value > best.Value) {
			best = t
		}
	}
	return best
}

func summarize(trials []*storage.Trial) (outcome, error) {
	var plain *storage.Trial
	for _, t := range trials {
		if t.State == storage.Complete && t.Params["flood_level"].Value == 0 && (plain == nil || t.Number < plain.Number) {
			plain = t
		}
	}
	best := chosen(trials, 0)
	if plain == nil || best == nil {
		return outcome{}, errors.New("the study has no complete baseline or best trial")
	}
	return outcome{plainAcc: attr(plain, "test_acc"), plainLoss: attr(plain, "test_loss"), valPlain: plain.Value,
		stopAcc: attr(plain, search.BestTestAccAttr), stopLoss: attr(plain, "best_test_loss"), stopEpoch: attr(plain, search.BestEpochAttr),
		acc: attr(best, "test_acc"), loss: attr(best, "test_loss"), b: best.Params["flood_level"].Value, val: best.Value}, nil
}

func meanSD(xs []float64) (float64, float64) {
	m := 0.0
	for _, x := range xs {
		m += x
	}
	m /= float64(len(xs))
	v := 0.0
	for _, x := range xs {
		v += (x - m) * (x - m)
	}
	if len(xs) > 1 {
		v /= float64(len(xs) - 1)
	}
	return m, math.Sqrt(v)
}

func pm(xs []float64, scale float64, prec int) string {
	m, sd := meanSD(xs)
	return fmt.Sprintf("%.*f ± %.*f", prec, m*scale, prec, sd*scale)
}

// pmKnown is pm, or "–" when a seed lacks the figure (NaN).
func pmKnown(xs []float64, scale float64, prec int) string {
	if slices.ContainsFunc(xs, math.IsNaN) {
		return "–"
	}
	return pm(xs, scale, prec)
}

func (r *runner) science(ctx context.Context, settings, methods []string, seeds []int64) error {
	// "early-stopped" is plain training stopped at its best validation
	// epoch: the baseline trial's test figures at that epoch.
	fmt.Println("| setting | method | plain test acc % | early-stopped test acc % | chosen test acc % | plain test loss | early-stopped test loss | chosen test loss | early-stopped epoch | chosen b | irreducible loss | seeds | trials |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	var notes []string
	for _, setting := range settings {
		for _, method := range methods {
			var pa, pl, sa, sl, se, ca, cl, bs []float64
			var spec *search.Spec
			for _, seed := range seeds {
				name := fmt.Sprintf("%s-%s-s%d", setting, method, seed)
				trials, s, err := r.study(ctx, name, setting+".yaml", func(s *search.Spec) {
					s.Search.Seed = seed
					m := method
					s.Training.Flood = &m
				}, nil)
				if err != nil {
					return fmt.Errorf("study %s: %w", name, err)
				}
				spec = s
				o, err := summarize(trials)
				if err != nil {
					return fmt.Errorf("study %s: %w", name, err)
				}
				pa, pl, ca, cl, bs = append(pa, o.plainAcc), append(pl, o.plainLoss), append(ca, o.acc), append(cl, o.loss), append(bs, o.b)
				sa, sl, se = append(sa, o.stopAcc), append(sl, o.stopLoss), append(se, o.stopEpoch)
			}
			irreducible := "–"
			if spec.Dataset.LabelNoise > 0 {
				classes := 2
				if strings.HasPrefix(setting, "mnist") {
					classes = 10
				}
				irreducible = fmt.Sprintf("%.3f", objective.IrreducibleLoss(spec.Dataset.LabelNoise, classes))
			}
			fmt.Printf("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d | %d |\n", setting, method,
				pm(pa, 100, 2), pmKnown(sa, 100, 2), pm(ca, 100, 2), pm(pl, 1, 3), pmKnown(sl, 1, 3), pm(cl, 1, 3),
				pmKnown(se, 1, 1), pm(bs, 1, 3), irreducible, len(seeds), spec.Search.Trials)
			note := fmt.Sprintf("%s, %s: chosen b per seed %s", setting, method, fmtList(bs, 3))
			if !slices.ContainsFunc(se, math.IsNaN) {
				note += fmt.Sprintf("; per seed, the early-stopped epoch %s, test acc %% %s, and the chosen test acc %% %s",
					fmtList(se, 0), fmtList(scaled(sa, 100), 2), fmtList(scaled(ca, 100), 2))
			}
			notes = append(notes, note)
		}
	}
	fmt.Println()
	for _, n := range notes {
		fmt.Println("- " + n)
	}
	fmt.Println()
	return nil
}

func scaled(xs []float64, k float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = k * x
	}
	return out
}

func fmtList(xs []float64, prec int) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.FormatFloat(x, 'f', prec, 64)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// curveLevels are the flood levels of the curves part, besides the
// baseline's 0.
var curveLevels = []float64{0.2, 0.4, 0.6, 0.8, 0.94, 1.2}

func (r *runner) curves(ctx context.Context, dir string) error {
	var enqueue []map[string]any
	for _, b := range curveLevels {
		enqueue = append(enqueue, map[string]any{"flood_level": b})
	}
	const name = "mnist-noise20-curves"
	trials, spec, err := r.study(ctx, name, name+".yaml", func(*search.Spec) {}, enqueue)
	if err != nil {
		return err
	}
	study, err := r.st.StudyByName(ctx, name)
	if err != nil {
		return err
	}
	d, err := plot.Prepare(plot.Study{Name: study.Name, Direction: study.Direction}, trials)
	if err != nil {
		return err
	}
	files, err := d.Write(dir, plot.PNG, plot.SVG)
	if err != nil {
		return err
	}
	fmt.Fprintf(r.log, "drew %s\n", strings.Join(files, ", "))
	fmt.Printf("Test loss by epoch, MNIST with 20%% label noise, %d epochs:\n\n", *spec.Training.Epochs)
	fmt.Println("| b | min test loss (epoch) | final test loss | final test acc % | final train loss | val acc % |")
	fmt.Println("|---|---|---|---|---|---|")
	slices.SortFunc(trials, func(a, b *storage.Trial) int {
		return int(math.Copysign(1, a.Params["flood_level"].Value-b.Params["flood_level"].Value))
	})
	for _, t := range trials {
		if t.State != storage.Complete {
			continue
		}
		curve, err := search.ParseCurve(t.UserAttrs[search.TestLossCurveAttr])
		if err != nil || len(curve) == 0 {
			return fmt.Errorf("trial %d has no test-loss curve: %v", t.Number, err)
		}
		lowest := 0
		for i, v := range curve {
			if v < curve[lowest] {
				lowest = i
			}
		}
		train, _ := search.ParseCurve(t.UserAttrs[search.TrainLossCurveAttr])
		lastTrain := math.NaN()
		if len(train) > 0 {
			lastTrain = train[len(train)-1]
		}
		fmt.Printf("| %.2f | %.3f (%d) | %.3f | %.2f | %.3f | %.2f |\n", t.Params["flood_level"].Value, curve[lowest], lowest+1,
			curve[len(curve)-1], 100*attr(t, "test_acc"), lastTrain, 100*t.Value)
	}
	fmt.Println()
	return nil
}

// priorArms are the prior part's specs.
var priorArms = []string{"mnist-noise20-wide", "mnist-noise20-noise-prior", "mnist-noise20-unflooded-prior"}

func (r *runner) prior(ctx context.Context, seeds []int64) error {
	type arm struct{ trials [][]*storage.Trial }
	arms := make([]arm, len(priorArms))
	var budget int
	for i, a := range priorArms {
		for _, seed := range seeds {
			name := fmt.Sprintf("%s-s%d", a, seed)
			trials, spec, err := r.study(ctx, name, a+".yaml", func(s *search.Spec) { s.Search.Seed = seed }, nil)
			if err != nil {
				return fmt.Errorf("study %s: %w", name, err)
			}
			budget = spec.Search.Trials
			arms[i].trials = append(arms[i].trials, trials)
		}
	}
	// A good flood level: validation accuracy within half a point of the
	// best that any arm found with the same seed (the same data).
	const within = 0.005
	fmt.Printf("Flood-level search on MNIST with 20%% label noise, %d trials, %d seeds; best validation accuracy after k trials, and trials until one within %.1f points of the best any search found with that seed:\n\n", budget, len(seeds), 100*within)
	fmt.Println("| search | range | after 1 | after 2 | after 4 | after 8 | trials to a good b | chosen b | test acc % of the chosen |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	for i, a := range priorArms {
		after := map[int][]float64{}
		var need, bs, accs []float64
		for s := range seeds {
			top := math.Inf(-1)
			for j := range arms {
				if b := chosen(arms[j].trials[s], 0); b != nil {
					top = max(top, b.Value)
				}
			}
			trials := arms[i].trials[s]
			for _, k := range []int{1, 2, 4, 8} {
				if b := chosen(trials, k); b != nil {
					after[k] = append(after[k], b.Value)
				}
			}
			n := math.NaN()
			for k := 1; k <= budget; k++ {
				if b := chosen(trials, k); b != nil && b.Value >= top-within {
					n = float64(k)
					break
				}
			}
			need = append(need, n)
			b := chosen(trials, 0)
			bs, accs = append(bs, b.Params["flood_level"].Value), append(accs, attr(b, "test_acc"))
		}
		rng := "[0, 1.5]"
		if p := arms[i].trials[0]; len(p) > 0 {
			study, err := r.st.Study(ctx, p[0].StudyID)
			if err != nil {
				return err
			}
			spec, err := search.LoadSpec(study)
			if err != nil {
				return err
			}
			fl := spec.Space["flood_level"]
			rng = fmt.Sprintf("[%.2f, %.2f]", *fl.Low, *fl.High)
		}
		cells := []string{a, rng}
		for _, k := range []int{1, 2, 4, 8} {
			cells = append(cells, pm(after[k], 100, 2))
		}
		reached := make([]string, len(need))
		for j, n := range need {
			reached[j] = fmt.Sprintf(">%d", budget)
			if !math.IsNaN(n) {
				reached[j] = strconv.Itoa(int(n))
			}
		}
		cells = append(cells, "["+strings.Join(reached, ", ")+"]", fmtList(bs, 3), pm(accs, 100, 2))
		fmt.Println("| " + strings.Join(cells, " | ") + " |")
	}
	fmt.Println()
	return nil
}
