package storage_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/floodtune/floodtune/internal/pgtest"
	"github.com/floodtune/floodtune/storage"
)

// hardPasswords hold the characters that URLs and keyword/value strings
// treat specially.
var hardPasswords = []string{
	"Sup3rS3cret",
	"p4@s5@w0rd1", // pgx ends the userinfo at the first @, url.Parse at the last
	"pa:ss:w0rd2", // the first : ends the user name
	"Pa55/W0rd3",  // / ends the host part for pgx
	"50%0ff-w0rd4",
	"Pa55 W0rd5",
	"pässwörd6€",
	`it's\quot3d7`,
	"q?u3ry#frag8&x=y",
}

// kvQuote quotes s as a keyword/value string's value.
func kvQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// kvEscape escapes s as an unquoted keyword/value string's value.
func kvEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `'`, `\'`, " ", `\ `, "\t", "\\\t", "\n", "\\\n", "\r", "\\\r", "\v", "\\\v", "\f", "\\\f").Replace(s)
}

// connForms build connection strings of every form around a password, to a
// port where nothing listens.
var connForms = []struct {
	name  string
	build func(pw string) string
}{
	{"as user:password@, escaped", func(pw string) string {
		return "postgres://" + url.UserPassword("u", pw).String() + "@127.0.0.1:1/db"
	}},
	{"as user:password@, not escaped", func(pw string) string { return "postgres://u:" + pw + "@127.0.0.1:1/db" }},
	{"as user:password@ of the postgresql scheme in capitals", func(pw string) string {
		return "POSTGRESQL://" + url.UserPassword("u", pw).String() + "@127.0.0.1:1/db"
	}},
	{"in ?password=, escaped", func(pw string) string {
		return "postgres://u@127.0.0.1:1/db?password=" + url.QueryEscape(pw) + "&sslmode=disable"
	}},
	{"in ?password=, not escaped", func(pw string) string { return "postgres://u@127.0.0.1:1/db?password=" + pw }},
	{"in &sslpassword=", func(pw string) string {
		return "postgres://u@127.0.0.1:1/db?sslmode=disable&sslpassword=" + url.QueryEscape(pw)
	}},
	{"in a keyword/value string, quoted", func(pw string) string {
		return "host=127.0.0.1 port=1 user=u password=" + kvQuote(pw) + " dbname=db"
	}},
	{"in a keyword/value string, escaped", func(pw string) string {
		return "password=" + kvEscape(pw) + " host=127.0.0.1 port=1"
	}},
	{"in a keyword/value string, not escaped", func(pw string) string {
		return "host=127.0.0.1 port=1 password=" + pw
	}},
	{"in a keyword/value string with spaces around =", func(pw string) string {
		return "host = 127.0.0.1 port = 1 password = " + kvQuote(pw)
	}},
	{"in a URL of another scheme", func(pw string) string { return "mysql://root:" + pw + "@127.0.0.1:1/db" }},
	{"in a URL without a scheme", func(pw string) string { return "root:" + pw + "@127.0.0.1:1/db" }},
	{"in a URL to a host that does not resolve", func(pw string) string {
		return "postgres://" + url.UserPassword("u", pw).String() + "@floodtune-test.invalid/db"
	}},
}

// shown fails t if text shows the password pw, or a piece of it that a
// parser may have split off at an @, a / or a space, in any spelling; a
// spelling shorter than 4 characters, or one that conn shows without the
// password, is not looked for (it is in the text by chance).
func shown(t *testing.T, what, text, conn, pw string) {
	t.Helper()
	pieces := []string{pw}
	pieces = append(pieces, strings.FieldsFunc(pw, func(r rune) bool { return r == '@' || r == '/' || r == ' ' })...)
	for _, p := range pieces {
		for _, spelled := range []string{p, url.QueryEscape(p), url.PathEscape(p), kvEscape(p)} {
			if len(spelled) < 4 || strings.Contains(strings.Replace(conn, spelled, "", 1), spelled) {
				continue
			}
			if strings.Contains(text, spelled) {
				t.Errorf("%s shows %q of the password %q: %s", what, spelled, pw, text)
			}
		}
	}
}

