package storage_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/floodtune/floodtune/storage"
)

// unreachablePassword is the password of the URLs of a server that is not
// there.
const unreachablePassword = "s3cretpw"

// checkUnavailable fails t unless err, of Open, is ErrUnavailable, not
// ErrBadURL, wraps a *pgconn.ConnectError, and shows the password in none
// of the ways a program may print it.
func checkUnavailable(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("Open succeeded")
	}
	if !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("Open: %v, want ErrUnavailable", err)
	}
	if errors.Is(err, storage.ErrBadURL) {
		t.Errorf("Open: %v, is ErrBadURL", err)
	}
	var ce *pgconn.ConnectError
	if !errors.As(err, &ce) {
		t.Errorf("Open: %v (%T) does not wrap a *pgconn.ConnectError", err, err)
	}
	for _, verb := range []string{"%v", "%+v", "%s", "%q", "%#v"} {
		noSecret(t, "the error of Open printed with "+verb, fmt.Sprintf(verb, err), unreachablePassword)
	}
}

func TestOpenOfAServerThatIsNotThereIsErrUnavailable(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ what, url string }{
		{"with the password after the user", "postgres://u:" + unreachablePassword + "@127.0.0.1:1/db?connect_timeout=2"},
		{"with the password in ?password=", "postgres://u@127.0.0.1:1/db?connect_timeout=2&password=" + unreachablePassword},
		{"of the postgresql scheme", "postgresql://u:" + unreachablePassword + "@127.0.0.1:1/db?connect_timeout=2"},
	} {
		t.Run(c.what, func(t *testing.T) {
			t.Parallel()
			checkUnavailable(t, openFailing(t, c.url))
		})
	}
}

// Not parallel: it sets the environment.
func TestOpenOfAServerThatIsNotThereWithPGPASSWORDIsErrUnavailable(t *testing.T) {
	t.Setenv("PGPASSWORD", unreachablePassword)
	err := openFailing(t, "postgres://u@127.0.0.1:1/db?connect_timeout=2")
	checkUnavailable(t, err)
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) && ce.Config.Password != unreachablePassword {
		t.Errorf("the connection was tried without the password of PGPASSWORD")
	}
}

// A caller that gives up is told so: the storage may be fine.
func TestOpenWithAnEndedContextIsNotErrUnavailable(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	st, err := storage.Open(ctx, "postgres://u:"+unreachablePassword+"@127.0.0.1:1/db")
	if err == nil {
		st.Close()
		t.Fatal("Open succeeded")
	}
	if errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("Open with a cancelled context: %v, is ErrUnavailable", err)
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Open with a cancelled context: %v, want context.Canceled", err)
	}
	noSecret(t, "the error of Open", fmt.Sprintf("%+v", err), unreachablePassword)
}

func TestOpenOfABadURLIsNotErrUnavailable(t *testing.T) {
	t.Parallel()
	for _, u := range []string{
		"postgres://u:p@[::1",
		"postgres://u:p@127.0.0.1:notaport/db",
		"postgres://u:p@127.0.0.1:1/db?sslmode=bogus",
		"mysql://u:p@127.0.0.1:1/db",
		"sqlite:",
	} {
		err := openFailing(t, u)
		if err == nil {
			t.Errorf("Open(%q) succeeded", u)
			continue
		}
		if !errors.Is(err, storage.ErrBadURL) || errors.Is(err, storage.ErrUnavailable) {
			t.Errorf("Open(%q): %v, want ErrBadURL and not ErrUnavailable", u, err)
		}
	}
}

func TestOpenOfASQLiteFile(t *testing.T) {
	t.Parallel()
	t.Run("that cannot be created is ErrUnavailable", func(t *testing.T) {
		t.Parallel()
		// Not even root may create a file in /proc/self (Linux).
		path := "/proc/self/floodtune.db"
		st, err := storage.Open(t.Context(), "sqlite:"+path)
		if err == nil {
			st.Close()
			t.Fatal("Open succeeded")
		}
		var se *sqlite.Error
		if !errors.Is(err, storage.ErrUnavailable) || !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_CANTOPEN {
			t.Errorf("Open: %v, want ErrUnavailable wrapping SQLITE_CANTOPEN", err)
		}
		if errors.Is(err, storage.ErrBadURL) {
			t.Errorf("Open: %v, is ErrBadURL", err)
		}
		if !strings.Contains(err.Error(), path) {
			t.Errorf("Open: %v does not name the file", err)
		}
	})
	// A path that can never be a database file is a mistake in the URL,
	// not a storage that may come back.
	t.Run("in a directory that does not exist is ErrBadURL", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir() + "/missing"
		st, err := storage.Open(t.Context(), "sqlite:"+dir+"/floodtune.db")
		if err == nil {
			st.Close()
			t.Fatal("Open succeeded")
		}
		if !errors.Is(err, storage.ErrBadURL) || errors.Is(err, storage.ErrUnavailable) {
			t.Errorf("Open: %v, want ErrBadURL and not ErrUnavailable", err)
		}
		if want := "the directory " + dir + " does not exist"; !strings.Contains(err.Error(), want) {
			t.Errorf("Open: %v, want it to say %q", err, want)
		}
	})
	t.Run("that is not a database is not ErrUnavailable", func(t *testing.T) {
		t.Parallel()
		path := t.TempDir() + "/floodtune.db"
		if err := os.WriteFile(path, []byte(strings.Repeat("not a database ", 100)), 0o644); err != nil {
			t.Fatal(err)
		}
		st, err := storage.Open(t.Context(), "sqlite:"+path)
		if err == nil {
			st.Close()
			t.Fatal("Open succeeded")
		}
		if errors.Is(err, storage.ErrUnavailable) || errors.Is(err, storage.ErrBadURL) {
			t.Errorf("Open: %v, want neither ErrUnavailable nor ErrBadURL", err)
		}
	})
}

