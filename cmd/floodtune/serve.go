package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"regexp"
	"strconv"

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
	var addr string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Export every study of a storage as Prometheus metrics, without training",
		Long: `serve exports the studies of the storage (--storage or FLOODTUNE_STORAGE) on
--metrics-addr: trials by state, best value and its flood level, budget, and
trials reaped after their worker died, read from the storage at every scrape.
Run it next to the database for a Prometheus that watches every worker on
every machine; the workers' own figures (epochs, losses, durations) come from
each study optimize's --metrics-addr. It runs until Ctrl-C.

The metrics have no authentication and no encryption: on an address other
than loopback (0.0.0.0:9464, :9464, a LAN address) anyone who reaches the
port reads every study's name and progress, and serve says so with a warning
on stderr. Keep such a port behind a firewall or an authenticating proxy.`,
		Example: `  floodtune serve --storage postgres://floodtune@db/floodtune --metrics-addr 0.0.0.0:9464`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if addr == "" {
				return badInput(errors.New("--metrics-addr: serve needs an address"))
			}
			if err := checkAddr(addr); err != nil {
				return err
			}
			st, err := openStorage(cmd, storage.MustExist())
			if err != nil {
				return err
			}
			defer st.Close()
			_, done := serveMetrics(cmd.Context(), addr, st, false, cmd.ErrOrStderr())
			if err := <-done; err != nil {
				return err
			}
			return nil
		},
	}
	metricsFlag(cmd, &addr)
	return cmd
}
