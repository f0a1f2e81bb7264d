package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/jackc/pgx/v5"

	"github.com/floodtune/floodtune/internal/pgtest"
	"github.com/floodtune/floodtune/migrations"
)

func TestMain(m *testing.M) {
	code := pgtest.Main(m)
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

func TestMigrateRoundTrip(t *testing.T) {
	t.Parallel()
	url := "sqlite:" + filepath.Join(t.TempDir(), "ft.db")
	// status reads: it creates no storage at a path where there is none.
	if code, _, errOut := runCLI(t, "migrate", "status", "--storage", url); code != 2 || !strings.Contains(errOut, "no storage at") {
		t.Fatalf("migrate status of a missing file: exit %d, stderr %q; want 2 and no storage", code, errOut)
	}
	for _, step := range []struct {
		args []string
		want string
	}{
		{[]string{"migrate"}, "applied 001_init\napplied 002_checkpoints\napplied 003_tokens\n"},
		{[]string{"migrate", "up"}, "nothing to up"},
		{[]string{"migrate", "down", "--yes"}, "reverted 003_tokens\n"}, // one step down
		{[]string{"migrate", "down", "--yes"}, "reverted 002_checkpoints\n"},
		{[]string{"migrate", "down", "--yes"}, "reverted 001_init\n"},
		{[]string{"migrate", "down"}, "nothing to down"}, // nothing to destroy: nothing to confirm
		{[]string{"migrate", "up"}, "applied 001_init\napplied 002_checkpoints\napplied 003_tokens\n"},
	} {
		code, out, errOut := runCLI(t, append(step.args, "--storage", url)...)
		if code != 0 || !strings.Contains(out, step.want) {
			t.Fatalf("%v: exit %d, stdout %q, stderr %q; want %q", step.args, code, out, errOut, step.want)
		}
	}
}

func TestStorageErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"an unknown scheme is bad input", []string{"migrate", "status", "--storage", "mysql://db"}, 2, "postgres://, postgresql:// or sqlite:"},
		{"an unknown action is bad input", []string{"migrate", "sideways", "--storage", "sqlite::memory:"}, 2, "invalid argument"},
		{"a negative target is bad input", []string{"migrate", "--to", "-1", "--storage", "sqlite::memory:"}, 2, "--to"},
		{"a target beyond the versions floodtune knows is bad input", []string{"migrate", "--to", "999", "--storage", "sqlite:" + filepath.Join(t.TempDir(), "ft.db")}, 2, "--to 999"},
		{"an in-memory SQLite is bad input", []string{"migrate", "status", "--storage", "sqlite::memory:"}, 2, "in-memory"},
		{"an unreachable server is an error that hides the password", []string{"migrate", "status", "--storage", "postgres://u:hunter2@127.0.0.1:1/db"}, 1, "postgres://u:xxxxx@127.0.0.1:1/db"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, _, errOut := runCLI(t, tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.want) || strings.Count(errOut, "\n") != 1 {
				t.Fatalf("exit %d, stderr %q; want %d and one line with %q", code, errOut, tc.code, tc.want)
			}
			if strings.Contains(errOut, "hunter2") {
				t.Fatalf("the password leaked: %q", errOut)
			}
		})
	}
}

// built is the floodtune binary that the process-level tests run, built
// once per test binary into a directory that TestMain removes.
var built struct {
	once      sync.Once
	dir, path string
	out       []byte
	err       error
}

// floodtuneBinary builds the floodtune command (once) and returns its path.
func floodtuneBinary(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "floodtune-cli-"); built.err != nil {
			return
		}
		built.path = filepath.Join(built.dir, "floodtune")
		built.out, built.err = exec.Command("go", "build", "-o", built.path, ".").CombinedOutput()
	})
	if built.err != nil {
		t.Fatalf("build floodtune: %v\n%s", built.err, built.out)
	}
	return built.path
}

