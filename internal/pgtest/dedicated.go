package pgtest

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Dedicated starts a throw-away server for the test alone and returns the
// URL of a fresh database on it, on 127.0.0.1. Besides 127.0.0.1, the server
// listens on the address of each of listen, which must exist on this
// machine, and trusts the clients of its network: 10.77.1.1/30 listens on
// 10.77.1.1 and trusts 10.77.1.0/30. It is for tests whose clients connect
// from elsewhere than loopback, such as other network namespaces, and that
// cut them off; the server of [Schema] and [Database] serves the other tests.
// The server is stopped and its directory removed when the test ends.
//
// It needs the server binaries even when FLOODTUNE_TEST_DATABASE_URL is
// set: without them the test is skipped, or fails if CI is set.
func Dedicated(t testing.TB, listen ...netip.Prefix) string {
	t.Helper()
	for _, p := range listen {
		if !p.IsValid() {
			t.Fatalf("pgtest: dedicated server: invalid listen prefix %v", p)
		}
	}
	if _, err := findBinDir(); err != nil {
		Unavailable(t, fmt.Sprintf("pgtest: the test needs a PostgreSQL server of its own, and there are no server binaries: %v. "+
			"Install them (Debian: apt-get install postgresql, or scripts/ensure-postgres.sh)", err))
	}
	s, err := throwAway(listen...)
	if err != nil {
		t.Fatalf("pgtest: the test's own server: %v", err)
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	t.Logf("pgtest: the test's own %s", s.desc)
	// PostgreSQL only warns when it cannot bind one of several addresses.
	for _, p := range listen {
		addr := net.JoinHostPort(p.Addr().String(), strconv.Itoa(s.port))
		conn, err := net.DialTimeout("tcp", addr, adminTimeout)
		if err != nil {
			t.Fatalf("pgtest: the test's own server does not listen on %s (is the address on this machine?): %v", addr, err)
		}
		conn.Close()
	}
	_, u := s.createDatabase(t)
	return u
}

// trustOnly replaces the pg_hba.conf of data by one that trusts the Unix
// socket, 127.0.0.1 and the networks of listen, and nobody else.
func trustOnly(data string, listen []netip.Prefix) error {
	var b strings.Builder
	b.WriteString("# TYPE  DATABASE  USER  ADDRESS  METHOD\nlocal all all trust\nhost all all 127.0.0.1/32 trust\n")
	for _, p := range listen {
		fmt.Fprintf(&b, "host all all %s trust\n", p.Masked())
	}
	// Rewritten in place, the file stays the postgres user's.
	if err := os.WriteFile(filepath.Join(data, "pg_hba.conf"), []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("write pg_hba.conf: %w", err)
	}
	return nil
}
