package storage

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Scope is what a token may do.
type Scope string

// The scopes of a token.
const (
	ScopeAdmin  Scope = "admin"  // everything
	ScopeRead   Scope = "read"   // read every study, its trials and the metrics
	ScopeWorker Scope = "worker" // read one study and run its trials (ask, report, heartbeat, tell)
)

// Valid reports whether s is one of the scopes.
func (s Scope) Valid() bool { return s == ScopeAdmin || s == ScopeRead || s == ScopeWorker }

// Token is a stored token, never its secret.
type Token struct {
	ID         int64
	Name       string
	Scope      Scope
	StudyID    int64  // the study of a worker token; 0 otherwise
	StudyName  string // its name, "" otherwise
	CreatedAt  time.Time
	RevokedAt  time.Time // zero while valid
	LastUsedAt time.Time // zero if never used
}

var (
	// ErrUnauthenticated is a token that is unknown, malformed or revoked:
	// one error for the three, so that a caller does not learn which.
	ErrUnauthenticated = errors.New("invalid token: unknown, malformed or revoked")
	// ErrTokenExists is a token name in use (by a valid or a revoked
	// token: revoked tokens keep their names).
	ErrTokenExists = errors.New("a token with that name already exists")
	// ErrBadTokenInput is what CreateToken and RevokeToken were given that
	// can never be stored: a bad name, an unknown scope, a study where the
	// scope takes none, no study for a worker token. The error's text says
	// which.
	ErrBadTokenInput = errors.New("bad token input")
)

// tokenInputError is an error that is ErrBadTokenInput, with its own text.
type tokenInputError struct{ msg string }

func (e *tokenInputError) Error() string        { return e.msg }
func (e *tokenInputError) Is(target error) bool { return target == ErrBadTokenInput }

func badToken(format string, a ...any) error { return &tokenInputError{fmt.Sprintf(format, a...)} }

// MaxTokenNameLength bounds a token's name, in characters.
const MaxTokenNameLength = 100

