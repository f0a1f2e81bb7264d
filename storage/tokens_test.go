package storage_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/floodtune/floodtune/storage"
)

func TestTokenConformance(t *testing.T) {
	runConformance(t, tokenTests)
}

// tokenForm is the form of a token that CreateToken returns.
var tokenForm = regexp.MustCompile(`^ftk_[0-9a-f]{16}_[0-9a-f]{64}$`)

// createToken creates a token and fails t on an error.
func createToken(t testing.TB, st *storage.Store, name string, scope storage.Scope, studyID int64) (string, *storage.Token) {
	t.Helper()
	secret, tok, err := st.CreateToken(t.Context(), name, scope, studyID)
	if err != nil {
		t.Fatalf("CreateToken(%q, %s, study %d): %v", name, scope, studyID, err)
	}
	return secret, tok
}

// authenticate authenticates secret and fails t on an error.
func authenticate(t testing.TB, st *storage.Store, secret string) *storage.Token {
	t.Helper()
	tok, err := st.Authenticate(t.Context(), secret)
	if err != nil {
		t.Fatalf("Authenticate(the secret of a valid token): %v", err)
	}
	return tok
}

// wantUnauthenticated fails t unless Authenticate refuses secret with
// ErrUnauthenticated, and with nothing in its text that tells why.
func wantUnauthenticated(t testing.TB, st *storage.Store, what, secret string) {
	t.Helper()
	tok, err := st.Authenticate(t.Context(), secret)
	if !errors.Is(err, storage.ErrUnauthenticated) || tok != nil {
		t.Errorf("Authenticate(%s) = %+v, %v; want nil, ErrUnauthenticated", what, tok, err)
	} else if err.Error() != storage.ErrUnauthenticated.Error() {
		t.Errorf("Authenticate(%s): the error %q says more than %q", what, err, storage.ErrUnauthenticated)
	}
}

// tokenNames returns the names that Tokens lists, in its order.
func tokenNames(t testing.TB, st *storage.Store) []string {
	t.Helper()
	toks, err := st.Tokens(t.Context())
	if err != nil {
		t.Fatalf("Tokens: %v", err)
	}
	names := []string{}
	for _, tok := range toks {
		names = append(names, tok.Name)
	}
	return names
}

// tokenByName returns the token that Tokens lists under name.
func tokenByName(t testing.TB, st *storage.Store, name string) storage.Token {
	t.Helper()
	toks, err := st.Tokens(t.Context())
	if err != nil {
		t.Fatalf("Tokens: %v", err)
	}
	for _, tok := range toks {
		if tok.Name == name {
			return tok
		}
	}
	t.Fatalf("Tokens does not list %q", name)
	return storage.Token{}
}

// aboutNow reports whether at is within a minute of now.
func aboutNow(at time.Time) bool {
	return !at.IsZero() && at.After(time.Now().Add(-time.Minute)) && at.Before(time.Now().Add(time.Minute))
}

