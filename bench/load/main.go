// Command load puts many concurrent workers on one study in PostgreSQL, on
// loopback, directly and through PgBouncer, and measures what a trial costs
// the database. It has two modes.
//
// -mode load (the default): for each number of workers (-workers 8,64,256),
// each number of processes (-procs 1,4: the workers as goroutines of this
// process, or split evenly over that many child processes, this program
// run again) and each path (-paths direct,pgbouncer), a fresh database
// holds one fresh study of -trials trials (an external trainer's spec with
// flood_level and a log-uniform lr, -sampler random by default so that the
// figures are the storage's, not TPE's; no pruner, no baseline). Its schema
// is migrated directly against PostgreSQL, never through the pooler. Each
// worker is a goroutine with a search.Study handle of its own that loops
// Ask ("claim") → Report × -steps → Tell ("finish") until the budget is
// spent, with a trivial objective; a call that fails is counted by kind and
// its trial given back (Release), to be run again. A run is bounded by
// -timeout and ends by itself.
//
// After each run the program checks, on a direct connection, that the
// study counts exactly -trials trials, all complete, that the trial numbers
// are unique and gap-free (0..N-1 when nothing was given back), that no
// failed trial is left unretried, and that every complete trial was told by
// exactly one worker, exactly once: otherwise it fails, loudly. It prints a
// table (workers, processes, path, trials/s, claim and finish p50/p99,
// errors) and one of CPU and connections: CPU time per trial of the
// workers' processes, of the PostgreSQL server's processes and of PgBouncer
// (when they run on this machine), the machine's busy share, WAL bytes per
// trial, and the server connections open to the study's database.
//
// The direct path opens each process's pgx pool with pool_max_conns =
// min(goroutines, -direct-pool-cap); the PgBouncer path gives every
// goroutine a client connection (pool_max_conns = goroutines, up to 256
// client connections) and adds -bouncer-params to the URL (pgx's simple
// protocol, which PgBouncer's transaction pooling needs). The PgBouncer
// URL (-bouncer) must route any database name to the server of -db (a "*"
// entry); bench/load.sh starts one.
//
// -mode cost: what one trial costs the database, for the capacity model of
// docs/scaling.md; see cost.go.
//
//	go -C bench run ./load -db postgres://postgres@127.0.0.1:5432/postgres -bouncer postgres://postgres@127.0.0.1:6432/postgres
//	go -C bench run ./load -mode cost -db postgres://postgres@127.0.0.1:5432/postgres
//
// The -db role must be able to create databases. bench/load.sh starts a
// throw-away PostgreSQL and PgBouncer and runs both modes.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/floodtune/floodtune/bench/internal/stats"

	"github.com/jackc/pgx/v5"

	"github.com/floodtune/floodtune/search"
	"github.com/floodtune/floodtune/storage"
)

const envDatabaseURL = "FLOODTUNE_BENCH_DATABASE_URL"

const (
	pathDirect    = "direct"
	pathPgBouncer = "pgbouncer"
)

type config struct {
	db, bouncer, bouncerParams string
	bouncerPID, bouncerPool    int
	workers, procs             []int
	paths                      []string
	trials, steps, poolCap     int
	sampler                    string
	seed                       int64
	timeout                    time.Duration
}

