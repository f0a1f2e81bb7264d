package schematest

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/prometheus/prometheus/promql/parser"
)

func init() {
	// Without the SDK's panel and query types registered, the strict
	// decoder takes any panel options and any query.
	plugins.RegisterDefaultPlugins()
}

// schemaless are the datasource types the SDK has no query type for: their
// queries cannot be checked against a schema (deploy's own tests run the
// dashboard's SQL against PostgreSQL instead).
var schemaless = map[string]bool{"grafana-postgresql-datasource": true}

// decodeStrict decodes a dashboard with the SDK's strict decoder, which
// fails on a missing required field, a field of the wrong type and a field
// the schema does not know, and adds the checks that decoder leaves out:
//
//   - a panel's type must be one the SDK knows (or "row"), since the SDK
//     checks the options only of the panel types it knows, so a misspelt type
//     would pass with anything in its options;
//   - a panel's fieldConfig is decoded strictly too (the SDK's panel decoder
//     reads it leniently, all but its custom part);
//   - every query of a panel must decode strictly as its datasource's query
//     type (a panel with no datasource type, or one the SDK does not know and
//     that is not listed in schemaless, is an error: its queries would pass
//     unchecked).
//
// It returns every problem found, joined.
//
//lint:ignore SA1019 our dashboards are classic JSON (schemaVersion 39), which dashboard.Dashboard describes; dashboardv2 is another format.
func decodeStrict(raw []byte) (*dashboard.Dashboard, error) {
	//lint:ignore SA1019 as above
	var d dashboard.Dashboard
	errs := []error{sdkError(d.UnmarshalJSONStrict(raw))}
	var top struct {
		Panels []json.RawMessage `json:"panels"`
	}
	if err := json.Unmarshal(raw, &top); err != nil {
		return nil, err
	}
	for i, p := range top.Panels {
		errs = append(errs, checkPanel(fmt.Sprintf("panels[%d]", i), p))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &d, nil
}

// sdkError is err, or nil when it is an empty cog.BuildErrors: the SDK's
// strict decoders return their (empty) error list as a non-nil error.
func sdkError(err error) error {
	var be cog.BuildErrors
	if errors.As(err, &be) && len(be) == 0 {
		return nil
	}
	return err
}

type rawPanel struct {
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
	} `json:"datasource"`
	FieldConfig json.RawMessage   `json:"fieldConfig"`
	Targets     []json.RawMessage `json:"targets"`
	Panels      []json.RawMessage `json:"panels"` // a row's
}

func checkPanel(path string, raw json.RawMessage) error {
	var p rawPanel
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil // the SDK's decoder has said what is wrong
	}
	path += fmt.Sprintf(" (%q)", p.Title)
	var errs []error
	if p.Type == "row" {
		for i, sub := range p.Panels {
			errs = append(errs, checkPanel(fmt.Sprintf("%s.panels[%d]", path, i), sub))
		}
		return errors.Join(errs...)
	}
	if _, ok := cog.ConfigForPanelcfgVariant(p.Type); !ok {
		errs = append(errs, fmt.Errorf("%s.type: %q is no panel type the Grafana schema knows", path, p.Type))
	}
	if p.FieldConfig != nil && string(p.FieldConfig) != "null" {
		var fc dashboard.FieldConfigSource
		if err := sdkError(fc.UnmarshalJSONStrict(p.FieldConfig)); err != nil {
			errs = append(errs, fmt.Errorf("%s.fieldConfig: %w", path, err))
		}
	}
	if len(p.Targets) == 0 {
		return errors.Join(errs...)
	}
	ds := ""
	if p.Datasource != nil {
		ds = p.Datasource.Type
	}
	switch {
	case ds == "":
		errs = append(errs, fmt.Errorf("%s.datasource: no type, so its queries cannot be checked", path))
	case schemaless[ds]:
	default:
		for i, t := range p.Targets {
			q, err := cog.StrictUnmarshalDataquery(t, ds)
			if err := sdkError(err); err != nil {
				errs = append(errs, fmt.Errorf("%s.targets[%d]: %w", path, i, err))
				continue
			}
			if _, unknown := q.(variants.UnknownDataquery); unknown {
				errs = append(errs, fmt.Errorf("%s.targets[%d]: datasource type %q has no query schema in the SDK", path, i, ds))
			}
		}
	}
	return errors.Join(errs...)
}

// grafanaVariables are the interval variables Grafana puts in a query before
// Prometheus sees it, with a value of the right kind for parsing.
var grafanaVariables = strings.NewReplacer(
	"$__rate_interval", "1m",
	"$__interval", "1m",
	"$__range", "1h",
)

// promQL is one Prometheus query of a dashboard.
type promQL struct {
	Panel, RefID, Expr string
}

// promQueries returns every Prometheus query of a dashboard's panels
// (rows' panels included).
func promQueries(raw []byte) ([]promQL, error) {
	var top struct {
		Panels []json.RawMessage `json:"panels"`
	}
	if err := json.Unmarshal(raw, &top); err != nil {
		return nil, err
	}
	var out []promQL
	var walk func([]json.RawMessage) error
	walk = func(panels []json.RawMessage) error {
		for _, raw := range panels {
			var p rawPanel
			if err := json.Unmarshal(raw, &p); err != nil {
				return err
			}
			if err := walk(p.Panels); err != nil {
				return err
			}
			if p.Datasource == nil || p.Datasource.Type != "prometheus" {
				continue
			}
			for _, t := range p.Targets {
				var q prometheus.Dataquery
				if err := json.Unmarshal(t, &q); err != nil {
					return fmt.Errorf("panel %q: %w", p.Title, err)
				}
				ref := ""
				if q.RefId != nil {
					ref = *q.RefId
				}
				out = append(out, promQL{Panel: p.Title, RefID: ref, Expr: q.Expr})
			}
		}
		return nil
	}
	return out, walk(top.Panels)
}

// parsePromQL parses a query as Prometheus would once Grafana has put its
// interval variables in, and returns the metric names it selects.
func parsePromQL(expr string) ([]string, error) {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(grafanaVariables.Replace(expr))
	if err != nil {
		return nil, err
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			names = append(names, vs.Name)
		}
		return nil
	})
	return names, nil
}