// result is how a floodtune process ended.
type result struct {
	args           []string
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("floodtune %s: exit %d, stdout %q, stderr %q", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// floodtune runs the floodtune binary with args, its input from stdin (nil:
// /dev/null, as `</dev/null` would), and returns how it ended.
func floodtune(t *testing.T, stdin *os.File, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, floodtuneBinary(t), args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if stdin != nil {
		cmd.Stdin = stdin
	}
	err := cmd.Run()
	r := result{args: args, stdout: out.String(), stderr: errOut.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run floodtune %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// mustSucceed runs floodtune and fails t unless it exits with status 0.
func mustSucceed(t *testing.T, args ...string) result {
	t.Helper()
	r := floodtune(t, nil, args...)
	if r.code != 0 {
		t.Fatalf("%v", r)
	}
	return r
}

// wantRefusal fails t unless r ended with status code and one line of
// stderr that names want, without a stack trace.
func wantRefusal(t *testing.T, r result, code int, want string) {
	t.Helper()
	line := strings.TrimSuffix(r.stderr, "\n")
	if r.code != code || strings.Contains(line, "\n") || !strings.HasPrefix(line, "floodtune: ") || !strings.Contains(line, want) {
		t.Errorf("%v; want exit %d and one line with %q", r, code, want)
	}
	if strings.Contains(r.stderr, "goroutine") || strings.Contains(r.stderr, "panic") {
		t.Errorf("%v: a stack trace", r)
	}
}

// knownVersion is the newest schema version this floodtune knows.
func knownVersion(t *testing.T) int {
	t.Helper()
	ups, err := fs.Glob(migrations.FS, "sqlite/*.up.sql")
	if err != nil || len(ups) == 0 {
		t.Fatalf("the migrations: %v, %d files", err, len(ups))
	}
	return len(ups)
}

// cliBackend is a storage that the process-level tests run on.
type cliBackend struct {
	name string
	url  func(t *testing.T) string // a fresh, empty storage, removed when t ends
}

var cliBackends = []cliBackend{
	{"sqlite", func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "floodtune.db") }},
	{"postgres", func(t *testing.T) string { return pgtest.Schema(t) }},
}

// openRaw opens the storage of storageURL beside floodtune, for what the
// CLI cannot do or show; it is closed when t ends.
func openRaw(t *testing.T, storageURL string) *sql.DB {
	t.Helper()
	var db *sql.DB
	var err error
	if path, ok := strings.CutPrefix(storageURL, "sqlite:"); ok {
		db, err = sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	} else {
		db, err = sql.Open("pgx", storageURL)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func queryInt(t *testing.T, db *sql.DB, query string) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(t.Context(), query).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// writeSpec writes the spec text into a file of t's and returns its path.
func writeSpec(t *testing.T, spec string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "spec.yaml")
	if err := os.WriteFile(path, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestEveryCommandRefusesASchemaNewerThanItKnows(t *testing.T) {
	t.Parallel()
	known := knownVersion(t)
	newer := known + 1
	want := fmt.Sprintf("the storage's schema is at version %d, newer than this floodtune knows (%d): upgrade floodtune", newer, known)
	for _, b := range cliBackends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			url, spec := b.url(t), writeSpec(t, smallSpec)
			mustSucceed(t, "study", "create", "s", "--spec", spec, "--storage", url)
			db := openRaw(t, url)
			// What a newer release leaves behind: a version this one has no
			// files for.
			if _, err := db.ExecContext(t.Context(), fmt.Sprintf(`INSERT INTO floodtune_schema_migrations (version, name, applied_at)
				SELECT %d, 'from_a_newer_release', applied_at FROM floodtune_schema_migrations WHERE version = %d`, newer, known)); err != nil {
				t.Fatal(err)
			}
			trials := queryInt(t, db, "SELECT count(*) FROM trials")

			for _, args := range [][]string{
				{"study", "create", "t", "--spec", spec},
				{"study", "optimize", "s", "--workers", "1", "--metrics-addr", ""},
				{"study", "list"},
				{"study", "show", "s"},
				{"study", "trials", "s"},
				{"study", "delete", "s", "--yes"},
				{"migrate"},
				{"migrate", "up"},
				{"migrate", "up", "--to", strconv.Itoa(known)},
				{"migrate", "down"},
				{"migrate", "down", "--yes"},
				{"migrate", "down", "--to", strconv.Itoa(known), "--yes"},
				{"migrate", "down", "--to", strconv.Itoa(known - 1), "--yes"},
			} {
				wantRefusal(t, floodtune(t, nil, append(args, "--storage", url)...), 1, want)
			}

			// status lists the version it does not know, and fails.
			r := floodtune(t, nil, "migrate", "status", "--storage", url)
			wantRefusal(t, r, 1, want)
			for v := 1; v <= known; v++ {
				if !regexp.MustCompile(fmt.Sprintf(`(?m)^%03d +\S+ +\d{4}-`, v)).MatchString(r.stdout) {
					t.Errorf("migrate status does not show %03d applied:\n%s", v, r.stdout)
				}
			}
			if !regexp.MustCompile(fmt.Sprintf(`(?m)^%03d +from_a_newer_release +\d{4}-.*unknown to this floodtune`, newer)).MatchString(r.stdout) {
				t.Errorf("migrate status does not show %03d as applied and unknown to this floodtune:\n%s", newer, r.stdout)
			}

			// Nothing was touched.
			if n := queryInt(t, db, "SELECT count(*) FROM floodtune_schema_migrations"); n != newer {
				t.Errorf("%d versions recorded, want %d", n, newer)
			}
			if n := queryInt(t, db, "SELECT count(*) FROM studies"); n != 1 {
				t.Errorf("%d studies, want the 1 created", n)
			}
			if n := queryInt(t, db, "SELECT count(*) FROM trials"); n != trials {
				t.Errorf("%d trials, want the %d there were", n, trials)
			}
		})
	}
}

func TestMigrateDownAsksBeforeDestroying(t *testing.T) {
	t.Parallel()
	known := knownVersion(t)
	for _, b := range cliBackends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			url := b.url(t)
			mustSucceed(t, "study", "create", "s", "--spec", writeSpec(t, smallSpec), "--storage", url)
			mustSucceed(t, "study", "optimize", "s", "--workers", "2", "--metrics-addr", "", "--storage", url)
			db := openRaw(t, url)
			trials := queryInt(t, db, "SELECT count(*) FROM trials")
			if trials < 2 {
				t.Fatalf("%d trials after study optimize", trials)
			}
			held := fmt.Sprintf("1 study and %d trials", trials)
			intact := func(what string) {
				t.Helper()
				if n := queryInt(t, db, "SELECT count(*) FROM floodtune_schema_migrations"); n != known {
					t.Fatalf("after %s: %d versions recorded, want %d", what, n, known)
				}
				if r := mustSucceed(t, "study", "list", "--storage", url); !strings.Contains(r.stdout, "s ") {
					t.Fatalf("after %s: the study is gone:\n%s", what, r.stdout)
				}
				if n := queryInt(t, db, "SELECT count(*) FROM trials"); n != trials {
					t.Fatalf("after %s: %d trials, want %d", what, n, trials)
				}
			}

			// Without a terminal and without --yes: refused, saying what it
			// would destroy and how to confirm.
			for _, args := range [][]string{
				{"migrate", "down"},
				{"migrate", "down", "--to", strconv.Itoa(known - 1)},
			} {
				r := floodtune(t, nil, append(args, "--storage", url)...)
				wantRefusal(t, r, 2, "without --yes")
				for _, want := range []string{held, "--yes", "no terminal"} {
					if !strings.Contains(r.stderr, want) {
						t.Errorf("%v: stderr does not name %q", r, want)
					}
				}
				intact(strings.Join(args, " "))
			}
			// Reverting nothing needs no confirmation.
			if r := mustSucceed(t, "migrate", "down", "--to", strconv.Itoa(known), "--storage", url); !strings.Contains(r.stdout, "nothing to down") {
				t.Errorf("%v", r)
			}

			// On a terminal it asks; anything but y or yes keeps the data.
			r := floodtuneOnTerminal(t, "n\n", "migrate", "down", "--storage", url)
			if r.code != 0 || !strings.Contains(r.stderr, "[y/N]") || !strings.Contains(r.stderr, held) || !strings.Contains(r.stderr, "reverted nothing") {
				t.Errorf("%v; want a question naming %q, and nothing reverted", r, held)
			}
			intact("answering n")

			r = floodtuneOnTerminal(t, "yes\n", "migrate", "down", "--storage", url)
			if r.code != 0 || !strings.Contains(r.stdout, fmt.Sprintf("reverted %03d_", known)) {
				t.Errorf("%v; want migration %03d reverted", r, known)
			}
			if r := mustSucceed(t, "migrate", "status", "--storage", url); !regexp.MustCompile(fmt.Sprintf(`(?m)^%03d +\S+ +no$`, known)).MatchString(r.stdout) {
				t.Errorf("after answering yes, %03d is still applied:\n%s", known, r.stdout)
			}

			// --yes confirms without a terminal.
			mustSucceed(t, "migrate", "up", "--storage", url)
			if r := mustSucceed(t, "migrate", "down", "--yes", "--storage", url); !strings.Contains(r.stdout, fmt.Sprintf("reverted %03d_", known)) {
				t.Errorf("%v", r)
			}
		})
	}
}