func main() {
	mode := flag.String("mode", "load", "load (throughput of many workers) or cost (what a trial costs the database)")
	db := flag.String("db", os.Getenv(envDatabaseURL), "PostgreSQL URL of a role that may create databases (default $"+envDatabaseURL+")")
	bouncer := flag.String("bouncer", "", "PgBouncer URL (transaction pooling, a * database entry for -db's server); empty: no pgbouncer path")
	bouncerParams := flag.String("bouncer-params", "default_query_exec_mode=simple_protocol", "URL parameters added on the PgBouncer path")
	bouncerPID := flag.Int("bouncer-pid", 0, "PgBouncer's process id, for its CPU time")
	bouncerPool := flag.Int("bouncer-pool", 0, "PgBouncer's server pool size, for the header (what it was started with)")
	workersF := flag.String("workers", "8,64,256", "numbers of concurrent workers")
	procsF := flag.String("procs", "1,4", "numbers of processes the workers are split over (1: goroutines of this process)")
	pathsF := flag.String("paths", pathDirect+","+pathPgBouncer, "paths: direct, pgbouncer")
	trials := flag.Int("trials", 2000, "trials in each study (its budget)")
	steps := flag.Int("steps", 1, "reports per trial")
	sampler := flag.String("sampler", "random", "sampler of the studies (random measures the storage; tpe adds the sampler's cost)")
	seed := flag.Int64("seed", 1, "the studies' seed")
	poolCap := flag.Int("direct-pool-cap", 64, "most pgx connections per process on the direct path")
	timeout := flag.Duration("timeout", 2*time.Minute, "longest a run may take; it fails after that")
	// cost mode
	costTrials := flag.Int("cost.trials", 400, "cost: trials measured per profile")
	costWarmup := flag.Int("cost.warmup", 200, "cost: trials run before the measured ones")
	costEpochs := flag.Int("cost.epochs", 20, "cost: intermediate values of the trainer-like trial")
	costHeartbeats := flag.Int("cost.heartbeats", 1000, "cost: heartbeats measured")
	cores := flag.Float64("cost.db-cores", float64(runtime.NumCPU()), "cost: cores of the database machine, for the capacity model")
	target := flag.Float64("cost.target", 0.7, "cost: share of the database's CPU a fleet may use")
	maxConns := flag.Int("cost.max-connections", 0, "cost: the server's max_connections for the model (0: read it from the server)")
	fsyncDir := flag.String("cost.fsync-dir", "", "cost: a directory on the WAL's disk, to measure its fdatasyncs per second (empty: not measured)")
	// child process
	child := flag.Bool("child", false, "internal: run as a worker process of a run")
	childURL := flag.String("child.url", "", "internal")
	childStudy := flag.String("child.study", "", "internal")
	childProc := flag.Int("child.proc", 0, "internal")
	childG := flag.Int("child.g", 1, "internal")
	flag.Parse()

	fail := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "load: "+format+"\n", args...)
		os.Exit(2)
	}
	if *child {
		if err := childMain(*childURL, *childStudy, *childProc, *childG, *steps, *timeout); err != nil {
			fmt.Fprintf(os.Stderr, "load: worker process %d: %v\n", *childProc, err)
			os.Exit(1)
		}
		return
	}
	if flag.NArg() > 0 {
		fail("unexpected arguments %q", flag.Args())
	}
	if *db == "" {
		fail("no PostgreSQL: give -db postgres://user@host:5432/db or set %s (bench/load.sh starts a throw-away server)", envDatabaseURL)
	}
	if !strings.HasPrefix(*db, "postgres://") && !strings.HasPrefix(*db, "postgresql://") {
		fail("-db %s: want a postgres:// URL", storage.Redact(*db))
	}
	ints := func(name, s string) []int {
		var out []int
		for f := range strings.SplitSeq(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				fail("-%s %q: want positive numbers separated by commas", name, s)
			}
			out = append(out, n)
		}
		return out
	}
	switch *mode {
	case "cost":
		err := runCost(context.Background(), os.Stdout, costConfig{db: *db, trials: *costTrials, warmup: *costWarmup, epochs: *costEpochs,
			heartbeats: *costHeartbeats, cores: *cores, target: *target, maxConns: *maxConns, seed: *seed, timeout: 4 * *timeout, fsyncDir: *fsyncDir})
		if err != nil {
			fmt.Fprintf(os.Stderr, "load: %v\n", err)
			os.Exit(1)
		}
		return
	case "load":
	default:
		fail("-mode %q: want load or cost", *mode)
	}
	cfg := config{db: *db, bouncer: *bouncer, bouncerParams: *bouncerParams, bouncerPID: *bouncerPID, bouncerPool: *bouncerPool,
		workers: ints("workers", *workersF), procs: ints("procs", *procsF), trials: *trials, steps: *steps, poolCap: max(*poolCap, 8),
		sampler: *sampler, seed: *seed, timeout: *timeout}
	for p := range strings.SplitSeq(*pathsF, ",") {
		switch p = strings.TrimSpace(p); p {
		case pathDirect:
		case pathPgBouncer:
			if cfg.bouncer == "" {
				fail("-paths has pgbouncer but -bouncer is empty")
			}
		default:
			fail("-paths %q: want direct, pgbouncer or both", *pathsF)
		}
		cfg.paths = append(cfg.paths, p)
	}
	if cfg.trials < 1 || cfg.steps < 0 {
		fail("want -trials >= 1 and -steps >= 0")
	}
	if err := runLoad(context.Background(), os.Stdout, cfg); err != nil {
		fmt.Fprintf(os.Stderr, "load: %v\n", err)
		os.Exit(1)
	}
}

