// Package metrics exposes a search's progress to Prometheus.
//
// Worker-level figures (trials finished, trial and epoch durations, what
// each worker slot is training now, storage and sampler latency) are
// recorded by the process that runs the trials; study-level figures (trials
// by state, best value and its flood level, budget, trials reaped) are read
// from the storage at scrape time by a collector, so they are right however
// many processes on however many machines work on a study.
//
//	reg := prometheus.NewRegistry()
//	m, err := metrics.New(reg) // worker-level; an error if reg already holds them
//	if err != nil {
//		return err
//	}
//	reg.MustRegister(metrics.NewStudyCollector(source)) // study-level, from the storage
//	srv := &metrics.Server{Addr: "127.0.0.1:9464", Gatherer: reg}
//	go srv.Run(ctx)
//
// Every metric name starts with floodtune_ and uses base units; labels take
// bounded values only: a study's name, a state, a worker slot, an
// operation, never a trial id, a parameter value or a URL. The package
// reads studies through the StudySource interface it defines, so it depends
// on nothing of floodtune's.
package metrics
