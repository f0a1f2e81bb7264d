package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/floodtune/floodtune/migrations"
)

// Direction of a migration run.
type MigrationDirection int

// Up applies migrations; Down reverts them.
const (
	Up MigrationDirection = iota
	Down
)

// Migration is one versioned schema change.
type Migration struct {
	Version   int
	Name      string
	Applied   bool
	AppliedAt time.Time
	// Unknown marks a version that the storage's version table records but
	// this floodtune has no files for: a newer release applied it. Such a
	// migration is always Applied, and its Name is the one recorded.
	Unknown  bool
	up, down string
}

// Errors of the schema's version; compare with errors.Is. They come as a
// *SchemaError, whose text says what to do.
var (
	// ErrSchemaNewer is a storage whose schema a newer floodtune migrated:
	// its version table records a version this floodtune does not know.
	// Nothing is done on it, neither reading nor writing nor migrating:
	// upgrade floodtune (or revert the schema with the newer release).
	ErrSchemaNewer = errors.New("the storage's schema is newer than this floodtune")
	// ErrSchemaOutdated is a storage whose schema is missing or older than
	// this floodtune needs, and which this floodtune could not migrate: the
	// role it connected as may not create or change tables. Run
	// `floodtune migrate` with a role that may.
	ErrSchemaOutdated = errors.New("the storage's schema is older than this floodtune needs")
)

// MigrationLockKey is the key of the PostgreSQL advisory lock that
// serialises migrations of workers starting at once ("floodtun" in
// ASCII). Migrations take it for a transaction (pg_advisory_xact_lock);
// floodtune before the PgBouncer support took it for a session. pg_locks
// shows it as an advisory lock with classid 1718382447 (its high 32 bits),
// objid 1685353838 (its low 32 bits) and objsubid 1.
const MigrationLockKey int64 = migrationLock

const migrationLock = 0x666c6f6f6474756e

func (s *Store) migrationFiles() ([]Migration, error) {
	dir := s.d.migrations
	entries, err := fs.ReadDir(migrations.FS, dir)
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	byVersion := map[int]*Migration{}
	for _, e := range entries {
		name := e.Name()
		base, kind := strings.TrimSuffix(name, ".sql"), ""
		switch {
		case strings.HasSuffix(base, ".up"):
			base, kind = strings.TrimSuffix(base, ".up"), "up"
		case strings.HasSuffix(base, ".down"):
			base, kind = strings.TrimSuffix(base, ".down"), "down"
		default:
			return nil, fmt.Errorf("migration file %s: want NNN_name.up.sql or NNN_name.down.sql", name)
		}
		num, label, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration file %s: want NNN_name.up.sql or NNN_name.down.sql", name)
		}
		body, err := fs.ReadFile(migrations.FS, path.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", name, err)
		}
		m := byVersion[v]
		if m == nil {
			m = &Migration{Version: v, Name: label}
			byVersion[v] = m
		}
		if kind == "up" {
			m.up = string(body)
		} else {
			m.down = string(body)
		}
	}
	var out []Migration
	for _, m := range byVersion {
		if m.up == "" || m.down == "" {
			return nil, fmt.Errorf("migration %03d_%s lacks its up or down file", m.Version, m.Name)
		}
		out = append(out, *m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i, m := range out {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migrations are not numbered 1, 2, 3, ...: %03d follows %d", m.Version, i)
		}
	}
	return out, nil
}

const versionTable = "floodtune_schema_migrations"

// SchemaError is the error of a storage whose schema this floodtune cannot
// work with: errors.Is finds Err, ErrSchemaNewer or ErrSchemaOutdated, and,
// when migrating was tried and failed, the driver's error too.
type SchemaError struct {
	// Version is the newest version the storage's version table records; 0
	// when the storage has no floodtune schema.
	Version int
	// Known is the newest version this floodtune knows, the one it needs.
	Known int
	// Err is ErrSchemaNewer or ErrSchemaOutdated.
	Err error
	// cause is why migrating failed, when it was tried.
	cause error
}

func (e *SchemaError) Error() string {
	if e.Err == ErrSchemaNewer {
		return fmt.Sprintf("the storage's schema is at version %d, newer than this floodtune knows (%d): upgrade floodtune", e.Version, e.Known)
	}
	have := fmt.Sprintf("the storage's schema is at version %d", e.Version)
	if e.Version == 0 {
		have = "the storage has no floodtune schema"
	}
	msg := fmt.Sprintf("%s, this floodtune needs %d: run `floodtune migrate`", have, e.Known)
	if e.cause != nil {
		msg += " with a role that may create tables"
		var pe *pgconn.PgError
		if errors.As(e.cause, &pe) {
			msg += " (this one may not: " + pe.Message + ")"
		}
	}
	return msg
}

