package main

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

// TestStudyNamesAreStoredAndShownVerbatim gives studies names that SQL, a
// shell, a format string or a template would interpret, and checks that
// every command stores, finds and shows them as they are.
func TestStudyNamesAreStoredAndShownVerbatim(t *testing.T) {
	t.Parallel()
	storageURL, specPath := newStudyEnv(t, smallSpec)
	names := []string{
		`x'); DROP TABLE studies; --`,
		`naïve 日本 🌊`,
		`"quoted" %s %d {{.Name}} <b>&amp;</b> $(id) \n`,
		strings.Repeat("ß", 200),
	}
	for _, name := range names {
		out, _ := mustRun(t, "study", "create", name, "--spec", specPath, "--storage", storageURL)
		if !strings.Contains(out, strconv.Quote(name)) {
			t.Errorf("create of %q said:\n%s", name, out)
		}
	}
	// One study runs, under its name as given.
	mustRun(t, "study", "optimize", names[1], "--storage", storageURL, "--metrics-addr", "", "--workers", "1")

	list, _ := mustRun(t, "study", "list", "--storage", storageURL)
	for _, name := range names {
		if !strings.Contains(list, "\n"+name+" ") {
			t.Errorf("study list does not show %q verbatim:\n%s", name, list)
		}
		show, _ := mustRun(t, "study", "show", name, "--storage", storageURL)
		if !strings.HasPrefix(show, "study "+strconv.Quote(name)+":") {
			t.Errorf("study show %q starts:\n%s", name, show)
		}
	}
	best, _ := mustRun(t, "study", "best", names[1], "--storage", storageURL, "--format", "json")
	var tr trialOut
	if err := json.Unmarshal([]byte(best), &tr); err != nil || tr.State != "complete" {
		t.Errorf("study best of %q: %v\n%s", names[1], err, best)
	}
	// A name that only differs by what SQL's LIKE or a case fold would
	// match is another study.
	if code, _, errOut := runCLI(t, "study", "show", "NAÏVE 日本 🌊", "--storage", storageURL); code == 0 || !strings.Contains(errOut, "no study") {
		t.Errorf("study show of a case-folded name: exit %d, %s", code, errOut)
	}
	if code, _, _ := runCLI(t, "study", "show", "x'); DROP TABLE studies; -%", "--storage", storageURL); code == 0 {
		t.Errorf("a LIKE pattern found a study")
	}
	mustRun(t, "study", "delete", names[0], "--yes", "--storage", storageURL)
	list, _ = mustRun(t, "study", "list", "--storage", storageURL)
	if strings.Contains(list, names[0]) || !strings.Contains(list, names[2]) {
		t.Errorf("after deleting %q, study list shows:\n%s", names[0], list)
	}
}
