package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/floodtune/floodtune/storage"
)

// Malformed input of every kind: each exits with status 2 and one line that
// names the problem, prints no stack trace, and writes nothing.
func TestMalformedInputIsRefusedAndWritesNothing(t *testing.T) {
	t.Parallel()
	valid := strings.TrimSpace(smallSpec)
	deep := strings.Repeat("[", 2000) + strings.Repeat("]", 2000)
	for _, tc := range []struct {
		name string
		spec string   // written to the spec file, when set
		args []string // after "study create", with the storage appended
		want string
	}{
		{"a spec value of the wrong type", strings.Replace(valid, "trials: 4", "trials: four", 1), nil, "cannot unmarshal"},
		{"a list where a map belongs", "dataset: [gauss2d]\nsearch: {trials: 1}", nil, "cannot unmarshal"},
		{"a NaN bound", strings.Replace(valid, "high: 1", "high: .nan", 1), nil, "finite"},
		{"an infinite bound", strings.Replace(valid, "high: 1", "high: .inf", 1), nil, "finite"},
		{"a NaN learning rate", strings.Replace(valid, "lr: 0.01", "lr: .nan", 1), nil, "learning rate"},
		{"low above high", strings.Replace(valid, "low: 0, high: 1", "low: 1, high: 0", 1), nil, "greater than high"},
		{"a log scale from 0", strings.Replace(valid, "high: 1}}", "high: 1}, lr: {type: float, low: 0, high: 1, log: true}}", 1), nil, "log scale needs low > 0"},
		{"a huge number of trials", strings.Replace(valid, "trials: 4", "trials: 1000000000", 1), nil, "search.trials"},
		{"huge epochs", strings.Replace(valid, "epochs: 2", "epochs: 99999999", 1), nil, "epochs"},
		{"a huge width", strings.Replace(valid, "hidden: [8]", "hidden: [99999999]", 1), nil, "limit"},
		{"a huge categorical", "dataset: {name: gauss2d}\nsearch: {trials: 1}\nspace: {optimizer: {type: categorical, choices: [" + strings.Repeat("a,", 1200) + "b]}}", nil, "choice"},
		{"an unknown top-level key", valid + "\nextra: 1", nil, "field extra not found"},
		{"an unknown training option", strings.Replace(valid, "lr: 0.01", "lr: 0.01, dropout: 0.5", 1), nil, "field dropout not found"},
		{"an unknown searched option", strings.Replace(valid, "high: 1}}", "high: 1}, dropout: {type: float, low: 0, high: 1}}", 1), nil, "unknown option"},
		{"an unknown dataset", strings.Replace(valid, "gauss2d", "imagenet", 1), nil, "unknown dataset"},
		{"an empty file", "", nil, "empty"},
		{"only a comment", "# nothing\n", nil, "no document"},
		{"binary junk", "\x00\x89PNG\r\n\x1a\n\xff\xfe", nil, "not valid YAML or JSON"},
		{"deeply nested YAML", deep, nil, "spec"},
		{"a YAML alias bomb", "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]", nil, "spec"},
		{"two documents", valid + "\n---\n" + valid, nil, "more than one document"},
		{"a missing spec file", "", []string{"--spec", "/nonexistent/spec.yaml"}, "spec"},
		{"a spec directory", "", []string{"--spec", "/"}, "spec"},
		{"no --spec", "", []string{}, "--spec"},
		{"an empty study name", valid, []string{""}, "study name"},
		{"a study name with a newline", valid, []string{"a\nb"}, "control characters"},
		{"a very long study name", valid, []string{strings.Repeat("x", 600)}, "longer than the limit"},
		{"invalid UTF-8 in the name", valid, []string{"bad\xffname"}, "UTF-8"},
		{"an unknown flag", valid, []string{"--budget", "3"}, "unknown flag"},
		{"a storage URL with an unknown scheme", valid, []string{"--storage", "mysql://db/x"}, "postgres://, postgresql:// or sqlite:"},
		{"a storage URL that does not parse", valid, []string{"--storage", "postgres://%zz"}, "bad storage URL"},
		{"an empty sqlite path", valid, []string{"--storage", "sqlite:"}, "sqlite:PATH"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			db := filepath.Join(dir, "x.db")
			specPath := filepath.Join(dir, "spec.yaml")
			if err := os.WriteFile(specPath, []byte(tc.spec), 0o644); err != nil {
				t.Fatal(err)
			}
			args := []string{"study", "create"}
			name := "s"
			rest := tc.args
			if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
				name, rest = rest[0], rest[1:]
			}
			args = append(args, name)
			hasSpec, hasStorage := false, false
			for _, a := range rest {
				hasSpec = hasSpec || a == "--spec"
				hasStorage = hasStorage || a == "--storage"
			}
			if !hasSpec && (tc.args == nil || len(tc.args) > 0) {
				args = append(args, "--spec", specPath)
			}
			args = append(args, rest...)
			if !hasStorage {
				args = append(args, "--storage", "sqlite:"+db)
			}
			code, out, errOut := runCLI(t, args...)
			if code != 2 {
				t.Fatalf("%q: exit %d, want 2; stderr %q", args, code, errOut)
			}
			lines := strings.Split(strings.TrimSpace(errOut), "\n")
			if len(lines) != 1 || !strings.Contains(errOut, tc.want) {
				t.Fatalf("stderr %q: want one line naming %q", errOut, tc.want)
			}
			if strings.Contains(errOut, "goroutine ") || strings.Contains(errOut, "panic") {
				t.Fatalf("a stack trace: %q", errOut)
			}
			if out != "" {
				t.Fatalf("stdout %q, want nothing", out)
			}
			// Nothing was written: no study in the storage, if it exists.
			if _, err := os.Stat(db); err == nil {
				st, err := storage.Open(context.Background(), "sqlite:"+db)
				if err != nil {
					t.Fatal(err)
				}
				defer st.Close()
				if studies, err := st.Studies(context.Background()); err != nil || len(studies) != 0 {
					t.Fatalf("the storage holds %d studies after bad input (%v)", len(studies), err)
				}
			}
		})
	}
}
