package schematest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const dashboards = "../dashboards/*.json"

func dashboardFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(dashboards)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no dashboard matches %s", dashboards)
	}
	return files
}

func TestEveryDashboardDecodesStrictlyWithGrafanasSchema(t *testing.T) {
	t.Parallel()
	for _, file := range dashboardFiles(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			t.Parallel()
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			d, err := decodeStrict(raw)
			if err != nil {
				t.Fatalf("%s does not fit Grafana's dashboard schema:\n%v", file, err)
			}
			var top struct {
				Panels []json.RawMessage `json:"panels"`
			}
			if err := json.Unmarshal(raw, &top); err != nil {
				t.Fatal(err)
			}
			if len(d.Panels) != len(top.Panels) {
				t.Errorf("decoded %d panels of %d", len(d.Panels), len(top.Panels))
			}
		})
	}
}

// edit is a change to a dashboard decoded as plain JSON.
type edit func(t *testing.T, d map[string]any)

func obj(t *testing.T, v any, what string) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s is no JSON object: %T", what, v)
	}
	return m
}

func panel(t *testing.T, d map[string]any, i int) map[string]any {
	t.Helper()
	ps, ok := d["panels"].([]any)
	if !ok || len(ps) <= i {
		t.Fatalf("the dashboard has no panel %d", i)
	}
	return obj(t, ps[i], "a panel")
}

// panelWith returns the first panel that has key.
func panelWith(t *testing.T, d map[string]any, key string) map[string]any {
	t.Helper()
	ps, _ := d["panels"].([]any)
	for i := range ps {
		if p := panel(t, d, i); p[key] != nil {
			return p
		}
	}
	t.Fatalf("no panel has %s", key)
	return nil
}

// panelOfType returns the first panel of type typ.
func panelOfType(t *testing.T, d map[string]any, typ string) map[string]any {
	t.Helper()
	ps, _ := d["panels"].([]any)
	for i := range ps {
		if p := panel(t, d, i); p["type"] == typ {
			return p
		}
	}
	t.Fatalf("no panel is a %s", typ)
	return nil
}

func target(t *testing.T, p map[string]any, i int) map[string]any {
	t.Helper()
	ts, ok := p["targets"].([]any)
	if !ok || len(ts) <= i {
		t.Fatalf("the panel has no target %d", i)
	}
	return obj(t, ts[i], "a target")
}

func rename(m map[string]any, from, to string) {
	m[to] = m[from]
	delete(m, from)
}

