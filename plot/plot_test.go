package plot_test

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/c-bata/goptuna"
	"github.com/floodtune/floodtune/plot"
	"github.com/floodtune/floodtune/storage"
)

func dist(t *testing.T, d any) json.RawMessage {
	t.Helper()
	b, err := goptuna.DistributionToJSON(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// trialSpec describes a synthetic trial.
type trialSpec struct {
	state    storage.State
	b        float64 // NaN: no flood_level parameter
	value    float64 // NaN: none
	testAcc  float64 // NaN: no test_acc attribute
	baseline bool
	epochs   []float64
}

// makeTrials builds storage.Trial values as the storage returns them: the
// flood level and lr as Goptuna float parameters, the optimizer as a
// categorical one, val_acc and test_acc as user attributes.
func makeTrials(t *testing.T, specs []trialSpec) []*storage.Trial {
	t.Helper()
	floodDist := dist(t, goptuna.UniformDistribution{Low: 0, High: 1.5})
	lrDist := dist(t, goptuna.LogUniformDistribution{Low: 0.02, High: 0.2})
	optDist := dist(t, goptuna.CategoricalDistribution{Choices: []string{"sgd", "momentum", "<adam>"}})
	var trials []*storage.Trial
	for i, s := range specs {
		tr := &storage.Trial{ID: int64(100 + i), Number: i, State: s.state, Value: s.value,
			Params:       map[string]storage.Param{},
			Intermediate: map[int]float64{},
			UserAttrs:    map[string]string{},
			SystemAttrs:  map[string]string{},
		}
		if !math.IsNaN(s.b) {
			tr.Params["flood_level"] = storage.Param{Value: s.b, Distribution: floodDist}
		}
		tr.Params["lr"] = storage.Param{Value: 0.02 + 0.01*float64(i), Distribution: lrDist}
		tr.Params["optimizer"] = storage.Param{Value: float64(i % 3), Distribution: optDist}
		if s.state == storage.Complete && !math.IsNaN(s.value) {
			tr.UserAttrs["val_acc"] = strconv.FormatFloat(s.value, 'g', -1, 64)
		}
		if !math.IsNaN(s.testAcc) {
			tr.UserAttrs["test_acc"] = strconv.FormatFloat(s.testAcc, 'g', -1, 64)
		}
		if s.baseline {
			tr.SystemAttrs["baseline"] = "true"
		}
		for e, v := range s.epochs {
			tr.Intermediate[e+1] = v
		}
		trials = append(trials, tr)
	}
	return trials
}

// curve is a learning curve rising to final.
func curve(final float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = final - 0.3*math.Exp(-float64(i)/2)
	}
	return out
}

var nan = math.NaN()

// sampleSpecs: trial 0 the baseline, trial 5 the best (b = 0.9), trial 3
// complete without a value, trial 8 running, trial 9 pruned, trial 10
// failed, trial 11 with a NaN test accuracy and a NaN epoch.
func sampleSpecs() []trialSpec {
	return []trialSpec{
		{storage.Complete, 0, 0.78, 0.80, true, curve(0.78, 10)},
		{storage.Complete, 1.2, 0.74, 0.75, false, curve(0.74, 10)},
		{storage.Complete, 0.4, 0.80, 0.82, false, curve(0.80, 10)},
		{storage.Complete, 0.7, nan, nan, false, nil},
		{storage.Complete, 0.6, 0.83, 0.85, false, curve(0.83, 10)},
		{storage.Complete, 0.9, 0.86, 0.88, false, curve(0.86, 10)},
		{storage.Complete, 1.0, 0.84, 0.86, false, curve(0.84, 10)},
		{storage.Complete, 0.2, 0.79, 0.81, false, curve(0.79, 10)},
		{storage.Running, 0.5, nan, nan, false, curve(0.6, 3)},
		{storage.Pruned, 1.4, nan, nan, false, curve(0.5, 2)},
		{storage.Fail, 0.3, nan, nan, false, nil},
		{storage.Complete, 0.8, 0.85, nan, false, append(curve(0.85, 9), nan)},
	}
}

var sampleStudy = plot.Study{Name: "noise20", Direction: storage.Maximize}

func TestPrepareMarksTheBestTrialAndTheBaselineOnTheAccuracyFigure(t *testing.T) {
	t.Parallel()
	d, err := plot.Prepare(sampleStudy, makeTrials(t, sampleSpecs()))
	if err != nil {
		t.Fatal(err)
	}
	if !d.ByFloodLevel {
		t.Fatal("the study searches flood_level, but the figure is not drawn against it")
	}
	// One point per complete trial with a value: 0, 1, 2, 4, 5, 6, 7, 11.
	if len(d.Accuracy) != 8 {
		t.Fatalf("%d accuracy points, want 8: %+v", len(d.Accuracy), d.Accuracy)
	}
	for i := 1; i < len(d.Accuracy); i++ {
		if d.Accuracy[i-1].X > d.Accuracy[i].X {
			t.Errorf("points not sorted by flood level: %v before %v", d.Accuracy[i-1].X, d.Accuracy[i].X)
		}
	}
	if d.Best < 0 || d.Best >= len(d.Accuracy) {
		t.Fatalf("best index %d outside the %d points", d.Best, len(d.Accuracy))
	}
	best := d.Accuracy[d.Best]
	if best.Number != 5 || best.X != 0.9 || best.Val != 0.86 || best.Test != 0.88 || d.BestTrial != 5 {
		t.Errorf("best point %+v (trial %d), want trial 5 at b = 0.9 with val 0.86 and test 0.88", best, d.BestTrial)
	}
	if d.Baseline < 0 {
		t.Fatal("the baseline has no point")
	}
	if base := d.Accuracy[d.Baseline]; base.Number != 0 || base.X != 0 || d.BaselineTrial != 0 {
		t.Errorf("baseline point %+v, want trial 0 at b = 0", base)
	}
	val, test := d.AccuracySeries()
	if len(val) != 8 || len(test) != 7 {
		t.Errorf("%d validation and %d test points, want 8 and 7 (trial 11's test accuracy is NaN)", len(val), len(test))
	}
	found := false
	for _, xy := range val {
		if xy.X == best.X && xy.Y == best.Val {
			found = true
		}
	}
	if !found {
		t.Errorf("the best trial's point (%v, %v) is not among the drawn points %v", best.X, best.Val, val)
	}
}

func TestPrepareDrawsTheHistoryAndTheRunningBest(t *testing.T) {
	t.Parallel()
	d, err := plot.Prepare(sampleStudy, makeTrials(t, sampleSpecs()))
	if err != nil {
		t.Fatal(err)
	}
	var numbers []int
	for _, h := range d.History {
		numbers = append(numbers, h.Number)
	}
	if fmt.Sprint(numbers) != "[0 1 2 4 5 6 7 11]" {
		t.Errorf("history of trials %v, want the complete ones with values", numbers)
	}
	want := []float64{0.78, 0.78, 0.80, 0.83, 0.86, 0.86, 0.86, 0.86}
	for i, h := range d.RunningBest {
		if h.Value != want[i] || h.Number != numbers[i] {
			t.Errorf("running best %d: %+v, want %v at trial %d", i, h, want[i], numbers[i])
		}
	}
}

func TestPrepareMinimisingFindsTheLowestValue(t *testing.T) {
	t.Parallel()
	specs := sampleSpecs()
	d, err := plot.Prepare(plot.Study{Name: "loss", Direction: storage.Minimize}, makeTrials(t, specs))
	if err != nil {
		t.Fatal(err)
	}
	if d.Study.Objective != "val_loss" {
		t.Errorf("objective %q, want val_loss for a minimising study", d.Study.Objective)
	}
	if d.BestTrial != 1 || d.Accuracy[d.Best].Number != 1 {
		t.Errorf("best trial %d, want 1 (the lowest value)", d.BestTrial)
	}
	if last := d.RunningBest[len(d.RunningBest)-1].Value; last != 0.74 {
		t.Errorf("running best ends at %v, want 0.74", last)
	}
}

func TestPrepareTakesTheFiveBestLearningCurves(t *testing.T) {
	t.Parallel()
	d, err := plot.Prepare(sampleStudy, makeTrials(t, sampleSpecs()))
	if err != nil {
		t.Fatal(err)
	}
	var numbers []int
	for _, c := range d.Curves {
		numbers = append(numbers, c.Number)
	}
	if fmt.Sprint(numbers) != "[5 11 6 4 2]" {
		t.Fatalf("curves of trials %v, want the five best by value: [5 11 6 4 2]", numbers)
	}
	if !d.Curves[0].Best || d.Curves[0].FloodLevel != 0.9 {
		t.Errorf("first curve %+v, want the best, at b = 0.9", d.Curves[0])
	}
	if n := len(d.Curves[1].Points); n != 9 {
		t.Errorf("trial 11's curve has %d points, want 9 (its NaN epoch left out)", n)
	}
	for _, c := range d.Curves {
		for i := 1; i < len(c.Points); i++ {
			if c.Points[i-1].Epoch >= c.Points[i].Epoch {
				t.Errorf("trial %d: epochs out of order", c.Number)
			}
		}
	}
}

func TestPrepareWithoutFloodLevelDrawsAgainstTheTrialNumber(t *testing.T) {
	t.Parallel()
	specs := sampleSpecs()
	for i := range specs {
		specs[i].b = nan
	}
	d, err := plot.Prepare(sampleStudy, makeTrials(t, specs))
	if err != nil {
		t.Fatal(err)
	}
	if d.ByFloodLevel {
		t.Fatal("no trial has a flood level, but the figure is drawn against it")
	}
	for _, pt := range d.Accuracy {
		if pt.X != float64(pt.Number) {
			t.Errorf("trial %d drawn at x = %v, want its number", pt.Number, pt.X)
		}
	}
	dir := t.TempDir()
	if _, err := d.Write(dir, plot.SVG); err != nil {
		t.Fatal(err)
	}
	svg, err := os.ReadFile(filepath.Join(dir, "accuracy-vs-flood-level.svg"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(svg), "does not search flood_level") || !strings.Contains(string(svg), "trial number") {
		t.Error("the accuracy figure does not say it is drawn against the trial number")
	}
}

func TestPrepareRefusesAStudyWithNoCompleteTrial(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		specs []trialSpec
		want  string
	}{
		{"a study with no trials", nil, "the study has no trials"},
		{"a study with only running and waiting trials", []trialSpec{
			{storage.Running, 0, nan, nan, true, curve(0.5, 2)},
			{storage.Running, 0.5, nan, nan, false, nil},
			{storage.Waiting, 0.7, nan, nan, false, nil},
		}, "2 running, 1 waiting"},
		{"a study whose complete trials have no value", []trialSpec{
			{storage.Complete, 0, nan, nan, true, nil},
			{storage.Fail, 0.5, nan, nan, false, nil},
		}, "1 complete, 1 fail"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := plot.Prepare(plot.Study{Name: "empty"}, makeTrials(t, tc.specs))
			if !errors.Is(err, plot.ErrNoCompleteTrial) {
				t.Fatalf("err = %v, want ErrNoCompleteTrial", err)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `"empty"`) {
				t.Errorf("error %q does not name the study and say %q", err, tc.want)
			}
		})
	}
}