func TestNoConnectionStringShowsItsPassword(t *testing.T) {
	t.Parallel()
	for _, form := range connForms {
		for _, pw := range hardPasswords {
			t.Run(form.name+" "+pw, func(t *testing.T) {
				t.Parallel()
				conn := form.build(pw)
				err := openFailing(t, conn)
				if err == nil {
					t.Fatalf("Open(%s) succeeded", storage.Redact(conn))
				}
				for _, verb := range []string{"%v", "%+v", "%q", "%#v"} {
					shown(t, "the error of Open printed with "+verb, fmt.Sprintf(verb, err), conn, pw)
				}
				if msg := err.Error(); strings.ContainsAny(msg, "\n\r") || strings.Contains(msg, `\n`) {
					t.Errorf("the error of Open is not one line: %q", msg)
				}
				shown(t, "Redact", storage.Redact(conn), conn, pw)
				t.Logf("%v", err)
			})
		}
	}
}

// Not parallel: it sets the environment.
func TestNoConnectionStringShowsThePasswordOfTheEnvironment(t *testing.T) {
	for _, env := range []string{"PGPASSWORD", "PGSSLPASSWORD"} {
		for _, pw := range hardPasswords {
			t.Run(env+" "+pw, func(t *testing.T) {
				t.Setenv(env, pw)
				for _, conn := range []string{"postgres://u@127.0.0.1:1/db", "host=127.0.0.1 port=1 user=u"} {
					st, err := storage.Open(t.Context(), conn)
					if err == nil {
						st.Close()
						t.Fatalf("Open(%s) succeeded", conn)
					}
					shown(t, "the error of Open", fmt.Sprintf("%+v", err), conn, pw)
				}
			})
		}
	}
}

