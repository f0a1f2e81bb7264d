package pgtest_test

import (
	"context"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/floodtune/floodtune/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// connect opens a connection that is closed when the test ends (before
// pgtest drops the schema or database: cleanups run last-in first-out).
func connect(t *testing.T, connURL string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), connURL)
	if err != nil {
		t.Fatalf("connect to %s: %v", pgtest.Redact(connURL), err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// schemaOf returns the schema that a URL of pgtest.Schema selects.
func schemaOf(t *testing.T, connURL string) string {
	t.Helper()
	u, err := url.Parse(connURL)
	if err != nil {
		t.Fatalf("parse the URL of Schema: %v", err)
	}
	name := u.Query().Get("search_path")
	if !strings.HasPrefix(name, "t_") || len(name) != len("t_")+16 {
		t.Fatalf("search_path of the URL = %q, want t_ and 16 hex digits", name)
	}
	return name
}

func TestSchema(t *testing.T) {
	t.Parallel()

	t.Run("two schemas are different and isolated", func(t *testing.T) {
		t.Parallel()
		a, b := pgtest.Schema(t), pgtest.Schema(t)
		if schemaOf(t, a) == schemaOf(t, b) {
			t.Fatalf("both URLs select schema %s", schemaOf(t, a))
		}
		ca, cb := connect(t, a), connect(t, b)
		if _, err := ca.Exec(t.Context(), "CREATE TABLE thing (id int); INSERT INTO thing VALUES (1)"); err != nil {
			t.Fatal(err)
		}
		var visible bool
		if err := cb.QueryRow(t.Context(), "SELECT to_regclass('thing') IS NOT NULL").Scan(&visible); err != nil {
			t.Fatal(err)
		}
		if visible {
			t.Error("a table created in one schema is visible in the other")
		}
		// The same name can be used again in the other schema.
		if _, err := cb.Exec(t.Context(), "CREATE TABLE thing (id int)"); err != nil {
			t.Errorf("create the same table in the other schema: %v", err)
		}
		var n int
		if err := cb.QueryRow(t.Context(), "SELECT count(*) FROM thing").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("the other schema's table has %d rows, want 0", n)
		}
	})

	t.Run("connections use the schema as search_path", func(t *testing.T) {
		t.Parallel()
		u := pgtest.Schema(t)
		want := schemaOf(t, u)
		conn := connect(t, u)
		var path, current string
		if err := conn.QueryRow(t.Context(), "SHOW search_path").Scan(&path); err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRow(t.Context(), "SELECT current_schema()").Scan(&current); err != nil {
			t.Fatal(err)
		}
		if path != want || current != want {
			t.Errorf("search_path = %q, current_schema() = %q, want both %q", path, current, want)
		}
	})

	t.Run("a new schema is empty", func(t *testing.T) {
		t.Parallel()
		u := pgtest.Schema(t)
		conn := connect(t, u)
		var n int
		err := conn.QueryRow(t.Context(),
			"SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1",
			schemaOf(t, u)).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("the new schema holds %d relations, want 0", n)
		}
	})
}

func TestSchemaIsDroppedWhenTheTestEnds(t *testing.T) {
	t.Parallel()
	var name string
	t.Run("a test that uses a schema", func(t *testing.T) {
		u := pgtest.Schema(t)
		name = schemaOf(t, u)
		if _, err := connect(t, u).Exec(t.Context(), "CREATE TABLE kept (id int)"); err != nil {
			t.Fatal(err)
		}
	})
	admin := connect(t, pgtest.Schema(t)) // same database, another schema
	var exists bool
	if err := admin.QueryRow(t.Context(), "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)", name).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Errorf("schema %s still exists after its test ended", name)
	}
}

func TestDatabase(t *testing.T) {
	t.Parallel()
	outer := t
	var name string
	t.Run("a test that uses a database", func(t *testing.T) {
		u := pgtest.Database(t)
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		name = strings.TrimPrefix(pu.Path, "/")
		conn := connect(t, u)
		var current string
		if err := conn.QueryRow(t.Context(), "SELECT current_database()").Scan(&current); err != nil {
			t.Fatal(err)
		}
		if current != name || !strings.HasPrefix(name, "t_") {
			t.Errorf("current_database() = %q, want %q (t_...)", current, name)
		}
		if _, err := conn.Exec(t.Context(), "CREATE TABLE thing (id int); INSERT INTO thing VALUES (1), (2)"); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM thing").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 2 {
			t.Errorf("count = %d, want 2", n)
		}
		// A connection left open does not stop the drop (WITH (FORCE)).
		leaked, err := pgx.Connect(t.Context(), u)
		if err != nil {
			t.Fatal(err)
		}
		// The server ends it at the drop; free the client side after that.
		outer.Cleanup(func() { _ = leaked.Close(context.Background()) })
	})
	admin := connect(t, pgtest.Schema(t))
	var exists bool
	if err := admin.QueryRow(t.Context(), "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Errorf("database %s still exists after its test ended", name)
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in, want string
	}{
		{"a URL's password is hidden",
			"postgres://alice:s3cret@db.example:5432/app?sslmode=disable",
			"postgres://alice:xxxxx@db.example:5432/app?sslmode=disable"},
		{"an escaped password is hidden",
			"postgresql://alice:p%40ss%2Fw@127.0.0.1/app",
			"postgresql://alice:xxxxx@127.0.0.1/app"},
		{"a password in the query is hidden",
			"postgres://alice@db/app?password=s3cret",
			"postgres://alice@db/app?password=xxxxx"},
		{"a URL without password is unchanged",
			"postgres://postgres@127.0.0.1:5432/postgres?search_path=t_00",
			"postgres://postgres@127.0.0.1:5432/postgres?search_path=t_00"},
		{"a keyword/value password is hidden",
			"host=db user=alice password=s3cret dbname=app",
			"host=db user=alice password=xxxxx dbname=app"},
		{"a quoted keyword/value password is hidden",
			`host=db password = 'it\'s secret' dbname=app`,
			"host=db password = xxxxx dbname=app"},
		{"an unparsable URL is not shown",
			"postgres://alice:s3cret@db:port/app",
			"(unparsable URL, not shown)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := pgtest.Redact(tc.in)
			if got != tc.want {
				t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if strings.Contains(got, "s3cret") || strings.Contains(got, "secret'") {
				t.Errorf("Redact(%q) = %q leaks the password", tc.in, got)
			}
		})
	}
}

func TestRestartKeepsTheDataAndTheURL(t *testing.T) {
	// Not parallel: the restart cuts every connection of the binary.
	url := pgtest.Schema(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	pgtest.Restart(t)
	if err := conn.Ping(ctx); err == nil {
		t.Error("a connection from before the restart still works")
	}
	conn.Close(ctx)
	conn, err = pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect after the restart: %v", err)
	}
	defer conn.Close(ctx)
	var x int
	if err := conn.QueryRow(ctx, "SELECT x FROM kept").Scan(&x); err != nil || x != 42 {
		t.Fatalf("after the restart: %d, %v", x, err)
	}
}
