package storage

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
	sqlite3 "modernc.org/sqlite/lib"
)

// DefaultURL is the storage used when none is given.
const DefaultURL = "sqlite:floodtune.db"

// Errors of the storage's concern; compare with errors.Is.
var (
	ErrNotFound        = errors.New("not found")
	ErrStudyExists     = errors.New("a study with that name already exists")
	ErrBudgetExhausted = errors.New("the study's trial budget is spent")
	ErrLeaseLost       = errors.New("the trial is no longer running under this worker")
	ErrNotUpdatable    = errors.New("the trial cannot be updated in its state")
	ErrBadURL          = errors.New("bad storage URL")
	// ErrUnavailable is a storage that cannot be reached: Open could not
	// connect to the PostgreSQL server or open the SQLite file (an I/O
	// error, a file it may not write; a missing directory is ErrBadURL), or
	// an operation
	// kept failing on transient errors (a lost connection, a server that
	// refuses connections, a database locked by another process) for the
	// whole retry window. Trying again later may succeed. An error that is
	// ErrUnavailable also wraps the driver's error (errors.As finds a
	// *pgconn.ConnectError, a *pgconn.PgError, ...). When the caller's
	// context ends first, the error is not ErrUnavailable: the caller gave
	// up, not the storage.
	ErrUnavailable = errors.New("storage unavailable")
)

// Direction says whether a study minimises or maximises its objective.
type Direction string

// The directions.
const (
	Minimize Direction = "minimize"
	Maximize Direction = "maximize"
)

// State is a trial's state.
type State string

// The states of a trial. Waiting trials wait to be claimed; complete,
// pruned and fail are final.
const (
	Waiting  State = "waiting"
	Running  State = "running"
	Complete State = "complete"
	Pruned   State = "pruned"
	Fail     State = "fail"
)

// Final reports whether s is a final state.
func (s State) Final() bool { return s == Complete || s == Pruned || s == Fail }

// AttrKind separates attributes set by users from those set by floodtune
// and Goptuna.
type AttrKind string

// The attribute kinds.
const (
	UserAttr   AttrKind = "user"
	SystemAttr AttrKind = "system"
)

// Study is a stored study.
type Study struct {
	ID          int64
	Name        string
	Direction   Direction
	Spec        json.RawMessage // the study's spec, as given
	Budget      int             // trials that may count; 0 means no limit
	Seed        int64
	CreatedAt   time.Time
	UserAttrs   map[string]string
	SystemAttrs map[string]string
}

// NewStudy describes a study to create.
type NewStudy struct {
	Name      string
	Direction Direction
	Spec      json.RawMessage // nil means {}
	Budget    int
	Seed      int64
	// Trials are waiting trials created with the study, in the same
	// transaction (a baseline to run first, for example).
	Trials []NewTrial
}

// Param is one parameter of a trial in Goptuna's terms: its internal value
// and its distribution as Goptuna's JSON.
type Param struct {
	Value        float64
	Distribution json.RawMessage
}

// Trial is a stored trial.
type Trial struct {
	ID          int64
	StudyID     int64
	Number      int
	State       State
	Value       float64 // NaN when no value was set
	StartedAt   time.Time
	CompletedAt time.Time
	Worker      string
	HeartbeatAt time.Time
	Attempt     int   // 0 for a first run, n for its n-th retry
	RetryOf     int64 // the trial this one retries, 0 if none
	RetriedBy   int64 // the trial that retries this one, 0 if none
	Params      map[string]Param
	// Intermediate holds the values reported per step (NaN stays NaN).
	Intermediate map[int]float64
	UserAttrs    map[string]string
	SystemAttrs  map[string]string
}

// HasValue reports whether a value was set.
func (t *Trial) HasValue() bool { return !math.IsNaN(t.Value) }

// NewTrial describes a trial to create. State is Running (claimed by Worker
// at once) or Waiting (enqueued); a trial copied from elsewhere may also be
// created in a final state.
type NewTrial struct {
	State        State
	Worker       string
	Value        float64 // NaN: none
	Params       map[string]Param
	Intermediate map[int]float64
	UserAttrs    map[string]string
	SystemAttrs  map[string]string
}

// retryWindow is how long an operation is retried after transient errors
// (a lost connection, a serialization failure, a busy database) before its
// error is returned.
const retryWindow = 15 * time.Second

