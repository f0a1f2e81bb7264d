// Command service measures the ask/tell throughput of floodtune's HTTP API
// (floodtune serve) against the Go path without HTTP, on the same
// PostgreSQL server, in one run.
//
// For each number of concurrent clients, each path gets a fresh study of
// -trials trials (an external trainer, flood_level and a log-uniform lr,
// -sampler, no pruner, no baseline) in a fresh schema of the database, on a
// store of its own opened the same way (the same URL, the same pgx pool
// size). N goroutines each loop ask → report × -steps → tell until the
// budget is spent, with a trivial objective (a function of flood_level):
//
//	direct  search.Load once per goroutine, then Study.Ask (manual
//	        lease: Heartbeat -1), Trial.Report, Trial.Tell
//	http    an api.Server over the store, served by api.Server.Run on
//	        127.0.0.1:0 in this process (real TCP on loopback); each
//	        goroutine a client.Client with the study's worker token, all
//	        on one transport that keeps an idle connection per client
//
// Trials per second are the budget over the time from the clients' start
// to the tell of the study's last trial. The program records the latency
// of every ask that leased a trial, of every report and of every tell, and
// the CPU time used by this process (the clients, and the API server on
// the http path), by the PostgreSQL server's processes when they run on
// this machine, and by everything else (which should be close to nothing:
// other programs make the figures worthless, and the program says so).
// With -rounds R, each client count runs R rounds of both paths, in
// alternating order; the table shows the median trials per second and the
// latencies of all rounds together.
//
// It prints, per client count and path, trials per second, the p50 and p99
// of each call, and the ratio of the HTTP path's throughput to the direct
// path's; then a line per goal of the issue. Timings never fail the
// program: after each run it checks that the study has exactly -trials
// trials, all complete, numbered 0 to -trials-1, and fails if not.
//
//	go -C bench run ./service -db postgres://postgres@127.0.0.1:5432/postgres -clients 8,32,128 -trials 1000
//
// The URL's role must be able to create a schema in its database; each
// schema is dropped after its run. bench/service.sh finds or starts a
// server and runs this program.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/floodtune/floodtune/bench/internal/stats"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/floodtune/floodtune/api"
	"github.com/floodtune/floodtune/client"
	"github.com/floodtune/floodtune/search"
	"github.com/floodtune/floodtune/storage"
)

// envDatabaseURL names the variable that gives -db its default.
const envDatabaseURL = "FLOODTUNE_BENCH_DATABASE_URL"

// The paths measured.
const (
	pathDirect = "direct"
	pathHTTP   = "http"
)

// The goals.
const (
	goalRatio      = 0.7
	goalAskP99     = 50 * time.Millisecond
	goalAskClients = 32
	goalAskTrials  = 1000
)

// busyOthers is the share of the machine's CPU time that other programs
// may use during a run before the program warns that they disturbed it.
const busyOthers = 0.10

type config struct {
	db         string // with the pool size set
	clients    []int
	paths      []string
	trials     int
	steps      int
	rounds     int
	sampler    string
	seed       int64
	pool       int
	cpuProfile string
	csv        string
}

func main() {
	db := flag.String("db", os.Getenv(envDatabaseURL), "PostgreSQL URL of a role that may create a schema in its database (default $"+envDatabaseURL+")")
	clients := flag.String("clients", "8,32,128", "comma-separated numbers of concurrent clients")
	paths := flag.String("paths", pathDirect+","+pathHTTP, "paths to measure: direct, http or both")
	trials := flag.Int("trials", 1000, "trials in each study (its budget)")
	steps := flag.Int("steps", 1, "reports per trial")
	rounds := flag.Int("rounds", 3, "rounds of each client count and path (the table shows the median trials/s)")
	sampler := flag.String("sampler", "random", "the studies' sampler: random (the service's cost, not the sampler's), tpe or cmaes")
	seed := flag.Int64("seed", 1, "the studies' seed")
	pool := flag.Int("pool", 16, "pgx pool size (pool_max_conns) of each store; storage.Open raises less than 8 to 8")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the timed runs to this file")
	csvPath := flag.String("csv", "", "write every call's latency to this CSV file (clients, path, round, call, start_ms, ms)")
	flag.Parse()

	fail := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "service: "+format+"\n", args...)
		os.Exit(2)
	}
	if flag.NArg() > 0 {
		fail("unexpected arguments %q", flag.Args())
	}
	if *db == "" {
		fail("no PostgreSQL: give -db postgres://user@host:5432/db or set %s (bench/service.sh starts a throw-away server when it is unset)", envDatabaseURL)
	}
	if !strings.HasPrefix(*db, "postgres://") && !strings.HasPrefix(*db, "postgresql://") {
		fail("-db %s: want a postgres:// URL", storage.Redact(*db))
	}
	cfg := config{trials: *trials, steps: *steps, rounds: *rounds, sampler: *sampler, seed: *seed, pool: max(*pool, 8),
		cpuProfile: *cpuProfile, csv: *csvPath}
	for _, f := range strings.Split(*clients, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fail("-clients %q: want positive numbers separated by commas", *clients)
		}
		cfg.clients = append(cfg.clients, n)
	}
	for _, p := range strings.Split(*paths, ",") {
		p = strings.TrimSpace(p)
		if p != pathDirect && p != pathHTTP {
			fail("-paths %q: want direct, http or direct,http", *paths)
		}
		if !slices.Contains(cfg.paths, p) {
			cfg.paths = append(cfg.paths, p)
		}
	}
	if cfg.trials < 1 || cfg.steps < 0 || cfg.rounds < 1 {
		fail("want -trials >= 1, -steps >= 0 and -rounds >= 1")
	}
	u, err := url.Parse(*db)
	if err != nil {
		fail("-db %s: not a URL", storage.Redact(*db))
	}
	q := u.Query()
	q.Set("pool_max_conns", strconv.Itoa(cfg.pool))
	u.RawQuery = q.Encode()
	cfg.db = u.String()

	if err := run(context.Background(), os.Stdout, cfg); err != nil {
		fmt.Fprintf(os.Stderr, "service: %v\n", err)
		os.Exit(1)
	}
}

// round is what one run of a study measured.
type round struct {
	clients int
	path    string
	n       int // the round's index
	start   time.Time
	wall    time.Duration // to the last trial's tell
	drain   time.Duration // to the return of every client's last ask
	calls   []call
	cpu     cpuTimes
	dials   int64 // HTTP connections opened
}

func (r *round) trialsPerSec(trials int) float64 { return float64(trials) / r.wall.Seconds() }

// result is the rounds of a client count and path together.
type result struct {
	clients           int
	path              string
	rounds            []*round
	trialsPerSec      float64 // the median of the rounds'
	ask, report, tell []time.Duration
	wall, drain       time.Duration // sums
	cpu               cpuTimes      // sum
	dials             int64         // the most of a round
}

func (r *result) add(rd *round, trials int) {
	r.rounds = append(r.rounds, rd)
	for _, c := range rd.calls {
		switch c.kind {
		case callAsk:
			r.ask = append(r.ask, c.d)
		case callReport:
			r.report = append(r.report, c.d)
		case callTell:
			r.tell = append(r.tell, c.d)
		}
	}
	r.wall += rd.wall
	r.drain += rd.drain
	r.cpu = r.cpu.add(rd.cpu)
	r.dials = max(r.dials, rd.dials)
	var tps []float64
	for _, x := range r.rounds {
		tps = append(tps, x.trialsPerSec(trials))
	}
	slices.Sort(tps)
	if k := len(tps); k%2 == 0 {
		r.trialsPerSec = (tps[k/2-1] + tps[k/2]) / 2
	} else {
		r.trialsPerSec = tps[k/2]
	}
}

func run(ctx context.Context, w io.Writer, cfg config) error {
	version, err := serverVersion(ctx, cfg.db)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "## Ask/tell throughput: HTTP API (api.Server on 127.0.0.1, client.Client) against the Go path (search.Study)\n\n")
	fmt.Fprintf(w, "PostgreSQL %s at %s; pgx pool of %d connections per store (pool_max_conns, the same for both paths)\n", version, storage.Redact(cfg.db), cfg.pool)
	fmt.Fprintf(w, "%d trials per study (a fresh study and schema per run), %d report(s) per trial, sampler %s, no pruner, no baseline; trivial objective; %d round(s) per row\n",
		cfg.trials, cfg.steps, cfg.sampler, cfg.rounds)
	fmt.Fprintf(w, "trials/s: the budget over the time from the clients' start to the last trial's tell (median of the rounds); latencies of the asks that leased a trial, of reports and tells (all rounds)\n")
	fmt.Fprintf(w, "%s, GOMAXPROCS %d, %d CPUs; load average before: %s\n\n", runtime.Version(), runtime.GOMAXPROCS(0), runtime.NumCPU(), stats.LoadAverage())

	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err != nil {
			return fmt.Errorf("create the CPU profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("start the CPU profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}

	var results []*result
	for _, n := range cfg.clients {
		byPath := map[string]*result{}
		for _, p := range cfg.paths {
			byPath[p] = &result{clients: n, path: p}
			results = append(results, byPath[p])
		}
		for i := range cfg.rounds {
			order := slices.Clone(cfg.paths)
			if i%2 == 1 {
				slices.Reverse(order)
			}
			for _, p := range order {
				rd, err := measure(ctx, cfg, n, p)
				if err != nil {
					return fmt.Errorf("%d clients, %s, round %d: %w", n, p, i+1, err)
				}
				rd.n = i
				byPath[p].add(rd, cfg.trials)
				fmt.Fprintf(os.Stderr, "service: %d clients, %s, round %d: %.0f trials/s (%d trials told in %v; every client stopped after %v)%s\n",
					n, p, i+1, rd.trialsPerSec(cfg.trials), cfg.trials, rd.wall.Round(time.Millisecond), rd.drain.Round(time.Millisecond), rd.cpu.disturbed())
			}
		}
	}
	printTable(w, cfg, results)
	if cfg.csv != "" {
		if err := writeCSV(cfg.csv, results); err != nil {
			return err
		}
	}
	return nil
}

// measure runs one study of cfg.trials trials with n clients on path, and
// checks what the study recorded.
func measure(ctx context.Context, cfg config, n int, path string) (*round, error) {
	dbURL, drop, err := freshSchema(ctx, cfg.db)
	if err != nil {
		return nil, err
	}
	defer drop()
	st, err := storage.Open(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	name := fmt.Sprintf("bench-%s-%d", path, n)
	spec, err := search.ParseSpec(fmt.Appendf(nil, `trainer: external
search: {sampler: %s, pruner: none, trials: %d, seed: %d, baseline: false}
space:
  flood_level: {type: float, low: 0.0, high: 1.0}
  lr: {type: float, low: 0.001, high: 0.1, log: true}
`, cfg.sampler, cfg.trials, cfg.seed))
	if err != nil {
		return nil, err
	}
	study, err := search.Create(ctx, st, name, spec)
	if err != nil {
		return nil, err
	}
	rd := &round{clients: n, path: path}
	lat := make([]latencies, n)
	clk := newClock(cfg.trials)
	switch path {
	case pathDirect:
		err = runDirect(ctx, st, name, cfg.steps, lat, clk)
	case pathHTTP:
		rd.dials, err = runHTTP(ctx, st, study.ID(), name, cfg.steps, lat, clk)
	}
	if err != nil {
		return nil, err
	}
	rd.drain = time.Since(clk.start)
	if clk.told.Load() != int64(cfg.trials) {
		return nil, fmt.Errorf("the clients told %d trials, want %d", clk.told.Load(), cfg.trials)
	}
	rd.start, rd.wall, rd.cpu = clk.start, clk.end.Sub(clk.start), clk.cpu
	if err := check(ctx, st, study.ID(), cfg.trials); err != nil {
		return nil, fmt.Errorf("the study's trials are wrong: %w", err)
	}
	for _, l := range lat {
		rd.calls = append(rd.calls, l.calls...)
	}
	return rd, nil
}

// The calls timed.
const (
	callAsk = iota
	callReport
	callTell
)

var callNames = [...]string{callAsk: "ask", callReport: "report", callTell: "tell"}

// call is one timed call of a client.
type call struct {
	kind  int
	start time.Time
	d     time.Duration
}

// latencies are one client's calls: each ask that leased a trial, each
// report and each tell.
type latencies struct {
	calls []call
}

// since records a call of kind that started at t0 and has just returned.
func (l *latencies) since(kind int, t0 time.Time) {
	l.calls = append(l.calls, call{kind, t0, time.Since(t0)})
}

// value is the trivial objective: best at flood level 0.3.
func value(floodLevel float64, step int) float64 {
	return float64(step)/100 - (floodLevel-0.3)*(floodLevel-0.3)
}

// clock times a run: from the clients' start to the end of the tell of
// the study's last trial, which is where the trials per second end (what
// the clients do after that, learning that the budget is spent, is not
// ask/tell throughput: the service answers "wait" while other clients'
// trials still run, and its client waits as told), and the CPU time used
// meanwhile.
type clock struct {
	trials int64
	start  time.Time
	cpu0   cpuTimes
	told   atomic.Int64
	// Set by the client that told the last trial; read after the clients'
	// errgroup's Wait.
	end time.Time
	cpu cpuTimes
}

func newClock(trials int) *clock { return &clock{trials: int64(trials)} }

func (c *clock) begin() {
	c.cpu0 = cpuNow()
	c.start = time.Now()
}

// toldOne counts a tell; the last one stops the clock.
func (c *clock) toldOne() {
	if c.told.Add(1) == c.trials {
		c.end = time.Now()
		c.cpu = cpuNow().sub(c.cpu0)
	}
}

// runDirect runs the study through search.Study with len(lat) goroutines,
// each with a handle of its own, as the workers of a fleet each have.
func runDirect(ctx context.Context, st *storage.Store, name string, steps int, lat []latencies, clk *clock) error {
	studies := make([]*search.Study, len(lat))
	for i := range studies {
		s, err := search.Load(ctx, st, name)
		if err != nil {
			return err
		}
		studies[i] = s
	}
	g, gctx := errgroup.WithContext(ctx)
	clk.begin()
	for i := range lat {
		l := &lat[i]
		g.Go(func() error {
			for k := 0; ; k++ {
				t0 := time.Now()
				t, err := studies[i].Ask(gctx, search.AskOptions{Worker: fmt.Sprintf("direct-%d/%d", i, k), Heartbeat: -1})
				if errors.Is(err, search.ErrBudgetExhausted) {
					return nil
				}
				if err != nil {
					return fmt.Errorf("client %d: ask: %w", i, err)
				}
				l.since(callAsk, t0)
				fl := t.FloodLevel()
				for step := 1; step <= steps; step++ {
					t0 = time.Now()
					if err := t.Report(gctx, step, value(fl, step)); err != nil {
						return fmt.Errorf("client %d: report step %d of trial %d: %w", i, step, t.Number, err)
					}
					l.since(callReport, t0)
				}
				t0 = time.Now()
				if err := t.Tell(gctx, value(fl, steps)); err != nil {
					return fmt.Errorf("client %d: tell trial %d: %w", i, t.Number, err)
				}
				l.since(callTell, t0)
				clk.toldOne()
			}
		})
	}
	return g.Wait()
}

// runHTTP serves st with an api.Server on 127.0.0.1:0 and runs the study
// through it with len(lat) clients; it returns the number of connections
// the clients opened.
func runHTTP(ctx context.Context, st *storage.Store, studyID int64, name string, steps int, lat []latencies, clk *clock) (int64, error) {
	token, _, err := st.CreateToken(ctx, "bench-worker", storage.ScopeWorker, studyID)
	if err != nil {
		return 0, err
	}
	srvCtx, stop := context.WithCancel(ctx)
	defer stop()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	srv := &api.Server{Store: st}
	go func() { done <- srv.Run(srvCtx, api.Listen{Addr: "127.0.0.1:0", Ready: ready}) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		return 0, fmt.Errorf("the API server stopped before serving: %v", err)
	}
	defer func() {
		stop()
		<-done
	}()

	// One transport for the clients, as the connections of a fleet of
	// workers: an idle connection kept per client, so that every call
	// reuses one.
	var opened atomic.Int64
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = len(lat) + 16
	tr.MaxIdleConnsPerHost = len(lat) + 16
	tr.DialContext = func(ctx context.Context, network, address string) (net.Conn, error) {
		opened.Add(1)
		return dialer.DialContext(ctx, network, address)
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 70 * time.Second}
	clients := make([]*client.Client, len(lat))
	for i := range clients {
		c, err := client.New("http://"+addr, token, client.WithHTTPClient(hc))
		if err != nil {
			return 0, err
		}
		clients[i] = c
	}

	g, gctx := errgroup.WithContext(ctx)
	clk.begin()
	for i := range lat {
		l := &lat[i]
		g.Go(func() error {
			worker := fmt.Sprintf("http-%d", i)
			for {
				t0 := time.Now()
				t, err := clients[i].Ask(gctx, name, worker)
				if errors.Is(err, client.ErrExhausted) {
					return nil
				}
				if err != nil {
					return fmt.Errorf("client %d: ask: %w", i, err)
				}
				l.since(callAsk, t0)
				for step := 1; step <= steps; step++ {
					t0 = time.Now()
					prune, err := t.Report(gctx, step, value(t.FloodLevel, step))
					if err != nil {
						return fmt.Errorf("client %d: report step %d of trial %d: %w", i, step, t.Number, err)
					}
					if prune {
						return fmt.Errorf("client %d: trial %d pruned at step %d by a study without a pruner", i, t.Number, step)
					}
					l.since(callReport, t0)
				}
				t0 = time.Now()
				if _, err := t.Tell(gctx, value(t.FloodLevel, steps), nil); err != nil {
					return fmt.Errorf("client %d: tell trial %d: %w", i, t.Number, err)
				}
				l.since(callTell, t0)
				clk.toldOne()
			}
		})
	}
	err = g.Wait()
	return opened.Load(), err
}

// check fails unless the study has exactly n trials, all complete,
// numbered 0 to n-1.
func check(ctx context.Context, st *storage.Store, studyID int64, n int) error {
	trials, err := st.Trials(ctx, studyID)
	if err != nil {
		return err
	}
	if len(trials) != n {
		return fmt.Errorf("%d trials, want %d", len(trials), n)
	}
	seen := make([]bool, n)
	for _, t := range trials {
		if t.State != storage.Complete {
			return fmt.Errorf("trial %d is %s, want complete", t.Number, t.State)
		}
		if t.Number < 0 || t.Number >= n || seen[t.Number] {
			return fmt.Errorf("trial number %d: out of 0..%d or twice", t.Number, n-1)
		}
		seen[t.Number] = true
	}
	return nil
}

// writeCSV writes every call of results to path.
func writeCSV(path string, results []*result) error {
	var b strings.Builder
	b.WriteString("clients,path,round,call,start_ms,ms\n")
	for _, r := range results {
		for _, rd := range r.rounds {
			for _, c := range rd.calls {
				fmt.Fprintf(&b, "%d,%s,%d,%s,%.3f,%.3f\n", r.clients, r.path, rd.n+1, callNames[c.kind],
					float64(c.start.Sub(rd.start))/float64(time.Millisecond), float64(c.d)/float64(time.Millisecond))
			}
		}
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("write the latencies: %w", err)
	}
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }

func printTable(w io.Writer, cfg config, results []*result) {
	find := func(n int, path string) *result {
		for _, r := range results {
			if r.clients == n && r.path == path {
				return r
			}
		}
		return nil
	}
	fmt.Fprintln(w, "| clients | path | trials/s | ask p50 ms | ask p99 ms | tell p50 ms | tell p99 ms | report p50 ms | report p99 ms | ratio http/direct |")
	fmt.Fprintln(w, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range results {
		ratio := "–"
		if d := find(r.clients, pathDirect); r.path == pathHTTP && d != nil {
			ratio = fmt.Sprintf("%.2f×", r.trialsPerSec/d.trialsPerSec)
		}
		rp50, rp99 := "–", "–"
		if len(r.report) > 0 {
			rp50, rp99 = ms(stats.Percentile(r.report, 0.50)), ms(stats.Percentile(r.report, 0.99))
		}
		fmt.Fprintf(w, "| %d | %s | %.0f | %s | %s | %s | %s | %s | %s | %s |\n", r.clients, r.path, r.trialsPerSec,
			ms(stats.Percentile(r.ask, 0.50)), ms(stats.Percentile(r.ask, 0.99)), ms(stats.Percentile(r.tell, 0.50)), ms(stats.Percentile(r.tell, 0.99)), rp50, rp99, ratio)
	}
	fmt.Fprintln(w)
	if cfg.rounds > 1 {
		var rows []string
		for _, r := range results {
			var tps []string
			for _, rd := range r.rounds {
				tps = append(tps, fmt.Sprintf("%.0f", rd.trialsPerSec(cfg.trials)))
			}
			rows = append(rows, fmt.Sprintf("%d %s %s", r.clients, r.path, strings.Join(tps, "/")))
		}
		fmt.Fprintf(w, "Trials/s of each round: %s\n\n", strings.Join(rows, ", "))
	}
	var conns []string
	for _, r := range results {
		if r.path == pathHTTP {
			conns = append(conns, fmt.Sprintf("%d clients: %d", r.clients, r.dials))
		}
	}
	if len(conns) > 0 {
		fmt.Fprintf(w, "HTTP connections opened per run: %s\n\n", strings.Join(conns, ", "))
	}
	var drains []string
	for _, r := range results {
		k := time.Duration(len(r.rounds))
		drains = append(drains, fmt.Sprintf("%d %s %.2f s (trials told in %.2f s)", r.clients, r.path, (r.drain/k).Seconds(), (r.wall/k).Seconds()))
	}
	fmt.Fprintf(w, "Until every client had stopped (its last ask said the budget is spent; not in trials/s), mean of the rounds: %s\n\n", strings.Join(drains, ", "))

	fmt.Fprintf(w, "CPU time per trial, ms, from the clients' start to the last tell (this process: the clients, and the API server on the http path; PostgreSQL: the server's processes on this machine; others: the rest of the machine, which should be about 0; busy: of all %d CPUs):\n\n", runtime.NumCPU())
	fmt.Fprintln(w, "| clients | path | this process | PostgreSQL | others | machine busy % |")
	fmt.Fprintln(w, "|---:|---|---:|---:|---:|---:|")
	var warnings []string
	for _, r := range results {
		per := func(d time.Duration) string { return ms(d / time.Duration(cfg.trials*len(r.rounds))) }
		c := r.cpu
		pg, others, busy := "–", "–", "–"
		if c.pgOK {
			pg = per(c.postgres)
		}
		if c.machineOK {
			busy = fmt.Sprintf("%.0f", 100*c.busy())
			if c.pgOK {
				others = per(c.others())
				if s := c.othersShare(); s > busyOthers {
					warnings = append(warnings, fmt.Sprintf("%d clients, %s: %.0f%% of the machine", r.clients, r.path, 100*s))
				}
			}
		}
		fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s |\n", r.clients, r.path, per(c.process), pg, others, busy)
	}
	fmt.Fprintln(w)
	if len(warnings) > 0 {
		fmt.Fprintf(w, "WARNING: other programs used the CPU during some runs, whose figures they lowered: %s\n\n", strings.Join(warnings, "; "))
	}

	fmt.Fprintln(w, "Goals:")
	for _, n := range cfg.clients {
		d, h := find(n, pathDirect), find(n, pathHTTP)
		if d == nil || h == nil {
			fmt.Fprintf(w, "- HTTP ≥ %.1f× direct trials/s at %d clients: not measured (both paths needed)\n", goalRatio, n)
			continue
		}
		ratio := h.trialsPerSec / d.trialsPerSec
		fmt.Fprintf(w, "- HTTP ≥ %.1f× direct trials/s at %d clients: %s (%.2f×: %.0f against %.0f trials/s)\n",
			goalRatio, n, met(ratio >= goalRatio), ratio, h.trialsPerSec, d.trialsPerSec)
	}
	h := find(goalAskClients, pathHTTP)
	if h == nil {
		fmt.Fprintf(w, "- ask p99 < %v over HTTP at %d clients and %d trials: not measured (run with %d clients and the http path)\n", goalAskP99, goalAskClients, goalAskTrials, goalAskClients)
		return
	}
	note := ""
	if cfg.trials != goalAskTrials {
		note = fmt.Sprintf("; measured at %d trials, not %d", cfg.trials, goalAskTrials)
	}
	if d := find(goalAskClients, pathDirect); d != nil {
		note += fmt.Sprintf("; direct path: %s ms", ms(stats.Percentile(d.ask, 0.99)))
	}
	p99 := stats.Percentile(h.ask, 0.99)
	fmt.Fprintf(w, "- ask p99 < %v over HTTP at %d clients and %d trials: %s (%s ms%s)\n", goalAskP99, goalAskClients, goalAskTrials, met(p99 < goalAskP99), ms(p99), note)
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// cpuTimes are CPU times used: by this process (the clients, and the API
// server on the http path), by the processes of PostgreSQL servers on this
// machine, and by the whole machine, over elapsed. A snapshot (cpuNow)
// holds the totals so far; sub gives those of an interval.
type cpuTimes struct {
	at                         time.Time
	elapsed                    time.Duration
	process, postgres, machine time.Duration
	pgOK, machineOK            bool
}

// ticks is the unit of /proc's CPU times (USER_HZ, 100 on Linux).
const ticks = time.Second / 100

// cpuNow reads the CPU time used so far.
func cpuNow() cpuTimes {
	c := cpuTimes{at: time.Now()}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		c.process = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	// The first line of /proc/stat: cpu user nice system idle iowait irq
	// softirq steal ...; busy is all but idle and iowait.
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		if f := strings.Fields(line); len(f) >= 9 && f[0] == "cpu" {
			var busy int64
			c.machineOK = true
			for i, v := range f[1:9] {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					c.machineOK = false
				}
				if i != 3 && i != 4 {
					busy += n
				}
			}
			c.machine = time.Duration(busy) * ticks
		}
	}
	// The PostgreSQL processes: /proc/PID/stat is "pid (comm) state ...",
	// utime and stime the 14th and 15th fields. A backend that ends
	// between two snapshots takes its time with it; the pools' connections
	// last as long as a run.
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s := string(b)
		i, j := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if i < 0 || j < i || s[i+1:j] != "postgres" {
			continue
		}
		f := strings.Fields(s[j+1:])
		if len(f) < 13 {
			continue
		}
		u, err1 := strconv.ParseInt(f[11], 10, 64)
		k, err2 := strconv.ParseInt(f[12], 10, 64)
		if err1 == nil && err2 == nil {
			c.postgres += time.Duration(u+k) * ticks
			c.pgOK = true
		}
	}
	return c
}