// floodtuneOnTerminal runs floodtune with a pseudo-terminal as its input,
// on which it types typed.
func floodtuneOnTerminal(t *testing.T, typed string, args ...string) result {
	t.Helper()
	master, slave := openPTY(t)
	defer master.Close()
	if _, err := master.WriteString(typed); err != nil {
		t.Fatal(err)
	}
	r := floodtune(t, slave, args...)
	slave.Close()
	return r
}

// openPTY opens a pseudo-terminal and returns its two ends. It knows the
// Linux way only (and the ioctl numbers of the common architectures).
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("openPTY opens a pseudo-terminal the Linux way only")
	}
	// _IOW('T', 0x31, int) and _IOR('T', 0x30, unsigned int) of
	// asm-generic/ioctls.h.
	const tiocsptlck, tiocgptn = 0x40045431, 0x80045430
	switch runtime.GOARCH {
	case "amd64", "386", "arm", "arm64", "riscv64", "loong64", "s390x":
	default:
		t.Skipf("openPTY does not know the ioctl numbers of %s", runtime.GOARCH)
	}
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open a pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	unlock, n := int32(0), uint32(0)
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), tiocsptlck, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		t.Fatalf("unlock the pseudo-terminal: %v", e)
	}
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), tiocgptn, uintptr(unsafe.Pointer(&n))); e != 0 {
		t.Fatalf("number the pseudo-terminal: %v", e)
	}
	slave, err = os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open the pseudo-terminal's other end: %v", err)
	}
	t.Cleanup(func() { slave.Close() })
	return master, slave
}

