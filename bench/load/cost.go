package main

// -mode cost: what one trial costs the database, for docs/scaling.md.
//
// Each profile runs in a fresh database of the -db server, whose schema is
// migrated and whose study is created first, and -cost.warmup trials are
// run before anything is counted (TPE past its start-up trials, a study
// with a history). Then the server's counters are read, a new store is
// opened through a byte-counting TCP proxy in this process, the measured
// trials run on one worker, the store is closed (its backends exit, which
// flushes their statistics) and the counters are read again:
//
//   - statements and their execution time: pg_stat_statements (the server
//     needs shared_preload_libraries=pg_stat_statements; without it these
//     columns are empty), BEGIN/COMMIT/ROLLBACK counted apart;
//   - transactions: pg_stat_database's xact_commit + xact_rollback of the
//     database (a statement outside BEGIN/COMMIT is a transaction);
//   - WAL: bytes from pg_current_wal_lsn, records and fsyncs
//     (wal_sync) from pg_stat_wal, server-wide;
//   - bytes on the wire, each way, counted by the proxy;
//   - CPU time of the server's processes (the postmaster and its
//     children, read from /proc while the backends still run) and of
//     this process.
//
// Profiles:
//
//	minimal   an external trainer's study, random sampler: Ask (no
//	          heartbeat goroutine) → Tell
//	trainer   the built-in trainer's study (MNIST spec, TPE over
//	          flood_level and lr, the constant liar) run by search.Optimize
//	          with one worker and an objective that trains nothing but
//	          reports -cost.epochs values and records the 11 user
//	          attributes the built-in objective records
//	heartbeat one running trial's lease renewed -cost.heartbeats times
//	          (Trial.Heartbeat, what the heartbeat goroutine does every 2 s)
//
// Two probes follow: the commit ceiling (32 goroutines renewing their own
// trials' leases as fast as they can for 5 s: commits and WAL fsyncs per
// second, and the server's CPU share) and the connections one worker
// process holds (search.Optimize, one worker, a heartbeat every 10 ms
// while the objective reports every 5 ms: the most server connections
// open at once). From these figures it prints the capacity model: the
// workers one server carries at trial lengths of 10 s, 1 min and 10 min.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/floodtune/floodtune/bench/internal/stats"

	"github.com/jackc/pgx/v5"

	"github.com/floodtune/floodtune/search"
	"github.com/floodtune/floodtune/storage"
)

type costConfig struct {
	db                                 string
	trials, warmup, epochs, heartbeats int
	cores, target                      float64
	maxConns                           int
	seed                               int64
	timeout                            time.Duration
	fsyncDir                           string
}

// proxy forwards TCP connections to a server and counts the bytes each
// way and the connections.
type proxy struct {
	ln            net.Listener
	target        string
	up, down      atomic.Int64 // client → server, server → client
	conns         atomic.Int64
	wg            sync.WaitGroup
	mu            sync.Mutex
	open          map[net.Conn]bool
	acceptStopped chan struct{}
}

func newProxy(target string) (*proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &proxy{ln: ln, target: target, open: map[net.Conn]bool{}, acceptStopped: make(chan struct{})}
	go p.accept()
	return p, nil
}

func (p *proxy) accept() {
	defer close(p.acceptStopped)
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.conns.Add(1)
		p.mu.Lock()
		p.open[c], p.open[s] = true, true
		p.mu.Unlock()
		p.wg.Add(2)
		pipe := func(dst, src net.Conn, n *atomic.Int64) {
			defer p.wg.Done()
			k, _ := io.Copy(dst, src)
			n.Add(k)
			dst.Close()
			src.Close()
		}
		go pipe(s, c, &p.up)
		go pipe(c, s, &p.down)
	}
}

