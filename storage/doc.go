// Package storage keeps floodtune's studies and trials in PostgreSQL (through
// pgx/v5's pool) or in an embedded SQLite file, with the guarantees a search
// across many processes and machines needs:
//
//   - trial numbers are unique and gap-free per study, however many workers
//     create trials at once;
//   - a study's trial budget is never exceeded: a new trial is refused
//     (ErrBudgetExhausted) once the trials that count or may still count fill
//     it; a failed trial that was retried gives its place to the retry;
//   - waiting trials are claimed once each (FOR UPDATE SKIP LOCKED);
//   - a running trial holds a lease that its worker renews (Heartbeat); Reap,
//     which any number of workers may run at once, fails the trials whose
//     lease expired by the database's clock and enqueues a retry with the same
//     parameters, up to a retry limit;
//   - every write of a running trial is fenced by its worker: a worker whose
//     lease was taken away gets ErrLeaseLost and changes nothing.
//
// Open picks the backend from a URL and migrates the schema:
//
//	st, err := storage.Open(ctx, "postgres://user@db/floodtune")  // or "sqlite:floodtune.db"
//	defer st.Close()
//	study, err := st.CreateStudy(ctx, storage.NewStudy{Name: "mnist", Direction: storage.Maximize, Budget: 30})
//
// The Store's methods take a context. Goptuna adapts a Store to
// goptuna.Storage, so that Goptuna's samplers and pruners run on it unchanged.
package storage
