package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/floodtune/floodtune/metrics"
	"github.com/floodtune/floodtune/search"
	"github.com/floodtune/floodtune/storage"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
)

// metricsFlag adds --metrics-addr to cmd.
func metricsFlag(cmd *cobra.Command, addr *string) {
	cmd.Flags().StringVar(addr, "metrics-addr", metrics.DefaultAddr, "serve Prometheus metrics on this address (loopback by default; '' turns them off)")
}

// checkAddr rejects a --metrics-addr that is not host:port.
func checkAddr(addr string) error {
	if addr == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return badInput(fmt.Errorf("--metrics-addr %q: want host:port, e.g. 127.0.0.1:9464", addr))
	}
	return nil
}

// serveMetrics registers the study collector of st (and, with worker set,
// the worker metrics it returns) and serves them on addr until ctx ends.
// A port in use, or worker metrics that cannot be registered, is reported
// on log and in the returned channel, and the command goes on without
// metrics.
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
			fmt.Fprintf(log, "floodtune: %v; going on without metrics\n", err)
			done <- err
			close(done)
			return nil, done
		}
	}
	ready := make(chan string, 1)
	go func() {
		err := (&metrics.Server{Addr: addr, Gatherer: reg, Ready: ready}).Run(ctx)
		if err != nil {
			fmt.Fprintf(log, "floodtune: %v; going on without metrics\n", err)
		}
		done <- err
		close(done)
	}()
	select {
	case a := <-ready:
		fmt.Fprintf(log, "metrics on http://%s/metrics\n", a)
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
each study optimize's --metrics-addr. It runs until Ctrl-C.`,
		Example: `  floodtune serve --storage postgres://floodtune@db/floodtune --metrics-addr 0.0.0.0:9464`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if addr == "" {
				return badInput(errors.New("--metrics-addr: serve needs an address"))
			}
			if err := checkAddr(addr); err != nil {
				return err
			}
			st, err := openStorage(cmd)
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