func (p *proxy) Close() {
	p.ln.Close()
	<-p.acceptStopped
	p.mu.Lock()
	for c := range p.open {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// counts are the figures of one profile over its measured part.
type counts struct {
	n                    int // trials (or heartbeats)
	statements, control  float64
	execMS               float64
	rows                 float64
	txns                 float64
	walBytes, walRecords float64
	walSyncs             float64
	up, down             float64
	pgCPU, clientCPU     time.Duration
	wall                 time.Duration
	top                  []stmt
	haveStatements       bool
}

type stmt struct {
	query string
	calls float64
	ms    float64
}

func (c counts) per(x float64) float64 { return x / float64(c.n) }

func runCost(ctx context.Context, w io.Writer, cfg costConfig) error {
	admin, err := pgx.Connect(ctx, cfg.db)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", storage.Redact(cfg.db), err)
	}
	defer admin.Close(context.Background())
	var version, syncCommit, preload string
	var maxConns, reserved int
	if err := admin.QueryRow(ctx, `SELECT current_setting('server_version'), current_setting('synchronous_commit'),
			current_setting('shared_preload_libraries'), current_setting('max_connections')::int, current_setting('superuser_reserved_connections')::int`).
		Scan(&version, &syncCommit, &preload, &maxConns, &reserved); err != nil {
		return err
	}
	if cfg.maxConns > 0 {
		maxConns = cfg.maxConns
	}
	postmaster := postmasterPID(ctx, admin)
	fmt.Fprintf(w, "## Cost of a trial to the database\n\n")
	fmt.Fprintf(w, "PostgreSQL %s at %s (synchronous_commit %s, max_connections %d, shared_preload_libraries '%s'); %d CPUs; load average before: %s\n",
		version, storage.Redact(cfg.db), syncCommit, maxConns, preload, cfgCPUs(), stats.LoadAverage())
	fmt.Fprintf(w, "each profile: a fresh database, %d warm-up trials, then %d measured trials on one worker through a byte-counting proxy; per trial:\n\n", cfg.warmup, cfg.trials)

	profiles := []struct {
		name, what string
		run        func(ctx context.Context, st *storage.Store, name string, n int) error
		spec       func() (*search.Spec, error)
		n          int
	}{
		{"minimal", "external trainer, random sampler: Ask → Tell", runMinimal, func() (*search.Spec, error) { return loadSpec("random", 100_000, cfg.seed) }, cfg.trials},
		{"trainer", fmt.Sprintf("built-in trainer's spec, TPE (2 params, constant liar), search.Optimize 1 worker: Ask, %d reports, 11 attributes, Tell", cfg.epochs),
			func(ctx context.Context, st *storage.Store, name string, n int) error {
				return runTrainer(ctx, st, name, n, cfg.epochs, 0, 0)
			},
			func() (*search.Spec, error) { return trainerSpec(cfg.epochs, cfg.seed) }, cfg.trials},
		{"heartbeat", "one lease renewal (Trial.Heartbeat)", runHeartbeats, func() (*search.Spec, error) { return loadSpec("random", 100_000, cfg.seed) }, cfg.heartbeats},
	}
	results := map[string]counts{}
	for _, p := range profiles {
		spec, err := p.spec()
		if err != nil {
			return err
		}
		c, err := profile(ctx, cfg, admin, postmaster, spec, p.name, p.n, p.run)
		if err != nil {
			return fmt.Errorf("profile %s: %w", p.name, err)
		}
		results[p.name] = c
		fmt.Fprintf(w, "- %s: %s\n", p.name, p.what)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| profile | per | statements | BEGIN/COMMIT | transactions | exec ms | rows | WAL bytes | WAL records | WAL fsyncs | bytes to server | bytes from server | PostgreSQL CPU ms | worker CPU ms |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, p := range profiles {
		c := results[p.name]
		unit := "trial"
		if p.name == "heartbeat" {
			unit = "heartbeat"
		}
		st, ctl, ex, rows := "–", "–", "–", "–"
		if c.haveStatements {
			st, ctl, ex, rows = f1(c.per(c.statements)), f1(c.per(c.control)), fmt.Sprintf("%.3f", c.per(c.execMS)), f1(c.per(c.rows))
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %.0f | %s | %s | %.0f | %.0f | %.3f | %.3f |\n", p.name, unit, st, ctl, f1(c.per(c.txns)), ex, rows,
			c.per(c.walBytes), f1(c.per(c.walRecords)), f1(c.per(c.walSyncs)), c.per(c.up), c.per(c.down),
			c.pgCPU.Seconds()*1e3/float64(c.n), c.clientCPU.Seconds()*1e3/float64(c.n))
	}
	fmt.Fprintln(w)
	for _, p := range profiles {
		c := results[p.name]
		if !c.haveStatements {
			continue
		}
		fmt.Fprintf(w, "Statements of the %s profile per %s (calls, mean exec ms):\n\n", p.name, map[bool]string{true: "heartbeat", false: "trial"}[p.name == "heartbeat"])
		for _, s := range c.top {
			fmt.Fprintf(w, "    %6.2f  %.3f  %s\n", c.per(s.calls), s.ms/s.calls, s.query)
		}
		fmt.Fprintln(w)
	}

	// The commit ceiling.
	ceil, err := commitCeiling(ctx, cfg, admin, postmaster)
	if err != nil {
		return fmt.Errorf("commit ceiling: %w", err)
	}
	fmt.Fprintf(w, "Commit ceiling (32 goroutines renewing leases flat out for %.1f s, one pgx pool of 32): %.0f commits/s, %.0f WAL fsyncs/s (%.1f commits per fsync), PostgreSQL CPU %.0f%% of one core, machine %.0f%% busy; PostgreSQL CPU %.3f ms per commit\n\n",
		ceil.wall.Seconds(), ceil.commitsPerSec, ceil.syncsPerSec, ceil.commitsPerSec/math.Max(ceil.syncsPerSec, 1), 100*ceil.pgShare, 100*ceil.busy, ceil.pgMSPerCommit)

	conns, err := connectionsPerWorker(ctx, cfg, admin)
	if err != nil {
		return fmt.Errorf("connections per worker: %w", err)
	}
	fmt.Fprintf(w, "Connections one worker process holds (search.Optimize, 1 worker, heartbeat every 10 ms, a report every 5 ms): at most %d open at once\n\n", conns)

	fsyncCap := 0.0
	if cfg.fsyncDir != "" {
		if fsyncCap, err = fsyncRate(cfg.fsyncDir); err != nil {
			return fmt.Errorf("fsync rate: %w", err)
		}
		fmt.Fprintf(w, "WAL disk: %.0f fdatasyncs/s of an 8 KiB write, one writer (in %s, what PostgreSQL's wal_sync_method fdatasync does)\n\n", fsyncCap, cfg.fsyncDir)
	}
	groupFactor := ceil.commitsPerSec / math.Max(ceil.syncsPerSec, 1)

	// The capacity model.
	tr, hb := results["trainer"], results["heartbeat"]
	cpuTrial := tr.pgCPU.Seconds() / float64(tr.n)
	cpuHB := hb.pgCPU.Seconds() / float64(hb.n)
	txTrial, txHB := tr.per(tr.txns), hb.per(hb.txns)
	interval := search.DefaultHeartbeat.Seconds()
	usable := maxConns - reserved
	fmt.Fprintf(w, "### Capacity model: workers one PostgreSQL serves (trainer profile + a heartbeat every %.0f s)\n\n", interval)
	syncTrial, syncHB := tr.per(tr.walSyncs), hb.per(hb.walSyncs)
	fmt.Fprintf(w, "Assumptions: %.0f database cores used up to %.0f%% (-cost.db-cores, -cost.target); per trial %.3f ms of server CPU, %.1f transactions and %.1f WAL fsyncs; per heartbeat %.3f ms, %.1f and %.1f; ",
		cfg.cores, 100*cfg.target, cpuTrial*1e3, txTrial, syncTrial, cpuHB*1e3, txHB, syncHB)
	if fsyncCap > 0 {
		fmt.Fprintf(w, "the WAL disk's %.0f fsyncs/s used up to %.0f%%, either one commit per fsync (no grouping, the floor) or %.1f commits per fsync (the grouping measured at the commit ceiling); ", fsyncCap, 100*cfg.target, groupFactor)
	}
	fmt.Fprintf(w, "%d usable connections (max_connections %d − %d reserved), %d per worker process; a study of about %d trials (TPE's reads grow with the study: bench/tpecost).\n\n",
		usable, maxConns, reserved, conns, cfg.warmup+cfg.trials)
	fmt.Fprintln(w, "| trial length | server CPU per worker (ms/s) | transactions per worker per s | WAL fsyncs per worker per s | workers by CPU | workers by fsyncs, no grouping | with grouping | workers by connections (direct) | first bottleneck |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---|")
	for _, L := range []time.Duration{10 * time.Second, time.Minute, 10 * time.Minute} {
		l := L.Seconds()
		cpuRate := (cpuTrial + l/interval*cpuHB) / l // s of CPU per s
		txRate := (txTrial + l/interval*txHB) / l
		syncRate := (syncTrial + l/interval*syncHB) / l
		byCPU := cfg.cores * cfg.target / cpuRate
		byConn := float64(usable) / float64(max(conns, 1))
		bySync, byGroup := "–", "–"
		first, m := "connections", byConn
		if byCPU < m {
			first, m = "database CPU", byCPU
		}
		if fsyncCap > 0 {
			floor := fsyncCap * cfg.target / syncRate
			grouped := floor * groupFactor
			bySync, byGroup = fmt.Sprintf("%.0f", floor), fmt.Sprintf("%.0f", grouped)
			if grouped < m {
				first = "WAL fsyncs"
			}
		}
		fmt.Fprintf(w, "| %v | %.3f | %.2f | %.2f | %.0f | %s | %s | %.0f | %s |\n", L, cpuRate*1e3, txRate, syncRate, byCPU, bySync, byGroup, byConn, first)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "load average after: %s\n", stats.LoadAverage())
	return nil
}

func cfgCPUs() int { return runtime.NumCPU() }

func f1(x float64) string { return strconv.FormatFloat(x, 'f', 1, 64) }

func trainerSpec(epochs int, seed int64) (*search.Spec, error) {
	return search.ParseSpec(fmt.Appendf(nil, `
dataset: {name: mnist, label_noise: 0.2, train_size: 10000, val_size: 2500}
model: {hidden: [500, 500]}
training: {optimizer: momentum, lr: 0.1, batch_size: 128, epochs: %d, flood: flood}
search: {sampler: tpe, pruner: none, trials: 100000, seed: %d, objective: val_acc}
space:
  flood_level: {type: float, low: 0.0, high: 1.5}
  lr: {type: float, low: 0.01, high: 0.3, log: true}
`, epochs, seed))
}

// profile runs one profile in a fresh database and returns its counts.
func profile(ctx context.Context, cfg costConfig, admin *pgx.Conn, postmaster int, spec *search.Spec, name string, n int,
	run func(ctx context.Context, st *storage.Store, name string, n int) error) (counts, error) {
	c := counts{n: n}
	dbName, drop, err := freshDatabase(ctx, cfg.db, "cost")
	if err != nil {
		return c, err
	}
	defer drop()
	directURL, err := withParams(cfg.db, dbName)
	if err != nil {
		return c, err
	}
	_, err = admin.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
	c.haveStatements = err == nil
	st, err := storage.Open(ctx, directURL)
	if err != nil {
		return c, err
	}
	if _, err := search.Create(ctx, st, name, spec); err != nil {
		st.Close()
		return c, err
	}
	if name == "trainer" && cfg.warmup > 0 {
		err = runTrainer(ctx, st, name, cfg.warmup, cfg.epochs, 0, 0)
	} else if name != "heartbeat" && cfg.warmup > 0 {
		err = runMinimal(ctx, st, name, cfg.warmup)
	}
	st.Close()
	if err != nil {
		return c, fmt.Errorf("warm-up: %w", err)
	}

	// Through the proxy, from here on counted.
	u, err := url.Parse(directURL)
	if err != nil {
		return c, err
	}
	px, err := newProxy(u.Host)
	if err != nil {
		return c, err
	}
	defer px.Close()
	u.Host = px.ln.Addr().String()
	proxied := u.String()

	if err := waitIdle(ctx, admin, dbName); err != nil {
		return c, err
	}
	if c.haveStatements {
		if _, err := admin.Exec(ctx, `SELECT pg_stat_statements_reset()`); err != nil {
			c.haveStatements = false
		}
	}
	var wal0 [3]float64
	var before serverStats
	if before, err = readServerStats(ctx, admin, dbName); err != nil {
		return c, err
	}
	if err := admin.QueryRow(ctx, `SELECT wal_records::float8, wal_bytes::float8, wal_sync::float8 FROM pg_stat_wal`).Scan(&wal0[0], &wal0[1], &wal0[2]); err != nil {
		return c, err
	}
	cpu0 := cpuNow(postmaster, 0)
	t0 := time.Now()
	rctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	st, err = storage.Open(rctx, proxied)
	if err != nil {
		return c, err
	}
	err = run(rctx, st, name, n)
	cpu1 := cpuNow(postmaster, 0)
	c.wall = time.Since(t0)
	lsn1 := 0.0
	_ = admin.QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8`).Scan(&lsn1)
	st.Close()
	if err != nil {
		return c, err
	}
	if err := waitIdle(ctx, admin, dbName); err != nil {
		return c, err
	}
	after, err := readServerStats(ctx, admin, dbName)
	if err != nil {
		return c, err
	}
	var wal1 [3]float64
	if err := admin.QueryRow(ctx, `SELECT wal_records::float8, wal_bytes::float8, wal_sync::float8 FROM pg_stat_wal`).Scan(&wal1[0], &wal1[1], &wal1[2]); err != nil {
		return c, err
	}
	d := cpu1.sub(cpu0)
	c.pgCPU, c.clientCPU = d.postgres, d.client
	c.txns = float64(after.commits + after.rollbacks - before.commits - before.rollbacks)
	c.walBytes = lsn1 - before.walBytes
	c.walRecords, c.walSyncs = wal1[0]-wal0[0], wal1[2]-wal0[2]
	c.up, c.down = float64(px.up.Load()), float64(px.down.Load())
	if c.haveStatements {
		rows, err := admin.Query(ctx, `SELECT query, calls::float8, rows::float8, total_exec_time FROM pg_stat_statements
			WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1) ORDER BY calls DESC, query`, dbName)
		if err != nil {
			return c, err
		}
		for rows.Next() {
			var q string
			var calls, nrows, exec float64
			if err := rows.Scan(&q, &calls, &nrows, &exec); err != nil {
				rows.Close()
				return c, err
			}
			switch strings.ToUpper(strings.TrimSpace(q)) {
			case "BEGIN", "COMMIT", "ROLLBACK", "BEGIN READ WRITE", "BEGIN ISOLATION LEVEL READ COMMITTED":
				c.control += calls
			default:
				c.statements += calls
			}
			c.execMS += exec
			c.rows += nrows
			c.top = append(c.top, stmt{query: oneLine(q, 110), calls: calls, ms: exec})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return c, err
		}
	}
	return c, nil
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n-1] + "…"
	}
	return s
}

// waitIdle waits until no connection to the database is left (a closed
// backend has flushed its statistics), 10 s at most.
func waitIdle(ctx context.Context, admin *pgx.Conn, db string) error {
	for range 200 {
		var n int
		if err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = $1`, db).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("the database's connections did not close within 10 s")
}