// CheckTokenName reports whether name can name a token: non-empty, at most
// MaxTokenNameLength characters, printable (valid UTF-8, no control or
// format characters, no space but U+0020), neither starting nor ending with
// a space. The error is ErrBadTokenInput.
func CheckTokenName(name string) error {
	switch n := utf8.RuneCountInString(name); {
	case name == "":
		return badToken("token name: must not be empty")
	case !utf8.ValidString(name):
		return badToken("token name: must be valid UTF-8")
	case n > MaxTokenNameLength:
		return badToken("token name: %d characters is longer than the limit of %d", n, MaxTokenNameLength)
	case strings.IndexFunc(name, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0:
		return badToken("token name: must be printable (no control characters, tabs or newlines)")
	case name[0] == ' ' || name[len(name)-1] == ' ':
		return badToken("token name: must not start or end with a space")
	}
	return nil
}

// ParseScope returns the scope named s: admin, read or worker. Another is
// ErrBadTokenInput.
func ParseScope(s string) (Scope, error) {
	if sc := Scope(s); sc.Valid() {
		return sc, nil
	}
	return "", badToken("scope %q: want admin, read or worker", s)
}

// checkTokenStudy reports whether studyID goes with scope: a worker token
// needs a study, the others take none.
func checkTokenStudy(scope Scope, studyID int64) error {
	switch {
	case !scope.Valid():
		_, err := ParseScope(string(scope))
		return err
	case scope == ScopeWorker && studyID <= 0:
		return badToken("a worker token needs a study: it runs the trials of that study only")
	case scope != ScopeWorker && studyID != 0:
		article := "a"
		if scope == ScopeAdmin {
			article = "an"
		}
		return badToken("%s %s token serves every study and takes none: only a worker token serves one study", article, scope)
	}
	return nil
}

// The form of a token: tokenPrefix, the public id, "_", the secret, the
// two in lower-case hexadecimal (URL-safe, and one word to a terminal's
// double click).
const (
	tokenPrefix   = "ftk_"
	publicIDBytes = 8
	secretBytes   = 32
	publicIDLen   = 2 * publicIDBytes
	secretLen     = 2 * secretBytes
	tokenLen      = len(tokenPrefix) + publicIDLen + 1 + secretLen
)

// newTokenParts draws a public id and a secret from crypto/rand.
func newTokenParts() (publicID, secret string) {
	b := make([]byte, publicIDBytes+secretBytes)
	rand.Read(b) // never returns an error (Go ≥ 1.24): it crashes the program instead
	return hex.EncodeToString(b[:publicIDBytes]), hex.EncodeToString(b[publicIDBytes:])
}

// parseToken splits a token into its public id and secret; ok is false
// unless it has exactly the form CreateToken gives.
func parseToken(token string) (publicID, secret string, ok bool) {
	if len(token) != tokenLen || !strings.HasPrefix(token, tokenPrefix) || token[len(tokenPrefix)+publicIDLen] != '_' {
		return "", "", false
	}
	publicID = token[len(tokenPrefix) : len(tokenPrefix)+publicIDLen]
	secret = token[len(tokenPrefix)+publicIDLen+1:]
	return publicID, secret, lowerHex(publicID) && lowerHex(secret)
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// hashSecret is what is stored of a secret.
func hashSecret(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// tokenColumns are the columns of a Token, read from api_tokens t left
// joined with studies st.
const tokenColumns = `t.id, t.name, t.scope, t.study_id, st.name, t.created_at, t.revoked_at, t.last_used_at`

const tokensFrom = ` FROM api_tokens t LEFT JOIN studies st ON st.id = t.study_id`

// scanToken scans tokenColumns, then more.
func scanToken(row interface{ Scan(...any) error }, more ...any) (*Token, error) {
	tok := &Token{}
	var studyID sql.NullInt64
	var studyName sql.NullString
	var created, revoked, used nullTime
	if err := row.Scan(append([]any{&tok.ID, &tok.Name, &tok.Scope, &studyID, &studyName, &created, &revoked, &used}, more...)...); err != nil {
		return nil, err
	}
	tok.StudyID, tok.StudyName = studyID.Int64, studyName.String
	tok.CreatedAt, tok.RevokedAt, tok.LastUsedAt = created.T, revoked.T, used.T
	return tok, nil
}

// CreateToken stores a new token and returns it, with the token itself,
// which is shown once (only the SHA-256 of its secret is stored):
// "ftk_" + public id + "_" + secret, both drawn from crypto/rand (64 and 256
// bits), in lower-case hexadecimal. A worker token needs studyID, the
// study it serves, and goes with it (DeleteStudy); the other scopes take
// none (0). A name in use, by a valid or a revoked token, is
// ErrTokenExists; a study that does not exist is ErrNotFound; a bad name
// (CheckTokenName), an unknown scope or a study that does not go with the
// scope is ErrBadTokenInput.
func (s *Store) CreateToken(ctx context.Context, name string, scope Scope, studyID int64) (string, *Token, error) {
	what := fmt.Sprintf("create token %q", name)
	bad := CheckTokenName(name)
	if bad == nil {
		bad = checkTokenStudy(scope, studyID)
	}
	if bad != nil {
		return "", nil, fmt.Errorf("%s: %w", what, bad)
	}
	var study any // NULL
	if studyID != 0 {
		study = studyID
	}
	var token string
	var tok *Token
	err := s.retry(ctx, what, func(ctx context.Context) error {
		return s.inTx(ctx, func(tx *sql.Tx) error {
			// A public id is 64 random bits: one that is taken is all but
			// impossible, and another is drawn.
			for range 3 {
				publicID, secret := newTokenParts()
				var id int64
				err := tx.QueryRowContext(ctx, s.d.q(`INSERT INTO api_tokens (name, public_id, secret_hash, scope, study_id, created_at)
					VALUES ($1, $2, $3, $4, $5, %[1]s) ON CONFLICT DO NOTHING RETURNING id`),
					name, publicID, hashSecret(secret), string(scope), study).Scan(&id)
				switch {
				case errors.Is(err, sql.ErrNoRows):
					// The name or the public id is taken. A concurrent
					// insert of the name has committed by now: the insert
					// waited for it (PostgreSQL) or came after it (SQLite).
					var n int
					if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM api_tokens WHERE name = $1`, name).Scan(&n); err != nil {
						return err
					}
					if n > 0 {
						return ErrTokenExists
					}
					continue
				case err != nil && s.d.foreignKey(err):
					return fmt.Errorf("study id %d: %w", studyID, ErrNotFound)
				case err != nil:
					return err
				}
				token = tokenPrefix + publicID + "_" + secret
				tok, err = scanToken(tx.QueryRowContext(ctx, `SELECT `+tokenColumns+tokensFrom+` WHERE t.id = $1`, id))
				return err
			}
			return errors.New("three random public ids in a row were taken")
		})
	})
	if err != nil {
		return "", nil, err
	}
	return token, tok, nil
}

// lastUseEvery is how often Authenticate records a token's last use, at
// most.
const lastUseEvery = time.Minute

// Authenticate returns the valid token whose secret is given, the whole
// token as CreateToken returned it; ErrUnauthenticated when it is unknown,
// malformed or revoked, and the error does not say which. The row is found
// by the token's public id, and the SHA-256 of its secret compared in
// constant time with the one stored. The token's last use is recorded (in
// the database's clock) when the one recorded is a minute old or more: a
// token used on every request is written about once a minute, not on every
// request.
func (s *Store) Authenticate(ctx context.Context, secret string) (*Token, error) {
	publicID, key, ok := parseToken(secret)
	hash := hashSecret(key)
	if !ok {
		return nil, ErrUnauthenticated
	}
	const what = "authenticate a token"
	var tok *Token
	var stored []byte
	var stale bool
	err := s.retry(ctx, what, func(ctx context.Context) error {
		var err error
		tok, err = scanToken(s.db.QueryRowContext(ctx, `SELECT `+tokenColumns+`, t.secret_hash,
			CASE WHEN t.last_used_at IS NULL OR `+s.d.older("t.last_used_at", 2)+` THEN 1 ELSE 0 END`+tokensFrom+`
			WHERE t.public_id = $1`, publicID, lastUseEvery.Seconds()), &stored, &stale)
		return err
	})
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, ErrUnauthenticated
	case err != nil:
		return nil, err
	}
	if subtle.ConstantTimeCompare(hash, stored) != 1 || !tok.RevokedAt.IsZero() {
		return nil, ErrUnauthenticated
	}
	if !stale {
		return tok, nil
	}
	// Fenced: of the requests that found the last use stale at once, one
	// writes.
	err = s.retry(ctx, fmt.Sprintf("record the use of token %q", tok.Name), func(ctx context.Context) error {
		var used nullTime
		err := s.db.QueryRowContext(ctx, s.d.q(`UPDATE api_tokens SET last_used_at = %[1]s
			WHERE id = $1 AND revoked_at IS NULL AND (last_used_at IS NULL OR `+s.d.older("last_used_at", 2)+`)
			RETURNING last_used_at`), tok.ID, lastUseEvery.Seconds()).Scan(&used)
		switch {
		case errors.Is(err, sql.ErrNoRows): // another request recorded it
			return nil
		case err != nil:
			return err
		}
		tok.LastUsedAt = used.T
		return nil
	})
	if err != nil {
		return nil, err
	}
	return tok, nil
}

// Tokens returns every token, revoked ones included, by name (in the order
// of the names' bytes, on every backend).
func (s *Store) Tokens(ctx context.Context) ([]Token, error) {
	var out []Token
	err := s.retry(ctx, "list tokens", func(ctx context.Context) error {
		out = out[:0]
		rows, err := s.db.QueryContext(ctx, `SELECT `+tokenColumns+tokensFrom)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			tok, err := scanToken(rows)
			if err != nil {
				return err
			}
			out = append(out, *tok)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b Token) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// RevokeToken revokes the token called name: Authenticate refuses it from
// then on. Revoking a revoked token changes nothing and is not an error; a
// name no token has is ErrNotFound (a name that CheckTokenName refuses is
// ErrBadTokenInput). A revoked token stays listed, and keeps its name.
func (s *Store) RevokeToken(ctx context.Context, name string) error {
	what := fmt.Sprintf("revoke token %q", name)
	if err := CheckTokenName(name); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return s.retry(ctx, what, func(ctx context.Context) error {
		res, err := s.db.ExecContext(ctx, s.d.q(`UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, %[1]s) WHERE name = $1`), name)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrNotFound
		}
		return nil
	})
}