// Store is a study and trial store on one database. It is safe for
// concurrent use.
type Store struct {
	db   *sql.DB
	pool *pgxpool.Pool // PostgreSQL only
	d    *dialect
	url  string // redacted
	// pooled: the server connections are shared between clients (a
	// transaction-pooling PgBouncer): no statement is prepared.
	pooled bool
	// lockWait bounds the wait for the migration lock and for the locks
	// that a migration's statements take.
	lockWait time.Duration
	// retryFor bounds how long an operation is retried after transient
	// errors.
	retryFor time.Duration
	final    *finalCache
}

// Option configures Open.
type Option func(*options)

type options struct {
	migrate  bool
	lockWait time.Duration
	// mustExist and persistent: see MustExist and Persistent.
	mustExist, persistent bool
}

// MustExist makes Open refuse a SQLite file that does not exist instead of
// creating an empty database there: the error is ErrNoStorage, and nothing
// is created. For programs that only read what is stored. PostgreSQL
// databases are never created, so it changes nothing for them.
func MustExist() Option { return func(o *options) { o.mustExist = true } }

// Persistent makes Open refuse, as ErrBadURL, a storage that ends with the
// process that opened it (sqlite::memory:): for programs, such as the CLI,
// whose commands each run in a process of their own.
func Persistent() Option { return func(o *options) { o.persistent = true } }

// ErrNoStorage is a SQLite file that does not exist, opened with MustExist.
var ErrNoStorage = errors.New("no storage")

// DefaultMigrationLockWait is how long Open and Migrate wait for the
// migration lock that another process holds (and, on PostgreSQL, for each
// lock that a migration's statements need) before they give up with a
// *LockError. MigrationLockWait changes it.
const DefaultMigrationLockWait = 30 * time.Second

// MigrationLockWait sets how long Open and Migrate wait for the migration
// lock, and for the table locks that a migration needs, before they give up
// with a *LockError that names the sessions holding them (d <= 0: the
// default, DefaultMigrationLockWait).
func MigrationLockWait(d time.Duration) Option { return func(o *options) { o.lockWait = d } }

// WithoutMigration opens the store without reading or migrating its schema
// (for `floodtune migrate`, which does it explicitly, and reports a schema
// newer than this floodtune itself).
func WithoutMigration() Option { return func(o *options) { o.migrate = false } }

// Open connects to the storage named by rawURL and, unless told otherwise
// (WithoutMigration), makes sure its schema is the one this floodtune
// knows:
//
//	postgres://user[:password]@host[:port]/database[?param=value]
//	postgresql://...        (the password may also come from PGPASSWORD)
//	host=... dbname=...     (PostgreSQL's keyword/value form)
//	sqlite:PATH             (a file, created if missing; sqlite::memory: for a private in-memory store)
//
// A PostgreSQL URL (or keyword/value string) may say how a connection
// pooler in front of the server shares its connections, in a parameter
// that floodtune reads and does not pass on:
//
//	pgbouncer=transaction   server connections are shared between clients
//	                        transaction by transaction (PgBouncer's
//	                        pool_mode=transaction): no statement is prepared
//	pgbouncer=session       each client keeps its server connection (a
//	                        direct connection, or pool_mode=session):
//	                        statements are prepared and cached
//
// Without it, Open finds out: a server process that is not the one the
// connection started with (the pid of the connection's cancel key is not
// pg_backend_pid()) means a pooler in between, and Open then works as with
// pgbouncer=transaction. PgBouncer's pool_mode=statement cannot run
// floodtune's transactions and is refused.
//
// A PostgreSQL connection attempt gives up after connect_timeout seconds
// (10 when the URL sets none, or 0). PATH is a file's name, taken as it is:
// no character in it is special (not %, ?, #), and its directory must
// exist. MustExist and Persistent make Open stricter.
//
// Open first reads the schema's version, creating nothing, and does no more
// when the schema is current: a PostgreSQL role with no right to create
// tables (SELECT, INSERT, UPDATE and DELETE on floodtune's tables, USAGE on
// the schema and the sequences) can work. When the schema is missing or
// older, Open migrates it up (a fresh SQLite file, or a database the user
// owns, needs nothing else); when the role may not, the error is a
// *SchemaError that is ErrSchemaOutdated and says to run `floodtune
// migrate` with a role that may. A schema that a newer floodtune migrated
// is a *SchemaError that is ErrSchemaNewer: Open touches nothing.
//
// A URL that cannot be used is ErrBadURL; a storage that cannot be reached is
// ErrUnavailable. The text of Open's errors never shows a password, but the
// driver's error that they wrap keeps its own text, which is not redacted
// (and a *pgconn.ConnectError holds the whole configuration): print the
// error Open returns, never what errors.As or Unwrap find in it.
func Open(ctx context.Context, rawURL string, opts ...Option) (*Store, error) {
	o := options{migrate: true}
	for _, f := range opts {
		f(&o)
	}
	if o.lockWait <= 0 {
		o.lockWait = DefaultMigrationLockWait
	}
	var s *Store
	var err error
	switch scheme, rest, _ := strings.Cut(rawURL, ":"); strings.ToLower(scheme) {
	case "postgres", "postgresql":
		s, err = openPostgres(ctx, rawURL)
	case "sqlite", "sqlite3":
		s, err = openSQLite(ctx, rest, o)
	default:
		if isKeywordValue(rawURL) { // host=... dbname=..., as libpq and pgx take it
			s, err = openPostgres(ctx, rawURL)
			break
		}
		return nil, fmt.Errorf("%w %q: the scheme must be postgres://, postgresql:// or sqlite: (or a PostgreSQL keyword/value string such as host=db dbname=floodtune)", ErrBadURL, Redact(rawURL))
	}
	if err != nil {
		return nil, err
	}
	s.lockWait = o.lockWait
	if o.migrate {
		if err := s.ensureSchema(ctx); err != nil {
			s.Close()
			return nil, pooledHint(err)
		}
	}
	return s, nil
}