// appRole creates a PostgreSQL role that may log in, with a password, and
// returns its name and password. When t ends, what it was granted in each
// database of dbURLs is dropped with it.
func appRole(t *testing.T, dbURLs ...string) (role, password string) {
	t.Helper()
	role, password = "floodtune_app_"+randomHex(t), randomHex(t)
	admin(t, dbURLs[0], fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", role, password))
	t.Cleanup(func() {
		for _, u := range dbURLs {
			admin(t, u, "DROP OWNED BY "+role)
		}
		admin(t, dbURLs[0], "DROP ROLE "+role)
	})
	return role, password
}

func randomHex(t *testing.T) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// admin runs statements on the database of dbURL as pgtest's role.
func admin(t *testing.T, dbURL string, stmts ...string) {
	t.Helper()
	pgtest.Exec(t, dbURL, stmts...)
}

// grantDML gives role what an application role has on the public schema of
// the database of dbURL, and no more: USAGE on the schema, SELECT, INSERT,
// UPDATE and DELETE on its tables, USAGE on its sequences. Nobody but the
// owner may create in the schema (as PostgreSQL 15 has it, and older
// servers do not).
func grantDML(t *testing.T, dbURL, role string) {
	t.Helper()
	admin(t, dbURL,
		"REVOKE CREATE ON SCHEMA public FROM PUBLIC",
		"GRANT USAGE ON SCHEMA public TO "+role,
		"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "+role,
		"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO "+role)
}

// asRole returns dbURL with the user and password of role.
func asRole(t *testing.T, dbURL, role, password string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(role, password)
	return u.String()
}

func TestAnApplicationRoleWorksWithoutDDLRights(t *testing.T) {
	t.Parallel()
	known := knownVersion(t)
	db := pgtest.Database(t)
	role, password := appRole(t, db)

	// The owner migrates; the application role gets DML rights only.
	mustSucceed(t, "migrate", "--storage", db)
	grantDML(t, db, role)
	app := asRole(t, db, role, password)
	checkLogin(t, app, role)

	// Every command a user runs works as the application role.
	mustSucceed(t, "study", "create", "s", "--spec", writeSpec(t, smallSpec), "--storage", app)
	mustSucceed(t, "study", "optimize", "s", "--workers", "2", "--metrics-addr", "", "--storage", app)
	if r := mustSucceed(t, "study", "list", "--storage", app); !regexp.MustCompile(`(?m)^s +\S+ +4/4 +4 `).MatchString(r.stdout) {
		t.Errorf("study list does not show s with its 4 trials complete:\n%s", r.stdout)
	}
	r := mustSucceed(t, "study", "trials", "s", "--format", "json", "--storage", app)
	var trials []trialOut
	if err := json.Unmarshal([]byte(r.stdout), &trials); err != nil || len(trials) != 4 {
		t.Fatalf("study trials: %d trials, %v:\n%s", len(trials), err, r.stdout)
	}
	for _, tr := range trials {
		if tr.State != "complete" || tr.Value == nil {
			t.Errorf("trial %d: %s, value %v", tr.Number, tr.State, tr.Value)
		}
	}
	// So do migrate status and a migrate up that has nothing to do.
	if r := mustSucceed(t, "migrate", "status", "--storage", app); !regexp.MustCompile(fmt.Sprintf(`(?m)^%03d +\S+ +\d{4}-`, known)).MatchString(r.stdout) {
		t.Errorf("migrate status as the application role:\n%s", r.stdout)
	}
	if r := mustSucceed(t, "migrate", "up", "--storage", app); !strings.Contains(r.stdout, "nothing to up") {
		t.Errorf("%v", r)
	}
}

func TestAnApplicationRoleIsToldToMigrateAMissingSchema(t *testing.T) {
	t.Parallel()
	known := knownVersion(t)
	db := pgtest.Database(t)
	role, password := appRole(t, db)
	grantDML(t, db, role)
	app := asRole(t, db, role, password)
	checkLogin(t, app, role)

	want := fmt.Sprintf("the storage has no floodtune schema, this floodtune needs %d: run `floodtune migrate` with a role that may create tables", known)
	for _, args := range [][]string{
		{"study", "list"},
		{"study", "create", "s", "--spec", writeSpec(t, smallSpec)},
		{"study", "optimize", "s", "--metrics-addr", ""},
	} {
		wantRefusal(t, floodtune(t, nil, append(args, "--storage", app)...), 1, want)
	}
	// migrate itself says that this role may not.
	wantRefusal(t, floodtune(t, nil, "migrate", "--storage", app), 1, "may create tables")
	// Once the owner migrated, it works.
	mustSucceed(t, "migrate", "--storage", db)
	grantDML(t, db, role)
	mustSucceed(t, "study", "list", "--storage", app)
}

// checkLogin checks that the role can log in with roleURL and may create
// nothing in its database.
func checkLogin(t *testing.T, roleURL, role string) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), roleURL)
	if err != nil {
		t.Fatalf("the new role cannot log in (does the server's pg_hba.conf let it, with its password?): %v", err)
	}
	defer conn.Close(context.Background())
	var user string
	var mayCreate bool
	err = conn.QueryRow(t.Context(), "SELECT current_user, has_schema_privilege('public', 'CREATE') OR has_database_privilege(current_database(), 'CREATE')").Scan(&user, &mayCreate)
	if err != nil || user != role || mayCreate {
		t.Fatalf("connected as %q (want %q), may create: %v (want false), %v", user, role, mayCreate, err)
	}
}
