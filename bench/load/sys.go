package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/floodtune/floodtune/storage"
)

// withParams returns rawURL with the query parameters of kv ("k=v&k=v")
// and the database db set (db "" keeps it).
func withParams(rawURL, db string, kv ...string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", errors.New("want a URL like postgres://user@host:5432/db")
	}
	if db != "" {
		u.Path = "/" + db
	}
	q := u.Query()
	for _, s := range kv {
		extra, err := url.ParseQuery(s)
		if err != nil {
			return "", fmt.Errorf("parameters %q: %w", s, err)
		}
		for k, v := range extra {
			q[k] = v
		}
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// freshDatabase creates a new database on the server of adminURL (a role
// that may create databases) and returns its name and a function that drops
// it, with every connection to it (PgBouncer's included).
func freshDatabase(ctx context.Context, adminURL, prefix string) (string, func(), error) {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	name := prefix + "_" + hex.EncodeToString(b)
	if err := adminExec(ctx, adminURL, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", nil, fmt.Errorf("create database %s: %w", name, err)
	}
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := adminExec(ctx, adminURL, "DROP DATABASE "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			fmt.Fprintf(os.Stderr, "load: drop database %s: %v\n", name, err)
		}
	}
	return name, drop, nil
}

// adminExec runs statements on a connection of its own.
func adminExec(ctx context.Context, rawURL string, stmts ...string) error {
	conn, err := pgx.Connect(ctx, rawURL)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", storage.Redact(rawURL), err)
	}
	defer conn.Close(context.Background())
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// serverStats are the server-wide counters a run reads before and after:
// the transactions of one database, the WAL written and synced, and the
// CPU time of the server's processes (when it runs on this machine).
type serverStats struct {
	commits, rollbacks int64
	walBytes           float64 // pg_current_wal_lsn, as a number of bytes
	walSyncs, walWrite int64   // pg_stat_wal
	backends           int     // connections to the database (pg_stat_activity)
}

func readServerStats(ctx context.Context, conn *pgx.Conn, db string) (serverStats, error) {
	var s serverStats
	err := conn.QueryRow(ctx, `SELECT d.xact_commit, d.xact_rollback, pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8,
			w.wal_sync, w.wal_write, (SELECT count(*) FROM pg_stat_activity WHERE datname = $1)
		FROM pg_stat_database d, pg_stat_wal w WHERE d.datname = $1`, db).
		Scan(&s.commits, &s.rollbacks, &s.walBytes, &s.walSyncs, &s.walWrite, &s.backends)
	return s, err
}

// postmasterPID returns the process id of the server's postmaster when it
// runs on this machine (the parent of this connection's backend), else 0.
func postmasterPID(ctx context.Context, conn *pgx.Conn) int {
	var backend int
	if err := conn.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&backend); err != nil {
		return 0
	}
	st, ok := procStat(backend)
	if !ok || st.comm != "postgres" {
		return 0
	}
	return st.ppid
}

type procInfo struct {
	comm string
	ppid int
	cpu  time.Duration
}

// ticks is the unit of /proc's CPU times (USER_HZ, 100 on Linux).
const ticks = time.Second / 100

// procStat reads /proc/PID/stat: "pid (comm) state ppid ...", utime and
// stime the 14th and 15th fields.
func procStat(pid int) (procInfo, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procInfo{}, false
	}
	s := string(b)
	i, j := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if i < 0 || j < i {
		return procInfo{}, false
	}
	f := strings.Fields(s[j+1:])
	if len(f) < 13 {
		return procInfo{}, false
	}
	ppid, _ := strconv.Atoi(f[1])
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	k, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return procInfo{}, false
	}
	return procInfo{comm: s[i+1 : j], ppid: ppid, cpu: time.Duration(u+k) * ticks}, true
}

// cpuTimes are CPU times used so far: by this process and its children
// that ended, by the processes of one PostgreSQL server (its postmaster
// and the postmaster's children; a backend that ends takes its time with
// it), by PgBouncer (pid), and by the whole machine.
type cpuTimes struct {
	at                               time.Time
	client, postgres, bouncer, total time.Duration
}

func cpuNow(postmaster, bouncer int) cpuTimes {
	c := cpuTimes{at: time.Now()}
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if syscall.Getrusage(who, &ru) == nil {
			c.client += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		if f := strings.Fields(line); len(f) >= 9 && f[0] == "cpu" {
			for i, v := range f[1:9] {
				n, _ := strconv.ParseInt(v, 10, 64)
				if i != 3 && i != 4 { // all but idle and iowait
					c.total += time.Duration(n) * ticks
				}
			}
		}
	}
	if bouncer > 0 {
		if p, ok := procStat(bouncer); ok {
			c.bouncer = p.cpu
		}
	}
	if postmaster > 0 {
		stats, _ := filepath.Glob("/proc/[0-9]*/stat")
		for _, path := range stats {
			pid, err := strconv.Atoi(filepath.Base(filepath.Dir(path)))
			if err != nil {
				continue
			}
			if p, ok := procStat(pid); ok && (pid == postmaster || p.ppid == postmaster) {
				c.postgres += p.cpu
			}
		}
	}
	return c
}

func (c cpuTimes) sub(o cpuTimes) cpuTimes {
	return cpuTimes{at: c.at, client: c.client - o.client, postgres: max(c.postgres-o.postgres, 0),
		bouncer: max(c.bouncer-o.bouncer, 0), total: c.total - o.total}
}

// busy is the share of the machine's CPUs used over d.
func (c cpuTimes) busy(d time.Duration) float64 {
	return c.total.Seconds() / (d.Seconds() * float64(runtime.NumCPU()))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }
