package pgtest_test

import (
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/floodtune/floodtune/internal/pgtest"
)

// connectSimple connects with the simple protocol, which transaction
// pooling always serves, closed when the test ends.
func connectSimple(t *testing.T, connURL string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(connURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	conn, err := pgx.ConnectConfig(t.Context(), cfg)
	if err != nil {
		t.Fatalf("connect to %s: %v", pgtest.Redact(connURL), err)
	}
	t.Cleanup(func() { _ = conn.Close(t.Context()) })
	return conn
}

func TestBouncer(t *testing.T) {
	t.Parallel()
	var port string
	t.Run("a PgBouncer in transaction mode in front of a fresh database", func(t *testing.T) {
		via, direct := pgtest.Bouncer(t)
		vu, _ := url.Parse(via)
		du, _ := url.Parse(direct)
		port = vu.Port()
		if vu.Hostname() != "127.0.0.1" || vu.Port() == du.Port() || vu.Path != du.Path {
			t.Fatalf("through PgBouncer %s, directly %s: want the same database on another port of 127.0.0.1", via, direct)
		}
		// Six clients, each asking for its server's pid in its own
		// transactions: they share BouncerPoolSize server connections.
		const clients = 6
		conns := make([]*pgx.Conn, clients)
		for i := range conns {
			conns[i] = connectSimple(t, via)
		}
		var mu sync.Mutex
		pids := map[int]bool{}
		var wg sync.WaitGroup
		for _, c := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 20 {
					var pid int
					if err := c.QueryRow(t.Context(), "SELECT pg_backend_pid() FROM pg_sleep(0.001)").Scan(&pid); err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					pids[pid] = true
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(pids) > pgtest.BouncerPoolSize {
			t.Errorf("%d clients ran on %d server connections, want at most %d", clients, len(pids), pgtest.BouncerPoolSize)
		}
		// A session's state stays with the server connection, not the
		// client: transaction mode. The client's pid is PgBouncer's own.
		c := conns[0]
		var pid int
		if err := c.QueryRow(t.Context(), "SELECT pg_backend_pid()").Scan(&pid); err != nil {
			t.Fatal(err)
		}
		if got := int(c.PgConn().PID()); got == pid {
			t.Errorf("the client's pid (%d) is the server's: is PgBouncer in between?", got)
		}
		var mode string
		admin := connectSimple(t, direct)
		if err := admin.QueryRow(t.Context(), "SELECT current_database()").Scan(&mode); err != nil || "/"+mode != vu.Path {
			t.Errorf("directly: database %q (%v), want %s", mode, err, vu.Path)
		}
	})
	// Stopped when its test ended.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", port), time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("PgBouncer still listens on port %s after its test ended", port)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