// defaultConnectTimeout bounds a PostgreSQL connection attempt when the URL
// sets no connect_timeout (or 0, which libpq reads as "wait forever"): a
// server that accepts the connection and never answers would otherwise hold
// Open, and every command, for as long as the kernel keeps the connection.
const defaultConnectTimeout = 10 * time.Second

func openPostgres(ctx context.Context, rawURL string) (*Store, error) {
	red := Redact(rawURL)
	cfg, pooling, err := postgresSetup(rawURL)
	if err != nil {
		return nil, err
	}
	failed := func(err error) error {
		msg := "connect to " + oneLine(red) + ": " + connectMessage(err, rawURL)
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			msg += fmt.Sprintf(" (no answer within the connect_timeout of %v)", cfg.ConnConfig.ConnectTimeout)
		}
		return unreachable(ctx, msg, err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, failed(err)
	}
	if pooling == "" {
		// Not told: find out whether a pooler shares the server
		// connections, on the connection that Ping would have made.
		shared, err := sharedServer(ctx, pool)
		if err != nil {
			pool.Close()
			return nil, failed(err)
		}
		if shared {
			pool.Close()
			pooling = poolTransaction
			unprepared(cfg)
			if pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
				return nil, failed(err)
			}
		}
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, failed(err)
	}
	return &Store{db: stdlib.OpenDBFromPool(pool), pool: pool, d: postgresDialect, url: red, retryFor: retryWindow,
		final: newFinalCache(), pooled: pooling == poolTransaction}, nil
}

// poolParam is the parameter of a PostgreSQL URL or keyword/value string
// that says how a pooler in front of the server shares its connections
// (see Open). floodtune takes it out before pgx reads the rest, which would
// send it to the server as a run-time parameter.
const poolParam = "pgbouncer"

// The values of poolParam.
const (
	poolTransaction = "transaction"
	poolSession     = "session"
)

// pooledExecMode is how queries run when the server connections are
// shared transaction by transaction: each in one round trip of the
// extended protocol, through the unnamed statement and with its parameters
// as text, so that nothing outlives the transaction on the server
// connection (a named prepared statement would stay on it, where another
// client meets it: "prepared statement ... already exists", or misses it:
// "... does not exist"). PgBouncer before 1.21 serves that; the simple
// protocol works too, but interpolates the parameters on the client.
const pooledExecMode = pgx.QueryExecModeExec

// unprepared makes cfg prepare no statement, unless its query exec mode
// already prepares none and keeps no description across round trips.
func unprepared(cfg *pgxpool.Config) {
	switch cfg.ConnConfig.DefaultQueryExecMode {
	case pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheDescribe:
	default: // cache_statement (pgx's default), describe_exec (two round trips, which a pooler may split)
		cfg.ConnConfig.DefaultQueryExecMode = pooledExecMode
	}
}