func (e *SchemaError) Unwrap() []error {
	if e.cause != nil {
		return []error{e.Err, e.cause}
	}
	return []error{e.Err}
}

// insufficientPrivilege reports whether err is PostgreSQL's refusal of a
// statement that the role has no right to run (SQLSTATE 42501: no CREATE
// on the schema, not the owner of a table, no SELECT on a table, ...).
func insufficientPrivilege(err error) bool { return pgCode(err) == "42501" }

// withRightsHint adds to an error of changing the schema, when the role
// lacked the rights, what to do about it.
func withRightsHint(err error) error {
	if err != nil && insufficientPrivilege(err) {
		return fmt.Errorf("%w: this role may not change the schema; migrate with a role that may create tables in it (to revert, the owner of floodtune's tables)", err)
	}
	return err
}

// conn is what the version table is read on: the database, or a
// migration's transaction.
type conn interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// appliedRow is a row of the version table.
type appliedRow struct {
	name string
	at   time.Time
}

// applied returns the rows of the version table, by version. It reads
// whether the table exists first, and creates nothing when it does: an
// application role, which may not create tables, must be able to read the
// version (PostgreSQL checks the right to create in the schema even for
// CREATE TABLE IF NOT EXISTS of a table that exists). With create, a missing
// table is created, which must happen under the migration lock (concurrent
// CREATE TABLE IF NOT EXISTS races on PostgreSQL); without it a missing
// table means nothing is applied.
func (s *Store) applied(ctx context.Context, c conn, create bool) (map[int]appliedRow, error) {
	out := map[int]appliedRow{}
	var n int
	exists := `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '` + versionTable + `'`
	if s.d == postgresDialect {
		exists = `SELECT count(*) FROM (SELECT to_regclass('` + versionTable + `') AS t) x WHERE t IS NOT NULL`
	}
	if err := c.QueryRowContext(ctx, exists).Scan(&n); err != nil {
		return nil, readVersionErr(err)
	}
	if n == 0 {
		if !create {
			return out, nil
		}
		if _, err := c.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+versionTable+` (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at `+s.timeType()+` NOT NULL)`); err != nil {
			return nil, withRightsHint(fmt.Errorf("create the migration version table: %w", err))
		}
	}
	rows, err := c.QueryContext(ctx, `SELECT version, name, applied_at FROM `+versionTable)
	if err != nil {
		return nil, readVersionErr(err)
	}
	defer rows.Close()
	for rows.Next() {
		var v int
		var r appliedRow
		var at nullTime
		if err := rows.Scan(&v, &r.name, &at); err != nil {
			return nil, readVersionErr(err)
		}
		r.at = at.T
		out[v] = r
	}
	if err := rows.Err(); err != nil {
		return nil, readVersionErr(err)
	}
	return out, nil
}

func readVersionErr(err error) error {
	err = pooledHint(err)
	if insufficientPrivilege(err) {
		return fmt.Errorf("read the schema's version: %w (grant this role SELECT on %s)", err, versionTable)
	}
	return fmt.Errorf("read the schema's version: %w", err)
}

func (s *Store) timeType() string {
	if s.d == postgresDialect {
		return "TIMESTAMPTZ"
	}
	return "INTEGER"
}

// newest returns the highest version of done, 0 if none.
func newest(done map[int]appliedRow) int {
	v := 0
	for k := range done {
		v = max(v, k)
	}
	return v
}

// schemaState compares the applied versions, done, with the known
// migrations, ms: nil when every known one is applied and no other, else a
// *SchemaError that is ErrSchemaNewer (a version it does not know is
// applied) or ErrSchemaOutdated (a known one is not).
func schemaState(ms []Migration, done map[int]appliedRow) error {
	known, have := ms[len(ms)-1].Version, newest(done)
	if have > known {
		return &SchemaError{Version: have, Known: known, Err: ErrSchemaNewer}
	}
	for _, m := range ms {
		if _, ok := done[m.Version]; !ok {
			return &SchemaError{Version: have, Known: known, Err: ErrSchemaOutdated}
		}
	}
	return nil
}

