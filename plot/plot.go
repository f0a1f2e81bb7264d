package plot

import (
	"bufio"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/floodtune/floodtune/internal/atomicfile"
	"github.com/floodtune/floodtune/search"
	gplot "gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Format is a file format Write writes.
type Format string

// The formats.
const (
	PNG  Format = "png"
	SVG  Format = "svg"
	HTML Format = "html"
)

// The figures' file names, without the extension, and the page's name.
const (
	AccuracyFile = "accuracy-vs-flood-level"
	HistoryFile  = "history"
	CurvesFile   = "learning-curves"
	HTMLFile     = "plots.html"
)

// ParseFormat checks a format's name.
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(strings.TrimSpace(s))); f {
	case PNG, SVG, HTML:
		return f, nil
	}
	return "", fmt.Errorf("unknown plot format %q: want png, svg or html", s)
}

// Write writes the figures into dir (created if need be) in each format:
// one file per figure for PNG and SVG, the page HTMLFile for HTML. It
// returns the paths of the files written, in order.
func (d *Data) Write(dir string, formats ...Format) ([]string, error) {
	if len(formats) == 0 {
		formats = []Format{PNG, SVG}
	}
	for _, f := range formats {
		if _, err := ParseFormat(string(f)); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("plot study %q: %w", d.Study.Name, err)
	}
	figs, err := d.figures()
	if err != nil {
		return nil, fmt.Errorf("plot study %q: %w", d.Study.Name, err)
	}
	var files []string
	for _, f := range formats {
		if f == HTML {
			path := filepath.Join(dir, HTMLFile)
			if err := atomicfile.Write(path, func(w *bufio.Writer) error { return d.writeHTML(w, figs) }); err != nil {
				return files, fmt.Errorf("plot study %q: write %s: %w", d.Study.Name, path, err)
			}
			files = append(files, path)
			continue
		}
		for _, fig := range figs {
			path := filepath.Join(dir, fig.file+"."+string(f))
			if err := atomicfile.Write(path, func(w *bufio.Writer) error { return fig.writeTo(w, f) }); err != nil {
				return files, fmt.Errorf("plot study %q: write %s: %w", d.Study.Name, path, err)
			}
			files = append(files, path)
		}
	}
	return files, nil
}

// shortName is a study name for a figure's title: at most 40 characters,
// with any rune that XML cannot carry replaced.
func shortName(name string) string {
	name = strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return ' '
		}
		if r < 0x20 || (r >= 0xD800 && r <= 0xDFFF) || r == 0xFFFE || r == 0xFFFF || r == utf8.RuneError {
			return '?'
		}
		return r
	}, name)
	if r := []rune(name); len(r) > 40 {
		name = string(r[:37]) + "..."
	}
	return name
}

// formatLevel shows a flood level in a label: three significant digits.
func formatLevel(b float64) string {
	if math.IsNaN(b) {
		return "?"
	}
	return strconv.FormatFloat(b, 'g', 3, 64)
}

// The figures' size, and the PNG resolution.
const (
	figWidth  = 9 * vg.Inch
	figHeight = 5 * vg.Inch
	pngDPI    = 150
)

// Colours (Okabe and Ito's palette, which colour-blind readers can tell
// apart).
var (
	blue       = color.RGBA{R: 0, G: 114, B: 178, A: 255}
	orange     = color.RGBA{R: 230, G: 159, B: 0, A: 255}
	vermillion = color.RGBA{R: 213, G: 94, B: 0, A: 255}
	green      = color.RGBA{R: 0, G: 158, B: 115, A: 255}
	purple     = color.RGBA{R: 204, G: 121, B: 167, A: 255}
	skyBlue    = color.RGBA{R: 86, G: 180, B: 233, A: 255}
	black      = color.RGBA{A: 255}
	curveColor = []color.Color{vermillion, blue, green, purple, skyBlue}
)

// figure is one figure: a plot, and its legend drawn beside it so that it
// never covers a point.
type figure struct {
	file    string // the file name, without the extension
	heading string // the HTML page's heading for it
	plot    *gplot.Plot
	legend  gplot.Legend
}

func newFigure(file, heading, title, xLabel, yLabel string) *figure {
	p := gplot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = vg.Points(13)
	p.Title.Padding = vg.Points(8)
	p.X.Label.Text, p.Y.Label.Text = xLabel, yLabel
	for _, a := range []*gplot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font.Size = vg.Points(11)
		a.Tick.Label.Font.Size = vg.Points(10)
	}
	p.X.Tick.Marker = niceTicks{n: 8}
	p.Y.Tick.Marker = niceTicks{n: 6}
	g := plotter.NewGrid()
	g.Vertical.Color = color.Gray{Y: 225}
	g.Horizontal.Color = color.Gray{Y: 225}
	p.Add(g)
	leg := gplot.NewLegend()
	leg.Top, leg.Left = true, true
	leg.TextStyle.Font.Size = vg.Points(10)
	leg.Padding = vg.Points(4)
	leg.ThumbnailWidth = vg.Points(22)
	return &figure{file: file, heading: heading, plot: p, legend: leg}
}

