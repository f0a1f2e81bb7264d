package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvDatabaseURL names the environment variable that, when set, gives the
// URL of an existing server to use instead of a throw-away one.
const EnvDatabaseURL = "FLOODTUNE_TEST_DATABASE_URL"

// adminTimeout bounds each CREATE/DROP that pgtest runs for a test.
const adminTimeout = 30 * time.Second

// The server of this test binary. This is the package's only global state,
// and it cannot be avoided: one server serves all the tests of a binary, and
// TestMain (through Main) is the only place that sees the binary end.
var shared struct {
	mainCalled atomic.Bool

	once    sync.Once
	srv     *server
	err     error
	envSet  bool // the server was asked for by EnvDatabaseURL
	logOnce sync.Once

	stopOnce sync.Once
}

// Main runs the tests of m and then stops the throw-away server, if one was
// started. A package whose tests use pgtest must call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
func Main(m *testing.M) int {
	shared.mainCalled.Store(true)
	code := m.Run()
	var err error
	shared.stopOnce.Do(func() {
		if shared.srv != nil {
			err = shared.srv.stop()
		}
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// Schema creates a fresh, empty schema for the test and returns a URL whose
// connections use it (search_path=<schema>). The schema is dropped, with
// everything in it, when the test and its subtests end; close the test's
// connections before that (a t.Cleanup registered after Schema runs first).
func Schema(t testing.TB) string {
	t.Helper()
	s := get(t)
	name := newName()
	if err := s.exec("CREATE SCHEMA " + pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create schema %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := s.exec("DROP SCHEMA IF EXISTS " + pgx.Identifier{name}.Sanitize() + " CASCADE"); err != nil {
			t.Errorf("pgtest: drop schema %s (is a connection of the test still in a transaction?): %v", name, err)
		}
	})
	u := *s.admin
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String()
}

// Database creates a fresh database for the test and returns a URL of it. The
// database is dropped WITH (FORCE), closing any connection still open to it,
// when the test and its subtests end.
func Database(t testing.TB) string {
	t.Helper()
	s := get(t)
	name, u := s.createDatabase(t)
	t.Cleanup(func() {
		if err := s.exec("DROP DATABASE IF EXISTS " + pgx.Identifier{name}.Sanitize() + " WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return u
}

// createDatabase creates a fresh database on s and returns its name and a
// URL of it.
func (s *server) createDatabase(t testing.TB) (name, connURL string) {
	t.Helper()
	name = newName()
	if err := s.exec("CREATE DATABASE " + pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	u := *s.admin
	u.Path = "/" + name
	u.RawPath = ""
	q := u.Query()
	q.Del("search_path") // a schema of the admin database does not exist here
	u.RawQuery = q.Encode()
	return name, u.String()
}

// Exec runs stmts, one after another, on the database of dbURL as the
// role the URL names, and fails the test at the first that fails.
func Exec(t testing.TB, dbURL string, stmts ...string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v", Redact(dbURL), err)
	}
	defer conn.Close(ctx)
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// Redact returns a connection string fit for logs: the password of a URL
// (user:password@ or ?password=) or of a keyword/value string (password=...)
// is replaced by xxxxx. A URL that cannot be parsed is not shown at all.
func Redact(conn string) string {
	if !strings.Contains(conn, "://") {
		return kvPassword.ReplaceAllString(conn, "${1}xxxxx")
	}
	u, err := url.Parse(conn)
	if err != nil {
		return "(unparsable URL, not shown)"
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// kvPassword matches the value of password= in a keyword/value connection
// string, quoted (with backslash escapes, as libpq reads it) or not.
var kvPassword = regexp.MustCompile(`(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s]*)`)

// get returns the server of the test binary, starting it on first use, or
// ends the test (skip, or fail in CI) when there is none.
func get(t testing.TB) *server {
	t.Helper()
	if !shared.mainCalled.Load() {
		t.Fatalf("pgtest: the package's TestMain must call pgtest.Main: func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }")
	}
	shared.once.Do(func() {
		shared.srv, shared.envSet, shared.err = start()
	})
	if err := shared.err; err != nil {
		switch {
		case shared.envSet:
			t.Fatalf("pgtest: %s is set but unusable: %v", EnvDatabaseURL, err)
		default:
			Unavailable(t, fmt.Sprintf("pgtest: no PostgreSQL server: %v. Install the server (Debian: apt-get install postgresql, "+
				"or scripts/ensure-postgres.sh) or set %s=postgres://user:password@host:5432/db (a role that may create "+
				"schemas and databases)", err, EnvDatabaseURL))
		}
	}
	shared.logOnce.Do(func() { t.Logf("pgtest: using %s", shared.srv.desc) })
	return shared.srv
}

// Unavailable ends a test that lacks what it needs (why says what and how
// to get it): the test is skipped, or fails when CI is set, for there no
// test may be skipped silently.
func Unavailable(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s; CI is set, so the test may not be skipped", why)
	}
	t.Skipf("skipped: %s", why)
}

// server is a PostgreSQL server that tests may create schemas and databases
// on.
type server struct {
	admin *url.URL // a superuser's connection to an existing database
	desc  string   // what to log; never holds a password

	// Only for a throw-away server.
	root   string          // temporary directory: data/, socket, log
	cmd    *exec.Cmd       // the postmaster
	exited <-chan struct{} // closed when cmd has exited
	bin    string          // where postgres is
	data   string          // the data directory
	cred   *syscall.Credential
	port   int
	listen []netip.Prefix // besides 127.0.0.1 (see Dedicated)
}

// exec runs one statement on a new admin connection.
func (s *server) exec(sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.admin.String())
	if err != nil {
		return fmt.Errorf("connect to %s: %w", Redact(s.admin.String()), err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	return nil
}

// newName returns a fresh identifier for a schema or database.
func newName() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return "t_" + hex.EncodeToString(b)
}

// start returns the server given by EnvDatabaseURL or else a new throw-away
// one; envSet reports whether the variable was set.
func start() (s *server, envSet bool, err error) {
	if raw := os.Getenv(EnvDatabaseURL); raw != "" {
		s, err := external(raw)
		return s, true, err
	}
	s, err = throwAway()
	return s, false, err
}

// external checks the server of raw, a postgres:// URL.
func external(raw string) (*server, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || (u.Host == "" && u.Query().Get("host") == "") {
		// url.Parse's error would quote the URL, password included.
		return nil, errors.New("want a URL like postgres://user:password@host:5432/db")
	}
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	version, err := serverVersion(ctx, u.String())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Redact(raw), err)
	}
	return &server{
		admin: u,
		desc:  fmt.Sprintf("PostgreSQL %s at %s (from $%s)", version, Redact(raw), EnvDatabaseURL),
	}, nil
}

// serverVersion connects to connURL and returns the server's version.
func serverVersion(ctx context.Context, connURL string) (string, error) {
	conn, err := pgx.Connect(ctx, connURL)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	var v string
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&v); err != nil {
		return "", fmt.Errorf("ask the server version: %w", err)
	}
	return v, nil
}

// tmpPrefix starts the names of the throw-away servers' directories; the
// test binary's pid follows, so that a later run can tell a directory left
// behind by a dead binary.
const tmpPrefix = "floodtune-pgtest-"

// throwAway initialises and starts a server in a temporary directory. It
// listens on 127.0.0.1 and on the address of each of listen, and trusts
// 127.0.0.1 and, if listen is not empty, the networks of listen.
func throwAway(listen ...netip.Prefix) (*server, error) {
	t0 := time.Now()
	bin, err := findBinDir()
	if err != nil {
		return nil, err
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		if cred, err = postgresUser(); err != nil {
			return nil, err
		}
	}
	removeStale()
	root, err := os.MkdirTemp("", tmpPrefix+strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return nil, fmt.Errorf("make the server's directory: %w", err)
	}
	s := &server{root: root}
	ok := false
	defer func() {
		if !ok {
			_ = os.RemoveAll(root)
		}
	}()
	if cred != nil {
		if err := os.Chown(root, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, fmt.Errorf("give %s to the postgres user: %w", root, err)
		}
	}
	data := filepath.Join(root, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres",
		"--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
	initdb.Dir = root
	initdb.Env = serverEnv()
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("%s: %w\n%s", strings.Join(initdb.Args, " "), err, out)
	}
	if len(listen) > 0 {
		if err := trustOnly(data, listen); err != nil {
			return nil, err
		}
	}
	tInit := time.Since(t0)

	// The port is free when chosen but may be taken before postgres binds
	// it: then try another.
	s.bin, s.data, s.cred, s.listen = bin, data, cred, listen
	for attempt := 1; ; attempt++ {
		err = s.launch(0)
		if err == nil || attempt == 3 || !strings.Contains(err.Error(), "already in use") {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	version, err := serverVersion(ctx, s.admin.String())
	if err != nil {
		_ = s.stop()
		return nil, fmt.Errorf("throw-away server: %w", err)
	}
	s.desc = fmt.Sprintf("throw-away PostgreSQL %s at %s (%s; initdb took %s, ready after %s; directory %s)",
		version, s.admin, bin, tInit.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond), root)
	ok = true
	return s, nil
}

// launch starts postgres on port (0: a free one) and waits until it
// accepts connections.
func (s *server) launch(port int) error {
	bin, data, cred := s.bin, s.data, s.cred
	if port == 0 {
		p, err := freePort()
		if err != nil {
			return err
		}
		port = p
	}
	s.port = port
	// A Unix socket path is limited to about 100 bytes; TCP is enough.
	sockDir := s.root
	if len(sockDir)+len("/.s.PGSQL.65535") > 100 {
		sockDir = ""
	}
	logPath := filepath.Join(s.root, "postgres-"+strconv.Itoa(port)+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("create the server log: %w", err)
	}
	addrs := []string{"127.0.0.1"}
	for _, p := range s.listen {
		addrs = append(addrs, p.Addr().String())
	}
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(port), "-k", sockDir,
		"-c", "listen_addresses="+strings.Join(addrs, ","),
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200")
	cmd.Dir = s.root
	cmd.Env = serverEnv()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	// If the test binary dies without Main stopping the server, the kernel
	// sends the postmaster SIGQUIT (immediate shutdown).
	setParentDeathSignal(cmd.SysProcAttr, syscall.SIGQUIT)

	exited, err := startLocked(cmd, func() { logFile.Close() })
	if err != nil {
		return fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	s.cmd, s.exited = cmd, exited
	s.admin = &url.URL{
		Scheme:   "postgres",
		User:     url.User("postgres"),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Path:     "/postgres",
		RawQuery: "sslmode=disable",
	}

	deadline := time.Now().Add(adminTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, s.admin.String())
		cancel()
		if err == nil {
			_ = conn.Close(context.Background())
			return nil
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(logPath)
			return fmt.Errorf("postgres exited before accepting connections (%s):\n%s", cmd.ProcessState, log)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.shutdown()
			log, _ := os.ReadFile(logPath)
			return fmt.Errorf("postgres did not accept connections within %s: %w\n%s", adminTimeout, err, log)
		}
	}
}

// stop shuts a throw-away server down and removes its directory. It does
// nothing to an external server.
func (s *server) stop() error {
	if s.cmd == nil {
		return nil
	}
	s.shutdown()
	if err := os.RemoveAll(s.root); err != nil {
		return fmt.Errorf("remove the throw-away server's directory: %w", err)
	}
	return nil
}

// shutdown stops the postmaster: fast shutdown, then kill.
func (s *server) shutdown() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd = nil
}

// Restart stops the test binary's throw-away server (a fast shutdown: every
// connection is cut) and starts it again on the same port and data, as a
// database restart in production does. A test that calls it must not run in
// parallel with other tests of its binary. With FLOODTUNE_TEST_DATABASE_URL
// set, the server is not pgtest's to restart: the test fails in CI and is
// skipped elsewhere.
func Restart(t testing.TB) {
	t.Helper()
	s := get(t)
	if s.cmd == nil {
		Unavailable(t, fmt.Sprintf("pgtest: the server of %s is not pgtest's to restart; unset it to test restarts", EnvDatabaseURL))
	}
	s.shutdown()
	if err := s.launch(s.port); err != nil {
		t.Fatalf("pgtest: restart the server: %v", err)
	}
}

// setParentDeathSignal sets attr.Pdeathsig where the platform has it (Linux),
// without a file per platform.
func setParentDeathSignal(attr *syscall.SysProcAttr, sig syscall.Signal) {
	if f := reflect.ValueOf(attr).Elem().FieldByName("Pdeathsig"); f.IsValid() && f.CanSet() {
		f.Set(reflect.ValueOf(sig))
	}
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// findBinDir returns the directory of initdb and postgres: that of initdb in
// PATH, else the highest version under /usr/lib/postgresql (Debian).
func findBinDir() (string, error) {
	has := func(dir string) bool {
		for _, name := range []string{"initdb", "postgres"} {
			if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
				return false
			}
		}
		return true
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		if dir := filepath.Dir(p); has(dir) {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { // highest version first
		return compareVersions(filepath.Base(filepath.Dir(b)), filepath.Base(filepath.Dir(a)))
	})
	for _, dir := range dirs {
		if has(dir) {
			return dir, nil
		}
	}
	return "", errors.New("no PostgreSQL server binaries (initdb, postgres) in PATH or /usr/lib/postgresql/*/bin")
}

// compareVersions compares dotted versions such as 9.6 and 15 numerically.
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) || i < len(bs); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			return x - y
		}
	}
	return 0
}

// postgresUser returns the credentials of the postgres OS user, under which
// the binaries run when the tests run as root.
func postgresUser() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, which PostgreSQL refuses, and no postgres OS user to run it as "+
			"(Debian's postgresql package creates one): %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("postgres OS user: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// serverEnv is the environment of initdb and postgres: ours without PG*
// variables and with the C locale, which every system has.
func serverEnv() []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG")
	})
	return append(env, "LC_ALL=C")
}

