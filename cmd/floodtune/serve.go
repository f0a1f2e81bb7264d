package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/floodtune/floodtune/api"

	"github.com/floodtune/floodtune/metrics"
	"github.com/floodtune/floodtune/search"
	"github.com/floodtune/floodtune/storage"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
)

// metricsFlag adds --metrics-addr to cmd.
func metricsFlag(cmd *cobra.Command, addr *string) {
	cmd.Flags().StringVar(addr, "metrics-addr", metrics.DefaultAddr, "serve Prometheus metrics on this host:port (loopback by default; '' turns them off). The metrics have no authentication: a non-loopback address such as 0.0.0.0:9464 shows them to the whole network, with a warning")
}

// checkAddr rejects a --metrics-addr that is not host:port, with host an IP
// address, a host name or nothing (every interface) and port a number from
// 0 to 65535 (0: any free port).
func checkAddr(addr string) error {
	if addr == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return badInput(fmt.Errorf("--metrics-addr %q: want host:port, e.g. 127.0.0.1:9464", addr))
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return badInput(fmt.Errorf("--metrics-addr %q: the port must be a number from 0 to 65535 (0: any free port), got %q", addr, port))
	}
	if _, err := netip.ParseAddr(host); host != "" && err != nil && !hostName.MatchString(host) {
		return badInput(fmt.Errorf("--metrics-addr %q: %q is neither an IP address nor a host name", addr, host))
	}
	return nil
}

// hostName is a DNS name: labels of letters, digits, - and _, joined by dots.
var hostName = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_][A-Za-z0-9_-]{0,62})*\.?$`)

// loopback reports whether the listener's address a (host:port, as
// net.Listener.Addr gives it) is reachable from this machine only.
func loopback(a string) bool {
	host, _, err := net.SplitHostPort(a)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// exposure is the warning printed when the metrics are served beyond
// loopback: what anyone who reaches the address can read.
func exposure(a, storageURL string, worker bool) string {
	where := "on every network interface of this machine"
	if host, _, err := net.SplitHostPort(a); err == nil {
		if ip, err := netip.ParseAddr(host); err == nil && !ip.IsUnspecified() {
			where = "on " + host + ", not on loopback only"
		}
	}
	what := "the names, trial counts, budgets, best values and flood levels of every study in " + storageURL
	if worker {
		what += ", this process's trials as they train (epochs, losses, accuracies, flood levels)"
	}
	return fmt.Sprintf("floodtune: warning: the metrics on http://%s/metrics are served %s, without authentication or encryption: "+
		"anyone who can reach the port reads %s, and the process's Go runtime figures; "+
		"serve them on 127.0.0.1 unless a firewall or an authenticating proxy guards the port", a, where, what)
}

// serveMetrics registers the study collector of st (and, with worker set,
// the worker metrics it returns) and serves them on addr until ctx ends,
// with a warning on log when addr is not loopback. A port in use, or worker
// metrics that cannot be registered, is reported in the returned channel
// and, with worker set, on log, and the command goes on without metrics.
func serveMetrics(ctx context.Context, addr string, st *storage.Store, worker bool, log io.Writer) (*metrics.Metrics, <-chan error) {
	done := make(chan error, 1)
	if addr == "" {
		close(done)
		return nil, done
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(metrics.NewStudyCollector(search.Stats{Store: st}))
	var m *metrics.Metrics
	if worker {
		var err error
		if m, err = metrics.New(reg); err != nil {
			fmt.Fprintf(log, "floodtune: %s; going on without metrics\n", oneLine(err.Error()))
			done <- err
			close(done)
			return nil, done
		}
	}
	ready := make(chan string, 1)
	go func() {
		err := (&metrics.Server{Addr: addr, Gatherer: reg, Ready: ready}).Run(ctx)
		if err != nil && worker {
			fmt.Fprintf(log, "floodtune: %s; going on without metrics\n", oneLine(err.Error()))
		}
		done <- err
		close(done)
	}()
	select {
	case a := <-ready:
		fmt.Fprintf(log, "metrics on http://%s/metrics\n", printable(a))
		if !loopback(a) {
			fmt.Fprintln(log, printable(exposure(a, st.URL(), worker)))
		}
	case err := <-done:
		out := make(chan error, 1)
		out <- err
		close(out)
		return m, out
	}
	return m, done
}

func newServeCmd() *cobra.Command {
	var o serveOptions
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the search over HTTP (ask/tell for workers in any language) and export every study as Prometheus metrics",
		Long: `serve runs floodtune's HTTP/JSON API on --addr over the storage (--storage or
