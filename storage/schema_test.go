package storage_test

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/floodtune/floodtune/internal/pgtest"
	"github.com/floodtune/floodtune/storage"
)

func TestSchemaVersionConformance(t *testing.T) {
	runConformance(t, schemaTests)
}

// schemaError returns err as a *storage.SchemaError that is want, failing t
// if it is not one.
func schemaError(t testing.TB, what string, err, want error) *storage.SchemaError {
	t.Helper()
	var se *storage.SchemaError
	if !errors.Is(err, want) || !errors.As(err, &se) {
		t.Fatalf("%s: error %v, want a *storage.SchemaError that is %v", what, err, want)
	}
	return se
}

var schemaTests = []conformanceTest{
	{"a schema newer than this floodtune is refused and left alone", func(t *testing.T, e *env) {
		ctx := t.Context()
		works(t, e.st, "s", 1)
		ms := migrations(t, e.st)
		known := ms[len(ms)-1].Version
		newer := known + 1
		db := rawDB(t, e)
		if _, err := db.ExecContext(ctx, fmt.Sprintf(`INSERT INTO floodtune_schema_migrations (version, name, applied_at)
			SELECT %d, 'from_a_newer_release', applied_at FROM floodtune_schema_migrations WHERE version = %d`, newer, known)); err != nil {
			t.Fatal(err)
		}

		st, err := storage.Open(ctx, e.url)
		if err == nil {
			st.Close()
		}
		se := schemaError(t, "Open", err, storage.ErrSchemaNewer)
		if se.Version != newer || se.Known != known {
			t.Errorf("Open: version %d, known %d; want %d and %d", se.Version, se.Known, newer, known)
		}
		want := fmt.Sprintf("the storage's schema is at version %d, newer than this floodtune knows (%d): upgrade floodtune", newer, known)
		if err.Error() != want {
			t.Errorf("Open: %q, want %q", err, want)
		}

		raw := e.open(t, storage.WithoutMigration())
		schemaError(t, "CheckSchema", raw.CheckSchema(ctx), storage.ErrSchemaNewer)
		for _, m := range []struct {
			dir    storage.MigrationDirection
			target int
		}{{storage.Up, 0}, {storage.Up, known}, {storage.Down, 0}, {storage.Down, known}, {storage.Down, known - 1}} {
			what := fmt.Sprintf("Migrate(%s, %d)", map[storage.MigrationDirection]string{storage.Up: "Up", storage.Down: "Down"}[m.dir], m.target)
			ran, err := raw.Migrate(ctx, m.dir, m.target)
			schemaError(t, what, err, storage.ErrSchemaNewer)
			if len(ran) != 0 {
				t.Errorf("%s ran %v", what, ran)
			}
			_, err = raw.MigrationPlan(ctx, m.dir, m.target)
			schemaError(t, "MigrationPlan", err, storage.ErrSchemaNewer)
		}

		// Migrations lists the version it does not know.
		got := migrations(t, raw)
		if len(got) != newer {
			t.Fatalf("Migrations: %d, want %d", len(got), newer)
		}
		last := got[len(got)-1]
		if last.Version != newer || last.Name != "from_a_newer_release" || !last.Applied || last.AppliedAt.IsZero() || !last.Unknown {
			t.Errorf("Migrations lists %+v last; want version %d from_a_newer_release, applied, unknown", last, newer)
		}
		for _, m := range got[:known] {
			if m.Unknown || !m.Applied {
				t.Errorf("Migrations: %+v, want applied and known", m)
			}
		}
		// Nothing was dropped or changed.
		if n := rawCount(t, e, "SELECT count(*) FROM floodtune_schema_migrations"); n != newer {
			t.Errorf("%d versions recorded, want %d", n, newer)
		}
		if n := rawCount(t, e, "SELECT count(*) FROM studies"); n != 1 {
			t.Errorf("%d studies, want 1", n)
		}
	}},
	{"reading the version of a fresh database creates nothing", func(t *testing.T, e *env) {
		ctx := t.Context()
		url := e.freshURL(t)
		st := openStore(t, url, storage.WithoutMigration())
		se := schemaError(t, "CheckSchema", st.CheckSchema(ctx), storage.ErrSchemaOutdated)
		known := len(migrations(t, st))
		if se.Version != 0 || se.Known != known {
			t.Errorf("CheckSchema: version %d, known %d; want 0 and %d", se.Version, se.Known, known)
		}
		if todo, err := st.MigrationPlan(ctx, storage.Up, 0); err != nil || len(todo) != known {
			t.Errorf("MigrationPlan(Up) = %d migrations, %v; want %d", len(todo), err, known)
		}
		if todo, err := st.MigrationPlan(ctx, storage.Down, 0); err != nil || len(todo) != 0 {
			t.Errorf("MigrationPlan(Down) = %v, %v; want nothing", todo, err)
		}
		exists := "SELECT count(*) FROM sqlite_master WHERE name = 'floodtune_schema_migrations'"
		if e.backend == "postgres" {
			exists = "SELECT count(*) FROM (SELECT to_regclass('floodtune_schema_migrations') AS t) x WHERE t IS NOT NULL"
		}
		if n := rawCount(t, &env{backend: e.backend, url: url}, exists); n != 0 {
			t.Errorf("the version table was created by reading the version")
		}
		// Open migrates it, and then the version is current.
		works(t, openStore(t, url), "s", 1)
		if err := st.CheckSchema(ctx); err != nil {
			t.Errorf("CheckSchema after Open: %v", err)
		}
	}},
}