func TestRedactMasksEveryReadingOfAPassword(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ what, in, want string }{
		{"an @ in the password, where pgx ends it at the first", "postgres://u:p@ss@host/db", "postgres://u:xxxxx@host/db"},
		{"a / in the password, where pgx sees a port", "postgres://u:12/secret@host/db", "postgres://u:xxxxx@host/db"},
		{"a ? and a # in the password", "postgres://u:a?b#c@host/db?sslmode=disable", "postgres://u:xxxxx@host/db?sslmode=disable"},
		{"a percent-encoded parameter name", "postgres://host/db?pass%77ord=secret&x=1", "postgres://host/db?pass%77ord=xxxxx&x=1"},
		{"an @ in ?password=", "postgres://u@host/db?password=ab@cd", "postgres://u@host/db?password=xxxxx"},
		{"an sslpassword", "postgresql://host/db?sslpassword=secret", "postgresql://host/db?sslpassword=xxxxx"},
		{"a keyword/value string", "host=db password=s3cret dbname=f", "host=db password=xxxxx dbname=f"},
		{"a keyword/value string, quoted with escapes", `host=db password='it\'s a \\ secret' dbname=f`, "host=db password=xxxxx dbname=f"},
		{"a keyword/value string, escaped", `password=it\'s\ a\ secret host=db`, "password=xxxxx host=db"},
		{"a keyword/value string with spaces around =", "host = db password = s3cret", "host = db password = xxxxx"},
		{"a keyword/value string whose password has a stray word", "password=two words host=db", "password=xxxxx host=db"},
		{"a keyword/value string whose password ends it with a stray word", "host=db password=two words", "host=db password=xxxxx"},
		{"a keyword/value string whose quote does not end", "host=db password='s3cret dbname=f", "host=db password=xxxxx"},
		{"a keyword/value string with an sslpassword", "sslpassword=s3cret host=db", "sslpassword=xxxxx host=db"},
		{"an empty keyword/value password, which takes the next word", "password= host=db", "password= xxxxx"},
		{"a URL without a scheme", "u:s3cret@host/db", "u:xxxxx@host/db"},
		{"a URL of another scheme without //", "mysql:root:s3cret@host", "mysql:xxxxx@host"},
		{"a SQLite path that looks like a URL", "sqlite:/x/u:p@ss#1.db?password=x", "sqlite:/x/u:p@ss#1.db?password=x"},
		{"a SQLite path with spaces", "sqlite:/x/a b.db", "sqlite:/x/a b.db"},
		{"a bare file name", "floodtune.db", "floodtune.db"},
	} {
		t.Run(c.what, func(t *testing.T) {
			t.Parallel()
			if got := storage.Redact(c.in); got != c.want {
				t.Errorf("Redact(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}

// pgx reads postgres://u:p@ss@host/db as the password "p" and the host
// "ss@host", whose lookup error showed "ss": an @ out of place is refused.
func TestOpenRefusesAnAtThatPgxWouldReadAsTheHost(t *testing.T) {
	t.Parallel()
	for _, u := range []string{
		"postgres://u:p@ssw0rd@127.0.0.1:1/db",
		"postgres://u:12/ssw0rd@127.0.0.1:1/db",
		"postgresql://u@127.0.0.1:1/db?application_name=a@b",
	} {
		st, err := storage.Open(t.Context(), u)
		if err == nil {
			st.Close()
			t.Errorf("Open(%q) succeeded", u)
			continue
		}
		if !errors.Is(err, storage.ErrBadURL) || !strings.Contains(err.Error(), "%40") {
			t.Errorf("Open(%q): %v, want ErrBadURL that says to write an @ as %%40", u, err)
		}
		if strings.Contains(err.Error(), "ssw0rd") {
			t.Errorf("Open(%q): %v shows a piece of the password", u, err)
		}
	}
}

// The throw-away server trusts every connection, so any password works; a
// server given by FLOODTUNE_TEST_DATABASE_URL has its own.
func TestOpenAcceptsAKeywordValueString(t *testing.T) {
	t.Parallel()
	u, err := url.Parse(pgtest.Schema(t))
	if err != nil {
		t.Fatal(err)
	}
	pw, has := u.User.Password()
	if !has {
		pw = `it's a \ S3cret`
	}
	kv := []string{"host=" + u.Hostname(), "port=" + u.Port(), "user=" + kvQuote(u.User.Username()),
		"dbname=" + kvQuote(strings.TrimPrefix(u.Path, "/")), "password=" + kvQuote(pw)}
	for k, vs := range u.Query() {
		kv = append(kv, k+"="+kvQuote(vs[0]))
	}
	conn := strings.Join(kv, " ")
	st := openStore(t, conn)
	if st.Dialect() != "postgres" {
		t.Errorf("Dialect() = %q", st.Dialect())
	}
	if !strings.Contains(st.URL(), "password=xxxxx") || !strings.Contains(st.URL(), "host="+u.Hostname()) {
		t.Errorf("URL() = %q, want the string with password=xxxxx", st.URL())
	}
	shown(t, "URL()", st.URL(), conn, pw)
	s := newStudy(t, st, storage.NewStudy{Name: "kv"})
	if got, err := st.StudyByName(t.Context(), "kv"); err != nil || got.ID != s.ID {
		t.Errorf("StudyByName: %v, %v", got, err)
	}
}

// pgx tries each address of a host (127.0.0.1 and ::1 for localhost), each
// twice under sslmode=prefer, and joined the errors with newlines, which
// came out as a literal \n\t and every reason twice.
func TestAConnectErrorIsOneLineWithEachReasonOnce(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ url, reason string }{
		{"postgres://u:s3cretpw@localhost:1/db", "connection refused"},
		{"postgres://u:s3cretpw@127.0.0.1:1/db?sslmode=prefer", "connection refused"},
		{"host=localhost port=1 user=u password=s3cretpw", "connection refused"},
		{"postgres://u:s3cretpw@floodtune-test.invalid/db", "floodtune-test.invalid"},
		{"postgres://u:s3cretpw@floodtune-test.invalid,127.0.0.1:1/db", "connection refused"},
	} {
		t.Run(c.url, func(t *testing.T) {
			t.Parallel()
			err := openFailing(t, c.url)
			if err == nil {
				t.Fatal("Open succeeded")
			}
			checkUnavailable(t, err)
			msg := err.Error()
			if strings.ContainsAny(msg, "\n\r\t") || strings.Contains(msg, `\n`) || strings.Contains(msg, `\t`) {
				t.Errorf("not one clean line: %q", msg)
			}
			if !strings.Contains(msg, c.reason) {
				t.Errorf("%q does not give the reason %q", msg, c.reason)
			}
			_, attempts, _ := strings.Cut(msg, storage.Redact(c.url)+": ")
			parts := strings.Split(attempts, "; ")
			for i, p := range parts {
				if slices.Contains(parts[:i], p) {
					t.Errorf("%q says %q twice", msg, p)
				}
			}
			t.Log(msg)
		})
	}
}

// blackHole listens on a local port, accepts every connection and never
// answers, until t ends; it returns the port.
func blackHole(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// A server that accepts the connection and never answers held Open (and
// every command) for minutes: connect_timeout bounds it.
func TestOpenGivesUpOnAServerThatNeverAnswers(t *testing.T) {
	t.Parallel()
	port := blackHole(t)
	for _, u := range []string{
		"postgres://u:" + unreachablePassword + "@127.0.0.1:" + port + "/db?connect_timeout=1",
		"host=127.0.0.1 port=" + port + " user=u password=" + unreachablePassword + " connect_timeout=1",
	} {
		t.Run(u, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			start := time.Now()
			st, err := storage.Open(ctx, u)
			took := time.Since(start)
			if err == nil {
				st.Close()
				t.Fatal("Open succeeded")
			}
			checkUnavailable(t, err)
			if took > 5*time.Second {
				t.Errorf("Open gave up after %v, want about the connect_timeout of 1s", took)
			}
			if !strings.Contains(err.Error(), "no answer within the connect_timeout of 1s") {
				t.Errorf("Open: %v, want it to say that the server did not answer within the connect_timeout", err)
			}
			t.Logf("after %v: %v", took.Round(time.Millisecond), err)
		})
	}
}

// The default connect_timeout, checked on the configuration rather than by
// waiting for it. Not parallel: PGCONNECT_TIMEOUT is set.
func TestTheConnectTimeoutIs10SecondsUnlessTheURLSaysOtherwise(t *testing.T) {
	for _, c := range []struct {
		url, env string
		want     time.Duration
	}{
		{"postgres://u@db/f", "", 10 * time.Second},
		{"postgres://u@db/f?connect_timeout=0", "", 10 * time.Second},
		{"postgres://u@db/f?connect_timeout=3", "", 3 * time.Second},
		{"postgres://u@db/f?connect_timeout=60", "", 60 * time.Second},
		{"host=db user=u", "", 10 * time.Second},
		{"host=db user=u connect_timeout=2", "", 2 * time.Second},
		{"postgres://u@db/f", "5", 5 * time.Second},
	} {
		t.Run(c.url+" PGCONNECT_TIMEOUT="+c.env, func(t *testing.T) {
			t.Setenv("PGCONNECT_TIMEOUT", c.env)
			if c.env == "" {
				os.Unsetenv("PGCONNECT_TIMEOUT")
			}
			cfg, err := storage.PostgresConfig(c.url)
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.ConnConfig.ConnectTimeout; got != c.want {
				t.Errorf("connect timeout %v, want %v", got, c.want)
			}
		})
	}
}

// sqliteFiles returns the names in dir, without SQLite's -wal and -shm
// files.
func sqliteFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if n := e.Name(); !strings.HasSuffix(n, "-wal") && !strings.HasSuffix(n, "-shm") {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// A SQLite path is a file name: sqlite:/x/a#1.db and sqlite:/x/a#2.db opened
// the same file /x/a, %41 was decoded, and after a ? the store's own
// parameters (foreign_keys among them) were lost.
func TestASQLitePathIsAFileName(t *testing.T) {
	t.Parallel()
	names := []string{"a#1.db", "a#2.db", "a", "b%41.db", "bA.db", "c?.db", "c?mode=ro.db", "c", "d?_pragma=foreign_keys(0)",
		"e f.db", "données-é€.db", "%zz#?&=;.db"}
	dir := t.TempDir()
	for _, name := range names {
		st := openStore(t, "sqlite:"+filepath.Join(dir, name))
		newStudy(t, st, storage.NewStudy{Name: name})
		for pragma, want := range map[string]string{"foreign_keys": "1", "journal_mode": "wal", "busy_timeout": "10000"} {
			if got, err := storage.Pragma(t.Context(), st, pragma); err != nil || got != want {
				t.Errorf("%s: PRAGMA %s = %q (%v), want %q", name, pragma, got, err, want)
			}
		}
		if got := st.URL(); got != "sqlite:"+filepath.Join(dir, name) {
			t.Errorf("URL() = %q, want the path as given", got)
		}
		st.Close()
	}
	want := slices.Sorted(slices.Values(names))
	if got := sqliteFiles(t, dir); !slices.Equal(got, want) {
		t.Errorf("the directory holds %q, want one file of each name: %q", got, want)
	}
	for _, name := range want {
		st := openStore(t, "sqlite:"+filepath.Join(dir, name))
		studies, err := st.Studies(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(studies) != 1 || studies[0].Name != name {
			var got []string
			for _, s := range studies {
				got = append(got, s.Name)
			}
			t.Errorf("%s holds the studies %q, want only %q", name, got, name)
		}
		st.Close()
	}
	t.Run("an absolute path that starts with //", func(t *testing.T) {
		dir := t.TempDir()
		st := openStore(t, "sqlite://"+filepath.Join(dir, "g.db")) // the path /tmp/.../g.db
		st.Close()
		st = openStore(t, "sqlite:///"+filepath.Join(dir, "h.db")) // the path //tmp/.../h.db
		st.Close()
		if got := sqliteFiles(t, dir); !slices.Equal(got, []string{"g.db", "h.db"}) {
			t.Errorf("the directory holds %q, want g.db and h.db", got)
		}
	})
	t.Run("a relative path", func(t *testing.T) {
		// Not parallel with anything that changes the directory: nothing
		// in this package does.
		rel, err := filepath.Rel(mustGetwd(t), filepath.Join(t.TempDir(), "r#1?.db"))
		if err != nil {
			t.Fatal(err)
		}
		st := openStore(t, "sqlite:"+rel)
		st.Close()
		if _, err := os.Stat(rel); err != nil {
			t.Errorf("the file %s: %v", rel, err)
		}
	})
}

func mustGetwd(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}

func TestOpenRefusesASQLitePathThatCanNeverBeADatabase(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ what, path, want string }{
		{"a directory", dir, dir + " is a directory, not a database file"},
		{"a file in a directory that does not exist", dir + "/missing/x.db", "the directory " + dir + "/missing does not exist"},
		{"a file under a file", file + "/x.db", file + " is a file, not a directory"},
		{"a file deeper under a file", file + "/y/x.db", file + " is a file, not a directory"},
		{"a name with a NUL byte", dir + "/a\x00b.db", "NUL"},
	} {
		for _, opts := range [][]storage.Option{nil, {storage.MustExist()}} {
			st, err := storage.Open(t.Context(), "sqlite:"+c.path, opts...)
			if err == nil {
				st.Close()
				t.Errorf("%s: Open succeeded", c.what)
				continue
			}
			if len(opts) > 0 && c.what == "a file in a directory that does not exist" {
				if !errors.Is(err, storage.ErrNoStorage) {
					t.Errorf("%s with MustExist: %v, want ErrNoStorage", c.what, err)
				}
				continue
			}
			if !errors.Is(err, storage.ErrBadURL) || errors.Is(err, storage.ErrUnavailable) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: %v, want ErrBadURL saying %q", c.what, err, c.want)
			}
		}
	}
	if got := sqliteFiles(t, dir); !slices.Equal(got, []string{"file"}) {
		t.Errorf("the directory holds %q after the refusals", got)
	}
}

// Commands that only read must not create an empty database at a mistyped
// path.
func TestMustExistCreatesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "typo.db")
	st, err := storage.Open(t.Context(), "sqlite:"+path, storage.MustExist())
	if err == nil {
		st.Close()
		t.Fatal("Open with MustExist of a missing file succeeded")
	}
	if !errors.Is(err, storage.ErrNoStorage) || errors.Is(err, storage.ErrBadURL) || errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("Open: %v, want ErrNoStorage only", err)
	}
	if want := "no storage at " + path; err.Error() != want {
		t.Errorf("Open: %q, want %q", err, want)
	}
	if got := sqliteFiles(t, dir); len(got) != 0 {
		t.Errorf("Open with MustExist created %q", got)
	}

	// A store that exists opens, and is read and written as before.
	st = openStore(t, "sqlite:"+path)
	newStudy(t, st, storage.NewStudy{Name: "there"})
	st.Close()
	for _, opts := range [][]storage.Option{{storage.MustExist()}, {storage.MustExist(), storage.WithoutMigration()}} {
		st = openStore(t, "sqlite:"+path, opts...)
		if _, err := st.StudyByName(t.Context(), "there"); err != nil {
			t.Errorf("StudyByName: %v", err)
		}
		st.Close()
	}
	st = openStore(t, "sqlite:"+path, storage.MustExist())
	newStudy(t, st, storage.NewStudy{Name: "written"})
}

func TestPersistentRefusesAnInMemoryDatabase(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"sqlite::memory:", "sqlite3::memory:", "sqlite://:memory:", "SQLite::memory:"} {
		st, err := storage.Open(t.Context(), u, storage.Persistent())
		if err == nil {
			st.Close()
			t.Errorf("Open(%q, Persistent()) succeeded", u)
		} else if !errors.Is(err, storage.ErrBadURL) || !strings.Contains(err.Error(), "in-memory") {
			t.Errorf("Open(%q, Persistent()): %v, want ErrBadURL about an in-memory database", u, err)
		}
		// Go programs keep it.
		st = openStore(t, u)
		newStudy(t, st, storage.NewStudy{Name: "here"})
		if _, err := st.StudyByName(t.Context(), "here"); err != nil {
			t.Errorf("%s: %v", u, err)
		}
		st.Close()
	}
	// A file is persistent.
	st := openStore(t, "sqlite:"+t.TempDir()+"/f.db", storage.Persistent())
	st.Close()
}