// row is one run's figures.
type row struct {
	workers, procs int
	path           string
	wall           time.Duration
	res            *workResult
	cpu            cpuTimes
	walBytes       float64
	serverConns    int
	clientConns    int // per process
}

func runLoad(ctx context.Context, w io.Writer, cfg config) error {
	var version string
	if err := withConn(ctx, cfg.db, func(c *pgx.Conn) error {
		return c.QueryRow(ctx, `SELECT current_setting('server_version') || ', max_connections ' || current_setting('max_connections') ||
			', synchronous_commit ' || current_setting('synchronous_commit') || ', fsync ' || current_setting('fsync')`).Scan(&version)
	}); err != nil {
		return err
	}
	fmt.Fprintf(w, "## Load: concurrent workers on one study (loopback)\n\n")
	fmt.Fprintf(w, "PostgreSQL %s at %s\n", version, storage.Redact(cfg.db))
	if slices.Contains(cfg.paths, pathPgBouncer) {
		pool := "?"
		if cfg.bouncerPool > 0 {
			pool = strconv.Itoa(cfg.bouncerPool)
		}
		fmt.Fprintf(w, "PgBouncer at %s: transaction pooling, server pool %s per database; URL parameters %s; one client connection per worker goroutine\n",
			storage.Redact(cfg.bouncer), pool, cfg.bouncerParams)
	}
	fmt.Fprintf(w, "direct: pgx pool per process of min(goroutines, %d) connections; migrations run directly before each run\n", cfg.poolCap)
	fmt.Fprintf(w, "%d trials per study (a fresh database and study per run), sampler %s (the storage's cost, not a sampler's), %d report(s) per trial, no pruner, no baseline, trivial objective; timeout %v per run\n",
		cfg.trials, cfg.sampler, cfg.steps, cfg.timeout)
	fmt.Fprintf(w, "a worker: a goroutine with its own search.Study handle, loop Ask (claim) → Report → Tell (finish); processes > 1: the workers split evenly over child processes of this program\n")
	fmt.Fprintf(w, "%s, %d CPUs; load average before: %s\n\n", runtime.Version(), runtime.NumCPU(), stats.LoadAverage())

	var rows []*row
	var failed []string
	for _, n := range cfg.workers {
		for _, p := range cfg.procs {
			if p > n || n%p != 0 {
				fmt.Fprintf(os.Stderr, "load: %d workers over %d processes: not an even split, skipped\n", n, p)
				continue
			}
			for _, path := range cfg.paths {
				r, err := measure(ctx, cfg, n, p, path)
				if err != nil {
					failed = append(failed, fmt.Sprintf("%d workers, %d processes, %s: %v", n, p, path, err))
					fmt.Fprintf(os.Stderr, "load: FAILED: %s\n", failed[len(failed)-1])
					continue
				}
				rows = append(rows, r)
				fmt.Fprintf(os.Stderr, "load: %d workers, %d processes, %s: %.0f trials/s, %d errors (load average %s)\n",
					n, p, path, float64(cfg.trials)/r.wall.Seconds(), r.res.errorCount(), stats.LoadAverage())
			}
		}
	}
	printLoad(w, cfg, rows)
	fmt.Fprintf(w, "load average after: %s\n", stats.LoadAverage())
	if len(failed) > 0 {
		return fmt.Errorf("%d run(s) FAILED:\n  %s", len(failed), strings.Join(failed, "\n  "))
	}
	return nil
}

