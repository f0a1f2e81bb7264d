// Package deploy holds the Prometheus and Grafana configuration of the
// docker-compose stack; its tests check the stack's files against each
// other and against floodtune, since no Docker engine runs in CI.
package deploy

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/floodtune/floodtune/internal/pgtest"
	"github.com/floodtune/floodtune/metrics"
	"github.com/floodtune/floodtune/storage"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

type compose struct {
	Services map[string]struct {
		Image      string   `yaml:"image"`
		Build      any      `yaml:"build"`
		Entrypoint []string `yaml:"entrypoint"`
		Command    []string `yaml:"command"`
		Volumes    []string `yaml:"volumes"`
		Ports      []string `yaml:"ports"`
	} `yaml:"services"`
}

func readCompose(t *testing.T) compose {
	t.Helper()
	data, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c compose
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return c
}

// floodtuneCommands are the CLI's commands that the stack may run.
var floodtuneCommands = []string{"migrate", "study", "serve", "train", "trial", "version", "token"}

func TestComposeServicesAndTheirFiles(t *testing.T) {
	c := readCompose(t)
	for _, name := range []string{"postgres", "migrate", "create", "worker1", "worker2", "serve", "token", "worker-http", "prometheus", "grafana"} {
		if _, ok := c.Services[name]; !ok {
			t.Errorf("docker-compose.yml has no service %q", name)
		}
	}
	for name, s := range c.Services {
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, "./") {
				if _, err := os.Stat(filepath.Join("..", src)); err != nil {
					t.Errorf("service %s mounts %s, which does not exist", name, src)
				}
			}
		}
		if s.Image == "floodtune:local" || s.Build != nil {
			args := s.Command
			if len(s.Entrypoint) > 0 {
				args = strings.Fields(strings.Join(s.Command, " "))
				if len(args) == 0 || args[0] != "floodtune" {
					t.Errorf("service %s: its shell command should run floodtune: %q", name, s.Command)
					continue
				}
				args = args[1:]
			}
			if len(args) == 0 || !slices.Contains(floodtuneCommands, args[0]) {
				t.Errorf("service %s runs %q, not a floodtune command", name, args)
			}
			for i, a := range args {
				if a == "--spec" && i+1 < len(args) {
					local := strings.Replace(args[i+1], "/usr/share/floodtune/examples", "../examples", 1)
					if _, err := os.Stat(local); err != nil {
						t.Errorf("service %s reads the spec %s, which the image does not have (%v)", name, args[i+1], err)
					}
				}
			}
		}
	}
}

func TestPrometheusScrapesTheServicesThatServeMetrics(t *testing.T) {
	c := readCompose(t)
	data, err := os.ReadFile("prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		ScrapeConfigs []struct {
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	targets := 0
	for _, sc := range cfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				targets++
				host, port, _ := strings.Cut(target, ":")
				s, ok := c.Services[host]
				if !ok {
					t.Errorf("Prometheus scrapes %s, which is no compose service", target)
					continue
				}
				cmd := strings.Join(s.Command, " ")
				if !strings.Contains(cmd, "--metrics-addr 0.0.0.0:"+port) {
					t.Errorf("Prometheus scrapes %s, but the service serves metrics with: %s", target, cmd)
				}
			}
		}
	}
	if targets != 3 {
		t.Errorf("%d targets, want the two workers and serve", targets)
	}
}

func TestTheImageRunsTheBinaryItBuilds(t *testing.T) {
	data, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(data)
	for _, want := range []string{
		"make build BIN=/out/floodtune",
		"COPY --from=build /out/floodtune /usr/local/bin/floodtune",
		`ENTRYPOINT ["/usr/local/bin/floodtune"]`,
		"libopenblas-dev",
		"COPY examples /usr/share/floodtune/examples",
		"ENV FLOODTUNE_MNIST_DIR=/usr/share/floodtune/mnist",
		// A numeric user, so that Kubernetes' runAsNonRoot can verify it.
		"useradd --system --uid 10001",
		"USER 10001:10001",
	} {
		if !strings.Contains(df, want) {
			t.Errorf("the Dockerfile lacks %q", want)
		}
	}
	if !regexp.MustCompile(`(?m)^\s+make\b`).MatchString(df) && !strings.Contains(df, "RUN make build") {
		t.Error("the Dockerfile does not build with make")
	}
}

type dashboard struct {
	Panels []struct {
		ID      int    `json:"id"`
		Title   string `json:"title"`
		GridPos struct {
			X int `json:"x"`
			Y int `json:"y"`
			W int `json:"w"`
			H int `json:"h"`
		} `json:"gridPos"`
		Datasource struct {
			UID string `json:"uid"`
		} `json:"datasource"`
		Targets []struct {
			Expr   string `json:"expr"`
			RawSQL string `json:"rawSql"`
		} `json:"targets"`
	} `json:"panels"`
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	data, err := os.ReadFile("grafana/dashboards/floodtune.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("the dashboard is not valid JSON: %v", err)
	}
	return d
}