// fuzzShapes build a connection string of one form around a password, to
// host:1 where host refuses or does not resolve; the parameters that follow
// the password override those it may inject.
var fuzzShapes = []func(pw, host string) string{
	func(pw, host string) string { return "postgres://u:" + pw + "@" + host + ":1/db?sslmode=disable" },
	func(pw, host string) string {
		return "postgres://" + url.UserPassword("u", pw).String() + "@" + host + ":1/db?sslmode=disable"
	},
	func(pw, host string) string { return "postgresql://u:" + url.QueryEscape(pw) + "@" + host + ":1/db" },
	func(pw, host string) string {
		return "postgres://u@" + host + ":1/db?password=" + pw + "&host=" + host + "&port=1&sslmode=disable"
	},
	func(pw, host string) string {
		return "postgres://u@" + host + ":1/db?password=" + url.QueryEscape(pw) + "&sslmode=disable"
	},
	func(pw, host string) string {
		return "postgres://u@" + host + ":1/db?sslmode=disable&sslpassword=" + url.QueryEscape(pw)
	},
	func(pw, host string) string {
		return "postgres://u@" + host + ":1/db?sslpassword=" + pw + "&host=" + host + "&port=1&sslmode=disable"
	},
	func(pw, host string) string {
		return "password=" + kvQuote(pw) + " host=" + host + " port=1 sslmode=disable"
	},
	func(pw, host string) string {
		return "password=" + kvEscape(pw) + " host=" + host + " port=1 sslmode=disable"
	},
	func(pw, host string) string {
		return "password=" + pw + " host=" + host + " port=1 sslmode=disable"
	},
	func(pw, host string) string {
		return "password='" + pw + "' host=" + host + " port=1 sslmode=disable"
	},
	func(pw, host string) string { return "host=" + host + " port=1 sslmode=disable password=" + pw },
	func(pw, host string) string { return "POSTGRES://u:" + pw + "@" + host + ":1/db?sslmode=disable" },
	func(pw, host string) string { return "mysql://u:" + pw + "@" + host + ":1/db" },
	func(pw, host string) string { return "u:" + pw + "@" + host + ":1/db" },
}

