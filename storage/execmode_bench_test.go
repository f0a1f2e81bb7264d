package storage_test

import (
	"testing"

	"github.com/floodtune/floodtune/internal/pgtest"
	"github.com/floodtune/floodtune/storage"
)

// BenchmarkQueryExecModes measures what preparing no statement costs (the
// exec mode of pgbouncer=transaction, and the other modes a transaction
// pooler serves) against pgx's default of cached prepared statements,
// directly and through PgBouncer: a trial's life as a worker writes it
// (create, a parameter, five intermediate values, a heartbeat, finish), and
// loading a study of 1,000 trials.
func BenchmarkQueryExecModes(b *testing.B) {
	for _, m := range []struct{ name, param string }{
		{"cache_statement", ""}, // pgx's default; through PgBouncer only with one client at a time
		{"exec", "&pgbouncer=transaction"},
		{"simple_protocol", "&default_query_exec_mode=simple_protocol"},
		{"cache_describe", "&default_query_exec_mode=cache_describe"},
	} {
		for _, via := range []string{"direct", "pgbouncer"} {
			b.Run(via+"/"+m.name, func(b *testing.B) {
				u := pgtest.Schema(b)
				if via == "pgbouncer" {
					u, _ = pgtest.Bouncer(b)
					if m.param == "" {
						u += "&pgbouncer=session" // no detection: keep preparing
					}
				}
				st := openStore(b, u+m.param)
				study := newStudy(b, st, storage.NewStudy{})
				ctx := b.Context()
				b.Run("trial", func(b *testing.B) {
					for b.Loop() {
						tr := newTrial(b, st, study.ID, running("w"))
						if err := st.SetParam(ctx, tr.ID, "w", "x", uniform(0.5, 0, 1)); err != nil {
							b.Fatal(err)
						}
						for step := range 5 {
							if err := st.Report(ctx, tr.ID, "w", step, 0.1); err != nil {
								b.Fatal(err)
							}
						}
						if err := st.Heartbeat(ctx, tr.ID, "w"); err != nil {
							b.Fatal(err)
						}
						if err := st.Finish(ctx, tr.ID, "w", storage.Complete, 0.3); err != nil {
							b.Fatal(err)
						}
					}
				})
				read := newStudy(b, st, storage.NewStudy{Name: "read"})
				for i := range 1000 {
					newTrial(b, st, read.ID, scaleTrial(i))
				}
				b.Run("load1000", func(b *testing.B) {
					for b.Loop() {
						if _, err := st.Trials(ctx, read.ID); err != nil {
							b.Fatal(err)
						}
					}
				})
			})
		}
	}
}
