package storage_test

import (
	"testing"

	"github.com/floodtune/floodtune/storage"
)

func TestMigrationConformance(t *testing.T) {
	runConformance(t, migrationTests)
}

// migrations returns the store's migrations, failing t on an error.
func migrations(t testing.TB, st *storage.Store) []storage.Migration {
	t.Helper()
	ms, err := st.Migrations(t.Context())
	if err != nil {
		t.Fatalf("Migrations: %v", err)
	}
	if len(ms) == 0 {
		t.Fatal("Migrations: none")
	}
	return ms
}

// checkApplied checks that exactly the first n migrations are applied.
func checkApplied(t testing.TB, st *storage.Store, n int) {
	t.Helper()
	for i, m := range migrations(t, st) {
		if m.Version != i+1 || m.Name == "" {
			t.Errorf("migration %d is %03d_%s: want versions 1, 2, ... with names", i, m.Version, m.Name)
		}
		if applied := i < n; m.Applied != applied || m.AppliedAt.IsZero() == applied {
			t.Errorf("migration %03d_%s: applied %v (at %v), want applied %v", m.Version, m.Name, m.Applied, m.AppliedAt, applied)
		}
	}
}

// works checks that the store can create, run and read a study: the trial
// it finishes with value is the one it reads back.
func works(t testing.TB, st *storage.Store, name string, value float64) {
	t.Helper()
	s := newStudy(t, st, storage.NewStudy{Name: name, Budget: 2})
	tr := newTrial(t, st, s.ID, running("w"))
	if err := st.Finish(t.Context(), tr.ID, "w", storage.Complete, value); err != nil {
		t.Fatal(err)
	}
	best, err := st.Best(t.Context(), s.ID)
	if err != nil || best.ID != tr.ID || best.StudyID != s.ID || best.Value != value {
		t.Fatalf("Best = %+v, %v; want trial %d of study %d with value %v", best, err, tr.ID, s.ID, value)
	}
	if got := getTrial(t, st, tr.ID); got.StudyID != s.ID || got.Value != value || got.State != storage.Complete {
		t.Fatalf("Trial(%d) = %+v; want the trial of study %d with value %v just finished", tr.ID, got, s.ID, value)
	}
	if ts := getTrials(t, st, s.ID); len(ts) != 1 || ts[0].ID != tr.ID || ts[0].Value != value {
		t.Fatalf("Trials = %d trials; want the one just finished", len(ts))
	}
}

