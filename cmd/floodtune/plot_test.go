package main

import (
	"bytes"
	"encoding/xml"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// needPlotCmd fails the test unless `study plot` is registered.
func needPlotCmd(t *testing.T) {
	t.Helper()
	if c, _, err := newRootCmd(io.Discard, io.Discard).Find([]string{"study", "plot"}); err != nil || c.Name() != "plot" {
		t.Fatal("floodtune has no study plot command: study.go must register it with cmd.AddCommand(..., newStudyPlotCmd())")
	}
}

func TestStudyPlotDrawsAnOptimisedStudy(t *testing.T) {
	t.Parallel()
	needPlotCmd(t)
	url, spec := newStudyEnv(t, smallSpec)
	s := "--storage=" + url
	mustRun(t, "study", "create", "gauss", "--spec", spec, s)
	mustRun(t, "study", "optimize", "gauss", "--workers", "2", s)

	dir := filepath.Join(t.TempDir(), "plots")
	out, _ := mustRun(t, "study", "plot", "gauss", "--out", dir, s)
	var want []string
	for _, ext := range []string{"png", "svg"} {
		for _, name := range []string{"accuracy-vs-flood-level", "history", "learning-curves"} {
			want = append(want, filepath.Join(dir, name+"."+ext))
		}
	}
	if got := strings.Fields(out); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("plot printed %q, want the files %q", out, want)
	}
	for _, f := range want {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(f, ".png") {
			if _, err := png.Decode(bytes.NewReader(data)); err != nil {
				t.Errorf("%s: %v", f, err)
			}
			continue
		}
		dec := xml.NewDecoder(bytes.NewReader(data))
		for {
			if _, err := dec.Token(); err == io.EOF {
				break
			} else if err != nil {
				t.Errorf("%s is not well-formed XML: %v", f, err)
				break
			}
		}
		if !bytes.Contains(data, []byte(`study &#34;gauss&#34;`)) {
			t.Errorf("%s does not name the study in its title", f)
		}
	}
	acc, err := os.ReadFile(filepath.Join(dir, "accuracy-vs-flood-level.svg"))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"flood level b", "best: trial ", "baseline: trial 0, b = 0"} {
		if !bytes.Contains(acc, []byte(w)) {
			t.Errorf("the accuracy figure lacks %q", w)
		}
	}

	out, _ = mustRun(t, "study", "plot", "gauss", "-o", dir, "--format", "html", s)
	if strings.TrimSpace(out) != filepath.Join(dir, "plots.html") {
		t.Fatalf("plot --format html printed %q", out)
	}
	page, err := os.ReadFile(filepath.Join(dir, "plots.html"))
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(page, []byte("<svg")); n != 3 {
		t.Errorf("the page has %d inline SVG figures, want 3", n)
	}
	// The header row and the 4 trials.
	if n := bytes.Count(page, []byte("<tr")); n != 5 {
		t.Errorf("the page's table has %d rows, want 5", n)
	}
	for _, w := range []string{"<title>floodtune study gauss</title>", "baseline (plain training)", "maximize val_acc; 4 trials: 4 complete"} {
		if !bytes.Contains(page, []byte(w)) {
			t.Errorf("the page lacks %q", w)
		}
	}
}

func TestStudyPlotWithNothingCompleteFails(t *testing.T) {
	t.Parallel()
	needPlotCmd(t)
	url, spec := newStudyEnv(t, smallSpec)
	mustRun(t, "study", "create", "fresh", "--spec", spec, "--storage", url)
	dir := filepath.Join(t.TempDir(), "plots")
	code, out, errOut := runCLI(t, "study", "plot", "fresh", "--out", dir, "--storage", url)
	if code != 1 {
		t.Fatalf("exit %d, want 1 (stderr %q)", code, errOut)
	}
	for _, w := range []string{`study "fresh"`, "no complete trial", "1 waiting", "floodtune study optimize fresh"} {
		if !strings.Contains(errOut, w) {
			t.Errorf("stderr %q lacks %q", errOut, w)
		}
	}
	if out != "" {
		t.Errorf("stdout %q, want nothing", out)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the output directory was created for nothing (%v)", err)
	}
}

func TestStudyPlotBadInputExitsWithStatus2(t *testing.T) {
	t.Parallel()
	needPlotCmd(t)
	url, spec := newStudyEnv(t, smallSpec)
	mustRun(t, "study", "create", "taken", "--spec", spec, "--storage", url)
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"an unknown format", []string{"study", "plot", "taken", "--out", dir, "--format", "gif"}, []string{"--format", "png, svg or html", `"gif"`}},
		{"an unknown format in a list", []string{"study", "plot", "taken", "--out", dir, "--format", "png,pdf"}, []string{"--format", `"png,pdf"`}},
		{"an unknown study", []string{"study", "plot", "nope", "--out", dir}, []string{`no study named "nope"`}},
		{"no --out", []string{"study", "plot", "taken"}, []string{"--out DIR is required"}},
		{"no name", []string{"study", "plot", "--out", dir}, []string{"the study's name"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runCLI(t, append(tc.args, "--storage", url)...)
			if code != 2 {
				t.Fatalf("exit %d, want 2 (stderr %q)", code, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr %q lacks %q", errOut, w)
				}
			}
			if out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
		})
	}
}
