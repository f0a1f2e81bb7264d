// Package schematest checks the Grafana dashboards of deploy/grafana/dashboards
// against Grafana's dashboard schema as the grafana-foundation-sdk publishes
// it, since no Grafana runs where floodtune is tested.
//
// It is a module of its own so that the SDK and the Prometheus query parser
// stay out of floodtune's own build list. Run it with
//
//	cd deploy/grafana/schematest && go test ./...
package schematest