func TestPrepareFollowsTheBaselineToItsRetry(t *testing.T) {
	t.Parallel()
	specs := sampleSpecs()
	specs[0].state, specs[0].value = storage.Fail, nan
	trials := makeTrials(t, specs)
	retry := makeTrials(t, []trialSpec{{storage.Complete, 0, 0.77, 0.79, false, curve(0.77, 10)}})[0]
	retry.ID, retry.Number, retry.RetryOf = 999, len(trials), trials[0].ID
	trials[0].RetriedBy = retry.ID
	d, err := plot.Prepare(sampleStudy, append(trials, retry))
	if err != nil {
		t.Fatal(err)
	}
	if d.BaselineTrial != retry.Number || d.Baseline < 0 || d.Accuracy[d.Baseline].Number != retry.Number {
		t.Errorf("baseline trial %d, want the retry %d", d.BaselineTrial, retry.Number)
	}
}

func TestWriteProducesValidPNGSVGAndHTML(t *testing.T) {
	t.Parallel()
	d, err := plot.Prepare(plot.Study{Name: `<script>alert("x")</script> & co`, Direction: storage.Maximize}, makeTrials(t, sampleSpecs()))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "out", "plots")
	files, err := d.Write(dir, plot.PNG, plot.SVG, plot.HTML)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	want := "[accuracy-vs-flood-level.png history.png learning-curves.png accuracy-vs-flood-level.svg history.svg learning-curves.svg plots.html]"
	if fmt.Sprint(names) != want {
		t.Fatalf("wrote %v, want %s", names, want)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		switch filepath.Ext(f) {
		case ".png":
			img, err := png.Decode(bytes.NewReader(data))
			if err != nil {
				t.Errorf("%s: %v", f, err)
				continue
			}
			if b := img.Bounds(); b.Dx() < 1000 || b.Dy() < 500 {
				t.Errorf("%s: %v pixels, too small to read", f, b)
			}
		case ".svg":
			checkSVG(t, f, data)
		case ".html":
			checkHTML(t, f, data)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(files) {
		t.Errorf("%d entries in the directory, want the %d files (no temporary file left)", len(entries), len(files))
	}
}

func checkSVG(t *testing.T, name string, data []byte) {
	t.Helper()
	if !bytes.HasPrefix(data, []byte("<?xml")) && !bytes.HasPrefix(data, []byte("<svg")) {
		t.Errorf("%s starts with %q, want <?xml or <svg", name, data[:min(len(data), 20)])
	}
	dec := xml.NewDecoder(bytes.NewReader(data))
	root := ""
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Errorf("%s is not well-formed XML: %v", name, err)
			return
		}
		if se, ok := tok.(xml.StartElement); ok && root == "" {
			root = se.Name.Local
		}
	}
	if root != "svg" {
		t.Errorf("%s: root element %q, want svg", name, root)
	}
	if !bytes.Contains(data, []byte("&lt;script&gt;")) {
		t.Errorf("%s: the study name is not in the title, escaped", name)
	}
}