// FuzzConnectionStringNeverLeaksAPassword builds a connection string of any
// form around any password and opens it against an address that refuses or
// does not resolve: the password appears neither in the error nor in
// Redact, when it is at least 4 characters long and not in the rest of the
// string (or in the error of the same string with another password) by
// chance.
func FuzzConnectionStringNeverLeaksAPassword(f *testing.F) {
	for i := range fuzzShapes {
		for _, pw := range hardPasswords {
			f.Add(uint8(i), pw, false)
		}
		f.Add(uint8(i), "Sup3rS3cret", true)
	}
	f.Fuzz(func(t *testing.T, shape uint8, pw string, unresolvable bool) {
		host := "127.0.0.1"
		if unresolvable {
			host = "floodtune..invalid" // refused by the resolver at once, without asking a DNS server
		}
		build := fuzzShapes[int(shape)%len(fuzzShapes)]
		conn := build(pw, host)
		open := func(conn string) string {
			// A refused or unresolvable address fails at once; a password
			// may inject another host, which is not waited for.
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			st, err := storage.Open(ctx, conn)
			if err != nil {
				return err.Error()
			}
			st.Close() // it reached a server after all: nothing to print
			return ""
		}
		msg := open(conn)
		if strings.ContainsAny(msg, "\n\r") {
			t.Errorf("Open(%q): an error of several lines: %q", conn, msg)
		}
		red := storage.Redact(conn)
		const other = "Zq"
		baseline := open(build(other, host)) + storage.Redact(build(other, host))
		for _, spelled := range []string{pw, url.QueryEscape(pw), url.PathEscape(pw), kvEscape(pw)} {
			if !strings.Contains(conn, spelled) {
				continue
			}
			// Spaces around a password separate it from the rest.
			if spelled = strings.TrimSpace(spelled); len(spelled) < 4 {
				continue
			}
			if rest := strings.Replace(conn, spelled, "", 1); strings.Contains(rest, spelled) || strings.Contains(baseline, spelled) {
				continue
			}
			// The mask itself is no password ("xxx " is in "xxxxx "), and
			// nothing that spans it is: each stretch between masks is
			// searched alone.
			shows := func(s string) bool {
				if strings.Contains(spelled, "xxxxx") {
					return strings.Contains(s, spelled)
				}
				for _, part := range strings.Split(s, "xxxxx") {
					if strings.Contains(part, spelled) {
						return true
					}
				}
				return false
			}
			if shows(msg) {
				t.Errorf("Open(%q) = %q shows the password %q", conn, msg, spelled)
			}
			if shows(red) {
				t.Errorf("Redact(%q) = %q shows the password %q", conn, red, spelled)
			}
		}
	})
}
