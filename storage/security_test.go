package storage_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/floodtune/floodtune/internal/pgtest"
	"github.com/floodtune/floodtune/storage"
)

const secret = "Sup3rS3cret"

// noSecret fails t if s shows the secret in any of its spellings.
func noSecret(t testing.TB, what, s string, secrets ...string) {
	t.Helper()
	for _, p := range append(secrets, secret) {
		for _, spelled := range []string{p, url.QueryEscape(p), url.PathEscape(p)} {
			if strings.Contains(s, spelled) {
				t.Errorf("%s shows the password %q: %s", what, spelled, s)
			}
		}
	}
}

func TestOpenDoesNotShowPasswords(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		what, url string
		secrets   []string
	}{
		{"in user:password@, where nothing listens", "postgres://postgres:" + secret + "@127.0.0.1:1/x", nil},
		{"in ?password=, where nothing listens", "postgres://postgres@127.0.0.1:1/x?password=" + secret + "&sslmode=disable", nil},
		{"of the postgresql scheme", "postgresql://postgres:" + secret + "@127.0.0.1:1/x?connect_timeout=2", nil},
		{"with characters that are escaped", "postgres://postgres:" + url.PathEscape("p@ss:w/rd "+secret) + "@127.0.0.1:1/x", []string{"p@ss:w/rd " + secret}},
		{"in a URL with a bad port", "postgres://postgres:" + secret + "@127.0.0.1:notaport/x", nil},
		{"in a URL with a bad parameter", "postgres://postgres:" + secret + "@127.0.0.1:1/x?sslmode=bogus", nil},
		{"in a URL with a bad escape", "postgres://postgres:" + secret + "%zz@127.0.0.1:1/x", nil},
		{"of an unknown scheme", "mysql://root:" + secret + "@127.0.0.1:1/x", nil},
		{"of an unparsable unknown scheme", "mysql://root:" + secret + "%zz@127.0.0.1:1/x", nil},
	} {
		t.Run(c.what, func(t *testing.T) {
			t.Parallel()
			err := openFailing(t, c.url)
			if err == nil {
				t.Fatalf("Open(%s) succeeded", storage.Redact(c.url))
			}
			noSecret(t, "the error of Open", err.Error(), c.secrets...)
			noSecret(t, "Redact", storage.Redact(c.url), c.secrets...)
		})
	}
}

func TestOpenRefusesBadURLs(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"", "sqlite:", "sqlite://", "mysql://h/db", "floodtune.db", "file:floodtune.db"} {
		if st, err := storage.Open(t.Context(), u); !errors.Is(err, storage.ErrBadURL) {
			if st != nil {
				st.Close()
			}
			t.Errorf("Open(%q): %v, want ErrBadURL", u, err)
		}
	}
}

// PGPASSWORD gives the password when the URL has none; it must not show
// either. Not parallel: it sets the environment.
func TestOpenDoesNotShowPGPASSWORD(t *testing.T) {
	t.Setenv("PGPASSWORD", secret)
	st, err := storage.Open(t.Context(), "postgres://postgres@127.0.0.1:1/x")
	if err == nil {
		st.Close()
		t.Fatal("Open succeeded")
	}
	noSecret(t, "the error of Open", err.Error())
}