var migrationTests = []conformanceTest{
	{"every migration is applied after Open", func(t *testing.T, e *env) {
		ms := migrations(t, e.st)
		checkApplied(t, e.st, len(ms))
		// Opening again changes nothing.
		again := e.open(t)
		if ran, err := again.Migrate(t.Context(), storage.Up, 0); err != nil || len(ran) != 0 {
			t.Errorf("Migrate(Up) of a migrated store ran %v, %v; want nothing", ran, err)
		}
		checkApplied(t, again, len(ms))
	}},
	{"down reverts the newest migration and up applies it again", func(t *testing.T, e *env) {
		ctx := t.Context()
		works(t, e.st, "before", 1)
		ms := migrations(t, e.st)
		newest := ms[len(ms)-1]
		ran, err := e.st.Migrate(ctx, storage.Down, 0)
		if err != nil || len(ran) != 1 || ran[0].Version != newest.Version {
			t.Fatalf("Migrate(Down, 0) = %v, %v; want %03d_%s only", ran, err, newest.Version, newest.Name)
		}
		checkApplied(t, e.st, len(ms)-1)
		if len(ms) == 1 {
			if _, err := e.st.Studies(ctx); err == nil {
				t.Error("Studies works with every migration reverted: the tables are still there")
			}
		}
		ran, err = e.st.Migrate(ctx, storage.Up, 0)
		if err != nil || len(ran) != 1 || ran[0].Version != newest.Version {
			t.Fatalf("Migrate(Up, 0) = %v, %v; want %03d_%s only", ran, err, newest.Version, newest.Name)
		}
		checkApplied(t, e.st, len(ms))
		works(t, e.st, "after", 2)
	}},
	{"down to nothing and up again leaves a working, empty store", func(t *testing.T, e *env) {
		ctx := t.Context()
		works(t, e.st, "before", 1)
		ms := migrations(t, e.st)
		for i := len(ms); i > 0; i-- {
			ran, err := e.st.Migrate(ctx, storage.Down, 0)
			if err != nil || len(ran) != 1 || ran[0].Version != i {
				t.Fatalf("Migrate(Down, 0) = %v, %v; want version %d", ran, err, i)
			}
		}
		checkApplied(t, e.st, 0)
		if ran, err := e.st.Migrate(ctx, storage.Down, 0); err != nil || len(ran) != 0 {
			t.Errorf("Migrate(Down) with nothing applied = %v, %v", ran, err)
		}
		if _, err := e.st.Studies(ctx); err == nil {
			t.Error("Studies works with every migration reverted")
		}
		if _, err := e.st.CreateStudy(ctx, storage.NewStudy{Name: "x", Direction: storage.Minimize}); err == nil {
			t.Error("CreateStudy works with every migration reverted")
		}
		ran, err := e.st.Migrate(ctx, storage.Up, 0)
		if err != nil || len(ran) != len(ms) {
			t.Fatalf("Migrate(Up, 0) = %v, %v; want all %d", ran, err, len(ms))
		}
		checkApplied(t, e.st, len(ms))
		if all, err := e.st.Studies(ctx); err != nil || len(all) != 0 {
			t.Errorf("after down and up: %d studies, %v; want none", len(all), err)
		}
		works(t, e.st, "before", 2) // the name is free: the old data is gone
		// Other stores on the database, opened before, work too.
		works(t, e.open(t), "another store", 3)
	}},
	{"Open without migration leaves the schema alone", func(t *testing.T, e *env) {
		st := openStore(t, e.freshURL(t), storage.WithoutMigration())
		checkApplied(t, st, 0)
		if _, err := st.Studies(t.Context()); err == nil {
			t.Error("Studies works on a store that was not migrated")
		}
		ran, err := st.Migrate(t.Context(), storage.Up, 0)
		if err != nil || len(ran) == 0 {
			t.Fatalf("Migrate(Up) = %v, %v", ran, err)
		}
		works(t, st, "s", 1)
	}},
	{"stores opened at once on a fresh database all migrate it without racing", func(t *testing.T, e *env) {
		// The race is in the first moments of a database, and it is rare
		// on SQLite (about one round in 30 fails there): try many fresh
		// databases where that is cheap.
		rounds := 3
		if e.backend == "sqlite" {
			rounds = 100
			if raceDetector {
				rounds = 10 // the run without it tries all 100
			}
		}
		const n = 16
		for round := range rounds {
			url := e.freshURL(t)
			stores := make([]*storage.Store, n)
			errs := make([]error, n)
			race(n, func(i int) { stores[i], errs[i] = storage.Open(t.Context(), url) })
			closeAll := func() {
				for _, st := range stores {
					if st != nil {
						_ = st.Close()
					}
				}
			}
			for i := range stores {
				if errs[i] != nil {
					t.Errorf("round %d: Open %d of %d at once on a fresh database: %v", round, i, n, errs[i])
				}
			}
			if t.Failed() {
				closeAll()
				return
			}
			ms := migrations(t, stores[0])
			checkApplied(t, stores[0], len(ms))
			works(t, stores[0], "s", 1)
			for i, st := range stores {
				if got, err := st.StudyByName(t.Context(), "s"); err != nil || got == nil {
					t.Errorf("round %d: store %d does not see the study: %v", round, i, err)
				}
			}
			if n := rawCount(t, &env{backend: e.backend, url: url}, "SELECT count(*) FROM floodtune_schema_migrations"); n != len(ms) {
				t.Errorf("round %d: %d rows in the version table, want %d", round, n, len(ms))
			}
			closeAll()
		}
	}},
	{"reading the migration status while stores migrate a fresh database does not break either", func(t *testing.T, e *env) {
		// `floodtune migrate status` may run while workers start and
		// migrate: neither may fail because of the other.
		for round := range 3 {
			url := e.freshURL(t)
			const n = 8
			stores := make([]*storage.Store, n)
			for i := range stores {
				stores[i] = openStore(t, url, storage.WithoutMigration())
			}
			errs := make([]error, n)
			race(n, func(i int) {
				if i%2 == 0 {
					_, errs[i] = stores[i].Migrations(t.Context())
				} else {
					_, errs[i] = stores[i].Migrate(t.Context(), storage.Up, 0)
				}
			})
			for i, err := range errs {
				if err != nil {
					what := "Migrations"
					if i%2 == 1 {
						what = "Migrate(Up)"
					}
					t.Errorf("round %d: %s of store %d: %v", round, what, i, err)
				}
			}
		}
	}},
}
