package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/floodtune/floodtune/storage"
)

// tokenLine is what token create prints on standard output: the token alone.
var tokenLine = regexp.MustCompile(`^ftk_[0-9a-f]{16}_[0-9a-f]{64}\n$`)

// openTokenStore opens the storage of url beside the CLI, closed when t
// ends.
func openTokenStore(t *testing.T, url string) *storage.Store {
	t.Helper()
	st, err := storage.Open(t.Context(), url)
	if err != nil {
		t.Fatalf("open %s: %v", storage.Redact(url), err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// createTokenCLI runs token create and returns the token it printed; it
// fails t unless the command succeeded, printed the token alone on standard
// output and one line on standard error.
func createTokenCLI(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := runCLI(t, append([]string{"token", "create"}, args...)...)
	if code != 0 {
		t.Fatalf("token create %v: exit %d, stderr %q", args, code, errOut)
	}
	if !tokenLine.MatchString(out) {
		t.Errorf("token create %v printed %q on standard output; want the token alone on one line", args, out)
	}
	if strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "shown this once") {
		t.Errorf("token create %v printed %q on standard error; want one line that says the token is shown once", args, errOut)
	}
	if strings.Contains(errOut, strings.TrimSpace(out)) {
		t.Errorf("token create %v printed the token on standard error too", args)
	}
	return strings.TrimSpace(out)
}

func TestTokenCommandsCreateListAndRevoke(t *testing.T) {
	t.Parallel()
	for _, b := range cliBackends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			url, spec := b.url(t), writeSpec(t, smallSpec)
			mustRun(t, "study", "create", "noise20", "--spec", spec, "--storage", url)

			admin := createTokenCLI(t, "ci", "--scope", "admin", "--storage", url)
			read := createTokenCLI(t, "grafana", "--scope", "read", "--storage", url)
			worker := createTokenCLI(t, "noise20-workers", "--scope", "worker", "--study", "noise20", "--storage", url)
			if admin == read || read == worker {
				t.Fatalf("two tokens are the same: %q, %q, %q", admin, read, worker)
			}

			// The tokens printed are the ones stored.
			st := openTokenStore(t, url)
			for _, tc := range []struct {
				token, name string
				scope       storage.Scope
				study       string
			}{
				{admin, "ci", storage.ScopeAdmin, ""},
				{read, "grafana", storage.ScopeRead, ""},
				{worker, "noise20-workers", storage.ScopeWorker, "noise20"},
			} {
				tok, err := st.Authenticate(t.Context(), tc.token)
				if err != nil || tok.Name != tc.name || tok.Scope != tc.scope || tok.StudyName != tc.study {
					t.Errorf("the token printed for %s authenticates as %+v, %v; want %s, scope %s, study %q", tc.name, tok, err, tc.name, tc.scope, tc.study)
				}
			}

			// list: by name, with the study of the worker token; it never
			// shows a token.
			out, _ := mustRun(t, "token", "list", "--storage", url)
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != 4 || !regexp.MustCompile(`^NAME +SCOPE +STUDY +CREATED +LAST USED +REVOKED$`).MatchString(lines[0]) {
				t.Fatalf("token list:\n%s\nwant a header and 3 tokens", out)
			}
			for i, want := range []string{
				`^ci +admin +- +\d{4}-\d\d-\d\dT\S+ +\d{4}-\d\d-\d\dT\S+ +-$`,
				`^grafana +read +- +\d{4}-\S+ +\d{4}-\S+ +-$`,
				`^noise20-workers +worker +noise20 +\d{4}-\S+ +\d{4}-\S+ +-$`,
			} {
				if !regexp.MustCompile(want).MatchString(lines[i+1]) {
					t.Errorf("token list line %d is %q; want it to match %s", i+1, lines[i+1], want)
				}
			}
			for _, tok := range []string{admin, read, worker} {
				if strings.Contains(out, tok[21:]) || strings.Contains(out, tok[:20]) {
					t.Errorf("token list shows a token:\n%s", out)
				}
			}

			// revoke: refused from then on, listed as revoked; again is
			// no error.
			if out, _ := mustRun(t, "token", "revoke", "ci", "--storage", url); !strings.Contains(out, `revoked token "ci"`) {
				t.Errorf("token revoke said %q", out)
			}
			if _, err := st.Authenticate(t.Context(), admin); !errors.Is(err, storage.ErrUnauthenticated) {
				t.Errorf("the revoked token authenticates: %v", err)
			}
			if _, err := st.Authenticate(t.Context(), read); err != nil {
				t.Errorf("revoking ci revoked grafana's token too: %v", err)
			}
			mustRun(t, "token", "revoke", "ci", "--storage", url)
			out, _ = mustRun(t, "token", "list", "--storage", url)
			if !regexp.MustCompile(`(?m)^ci +admin +- +\S+ +\S+ +\d{4}-\d\d-\d\dT\S+$`).MatchString(out) {
				t.Errorf("token list does not show ci revoked:\n%s", out)
			}
			if !regexp.MustCompile(`(?m)^grafana +read +- +\S+ +\S+ +-$`).MatchString(out) {
				t.Errorf("token list shows grafana revoked:\n%s", out)
			}

			// A worker token goes with its study.
			mustRun(t, "study", "delete", "noise20", "--yes", "--storage", url)
			if _, err := st.Authenticate(t.Context(), worker); !errors.Is(err, storage.ErrUnauthenticated) {
				t.Errorf("the worker token of a deleted study authenticates: %v", err)
			}
			if out, _ := mustRun(t, "token", "list", "--storage", url); strings.Contains(out, "noise20-workers") {
				t.Errorf("token list shows the worker token of a deleted study:\n%s", out)
			}
		})
	}
}

