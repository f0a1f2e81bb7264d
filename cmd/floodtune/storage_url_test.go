package main

// Process-level tests of the --storage connection string where a user meets
// it: no password ever shows, pgx's connection errors are one clean line, a
// server that never answers is given up on, a SQLite path is a file name,
// and commands that only read create nothing. Each runs the floodtune
// program (this test binary re-executed as main, see TestCLIProcess).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// storageProcess runs floodtune with args in a process of its own, with
// the environment of the test less its PostgreSQL and FLOODTUNE_STORAGE
// variables, plus env; it returns the exit status (-1 when killed after 30
// seconds), the output and how long the process took.
func storageProcess(t *testing.T, env []string, args ...string) (code int, stdout, stderr string, took time.Duration) {
	t.Helper()
	enc, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestCLIProcess$")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") && !strings.HasPrefix(kv, "FLOODTUNE_STORAGE=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "FLOODTUNE_TEST_ARGS="+string(enc))
	cmd.Env = append(cmd.Env, env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	start := time.Now()
	err = cmd.Run()
	took = time.Since(start)
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("floodtune %q: %v", args, err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errOut.String(), took
}

// oneRefusal fails t unless stderr is one line "floodtune: ..." without a
// stack trace and stdout is empty.
func oneRefusal(t *testing.T, args []string, stdout, stderr string) {
	t.Helper()
	if strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "floodtune: ") || !strings.HasSuffix(stderr, "\n") {
		t.Errorf("floodtune %q: stderr %q, want one line", args, stderr)
	}
	if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic") {
		t.Errorf("floodtune %q: a stack trace: %q", args, stderr)
	}
	if stdout != "" {
		t.Errorf("floodtune %q: stdout %q, want nothing", args, stdout)
	}
}

