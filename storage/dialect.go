package storage

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// dialect holds what differs between PostgreSQL and SQLite: a few SQL
// fragments (constants, never user input) and how errors are classified.
type dialect struct {
	name string
	// now is the database's clock, in the type the time columns have.
	now string
	// olderThan is a condition "column is older than $N seconds ago"; %s is
	// the column, %d the placeholder number.
	olderThan string
	// forUpdate locks the selected rows (PostgreSQL); skipLocked also skips
	// rows another transaction holds. SQLite needs neither: its write
	// transactions are serialised (BEGIN IMMEDIATE).
	forUpdate, skipLocked string
	migrations            string // folder in migrations.FS
	transient             func(error) bool
	unique                func(error) bool
	foreignKey            func(error) bool
}

var postgresDialect = &dialect{
	name:       "postgres",
	now:        "now()",
	olderThan:  "%s < now() - make_interval(secs => $%d)",
	forUpdate:  " FOR UPDATE",
	skipLocked: " FOR UPDATE SKIP LOCKED",
	migrations: "postgres",
	transient:  pgTransient,
	unique:     func(err error) bool { return pgCode(err) == "23505" },
	foreignKey: func(err error) bool { return pgCode(err) == "23503" },
}

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

var sqliteDialect = &dialect{
	name:       "sqlite",
	now:        sqliteNow,
	olderThan:  "%s < " + sqliteNow + " - CAST($%d * 1000000 AS INTEGER)",
	migrations: "sqlite",
	transient: func(err error) bool {
		switch sqliteCode(err) & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return true
		}
		return false
	},
	unique: func(err error) bool {
		c := sqliteCode(err)
		return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	},
	foreignKey: func(err error) bool { return sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY },
}

func sqliteCode(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()
	}
	return 0
}

// sqliteNow is the current time in microseconds since the Unix epoch.
const sqliteNow = "CAST(unixepoch('subsec') * 1000000 AS INTEGER)"

// pgTransient reports errors after which the transaction did not commit and
// the operation may be tried again: serialization failures, deadlocks, and a
// connection lost or refused (a restarting server).
func pgTransient(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "40001", pe.Code == "40P01": // serialization failure, deadlock
			return true
		case strings.HasPrefix(pe.Code, "08"): // connection exception
			return true
		case pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03": // admin shutdown, crash shutdown, cannot connect now
			return true
		}
		return false
	}
	var ne net.Error
	return errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.As(err, &ne) || pgconn.SafeToRetry(err) || errors.Is(err, sql.ErrConnDone)
}

// q builds a query of this dialect: %[1]s is the clock, %[2]s FOR UPDATE,
// %[3]s FOR UPDATE SKIP LOCKED.
func (d *dialect) q(format string) string {
	return fmt.Sprintf(format, d.now, d.forUpdate, d.skipLocked)
}

// jsonText is col, a JSON column, as text.
func (d *dialect) jsonText(col string) string {
	if d == postgresDialect {
		return col + "::text"
	}
	return col
}

// inList is the condition "col is one of the ids in $1", with $1 as idList
// gives it.
func (d *dialect) inList(col string) string {
	if d == postgresDialect {
		return col + " = ANY($1)"
	}
	return col + " IN (SELECT value FROM json_each($1))"
}

// idList is the argument of inList: an array for PostgreSQL, a JSON array
// for SQLite.
func (d *dialect) idList(ids []int64) any {
	if d == postgresDialect {
		return ids
	}
	b, _ := json.Marshal(ids)
	return string(b)
}

// older returns the condition "col older than $n seconds".
func (d *dialect) older(col string, n int) string { return fmt.Sprintf(d.olderThan, col, n) }

// retry runs op, again after a transient error (with exponential backoff and
// jitter, at most a second apart), until op has been failing for the store's
// retry window: a server restart or a burst of cut connections is waited
// out, a server that stays away is reported as ErrUnavailable, wrapping the
// last error. op must be safe to run again after a transient error: a
// transaction that failed that way did not commit.
func (s *Store) retry(ctx context.Context, what string, op func(context.Context) error) error {
	delay := 10 * time.Millisecond
	start := time.Now()
	for {
		err := op(ctx)
		if err == nil {
			return nil
		}
		if !s.retryable(err) || ctx.Err() != nil {
			return fmt.Errorf("%s: %w", what, pooledHint(err))
		}
		if spent := time.Since(start); spent >= s.retryFor {
			return fmt.Errorf("%s: %w (retried for %v): %w", what, ErrUnavailable, spent.Round(time.Millisecond), err)
		}
		sleep := delay + time.Duration(rand.Int64N(int64(delay)))
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-time.After(sleep):
		}
		delay = min(2*delay, time.Second)
	}
}

// inTx runs fn in a transaction, committed when fn returns nil.
func (s *Store) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return commitError{err}
	}
	return nil
}

// commitError is a failed COMMIT. Whether the transaction committed is
// unknown when the connection broke during the COMMIT, so only failures
// that say it did not commit (a serialization failure, a busy database) are
// retried.
type commitError struct{ err error }

func (e commitError) Error() string { return "commit: " + e.err.Error() }
func (e commitError) Unwrap() error { return e.err }

func (s *Store) retryable(err error) bool {
	var ce commitError
	if errors.As(err, &ce) {
		switch s.d {
		case postgresDialect:
			// The server answered the COMMIT with an error: it rolled the
			// transaction back. Without an answer (a broken connection) the
			// outcome is unknown.
			return pgCode(ce.err) != "" && pgTransient(ce.err)
		default:
			return s.d.transient(ce.err)
		}
	}
	return s.d.transient(err)
}

// nullTime scans a time column of either dialect: a time.Time (PostgreSQL),
// microseconds since the epoch (SQLite), or NULL (the zero time).
type nullTime struct{ T time.Time }

func (n *nullTime) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		n.T = time.Time{}
	case time.Time:
		n.T = v
	case int64:
		n.T = time.UnixMicro(v)
	case float64:
		n.T = time.UnixMicro(int64(v))
	default:
		return fmt.Errorf("storage: cannot scan %T into a time", src)
	}
	return nil
}

// nullFloat scans a float column where NULL stands for NaN.
type nullFloat struct{ F float64 }

func (n *nullFloat) Scan(src any) error {
	var f sql.NullFloat64
	if err := f.Scan(src); err != nil {
		return err
	}
	n.F = nan
	if f.Valid {
		n.F = f.Float64
	}
	return nil
}

// nullIfNaN maps NaN to NULL; ±Inf are stored as they are, and read back
// as ±Inf on both dialects (the conformance suite round-trips them).
func nullIfNaN(f float64) any {
	if f != f {
		return nil
	}
	return f
}