// removeStale removes the directories of throw-away servers whose test
// binary died before it could (killed, or a TestMain without Main).
func removeStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), tmpPrefix+"*"))
	for _, dir := range dirs {
		rest := strings.TrimPrefix(filepath.Base(dir), tmpPrefix)
		pid, err := strconv.Atoi(rest[:max(strings.IndexByte(rest, '-'), 0)])
		if err != nil || pid == os.Getpid() || alive(pid) {
			continue
		}
		// Leave a server that still runs alone, whoever started it.
		if b, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid")); err == nil {
			first, _, _ := strings.Cut(string(b), "\n")
			if p, err := strconv.Atoi(strings.TrimSpace(first)); err == nil && alive(p) {
				continue
			}
		}
		_ = os.RemoveAll(dir)
	}
}

// alive reports whether process pid exists.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// startLocked starts cmd, whose SysProcAttr asks for a parent-death signal,
// and returns a channel closed when it has exited; after, if not nil, runs
// then. The parent-death signal fires when the thread that started the
// child ends (go.dev/issue/27505), so the child is started, and waited for,
// from a locked thread that lives as long as it does.
func startLocked(cmd *exec.Cmd, after func()) (<-chan struct{}, error) {
	started := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if after != nil {
			defer after()
		}
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(exited)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return exited, nil
}