func runMinimal(ctx context.Context, st *storage.Store, name string, n int) error {
	s, err := search.Load(ctx, st, name)
	if err != nil {
		return err
	}
	for range n {
		t, err := s.Ask(ctx, search.AskOptions{Heartbeat: -1})
		if err != nil {
			return err
		}
		if err := t.Tell(ctx, objectiveValue(t.FloodLevel(), 1)); err != nil {
			return err
		}
	}
	return nil
}

// runTrainer runs n trials like the built-in trainer's through Optimize
// with one worker; heartbeat and pause (between reports) 0 keep the
// defaults and do not wait.
func runTrainer(ctx context.Context, st *storage.Store, name string, n, epochs int, heartbeat, pause time.Duration) error {
	objective := func(ctx context.Context, t *search.Trial) (float64, error) {
		v := objectiveValue(t.FloodLevel(), 1)
		curve := make([]string, epochs)
		for e := 1; e <= epochs; e++ {
			if pause > 0 {
				time.Sleep(pause)
			}
			x := v * float64(e) / float64(epochs)
			curve[e-1] = strconv.FormatFloat(x, 'g', 6, 64)
			if err := t.Report(ctx, e, x); err != nil {
				return math.NaN(), err
			}
		}
		g := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
		for k, x := range map[string]string{
			"ascent_fraction": g(0.1), "epochs": strconv.Itoa(epochs), "seconds": "20",
			"test_acc": g(v + 0.01), "test_loss": g(0.5), "train_loss": g(1), "train_acc": g(0.8), "val_loss": g(0.5), "val_acc": g(v),
			"train_loss_curve": "[" + strings.Join(curve, ",") + "]", "val_loss_curve": "[" + strings.Join(curve, ",") + "]",
		} {
			t.Attrs[k] = x
		}
		return v, nil
	}
	var failed atomic.Int64
	err := search.Optimize(ctx, st, name, search.Options{Workers: 1, MaxTrials: n, Name: "cost", Objective: objective, Heartbeat: heartbeat,
		OnTrial: func(r search.Result) {
			if r.State != storage.Complete {
				failed.Add(1)
			}
		}})
	if err == nil && failed.Load() > 0 {
		err = fmt.Errorf("%d trials did not complete", failed.Load())
	}
	return err
}

