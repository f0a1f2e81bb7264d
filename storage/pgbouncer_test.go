package storage_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/floodtune/floodtune/internal/pgtest"
	"github.com/floodtune/floodtune/storage"
)

func TestThePgBouncerSettingIsReadAndNotPassedOn(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, url string
		mode      pgx.QueryExecMode
	}{
		{"a URL with pgbouncer=transaction prepares nothing", "postgres://u@db/ft?pgbouncer=transaction", pgx.QueryExecModeExec},
		{"the value's case does not matter", "postgres://u@db/ft?pgbouncer=Transaction", pgx.QueryExecModeExec},
		{"a keyword/value string with it prepares nothing", "host=db dbname=ft pgbouncer=transaction", pgx.QueryExecModeExec},
		{"a mode that prepares nothing is kept", "postgres://u@db/ft?pgbouncer=transaction&default_query_exec_mode=simple_protocol", pgx.QueryExecModeSimpleProtocol},
		{"describe_exec, which a pooler may split, is not kept", "postgres://u@db/ft?pgbouncer=transaction&default_query_exec_mode=describe_exec", pgx.QueryExecModeExec},
		{"pgbouncer=session keeps pgx's prepared statements", "postgres://u@db/ft?pgbouncer=session", pgx.QueryExecModeCacheStatement},
		{"without the setting, pgx's default stands until Open looks", "postgres://u@db/ft", pgx.QueryExecModeCacheStatement},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := storage.PostgresConfig(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			if _, sent := cfg.ConnConfig.RuntimeParams["pgbouncer"]; sent {
				t.Errorf("pgbouncer is sent to the server as a run-time parameter, which PgBouncer refuses")
			}
			if got := cfg.ConnConfig.DefaultQueryExecMode; got != tc.mode {
				t.Errorf("query exec mode %v, want %v", got, tc.mode)
			}
		})
	}
	for _, tc := range []struct{ name, url, want string }{
		{"statement pooling cannot run floodtune", "postgres://u@db/ft?pgbouncer=statement", "pool_mode=transaction"},
		{"an unknown value says what is known", "postgres://u@db/ft?pgbouncer=yes", "pgbouncer=transaction"},
		{"so does one in a keyword/value string", "host=db pgbouncer=1", "pgbouncer=transaction"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := storage.Open(t.Context(), tc.url)
			if !errors.Is(err, storage.ErrBadURL) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open = %v, want ErrBadURL saying %q", err, tc.want)
			}
		})
	}
}

func TestOpenFindsATransactionPoolerByItself(t *testing.T) {
	t.Parallel()
	via, direct := pgtest.Bouncer(t)
	for _, tc := range []struct {
		name, url string
		pooled    bool
	}{
		{"directly, it prepares statements", direct, false},
		{"through PgBouncer without the setting, it finds the pooler", via, true},
		{"through PgBouncer with pgbouncer=transaction, it is told", via + "&pgbouncer=transaction", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := openStore(t, tc.url)
			if got := st.TransactionPooled(); got != tc.pooled {
				t.Errorf("TransactionPooled() = %v, want %v", got, tc.pooled)
			}
		})
	}
	t.Run("stores that found it by themselves share the pool without a prepared statement", func(t *testing.T) {
		stores := make([]*storage.Store, 4)
		for i := range stores {
			stores[i] = openStore(t, via)
		}
		s := newStudy(t, stores[0], storage.NewStudy{Name: "auto", Budget: 40})
		race(len(stores), func(i int) {
			for range 10 {
				tr, err := stores[i].CreateTrial(t.Context(), s.ID, running("w"+strconv.Itoa(i)))
				if err == nil {
					err = stores[i].Finish(t.Context(), tr.ID, "w"+strconv.Itoa(i), storage.Complete, float64(tr.Number))
				}
				if err != nil {
					t.Errorf("store %d: %v", i, err)
					return
				}
			}
		})
		checkNumbers(t, getTrials(t, stores[0], s.ID), 40)
	})
}

func TestPreparedStatementsThroughTransactionPoolingSayWhatToAdd(t *testing.T) {
	t.Parallel()
	via, direct := pgtest.Bouncer(t)
	openStore(t, direct).Close()    // migrated
	u := via + "&pgbouncer=session" // wrong: PgBouncer pools by transaction
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	// Stores that prepare the same statements on server connections they
	// share: one of them soon meets a statement another prepared, or
	// misses one it prepared on another server connection.
	var mu sync.Mutex
	var errs []error
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		errs = append(errs, err)
	}
	race(4, func(i int) {
		st, err := storage.Open(ctx, u)
		if err != nil {
			fail(err)
			return
		}
		defer st.Close()
		for j := range 50 {
			if _, err := st.CreateStudy(ctx, storage.NewStudy{Name: fmt.Sprintf("s%d-%d", i, j), Direction: storage.Minimize}); err != nil {
				fail(err)
				return
			}
			if _, err := st.Studies(ctx); err != nil {
				fail(err)
				return
			}
		}
	})
	if ctx.Err() != nil {
		t.Fatalf("the stores were still at work after a minute: %v", ctx.Err())
	}
	if len(errs) == 0 {
		t.Fatal("four stores shared two server connections with prepared statements without an error: is PgBouncer in transaction mode?")
	}
	for _, err := range errs {
		if !errors.Is(err, storage.ErrTransactionPooling) || !strings.Contains(err.Error(), "add pgbouncer=transaction to the storage URL") {
			t.Errorf("error %v, want ErrTransactionPooling saying to add pgbouncer=transaction", err)
		}
	}
	t.Logf("%d of 4 stores stopped, e.g. with: %v", len(errs), errs[0])
}