// draw draws the plot on the left of c and its legend in a column on the
// right, level with the top of the plot's data area.
func (f *figure) draw(c draw.Canvas) {
	c.SetColor(color.White)
	c.Fill(c.Rectangle.Path())
	const gap = vg.Length(12)
	width := f.legend.Rectangle(c).Size().X
	if width == 0 {
		f.plot.Draw(draw.Crop(c, 0, -gap, 0, 0))
		return
	}
	if max := c.Size().X * 2 / 5; width > max {
		width = max
	}
	f.plot.Draw(draw.Crop(c, 0, -(width + 2*gap), 0, 0))
	top := f.plot.Title.Padding + gap/2
	if f.plot.Title.Text != "" {
		top += f.plot.Title.TextStyle.Rectangle(f.plot.Title.Text).Size().Y
	}
	f.legend.Draw(draw.Crop(c, c.Size().X-width-gap, -gap, 0, -top))
}

// writeTo writes the figure as PNG or SVG.
func (f *figure) writeTo(w io.Writer, format Format) error {
	var c interface {
		vg.CanvasSizer
		io.WriterTo
	}
	switch format {
	case PNG:
		c = vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(figWidth, figHeight), vgimg.UseDPI(pngDPI))}
	case SVG:
		c = vgsvg.New(figWidth, figHeight)
	default:
		return fmt.Errorf("figure %s: no %s writer", f.file, format)
	}
	f.draw(draw.New(c))
	_, err := c.WriteTo(w)
	return err
}

// figures builds the three figures, and the loss curves' when trials
// recorded them.
func (d *Data) figures() ([]*figure, error) {
	var figs []*figure
	for _, build := range []func() (*figure, error){d.accuracyFigure, d.historyFigure, d.curvesFigure} {
		f, err := build()
		if err != nil {
			return nil, err
		}
		figs = append(figs, f)
	}
	loss, err := d.lossFigures()
	return append(figs, loss...), err
}

// objectiveLabel names a study's objective on an axis, with its unit.
func (d *Data) objectiveLabel() string {
	switch search.ObjectiveName(d.Study.Objective) {
	case search.ObjectiveValAcc:
		return "validation accuracy (val_acc, fraction correct)"
	case search.ObjectiveValLoss:
		return "validation loss (val_loss, cross-entropy in nats)"
	}
	return d.Study.Objective
}

func (d *Data) title(what string) string {
	return fmt.Sprintf(`study "%s": %s`, shortName(d.Study.Name), what)
}

// AccuracySeries returns the accuracy figure's series: the validation and
// the test accuracy at each point's x, NaN ones left out.
func (d *Data) AccuracySeries() (val, test plotter.XYs) {
	for _, pt := range d.Accuracy {
		if finite(pt.Val) {
			val = append(val, plotter.XY{X: pt.X, Y: pt.Val})
		}
		if finite(pt.Test) {
			test = append(test, plotter.XY{X: pt.X, Y: pt.Test})
		}
	}
	return val, test
}

// marks returns the points of the accuracy figure's point i (both
// accuracies that are known).
func (d *Data) marks(i int) plotter.XYs {
	var xys plotter.XYs
	if i < 0 {
		return xys
	}
	pt := d.Accuracy[i]
	for _, y := range []float64{pt.Val, pt.Test} {
		if finite(y) {
			xys = append(xys, plotter.XY{X: pt.X, Y: y})
		}
	}
	return xys
}

func (d *Data) trialLabel(number int, b float64) string {
	if d.ByFloodLevel {
		return fmt.Sprintf("trial %d, b = %s", number, formatLevel(b))
	}
	return fmt.Sprintf("trial %d", number)
}

func (d *Data) bestLabel() string {
	for _, r := range d.Trials {
		if r.Number == d.BestTrial {
			return "best: " + d.trialLabel(r.Number, r.FloodLevel)
		}
	}
	return fmt.Sprintf("best: trial %d", d.BestTrial)
}

func (d *Data) baselineLabel() string {
	for _, r := range d.Trials {
		if r.Number == d.BaselineTrial {
			if d.ByFloodLevel {
				return fmt.Sprintf("baseline: trial %d, b = %s", r.Number, formatLevel(r.FloodLevel))
			}
			return fmt.Sprintf("baseline: trial %d", r.Number)
		}
	}
	return "baseline"
}