FLOODTUNE_STORAGE): training code in any language (a 20-line Python script,
see clients/python) asks for a trial, trains it with the flood level and the
other parameters it is given, reports each epoch and tells the outcome,
without the database's credentials. The service keeps the guarantees of
floodtune's own workers: leases on the database's clock, trials whose worker
stopped renewing its lease for --lease failed and retried, late writes
refused, the budget exact. It holds nothing in memory between requests, so
several replicas may serve one PostgreSQL storage.

Every request but /healthz and /readyz needs a bearer token, made with
floodtune token create: admin (everything), read (every study, its trials,
/metrics) or worker (one study's trials); a revoked token stops working
within 2 seconds. When the storage holds no valid token, serve says so on
stderr: every request would be refused. The API is described by
/v1/openapi.yaml.

Security: by default serve listens on loopback only. Beyond loopback it
refuses to serve plain HTTP, whose tokens anyone on the path can read, unless
--insecure says a TLS-terminating proxy or a private network guards it: give
--tls-cert and --tls-key instead.

It also exports the studies on --metrics-addr without authentication (trials
by state, best value and its flood level, budget, reaped trials; '' turns
that listener off; the API's /metrics serves the same to read tokens). On an
address other than loopback anyone who reaches that port reads every study's
name and progress, and serve says so with a warning on stderr.

It runs until Ctrl-C or SIGTERM, then lets the requests in flight finish.`,
		Example: `  floodtune token create ci-admin --scope admin --storage postgres://floodtune@db/floodtune
  floodtune serve --storage postgres://floodtune@db/floodtune
  floodtune serve --addr 0.0.0.0:8321 --tls-cert server.crt --tls-key server.key --storage postgres://floodtune@db/floodtune
  curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8321/v1/studies`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runServe(cmd, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.addr, "addr", api.DefaultAddr, "serve the HTTP API on this host:port ('' turns it off, leaving the metrics only)")
	f.StringVar(&o.tlsCert, "tls-cert", "", "serve HTTPS with this PEM certificate (chain) file; needs --tls-key")
	f.StringVar(&o.tlsKey, "tls-key", "", "the PEM private key of --tls-cert")
	f.BoolVar(&o.insecure, "insecure", false, "serve plain HTTP beyond loopback (only behind a TLS-terminating proxy or on a private network: bearer tokens travel in clear)")
	f.DurationVar(&o.lease, "lease", search.DefaultLease, "a trial whose client has not reported or sent a heartbeat for this long is failed and retried")
	f.IntVar(&o.maxRetries, "max-retries", search.DefaultMaxRetries, "how many times a trial whose lease ran out is retried (0: never)")
	f.Int64Var(&o.maxBody, "max-body", api.DefaultMaxBody, "the largest request body accepted, in bytes")
	metricsFlag(cmd, &o.metricsAddr)
	return cmd
}

type serveOptions struct {
	addr, metricsAddr, tlsCert, tlsKey string
	insecure                           bool
	lease                              time.Duration
	maxRetries                         int
	maxBody                            int64
}

func runServe(cmd *cobra.Command, o serveOptions) error {
	if o.addr == "" && o.metricsAddr == "" {
		return badInput(errors.New("--addr and --metrics-addr are both off: serve needs an address"))
	}
	if err := checkAddr(o.metricsAddr); err != nil {
		return err
	}
	if err := checkAddr(o.addr); err != nil {
		return badInput(errors.New(strings.Replace(err.Error(), "--metrics-addr", "--addr", 1)))
	}
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return badInput(errors.New("--tls-cert and --tls-key go together: HTTPS needs the certificate and its key"))
	}
	for _, f := range []struct{ flag, path string }{{"--tls-cert", o.tlsCert}, {"--tls-key", o.tlsKey}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return badInput(fmt.Errorf("%s %s: %w", f.flag, f.path, errors.Unwrap(err)))
		}
	}
	if o.addr != "" && o.tlsCert == "" && !o.insecure && !loopbackAddr(o.addr) {
		return badInput(fmt.Errorf("--addr %s is not loopback: serving plain HTTP there shows every bearer token to the network; give --tls-cert and --tls-key, or --insecure when a TLS-terminating proxy or a private network guards the port", o.addr))
	}
	if o.lease < 2*time.Second {
		return badInput(fmt.Errorf("--lease %v: at least 2s, or clients could not renew their leases in time", o.lease))
	}
	if o.maxRetries < 0 {
		return badInput(fmt.Errorf("--max-retries %d: want 0 or more", o.maxRetries))
	}
	if o.maxBody < 1024 {
		return badInput(fmt.Errorf("--max-body %d: at least 1024 bytes", o.maxBody))
	}
	st, err := openStorage(cmd, storage.MustExist())
	if err != nil {
		return err
	}
	defer st.Close()
	ctx, stop := context.WithCancel(cmd.Context())
	defer stop()
	log := cmd.ErrOrStderr()
	metricsDone := make(<-chan error)
	if o.metricsAddr != "" {
		_, metricsDone = serveMetrics(ctx, o.metricsAddr, st, false, log)
	}
	if o.addr == "" {
		return <-metricsDone
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(metrics.NewStudyCollector(search.Stats{Store: st}))
	requests, err := metrics.NewAPI(reg)
	if err != nil {
		return err
	}
	retries := o.maxRetries
	if retries == 0 {
		retries = -1 // search's "never"
	}
	srv := &api.Server{Store: st, Lease: o.lease, MaxRetries: retries, MaxBody: o.maxBody, Gatherer: reg, Requests: requests,
		Logger: slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if toks, err := st.Tokens(ctx); err == nil && !slices.ContainsFunc(toks, func(t storage.Token) bool { return t.RevokedAt.IsZero() }) {
		fmt.Fprintf(log, "floodtune: warning: %s has no valid token, so the API refuses every request but /healthz and /readyz; make one with: floodtune token create NAME --scope admin|read|worker\n", st.URL())
	}
	ready := make(chan string, 1)
	apiDone := make(chan error, 1)
	go func() {
		apiDone <- srv.Run(ctx, api.Listen{Addr: o.addr, CertFile: o.tlsCert, KeyFile: o.tlsKey, Ready: ready})
	}()
	select {
	case a := <-ready:
		scheme := "http"
		if o.tlsCert != "" {
			scheme = "https"
		}
		fmt.Fprintf(log, "API on %s://%s/v1 (described by /v1/openapi.yaml)\n", scheme, printable(a))
		if o.tlsCert == "" && !loopback(a) {
			fmt.Fprintf(log, "floodtune: warning: the API on http://%s serves plain HTTP beyond loopback (--insecure): bearer tokens and trial data travel unencrypted; keep it behind a TLS-terminating proxy or on a private network\n", printable(a))
		}
	case err := <-apiDone:
		if err != nil {
			return fmt.Errorf("serve the API: %w", err)
		}
		return nil
	}
	select {
	case err := <-apiDone:
		return err
	case err := <-metricsDone:
		if err != nil {
			stop()
			<-apiDone
			return err
		}
		return <-apiDone
	}
}

// loopbackAddr reports whether the host of a host:port flag is loopback
// (an IP address, or localhost).
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}