// sharedServer reports whether the server connections of pool are shared
// with other clients: a pooler answers a connection with a cancel key of
// its own, so the pid the connection started with is not the pid of the
// server process that runs its query. The query prepares nothing.
func sharedServer(ctx context.Context, pool *pgxpool.Pool) (bool, error) {
	c, err := pool.Acquire(ctx)
	if err != nil {
		return false, err
	}
	defer c.Release()
	var pid int64
	if err := c.QueryRow(ctx, `SELECT pg_backend_pid()`, pgx.QueryExecModeSimpleProtocol).Scan(&pid); err != nil {
		return false, err
	}
	return uint32(pid) != c.Conn().PgConn().PID(), nil
}

// ErrTransactionPooling is a statement that floodtune prepared on a server
// connection that a pooler then gave to another client, or that it looked
// for on one where it had not prepared it: the storage URL lacks
// pgbouncer=transaction, or says pgbouncer=session, in front of a
// transaction-pooling PgBouncer.
var ErrTransactionPooling = errors.New("the server connections are shared between clients (a PgBouncer or other pooler in transaction mode), where prepared statements do not work: add pgbouncer=transaction to the storage URL")

// pooledHint returns err, and ErrTransactionPooling beside it when err is
// a prepared statement of pgx's cache that the server connection did not
// have or already had.
func pooledHint(err error) error {
	var pe *pgconn.PgError
	if err == nil || errors.Is(err, ErrTransactionPooling) || !errors.As(err, &pe) {
		return err
	}
	if (pe.Code == "42P05" || pe.Code == "26000") && strings.Contains(pe.Message, "stmtcache_") {
		return fmt.Errorf("%w (%w)", ErrTransactionPooling, err)
	}
	return err
}

// TransactionPooled reports whether the store prepares no statements
// because its server connections are shared between clients transaction by
// transaction: the URL says pgbouncer=transaction, or Open found a pooler
// in between. It is false for SQLite.
func (s *Store) TransactionPooled() bool { return s.pooled }

// postgresConfig reads a PostgreSQL URL or keyword/value string as Open
// connects with it. Its errors are ErrBadURL and show no password.
func postgresConfig(rawURL string) (*pgxpool.Config, error) {
	cfg, _, err := postgresSetup(rawURL)
	return cfg, err
}

// postgresSetup is postgresConfig, and also returns the value of
// poolParam: "" when the URL does not say, else poolTransaction (cfg then
// prepares nothing) or poolSession.
func postgresSetup(rawURL string) (*pgxpool.Config, string, error) {
	cfg, err := parsePostgres(rawURL)
	if err != nil {
		return nil, "", err
	}
	pooling, said := cfg.ConnConfig.RuntimeParams[poolParam]
	delete(cfg.ConnConfig.RuntimeParams, poolParam)
	switch p := strings.ToLower(strings.TrimSpace(pooling)); {
	case !said:
	case p == poolTransaction:
		pooling = p
		unprepared(cfg)
	case p == poolSession:
		pooling = p
	case p == "statement":
		return nil, "", fmt.Errorf("%w %q: %s=statement: floodtune runs transactions of several statements, which statement pooling refuses; "+
			"put floodtune on a PgBouncer database with pool_mode=transaction and say %s=transaction", ErrBadURL, Redact(rawURL), poolParam, poolParam)
	default:
		return nil, "", fmt.Errorf("%w %q: %s=%q: want %s=transaction (a PgBouncer in transaction-pooling mode) or %s=session (a direct connection, or session pooling)",
			ErrBadURL, Redact(rawURL), poolParam, pooling, poolParam, poolParam)
	}
	return cfg, pooling, nil
}

