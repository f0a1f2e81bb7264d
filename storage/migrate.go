package storage

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

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
	up, down  string
}

// migrationLock is the PostgreSQL advisory lock key that serialises
// migrations of workers starting at once ("floodtun" in ASCII).
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

// conn is what migrations run on: one connection, so that PostgreSQL's
// advisory lock holds for the whole run.
type conn interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error)
}

// applied returns the applied versions. With create it first creates the
// version table if missing, which must happen under the migration lock
// (concurrent CREATE TABLE IF NOT EXISTS races on PostgreSQL); without it a
// missing table means nothing is applied.
func (s *Store) applied(ctx context.Context, c conn, create bool) (map[int]time.Time, error) {
	out := map[int]time.Time{}
	if create {
		if _, err := c.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+versionTable+` (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at `+s.timeType()+` NOT NULL)`); err != nil {
			return nil, fmt.Errorf("create the migration version table: %w", err)
		}
	} else {
		var n int
		exists := `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '` + versionTable + `'`
		if s.d == postgresDialect {
			exists = `SELECT count(*) FROM (SELECT to_regclass('` + versionTable + `') AS t) x WHERE t IS NOT NULL`
		}
		if err := c.QueryRowContext(ctx, exists).Scan(&n); err != nil {
			return nil, fmt.Errorf("read applied migrations: %w", err)
		}
		if n == 0 {
			return out, nil
		}
	}
	rows, err := c.QueryContext(ctx, `SELECT version, applied_at FROM `+versionTable)
	if err != nil {
		return nil, fmt.Errorf("read applied migrations: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var v int
		var at nullTime
		if err := rows.Scan(&v, &at); err != nil {
			return nil, fmt.Errorf("read applied migrations: %w", err)
		}
		out[v] = at.T
	}
	return out, rows.Err()
}

func (s *Store) timeType() string {
	if s.d == postgresDialect {
		return "TIMESTAMPTZ"
	}
	return "INTEGER"
}

// Migrations returns every migration with whether it is applied.
func (s *Store) Migrations(ctx context.Context) ([]Migration, error) {
	ms, err := s.migrationFiles()
	if err != nil {
		return nil, err
	}
	done, err := s.applied(ctx, s.db, false)
	if err != nil {
		return nil, err
	}
	for i := range ms {
		ms[i].AppliedAt, ms[i].Applied = done[ms[i].Version]
	}
	return ms, nil
}

// Migrate applies (Up) or reverts (Down) migrations, each in its own
// transaction, and returns the ones it ran. Up goes to the newest version,
// or to version target when target > 0; Down reverts the newest applied
// migration, or every one above target when target > 0 (target 0 with Down
// reverts one). Workers that migrate at once do not race: on PostgreSQL they
// take turns on an advisory lock, on SQLite on the write lock.
func (s *Store) Migrate(ctx context.Context, dir MigrationDirection, target int) ([]Migration, error) {
	ms, err := s.migrationFiles()
	if err != nil {
		return nil, err
	}
	var c conn = s.db
	if s.d == postgresDialect {
		sc, err := s.db.Conn(ctx)
		if err != nil {
			return nil, fmt.Errorf("migrate: %w", err)
		}
		defer sc.Close()
		if _, err := sc.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, int64(migrationLock)); err != nil {
			return nil, fmt.Errorf("migrate: take the migration lock: %w", err)
		}
		defer sc.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(migrationLock))
		c = sc
	}
	done, err := s.applied(ctx, c, true)
	if err != nil {
		return nil, err
	}
	var ran []Migration
	// Trials read before a migration may not be those after it.
	defer func() {
		if len(ran) > 0 {
			s.final.clear()
		}
	}()
	if dir == Up {
		for _, m := range ms {
			if _, ok := done[m.Version]; ok || (target > 0 && m.Version > target) {
				continue
			}
			if err := s.runMigration(ctx, c, m, m.up, `INSERT INTO `+versionTable+` (version, name, applied_at) VALUES ($1, $2, `+s.d.now+`)`, m.Version, m.Name); err != nil {
				return ran, err
			}
			ran = append(ran, m)
		}
		return ran, nil
	}
	for i := len(ms) - 1; i >= 0; i-- {
		m := ms[i]
		if _, ok := done[m.Version]; !ok {
			continue
		}
		if target > 0 && m.Version <= target {
			break
		}
		if err := s.runMigration(ctx, c, m, m.down, `DELETE FROM `+versionTable+` WHERE version = $1`, m.Version); err != nil {
			return ran, err
		}
		ran = append(ran, m)
		if target == 0 {
			break
		}
	}
	return ran, nil
}

// runMigration runs one migration's SQL and its version-table change in one
// transaction. On SQLite, the transaction starts with the write lock, and
// the version is checked again inside it, in case another process migrated
// first.
func (s *Store) runMigration(ctx context.Context, c conn, m Migration, body, record string, args ...any) error {
	tx, err := c.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migration %03d_%s: %w", m.Version, m.Name, err)
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM `+versionTable+` WHERE version = $1`, m.Version).Scan(&n); err != nil {
		return fmt.Errorf("migration %03d_%s: %w", m.Version, m.Name, err)
	}
	if up := strings.HasPrefix(record, "INSERT"); (up && n > 0) || (!up && n == 0) {
		return nil // another process got there first
	}
	if _, err := tx.ExecContext(ctx, body); err != nil {
		return fmt.Errorf("migration %03d_%s: %w", m.Version, m.Name, err)
	}
	if _, err := tx.ExecContext(ctx, record, args...); err != nil {
		return fmt.Errorf("migration %03d_%s: record version: %w", m.Version, m.Name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migration %03d_%s: %w", m.Version, m.Name, err)
	}
	return nil
}