func TestStoreURLDoesNotShowPassword(t *testing.T) {
	t.Parallel()
	// The throw-away server trusts every connection, so any password
	// works; a server given by FLOODTUNE_TEST_DATABASE_URL has its own.
	u, err := url.Parse(pgtest.Schema(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, has := u.User.Password(); !has {
		u.User = url.UserPassword(u.User.Username(), secret)
	}
	pw, _ := u.User.Password()
	for _, form := range []string{"user:password@", "?password="} {
		t.Run(form, func(t *testing.T) {
			v := *u
			if form == "?password=" {
				v.User = url.User(u.User.Username())
				q := v.Query()
				q.Set("password", pw)
				v.RawQuery = q.Encode()
			}
			st := openStore(t, v.String())
			noSecret(t, "URL()", st.URL(), pw)
			if !strings.Contains(st.URL(), "xxxxx") {
				t.Errorf("URL() = %q, want the password replaced by xxxxx", st.URL())
			}
			_, err := st.StudyByName(t.Context(), "nobody")
			noSecret(t, "an error of the store", err.Error(), pw)
		})
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ what, in, want string }{
		{"a password after the user", "postgres://ann:" + secret + "@db:5432/floodtune", "postgres://ann:xxxxx@db:5432/floodtune"},
		{"a password parameter", "postgres://ann@db/floodtune?password=" + secret, "postgres://ann@db/floodtune?password=xxxxx"},
		{"a password parameter among others, which keep their order", "postgres://db/floodtune?sslmode=require&password=" + secret + "&connect_timeout=3", "postgres://db/floodtune?sslmode=require&password=xxxxx&connect_timeout=3"},
		{"both forms", "postgresql://ann:" + secret + "@db/f?password=" + secret, "postgresql://ann:xxxxx@db/f?password=xxxxx"},
		{"an escaped password", "postgres://ann:" + url.PathEscape("p@ss:"+secret) + "@db/f", "postgres://ann:xxxxx@db/f"},
		{"an empty password", "postgres://ann:@db/f", "postgres://ann:xxxxx@db/f"},
		{"no password", "postgres://ann@db:5432/floodtune?sslmode=disable", "postgres://ann@db:5432/floodtune?sslmode=disable"},
		{"no user", "postgres://db/floodtune", "postgres://db/floodtune"},
		{"a SQLite path", "sqlite:/var/lib/floodtune.db", "sqlite:/var/lib/floodtune.db"},
		{"a relative SQLite path", "sqlite:floodtune.db", "sqlite:floodtune.db"},
	} {
		t.Run(c.what, func(t *testing.T) {
			t.Parallel()
			got := storage.Redact(c.in)
			if got != c.want {
				t.Errorf("Redact(%q) = %q, want %q", c.in, got, c.want)
			}
			noSecret(t, "Redact", got)
		})
	}
	t.Run("a URL that does not parse shows its parts but not its password", func(t *testing.T) {
		got := storage.Redact("postgres://ann:" + secret + "%zz@db/f")
		if want := "postgres://ann:xxxxx@db/f"; got != want {
			t.Errorf("Redact of an unparsable URL = %q, want %q", got, want)
		}
	})
}

// passwords returns the long passwords that url.Parse finds in raw and that
// the URL without its passwords does not show by chance ("a" is in
// "postgres").
func passwords(raw string) []string {
	u, err := url.Parse(raw)
	if err != nil {
		return nil
	}
	var all []string
	if p, ok := u.User.Password(); ok {
		all = append(all, p)
	}
	all = append(all, u.Query()["password"]...)
	bare := *u
	bare.User = nil
	if u.User != nil {
		bare.User = url.User(u.User.Username())
	}
	q := bare.Query()
	q.Del("password")
	bare.RawQuery = q.Encode()
	var out []string
	for _, p := range all {
		// A password found in what stays of the URL, or in the redacted
		// form's own "password=xxxxx", is not one Redact could hide.
		if len(p) >= 6 && !strings.Contains(bare.String(), p) && !strings.Contains("password=xxxxx", p) && !strings.Contains(raw, p+p) {
			out = append(out, p)
		}
	}
	return out
}

// urlSeeds start the fuzz tests of storage URLs.
var urlSeeds = []string{
	"postgres://ann:" + secret + "@db:5432/floodtune",
	"postgres://ann@db/f?password=" + secret + "&sslmode=disable",
	"postgres://ann:p%40ss@db/f?password=x%26y",
	"postgresql://:pw@/f",
	"sqlite:floodtune.db",
	"postgres://a:b@c/d?password=e&password=f",
	"postgres://ann:" + secret + "@db:99999/f",
	"postgres://ann:" + secret + "@[::1/f",
	"postgres://ann:" + secret + "@db/f?sslmode=bogus",
	"postgres://ann:" + secret + "@db/f?connect_timeout=x",
	"postgres://ann:" + secret + "@h1:1,h2:2/f?target_session_attrs=any",
}

// FuzzRedact checks that a password that url.Parse finds never survives
// Redact, whatever else is in the URL.
func FuzzRedact(f *testing.F) {
	for _, seed := range urlSeeds {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got := storage.Redact(raw)
		for _, p := range passwords(raw) {
			if strings.Contains(got, p) {
				t.Errorf("Redact(%q) = %q shows the password %q", raw, got, p)
			}
		}
	})
}

// FuzzOpenURL parses PostgreSQL URLs as Open does (with a cancelled
// context, so nothing is dialled): whatever the URL, Open returns an error
// of one line that shows none of its passwords, and never panics.
func FuzzOpenURL(f *testing.F) {
	for _, seed := range urlSeeds {
		f.Add(seed)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f.Fuzz(func(t *testing.T, raw string) {
		if !strings.HasPrefix(raw, "postgres://") && !strings.HasPrefix(raw, "postgresql://") {
			raw = "postgres://" + strings.TrimPrefix(raw, "sqlite:")
		}
		st, err := storage.Open(ctx, raw)
		if err == nil {
			st.Close()
			t.Fatalf("Open(%q) with a cancelled context succeeded", raw)
		}
		msg := err.Error()
		if strings.ContainsAny(msg, "\n\r") {
			t.Errorf("Open(%q) = an error of several lines: %q", raw, msg)
		}
		for _, p := range passwords(raw) {
			if strings.Contains(msg, p) {
				t.Errorf("Open(%q) = %q shows the password %q", raw, msg, p)
			}
		}
	})
}
