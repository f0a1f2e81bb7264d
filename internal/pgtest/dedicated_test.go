package pgtest_test

import (
	"context"
	"net"
	"net/netip"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/floodtune/floodtune/internal/pgtest"
)

func TestDedicated(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("the test listens on 127.0.0.2 and connects from 127.0.0.3, which only Linux has without configuration")
	}
	var port string
	t.Run("a server of the test's own", func(t *testing.T) {
		u := pgtest.Dedicated(t, netip.MustParsePrefix("127.0.0.2/32"))
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		port = pu.Port()
		var current string
		if err := connect(t, u).QueryRow(t.Context(), "SELECT current_database()").Scan(&current); err != nil {
			t.Fatal(err)
		}
		if pu.Hostname() != "127.0.0.1" || current != strings.TrimPrefix(pu.Path, "/") || !strings.HasPrefix(current, "t_") {
			t.Errorf("URL %s leads to database %q, want a fresh t_... on 127.0.0.1", u, current)
		}
		// from connects to the server at host from the address local.
		from := func(local, host string) error {
			cfg, err := pgx.ParseConfig(strings.Replace(u, "127.0.0.1", host, 1))
			if err != nil {
				t.Fatal(err)
			}
			d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 10 * time.Second}
			cfg.DialFunc = d.DialContext
			conn, err := pgx.ConnectConfig(t.Context(), cfg)
			if err == nil {
				conn.Close(context.Background())
			}
			return err
		}
		if err := from("127.0.0.2", "127.0.0.2"); err != nil {
			t.Errorf("a client of the listen network: %v", err)
		}
		if err := from("127.0.0.3", "127.0.0.2"); err == nil || !strings.Contains(err.Error(), "pg_hba.conf") {
			t.Errorf("a client from outside the listen networks: %v, want refused by pg_hba.conf", err)
		}
		if err := from("127.0.0.1", "127.0.0.3"); err == nil {
			t.Error("the server accepts connections on 127.0.0.3, which it was not told to listen on")
		}
	})
	if conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", port), time.Second); err == nil {
		conn.Close()
		t.Errorf("port %s still accepts connections after the test that owned the server ended", port)
	}
}