func (d *Data) accuracyFigure() (*figure, error) {
	title, xLabel := d.title("accuracy against the flood level b"), "flood level b (training cross-entropy, nats)"
	if !d.ByFloodLevel {
		title = d.title("accuracy by trial (the study does not search flood_level)")
		xLabel = "trial number"
	}
	f := newFigure(AccuracyFile, "Accuracy against the flood level", title, xLabel, "accuracy (fraction correct)")
	if !d.ByFloodLevel {
		f.heading = "Accuracy by trial"
		f.plot.X.Tick.Marker = niceTicks{n: 8, integer: true}
	}
	val, test := d.AccuracySeries()
	if err := f.scatter("validation accuracy", val, draw.GlyphStyle{Color: blue, Radius: 3, Shape: draw.CircleGlyph{}}); err != nil {
		return nil, err
	}
	if err := f.scatter("test accuracy", test, draw.GlyphStyle{Color: orange, Radius: 3.5, Shape: draw.PyramidGlyph{}}); err != nil {
		return nil, err
	}
	if err := f.scatter(d.bestLabel(), d.marks(d.Best), bestGlyph); err != nil {
		return nil, err
	}
	if d.Baseline >= 0 && d.Baseline != d.Best {
		if err := f.scatter(d.baselineLabel(), d.marks(d.Baseline), baselineGlyph); err != nil {
			return nil, err
		}
	} else if d.Baseline >= 0 {
		f.legend.Add("(the baseline is the best trial)")
	}
	return f, nil
}

func (d *Data) historyFigure() (*figure, error) {
	f := newFigure(HistoryFile, "Optimisation history",
		d.title(fmt.Sprintf("optimisation history (%s %s)", d.Study.Direction, d.Study.Objective)),
		"trial number", d.objectiveLabel())
	f.plot.X.Tick.Marker = niceTicks{n: 8, integer: true}
	var values, steps, best, base plotter.XYs
	for _, h := range d.History {
		values = append(values, plotter.XY{X: float64(h.Number), Y: h.Value})
		if h.Number == d.BestTrial {
			best = append(best, plotter.XY{X: float64(h.Number), Y: h.Value})
		}
		if h.Number == d.BaselineTrial && d.BaselineTrial != d.BestTrial {
			base = append(base, plotter.XY{X: float64(h.Number), Y: h.Value})
		}
	}
	for _, h := range d.RunningBest {
		steps = append(steps, plotter.XY{X: float64(h.Number), Y: h.Value})
	}
	line, err := plotter.NewLine(steps)
	if err != nil {
		return nil, err
	}
	line.StepStyle = plotter.PostStep
	line.LineStyle = draw.LineStyle{Color: vermillion, Width: vg.Points(1.5)}
	f.plot.Add(line)
	if err := f.scatter("complete trial", values, draw.GlyphStyle{Color: blue, Radius: 3, Shape: draw.CircleGlyph{}}); err != nil {
		return nil, err
	}
	f.legend.Add("best so far", line)
	if err := f.scatter(d.bestLabel(), best, bestGlyph); err != nil {
		return nil, err
	}
	if len(base) > 0 {
		if err := f.scatter(d.baselineLabel(), base, baselineGlyph); err != nil {
			return nil, err
		}
	}
	return f, nil
}

func (d *Data) curvesFigure() (*figure, error) {
	f := newFigure(CurvesFile, "Learning curves",
		d.title(fmt.Sprintf("learning curves of the %d best trials", len(d.Curves))),
		"epoch", d.objectiveLabel())
	if len(d.Curves) == 1 {
		f.plot.Title.Text = d.title("learning curve of the best trial")
	}
	f.plot.X.Tick.Marker = niceTicks{n: 8, integer: true}
	if len(d.Curves) == 0 {
		f.plot.Title.Text = d.title("no learning curves (no trial reported per-epoch values)")
		f.heading = "Learning curves (none reported)"
		return f, nil
	}
	// The best last, so that it is drawn on top.
	for i := len(d.Curves) - 1; i >= 0; i-- {
		c := d.Curves[i]
		xys := make(plotter.XYs, len(c.Points))
		for j, p := range c.Points {
			xys[j] = plotter.XY{X: float64(p.Epoch), Y: p.Value}
		}
		line, points, err := plotter.NewLinePoints(xys)
		if err != nil {
			return nil, err
		}
		col := curveColor[i%len(curveColor)]
		line.LineStyle = draw.LineStyle{Color: col, Width: vg.Points(1.2)}
		points.GlyphStyle = draw.GlyphStyle{Color: col, Radius: 2.2, Shape: draw.CircleGlyph{}}
		if c.Best {
			line.LineStyle.Width = vg.Points(2.2)
		} else if c.Baseline {
			line.LineStyle.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
		}
		f.plot.Add(line, points)
	}
	// The legend in rank order.
	for i, c := range d.Curves {
		label := d.trialLabel(c.Number, c.FloodLevel)
		switch {
		case c.Best:
			label += " (best)"
		case c.Baseline:
			label += " (baseline)"
		}
		col := curveColor[i%len(curveColor)]
		line := &plotter.Line{LineStyle: draw.LineStyle{Color: col, Width: vg.Points(1.2)}}
		if c.Best {
			line.LineStyle.Width = vg.Points(2.2)
		} else if c.Baseline {
			line.LineStyle.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
		}
		dot := &plotter.Scatter{GlyphStyle: draw.GlyphStyle{Color: col, Radius: 2.2, Shape: draw.CircleGlyph{}}}
		f.legend.Add(label, line, dot)
	}
	return f, nil
}