// checkHTML parses the page leniently, as a browser would (encoding/xml in
// its HTML mode), and checks its structure, its escaping and that it loads
// nothing from elsewhere.
func checkHTML(t *testing.T, name string, data []byte) {
	t.Helper()
	page := string(data)
	if !strings.HasPrefix(page, "<!DOCTYPE html>") {
		t.Errorf("%s does not start with <!DOCTYPE html>", name)
	}
	if strings.Contains(page, "<script") {
		t.Errorf("%s holds a script element: the study name was not escaped", name)
	}
	if !strings.Contains(page, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; co") {
		t.Errorf("%s does not show the study name escaped", name)
	}
	for _, external := range []string{" src=", "<link", "url(", "@import", "<?xml"} {
		if strings.Contains(page, external) {
			t.Errorf("%s contains %q: the page must be self-contained", name, external)
		}
	}
	dec := xml.NewDecoder(strings.NewReader(page))
	dec.Strict = false
	dec.AutoClose = xml.HTMLAutoClose
	dec.Entity = xml.HTMLEntity
	counts := map[string]int{}
	var stack []string
	var title strings.Builder
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s does not parse: %v", name, err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			counts[tok.Name.Local]++
			stack = append(stack, tok.Name.Local)
		case xml.EndElement:
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		case xml.CharData:
			if len(stack) > 0 && stack[len(stack)-1] == "title" && counts["svg"] == 0 {
				title.Write(tok)
			}
		}
	}
	if counts["html"] != 1 || counts["head"] != 1 || counts["body"] != 1 || counts["table"] != 1 {
		t.Errorf("%s: element counts %v, want one html, head, body and table", name, counts)
	}
	if counts["svg"] != 3 {
		t.Errorf("%s has %d svg elements, want the 3 figures inline", name, counts["svg"])
	}
	// A header row and one row per trial.
	if counts["tr"] != 1+len(sampleSpecs()) {
		t.Errorf("%s has %d table rows, want %d", name, counts["tr"], 1+len(sampleSpecs()))
	}
	if got := title.String(); got != `floodtune study <script>alert("x")</script> & co` {
		t.Errorf("%s: title %q, want the study name verbatim", name, got)
	}
	for _, want := range []string{"optimizer=&lt;adam&gt;", "lr=0.03", "flooding helped", "baseline (plain training)"} {
		if !strings.Contains(page, want) {
			t.Errorf("%s lacks %q", name, want)
		}
	}
}

func TestWriteRefusesAnUnknownFormat(t *testing.T) {
	t.Parallel()
	d, err := plot.Prepare(sampleStudy, makeTrials(t, sampleSpecs()))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := d.Write(dir, "gif"); err == nil || !strings.Contains(err.Error(), `"gif"`) {
		t.Errorf("err = %v, want an unknown-format error", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("wrote %d files for a bad format", len(entries))
	}
}

func TestWriteDrawsASingleTrial(t *testing.T) {
	t.Parallel()
	d, err := plot.Prepare(sampleStudy, makeTrials(t, []trialSpec{{storage.Complete, 0, 0.5, 0.5, true, []float64{0.5}}}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Write(t.TempDir(), plot.PNG, plot.SVG, plot.HTML); err != nil {
		t.Fatal(err)
	}
}

func TestParseFormat(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]plot.Format{"png": plot.PNG, "SVG": plot.SVG, " html ": plot.HTML} {
		if got, err := plot.ParseFormat(in); err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := plot.ParseFormat("pdf"); err == nil {
		t.Error("ParseFormat(pdf) accepted it")
	}
}