func withConn(ctx context.Context, rawURL string, fn func(*pgx.Conn) error) error {
	conn, err := pgx.Connect(ctx, rawURL)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", storage.Redact(rawURL), err)
	}
	defer conn.Close(context.Background())
	return fn(conn)
}

func loadSpec(sampler string, trials int, seed int64) (*search.Spec, error) {
	return search.ParseSpec(fmt.Appendf(nil, `trainer: external
search: {sampler: %s, pruner: none, trials: %d, seed: %d, baseline: false}
space:
  flood_level: {type: float, low: 0.0, high: 1.0}
  lr: {type: float, low: 0.001, high: 0.1, log: true}
`, sampler, trials, seed))
}

// measure runs one study with n workers over procs processes on path, and
// checks what the study recorded.
func measure(ctx context.Context, cfg config, n, procs int, path string) (*row, error) {
	dbName, drop, err := freshDatabase(ctx, cfg.db, "load")
	if err != nil {
		return nil, err
	}
	defer drop()
	directURL, err := withParams(cfg.db, dbName)
	if err != nil {
		return nil, err
	}
	// Migrated directly, never through the pooler.
	st0, err := storage.Open(ctx, directURL)
	if err != nil {
		return nil, err
	}
	defer st0.Close()
	spec, err := loadSpec(cfg.sampler, cfg.trials, cfg.seed)
	if err != nil {
		return nil, err
	}
	name := fmt.Sprintf("load-%d-%d-%s", n, procs, path)
	study, err := search.Create(ctx, st0, name, spec)
	if err != nil {
		return nil, err
	}
	g := n / procs
	var runURL string
	clientConns := min(g, cfg.poolCap)
	if path == pathDirect {
		runURL, err = withParams(cfg.db, dbName, "pool_max_conns="+strconv.Itoa(clientConns))
	} else {
		clientConns = g
		runURL, err = withParams(cfg.bouncer, dbName, cfg.bouncerParams, "pool_max_conns="+strconv.Itoa(clientConns))
	}
	if err != nil {
		return nil, err
	}

	admin, err := pgx.Connect(ctx, cfg.db)
	if err != nil {
		return nil, err
	}
	defer admin.Close(context.Background())
	postmaster := postmasterPID(ctx, admin)

	rctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	r := &row{workers: n, procs: procs, path: path, clientConns: clientConns}
	var before, after serverStats
	var cpu0, cpuPG cpuTimes
	var t0 time.Time
	snapshot := func() error { // when every worker is ready
		var err error
		before, err = readServerStats(ctx, admin, dbName)
		cpu0 = cpuNow(postmaster, cfg.bouncerPID)
		t0 = time.Now()
		return err
	}
	finished := func() error { // after the last trial, connections still open
		var err error
		cpuPG = cpuNow(postmaster, cfg.bouncerPID)
		after, err = readServerStats(ctx, admin, dbName)
		return err
	}
	if procs == 1 {
		r.res, err = inProcess(rctx, runURL, name, g, cfg.steps, snapshot, finished)
	} else {
		r.res, err = inChildren(rctx, cfg, runURL, name, procs, g, snapshot, finished)
	}
	if err != nil {
		return nil, err
	}
	cpuEnd := cpuNow(postmaster, cfg.bouncerPID)
	r.cpu = cpuPG.sub(cpu0)
	r.cpu.client = cpuEnd.client - cpu0.client
	if r.res.LastTell == 0 {
		return nil, errors.New("no trial was told")
	}
	r.wall = time.Unix(0, r.res.LastTell).Sub(t0)
	r.walBytes = (after.walBytes - before.walBytes) / float64(cfg.trials)
	r.serverConns = after.backends
	if rctx.Err() != nil {
		return nil, fmt.Errorf("did not finish within %v (%d trials told)", cfg.timeout, len(r.res.Told))
	}
	if err := verify(ctx, st0, study.ID(), cfg.trials, r.res.Told); err != nil {
		return nil, fmt.Errorf("the study's trials are WRONG: %w", err)
	}
	return r, nil
}