func parsePostgres(rawURL string) (*pgxpool.Config, error) {
	conn := rawURL
	if scheme, rest, ok := strings.Cut(rawURL, "://"); ok && isScheme(scheme) {
		// pgx knows a URL by its scheme in lower case only.
		conn = strings.ToLower(scheme) + "://" + rest
		if why := strayAt(rest); why != "" {
			return nil, fmt.Errorf("%w %q: %s", ErrBadURL, Redact(rawURL), why)
		}
	}
	cfg, err := pgxpool.ParseConfig(conn)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %s", ErrBadURL, Redact(rawURL), parseMessage(err, rawURL))
	}
	if cfg.ConnConfig.Password == "" {
		cfg.ConnConfig.Password = os.Getenv("PGPASSWORD")
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		// pgx gives each address (127.0.0.1 and ::1 of localhost, say)
		// this long.
		cfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	if cfg.MaxConns < 8 {
		cfg.MaxConns = 8
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "floodtune"
	return cfg, nil
}

// strayAt says why a PostgreSQL URL (rest follows its scheme://) is refused
// for an @ out of place, "" when it has none. pgx, like libpq, ends the user
// name and password at the first @ or /, where url.Parse and most readers
// take the last @: pgx reads postgres://u:p@ss@host/db as the host "ss@host"
// and postgres://u:p/ss@host/db as the host "u" and the database
// "ss@host/db", and the errors that name them would show pieces of the
// password.
func strayAt(rest string) string {
	if i := strings.IndexAny(rest, "@/"); i >= 0 && rest[i] == '@' {
		rest = rest[i+1:]
	}
	if strings.Contains(rest, "@") {
		return "an @ after the one that ends user:password@: write an @ of the password (or of any other part) as %40, and a / of the password as %2F"
	}
	return ""
}

// parseMessage is the text of pgx's error about a connection string that it
// cannot parse, without the string, which pgx can only partly redact, and
// cleared of rawURL's passwords.
func parseMessage(err error, rawURL string) string {
	msg := err.Error()
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		bare := *pe
		bare.ConnString = ""
		msg = strings.TrimPrefix(bare.Error(), "cannot parse ``: ")
	}
	return scrub(msg, rawURL)
}

// connectMessage is the text of pgx's error about a connection that failed,
// on one line: pgx tries each address of each host (and each twice, with
// TLS and without, under the default sslmode=prefer) and joins the errors
// with newlines; each distinct attempt's reason appears once, in order,
// separated by "; ". It is cleared of rawURL's passwords.
func connectMessage(err error, rawURL string) string {
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) && ce.Unwrap() != nil {
		err = ce.Unwrap() // without pgx's "failed to connect to `user=... database=...`", which the URL says
	}
	var parts []string
	seen := map[string]bool{}
	for _, a := range attempts(err) {
		if !seen[a] {
			seen[a] = true
			parts = append(parts, a)
		}
	}
	return scrub(strings.Join(parts, "; "), rawURL)
}

// attempts splits an error that joins several (errors.Join) into their
// texts, each on one line; a prefix that wraps them goes before each.
func attempts(err error) []string {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []string
		for _, e := range j.Unwrap() {
			if e != nil {
				out = append(out, attempts(e)...)
			}
		}
		return out
	}
	msg := err.Error()
	if !strings.Contains(msg, "\n") {
		return []string{msg}
	}
	if inner := errors.Unwrap(err); inner != nil {
		if prefix, ok := strings.CutSuffix(msg, inner.Error()); ok {
			out := attempts(inner)
			for i := range out {
				out[i] = prefix + out[i]
			}
			return out
		}
	}
	var out []string
	for _, line := range strings.Split(msg, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	return out
}

func openSQLite(ctx context.Context, path string, o options) (*Store, error) {
	path = strings.TrimPrefix(path, "//")
	if path == "" {
		return nil, fmt.Errorf("%w %q: want sqlite:PATH", ErrBadURL, "sqlite:")
	}
	memory := path == ":memory:"
	q := url.Values{}
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Set("_txlock", "immediate") // writers queue at BEGIN, never deadlock on upgrade
	var dsn string
	switch {
	case memory && o.persistent:
		return nil, fmt.Errorf("%w %q: an in-memory database ends with the process that opened it: name a file (sqlite:PATH) or a PostgreSQL server", ErrBadURL, "sqlite:"+path)
	case memory:
		dsn = "file::memory:?" + q.Encode()
	default:
		if err := checkSQLitePath(path, o.mustExist); err != nil {
			return nil, err
		}
		if o.mustExist {
			q.Set("mode", "rw") // SQLite's: read and write, never create
		}
		dsn = sqliteDSN(path, q)
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite:%s: %w", path, err)
	}
	if memory {
		// One connection, or each would see its own empty database.
		db.SetMaxOpenConns(1)
	}
	st := &Store{db: db, d: sqliteDialect, url: "sqlite:" + path, retryFor: retryWindow, final: newFinalCache()}
	// A new connection switches the file to WAL, which can meet another
	// process doing the same and be refused as busy: try again.
	if err := st.retry(ctx, "open sqlite:"+path, func(ctx context.Context) error { return db.PingContext(ctx) }); err != nil {
		db.Close()
		if sqliteUnreachable(err) {
			err = unreachable(ctx, oneLine(err.Error()), err)
		}
		return nil, err
	}
	return st, nil
}