// CheckSchema reads the schema's version, creating and changing nothing. It
// returns nil when every migration this floodtune knows is applied, and no
// other; a *SchemaError that is ErrSchemaNewer when the storage records a
// version this floodtune does not know; one that is ErrSchemaOutdated when a
// migration is not applied (or the storage has no schema at all).
func (s *Store) CheckSchema(ctx context.Context) error {
	ms, err := s.migrationFiles()
	if err != nil {
		return err
	}
	done, err := s.applied(ctx, s.db, false)
	if err != nil {
		return err
	}
	return schemaState(ms, done)
}

// ensureSchema is what Open does to the schema: it reads the version, and
// migrates up only when the schema is missing or older. A schema that is
// current is left alone, so that a role that may not create tables can work
// on it; one that is newer is ErrSchemaNewer; one that cannot be migrated
// for lack of rights is ErrSchemaOutdated.
func (s *Store) ensureSchema(ctx context.Context) error {
	err := s.CheckSchema(ctx)
	var se *SchemaError
	if !errors.As(err, &se) || se.Err != ErrSchemaOutdated {
		return err
	}
	if _, err := s.Migrate(ctx, Up, 0); err != nil {
		if insufficientPrivilege(err) {
			se.cause = err
			return se
		}
		return err
	}
	return nil
}

