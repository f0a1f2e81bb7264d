package storage

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrMigrationLocked is a migration that gave up waiting for a lock that
// another session held: the migration lock (another process migrating, or
// a lock left behind) or a lock on a table that the migration changes. It
// comes as a *LockError, which names the sessions holding it.
var ErrMigrationLocked = errors.New("the migration waited too long for a lock")

// lockNotAvailable is PostgreSQL's SQLSTATE of a lock wait that
// lock_timeout ended.
const lockNotAvailable = "55P03"

// LockHolder is a PostgreSQL session that holds a lock a migration waited
// for, as pg_stat_activity shows it (a role that may not see other roles'
// sessions sees less of them: empty fields, zero times).
type LockHolder struct {
	PID         int
	User        string
	Application string
	Client      string // its address; empty for a Unix socket or when hidden
	State       string // active, idle, idle in transaction, ...
	Connected   time.Time
	InXactSince time.Time // the start of its transaction; zero when none
	StateSince  time.Time
	Tables      []string // the tables it holds locks on (a table lock)
}

func (h LockHolder) String() string {
	var parts []string
	add := func(label, v string) {
		if v != "" {
			parts = append(parts, label+" "+v)
		}
	}
	add("role", h.User)
	add("application", strconv.Quote(h.Application))
	add("client", h.Client)
	if !h.Connected.IsZero() {
		add("connected since", h.Connected.UTC().Format(time.RFC3339))
	}
	if h.State != "" && !h.StateSince.IsZero() {
		add(h.State, "since "+h.StateSince.UTC().Format(time.RFC3339))
	} else {
		add("state", h.State)
	}
	if !h.InXactSince.IsZero() {
		add("in a transaction since", h.InXactSince.UTC().Format(time.RFC3339))
	}
	if len(h.Tables) > 0 {
		add("holding locks on", strings.Join(h.Tables, ", "))
	}
	return fmt.Sprintf("pid %d (%s)", h.PID, strings.Join(parts, ", "))
}

// LockError is a migration that gave up waiting for a lock. errors.Is finds
// ErrMigrationLocked and the driver's error.
type LockError struct {
	// Lock is what was waited for: "the migration lock", or "a table lock".
	Lock string
	// Waited is how long the migration waited in all.
	Waited time.Duration
	// Holders are the sessions holding it when the wait ended; none when
	// they could not be read, or let go meanwhile.
	Holders []LockHolder
	err     error
}

func (e *LockError) Error() string {
	msg := fmt.Sprintf("migrate: gave up after waiting %v for %s", e.Waited.Round(time.Millisecond), e.Lock)
	if len(e.Holders) == 0 {
		return msg + ", which another session held (it let go, or cannot be seen by this role): try again"
	}
	hs := make([]string, len(e.Holders))
	pids := make([]string, len(e.Holders))
	for i, h := range e.Holders {
		hs[i], pids[i] = h.String(), strconv.Itoa(h.PID)
	}
	msg += ", held by " + strings.Join(hs, "; ")
	if e.Lock == migrationLockName {
		msg += ": another floodtune is migrating (wait for it and try again), or the lock was left behind on a session " +
			"(by an older floodtune through a transaction-pooling PgBouncer, say)"
	} else {
		msg += ": those sessions use floodtune's tables (stop the workers, or wait for them, and try again)"
	}
	return msg + "; a stuck session ends with SELECT pg_terminate_backend(pid) for pid " + strings.Join(pids, ", ")
}

func (e *LockError) Unwrap() []error { return []error{ErrMigrationLocked, e.err} }

const migrationLockName = "the migration lock"

// lockHolders selects the sessions that hold a lock, as rows of pid, role,
// application, client, state, backend start, transaction start, state
// change and table (empty for the migration lock), one per session and table.
type lockHolders struct {
	name  string
	query string
	args  []any
}

var migrationLockHolders = lockHolders{
	name: migrationLockName,
	// An advisory lock on a bigint key is classid (its high 32 bits) and
	// objid (its low 32 bits) with objsubid 1.
	query: `SELECT a.pid, coalesce(a.usename::text, ''), coalesce(a.application_name, ''), coalesce(host(a.client_addr), ''),
			coalesce(a.state, ''), a.backend_start, a.xact_start, a.state_change, ''
		FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
			AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
			AND l.classid::bigint = $1 AND l.objid::bigint = $2
		ORDER BY a.pid`,
	args: []any{int64(uint64(migrationLock) >> 32), int64(uint64(migrationLock) & 0xffffffff)},
}

var tableLockHolders = lockHolders{
	name: "a table lock",
	query: `SELECT DISTINCT a.pid, coalesce(a.usename::text, ''), coalesce(a.application_name, ''), coalesce(host(a.client_addr), ''),
			coalesce(a.state, ''), a.backend_start, a.xact_start, a.state_change, c.relname::text
		FROM pg_locks l JOIN pg_class c ON c.oid = l.relation JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'relation' AND l.granted AND a.pid <> pg_backend_pid()
			AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
			AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())
		ORDER BY a.pid, 9`,
}

// lockError returns the *LockError of a migration that started at start
// and whose wait for the lock of which ended with err (lock_timeout): it
// reads who holds the lock now.
func (s *Store) lockError(ctx context.Context, start time.Time, which lockHolders, err error) error {
	e := &LockError{Lock: which.name, Waited: time.Since(start), err: err}
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	rows, qerr := s.db.QueryContext(qctx, which.query, which.args...)
	if qerr != nil {
		return e
	}
	defer rows.Close()
	for rows.Next() {
		var h LockHolder
		var connected, inXact, since nullTime
		var table string
		if rows.Scan(&h.PID, &h.User, &h.Application, &h.Client, &h.State, &connected, &inXact, &since, &table) != nil {
			return e
		}
		h.Connected, h.InXactSince, h.StateSince = connected.T, inXact.T, since.T
		if n := len(e.Holders); n > 0 && e.Holders[n-1].PID == h.PID {
			if table != "" {
				e.Holders[n-1].Tables = append(e.Holders[n-1].Tables, table)
			}
			continue
		}
		if table != "" {
			h.Tables = []string{table}
		}
		e.Holders = append(e.Holders, h)
	}
	return e
}
