// Package search is floodtune's hub: study specs and their search spaces,
// samplers and pruners, the worker pool, leases and seeds. Go programs embed
// it to run flood-level searches.
//
// A study is described by a Spec, read from YAML or JSON:
//
//	spec, err := search.ParseSpec(yamlBytes)  // every problem reported, nothing written
//	cfg, err := spec.Config(map[string]any{"flood_level": 0.8, "lr": 0.05})
package search
