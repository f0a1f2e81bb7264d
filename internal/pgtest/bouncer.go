package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// BouncerPoolSize is the number of server connections that a [Bouncer]
// keeps to its database: fewer than a test's clients, so that they share
// them, as hundreds of workers share a production pool.
const BouncerPoolSize = 2

// Bouncer creates a fresh database, as [Database] does, and starts a
// throw-away PgBouncer in front of it, for the test alone: transaction
// pooling (pool_mode=transaction), BouncerPoolSize server connections, any
// client user accepted (auth_type=any), on a free port of 127.0.0.1, its
// files in a temporary directory. It returns the URL of the database
// through PgBouncer and the URL of the same database directly on the
// server (for setting things up and checking them past the pooler). The
// PgBouncer is stopped when the test ends, before the database is dropped.
//
// Through transaction pooling, consecutive transactions of one client
// connection may run on different server connections, and one server
// connection serves several clients in turn: named prepared statements,
// session-level advisory locks and SET (other than SET LOCAL) do not work
// as on a direct connection. PgBouncer refuses startup parameters it does
// not know (search_path, for one), which is why Bouncer gives a database,
// not a schema.
//
// It needs pgbouncer (PATH, then /usr/sbin/pgbouncer; Debian: apt-get
// install pgbouncer, or scripts/ensure-pgbouncer.sh): without it the test is
// skipped, or fails if CI is set.
func Bouncer(t testing.TB) (viaBouncer, direct string) {
	t.Helper()
	bin, err := findPgBouncer()
	if err != nil {
		Unavailable(t, fmt.Sprintf("pgtest: %v. Install it (Debian: apt-get install pgbouncer, or scripts/ensure-pgbouncer.sh)", err))
	}
	direct = Database(t)
	b, err := startBouncer(bin, direct)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := b.stop(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return b.url, direct
}

// findPgBouncer returns the path of pgbouncer: in PATH, else Debian's
// /usr/sbin/pgbouncer (not in the PATH of every user).
func findPgBouncer() (string, error) {
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p, nil
	}
	const debian = "/usr/sbin/pgbouncer"
	if fi, err := os.Stat(debian); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
		return debian, nil
	}
	return "", errors.New("no pgbouncer in PATH or at /usr/sbin/pgbouncer")
}

// bouncer is a running throw-away PgBouncer.
type bouncer struct {
	root   string
	cmd    *exec.Cmd
	exited <-chan struct{}
	url    string
	log    string
}

// startBouncer starts PgBouncer (bin) in front of the database of direct,
// a postgres:// URL, and waits until it serves a query through it.
func startBouncer(bin, direct string) (*bouncer, error) {
	u, err := url.Parse(direct)
	if err != nil {
		return nil, errors.New("bouncer: the database URL cannot be parsed")
	}
	dbname := strings.TrimPrefix(u.Path, "/")
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "5432"
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 { // PgBouncer refuses to run as root
		if cred, err = postgresUser(); err != nil {
			return nil, fmt.Errorf("bouncer: %w", err)
		}
	}
	root, err := os.MkdirTemp("", tmpPrefix+strconv.Itoa(os.Getpid())+"-bouncer-")
	if err != nil {
		return nil, fmt.Errorf("bouncer: make its directory: %w", err)
	}
	b := &bouncer{root: root, log: filepath.Join(root, "pgbouncer.log")}
	ok := false
	defer func() {
		if !ok {
			_ = os.RemoveAll(root)
		}
	}()
	if cred != nil {
		if err := os.Chown(root, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, fmt.Errorf("bouncer: give %s to the postgres user: %w", root, err)
		}
	}
	// The server side: the database's own user and password, if any.
	server := fmt.Sprintf("host=%s port=%s dbname=%s", host, port, dbname)
	if name := u.User.Username(); name != "" {
		server += " user=" + quoteIni(name)
	}
	if pw, has := u.User.Password(); has {
		server += " password=" + quoteIni(pw)
	}
	for attempt := 1; ; attempt++ {
		err = b.launch(bin, cred, dbname, server)
		if err == nil || attempt == 3 || !strings.Contains(err.Error(), "in use") {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	ok = true
	return b, nil
}

// quoteIni quotes a value of a PgBouncer connection string.
func quoteIni(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// launch writes the configuration for a free port and starts PgBouncer on
// it.
func (b *bouncer) launch(bin string, cred *syscall.Credential, dbname, server string) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	ini := filepath.Join(b.root, "pgbouncer.ini")
	conf := fmt.Sprintf(`[databases]
%s = %s

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
logfile = %s
auth_type = any
pool_mode = transaction
default_pool_size = %d
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 500
max_db_connections = %[5]d
server_lifetime = 3600
server_idle_timeout = 600
`, dbname, server, port, b.log, BouncerPoolSize)
	if err := os.WriteFile(ini, []byte(conf), 0o644); err != nil {
		return fmt.Errorf("bouncer: write %s: %w", ini, err)
	}
	if cred != nil {
		_ = os.Chown(ini, int(cred.Uid), int(cred.Gid))
	}
	cmd := exec.Command(bin, ini)
	cmd.Dir = b.root
	cmd.Env = serverEnv()
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	setParentDeathSignal(cmd.SysProcAttr, syscall.SIGKILL)
	exited, err := startLocked(cmd, nil)
	if err != nil {
		return fmt.Errorf("bouncer: start %s: %w", bin, err)
	}
	b.cmd, b.exited = cmd, exited
	b.url = (&url.URL{
		Scheme:   "postgres",
		User:     url.User("postgres"),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Path:     "/" + dbname,
		RawQuery: "sslmode=disable",
	}).String()

	deadline := time.Now().Add(adminTimeout)
	for {
		err := b.ping()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(b.log)
			return fmt.Errorf("bouncer: pgbouncer exited before serving (%s): %s\n%s", cmd.ProcessState, out.String(), log)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = b.stop()
			return fmt.Errorf("bouncer: pgbouncer did not serve a query within %s: %w", adminTimeout, err)
		}
	}
}

// ping runs a query through the bouncer, in the simple protocol that
// transaction pooling always serves.
func (b *bouncer) ping() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	cfg, err := pgx.ParseConfig(b.url)
	if err != nil {
		return err
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var one int
	return conn.QueryRow(ctx, "SELECT 1").Scan(&one)
}

// stop stops PgBouncer (SIGINT: at once, closing every connection) and
// removes its directory.
func (b *bouncer) stop() error {
	if b.cmd != nil {
		_ = b.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-b.exited:
		case <-time.After(10 * time.Second):
			_ = b.cmd.Process.Kill()
			<-b.exited
		}
		b.cmd = nil
	}
	if err := os.RemoveAll(b.root); err != nil {
		return fmt.Errorf("remove the throw-away PgBouncer's directory: %w", err)
	}
	return nil
}
