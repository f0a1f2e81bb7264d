package plot

import (
	"encoding/json"
	"fmt"
	"image/color"
	"math"
	"sort"

	"github.com/floodtune/floodtune/storage"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// The user attributes that hold a trial's per-epoch losses, as JSON arrays
// (search.TrainLossCurveAttr and search.TestLossCurveAttr; this package
// does not import search).
const (
	trainLossCurveAttr = "train_loss_curve"
	testLossCurveAttr  = "test_loss_curve"
)

// Files of the loss-curve figures, drawn when trials recorded the curves.
const (
	TestLossFile  = "test-loss-by-flood-level"
	TrainLossFile = "train-loss-by-flood-level"
)

// MaxLossCurves is how many trials the loss-curve figures show at most:
// spread over the flood levels searched, with the baseline and the best.
const MaxLossCurves = 8

// lossCurves returns, for the trials that recorded the curve in attr, one
// curve each (Value: the trial's value), at most MaxLossCurves of them
// spread over the flood levels, by flood level.
func lossCurves(trials []*storage.Trial, levels map[int]float64, attr string, best, baseline *storage.Trial) []Curve {
	var all []Curve
	for _, t := range trials {
		raw, ok := t.UserAttrs[attr]
		if !ok || t.State != storage.Complete {
			continue
		}
		var values []*float64
		if json.Unmarshal([]byte(raw), &values) != nil {
			continue
		}
		c := Curve{Number: t.Number, FloodLevel: levels[t.Number], Value: t.Value, Best: t == best, Baseline: t == baseline}
		for i, v := range values {
			if v != nil && finite(*v) {
				c.Points = append(c.Points, EpochValue{Epoch: i + 1, Value: *v})
			}
		}
		if len(c.Points) > 0 {
			all = append(all, c)
		}
	}
	sort.SliceStable(all, func(i, j int) bool {
		a, b := all[i].FloodLevel, all[j].FloodLevel
		if math.IsNaN(a) || math.IsNaN(b) {
			return !math.IsNaN(a) && math.IsNaN(b)
		}
		return a < b
	})
	if len(all) <= MaxLossCurves {
		return all
	}
	// Evenly spaced ranks, both ends included; then the baseline and the
	// best, each in place of the nearest rank that is neither an end nor
	// one of them.
	keep := map[int]bool{}
	for k := 0; k < MaxLossCurves; k++ {
		keep[int(math.Round(float64(k)*float64(len(all)-1)/float64(MaxLossCurves-1)))] = true
	}
	must := map[int]bool{}
	for i, c := range all {
		if c.Best || c.Baseline {
			must[i] = true
		}
	}
	for m := range must {
		if keep[m] {
			continue
		}
		drop := -1
		for i := range keep {
			if i == 0 || i == len(all)-1 || must[i] {
				continue
			}
			if drop < 0 || abs(i-m) < abs(drop-m) || abs(i-m) == abs(drop-m) && i < drop {
				drop = i
			}
		}
		if drop >= 0 {
			delete(keep, drop)
		}
		keep[m] = true
	}
	var out []Curve
	for i, c := range all {
		if keep[i] {
			out = append(out, c)
		}
	}
	return out
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// levelColor is the colour of the i-th of n curves ordered by flood level:
// from dark blue (low b) through green to yellow (high b), as viridis.
func levelColor(i, n int) color.Color {
	stops := []color.RGBA{{68, 1, 84, 255}, {59, 82, 139, 255}, {33, 145, 140, 255}, {94, 201, 98, 255}, {220, 200, 30, 255}}
	if n <= 1 {
		return stops[1]
	}
	x := float64(i) / float64(n-1) * float64(len(stops)-1)
	k := min(int(x), len(stops)-2)
	f := x - float64(k)
	mix := func(a, b uint8) uint8 { return uint8(math.Round(float64(a) + f*(float64(b)-float64(a)))) }
	a, b := stops[k], stops[k+1]
	return color.RGBA{mix(a.R, b.R), mix(a.G, b.G), mix(a.B, b.B), 255}
}

// lossFigure draws curves of a loss by epoch, one line per flood level.
func (d *Data) lossFigure(file, heading, what, yLabel string, curves []Curve) (*figure, error) {
	f := newFigure(file, heading, d.title(what), "epoch", yLabel)
	f.plot.X.Tick.Marker = niceTicks{n: 8, integer: true}
	for i, c := range curves {
		xys := make(plotter.XYs, len(c.Points))
		for j, p := range c.Points {
			xys[j] = plotter.XY{X: float64(p.Epoch), Y: p.Value}
		}
		line, err := plotter.NewLine(xys)
		if err != nil {
			return nil, err
		}
		line.LineStyle = draw.LineStyle{Color: levelColor(i, len(curves)), Width: vg.Points(1.4)}
		if c.Baseline {
			line.LineStyle.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
		}
		if c.Best {
			line.LineStyle.Width = vg.Points(2.4)
		}
		f.plot.Add(line)
		label := d.trialLabel(c.Number, c.FloodLevel)
		switch {
		case c.Best:
			label += " (best)"
		case c.Baseline:
			label += " (baseline)"
		}
		f.legend.Add(label, line)
	}
	return f, nil
}

// lossFigures returns the figures of the loss curves that trials recorded.
func (d *Data) lossFigures() ([]*figure, error) {
	var figs []*figure
	if len(d.TestLoss) > 0 {
		f, err := d.lossFigure(TestLossFile, "Test loss by epoch across flood levels",
			fmt.Sprintf("test loss by epoch, %d flood levels", len(d.TestLoss)), "test loss (cross-entropy, nats)", d.TestLoss)
		if err != nil {
			return nil, err
		}
		figs = append(figs, f)
	}
	if len(d.TrainLoss) > 0 {
		f, err := d.lossFigure(TrainLossFile, "Training loss by epoch across flood levels",
			fmt.Sprintf("training loss by epoch, %d flood levels", len(d.TrainLoss)), "training loss (unflooded mean over the epoch, nats)", d.TrainLoss)
		if err != nil {
			return nil, err
		}
		figs = append(figs, f)
	}
	return figs, nil
}