func TestMigrationLockConformance(t *testing.T) {
	runConformance(t, []conformanceTest{
		{"a migration gives up on a migration lock held past the wait and names the holder", func(t *testing.T, e *env) {
			if e.backend == "sqlite" {
				t.Skip("SQLite has no migration lock: migrations take turns on its write lock")
			}
			url := e.freshURL(t)
			if e.via == "postgres" {
				// The lock is the database's: hold it on a database of the
				// test's own, not on the one the other tests' schemas share.
				url = pgtest.Database(t)
			}
			holder := holdingConn(t, url, "lock-holder")
			var pid int
			// Session-level, as an older floodtune took it, and as it
			// stays with a pooled server connection.
			if err := holder.QueryRow(t.Context(), "SELECT pg_backend_pid() FROM (SELECT pg_advisory_lock($1)) x", storage.MigrationLockKey).Scan(&pid); err != nil {
				t.Fatal(err)
			}
			const wait = time.Second
			start := time.Now()
			st, err := storage.Open(t.Context(), url, storage.MigrationLockWait(wait))
			took := time.Since(start)
			if err == nil {
				st.Close()
				t.Fatal("Open migrated while another session held the migration lock")
			}
			var le *storage.LockError
			if !errors.Is(err, storage.ErrMigrationLocked) || !errors.As(err, &le) {
				t.Fatalf("Open = %v, want a *LockError that is ErrMigrationLocked", err)
			}
			if took < wait || took > wait+15*time.Second {
				t.Errorf("Open gave up after %v, want after the wait of %v (and soon after it)", took, wait)
			}
			if !slices.ContainsFunc(le.Holders, func(h storage.LockHolder) bool { return h.PID == pid && h.Application == "lock-holder" }) {
				t.Errorf("holders %+v, want pid %d of application lock-holder", le.Holders, pid)
			}
			for _, want := range []string{"the migration lock", "pid " + strconv.Itoa(pid), `"lock-holder"`, "pg_terminate_backend"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("the error does not say %q: %v", want, err)
				}
			}
			t.Logf("after %v: %v", took.Round(time.Millisecond), err)
			// Once the holder lets go, the migration goes through.
			if _, err := holder.Exec(t.Context(), "SELECT pg_advisory_unlock_all()"); err != nil {
				t.Fatal(err)
			}
			works(t, openStore(t, url, storage.MigrationLockWait(wait)), "s", 1)
		}},
		{"a migration gives up on a table lock held past the wait and names the holder and the table", func(t *testing.T, e *env) {
			if e.backend == "sqlite" {
				t.Skip("SQLite has no table locks: migrations take turns on its write lock")
			}
			holder := holdingConn(t, e.url, "table-holder")
			tx, err := holder.Begin(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(context.Background())
			if _, err := tx.Exec(t.Context(), "LOCK TABLE api_tokens IN ACCESS SHARE MODE"); err != nil {
				t.Fatal(err)
			}
			st := e.open(t, storage.MigrationLockWait(time.Second))
			// Reverting the newest migration drops api_tokens, which waits
			// for the holder's lock.
			ran, err := st.Migrate(t.Context(), storage.Down, 0)
			var le *storage.LockError
			if !errors.As(err, &le) || !errors.Is(err, storage.ErrMigrationLocked) || len(ran) != 0 {
				t.Fatalf("Migrate(Down) = %v, %v; want nothing and a *LockError", ran, err)
			}
			if !slices.ContainsFunc(le.Holders, func(h storage.LockHolder) bool {
				return h.Application == "table-holder" && slices.Contains(h.Tables, "api_tokens")
			}) {
				t.Errorf("holders %+v, want the table-holder session on api_tokens", le.Holders)
			}
			t.Logf("%v", err)
			if err := tx.Rollback(t.Context()); err != nil {
				t.Fatal(err)
			}
			checkApplied(t, st, len(migrations(t, st)))
		}},
	})
}

// holdingConn connects to the database of url on the server itself, as
// application name app, and is closed when t ends.
func holdingConn(t *testing.T, url, app string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), directURL(url)+"&application_name="+app)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}