// sqliteDSN returns the driver's DSN that opens the file named path, whatever
// characters the name holds, with the parameters q. The driver hands a
// "file:" DSN to SQLite as a URI, in which %, ? and # are special (and the
// driver cuts its own parameters at the first ?): they are percent-encoded.
// An absolute path gets the empty authority (file:///...) so that one that
// starts with // is not read as a host.
func sqliteDSN(path string, q url.Values) string {
	var b strings.Builder
	b.WriteString("file:")
	if strings.HasPrefix(path, "/") {
		b.WriteString("//")
	}
	for i := 0; i < len(path); i++ {
		switch c := path[i]; c {
		case '%', '?', '#':
			fmt.Fprintf(&b, "%%%02X", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('?')
	b.WriteString(q.Encode())
	return b.String()
}

// checkSQLitePath refuses, as ErrBadURL, a path that can never be a
// database file: one with a NUL byte, a directory, a file in a directory
// that does not exist or under a file; and, when mustExist, a file that does
// not exist, as ErrNoStorage. Other trouble (a directory it may not read) is
// left for SQLite to report.
func checkSQLitePath(path string, mustExist bool) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w %q: %s", ErrBadURL, "sqlite:"+path, fmt.Sprintf(format, a...))
	}
	if strings.IndexByte(path, 0) >= 0 {
		return bad("a file name cannot hold a NUL byte")
	}
	fi, err := os.Stat(path)
	switch {
	case err == nil && fi.IsDir():
		return bad("%s is a directory, not a database file", path)
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrNotExist) && mustExist:
		return fmt.Errorf("%w at %s", ErrNoStorage, path)
	case errors.Is(err, fs.ErrNotExist):
		dir := filepath.Dir(path)
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			return bad("the directory %s does not exist", dir)
		}
		return nil
	case errors.Is(err, syscall.ENOTDIR):
		for dir := filepath.Dir(path); ; dir = filepath.Dir(dir) {
			if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
				return bad("%s is a file, not a directory", dir)
			}
			if dir == filepath.Dir(dir) {
				return bad("a directory of the path is a file")
			}
		}
	}
	return nil
}

// sqliteUnreachable reports whether err, of opening a SQLite file, is one of
// the file's place rather than of its contents or of the URL: the file or
// its directory cannot be opened or written, or reading or writing it failed.
// A file that is not a database, or a bad parameter, is not.
func sqliteUnreachable(err error) bool {
	switch sqliteCode(err) & 0xff {
	case sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_PERM, sqlite3.SQLITE_READONLY,
		sqlite3.SQLITE_FULL, sqlite3.SQLITE_NOMEM:
		return true
	}
	return false
}

// openError is an error of Open that could not reach the storage. Its text
// is msg, which the caller has cleared of passwords; it unwraps to errs, the
// driver's error and ErrUnavailable (or the context's error when the
// caller's context ended), so that errors.Is and errors.As see all of them.
// The driver's error keeps its own text, which is not redacted: print the
// openError, never what it unwraps to.
type openError struct {
	msg  string
	errs []error
}

func (e *openError) Error() string   { return e.msg }
func (e *openError) Unwrap() []error { return e.errs }

// unreachable returns the error of Open that could not reach the storage:
// msg, free of passwords, for its text, wrapping err, the driver's error,
// and ErrUnavailable unless ctx has ended: then the context's error, for the
// caller gave up before the storage did.
func unreachable(ctx context.Context, msg string, err error) error {
	e := &openError{msg: msg, errs: []error{ErrUnavailable, err}}
	if cerr := ctx.Err(); cerr != nil {
		e.errs = []error{err}
		if !errors.Is(err, cerr) {
			e.errs = append(e.errs, cerr)
		}
	}
	return e
}

// Close releases the store's connections.
func (s *Store) Close() error {
	err := s.db.Close()
	if s.pool != nil {
		s.pool.Close()
	}
	return err
}

// URL returns the store's URL with any password replaced by "xxxxx".
func (s *Store) URL() string { return s.url }

// Ping reports whether the database answers a query now, without
// retrying: what a readiness probe asks.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.db.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return fmt.Errorf("ping %s: %w", s.url, err)
	}
	return nil
}

// Dialect returns "postgres" or "sqlite".
func (s *Store) Dialect() string { return s.d.name }