// inProcess runs the workers as goroutines of this process.
func inProcess(ctx context.Context, runURL, name string, g, steps int, ready, finished func() error) (*workResult, error) {
	st, err := storage.Open(ctx, runURL)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	start := make(chan struct{})
	loaded := make(chan struct{})
	type out struct {
		r   *workResult
		err error
	}
	done := make(chan out, 1)
	go func() {
		r, err := workers(ctx, st, name, 0, g, steps, func() { close(loaded) }, start)
		done <- out{r, err}
	}()
	select {
	case <-loaded:
	case o := <-done:
		return nil, o.err
	}
	if err := ready(); err != nil {
		return nil, err
	}
	close(start)
	o := <-done
	if o.err != nil {
		return nil, o.err
	}
	return o.r, finished()
}

// inChildren runs the workers in procs child processes of g goroutines.
func inChildren(ctx context.Context, cfg config, runURL, name string, procs, g int, ready, finished func() error) (*workResult, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	type proc struct {
		cmd  *exec.Cmd
		in   io.WriteCloser
		out  *bufio.Reader
		errs strings.Builder
	}
	ps := make([]*proc, procs)
	defer func() {
		for _, p := range ps {
			if p != nil && p.cmd.Process != nil {
				_ = p.in.Close()
				_ = p.cmd.Wait()
			}
		}
	}()
	for i := range ps {
		p := &proc{}
		p.cmd = exec.CommandContext(ctx, exe, "-child", "-child.url", runURL, "-child.study", name,
			"-child.proc", strconv.Itoa(i+1), "-child.g", strconv.Itoa(g), "-steps", strconv.Itoa(cfg.steps), "-timeout", cfg.timeout.String())
		p.cmd.Stderr = &p.errs
		if p.in, err = p.cmd.StdinPipe(); err != nil {
			return nil, err
		}
		stdout, err := p.cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		p.out = bufio.NewReaderSize(stdout, 1<<20)
		if err := p.cmd.Start(); err != nil {
			return nil, err
		}
		ps[i] = p
	}
	childErr := func(p *proc, err error) error {
		return fmt.Errorf("worker process: %v; its stderr: %s", err, strings.TrimSpace(p.errs.String()))
	}
	for _, p := range ps {
		line, err := p.out.ReadString('\n')
		if err != nil || strings.TrimSpace(line) != "ready" {
			return nil, childErr(p, fmt.Errorf("not ready (%q, %v)", line, err))
		}
	}
	if err := ready(); err != nil {
		return nil, err
	}
	for _, p := range ps {
		if _, err := io.WriteString(p.in, "go\n"); err != nil {
			return nil, err
		}
	}
	total := &workResult{Errors: map[string]int{}, Samples: map[string]string{}}
	for _, p := range ps {
		line, err := p.out.ReadString('\n')
		if err != nil {
			return nil, childErr(p, err)
		}
		var r workResult
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return nil, childErr(p, err)
		}
		total.merge(&r)
	}
	// The children wait for their stdin to close before they close their
	// stores: the server's backends are still there to be timed.
	if err := finished(); err != nil {
		return nil, err
	}
	for _, p := range ps {
		_ = p.in.Close()
		if err := p.cmd.Wait(); err != nil {
			return nil, childErr(p, err)
		}
		p.cmd.Process = nil
	}
	return total, nil
}

