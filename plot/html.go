package plot

import (
	"bytes"
	"fmt"
	"html/template"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/floodtune/floodtune/storage"
)

// WriteHTML writes the figures and a table of the trials as one
// self-contained HTML page: the figures are inline SVG, the style is
// inline, and nothing is loaded from elsewhere. The study's name and the
// parameters are escaped.
func (d *Data) WriteHTML(w io.Writer) error {
	figs, err := d.figures()
	if err != nil {
		return fmt.Errorf("plot study %q: %w", d.Study.Name, err)
	}
	return d.writeHTML(w, figs)
}

type htmlFigure struct {
	ID      string
	Heading string
	SVG     template.HTML
}

type htmlRow struct {
	Number     int
	State      storage.State
	Value      string
	FloodLevel string
	Params     string
	TestAcc    string
	Note       string
	Class      string
}

type htmlPage struct {
	Name      string
	Objective string
	Summary   []string
	Figures   []htmlFigure
	Rows      []htmlRow
}

func (d *Data) writeHTML(w io.Writer, figs []*figure) error {
	page := htmlPage{Name: d.Study.Name, Objective: d.Study.Objective, Summary: d.summary()}
	for _, f := range figs {
		var buf bytes.Buffer
		if err := f.writeTo(&buf, SVG); err != nil {
			return err
		}
		page.Figures = append(page.Figures, htmlFigure{ID: f.file, Heading: f.heading, SVG: inlineSVG(buf.Bytes())})
	}
	for _, r := range d.Trials {
		row := htmlRow{Number: r.Number, State: r.State, Value: FormatValue(r.Value), FloodLevel: FormatParam(r.FloodLevel),
			Params: FormatParams(r.Params, ", "), TestAcc: FormatValue(r.TestAcc)}
		var notes []string
		if r.Best {
			notes, row.Class = append(notes, "best"), "best"
		}
		if r.Baseline {
			notes = append(notes, "baseline (plain training)")
			if row.Class == "" {
				row.Class = "baseline"
			}
		}
		row.Note = strings.Join(notes, ", ")
		page.Rows = append(page.Rows, row)
	}
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, page); err != nil {
		return err
	}
	_, err := buf.WriteTo(w)
	return err
}

// inlineSVG is an SVG document without its XML declaration and comments
// before the svg element, ready to be put inside HTML. Its text was escaped
// by the SVG writer (vgsvg escapes every string it draws).
func inlineSVG(doc []byte) template.HTML {
	if i := bytes.Index(doc, []byte("<svg")); i >= 0 {
		doc = doc[i:]
	}
	return template.HTML(doc) //nolint:gosec // produced by vgsvg, which escapes its text
}

// summary is the page's lines about the study: the trials by state, the
// best trial and the baseline beside it.
func (d *Data) summary() []string {
	var lines []string
	lines = append(lines, fmt.Sprintf("%s %s; %d trials: %s", d.Study.Direction, d.Study.Objective, len(d.Trials), countList(d.Counts)))
	var best, base *Row
	for i := range d.Trials {
		if d.Trials[i].Best {
			best = &d.Trials[i]
		}
		if d.Trials[i].Baseline {
			base = &d.Trials[i]
		}
	}
	if best != nil {
		lines = append(lines, "best: "+d.describe(best))
	}
	switch {
	case base == nil:
		lines = append(lines, "baseline: none (the study has no plain-training trial)")
	case base.State != storage.Complete || math.IsNaN(base.Value):
		lines = append(lines, fmt.Sprintf("baseline: trial %d is %s", base.Number, base.State))
	case best == base:
		lines = append(lines, "baseline: "+d.describe(base)+"; no flooded trial has beaten plain training")
	default:
		verdict := "helped"
		gain := best.Value - base.Value
		if (d.Study.Direction == storage.Minimize && gain >= 0) || (d.Study.Direction != storage.Minimize && gain <= 0) {
			verdict = "did not help"
		}
		line := fmt.Sprintf("baseline: %s; flooding %s: %s %+.4f", d.describe(base), verdict, d.Study.Objective, gain)
		if !math.IsNaN(best.TestAcc) && !math.IsNaN(base.TestAcc) {
			line += fmt.Sprintf(", test acc %+.4f", best.TestAcc-base.TestAcc)
		}
		lines = append(lines, line)
	}
	return lines
}

func (d *Data) describe(r *Row) string {
	s := fmt.Sprintf("trial %d, %s %s", r.Number, d.Study.Objective, FormatValue(r.Value))
	if !math.IsNaN(r.FloodLevel) {
		s += ", flood level " + FormatParam(r.FloodLevel)
	}
	if !math.IsNaN(r.TestAcc) {
		s += ", test acc " + FormatValue(r.TestAcc)
	}
	return s
}

// FormatValue shows a trial's value for people: four decimals, "-" for
// none.
func FormatValue(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', 4, 64)
}

// FormatParam shows a parameter's value for people: floats with four
// significant digits, "-" for none.
func FormatParam(v any) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case float64:
		if math.IsNaN(x) {
			return "-"
		}
		return strconv.FormatFloat(x, 'g', 4, 64)
	}
	return fmt.Sprint(v)
}

// FormatParams shows name=value pairs sorted by name, joined by sep.
func FormatParams(params map[string]any, sep string) string {
	names := make([]string, 0, len(params))
	for name := range params {
		names = append(names, name)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, name := range names {
		parts[i] = name + "=" + FormatParam(params[name])
	}
	return strings.Join(parts, sep)
}

var pageTemplate = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="floodtune study plot">
<title>floodtune study {{.Name}}</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 62em; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; }
figure { margin: 1em 0; } figure svg { width: 100%; height: auto; }
ul.summary { padding-left: 1.2em; }
table { border-collapse: collapse; font-size: 0.9em; width: 100%; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.best { background: #fdebd9; } tr.baseline { background: #eaeaea; }
</style>
</head>
<body>
<h1>floodtune study <code>{{.Name}}</code></h1>
<ul class="summary">
{{range .Summary}}<li>{{.}}</li>
{{end}}</ul>
{{range .Figures}}<section id="{{.ID}}">
<h2>{{.Heading}}</h2>
<figure>
{{.SVG}}</figure>
</section>
{{end}}<section id="trials">
<h2>Trials</h2>
<table>
<thead><tr><th>number</th><th>state</th><th>value ({{.Objective}})</th><th>flood level</th><th>other parameters</th><th>test acc</th><th>note</th></tr></thead>
<tbody>
{{range .Rows}}<tr{{if .Class}} class="{{.Class}}"{{end}}><td class="num">{{.Number}}</td><td>{{.State}}</td><td class="num">{{.Value}}</td><td class="num">{{.FloodLevel}}</td><td>{{.Params}}</td><td class="num">{{.TestAcc}}</td><td>{{.Note}}</td></tr>
{{end}}</tbody>
</table>
</section>
</body>
</html>
`))