func TestNoStorageURLShowsItsPassword(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	spec := filepath.Join(dir, "spec.yaml")
	if err := os.WriteFile(spec, []byte(smallSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	const pw = "S3cr3tPw"
	for _, c := range []struct {
		what, storage string
		env           []string
		secrets       []string // what must not show: pw, and more
	}{
		// The examples.
		{"a keyword/value string", "host=db password=" + pw, nil, nil},
		{"a URL whose password has an @", "postgres://u:" + pw + "@Pa55w0rd@127.0.0.1:1/db", nil, []string{"Pa55w0rd"}},
		{"a URL whose password has a /", "postgres://u:12/" + pw + "@127.0.0.1/db", nil, nil},
		{"a keyword/value string to a port where nothing listens", "host=127.0.0.1 port=1 user=u password=" + pw, nil, nil},
		{"a keyword/value string, quoted with escapes", `host=127.0.0.1 port=1 password='it\'s ` + pw + `'`, nil, []string{"it's " + pw}},
		{"a keyword/value string, not quoted, with a space", "host=127.0.0.1 port=1 password=" + pw + " W0rdTw0", nil, []string{"W0rdTw0"}},
		{"a URL, escaped", "postgres://" + url.UserPassword("u", "p@ss:w/rd %é "+pw).String() + "@127.0.0.1:1/db", nil, []string{"p@ss:w/rd %é " + pw}},
		{"a URL in ?password=", "postgres://u@127.0.0.1:1/db?password=" + pw + "&sslmode=disable", nil, nil},
		{"a URL in &sslpassword=", "postgresql://u@127.0.0.1:1/db?sslmode=disable&sslpassword=" + pw, nil, nil},
		{"a URL that does not parse", "postgres://u:" + pw + "@127.0.0.1:notaport/db", nil, nil},
		{"a URL of another scheme", "mysql://root:" + pw + "@127.0.0.1:1/db", nil, nil},
		{"PGPASSWORD", "postgres://u@127.0.0.1:1/db", []string{"PGPASSWORD=" + pw}, nil},
		{"PGPASSWORD with a keyword/value string", "host=127.0.0.1 port=1 user=u", []string{"PGPASSWORD=" + pw}, nil},
	} {
		for _, sub := range [][]string{
			{"study", "list"},
			{"study", "show", "s"},
			{"study", "trials", "s"},
			{"study", "create", "s", "--spec", spec},
			{"migrate", "status"},
		} {
			t.Run(c.what+" "+sub[0]+" "+sub[1], func(t *testing.T) {
				t.Parallel()
				for _, how := range []string{"--storage", "FLOODTUNE_STORAGE"} {
					args := append([]string{}, sub...)
					env := slices.Clone(c.env)
					if how == "--storage" {
						args = append(args, "--storage", c.storage)
					} else {
						env = append(env, "FLOODTUNE_STORAGE="+c.storage)
					}
					code, out, errOut, _ := storageProcess(t, env, args...)
					if code != 1 && code != 2 {
						t.Errorf("floodtune %q: exit %d, want 1 or 2; stderr %q", args, code, errOut)
					}
					oneRefusal(t, args, out, errOut)
					for _, s := range append([]string{pw}, c.secrets...) {
						if strings.Contains(out+errOut, s) {
							t.Errorf("floodtune %q (%s) shows %q: %s", args, how, s, errOut)
						}
					}
				}
			})
		}
		t.Run(c.what+" --help", func(t *testing.T) {
			t.Parallel()
			args := []string{"study", "list", "--storage", c.storage, "--help"}
			code, out, errOut, _ := storageProcess(t, c.env, args...)
			if code != 0 || strings.Contains(out+errOut, pw) {
				t.Errorf("floodtune %q: exit %d, output %q %q", args, code, out, errOut)
			}
		})
	}
}

// pgx tries each address twice under sslmode=prefer and joined the errors
// with newlines, which came out as a literal \n\t, each reason twice.
func TestAStorageConnectErrorIsOneCleanLine(t *testing.T) {
	t.Parallel()
	for _, storage := range []string{
		"postgres://u:pw@localhost:1/db",
		"host=localhost port=1 user=u",
		"postgres://u:pw@floodtune-test.invalid/db",
	} {
		t.Run(storage, func(t *testing.T) {
			t.Parallel()
			args := []string{"study", "list", "--storage", storage}
			code, out, errOut, _ := storageProcess(t, nil, args...)
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			oneRefusal(t, args, out, errOut)
			line := strings.TrimSuffix(errOut, "\n")
			if strings.Contains(line, `\n`) || strings.Contains(line, `\t`) || strings.ContainsAny(line, "\t\r") {
				t.Errorf("stderr %q holds line breaks or tabs", errOut)
			}
			_, reasons, _ := strings.Cut(line, ": ")      // after "floodtune: "
			_, reasons, _ = strings.Cut(reasons, "/db: ") // after "connect to URL: "
			if strings.HasPrefix(storage, "host=") {
				_, reasons, _ = strings.Cut(line, "user=u: ")
			}
			parts := strings.Split(reasons, "; ")
			for i, p := range parts {
				if slices.Contains(parts[:i], p) {
					t.Errorf("stderr %q says %q twice", errOut, p)
				}
			}
			if !strings.Contains(line, "connection refused") && !strings.Contains(line, "no such host") {
				t.Errorf("stderr %q does not say why", errOut)
			}
		})
	}
}

// A server that accepts the connection and never answers held every command
// for about two minutes without a word.
func TestAStorageThatNeverAnswersIsGivenUpOn(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan []net.Conn)
	go func() {
		var conns []net.Conn
		for {
			c, err := l.Accept()
			if err != nil {
				done <- conns
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		for _, c := range <-done {
			c.Close()
		}
	})
	_, port, _ := net.SplitHostPort(l.Addr().String())
	args := []string{"study", "list", "--storage", "postgres://u:S3cr3tPw@127.0.0.1:" + port + "/db?connect_timeout=1"}
	code, out, errOut, took := storageProcess(t, nil, args...)
	if code != 1 {
		t.Errorf("exit %d, want 1; stderr %q", code, errOut)
	}
	oneRefusal(t, args, out, errOut)
	if took > 8*time.Second {
		t.Errorf("floodtune gave up after %v, want about the connect_timeout of 1s", took)
	}
	if !strings.Contains(errOut, "no answer within the connect_timeout of 1s") {
		t.Errorf("stderr %q does not say that the server did not answer", errOut)
	}
	t.Logf("after %v: %s", took.Round(time.Millisecond), errOut)
}

// sqlite:/x/a#1.db and sqlite:/x/a#2.db opened the same file /x/a, %41 was
// decoded, and a ? broke the open.
func TestASQLitePathIsAFileNameInTheCLI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	spec := filepath.Join(dir, "spec.yaml")
	if err := os.WriteFile(spec, []byte(smallSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	names := []string{"a#1.db", "a#2.db", "b%41.db", "bA.db", "c?x=1.db", "d e.db", "données-€.db"}
	for i, name := range names {
		args := []string{"study", "create", "study" + string(rune('0'+i)), "--spec", spec, "--storage", "sqlite:" + filepath.Join(dir, name)}
		if code, _, errOut, _ := storageProcess(t, nil, args...); code != 0 {
			t.Fatalf("floodtune %q: exit %d, stderr %q", args, code, errOut)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		if n := e.Name(); n != "spec.yaml" && !strings.HasSuffix(n, "-wal") && !strings.HasSuffix(n, "-shm") {
			got = append(got, n)
		}
	}
	if want := slices.Sorted(slices.Values(names)); !slices.Equal(got, want) {
		t.Errorf("the directory holds %q, want one file of each name: %q", got, want)
	}
	for i, name := range names {
		args := []string{"study", "list", "--storage", "sqlite:" + filepath.Join(dir, name)}
		code, out, errOut, _ := storageProcess(t, nil, args...)
		if code != 0 {
			t.Errorf("floodtune %q: exit %d, stderr %q", args, code, errOut)
			continue
		}
		for j := range names {
			if has := strings.Contains(out, "study"+string(rune('0'+j))); has != (i == j) {
				t.Errorf("study list of %s:\n%s\nwant only study%d", name, out, i)
				break
			}
		}
	}
}

// A directory, or a file in a directory that does not exist, exited with
// status 1 and "unable to open database file (14)".
func TestASQLitePathThatCanNeverBeADatabaseIsBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	spec := filepath.Join(dir, "spec.yaml")
	if err := os.WriteFile(spec, []byte(smallSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what, path string
		want       []string // any of
	}{
		{"a directory", dir, []string{dir + " is a directory, not a database file"}},
		{"a file in a directory that does not exist", filepath.Join(dir, "missing", "x.db"),
			[]string{"the directory " + filepath.Join(dir, "missing") + " does not exist", "no storage at " + filepath.Join(dir, "missing", "x.db")}},
		{"a file under a file", filepath.Join(spec, "x.db"), []string{spec + " is a file, not a directory"}},
	} {
		for _, sub := range [][]string{{"study", "create", "s", "--spec", spec}, {"study", "list"}, {"migrate", "up"}} {
			args := append(slices.Clone(sub), "--storage", "sqlite:"+c.path)
			code, out, errOut, _ := storageProcess(t, nil, args...)
			if code != 2 {
				t.Errorf("%s: floodtune %q: exit %d, want 2; stderr %q", c.what, args, code, errOut)
			}
			oneRefusal(t, args, out, errOut)
			if !slices.ContainsFunc(c.want, func(w string) bool { return strings.Contains(errOut, w) }) {
				t.Errorf("%s: floodtune %q: stderr %q, want it to say %q", c.what, args, errOut, c.want[0])
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "missing")); err == nil {
		t.Errorf("the missing directory was created")
	}
}

// WIRING NEEDED (cmd/floodtune/migrate.go's openStorage): the commands that
// only read, or that need a study that exists, open the storage with
// storage.MustExist(), and openStorage turns storage.ErrNoStorage into bad
// input with the hint below. A mistyped path created an empty database
// there.
func TestCommandsThatNeedAStudyCreateNoStorage(t *testing.T) {
	t.Parallel()
	for _, sub := range [][]string{
		{"study", "list"},
		{"study", "show", "s"},
		{"study", "trials", "s"},
		{"study", "best", "s"},
		{"study", "plot", "s", "--out", "OUT"},
		{"migrate", "status"},
		{"migrate", "down"},
		{"serve", "--metrics-addr", "127.0.0.1:0"},
		{"study", "optimize", "s", "--metrics-addr", ""},
		{"study", "enqueue", "s", "--param", "flood_level=0.5"},
		{"study", "delete", "s", "--yes"},
		{"trial", "rerun", "s", "0"},
	} {
		t.Run(strings.Join(sub, " "), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "typo.db")
			args := append(slices.Clone(sub), "--storage", "sqlite:"+path)
			for i, a := range args {
				if a == "OUT" {
					args[i] = filepath.Join(dir, "out")
				}
			}
			code, out, errOut, _ := storageProcess(t, nil, args...)
			if code != 2 {
				t.Errorf("floodtune %q: exit %d, want 2; stderr %q", args, code, errOut)
			}
			oneRefusal(t, args, out, errOut)
			if want := "floodtune: no storage at " + path + " (create a study first: floodtune study create "; !strings.HasPrefix(errOut, want) {
				t.Errorf("floodtune %q: stderr %q, want it to start with %q", args, errOut, want)
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				t.Errorf("floodtune %q created %s", args, e.Name())
			}
		})
	}
	// The commands that make a storage still do.
	for _, sub := range [][]string{{"study", "create", "s", "--spec", "SPEC"}, {"migrate", "up"}} {
		dir := t.TempDir()
		spec := filepath.Join(dir, "spec.yaml")
		if err := os.WriteFile(spec, []byte(smallSpec), 0o644); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "new.db")
		args := append(slices.Clone(sub), "--storage", "sqlite:"+path)
		for i, a := range args {
			if a == "SPEC" {
				args[i] = spec
			}
		}
		if code, _, errOut, _ := storageProcess(t, nil, args...); code != 0 {
			t.Errorf("floodtune %q: exit %d, stderr %q", args, code, errOut)
		}
		if _, err := os.Stat(path); err != nil {
			t.Errorf("floodtune %q did not create the storage: %v", args, err)
		}
	}
}

// WIRING NEEDED (cmd/floodtune/migrate.go's openStorage): every command
// opens the storage with storage.Persistent(). sqlite::memory: was accepted,
// and what one command stored was gone for the next.
func TestAnInMemorySQLiteIsRefusedByTheCLI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	spec := filepath.Join(dir, "spec.yaml")
	if err := os.WriteFile(spec, []byte(smallSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, storage := range []string{"sqlite::memory:", "sqlite3::memory:", "sqlite://:memory:"} {
		for _, sub := range [][]string{{"study", "create", "s", "--spec", spec}, {"study", "list"}, {"migrate", "up"}} {
			for _, how := range []string{"--storage", "FLOODTUNE_STORAGE"} {
				args, env := slices.Clone(sub), []string{}
				if how == "--storage" {
					args = append(args, "--storage", storage)
				} else {
					env = append(env, "FLOODTUNE_STORAGE="+storage)
				}
				code, out, errOut, _ := storageProcess(t, env, args...)
				if code != 2 {
					t.Errorf("floodtune %q (%s): exit %d, want 2; stdout %q, stderr %q", args, how, code, out, errOut)
					continue
				}
				oneRefusal(t, args, out, errOut)
				if !strings.Contains(errOut, "in-memory database ends with the process") {
					t.Errorf("floodtune %q: stderr %q, want it to say why", args, errOut)
				}
			}
		}
	}
}
