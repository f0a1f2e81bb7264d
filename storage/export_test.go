package storage

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Hooks for the package's tests, which are in package storage_test.

// SetRetryFor sets how long s retries an operation after transient errors.
func SetRetryFor(s *Store, d time.Duration) { s.retryFor = d }

// LimitBusyWait makes s, a SQLite store, use one connection that waits at
// most d for another connection's lock before it reports the database busy.
func LimitBusyWait(ctx context.Context, s *Store, d time.Duration) error {
	s.db.SetMaxOpenConns(1)
	_, err := s.db.ExecContext(ctx, fmt.Sprintf("PRAGMA busy_timeout = %d", d.Milliseconds()))
	return err
}

// Retry runs op as a PostgreSQL store whose retry window is window runs its
// operations.
func Retry(ctx context.Context, window time.Duration, what string, op func(context.Context) error) error {
	s := &Store{d: postgresDialect, retryFor: window}
	return s.retry(ctx, what, op)
}

// CommitFailed is err as the COMMIT of an operation's transaction returned
// it.
func CommitFailed(err error) error { return commitError{err} }

// PostgresConfig is the configuration that Open connects to a PostgreSQL
// URL or keyword/value string with.
func PostgresConfig(rawURL string) (*pgxpool.Config, error) { return postgresConfig(rawURL) }

// Pragma reads a SQLite store's PRAGMA name on one of its connections.
func Pragma(ctx context.Context, s *Store, name string) (string, error) {
	var v string
	err := s.db.QueryRowContext(ctx, "PRAGMA "+name).Scan(&v)
	return v, err
}

// The writes that only the store's Goptuna adapter makes, for the tests
// that call them directly.

func (s *Store) Claim(ctx context.Context, trialID int64, worker string) error {
	return s.claim(ctx, trialID, worker)
}

func (s *Store) SetParam(ctx context.Context, trialID int64, worker, name string, p Param) error {
	return s.setParam(ctx, trialID, worker, name, p)
}

func (s *Store) SetValue(ctx context.Context, trialID int64, worker string, value float64) error {
	return s.setValue(ctx, trialID, worker, value)
}

func (s *Store) SetStudyDirection(ctx context.Context, id int64, dir Direction) error {
	return s.setStudyDirection(ctx, id, dir)
}
