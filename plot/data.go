package plot

// Preparing a study's figures: its trials read into the points, series
// and table rows that plot.go draws.

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/floodtune/floodtune/search"
	"github.com/floodtune/floodtune/storage"
)

// FloodLevelParam is the parameter that holds a trial's flood level.
const FloodLevelParam = "flood_level"

// TopCurves is how many of the best trials the learning-curves figure shows.
const TopCurves = 5

// ErrNoCompleteTrial is returned by Prepare when no trial is complete with
// a value: there is nothing to draw yet.
var ErrNoCompleteTrial = errors.New("no complete trial with a value to plot")

// Study is what the figures need to know of a study besides its trials.
type Study struct {
	Name string
	// Direction says which value is best: the highest (Maximize) or the
	// lowest (Minimize).
	Direction storage.Direction
	// Objective names the trials' values: "val_acc" or "val_loss". Empty
	// means val_acc when maximising and val_loss when minimising.
	Objective string
	// Params returns a trial's parameters in their external form (float64,
	// int or a categorical string). Nil decodes the stored parameters with
	// their Goptuna distributions (search.DecodeParams).
	Params func(*storage.Trial) (map[string]any, error)
}

// AccuracyPoint is one complete trial in the accuracy figure.
type AccuracyPoint struct {
	Number     int
	X          float64 // the flood level, or the trial number (Data.ByFloodLevel)
	FloodLevel float64 // NaN when the trial has none
	Value      float64 // the trial's value (the objective)
	Val, Test  float64 // validation and test accuracy; NaN when unknown
}

// HistoryPoint is a trial's value, or the best value so far, at a trial
// number.
type HistoryPoint struct {
	Number int
	Value  float64
}

// EpochValue is a trial's intermediate value after an epoch.
type EpochValue struct {
	Epoch int
	Value float64
}

// Curve is one trial's learning curve.
type Curve struct {
	Number     int
	FloodLevel float64 // NaN when the trial has none
	Value      float64
	Best       bool
	Baseline   bool
	Points     []EpochValue // by epoch; NaN values left out
}

// Row is one trial in the HTML page's table.
type Row struct {
	Number     int
	State      storage.State
	Value      float64 // NaN when none
	FloodLevel float64 // NaN when none
	Params     map[string]any
	TestAcc    float64 // NaN when unknown
	Best       bool
	Baseline   bool
}

// Data is what the figures show, prepared from a study's trials.
type Data struct {
	Study Study // Objective filled in
	// ByFloodLevel is true when the study searches flood_level (some
	// complete trial has the parameter): the accuracy figure's x is the
	// flood level, and otherwise the trial number.
	ByFloodLevel bool
	// Accuracy holds the accuracy figure's points, by x and then number;
	// Best and Baseline are the indexes of the best trial's and the
	// baseline's points in it, -1 when they have none.
	Accuracy       []AccuracyPoint
	Best, Baseline int
	// BestTrial is the best complete trial's number; BaselineTrial the
	// plain-training trial's (following retries), -1 when there is none.
	BestTrial, BaselineTrial int
	// History holds each complete trial's value by number; RunningBest the
	// best value up to each of those trials.
	History     []HistoryPoint
	RunningBest []HistoryPoint
	// Curves are the learning curves of the TopCurves best complete trials
	// that have intermediate values, the best first.
	Curves []Curve
	// TestLoss and TrainLoss are the per-epoch test and training losses of
	// the trials that recorded them (training.test_curve), by flood level;
	// at most MaxLossCurves each, spread over the flood levels.
	TestLoss, TrainLoss []Curve
	// Trials holds every trial, by number, for the table.
	Trials []Row
	// Counts counts the trials by state.
	Counts map[storage.State]int
}