// Migrations returns every migration this floodtune knows, with whether it
// is applied, followed by the versions the storage records that it does not
// know (Unknown, applied by a newer release). It reads and creates nothing
// else, so a role that may not change the schema can call it.
func (s *Store) Migrations(ctx context.Context) ([]Migration, error) {
	ms, err := s.migrationFiles()
	if err != nil {
		return nil, err
	}
	done, err := s.applied(ctx, s.db, false)
	if err != nil {
		return nil, err
	}
	known := map[int]bool{}
	for i := range ms {
		r, ok := done[ms[i].Version]
		ms[i].Applied, ms[i].AppliedAt = ok, r.at
		known[ms[i].Version] = true
	}
	for v, r := range done {
		if !known[v] {
			ms = append(ms, Migration{Version: v, Name: r.name, Applied: true, AppliedAt: r.at, Unknown: true})
		}
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	return ms, nil
}

// plan returns the migrations that Migrate(dir, target) runs when done are
// applied, in the order it runs them.
func plan(ms []Migration, done map[int]appliedRow, dir MigrationDirection, target int) []Migration {
	var out []Migration
	if dir == Up {
		for _, m := range ms {
			if _, ok := done[m.Version]; ok || (target > 0 && m.Version > target) {
				continue
			}
			out = append(out, m)
		}
		return out
	}
	for i := len(ms) - 1; i >= 0; i-- {
		m := ms[i]
		if _, ok := done[m.Version]; !ok {
			continue
		}
		if target > 0 && m.Version <= target {
			break
		}
		out = append(out, m)
		if target == 0 {
			break
		}
	}
	return out
}

// MigrationPlan returns the migrations that Migrate(dir, target) would run
// now, without running them or creating anything (another process may
// migrate meanwhile). A schema newer than this floodtune is ErrSchemaNewer,
// as it is for Migrate.
func (s *Store) MigrationPlan(ctx context.Context, dir MigrationDirection, target int) ([]Migration, error) {
	ms, err := s.migrationFiles()
	if err != nil {
		return nil, err
	}
	done, err := s.applied(ctx, s.db, false)
	if err != nil {
		return nil, err
	}
	if err := schemaState(ms, done); errors.Is(err, ErrSchemaNewer) {
		return nil, err
	}
	return plan(ms, done, dir, target), nil
}

// Migrate applies (Up) or reverts (Down) migrations, each in its own
// transaction, and returns the ones it ran. Up goes to the newest version,
// or to version target when target > 0; Down reverts the newest applied
// migration, or every one above target when target > 0 (target 0 with Down
// reverts one). Workers that migrate at once do not race: on PostgreSQL
// each transaction takes a transaction-level advisory lock (so that it
// works through a transaction-pooling PgBouncer too, and no lock outlives
// its transaction), on SQLite the write lock.
//
// Migrate never waits without bound: when another session holds the
// migration lock, or a lock that a migration's statements need, for longer
// than the store's MigrationLockWait (DefaultMigrationLockWait), it gives
// up with a *LockError that is ErrMigrationLocked and names the sessions
// holding it.
//
// A schema that a newer floodtune migrated (a version this one does not
// know is recorded) is left alone, in either direction: the error is a
// *SchemaError that is ErrSchemaNewer. Migrate creates the version table
// only when it is missing, so that running it with a role that may not
// create tables on a current schema does nothing and succeeds.
func (s *Store) Migrate(ctx context.Context, dir MigrationDirection, target int) ([]Migration, error) {
	ms, err := s.migrationFiles()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	var ran, todo []Migration
	planned := false
	// Trials read before a migration may not be those after it.
	defer func() {
		if len(ran) > 0 {
			s.final.clear()
		}
	}()
	for {
		var next *Migration
		// A transaction cut off by the server (a restart, an administrator)
		// is run again: it reads the applied versions afresh, so what
		// committed before the cut is not applied twice.
		err := s.retryMigration(ctx, func() error {
			next = nil
			return s.migrationTx(ctx, start, func(tx *sql.Tx) error {
				done, err := s.applied(ctx, tx, true)
				if err != nil {
					return err
				}
				if err := schemaState(ms, done); errors.Is(err, ErrSchemaNewer) {
					return err
				}
				if !planned {
					todo, planned = plan(ms, done, dir, target), true
				}
				// Skip what another process did since.
				for len(todo) > 0 {
					if _, ok := done[todo[0].Version]; ok != (dir == Up) {
						break
					}
					todo = todo[1:]
				}
				if len(todo) == 0 {
					return nil
				}
				m := todo[0]
				body, record, args := m.up, `INSERT INTO `+versionTable+` (version, name, applied_at) VALUES ($1, $2, `+s.d.now+`)`, []any{m.Version, m.Name}
				if dir == Down {
					body, record, args = m.down, `DELETE FROM `+versionTable+` WHERE version = $1`, []any{m.Version}
				}
				if _, err := tx.ExecContext(ctx, body); err != nil {
					return fmt.Errorf("migration %03d_%s: %w", m.Version, m.Name, err)
				}
				if _, err := tx.ExecContext(ctx, record, args...); err != nil {
					return fmt.Errorf("migration %03d_%s: record version: %w", m.Version, m.Name, err)
				}
				next = &m
				return nil
			})
		})
		if err != nil {
			return ran, withRightsHint(pooledHint(err))
		}
		if next == nil {
			return ran, nil
		}
		ran = append(ran, *next)
		todo = todo[1:]
	}
}

// retryMigration runs op again while it fails as the connection or the
// server does (s.retryable), for the store's retry window: the error is
// op's own otherwise, and ErrUnavailable when the window is spent.
func (s *Store) retryMigration(ctx context.Context, op func() error) error {
	err := s.retry(ctx, "migrate", func(context.Context) error {
		err := op()
		if err != nil && !s.retryable(err) {
			return permanent{err}
		}
		return err
	})
	var p permanent
	if errors.As(err, &p) {
		return p.err // as op said it, without retry's prefix
	}
	return err
}

// permanent carries an error that retry must not retry through it, unchanged.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }

// migrationTx runs fn in a transaction that holds the migration lock, and
// commits it when fn returns nil. On PostgreSQL the transaction waits for
// locks, the migration lock and those of fn's statements, until lockWait
// after start at most (lock_timeout), and then fails with a *LockError
// that names the sessions holding them. On SQLite the transaction starts
// with the write lock (BEGIN IMMEDIATE, and SQLite's busy timeout).
func (s *Store) migrationTx(ctx context.Context, start time.Time, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: begin: %w", err)
	}
	defer tx.Rollback()
	if s.d == postgresDialect {
		// lock_timeout 0 would wait for ever: wait a millisecond at least.
		left := max(time.Until(start.Add(s.lockWait)), time.Millisecond)
		if _, err := tx.ExecContext(ctx, `SELECT set_config('lock_timeout', $1, true)`, strconv.FormatInt(left.Milliseconds()+1, 10)+"ms"); err != nil {
			return fmt.Errorf("migrate: set lock_timeout: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLock)); err != nil {
			if pgCode(err) == lockNotAvailable {
				_ = tx.Rollback()
				return s.lockError(ctx, start, migrationLockHolders, err)
			}
			return fmt.Errorf("migrate: take the migration lock: %w", err)
		}
	}
	if err := fn(tx); err != nil {
		if s.d == postgresDialect && pgCode(err) == lockNotAvailable {
			_ = tx.Rollback()
			return s.lockError(ctx, start, tableLockHolders, err)
		}
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}