// verify fails unless the study counts exactly n trials, all complete;
// its trial numbers are unique and gap-free; every failed trial was
// retried; and every complete trial was told by exactly one worker, once.
func verify(ctx context.Context, st *storage.Store, studyID int64, n int, told []int) error {
	trials, err := st.Trials(ctx, studyID)
	if err != nil {
		return err
	}
	_, counted, err := st.Counts(ctx, studyID)
	if err != nil {
		return err
	}
	if counted != n {
		return fmt.Errorf("%d trials count toward the budget, want %d", counted, n)
	}
	seen := make([]bool, len(trials))
	complete := map[int]bool{}
	for _, t := range trials {
		if t.Number < 0 || t.Number >= len(trials) || seen[t.Number] {
			return fmt.Errorf("trial number %d: outside 0..%d or twice", t.Number, len(trials)-1)
		}
		seen[t.Number] = true
		switch {
		case t.State == storage.Complete:
			complete[t.Number] = true
		case t.State == storage.Fail && t.RetriedBy != 0:
		default:
			return fmt.Errorf("trial %d is %s (retried by id %d), want complete or failed and retried", t.Number, t.State, t.RetriedBy)
		}
	}
	if len(complete) != n {
		return fmt.Errorf("%d complete trials, want %d", len(complete), n)
	}
	byWorkers := map[int]int{}
	for _, num := range told {
		byWorkers[num]++
	}
	for num, k := range byWorkers {
		if k != 1 {
			return fmt.Errorf("trial %d was told %d times", num, k)
		}
		if !complete[num] {
			return fmt.Errorf("trial %d was told but is not complete", num)
		}
	}
	if len(byWorkers) != n {
		return fmt.Errorf("the workers told %d trials, want %d", len(byWorkers), n)
	}
	return nil
}

func printLoad(w io.Writer, cfg config, rows []*row) {
	fmt.Fprintln(w, "| workers | processes | path | trials/s | claim p50 ms | claim p99 ms | finish p50 ms | finish p99 ms | errors |")
	fmt.Fprintln(w, "|---:|---:|---|---:|---:|---:|---:|---:|---|")
	for _, r := range rows {
		errs := "0"
		if n := r.res.errorCount(); n > 0 {
			var parts []string
			for _, k := range slices.Sorted(func(yield func(string) bool) {
				for k := range r.res.Errors {
					if !yield(k) {
						return
					}
				}
			}) {
				parts = append(parts, fmt.Sprintf("%s %d", k, r.res.Errors[k]))
			}
			errs = fmt.Sprintf("%d (%s)", n, strings.Join(parts, ", "))
		}
		fmt.Fprintf(w, "| %d | %d | %s | %.0f | %s | %s | %s | %s | %s |\n", r.workers, r.procs, r.path, float64(cfg.trials)/r.wall.Seconds(),
			ms(stats.Percentile(r.res.Claims, 0.5)), ms(stats.Percentile(r.res.Claims, 0.99)), ms(stats.Percentile(r.res.Finishes, 0.5)), ms(stats.Percentile(r.res.Finishes, 0.99)), errs)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Every run: exactly %d trials counted, all complete, numbers unique and gap-free, each told by one worker once (checked after the run).\n\n", cfg.trials)
	for _, r := range rows {
		for k, msg := range r.res.Samples {
			fmt.Fprintf(w, "- %d workers, %d processes, %s: %s, e.g. %s\n", r.workers, r.procs, r.path, k, msg)
		}
	}
	fmt.Fprintln(w, "CPU time per trial (ms) from the workers' start to the last finish: the workers' processes, PostgreSQL's processes, PgBouncer; the machine's busy share; WAL bytes per trial; connections: each process's pgx pool (most), the server's connections to the study's database at the end")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| workers | processes | path | workers' CPU | PostgreSQL CPU | PgBouncer CPU | machine busy % | WAL bytes | client conns/process | server conns (+1 checker) |")
	fmt.Fprintln(w, "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
	per := func(d time.Duration) string { return fmt.Sprintf("%.2f", d.Seconds()*1e3/float64(cfg.trials)) }
	for _, r := range rows {
		bouncer := "–"
		if r.path == pathPgBouncer && cfg.bouncerPID > 0 {
			bouncer = per(r.cpu.bouncer)
		}
		fmt.Fprintf(w, "| %d | %d | %s | %s | %s | %s | %.0f | %.0f | %d | %d |\n", r.workers, r.procs, r.path, per(r.cpu.client), per(r.cpu.postgres), bouncer,
			100*r.cpu.busy(r.wall), r.walBytes, r.clientConns, r.serverConns)
	}
	fmt.Fprintln(w)
}