// Redact returns rawURL with each password that it may hold replaced by
// "xxxxx", however a parser may read it: the password of a URL's
// user:password@ (up to the URL's last @, where pgx stops at the first),
// and the value of each query parameter or keyword whose name holds
// "password" (password=, sslpassword=), in a URL's query or in a
// keyword/value string (quoted or not; a value that stray words follow
// reaches to the next keyword). The rest is kept as written. A SQLite URL
// is returned as it is.
func Redact(rawURL string) string {
	spans := passwordSpans(rawURL)
	if len(spans) == 0 {
		return rawURL
	}
	slices.SortFunc(spans, func(a, b span) int { return cmp.Compare(a.from, b.from) })
	var b strings.Builder
	at := -1 // the end of the text masked last
	for _, sp := range spans {
		if sp.from < at {
			at = max(at, sp.to)
			continue
		}
		b.WriteString(rawURL[max(at, 0):sp.from])
		b.WriteString("xxxxx")
		at = sp.to
	}
	b.WriteString(rawURL[at:])
	return b.String()
}

// span is a part of a connection string, [from, to); words marks the value
// of a keyword/value string, whose stray words pgx's errors may quote.
type span struct {
	from, to int
	words    bool
}

// passwordSpans returns the parts of s that Redact masks.
func passwordSpans(s string) []span {
	scheme, rest, hasScheme := strings.Cut(s, ":")
	hasScheme = hasScheme && isScheme(scheme)
	if hasScheme && (strings.EqualFold(scheme, "sqlite") || strings.EqualFold(scheme, "sqlite3")) {
		return nil
	}
	if isKeywordValue(s) {
		return keywordValueSpans(s, 0)
	}
	isURL := hasScheme && strings.HasPrefix(rest, "//")
	start := 0
	if isURL {
		start = len(scheme) + len("://")
	}
	var out []span
	if at := strings.LastIndexByte(s, '@'); at >= start {
		if c := strings.IndexByte(s[start:at], ':'); c >= 0 {
			from := start + c + 1
			out = append(out, span{from: from, to: at})
			// pgx's password, which ends at the first @ (before any /).
			if i := strings.IndexAny(s[start:], "@/"); i >= 0 && s[start+i] == '@' && start+i >= from && start+i < at {
				out = append(out, span{from: from, to: start + i})
			}
		}
	}
	if isURL {
		return append(out, querySpans(s, start)...)
	}
	// Neither a URL nor a keyword/value string: whatever a reader could
	// take for a query's password (a relative URL's ?password=) is masked
	// too.
	out = append(out, keywordValueSpans(s, 0)...)
	return append(out, querySpans(s, 0)...)
}

// querySpans returns the spans of the values of the query parameters of a
// URL (its query starts at the first ? after from) whose names hold
// "password" once percent-decoded, as pgx decodes them (pass%77ord). A raw &
// in a password cuts it short for pgx: a parameter without = that follows
// a password's value, or any parameter that follows an empty one, is
// masked with it.
func querySpans(s string, from int) []span {
	q := strings.IndexByte(s[from:], '?')
	if q < 0 {
		return nil
	}
	var out []span
	last, empty := -1, false // the previous value when a password's, and whether it was empty
	for i := from + q + 1; i <= len(s); {
		end := strings.IndexByte(s[i:], '&')
		if end < 0 {
			end = len(s)
		} else {
			end += i
		}
		k, v, hasValue := strings.Cut(s[i:end], "=")
		switch {
		case last >= 0 && (!hasValue || empty):
			out[last].to = end
			empty = false
		case hasValue && secretKey(k):
			out = append(out, span{from: i + len(k) + 1, to: end})
			last, empty = len(out)-1, strings.Trim(v, " ") == "" // pgx drops the spaces around a value
		default:
			last = -1
		}
		i = end + 1
	}
	return out
}

// secretKey reports whether the parameter or keyword k names a password.
func secretKey(k string) bool {
	if d, err := url.PathUnescape(k); err == nil {
		k = d
	}
	return strings.Contains(strings.ToLower(k), "password")
}