// scatter adds a series of glyphs and its legend entry (also when it has
// no points, so that the legend says what would be there).
func (f *figure) scatter(label string, xys plotter.XYs, sty draw.GlyphStyle) error {
	if len(xys) > 0 {
		s, err := plotter.NewScatter(xys)
		if err != nil {
			return err
		}
		s.GlyphStyle = sty
		f.plot.Add(s)
	}
	f.legend.Add(label, &plotter.Scatter{GlyphStyle: sty})
	return nil
}

// The marks of the best trial and of the baseline: thick outlines drawn
// around their points, so the points stay visible.
var (
	bestGlyph     = draw.GlyphStyle{Color: vermillion, Radius: 7.5, Shape: outline{circle: true, width: 1.8}}
	baselineGlyph = draw.GlyphStyle{Color: black, Radius: 7.5, Shape: outline{width: 1.4}}
)

// outline draws the outline of a circle or a square with a given line
// width (draw's RingGlyph and SquareGlyph are hairlines).
type outline struct {
	circle bool
	width  vg.Length
}

func (o outline) DrawGlyph(c *draw.Canvas, sty draw.GlyphStyle, pt vg.Point) {
	c.SetLineStyle(draw.LineStyle{Color: sty.Color, Width: o.width})
	r := sty.Radius
	p := make(vg.Path, 0, 5)
	if o.circle {
		p.Move(vg.Point{X: pt.X + r, Y: pt.Y})
		p.Arc(pt, r, 0, 2*math.Pi)
	} else {
		r *= 0.9
		p.Move(vg.Point{X: pt.X - r, Y: pt.Y - r})
		p.Line(vg.Point{X: pt.X + r, Y: pt.Y - r})
		p.Line(vg.Point{X: pt.X + r, Y: pt.Y + r})
		p.Line(vg.Point{X: pt.X - r, Y: pt.Y + r})
	}
	p.Close()
	c.Stroke(p)
}

// niceTicks marks about n round values (1, 2, 2.5 or 5 times a power of
// ten) with labels, and unlabelled minor ticks between them; integer ticks
// mark whole numbers only (trial numbers, epochs).
type niceTicks struct {
	n       int
	integer bool
}

func (nt niceTicks) Ticks(min, max float64) []gplot.Tick {
	if !(max > min) || math.IsInf(max-min, 0) {
		return gplot.DefaultTicks{}.Ticks(min, max)
	}
	step, decimals := niceStep((max-min)/float64(nt.n), nt.integer)
	if nt.integer {
		step, decimals = math.Max(step, 1), 0
	}
	minor := step / 2
	if nt.integer && minor != math.Trunc(minor) {
		if minor = step / 5; minor != math.Trunc(minor) {
			minor = 0
		}
	}
	var ticks []gplot.Tick
	eps := step * 1e-9
	for k := math.Ceil((min - eps) / step); k*step <= max+eps; k++ {
		v := k * step
		if math.Abs(v) < eps {
			v = 0
		}
		ticks = append(ticks, gplot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', decimals, 64)})
		if m := v + minor; minor > 0 && m <= max+eps {
			ticks = append(ticks, gplot.Tick{Value: m})
		}
	}
	if m := math.Ceil((min-eps)/step)*step - minor; minor > 0 && m >= min-eps {
		ticks = append(ticks, gplot.Tick{Value: m})
	}
	return ticks
}

// niceStep rounds a raw tick step to 1, 2, 2.5 (unless integer) or 5 times
// a power of ten, and says how many decimals its multiples need.
func niceStep(raw float64, integer bool) (step float64, decimals int) {
	exp := math.Floor(math.Log10(raw))
	mag := math.Pow(10, exp)
	f := raw / mag
	var m float64
	extra := 0
	switch {
	case f <= 1:
		m = 1
	case f <= 2:
		m = 2
	case f <= 2.5 && !integer:
		m, extra = 2.5, 1
	case f <= 5:
		m = 5
	default:
		m = 10
	}
	decimals = int(-exp) + extra
	if m == 10 {
		decimals--
	}
	return m * mag, max(decimals, 0)
}
