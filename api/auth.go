package api

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"strings"

	"github.com/floodtune/floodtune/storage"
)

// authenticate returns the token of r's Authorization header.
func (s *Server) authenticate(r *http.Request) (*storage.Token, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, fail(http.StatusUnauthorized, CodeUnauthenticated, "this needs a token: send Authorization: Bearer <token> (floodtune token create makes one)")
	}
	scheme, secret, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || secret == "" {
		return nil, fail(http.StatusUnauthorized, CodeUnauthenticated, "the Authorization header must be Bearer <token>")
	}
	secret = strings.TrimSpace(secret)
	key := sha256.Sum256([]byte(secret))
	if tok, ok := s.tokens.get(key); ok {
		return tok, nil
	}
	tok, err := s.Store.Authenticate(r.Context(), secret)
	if errors.Is(err, storage.ErrUnauthenticated) {
		return nil, fail(http.StatusUnauthorized, CodeUnauthenticated, "the token is unknown or revoked")
	}
	if err != nil {
		return nil, err
	}
	s.tokens.put(key, tok, tokenTTL)
	return tok, nil
}

type tokenKey struct{}

// tokenOf returns the request's authenticated token.
func tokenOf(ctx context.Context) *storage.Token {
	t, _ := ctx.Value(tokenKey{}).(*storage.Token)
	return t
}

// access is what an endpoint needs of a token.
type access int

const (
	anyToken  access = iota // any valid token
	readAll                 // read or admin
	readStudy               // read, admin, or the study's worker
	workStudy               // admin, or the study's worker
	adminOnly               // admin
)

// allowed reports whether tok may do what a needs, on the study studyID
// (0 when no study is concerned).
func allowed(tok *storage.Token, a access, studyID int64) bool {
	switch tok.Scope {
	case storage.ScopeAdmin:
		return true
	case storage.ScopeRead:
		return a == anyToken || a == readAll || a == readStudy
	case storage.ScopeWorker:
		return a == anyToken || ((a == readStudy || a == workStudy) && studyID == tok.StudyID)
	}
	return false
}

// forbidden is the answer to a token whose scope does not allow a.
func forbidden(tok *storage.Token, a access) error {
	switch {
	case tok.Scope == storage.ScopeWorker && (a == readStudy || a == workStudy):
		return fail(http.StatusForbidden, CodeForbidden, "token %q works on study %q only", tok.Name, tok.StudyName)
	case a == adminOnly:
		return fail(http.StatusForbidden, CodeForbidden, "token %q has scope %s; this needs an admin token", tok.Name, tok.Scope)
	case a == workStudy:
		return fail(http.StatusForbidden, CodeForbidden, "token %q has scope %s; running trials needs a worker token of the study, or an admin token", tok.Name, tok.Scope)
	}
	return fail(http.StatusForbidden, CodeForbidden, "token %q has scope %s, which does not allow this", tok.Name, tok.Scope)
}