// pgRole creates a PostgreSQL role that may log in, and returns the URL of
// schemaURL (a pgtest.Schema) as that role. The role has USAGE on the
// schema, and grant (if any) run as pgtest's role; it is dropped with what
// it was granted when t ends.
func pgRole(t *testing.T, schemaURL string, grant ...string) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	role, password := "floodtune_app_"+hex.EncodeToString(b), hex.EncodeToString(b[:3])
	u, err := url.Parse(schemaURL)
	if err != nil {
		t.Fatal(err)
	}
	schema := pgx.Identifier{u.Query().Get("search_path")}.Sanitize()
	run := func(stmts ...string) {
		t.Helper()
		pgtest.Exec(t, schemaURL, stmts...)
	}
	run(fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", role, password), fmt.Sprintf("GRANT USAGE ON SCHEMA %s TO %s", schema, role))
	t.Cleanup(func() { run("DROP OWNED BY "+role, "DROP ROLE "+role) })
	for _, g := range grant {
		run(strings.NewReplacer("$schema", schema, "$role", role).Replace(g))
	}
	u.User = url.UserPassword(role, password)
	return u.String()
}

func TestOpenAsARoleThatMayNotCreateTables(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	t.Run("a current schema is read and left alone", func(t *testing.T) {
		t.Parallel()
		owner := pgtest.Schema(t)
		openStore(t, owner).Close()
		app := pgRole(t, owner,
			"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA $schema TO $role",
			"GRANT USAGE ON ALL SEQUENCES IN SCHEMA $schema TO $role")
		st := openStore(t, app)
		works(t, st, "s", 1)
		if ran, err := st.Migrate(ctx, storage.Up, 0); err != nil || len(ran) != 0 {
			t.Errorf("Migrate(Up) of a current schema as the role: %v, %v; want nothing done", ran, err)
		}
	})
	t.Run("a missing schema is ErrSchemaOutdated, saying what to run", func(t *testing.T) {
		t.Parallel()
		app := pgRole(t, pgtest.Schema(t))
		st, err := storage.Open(ctx, app)
		if err == nil {
			st.Close()
		}
		se := schemaError(t, "Open", err, storage.ErrSchemaOutdated)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42501" {
			t.Errorf("Open: %v does not wrap the server's refusal (42501)", err)
		}
		if se.Version != 0 || !strings.Contains(err.Error(), "the storage has no floodtune schema") ||
			!strings.Contains(err.Error(), "run `floodtune migrate` with a role that may create tables") {
			t.Errorf("Open: %q (version %d)", err, se.Version)
		}
	})
}
