package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/floodtune/floodtune/internal/pgtest"
	"github.com/floodtune/floodtune/metrics"
	"github.com/floodtune/floodtune/search"
	"github.com/floodtune/floodtune/storage"
	"github.com/prometheus/client_golang/prometheus"
)

// needTool returns the path of a Prometheus tool; a missing one fails the
// test in CI and skips it elsewhere.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing (scripts/ensure-prometheus.sh installs it)", name)
		}
		t.Skipf("%s is missing: install Debian's prometheus to run this test", name)
	}
	return p
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestPromtoolAcceptsTheScrapeConfig(t *testing.T) {
	promtool := needTool(t, "promtool")
	out, err := exec.Command(promtool, "check", "config", "--syntax-only", "prometheus/prometheus.yml").CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check config: %v\n%s", err, out)
	}
}

// A study optimised with 2 workers, scraped by a real Prometheus: every
// PromQL query of the dashboard returns at least one series.
func TestPrometheusScrapesAStudyAndEveryDashboardQueryAnswers(t *testing.T) {
	promBin, promtool := needTool(t, "prometheus"), needTool(t, "promtool")
	ctx := context.Background()
	st, err := storage.Open(ctx, pgtest.Schema(t))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	spec, err := search.ParseSpec([]byte(`
dataset: {name: gauss2d, train_size: 1000, val_size: 250, test_size: 2000, label_noise: 0.1}
model: {hidden: [128, 128]}
training: {optimizer: adam, lr: 0.01, batch_size: 50, epochs: 20}
search: {sampler: tpe, trials: 8, seed: 5}
space:
  flood_level: {type: float, low: 0, high: 0.6}
`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := search.Create(ctx, st, "e2e", spec); err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	reg.MustRegister(metrics.NewStudyCollector(search.Stats{Store: st}))
	sctx, stopServer := context.WithCancel(ctx)
	defer stopServer()
	ready := make(chan string, 1)
	go (&metrics.Server{Addr: "127.0.0.1:0", Gatherer: reg, Ready: ready}).Run(sctx)
	target := <-ready

	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("global: {scrape_interval: 1s, evaluation_interval: 1s}\nscrape_configs:\n  - job_name: floodtune\n    static_configs:\n      - targets: [%q]\n", target)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "config", cfg).CombinedOutput(); err != nil {
		t.Fatalf("promtool check config: %v\n%s", err, out)
	}
	web := freeAddr(t)
	prom := exec.Command(promBin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+web, "--log.level=warn")
	prom.Stdout, prom.Stderr = io.Discard, io.Discard
	if err := prom.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = prom.Process.Kill(); _ = prom.Wait() }()

	if err := search.Optimize(ctx, st, "e2e", search.Options{Workers: 2, Metrics: m}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // a few scrapes after the last trial

	// promtool accepts what floodtune serves.
	resp, err := http.Get("http://" + target + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	check := exec.Command(promtool, "check", "metrics")
	check.Stdin = strings.NewReader(string(body))
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}

	queries := 0
	for _, p := range readDashboard(t).Panels {
		for _, tg := range p.Targets {
			if tg.Expr == "" {
				continue
			}
			queries++
			q := strings.ReplaceAll(tg.Expr, "$study", "e2e")
			n, err := seriesCount(web, q)
			if err != nil {
				t.Errorf("panel %q: %s: %v", p.Title, q, err)
			} else if n == 0 {
				t.Errorf("panel %q: %s returned no series", p.Title, q)
			}
		}
	}
	if queries < 10 {
		t.Errorf("%d queries checked", queries)
	}
}

// seriesCount asks Prometheus's HTTP API for an instant query's series.
func seriesCount(addr, query string) (int, error) {
	var out struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	for attempt := 0; attempt < 20; attempt++ {
		resp, err := http.Get("http://" + addr + "/api/v1/query?query=" + url.QueryEscape(query))
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
		}
		if err == nil && out.Status == "success" && len(out.Data.Result) > 0 {
			return len(out.Data.Result), nil
		}
		if err == nil && out.Status != "success" {
			return 0, fmt.Errorf("%s", out.Error)
		}
		time.Sleep(500 * time.Millisecond)
	}
	return len(out.Data.Result), nil
}