// ageLastUse moves the last use of every token back by d, in the table.
func ageLastUse(t testing.TB, e *env, d time.Duration) {
	t.Helper()
	query := fmt.Sprintf("UPDATE api_tokens SET last_used_at = last_used_at - make_interval(secs => %d)", int(d.Seconds()))
	if e.backend == "sqlite" {
		query = fmt.Sprintf("UPDATE api_tokens SET last_used_at = last_used_at - %d", d.Microseconds())
	}
	if _, err := rawDB(t, e).ExecContext(t.Context(), query); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

var tokenTests = []conformanceTest{
	{"a token of each scope round-trips from CreateToken through Authenticate", func(t *testing.T, e *env) {
		s := newStudy(t, e.st, storage.NewStudy{Name: "noise20"})
		for _, tc := range []struct {
			name      string
			scope     storage.Scope
			study     int64
			studyName string
		}{
			{"ops", storage.ScopeAdmin, 0, ""},
			{"grafana", storage.ScopeRead, 0, ""},
			{"worker-1", storage.ScopeWorker, s.ID, "noise20"},
		} {
			t.Run(string(tc.scope), func(t *testing.T) {
				secret, created := createToken(t, e.st, tc.name, tc.scope, tc.study)
				if !tokenForm.MatchString(secret) {
					t.Errorf("the token %q is not of the form ftk_<16 hex>_<64 hex>", secret)
				}
				if created.ID == 0 || created.Name != tc.name || created.Scope != tc.scope || created.StudyID != tc.study || created.StudyName != tc.studyName ||
					!aboutNow(created.CreatedAt) || !created.RevokedAt.IsZero() || !created.LastUsedAt.IsZero() {
					t.Errorf("CreateToken returned %+v; want %s, %s, study %d %q, created now, neither revoked nor used", created, tc.name, tc.scope, tc.study, tc.studyName)
				}
				// Through this store and another (another process).
				for which, st := range map[string]*storage.Store{"the creating store": e.st, "another store": e.open(t)} {
					got := authenticate(t, st, secret)
					if got.ID != created.ID || got.Name != tc.name || got.Scope != tc.scope || got.StudyID != tc.study || got.StudyName != tc.studyName ||
						!got.CreatedAt.Equal(created.CreatedAt) || !got.RevokedAt.IsZero() || !aboutNow(got.LastUsedAt) {
						t.Errorf("Authenticate through %s = %+v; want the token created (%+v), used now", which, got, created)
					}
				}
				listed := tokenByName(t, e.st, tc.name)
				if listed.ID != created.ID || listed.Scope != tc.scope || listed.StudyID != tc.study || listed.StudyName != tc.studyName || !aboutNow(listed.LastUsedAt) {
					t.Errorf("Tokens lists %+v; want the token created, used now", listed)
				}
			})
		}
		// Each token is its own: two tokens never share a secret.
		a, _ := createToken(t, e.st, "a", storage.ScopeRead, 0)
		b, _ := createToken(t, e.st, "b", storage.ScopeRead, 0)
		if a == b || a[4:20] == b[4:20] || a[21:] == b[21:] {
			t.Errorf("two tokens share a public id or a secret: %q and %q", a, b)
		}
		if got := authenticate(t, e.st, b); got.Name != "b" {
			t.Errorf("the token of b authenticates as %q", got.Name)
		}
	}},
	{"wrong, malformed and revoked tokens are ErrUnauthenticated and the error does not say which", func(t *testing.T, e *env) {
		secret, _ := createToken(t, e.st, "ci", storage.ScopeAdmin, 0)
		other, _ := createToken(t, e.st, "other", storage.ScopeAdmin, 0)
		revoked, _ := createToken(t, e.st, "old", storage.ScopeAdmin, 0)
		if err := e.st.RevokeToken(t.Context(), "old"); err != nil {
			t.Fatal(err)
		}
		publicID, key := secret[4:20], secret[21:]
		flip := func(s string, i int) string { // s with its i-th hex digit changed
			c := byte('0')
			if s[i] == '0' {
				c = '1'
			}
			return s[:i] + string(c) + s[i+1:]
		}
		for _, tc := range []struct{ what, secret string }{
			{"an empty string", ""},
			{"the prefix alone", "ftk_"},
			{"the token without its prefix", secret[4:]},
			{"another prefix", "ftx_" + secret[4:]},
			{"an upper-case prefix", "FTK_" + secret[4:]},
			{"a wrong secret", "ftk_" + publicID + "_" + flip(key, 10)},
			{"a secret whose last digit is wrong", "ftk_" + publicID + "_" + flip(key, len(key)-1)},
			{"another token's secret with this public id", "ftk_" + publicID + "_" + other[21:]},
			{"this secret with another token's public id", "ftk_" + other[4:20] + "_" + key},
			{"an unknown public id", "ftk_" + flip(publicID, 0) + "_" + key},
			{"the token truncated by one character", secret[:len(secret)-1]},
			{"the token truncated to its public id", secret[:21]},
			{"the token with a character more", secret + "0"},
			{"the token twice", secret + secret},
			{"the token with a trailing newline", secret + "\n"},
			{"the token with a leading space", " " + secret},
			{"the token after Bearer", "Bearer " + secret},
			{"the token in upper case", "ftk_" + strings.ToUpper(publicID) + "_" + strings.ToUpper(key)},
			{"the token without its second underscore", "ftk_" + publicID + key},
			{"the token with a dash for its second underscore", "ftk_" + publicID + "-" + key},
			{"the token with a NUL byte", secret[:30] + "\x00" + secret[31:]},
			{"the token with invalid UTF-8", secret[:30] + "\xff" + secret[31:]},
			{"SQL in the public id", "ftk_' OR '1'='1'--_" + key},
			{"the SHA-256 of the secret in its place", "ftk_" + publicID + "_" + fmt.Sprintf("%x", sha256.Sum256([]byte(key)))},
			{"a revoked token", revoked},
		} {
			t.Run(tc.what, func(t *testing.T) {
				wantUnauthenticated(t, e.st, tc.what, tc.secret)
			})
		}
		// None of these recorded a use, and the token still works.
		if tok := tokenByName(t, e.st, "ci"); !tok.LastUsedAt.IsZero() {
			t.Errorf("refused tokens recorded a use of ci at %v", tok.LastUsedAt)
		}
		if tok := tokenByName(t, e.st, "old"); !tok.LastUsedAt.IsZero() {
			t.Errorf("the revoked token was recorded as used at %v", tok.LastUsedAt)
		}
		authenticate(t, e.st, secret)
	}},
	{"the secret is stored only as its SHA-256", func(t *testing.T, e *env) {
		s := newStudy(t, e.st, storage.NewStudy{})
		secrets := map[string]string{}
		secrets["admin"], _ = createToken(t, e.st, "admin", storage.ScopeAdmin, 0)
		secrets["worker"], _ = createToken(t, e.st, "worker", storage.ScopeWorker, s.ID)
		rows, err := rawDB(t, e).QueryContext(t.Context(), "SELECT * FROM api_tokens")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		cols, err := rows.Columns()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for rows.Next() {
			n++
			values := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range values {
				ptrs[i] = &values[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			row := map[string]any{}
			for i, c := range cols {
				row[c] = values[i]
			}
			name := fmt.Sprint(row["name"])
			if b, ok := row["name"].([]byte); ok {
				name = string(b)
			}
			secret := secrets[name]
			key := secret[21:]
			hash, ok := row["secret_hash"].([]byte)
			if want := sha256.Sum256([]byte(key)); !ok || !bytes.Equal(hash, want[:]) {
				t.Errorf("token %q: secret_hash is %v (%T), want the 32 bytes of sha256(secret)", name, row["secret_hash"], row["secret_hash"])
			}
			for i, v := range values {
				text := fmt.Sprint(v)
				if b, ok := v.([]byte); ok {
					text = string(b)
				}
				if strings.Contains(text, key) || strings.Contains(text, secret) || (len(text) >= 16 && strings.Contains(key, text)) {
					t.Errorf("token %q: column %s holds the secret in clear: %q", name, cols[i], text)
				}
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if n != 2 {
			t.Errorf("%d rows in api_tokens, want 2", n)
		}
	}},
	{"a worker token needs a study and the other scopes refuse one", func(t *testing.T, e *env) {
		s := newStudy(t, e.st, storage.NewStudy{})
		for _, tc := range []struct {
			what    string
			name    string
			scope   storage.Scope
			studyID int64
			want    error
			says    string
		}{
			{"a worker token without a study", "w", storage.ScopeWorker, 0, storage.ErrBadTokenInput, "needs a study"},
			{"a worker token with a negative study id", "w", storage.ScopeWorker, -1, storage.ErrBadTokenInput, "needs a study"},
			{"an admin token with a study", "a", storage.ScopeAdmin, s.ID, storage.ErrBadTokenInput, "only a worker token"},
			{"a read token with a study", "r", storage.ScopeRead, s.ID, storage.ErrBadTokenInput, "only a worker token"},
			{"a worker token of a study that does not exist", "w", storage.ScopeWorker, s.ID + 1000, storage.ErrNotFound, fmt.Sprintf("study id %d", s.ID+1000)},
			{"an unknown scope", "x", "root", 0, storage.ErrBadTokenInput, "admin, read or worker"},
			{"an empty scope", "x", "", 0, storage.ErrBadTokenInput, "admin, read or worker"},
			{"a scope in upper case", "x", "ADMIN", 0, storage.ErrBadTokenInput, "admin, read or worker"},
			{"an empty name", "", storage.ScopeAdmin, 0, storage.ErrBadTokenInput, "must not be empty"},
			{"a name of 101 characters", strings.Repeat("é", 101), storage.ScopeAdmin, 0, storage.ErrBadTokenInput, "longer than the limit of 100"},
			{"a name with a newline", "a\nb", storage.ScopeAdmin, 0, storage.ErrBadTokenInput, "printable"},
			{"a name with a tab", "a\tb", storage.ScopeAdmin, 0, storage.ErrBadTokenInput, "printable"},
			{"a name with a NUL byte", "a\x00b", storage.ScopeAdmin, 0, storage.ErrBadTokenInput, "printable"},
			{"a name with an escape sequence", "a\x1b[31mb", storage.ScopeAdmin, 0, storage.ErrBadTokenInput, "printable"},
			{"a name with a zero-width space", "a\u200bb", storage.ScopeAdmin, 0, storage.ErrBadTokenInput, "printable"},
			{"a name of invalid UTF-8", "a\xffb", storage.ScopeAdmin, 0, storage.ErrBadTokenInput, "UTF-8"},
			{"a name that starts with a space", " a", storage.ScopeAdmin, 0, storage.ErrBadTokenInput, "space"},
			{"a name that ends with a space", "a ", storage.ScopeAdmin, 0, storage.ErrBadTokenInput, "space"},
		} {
			t.Run(tc.what, func(t *testing.T) {
				secret, tok, err := e.st.CreateToken(t.Context(), tc.name, tc.scope, tc.studyID)
				wantErr(t, "CreateToken of "+tc.what, err, tc.want)
				if err == nil || secret != "" || tok != nil || !strings.Contains(err.Error(), tc.says) {
					t.Errorf("CreateToken of %s = %q, %+v, %v; want no token and an error that says %q", tc.what, secret, tok, err, tc.says)
				}
				if tc.want == storage.ErrNotFound && errors.Is(err, storage.ErrBadTokenInput) {
					t.Errorf("CreateToken of %s: %v is ErrBadTokenInput too", tc.what, err)
				}
			})
		}
		if names := tokenNames(t, e.st); len(names) != 0 {
			t.Errorf("refused tokens were stored: %q", names)
		}
		// What is accepted at the limits.
		for _, name := range []string{"x", strings.Repeat("é", 100), `it's "quoted" %s; DROP TABLE api_tokens; --`, "洪水 🌊", "in the middle"} {
			secret, _ := createToken(t, e.st, name, storage.ScopeRead, 0)
			if got := authenticate(t, e.st, secret); got.Name != name {
				t.Errorf("the token named %q authenticates as %q", name, got.Name)
			}
		}
		for _, s := range []string{"admin", "read", "worker"} {
			if sc, err := storage.ParseScope(s); err != nil || string(sc) != s {
				t.Errorf("ParseScope(%q) = %q, %v", s, sc, err)
			}
		}
		if _, err := storage.ParseScope("Admin"); !errors.Is(err, storage.ErrBadTokenInput) {
			t.Errorf("ParseScope(Admin): %v, want ErrBadTokenInput", err)
		}
	}},
	{"deleting a study deletes its worker tokens and no other", func(t *testing.T, e *env) {
		ctx := t.Context()
		doomed := newStudy(t, e.st, storage.NewStudy{Name: "doomed"})
		kept := newStudy(t, e.st, storage.NewStudy{Name: "kept"})
		w1, _ := createToken(t, e.st, "w1", storage.ScopeWorker, doomed.ID)
		w2, _ := createToken(t, e.st, "w2", storage.ScopeWorker, doomed.ID)
		wk, _ := createToken(t, e.st, "wk", storage.ScopeWorker, kept.ID)
		admin, _ := createToken(t, e.st, "admin", storage.ScopeAdmin, 0)
		authenticate(t, e.st, w1)
		if err := e.st.DeleteStudy(ctx, doomed.ID); err != nil {
			t.Fatal(err)
		}
		wantUnauthenticated(t, e.st, "a worker token of the deleted study", w1)
		wantUnauthenticated(t, e.st, "another worker token of the deleted study", w2)
		if got := authenticate(t, e.st, wk); got.StudyID != kept.ID || got.StudyName != "kept" {
			t.Errorf("the kept study's worker token authenticates as %+v", got)
		}
		authenticate(t, e.st, admin)
		if names := tokenNames(t, e.st); !slices.Equal(names, []string{"admin", "wk"}) {
			t.Errorf("Tokens lists %q, want [admin wk]", names)
		}
		if n := rawCount(t, e, fmt.Sprintf("SELECT count(*) FROM api_tokens WHERE study_id = %d", doomed.ID)); n != 0 {
			t.Errorf("%d tokens of the deleted study remain", n)
		}
		// The names of the deleted tokens are free again.
		createToken(t, e.st, "w1", storage.ScopeWorker, kept.ID)
	}},
	{"a token name in use is refused with ErrTokenExists, even when its token is revoked", func(t *testing.T, e *env) {
		ctx := t.Context()
		s := newStudy(t, e.st, storage.NewStudy{})
		first, created := createToken(t, e.st, "taken", storage.ScopeRead, 0)
		for _, scope := range []storage.Scope{storage.ScopeRead, storage.ScopeAdmin, storage.ScopeWorker} {
			study := int64(0)
			if scope == storage.ScopeWorker {
				study = s.ID
			}
			secret, tok, err := e.open(t).CreateToken(ctx, "taken", scope, study)
			wantErr(t, "a second CreateToken of taken, "+string(scope), err, storage.ErrTokenExists)
			if secret != "" || tok != nil || err == nil || !strings.Contains(err.Error(), `"taken"`) {
				t.Errorf("a second CreateToken of taken = %q, %+v, %v; want no token and an error naming it", secret, tok, err)
			}
		}
		if got := authenticate(t, e.st, first); got.ID != created.ID || got.Scope != storage.ScopeRead {
			t.Errorf("the first token changed: %+v", got)
		}
		if err := e.st.RevokeToken(ctx, "taken"); err != nil {
			t.Fatal(err)
		}
		_, _, err := e.st.CreateToken(ctx, "taken", storage.ScopeAdmin, 0)
		wantErr(t, "CreateToken of the name of a revoked token", err, storage.ErrTokenExists)
		wantUnauthenticated(t, e.st, "the revoked token", first)
		if n := rawCount(t, e, "SELECT count(*) FROM api_tokens"); n != 1 {
			t.Errorf("%d tokens stored, want 1", n)
		}
		// Names differ by their bytes: case and spaces count.
		createToken(t, e.st, "Taken", storage.ScopeRead, 0)
		createToken(t, e.st, "taken too", storage.ScopeRead, 0)
	}},
	{"of 8 concurrent CreateToken of one name exactly one wins", func(t *testing.T, e *env) {
		const n = 8
		stores := e.stores(t, n)
		secrets := make([]string, n)
		toks := make([]*storage.Token, n)
		errs := make([]error, n)
		race(n, func(i int) {
			secrets[i], toks[i], errs[i] = stores[i].CreateToken(t.Context(), "contested", storage.ScopeAdmin, 0)
		})
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Errorf("creators %d and %d both won", winner, i)
			case err == nil:
				winner = i
			case !errors.Is(err, storage.ErrTokenExists):
				t.Errorf("creator %d: %v, want ErrTokenExists", i, err)
			case secrets[i] != "" || toks[i] != nil:
				t.Errorf("creator %d lost and got a token %q, %+v", i, secrets[i], toks[i])
			}
		}
		if winner < 0 {
			t.Fatal("no creator won")
		}
		if got := authenticate(t, e.st, secrets[winner]); got.ID != toks[winner].ID {
			t.Errorf("the winner's token authenticates as %+v, want %+v", got, toks[winner])
		}
		if n := rawCount(t, e, "SELECT count(*) FROM api_tokens"); n != 1 {
			t.Errorf("%d tokens stored, want 1", n)
		}
	}},
	{"Tokens lists every token by name, revoked ones included", func(t *testing.T, e *env) {
		ctx := t.Context()
		if names := tokenNames(t, e.st); len(names) != 0 {
			t.Errorf("a fresh store lists tokens %q", names)
		}
		s := newStudy(t, e.st, storage.NewStudy{Name: "s"})
		for _, name := range []string{"zeta", "Zeta", "alpha", "éclair", "beta", "a b", "ab"} {
			scope, study := storage.ScopeRead, int64(0)
			if name == "beta" {
				scope, study = storage.ScopeWorker, s.ID
			}
			createToken(t, e.st, name, scope, study)
		}
		if err := e.st.RevokeToken(ctx, "alpha"); err != nil {
			t.Fatal(err)
		}
		want := []string{"Zeta", "a b", "ab", "alpha", "beta", "zeta", "éclair"} // by bytes, on every backend
		if names := tokenNames(t, e.open(t)); !slices.Equal(names, want) {
			t.Errorf("Tokens lists %q, want %q", names, want)
		}
		toks, err := e.st.Tokens(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, tok := range toks {
			revoked := tok.Name == "alpha"
			if tok.RevokedAt.IsZero() == revoked || (revoked && !aboutNow(tok.RevokedAt)) {
				t.Errorf("token %q revoked at %v, want revoked now: %v", tok.Name, tok.RevokedAt, revoked)
			}
			if worker := tok.Name == "beta"; worker != (tok.Scope == storage.ScopeWorker) || worker != (tok.StudyID == s.ID) || worker != (tok.StudyName == "s") {
				t.Errorf("token %q: %+v", tok.Name, tok)
			}
			if !aboutNow(tok.CreatedAt) || !tok.LastUsedAt.IsZero() {
				t.Errorf("token %q created at %v and last used at %v; want now and never", tok.Name, tok.CreatedAt, tok.LastUsedAt)
			}
		}
	}},
	{"RevokeToken revokes once and knows no other names", func(t *testing.T, e *env) {
		ctx := t.Context()
		secret, _ := createToken(t, e.st, "ci", storage.ScopeAdmin, 0)
		kept, _ := createToken(t, e.st, "kept", storage.ScopeAdmin, 0)
		authenticate(t, e.st, secret)
		wantErr(t, "RevokeToken of an unknown name", e.st.RevokeToken(ctx, "nobody"), storage.ErrNotFound)
		wantErr(t, "RevokeToken of another case", e.st.RevokeToken(ctx, "CI"), storage.ErrNotFound)
		wantErr(t, "RevokeToken of an empty name", e.st.RevokeToken(ctx, ""), storage.ErrBadTokenInput)
		wantErr(t, "RevokeToken of a name with a NUL byte", e.st.RevokeToken(ctx, "c\x00i"), storage.ErrBadTokenInput)
		if err := e.st.RevokeToken(ctx, "ci"); err != nil {
			t.Fatalf("RevokeToken: %v", err)
		}
		first := tokenByName(t, e.st, "ci").RevokedAt
		if !aboutNow(first) {
			t.Errorf("revoked at %v, want now", first)
		}
		wantUnauthenticated(t, e.st, "the revoked token", secret)
		wantUnauthenticated(t, e.open(t), "the revoked token through another store", secret)
		time.Sleep(10 * time.Millisecond)
		if err := e.open(t).RevokeToken(ctx, "ci"); err != nil {
			t.Errorf("RevokeToken of a revoked token: %v, want nil", err)
		}
		if again := tokenByName(t, e.st, "ci").RevokedAt; !again.Equal(first) {
			t.Errorf("revoking again moved the revocation from %v to %v", first, again)
		}
		authenticate(t, e.st, kept)
	}},
	{"the last use is recorded at most once a minute", func(t *testing.T, e *env) {
		secret, _ := createToken(t, e.st, "busy", storage.ScopeRead, 0)
		other, _ := createToken(t, e.st, "idle", storage.ScopeRead, 0)
		first := authenticate(t, e.st, secret).LastUsedAt
		if !aboutNow(first) {
			t.Fatalf("first use recorded at %v, want now", first)
		}
		// Many uses within the minute write nothing.
		race(8, func(int) { _, _ = e.st.Authenticate(t.Context(), secret) })
		for range 3 {
			if got := authenticate(t, e.open(t), secret).LastUsedAt; !got.Equal(first) {
				t.Errorf("a use within the minute moved the last use from %v to %v", first, got)
			}
		}
		if got := tokenByName(t, e.st, "busy").LastUsedAt; !got.Equal(first) {
			t.Errorf("the stored last use is %v, want %v", got, first)
		}
		if got := tokenByName(t, e.st, "idle").LastUsedAt; !got.IsZero() {
			t.Errorf("an unused token was used at %v", got)
		}
		// A minute later, the next use is recorded.
		ageLastUse(t, e, 2*time.Minute)
		aged := tokenByName(t, e.st, "busy").LastUsedAt
		if !aged.Before(first.Add(-time.Minute)) {
			t.Fatalf("the last use was moved back to %v, from %v", aged, first)
		}
		next := authenticate(t, e.st, secret).LastUsedAt
		if !aboutNow(next) || !next.After(aged) {
			t.Errorf("a use after a minute recorded %v, want now (the last was %v)", next, aged)
		}
		if got := tokenByName(t, e.st, "busy").LastUsedAt; !got.Equal(next) {
			t.Errorf("the stored last use is %v, want %v", got, next)
		}
		authenticate(t, e.st, other)
	}},
	{"reverting 003_tokens drops the tokens and keeps the studies", func(t *testing.T, e *env) {
		ctx := t.Context()
		s := newStudy(t, e.st, storage.NewStudy{})
		createToken(t, e.st, "w", storage.ScopeWorker, s.ID)
		ran, err := e.st.Migrate(ctx, storage.Down, 2)
		if err != nil || len(ran) != 1 || ran[0].Version != 3 || ran[0].Name != "tokens" {
			t.Fatalf("Migrate(Down, 2) = %v, %v; want 003_tokens only", ran, err)
		}
		if _, err := e.st.Tokens(ctx); err == nil {
			t.Error("Tokens works with 003_tokens reverted: the table is still there")
		}
		if _, err := e.st.Study(ctx, s.ID); err != nil {
			t.Errorf("the study is gone with 003_tokens: %v", err)
		}
		if ran, err := e.st.Migrate(ctx, storage.Up, 0); err != nil || len(ran) != 1 || ran[0].Version != 3 {
			t.Fatalf("Migrate(Up, 0) = %v, %v; want 003_tokens only", ran, err)
		}
		if names := tokenNames(t, e.st); len(names) != 0 {
			t.Errorf("tokens %q came back", names)
		}
		secret, _ := createToken(t, e.st, "w", storage.ScopeWorker, s.ID)
		authenticate(t, e.st, secret)
	}},
	{"the table refuses what the API never writes", func(t *testing.T, e *env) {
		s := newStudy(t, e.st, storage.NewStudy{})
		// One connection, on which SQLite enforces foreign keys as the
		// store's connections do.
		db, err := rawDB(t, e).Conn(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		hash := make([]byte, 32)
		now := "now()"
		if e.backend == "sqlite" {
			now = "0"
			if _, err := db.ExecContext(t.Context(), "PRAGMA foreign_keys = ON"); err != nil {
				t.Fatal(err)
			}
		}
		insert := func(name, publicID string, hash []byte, scope string, study any) error {
			_, err := db.ExecContext(t.Context(), `INSERT INTO api_tokens (name, public_id, secret_hash, scope, study_id, created_at)
				VALUES ($1, $2, $3, $4, $5, `+now+`)`, name, publicID, hash, scope, study)
			return err
		}
		if err := insert("ok", "p0", hash, "worker", s.ID); err != nil {
			t.Fatalf("a valid row was refused: %v", err)
		}
		for _, tc := range []struct {
			what     string
			name, id string
			hash     []byte
			scope    string
			study    any
		}{
			{"an empty name", "", "p1", hash, "read", nil},
			{"a taken name", "ok", "p2", hash, "read", nil},
			{"a taken public id", "n3", "p0", hash, "read", nil},
			{"an empty public id", "n4", "", hash, "read", nil},
			{"a short hash", "n5", "p5", hash[:31], "read", nil},
			{"an unknown scope", "n6", "p6", hash, "root", nil},
			{"a worker token without a study", "n7", "p7", hash, "worker", nil},
			{"an admin token with a study", "n8", "p8", hash, "admin", s.ID},
			{"a worker token of an unknown study", "n9", "p9", hash, "worker", s.ID + 99},
		} {
			if err := insert(tc.name, tc.id, tc.hash, tc.scope, tc.study); err == nil {
				t.Errorf("a row with %s was stored", tc.what)
			}
		}
		var n int
		if err := db.QueryRowContext(t.Context(), "SELECT count(*) FROM api_tokens").Scan(&n); err != nil || n != 1 {
			t.Errorf("%d rows, %v; want the valid one", n, err)
		}
	}},
}