func TestEveryMetricOfTheDashboardExists(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.TrialStarted("s", 0, 0.5)
	m.Epoch("s", 0, 1, 1, 0.5, 0, 1)
	m.TrialFinished("s", 0, "complete", 1)
	m.StorageOp("claim", 1)
	m.Sampled("tpe", 1)
	reg.MustRegister(metrics.NewStudyCollector(stats{}))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, f := range families {
		known[f.GetName()] = true
	}
	name := regexp.MustCompile(`floodtune_[a-z_]+`)
	exprs := 0
	for _, p := range readDashboard(t).Panels {
		for _, tg := range p.Targets {
			if tg.Expr == "" {
				continue
			}
			exprs++
			for _, n := range name.FindAllString(tg.Expr, -1) {
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_sum"), "_count")
				if !known[base] {
					t.Errorf("panel %q queries %s, which floodtune does not export", p.Title, n)
				}
			}
		}
	}
	if exprs < 20 {
		t.Errorf("%d PromQL queries, want the dashboard's panels", exprs)
	}
}

func TestTheDashboardHasTheClusterOperatorsPanels(t *testing.T) {
	titles := map[string]bool{}
	for _, p := range readDashboard(t).Panels {
		titles[p.Title] = true
	}
	for _, want := range []string{
		"Workers alive",
		"Trials reaped per hour",
		"Storage latency by operation (p50, p99)",
		"Trials per hour by state",
	} {
		if !titles[want] {
			t.Errorf("the dashboard has no panel %q", want)
		}
	}
}

// TestTheDashboardsPanelsDoNotOverlap checks the layout Grafana would
// otherwise rearrange: ids unique, every panel inside the 24 columns of
// Grafana's grid, and no two panels on the same cells.
func TestTheDashboardsPanelsDoNotOverlap(t *testing.T) {
	d := readDashboard(t)
	ids := map[int]string{}
	for i, p := range d.Panels {
		if prev, ok := ids[p.ID]; ok || p.ID <= 0 {
			t.Errorf("panel %q has the id %d (taken by %q, or not positive)", p.Title, p.ID, prev)
		}
		ids[p.ID] = p.Title
		g := p.GridPos
		if g.X < 0 || g.Y < 0 || g.W <= 0 || g.H <= 0 || g.X+g.W > 24 {
			t.Errorf("panel %q lies outside the grid: %+v", p.Title, g)
		}
		for _, q := range d.Panels[:i] {
			h := q.GridPos
			if g.X < h.X+h.W && h.X < g.X+g.W && g.Y < h.Y+h.H && h.Y < g.Y+g.H {
				t.Errorf("panels %q %+v and %q %+v overlap", q.Title, h, p.Title, g)
			}
		}
	}
}

type stats struct{}

func (stats) StudyStats(context.Context) ([]metrics.StudyStat, error) {
	return []metrics.StudyStat{{Name: "s", Trials: map[string]int{"complete": 1}, Best: 1, BestFloodLevel: 0.5}}, nil
}

func TestEverySQLQueryOfTheDashboardReturnsRows(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Schema(t)
	st, err := storage.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	study, err := st.CreateStudy(ctx, storage.NewStudy{Name: "demo", Direction: storage.Maximize, Budget: 3})
	if err != nil {
		t.Fatal(err)
	}
	dist := []byte(`{"type":"UniformDistribution","attributes":{"low":0,"high":1.5}}`)
	for i, v := range []float64{0.7, 0.8, 0.75} {
		if _, err := st.CreateTrial(ctx, study.ID, storage.NewTrial{State: storage.Complete, Value: v,
			Params:    map[string]storage.Param{"flood_level": {Value: float64(i) * 0.4, Distribution: dist}},
			UserAttrs: map[string]string{"test_acc": "0.9"}}); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	queries := 0
	for _, p := range readDashboard(t).Panels {
		for _, tg := range p.Targets {
			if tg.RawSQL == "" {
				continue
			}
			queries++
			q := strings.ReplaceAll(tg.RawSQL, "$study", "'demo'")
			rows, err := conn.Query(ctx, q)
			if err != nil {
				t.Errorf("panel %q: %v", p.Title, err)
				continue
			}
			n := 0
			for rows.Next() {
				n++
			}
			if err := rows.Err(); err != nil {
				t.Errorf("panel %q: %v", p.Title, err)
			}
			rows.Close()
			if n == 0 {
				t.Errorf("panel %q returned no row", p.Title)
			}
		}
	}
	if queries != 2 {
		t.Errorf("%d SQL queries, want 2", queries)
	}
}
