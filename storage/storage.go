package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"

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
	// connect to the PostgreSQL server or open the SQLite file (a missing
	// directory, an I/O error, a file it may not write), or an operation
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
	// retryFor bounds how long an operation is retried after transient
	// errors.
	retryFor time.Duration
	final    *finalCache
}

// Option configures Open.
type Option func(*options)

type options struct {
	migrate bool
}

// WithoutMigration opens the store without migrating its schema (for
// `floodtune migrate`, which does it explicitly).
func WithoutMigration() Option { return func(o *options) { o.migrate = false } }

// Open connects to the storage named by rawURL and, unless told otherwise,
// migrates its schema to the newest version:
//
//	postgres://user[:password]@host[:port]/database[?param=value]
//	postgresql://...        (the password may also come from PGPASSWORD)
//	sqlite:PATH             (a file, created if missing; sqlite::memory: for a private in-memory store)
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
	var s *Store
	var err error
	switch scheme, rest, _ := strings.Cut(rawURL, ":"); strings.ToLower(scheme) {
	case "postgres", "postgresql":
		s, err = openPostgres(ctx, rawURL)
	case "sqlite", "sqlite3":
		s, err = openSQLite(ctx, rest)
	default:
		return nil, fmt.Errorf("%w %q: the scheme must be postgres://, postgresql:// or sqlite:", ErrBadURL, Redact(rawURL))
	}
	if err != nil {
		return nil, err
	}
	if o.migrate {
		if _, err := s.Migrate(ctx, Up, 0); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

func openPostgres(ctx context.Context, rawURL string) (*Store, error) {
	red := Redact(rawURL)
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %v", ErrBadURL, red, redactErr(err, rawURL))
	}
	if cfg.ConnConfig.Password == "" {
		cfg.ConnConfig.Password = os.Getenv("PGPASSWORD")
	}
	if cfg.MaxConns < 8 {
		cfg.MaxConns = 8
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "floodtune"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, unreachable(ctx, fmt.Sprintf("connect to %s: %s", red, redactErr(err, rawURL)), err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, unreachable(ctx, fmt.Sprintf("connect to %s: %s", red, redactErr(err, rawURL)), err)
	}
	return &Store{db: stdlib.OpenDBFromPool(pool), pool: pool, d: postgresDialect, url: red, retryFor: retryWindow, final: newFinalCache()}, nil
}

func openSQLite(ctx context.Context, path string) (*Store, error) {
	path = strings.TrimPrefix(path, "//")
	if path == "" {
		return nil, fmt.Errorf("%w %q: want sqlite:PATH", ErrBadURL, "sqlite:")
	}
	dsn := "file:" + path
	if path == ":memory:" {
		// One connection, or each would see its own empty database.
		dsn = "file::memory:"
	}
	q := url.Values{}
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Set("_txlock", "immediate") // writers queue at BEGIN, never deadlock on upgrade
	db, err := sql.Open("sqlite", dsn+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open sqlite:%s: %w", path, err)
	}
	if path == ":memory:" {
		db.SetMaxOpenConns(1)
	}
	st := &Store{db: db, d: sqliteDialect, url: "sqlite:" + path, retryFor: retryWindow, final: newFinalCache()}
	// A new connection switches the file to WAL, which can meet another
	// process doing the same and be refused as busy: try again.
	if err := st.retry(ctx, "open sqlite:"+path, func(ctx context.Context) error { return db.PingContext(ctx) }); err != nil {
		db.Close()
		if sqliteUnreachable(err) {
			err = unreachable(ctx, err.Error(), err)
		}
		return nil, err
	}
	return st, nil
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

// Dialect returns "postgres" or "sqlite".
func (s *Store) Dialect() string { return s.d.name }

// Redact returns rawURL with its password, if any, replaced by "xxxxx". A
// URL that does not parse is reduced to its scheme.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		scheme, _, _ := strings.Cut(rawURL, ":")
		return scheme + "://(unparsable URL)"
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	q := u.Query()
	changed := false
	for _, k := range []string{"password", "sslpassword"} {
		if q.Has(k) {
			q.Set(k, "xxxxx")
			changed = true
		}
	}
	if changed {
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// redactErr removes the password of rawURL from a driver error's text.
func redactErr(err error, rawURL string) string {
	msg := err.Error()
	for _, secret := range secrets(rawURL) {
		msg = strings.ReplaceAll(msg, secret, "xxxxx")
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

func secrets(rawURL string) []string {
	var out []string
	if u, err := url.Parse(rawURL); err == nil {
		if p, ok := u.User.Password(); ok && p != "" {
			out = append(out, p, url.QueryEscape(p), url.PathEscape(p))
		}
		for _, k := range []string{"password", "sslpassword"} {
			for _, p := range u.Query()[k] {
				if p != "" {
					out = append(out, p)
				}
			}
		}
	}
	if p := os.Getenv("PGPASSWORD"); p != "" {
		out = append(out, p)
	}
	return out
}