// A write that finds the database locked by another process for longer
// than the retry window is ErrUnavailable, and wraps SQLite's busy error.
func TestAWriteLockedOutPastTheRetryWindowIsErrUnavailable(t *testing.T) {
	t.Parallel()
	e := &env{backend: "sqlite", url: "sqlite:" + t.TempDir() + "/floodtune.db"}
	st := openStore(t, e.url)
	ctx := t.Context()
	const window = 300 * time.Millisecond
	storage.SetRetryFor(st, window)
	if err := storage.LimitBusyWait(ctx, st, 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	newStudy(t, st, storage.NewStudy{Name: "before"})

	conn, err := rawDB(t, e).Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN EXCLUSIVE"); err != nil {
		t.Fatalf("lock the database: %v", err)
	}
	start := time.Now()
	_, err = st.CreateStudy(ctx, storage.NewStudy{Name: "locked out", Direction: storage.Minimize})
	took := time.Since(start)
	if !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("CreateStudy on a locked database: %v, want ErrUnavailable", err)
	}
	var se *sqlite.Error
	if !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_BUSY {
		t.Errorf("CreateStudy on a locked database: %v, want it to wrap SQLITE_BUSY", err)
	}
	if took < window {
		t.Errorf("CreateStudy gave up after %v, before the retry window of %v", took, window)
	}
	t.Logf("after %v: %v", took.Round(time.Millisecond), err)

	if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatalf("unlock the database: %v", err)
	}
	if _, err := st.CreateStudy(ctx, storage.NewStudy{Name: "unlocked", Direction: storage.Minimize}); err != nil {
		t.Errorf("CreateStudy once the database is unlocked: %v", err)
	}
}

// The retry loop itself, as a PostgreSQL store runs it: the last error of
// an operation that kept failing transiently for the whole window is
// ErrUnavailable and still that error; any other failure is not.
func TestRetryReportsErrUnavailable(t *testing.T) {
	t.Parallel()
	const window = 50 * time.Millisecond
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	shutdown := &pgconn.PgError{Severity: "FATAL", Code: "57P03", Message: "the database system is starting up"}
	duplicate := &pgconn.PgError{Severity: "ERROR", Code: "23505", Message: "duplicate key value violates unique constraint"}
	for _, c := range []struct {
		name        string
		op          func(ctx context.Context, cancel context.CancelFunc, call int) error
		unavailable bool
		wraps       error // nil when op succeeds in the end
	}{
		{"a server that keeps refusing connections is unavailable",
			func(context.Context, context.CancelFunc, int) error { return refused }, true, refused},
		{"a server that keeps starting up is unavailable",
			func(context.Context, context.CancelFunc, int) error { return shutdown }, true, shutdown},
		{"a server that comes back within the window is not",
			func(_ context.Context, _ context.CancelFunc, call int) error {
				if call < 3 {
					return refused
				}
				return nil
			}, false, nil},
		{"an error that is not transient is not",
			func(context.Context, context.CancelFunc, int) error { return duplicate }, false, duplicate},
		{"a COMMIT without an answer, which may have committed, is not",
			func(context.Context, context.CancelFunc, int) error { return storage.CommitFailed(io.ErrUnexpectedEOF) },
			false, io.ErrUnexpectedEOF},
		{"a caller that gives up while the server is away is not",
			func(_ context.Context, cancel context.CancelFunc, call int) error {
				if call == 2 {
					cancel()
				}
				return refused
			}, false, refused},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			calls := 0
			start := time.Now()
			err := storage.Retry(ctx, window, "do the thing", func(ctx context.Context) error {
				calls++
				return c.op(ctx, cancel, calls)
			})
			took := time.Since(start)
			if c.wraps == nil {
				if err != nil {
					t.Fatalf("retry: %v, want success", err)
				}
				return
			}
			if err == nil {
				t.Fatal("retry succeeded")
			}
			if errors.Is(err, storage.ErrUnavailable) != c.unavailable {
				t.Errorf("retry: %v; ErrUnavailable: %v, want %v", err, !c.unavailable, c.unavailable)
			}
			if !errors.Is(err, c.wraps) {
				t.Errorf("retry: %v does not wrap the last error %v", err, c.wraps)
			}
			if !strings.HasPrefix(err.Error(), "do the thing: ") {
				t.Errorf("retry: %q does not say what was being done", err)
			}
			if c.unavailable && took < window {
				t.Errorf("retry gave up after %v, before the window of %v", took, window)
			}
			t.Logf("%d calls: %v", calls, err)
		})
	}
}

// openFailing opens rawURL within 10 s, for a test that expects Open to
// fail: a store that opened anyway is closed, and the error is nil.
func openFailing(t *testing.T, rawURL string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	st, err := storage.Open(ctx, rawURL)
	if err == nil {
		st.Close()
	}
	return err
}