// keywordValueSpans returns the spans of the values of the keywords of
// s[from:] whose names hold "password", s read as a keyword/value string as
// pgx and libpq read it: keyword = value, the value quoted with ' or ending
// at a space, a \ escaping the character after it. A quoted value that does
// not end reaches to the end of s, and words that stray between a
// password's value and the next keyword (password=two words) are masked
// with it.
func keywordValueSpans(s string, from int) []span {
	var out []span
	last := -1 // the index in out of the previous value when it is a password's
	for i := from; i < len(s); {
		eq := strings.IndexByte(s[i:], '=')
		if eq < 0 {
			eq = len(s)
		} else {
			eq += i
		}
		keyEnd := eq
		for keyEnd > i && isSpace(s[keyEnd-1]) {
			keyEnd--
		}
		keyStart := keyEnd
		for keyStart > i && !isSpace(s[keyStart-1]) {
			keyStart--
		}
		if eq == len(s) { // no keyword: all stray words
			keyStart = keyEnd
		}
		stray := keyStart
		for stray > i && isSpace(s[stray-1]) {
			stray--
		}
		if stray > i && last >= 0 {
			out[last].to = stray
		}
		if eq == len(s) {
			break
		}
		j := eq + 1
		for j < len(s) && isSpace(s[j]) {
			j++
		}
		valueFrom := j
		if j < len(s) && s[j] == '\'' {
			for j++; j < len(s) && s[j] != '\''; j++ {
				if s[j] == '\\' {
					j++
				}
			}
			j = min(j+1, len(s)) // past the closing quote
		} else {
			for ; j < len(s) && !isSpace(s[j]); j++ {
				if s[j] == '\\' {
					j++
				}
			}
			j = min(j, len(s))
		}
		last = -1
		if secretKey(s[keyStart:keyEnd]) {
			out = append(out, span{from: valueFrom, to: j, words: true})
			last = len(out) - 1
		}
		i = j
	}
	return out
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// isKeywordValue reports whether s is a keyword/value connection string
// (host=db dbname=floodtune): it starts with a keyword and =.
func isKeywordValue(s string) bool {
	i := 0
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	start := i
	for i < len(s) && (s[i] == '_' || 'a' <= s[i]|0x20 && s[i]|0x20 <= 'z' || i > start && '0' <= s[i] && s[i] <= '9') {
		i++
	}
	if i == start {
		return false
	}
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	return i < len(s) && s[i] == '='
}

// isScheme reports whether s is a URL scheme: a letter, then letters,
// digits, +, - or . (RFC 3986).
func isScheme(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c|0x20 && c|0x20 <= 'z' || i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	return s != ""
}

// minSecret is the length under which scrub leaves a password in a
// message: a shorter one turns up inside ordinary words ("p" in "tcp"), and
// masking it there would garble the message and hide nothing.
const minSecret = 4

// scrub clears a driver's message about rawURL of the passwords that rawURL
// and the environment may hold, and keeps it to one line.
func scrub(msg, rawURL string) string {
	ss := secrets(rawURL)
	slices.SortFunc(ss, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	for _, s := range ss {
		if len(s) >= minSecret {
			msg = strings.ReplaceAll(msg, s, "xxxxx")
		}
	}
	return oneLine(msg)
}

// oneLine escapes the control characters of s, such as those of a URL that
// an error quotes, so that a message stays one line of plain text.
func oneLine(s string) string {
	if !strings.ContainsFunc(s, unicode.IsControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// secrets returns what scrub removes from messages about rawURL: each text
// that Redact masks in rawURL, as written and decoded (percent-escapes, the
// quotes and backslashes of keyword/value strings), each also as escaping
// spells it, and the passwords of the environment (PGPASSWORD,
// PGSSLPASSWORD).
func secrets(rawURL string) []string {
	var out []string
	add := func(p string) { out = append(out, p, url.QueryEscape(p), url.PathEscape(p)) }
	for _, sp := range passwordSpans(rawURL) {
		raw := rawURL[sp.from:sp.to]
		add(raw)
		if words := strings.Fields(raw); sp.words && len(words) > 1 {
			// pgx's error about a stray word of a password quotes it.
			for _, w := range words {
				add(w)
			}
		}
		if v, err := url.PathUnescape(raw); err == nil {
			add(v)
		}
		if v, err := url.QueryUnescape(raw); err == nil {
			add(v)
		}
		add(unescapeKeywordValue(strings.TrimSuffix(strings.TrimPrefix(raw, "'"), "'")))
	}
	for _, env := range []string{"PGPASSWORD", "PGSSLPASSWORD"} {
		if p := os.Getenv(env); p != "" {
			add(p)
		}
	}
	return out
}

// unescapeKeywordValue drops the backslashes of a keyword/value string's
// value, keeping the characters that they escape.
func unescapeKeywordValue(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			i++
			if i == len(s) {
				break
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
