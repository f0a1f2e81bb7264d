// Package pgtest gives tests a real, isolated PostgreSQL.
//
// Each test asks for its own schema or its own database and gets a URL that
// pgx (and anything else that speaks postgres:// URLs) can connect to:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
//	func TestSomething(t *testing.T) {
//		t.Parallel()
//		url := pgtest.Schema(t) // fresh, empty schema; dropped when t ends
//		conn, err := pgx.Connect(t.Context(), url)
//		...
//	}
//
// [Schema] creates a schema named t_<random hex> and returns a URL whose
// search_path query parameter is that schema (pgx sends unknown URL
// parameters as run-time parameters, so every connection of the URL starts
// with search_path set to it). The schema is dropped with DROP SCHEMA ...
// CASCADE in t.Cleanup. [Database] creates a whole database t_<random hex>
// instead, for tests that need one (several processes, CREATE EXTENSION,
// settings per database), and drops it WITH (FORCE) in t.Cleanup.
//
// [Bouncer] puts a throw-away PgBouncer (transaction pooling, a pool of
// [BouncerPoolSize] server connections) in front of a fresh database, for
// tests of clients that share server connections as production pools make
// them do; it returns the URL through PgBouncer and the direct one:
//
//	via, direct := pgtest.Bouncer(t) // pgbouncer from PATH or /usr/sbin
//
// # Where the server comes from
//
// If FLOODTUNE_TEST_DATABASE_URL is set, it is the URL of a superuser (or a
// role that may create schemas and databases) on an existing server, for
// example postgres://postgres:secret@127.0.0.1:5432/postgres. The password is
// never printed: URLs are logged through [Redact].
//
// Otherwise, on first use, pgtest starts one throw-away server for the test
// binary, shared by all of its tests: it finds initdb and postgres (PATH,
// then /usr/lib/postgresql/*/bin, highest version first), runs initdb into a
// temporary directory (fsync off, trust authentication, user postgres) and
// runs postgres on a free port of 127.0.0.1 as a child process. When the
// tests run as root, PostgreSQL refuses to run as root, so the binaries run
// as the postgres OS user that Debian's postgresql package creates. [Main]
// stops the server and removes its directory after m.Run; if the test binary
// dies first, the kernel stops the server (parent-death signal on Linux) and
// the next run removes the directory that was left behind.
//
// Every package whose tests use pgtest must therefore call [Main] from its
// TestMain, as above; Schema and Database fail the test if it did not.
//
// # When there is no server
//
// If neither the variable nor the binaries give a server, the tests that need
// one are skipped with a message saying how to get one (install Debian's
// postgresql package, e.g. with scripts/ensure-postgres.sh, or set
// FLOODTUNE_TEST_DATABASE_URL) — unless the environment variable CI is
// non-empty: in CI they fail, because database tests must never be skipped
// silently there. A FLOODTUNE_TEST_DATABASE_URL that is set but does not
// work always fails the tests.
package pgtest