func (c cpuTimes) sub(o cpuTimes) cpuTimes {
	return cpuTimes{elapsed: c.at.Sub(o.at), process: c.process - o.process, postgres: max(c.postgres-o.postgres, 0), machine: c.machine - o.machine,
		pgOK: c.pgOK && o.pgOK, machineOK: c.machineOK && o.machineOK}
}

func (c cpuTimes) add(o cpuTimes) cpuTimes {
	if c.elapsed == 0 {
		return o
	}
	return cpuTimes{elapsed: c.elapsed + o.elapsed, process: c.process + o.process, postgres: c.postgres + o.postgres, machine: c.machine + o.machine,
		pgOK: c.pgOK && o.pgOK, machineOK: c.machineOK && o.machineOK}
}

// busy is the share of the machine's CPU time used.
func (c cpuTimes) busy() float64 {
	return c.machine.Seconds() / (c.elapsed.Seconds() * float64(runtime.NumCPU()))
}

// others is the CPU time of the rest of the machine.
func (c cpuTimes) others() time.Duration { return max(c.machine-c.process-c.postgres, 0) }

// othersShare is the share of the machine's CPU time that the rest of it
// used.
func (c cpuTimes) othersShare() float64 {
	return c.others().Seconds() / (c.elapsed.Seconds() * float64(runtime.NumCPU()))
}

