package main

// Process-level tests of what a hostile study name, flag or stored value
// can do to the terminal, of the metrics address, of the lease bounds, and
// of a worker whose output is closed under it. Each runs the floodtune
// program (this test binary re-executed as main, see TestCLIProcess) as a
// user would.

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/floodtune/floodtune/search"
	"github.com/floodtune/floodtune/storage"
)

// floodtuneCmd returns the floodtune process of args, not started: this
// test binary, which runs main with args in TestHostileCLIProcess. The
// arguments travel hex-encoded, so that they may hold any byte but NUL, as
// a shell's do.
func floodtuneCmd(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	enc := make([]string, len(args))
	for i, a := range args {
		enc[i] = hex.EncodeToString([]byte(a))
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHostileCLIProcess$")
	cmd.Env = append(os.Environ(), "FLOODTUNE_HOSTILE_ARGS="+strings.Join(enc, ","))
	return cmd
}

// TestHostileCLIProcess is the floodtune process of floodtuneCmd: it runs
// main() when FLOODTUNE_HOSTILE_ARGS is set, and does nothing otherwise.
func TestHostileCLIProcess(t *testing.T) {
	raw, ok := os.LookupEnv("FLOODTUNE_HOSTILE_ARGS")
	if !ok {
		return
	}
	var args []string
	if raw != "" {
		for _, a := range strings.Split(raw, ",") {
			b, err := hex.DecodeString(a)
			if err != nil {
				t.Fatal(err)
			}
			args = append(args, string(b))
		}
	}
	os.Args = append([]string{"floodtune"}, args...)
	main()
}

// checkShellWord checks that the command line that text suggests
// ("floodtune study optimize NAME --storage ...") names the study name
// exactly when bash reads it.
func checkShellWord(t *testing.T, what, text, name string) {
	t.Helper()
	if _, err := exec.LookPath("bash"); err != nil {
		return
	}
	const prefix = "floodtune study optimize "
	i := strings.Index(text, prefix)
	if i < 0 {
		t.Errorf("%s: no suggested command in %q", what, text)
		return
	}
	rest := text[i+len(prefix):]
	word := rest[:strings.Index(rest, " --storage")]
	got, err := exec.Command("bash", "-c", "printf %s "+word).Output()
	if err != nil || string(got) != name {
		t.Errorf("%s: the suggested command quotes the name as %s, which bash reads as %q (%v), not %q", what, word, got, err, name)
	}
}

// runProcess runs floodtune with args to its end (a minute at most) and
// returns its exit status (-1 when a signal ended it), standard output and
// standard error.
func runProcess(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := floodtuneCmd(t, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(time.Minute, func() { _ = cmd.Process.Kill() })
	defer timer.Stop()
	err := cmd.Wait()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("floodtune %q: %v", args, err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
}

// mustProcess runs floodtune and fails the test unless it exits with 0.
func mustProcess(t *testing.T, args ...string) (stdout, stderr string) {
	t.Helper()
	code, out, errOut := runProcess(t, args...)
	if code != 0 {
		t.Fatalf("floodtune %q: exit %d, stderr %q", args, code, errOut)
	}
	return out, errOut
}

// checkPrintable fails the test if text, which floodtune wrote for people,
// holds a character that a terminal interprets or shows otherwise than
// it reads: C0 and C1 controls (escape sequences), bidirectional overrides
// and isolates, line and paragraph separators, format characters, bytes
// that are not UTF-8. Only the newlines that end lines may be raw.
func checkPrintable(t *testing.T, what, text string) {
	t.Helper()
	for i, r := range text {
		if r == '\n' {
			continue
		}
		bad := r == utf8.RuneError && !strings.HasPrefix(text[i:], "\uFFFD")
		if bad || !unicode.IsPrint(r) {
			from, to := max(i-40, 0), min(i+40, len(text))
			t.Errorf("%s: a raw %U at byte %d: %q", what, r, i, text[from:to])
			return
		}
	}
}

// hostileNames are study names of every class that storage.CheckName lets
// through, each of which a terminal would interpret or show misleadingly.
var hostileNames = map[string]string{
	"C1 controls":                   "c1 \u009b31m red \u0085 nel \u0090 dcs \u009d osc \u0080",
	"bidi overrides":                "bidi \u202e evil \u202a\u202b\u202c\u202d x",
	"bidi isolates":                 "iso \u2066 l \u2067 r \u2068 f \u2069",
	"line and paragraph separators": "line \u2028 para \u2029 end",
	"format characters":             "zw \u200b lrm \u200e rlm \u200f alm \u061c bom \ufeff shy \u00ad",
	"other spaces":                  "nbsp \u00a0 ideographic \u3000 end",
}

// storedNames are names that CheckName refuses, and that only another
// program (or an older floodtune) could have put in the database: written
// there with SQL.
var storedNames = map[string]string{
	"ESC sequences":            "esc \x1b[2J \x1b]0;pwn\x07 \x1b[31m",
	"C0 controls and DEL":      "c0 \x01\x08 tab\t nl\n cr\r del\x7f",
	"bytes that are not UTF-8": "latin1 \xe9t\xe9 \xff",
}

func TestHostileNamesNeverReachTheTerminalRaw(t *testing.T) {
	t.Parallel()
	url, specPath := newStudyEnv(t, strings.Replace(smallSpec, "trials: 4", "trials: 2", 1))
	dbPath := strings.TrimPrefix(url, "sqlite:")
	s := "--storage=" + url

	names := map[string]string{}
	for class, name := range hostileNames {
		if err := storage.CheckName(name); err != nil {
			t.Fatalf("%s: storage.CheckName refuses %q (%v): the test needs another name", class, name, err)
		}
		out, errOut := mustProcess(t, "study", "create", name, "--spec", specPath, s)
		checkPrintable(t, class+": study create's stdout", out)
		checkPrintable(t, class+": study create's stderr", errOut)
		// The command it suggests names the study exactly, for a shell.
		checkShellWord(t, class+": study create", out, name)
		names[class] = name
	}
	for class, name := range storedNames {
		tmp := "stored-" + strings.ReplaceAll(class, " ", "-")
		mustProcess(t, "study", "create", tmp, "--spec", specPath, s)
		db, err := sql.Open("sqlite", dbPath)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`UPDATE studies SET name = ? WHERE name = ?`, name, tmp); err != nil {
			t.Fatal(err)
		}
		db.Close()
		names[class] = name
	}

	list, errOut := mustProcess(t, "study", "list", s)
	checkPrintable(t, "study list", list)
	checkPrintable(t, "study list's stderr", errOut)
	if n := strings.Count(list, "\n"); n != len(names)+1 {
		t.Errorf("study list printed %d lines for %d studies:\n%s", n, len(names), list)
	}

	for class, name := range names {
		t.Run(class, func(t *testing.T) {
			t.Parallel()
			plots := filepath.Join(t.TempDir(), "plots \u202e\x1b[2J")
			code, _, errOut := runProcess(t, "study", "best", name, s)
			if code != 1 {
				t.Errorf("study best before any trial: exit %d, stderr %q", code, errOut)
			}
			checkPrintable(t, "study best's stderr", errOut)
			checkShellWord(t, "study best's stderr", errOut, name)
			for _, c := range []struct {
				args []string
				code int
			}{
				{[]string{"study", "show", name}, 0},
				{[]string{"study", "enqueue", name, "--param", "flood_level=0.5"}, 0},
				{[]string{"study", "optimize", name, "--workers", "1", "--metrics-addr", ""}, 0},
				{[]string{"study", "show", name}, 0},
				{[]string{"study", "trials", name}, 0},
				{[]string{"study", "best", name}, 0},
				{[]string{"trial", "rerun", name, "0"}, 0},
				{[]string{"study", "plot", name, "--out", plots}, 0},
				{[]string{"study", "enqueue", name, "--param", "flood_level=0.5"}, 1},
				{[]string{"study", "best", name, "--format", "csv"}, 2},
				{[]string{"study", "enqueue", name, "--param", "lr=0.1"}, 2},
				{[]string{"trial", "rerun", name, "9"}, 2},
			} {
				code, out, errOut := runProcess(t, append(c.args, s)...)
				if code != c.code {
					t.Errorf("%q: exit %d, want %d; stderr %q", c.args[:2], code, c.code, errOut)
				}
				checkPrintable(t, fmt.Sprintf("%q's stdout", c.args[:2]), out)
				checkPrintable(t, fmt.Sprintf("%q's stderr", c.args[:2]), errOut)
			}
			// JSON stays exact: it is for programs.
			out, _ := mustProcess(t, "trial", "rerun", name, "0", "--json", s)
			var r struct{ Study string }
			if err := json.Unmarshal([]byte(out), &r); err != nil || r.Study != strings.ToValidUTF8(name, "\uFFFD") {
				t.Errorf("trial rerun --json: study %q (%v), want %q", r.Study, err, name)
			}
			out, _ = mustProcess(t, "study", "delete", name, "--yes", s)
			checkPrintable(t, "study delete", out)
		})
	}
}

// TestHostileStoredValuesAndFlagsNeverReachTheTerminalRaw gives the
// commands flags, and the storage trial attributes, holding escape
// sequences and bidirectional characters.
func TestHostileStoredValuesAndFlagsNeverReachTheTerminalRaw(t *testing.T) {
	t.Parallel()
	url, specPath := newStudyEnv(t, smallSpec)
	dir := filepath.Dir(specPath)
	s := "--storage=" + url
	mustProcess(t, "study", "create", "s", "--spec", specPath, s)

	// Trials whose stored attributes another program wrote: a failure
	// reason and a user attribute with escape sequences.
	ctx := context.Background()
	st, err := storage.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	study, err := st.StudyByName(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	const evil = "evil \x1b[2J\x1b]0;pwn\x07 \u202e\u2028 \u009b31m"
	for i, state := range []storage.State{storage.Complete, storage.Fail} {
		tr, err := st.ClaimWaiting(ctx, study.ID, "test/0")
		if errors.Is(err, storage.ErrNotFound) {
			mustProcess(t, "study", "enqueue", "s", "--param", "flood_level=0.25", s)
			tr, err = st.ClaimWaiting(ctx, study.ID, "test/0")
		}
		if err != nil {
			t.Fatalf("trial %d: %v", i, err)
		}
		if err := st.SetTrialAttr(ctx, tr.ID, "test/0", storage.UserAttr, "train_loss", evil); err != nil {
			t.Fatal(err)
		}
		if err := st.SetTrialAttr(ctx, tr.ID, "test/0", storage.SystemAttr, search.ReasonAttr, evil); err != nil {
			t.Fatal(err)
		}
		if err := st.Finish(ctx, tr.ID, "test/0", state, 0.9); err != nil {
			t.Fatal(err)
		}
	}

	badDB := "sqlite:" + filepath.Join(dir, "\x1b[2J\u202e.db")
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"a stored failure reason in study trials", []string{"study", "trials", "s"}, 0},
		{"a stored user attribute in study best", []string{"study", "best", "s"}, 0},
		{"a --param name", []string{"study", "enqueue", "s", "--param", "\x1b[31mx=1"}, 2},
		{"a --param value", []string{"study", "enqueue", "s", "--param", "flood_level=\x1b[31m\u202e"}, 2},
		{"a --spec path", []string{"study", "create", "t", "--spec", "/tmp/\x1b]0;pwn\x07.yaml"}, 2},
		{"a sqlite path, listed", []string{"study", "list", "--storage", badDB}, 2},
		{"a sqlite path in an error", []string{"study", "show", "x", "--storage", badDB}, 2},
		{"a study name in an error", []string{"study", "show", "\x1b[2J\u202e"}, 2},
		{"a trial number", []string{"trial", "rerun", "s", "\x1b[2J"}, 2},
		{"an unknown flag", []string{"study", "list", "--\x1b[31mverbose"}, 2},
		{"an unknown command", []string{"\x1b[2J\u202e"}, 2},
		{"a --format", []string{"study", "trials", "s", "--format", "\x1b[2J"}, 2},
		{"a --metrics-addr host", []string{"serve", "--metrics-addr", "\x1b]0;pwn\x07:9464"}, 2},
		{"a --metrics-addr port", []string{"study", "optimize", "s", "--metrics-addr", "127.0.0.1:\x1b[2J"}, 2},
		{"a plot directory", []string{"study", "plot", "s", "--out", filepath.Join(dir, "plots \x1b[2J\u2066")}, 0},
		{"an export directory", []string{"dataset", "export", "--spec", specPath, "--out", filepath.Join(dir, "export \x1b[2J\u202e")}, 0},
		{"a dataset path", []string{"train", "--dataset", "csv:/nonexistent/\x1b[2J\u202e.csv"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := tc.args
			if !strings.HasPrefix(strings.Join(args, " "), "study list --storage") && !strings.HasPrefix(strings.Join(args, " "), "study show x --storage") {
				args = append(args, s)
			}
			code, out, errOut := runProcess(t, args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr %q", code, tc.code, errOut)
			}
			checkPrintable(t, "stdout", out)
			checkPrintable(t, "stderr", errOut)
			if tc.code == 2 && strings.Count(errOut, "\n") != 1 {
				t.Errorf("stderr %q, want one line", errOut)
			}
		})
	}
}

// TestMetricsAddresses: a non-loopback --metrics-addr is said on stderr,
// loopback is not, and an address that is not host:port exits with 2.
func TestMetricsAddresses(t *testing.T) {
	t.Parallel()
	url, specPath := newStudyEnv(t, strings.Replace(smallSpec, "trials: 4", "trials: 2", 1))
	s := "--storage=" + url
	mustProcess(t, "study", "create", "s", "--spec", specPath, s)

	t.Run("bad addresses exit with 2 and one line", func(t *testing.T) {
		t.Parallel()
		for _, addr := range []string{"127.0.0.1:99999", ":abc", "localhost:-1", "127.0.0.1:65536", "127.0.0.1:", "nonsense", "bad host:9464"} {
			for _, cmd := range [][]string{{"serve"}, {"study", "optimize", "s"}} {
				args := append(append([]string{}, cmd...), "--metrics-addr", addr, s)
				code, out, errOut := runProcess(t, args...)
				if code != 2 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "--metrics-addr") || out != "" {
					t.Errorf("%s --metrics-addr %q: exit %d, stdout %q, stderr %q; want 2 and one line naming --metrics-addr", cmd[len(cmd)-1], addr, code, out, errOut)
				}
			}
		}
	})

	if ln, err := net.Listen("tcp", "0.0.0.0:0"); err != nil {
		t.Skipf("cannot listen on every interface here: %v", err)
	} else {
		ln.Close()
	}
	warned := func(stderr string) string {
		for _, line := range strings.Split(stderr, "\n") {
			if strings.Contains(line, "warning") {
				return line
			}
		}
		return ""
	}
	t.Run("study optimize warns of every interface", func(t *testing.T) {
		t.Parallel()
		_, errOut := mustProcess(t, "study", "optimize", "s", "--workers", "1", "--metrics-addr", "0.0.0.0:0", s)
		w := warned(errOut)
		for _, want := range []string{"every network interface", "without authentication", "every study in", "trials as they train"} {
			if !strings.Contains(w, want) {
				t.Errorf("the warning %q lacks %q; stderr:\n%s", w, want, errOut)
			}
		}
	})
	t.Run("study optimize on loopback does not warn", func(t *testing.T) {
		t.Parallel()
		_, errOut := mustProcess(t, "study", "optimize", "s", "--workers", "1", "--metrics-addr", "127.0.0.1:0", s)
		if w := warned(errOut); w != "" || !strings.Contains(errOut, "metrics on http://127.0.0.1:") {
			t.Errorf("stderr:\n%s", errOut)
		}
	})
	t.Run("serve warns of every interface", func(t *testing.T) {
		t.Parallel()
		for _, addr := range []string{"0.0.0.0:0", ":0"} {
			cmd := floodtuneCmd(t, "serve", "--metrics-addr", addr, s)
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			timer := time.AfterFunc(30*time.Second, func() { _ = cmd.Process.Kill() })
			var lines []string
			var interrupt sync.Once
			sc := bufio.NewScanner(stderr)
			for sc.Scan() {
				lines = append(lines, sc.Text())
				if strings.HasPrefix(sc.Text(), "metrics on http://") {
					// The warning, if any, is the next line: give it a
					// moment, then stop serve, once (the warning names
					// the address too, and a second interrupt that
					// comes after serve let go of the signal kills it).
					interrupt.Do(func() {
						time.AfterFunc(time.Second, func() { _ = cmd.Process.Signal(os.Interrupt) })
					})
				}
			}
			err = cmd.Wait()
			timer.Stop()
			all := strings.Join(lines, "\n")
			if err != nil {
				t.Errorf("serve --metrics-addr %s: %v; stderr:\n%s", addr, err, all)
			}
			w := warned(all)
			for _, want := range []string{"every network interface", "without authentication", "every study in"} {
				if !strings.Contains(w, want) {
					t.Errorf("serve --metrics-addr %s: the warning %q lacks %q; stderr:\n%s", addr, w, want, all)
				}
			}
		}
	})
}