func TestTokenListSaysWhenThereAreNone(t *testing.T) {
	t.Parallel()
	url, spec := newStudyEnv(t, smallSpec)
	mustRun(t, "study", "create", "s", "--spec", spec, "--storage", url)
	out, errOut := mustRun(t, "token", "list", "--storage", url)
	if !strings.Contains(out, "no tokens in") || !strings.Contains(out, "floodtune token create NAME --scope") || errOut != "" {
		t.Errorf("token list of no tokens: stdout %q, stderr %q", out, errOut)
	}
}

// Bad input of every kind: each exits with status 2 and one line that names
// the problem, without a stack trace, prints nothing on standard output and
// changes no token.
func TestTokenBadInputIsRefusedWithStatus2(t *testing.T) {
	t.Parallel()
	for _, b := range cliBackends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			url, spec := b.url(t), writeSpec(t, smallSpec)
			mustRun(t, "study", "create", "noise20", "--spec", spec, "--storage", url)
			createTokenCLI(t, "taken", "--scope", "read", "--storage", url)
			createTokenCLI(t, "gone", "--scope", "read", "--storage", url)
			mustRun(t, "token", "revoke", "gone", "--storage", url)
			st := openTokenStore(t, url)
			before, err := st.Tokens(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				name string
				args []string
				want string
			}{
				{"an unknown scope", []string{"create", "x", "--scope", "root"}, `--scope "root": want admin, read or worker`},
				{"a scope in upper case", []string{"create", "x", "--scope", "ADMIN"}, "want admin, read or worker"},
				{"an empty scope", []string{"create", "x", "--scope", ""}, "want admin, read or worker"},
				{"no scope", []string{"create", "x"}, "--scope is required"},
				{"--study with an admin token", []string{"create", "x", "--scope", "admin", "--study", "noise20"}, "--study is for worker tokens only"},
				{"--study with a read token", []string{"create", "x", "--scope", "read", "--study", "noise20"}, "--study is for worker tokens only"},
				{"a worker token without --study", []string{"create", "x", "--scope", "worker"}, "a worker token needs --study"},
				{"a worker token with an empty --study", []string{"create", "x", "--scope", "worker", "--study", ""}, "a worker token needs --study"},
				{"a worker token of an unknown study", []string{"create", "x", "--scope", "worker", "--study", "nope"}, `no study named "nope"`},
				{"a name in use", []string{"create", "taken", "--scope", "admin"}, `a token named "taken" already exists`},
				{"the name of a revoked token", []string{"create", "gone", "--scope", "read"}, `a token named "gone" already exists`},
				{"an empty name", []string{"create", "", "--scope", "read"}, "must not be empty"},
				{"a name with a newline", []string{"create", "a\nb", "--scope", "read"}, "printable"},
				{"a name with an escape sequence", []string{"create", "a\x1b[2Jb", "--scope", "read"}, "printable"},
				{"a name of 101 characters", []string{"create", strings.Repeat("x", 101), "--scope", "read"}, "longer than the limit of 100"},
				{"no name", []string{"create", "--scope", "read"}, "want the new token's name"},
				{"two names", []string{"create", "a", "b", "--scope", "read"}, "want the new token's name"},
				{"an unknown flag", []string{"create", "x", "--scope", "read", "--ttl", "1h"}, "unknown flag"},
				{"revoking an unknown name", []string{"revoke", "nobody"}, `no token named "nobody"`},
				{"revoking a name in another case", []string{"revoke", "TAKEN"}, `no token named "TAKEN"`},
				{"revoking an empty name", []string{"revoke", ""}, "must not be empty"},
				{"revoke without a name", []string{"revoke"}, "want the token's name"},
				{"list with an argument", []string{"list", "taken"}, "takes no arguments"},
				{"token without a subcommand", []string{}, "needs a subcommand: create, list, revoke"},
				{"an unknown subcommand", []string{"delete", "taken"}, "takes no arguments"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					code, out, errOut := runCLI(t, append(append([]string{"token"}, tc.args...), "--storage", url)...)
					line := strings.TrimSuffix(errOut, "\n")
					if code != 2 || strings.Contains(line, "\n") || !strings.HasPrefix(line, "floodtune: ") || !strings.Contains(line, tc.want) {
						t.Errorf("token %q: exit %d, stderr %q; want 2 and one line with %q", tc.args, code, errOut, tc.want)
					}
					if strings.Contains(errOut, "goroutine") || strings.Contains(errOut, "panic") {
						t.Errorf("token %q: a stack trace: %s", tc.args, errOut)
					}
					if out != "" {
						t.Errorf("token %q printed %q on standard output", tc.args, out)
					}
				})
			}
			after, err := st.Tokens(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if len(after) != len(before) {
				t.Fatalf("%d tokens after the refusals, want %d", len(after), len(before))
			}
			for i := range after {
				if after[i] != before[i] {
					t.Errorf("a refusal changed token %q: %+v, was %+v", before[i].Name, after[i], before[i])
				}
			}
		})
	}
}