// disturbed says, for a run's progress line, whether other programs used
// the CPU.
func (c cpuTimes) disturbed() string {
	if !c.machineOK || !c.pgOK || c.othersShare() <= busyOthers {
		return ""
	}
	return fmt.Sprintf(" — other programs used %.0f%% of the machine", 100*c.othersShare())
}

// serverVersion returns the PostgreSQL server's version.
func serverVersion(ctx context.Context, rawURL string) (string, error) {
	conn, err := connect(ctx, rawURL)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	var v string
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&v); err != nil {
		return "", fmt.Errorf("read the server's version: %w", err)
	}
	return v, nil
}

// connect opens one connection of rawURL, without the pool's parameters
// (which pgx.Connect refuses to pass to the server).
func connect(ctx context.Context, rawURL string) (*pgx.Conn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%s: not a URL", storage.Redact(rawURL))
	}
	q := u.Query()
	for k := range q {
		if strings.HasPrefix(k, "pool_") {
			q.Del(k)
		}
	}
	u.RawQuery = q.Encode()
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %s", storage.Redact(rawURL), strings.ReplaceAll(err.Error(), rawURL, storage.Redact(rawURL)))
	}
	return conn, nil
}

// freshSchema creates a new schema in the database of rawURL and returns a
// URL whose connections use it, and a function that drops it.
func freshSchema(ctx context.Context, rawURL string) (string, func(), error) {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "bench_service_" + hex.EncodeToString(b)
	conn, err := connect(ctx, rawURL)
	if err != nil {
		return "", nil, err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		return "", nil, fmt.Errorf("create schema %s: %w", schema, err)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", nil, errors.New("want a URL like postgres://user@host:5432/db")
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	drop := func() {
		ctx := context.Background()
		conn, err := connect(ctx, rawURL)
		if err != nil {
			fmt.Fprintf(os.Stderr, "service: drop schema %s: %v\n", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			fmt.Fprintf(os.Stderr, "service: drop schema %s: %v\n", schema, err)
		}
	}
	return u.String(), drop, nil
}