// TestLeaseBoundsAreBadInput: --heartbeat, --lease, --timeout, --max-trials
// and --workers out of their bounds exit with 2 and a line that says them.
func TestLeaseBoundsAreBadInput(t *testing.T) {
	t.Parallel()
	url, specPath := newStudyEnv(t, strings.Replace(smallSpec, "trials: 4", "trials: 2", 1))
	s := "--storage=" + url
	mustProcess(t, "study", "create", "s", "--spec", specPath, s)
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"a heartbeat of 1ns", []string{"--heartbeat", "1ns"}, []string{"--heartbeat 1ns", "at least 100ms", "from 1s to 24h"}},
		{"a heartbeat of 99ms", []string{"--heartbeat", "99ms", "--lease", "1s"}, []string{"--heartbeat 99ms", "at least 100ms"}},
		{"a lease under a second", []string{"--heartbeat", "100ms", "--lease", "999ms"}, []string{"--lease 999ms", "from 1s to 24h"}},
		{"a lease over a day", []string{"--lease", "24h1s"}, []string{"--lease 24h0m1s", "from 1s to 24h"}},
		{"a lease of a year", []string{"--lease", "8760h", "--heartbeat", "1h"}, []string{"--lease 8760h", "from 1s to 24h"}},
		{"a lease not twice the heartbeat", []string{"--lease", "3s", "--heartbeat", "2s"}, []string{"more than twice --heartbeat"}},
		{"a timeout of 1ns", []string{"--timeout", "1ns"}, []string{"--timeout", "from 1s"}},
		{"a timeout of 10 years", []string{"--timeout", "87600h"}, []string{"--timeout", "to 8760h"}},
		{"more trials than any budget", []string{"--max-trials", "100001"}, []string{"--max-trials", "from 0 to 100000"}},
		{"a negative max-trials", []string{"--max-trials", "-1"}, []string{"--max-trials", "from 0 to 100000"}},
		{"ten thousand workers", []string{"--workers", "10000"}, []string{"--workers", "from 1 to 1024"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"study", "optimize", "s", "--metrics-addr", ""}, append(tc.args, s)...)
			code, out, errOut := runProcess(t, args...)
			if code != 2 || strings.Count(errOut, "\n") != 1 || out != "" {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 2 and one line", code, out, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr %q lacks %q", errOut, w)
				}
			}
		})
	}
	// The bounds themselves are accepted.
	mustProcess(t, "study", "optimize", "s", "--metrics-addr", "", "--workers", "1", "--max-trials", "1",
		"--heartbeat", "100ms", "--lease", "1s", "--timeout", "1h", s)
	mustProcess(t, "study", "optimize", "s", "--metrics-addr", "", "--workers", "1", "--max-trials", "1",
		"--heartbeat", "1h", "--lease", "24h", s)
}