func runHeartbeats(ctx context.Context, st *storage.Store, name string, n int) error {
	s, err := search.Load(ctx, st, name)
	if err != nil {
		return err
	}
	t, err := s.Ask(ctx, search.AskOptions{Heartbeat: -1})
	if err != nil {
		return err
	}
	for range n {
		if err := t.Heartbeat(ctx); err != nil {
			return err
		}
	}
	return t.Tell(ctx, 0.5)
}

type ceiling struct {
	wall                                                     time.Duration
	commitsPerSec, syncsPerSec, pgShare, busy, pgMSPerCommit float64
}

// commitCeiling renews 32 trials' leases as fast as possible for 5 s.
func commitCeiling(ctx context.Context, cfg costConfig, admin *pgx.Conn, postmaster int) (ceiling, error) {
	var c ceiling
	dbName, drop, err := freshDatabase(ctx, cfg.db, "ceiling")
	if err != nil {
		return c, err
	}
	defer drop()
	u, err := withParams(cfg.db, dbName, "pool_max_conns=32")
	if err != nil {
		return c, err
	}
	st, err := storage.Open(ctx, u)
	if err != nil {
		return c, err
	}
	defer st.Close()
	spec, err := loadSpec("random", 1000, cfg.seed)
	if err != nil {
		return c, err
	}
	s, err := search.Create(ctx, st, "ceiling", spec)
	if err != nil {
		return c, err
	}
	const g = 32
	trials := make([]*search.Trial, g)
	for i := range trials {
		if trials[i], err = s.Ask(ctx, search.AskOptions{Heartbeat: -1}); err != nil {
			return c, err
		}
	}
	var sync0, sync1 float64
	if err := admin.QueryRow(ctx, `SELECT wal_sync::float8 FROM pg_stat_wal`).Scan(&sync0); err != nil {
		return c, err
	}
	cpu0 := cpuNow(postmaster, 0)
	var done atomic.Int64
	var wg sync.WaitGroup
	var firstErr error
	var mu sync.Mutex
	end := time.Now().Add(5 * time.Second)
	for _, t := range trials {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				if err := t.Heartbeat(ctx); err != nil {
					mu.Lock()
					firstErr = cmpErr(firstErr, err)
					mu.Unlock()
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	d := cpuNow(postmaster, 0).sub(cpu0)
	if firstErr != nil {
		return c, firstErr
	}
	// The backends are still open: their fsyncs are counted when they
	// flush their statistics; close them first.
	for _, t := range trials {
		_ = t.Tell(ctx, 0.5)
	}
	st.Close()
	if err := waitIdle(ctx, admin, dbName); err != nil {
		return c, err
	}
	if err := admin.QueryRow(ctx, `SELECT wal_sync::float8 FROM pg_stat_wal`).Scan(&sync1); err != nil {
		return c, err
	}
	el := d.at.Sub(cpu0.at)
	c.wall = el
	c.commitsPerSec = float64(done.Load()) / el.Seconds()
	c.syncsPerSec = (sync1 - sync0) / el.Seconds()
	c.pgShare = d.postgres.Seconds() / el.Seconds()
	c.busy = d.busy(el)
	c.pgMSPerCommit = d.postgres.Seconds() * 1e3 / float64(done.Load())
	return c, nil
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// connectionsPerWorker runs one worker process's worth of trials with a
// heartbeat that overlaps the trial's calls, and returns the most server
// connections open to the database at once.
func connectionsPerWorker(ctx context.Context, cfg costConfig, admin *pgx.Conn) (int, error) {
	dbName, drop, err := freshDatabase(ctx, cfg.db, "conns")
	if err != nil {
		return 0, err
	}
	defer drop()
	u, err := withParams(cfg.db, dbName)
	if err != nil {
		return 0, err
	}
	st, err := storage.Open(ctx, u)
	if err != nil {
		return 0, err
	}
	defer st.Close()
	spec, err := trainerSpec(10, cfg.seed)
	if err != nil {
		return 0, err
	}
	if _, err := search.Create(ctx, st, "trainer", spec); err != nil {
		return 0, err
	}
	peak := 0
	stop := make(chan struct{})
	polled := make(chan error, 1)
	mon, err := pgx.Connect(ctx, cfg.db)
	if err != nil {
		return 0, err
	}
	defer mon.Close(context.Background())
	go func() {
		for {
			select {
			case <-stop:
				polled <- nil
				return
			case <-time.After(2 * time.Millisecond):
			}
			var n int
			if err := mon.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = $1`, dbName).Scan(&n); err != nil {
				polled <- err
				return
			}
			peak = max(peak, n)
		}
	}()
	err = runTrainer(ctx, st, "trainer", 20, 10, 10*time.Millisecond, 5*time.Millisecond)
	close(stop)
	if perr := <-polled; err == nil {
		err = perr
	}
	return peak, err
}

// fsyncRate writes 8 KiB and fdatasyncs it in a loop for 2 s in a file of
// dir, and returns the syncs per second.
func fsyncRate(dir string) (float64, error) {
	f, err := os.CreateTemp(dir, "fsync-probe-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 8192)
	n := 0
	t0 := time.Now()
	for time.Since(t0) < 2*time.Second {
		if _, err := f.WriteAt(buf, 0); err != nil {
			return 0, err
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			return 0, err
		}
		n++
	}
	return float64(n) / time.Since(t0).Seconds(), nil
}