// Prepare reads what the figures show from a study's trials (in any
// order). Complete trials with a value are drawn; values and accuracies
// that are NaN or infinite are left out. With no such trial it returns an
// error that wraps ErrNoCompleteTrial and says what the trials are doing.
func Prepare(study Study, trials []*storage.Trial) (*Data, error) {
	if study.Objective == "" {
		study.Objective = string(search.ObjectiveValAcc)
		if study.Direction == storage.Minimize {
			study.Objective = string(search.ObjectiveValLoss)
		}
	}
	decode := study.Params
	if decode == nil {
		decode = search.DecodeParams
	}
	sorted := make([]*storage.Trial, 0, len(trials))
	for _, t := range trials {
		if t != nil {
			sorted = append(sorted, t)
		}
	}
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Number < sorted[j].Number })

	d := &Data{Study: study, Best: -1, Baseline: -1, BestTrial: -1, BaselineTrial: -1, Counts: map[storage.State]int{}}
	baseline := search.FindBaseline(sorted)
	if baseline != nil {
		d.BaselineTrial = baseline.Number
	}
	params := make([]map[string]any, len(sorted))
	var best *storage.Trial
	for i, t := range sorted {
		d.Counts[t.State]++
		p, err := decode(t)
		if err != nil {
			return nil, fmt.Errorf("plot study %q: %w", study.Name, err)
		}
		params[i] = p
		if t.State != storage.Complete || !finite(t.Value) {
			continue
		}
		if _, ok := p[FloodLevelParam]; ok {
			d.ByFloodLevel = true
		}
		if best == nil || better(study.Direction, t.Value, best.Value) {
			best = t
		}
	}
	if best == nil {
		return nil, fmt.Errorf("plot study %q: %w (%s)", study.Name, ErrNoCompleteTrial, describeCounts(d.Counts))
	}
	d.BestTrial = best.Number

	runBest := math.NaN()
	var candidates []*storage.Trial
	for i, t := range sorted {
		b := floodLevel(params[i])
		row := Row{Number: t.Number, State: t.State, Value: t.Value, FloodLevel: b, Params: map[string]any{},
			TestAcc: attrFloat(t, search.TestAccAttr), Best: t == best, Baseline: t == baseline}
		if !finite(row.Value) {
			row.Value = math.NaN()
		}
		for name, v := range params[i] {
			if name != FloodLevelParam {
				row.Params[name] = v
			}
		}
		d.Trials = append(d.Trials, row)
		if t.State != storage.Complete || !finite(t.Value) {
			continue
		}

		d.History = append(d.History, HistoryPoint{Number: t.Number, Value: t.Value})
		if math.IsNaN(runBest) || better(study.Direction, t.Value, runBest) {
			runBest = t.Value
		}
		d.RunningBest = append(d.RunningBest, HistoryPoint{Number: t.Number, Value: runBest})

		pt := AccuracyPoint{Number: t.Number, X: float64(t.Number), FloodLevel: b, Value: t.Value,
			Val: valAcc(study, t), Test: row.TestAcc}
		if d.ByFloodLevel {
			pt.X = b
		}
		if finite(pt.X) && (finite(pt.Val) || finite(pt.Test)) {
			d.Accuracy = append(d.Accuracy, pt)
		}
		if len(curvePoints(t)) > 0 {
			candidates = append(candidates, t)
		}
	}
	sort.SliceStable(d.Accuracy, func(i, j int) bool {
		if d.Accuracy[i].X != d.Accuracy[j].X {
			return d.Accuracy[i].X < d.Accuracy[j].X
		}
		return d.Accuracy[i].Number < d.Accuracy[j].Number
	})
	for i, pt := range d.Accuracy {
		if pt.Number == d.BestTrial {
			d.Best = i
		}
		if pt.Number == d.BaselineTrial {
			d.Baseline = i
		}
	}

	sort.SliceStable(candidates, func(i, j int) bool {
		return better(study.Direction, candidates[i].Value, candidates[j].Value)
	})
	if len(candidates) > TopCurves {
		candidates = candidates[:TopCurves]
	}
	levels := make(map[int]float64, len(d.Trials))
	for _, r := range d.Trials {
		levels[r.Number] = r.FloodLevel
	}
	for _, t := range candidates {
		d.Curves = append(d.Curves, Curve{Number: t.Number, FloodLevel: levels[t.Number], Value: t.Value,
			Best: t == best, Baseline: t == baseline, Points: curvePoints(t)})
	}
	d.TestLoss = lossCurves(sorted, levels, testLossCurveAttr, best, baseline)
	if len(d.TestLoss) > 0 {
		// Beside the test loss, what flooding does to the training loss.
		d.TrainLoss = lossCurves(sorted, levels, trainLossCurveAttr, best, baseline)
	}
	return d, nil
}

// better reports whether value a beats value b in the direction.
func better(dir storage.Direction, a, b float64) bool {
	if dir == storage.Minimize {
		return a < b
	}
	return a > b
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// valAcc is a trial's validation accuracy: its val_acc attribute, or its
// value when that is the validation accuracy.
func valAcc(study Study, t *storage.Trial) float64 {
	if v := attrFloat(t, search.ValAccAttr); finite(v) {
		return v
	}
	if study.Objective == string(search.ObjectiveValAcc) && finite(t.Value) {
		return t.Value
	}
	return math.NaN()
}

// attrFloat reads a finite number attribute of t; NaN otherwise.
func attrFloat(t *storage.Trial, key string) float64 {
	if v, ok := search.AttrFloat(t, key); ok && finite(v) {
		return v
	}
	return math.NaN()
}

// floodLevel reads the flood level from a trial's external parameters; NaN
// when it has none.
func floodLevel(params map[string]any) float64 {
	switch v := params[FloodLevelParam].(type) {
	case float64:
		return v
	case float32:
		return float64(v)
	case int:
		return float64(v)
	case int64:
		return float64(v)
	case string:
		if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
			return f
		}
	}
	return math.NaN()
}

// curvePoints returns a trial's finite intermediate values by epoch.
func curvePoints(t *storage.Trial) []EpochValue {
	var pts []EpochValue
	for step, v := range t.Intermediate {
		if finite(v) {
			pts = append(pts, EpochValue{Epoch: step, Value: v})
		}
	}
	sort.Slice(pts, func(i, j int) bool { return pts[i].Epoch < pts[j].Epoch })
	return pts
}

// describeCounts says how many trials are in each state, for an error.
func describeCounts(counts map[storage.State]int) string {
	if s := countList(counts); s != "" {
		return "trials: " + s
	}
	return "the study has no trials"
}

// countList lists the states that have trials with their counts: "3
// complete, 1 running".
func countList(counts map[storage.State]int) string {
	var parts []string
	for _, s := range []storage.State{storage.Complete, storage.Running, storage.Waiting, storage.Pruned, storage.Fail} {
		if n := counts[s]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, s))
		}
	}
	return strings.Join(parts, ", ")
}