// pipeSpec is a study whose trials take a few tenths of a second.
const pipeSpec = `
dataset: {name: gauss2d, train_size: 1000, val_size: 200, test_size: 500, label_noise: 0.1}
model: {hidden: [64, 64]}
training: {optimizer: adam, lr: 0.005, batch_size: 50, epochs: 40}
search: {sampler: random, trials: 40, seed: 11}
space: {flood_level: {type: float, low: 0.0, high: 0.6}}
`

// TestAWorkerWhoseOutputIsClosedGivesItsTrialsBack runs study optimize
// with its standard output and error on a pipe whose reader leaves after
// the first line, as `floodtune study optimize s 2>&1 | head -1` does.
func TestAWorkerWhoseOutputIsClosedGivesItsTrialsBack(t *testing.T) {
	t.Parallel()
	url, specPath := newStudyEnv(t, pipeSpec)
	mustProcess(t, "study", "create", "piped", "--spec", specPath, "--storage", url)

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := floodtuneCmd(t, "study", "optimize", "piped", "--workers", "2", "--metrics-addr", "", "--storage", url)
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	first, err := bufio.NewReader(r).ReadString('\n')
	r.Close()
	if err != nil {
		t.Fatalf("no first line: %v", err)
	}
	t.Logf("first line: %q", first)
	select {
	case <-done:
	case <-time.After(90 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatal("the worker did not stop within 90s of its output closing")
	}
	ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		t.Errorf("the worker was killed by %v", ws.Signal())
	} else if ws.ExitStatus() != 141 {
		t.Errorf("the worker exited with %d, want 141 (its output was closed)", ws.ExitStatus())
	}

	st, err := storage.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	study, err := st.StudyByName(context.Background(), "piped")
	if err != nil {
		t.Fatal(err)
	}
	trials, err := st.Trials(context.Background(), study.ID)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[storage.State]int{}
	givenBack := 0
	for _, tr := range trials {
		counts[tr.State]++
		if tr.State == storage.Fail && tr.RetriedBy != 0 {
			givenBack++
		}
	}
	if counts[storage.Running] != 0 {
		t.Errorf("%d trials left running: %v", counts[storage.Running], counts)
	}
	// The budget is spent, or what was running was given back (or the
	// worker stopped between two trials, holding none).
	t.Logf("trials by state: %v; given back: %d of a budget of %d", counts, givenBack, study.Budget)
	if counts[storage.Complete] < study.Budget && counts[storage.Waiting] < givenBack {
		t.Errorf("%d trials were given back, but only %d wait to run again", givenBack, counts[storage.Waiting])
	}

	// The study resumes: the trials given back run again.
	mustProcess(t, "study", "optimize", "piped", "--workers", "2", "--metrics-addr", "", "--storage", url)
	if c, _, err := st.Counts(context.Background(), study.ID); err != nil || c[storage.Running] != 0 || c[storage.Waiting] != 0 || c[storage.Complete] != study.Budget {
		t.Errorf("after resuming: %v (%v)", c, err)
	}
}

// TestAClosedOutputEndsAShortCommandQuietly: `floodtune ... | head -1` of a
// long listing ends with status 141 and nothing on stderr, as a program
// that SIGPIPE ended does, and no complaint about a broken pipe.
func TestAClosedOutputEndsAShortCommandQuietly(t *testing.T) {
	t.Parallel()
	cmd := floodtuneCmd(t, "study", "--help")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close() // the reader left before the first write
	var errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = w, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	err = cmd.Wait()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !(ws.Signaled() && ws.Signal() == syscall.SIGPIPE) && ws.ExitStatus() != 141 {
		t.Errorf("status %v, want 141", cmd.ProcessState)
	}
	if errOut.Len() != 0 {
		t.Errorf("stderr %q, want nothing", errOut.String())
	}
	_, _ = io.Copy(io.Discard, &errOut)
}