func TestTokenCommandsOnAMissingSQLiteFileCreateNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "none.db")
	for _, args := range [][]string{
		{"token", "list"},
		{"token", "revoke", "ci"},
		{"token", "create", "w", "--scope", "worker", "--study", "s"},
	} {
		code, out, errOut := runCLI(t, append(args, "--storage", "sqlite:"+path)...)
		if code != 2 || out != "" || !strings.Contains(errOut, "no storage at") {
			t.Errorf("%q on a missing file: exit %d, stdout %q, stderr %q; want 2 and no storage", args, code, out, errOut)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Fatalf("%q on a missing file created %d files", args, len(entries))
		}
	}
}

func TestTokenHelpShowsExamples(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"token", "--help"}, []string{"Bearer", "admin", "read", "worker", "TOKEN=$(floodtune token create ci --scope admin)", "token revoke"}},
		{[]string{"token", "create", "--help"}, []string{"shown", "--scope", "--study", "floodtune token create noise20-workers --scope worker --study noise20"}},
		{[]string{"token", "list", "--help"}, []string{"floodtune token list", "last used"}},
		{[]string{"token", "revoke", "--help"}, []string{"floodtune token revoke ci", "revoked token"}},
		{[]string{"--help"}, []string{"token"}},
	} {
		code, out, errOut := runCLI(t, tc.args...)
		if code != 0 || errOut != "" {
			t.Errorf("%v: exit %d, stderr %q", tc.args, code, errOut)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v does not say %q:\n%s", tc.args, w, out)
			}
		}
	}
}

// The token is printed alone, so that a shell can capture it, and
// FLOODTUNE_STORAGE names the storage as it does for the other commands.
func TestTokenCreateIsCapturedByTheShell(t *testing.T) {
	t.Parallel()
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	for _, b := range cliBackends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			url := b.url(t)
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, sh, "-c", `TOKEN=$("$FT" token create ci --scope admin) && printf '[%s]' "$TOKEN"`)
			cmd.Env = append(os.Environ(), "FT="+floodtuneBinary(t), "FLOODTUNE_STORAGE="+url)
			var out, errOut bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errOut
			if err := cmd.Run(); err != nil {
				t.Fatalf("%v: stderr %q", err, errOut.String())
			}
			token, ok := strings.CutPrefix(out.String(), "[")
			token, ok2 := strings.CutSuffix(token, "]")
			if !ok || !ok2 || !tokenLine.MatchString(token+"\n") {
				t.Fatalf("the shell captured %q; want the token alone", out.String())
			}
			if line := errOut.String(); strings.Count(line, "\n") != 1 || !strings.Contains(line, `created admin token "ci"`) || !strings.Contains(line, "shown this once") {
				t.Errorf("stderr %q; want one line saying the token is shown once", line)
			}
			tok, err := openTokenStore(t, url).Authenticate(t.Context(), token)
			if err != nil || tok.Name != "ci" || tok.Scope != storage.ScopeAdmin {
				t.Errorf("the captured token authenticates as %+v, %v", tok, err)
			}
		})
	}
}