func TestStrictDecodingCatchesWhatGrafanaWouldNotTake(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../dashboards/floodtune.json")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decodeStrict(raw); err != nil {
		t.Fatalf("the dashboard the cases start from must pass: %v", err)
	}
	for _, c := range []struct {
		name string
		edit edit
		want string
	}{
		{"a dashboard without annotations", func(t *testing.T, d map[string]any) {
			delete(d, "annotations")
		}, "annotations: required field is missing"},
		{"a dashboard without schemaVersion", func(t *testing.T, d map[string]any) {
			delete(d, "schemaVersion")
		}, "schemaVersion: required field is missing"},
		{"a misspelt dashboard key", func(t *testing.T, d map[string]any) {
			rename(d, "title", "titel")
		}, "unexpected field 'titel'"},
		{"a refresh given as a number", func(t *testing.T, d map[string]any) {
			d["refresh"] = 10
		}, "refresh"},
		{"a misspelt key of a template variable", func(t *testing.T, d map[string]any) {
			list := obj(t, d["templating"], "templating")["list"].([]any)
			rename(obj(t, list[0], "a variable"), "includeAll", "includeall")
		}, "unexpected field 'includeall'"},
		{"a misspelt panel key", func(t *testing.T, d map[string]any) {
			rename(panel(t, d, 0), "gridPos", "gridpos")
		}, "unexpected field 'gridpos'"},
		{"a panel width given as a string", func(t *testing.T, d map[string]any) {
			obj(t, panel(t, d, 0)["gridPos"], "gridPos")["w"] = "12"
		}, "gridPos.w"},
		{"a panel without its height", func(t *testing.T, d map[string]any) {
			delete(obj(t, panel(t, d, 0)["gridPos"], "gridPos"), "h")
		}, "h: required field is missing"},
		{"a misspelt key of a row", func(t *testing.T, d map[string]any) {
			rename(panelOfType(t, d, "row"), "collapsed", "colapsed")
		}, "unexpected field 'colapsed'"},
		{"a misspelt panel type", func(t *testing.T, d map[string]any) {
			panel(t, d, 0)["type"] = "timeserie"
		}, `"timeserie" is no panel type`},
		{"a misspelt key in a time series panel's options", func(t *testing.T, d map[string]any) {
			panel(t, d, 0)["options"] = map[string]any{"tooltipp": map[string]any{}}
		}, "unexpected field 'tooltipp'"},
		{"a misspelt key in a panel's field defaults", func(t *testing.T, d map[string]any) {
			fc := obj(t, panelWith(t, d, "fieldConfig")["fieldConfig"], "fieldConfig")
			rename(obj(t, fc["defaults"], "defaults"), "unit", "units")
		}, "unexpected field 'units'"},
		{"a misspelt datasource type", func(t *testing.T, d map[string]any) {
			obj(t, panel(t, d, 0)["datasource"], "datasource")["type"] = "promethus"
		}, `"promethus" has no query schema`},
		{"a misspelt key of a Prometheus query", func(t *testing.T, d map[string]any) {
			rename(target(t, panel(t, d, 0), 0), "legendFormat", "legendFromat")
		}, "unexpected field 'legendFromat'"},
		{"a Prometheus query without its expression", func(t *testing.T, d map[string]any) {
			delete(target(t, panel(t, d, 0), 0), "expr")
		}, "expr: required field is missing"},
		{"a Prometheus query's expression given as a list", func(t *testing.T, d map[string]any) {
			q := target(t, panel(t, d, 0), 0)
			q["expr"] = []any{q["expr"]}
		}, "expr"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var d map[string]any
			if err := json.Unmarshal(raw, &d); err != nil {
				t.Fatal(err)
			}
			c.edit(t, d)
			bad, err := json.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			_, err = decodeStrict(bad)
			if err == nil {
				t.Fatalf("decoded without error; want one saying %q", c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not say %q", err, c.want)
			}
		})
	}
}

// known are the metrics that are not floodtune's and that a dashboard may
// query: Prometheus's own per-target ones.
var known = map[string]bool{"up": true}

func TestEveryPrometheusQueryParses(t *testing.T) {
	t.Parallel()
	for _, file := range dashboardFiles(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			t.Parallel()
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			qs, err := promQueries(raw)
			if err != nil {
				t.Fatal(err)
			}
			if len(qs) == 0 {
				t.Fatal("no Prometheus query found")
			}
			for _, q := range qs {
				names, err := parsePromQL(q.Expr)
				if err != nil {
					t.Errorf("panel %q, query %s: %v\n\t%s", q.Panel, q.RefID, err, q.Expr)
					continue
				}
				if len(names) == 0 {
					t.Errorf("panel %q, query %s selects no metric: %s", q.Panel, q.RefID, q.Expr)
				}
				for _, n := range names {
					if !strings.HasPrefix(n, "floodtune_") && !known[n] {
						t.Errorf("panel %q, query %s selects %q, neither floodtune's nor Prometheus's", q.Panel, q.RefID, n)
					}
				}
			}
		})
	}
}

func TestThePromQLCheckCatchesBrokenQueries(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ name, expr string }{
		{"an unclosed parenthesis", `sum by (le (rate(floodtune_trials_finished_total[5m]))`},
		{"rate of an instant vector", `rate(floodtune_trials_finished_total{study=~"$study"})`},
		{"a quantile without its histogram", `histogram_quantile(0.5)`},
		{"a bad duration", `rate(floodtune_trials_finished_total[5x])`},
		{"an unknown function", `ratee(floodtune_trials_finished_total[5m])`},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if _, err := parsePromQL(c.expr); err == nil {
				t.Errorf("%s parsed", c.expr)
			}
		})
	}
	names, err := parsePromQL(`sum(rate(floodtune_a_total{study=~"$study"}[$__rate_interval])) / sum(up)`)
	if err != nil {
		t.Fatalf("a query with Grafana's variables: %v", err)
	}
	if strings.Join(names, " ") != "floodtune_a_total up" {
		t.Errorf("selected metrics %q, want floodtune_a_total and up", names)
	}
}
