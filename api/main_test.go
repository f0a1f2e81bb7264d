package api_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/floodtune/floodtune/api"
	"github.com/floodtune/floodtune/internal/pgtest"
	"github.com/floodtune/floodtune/metrics"
	"github.com/floodtune/floodtune/search"
	"github.com/floodtune/floodtune/storage"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// theDoc is the OpenAPI document, loaded and validated once.
var theDoc = sync.OnceValues(func() (*openapi3.T, error) {
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPI)
	if err != nil {
		return nil, err
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("the document is not valid OpenAPI 3: %w", err)
	}
	return doc, nil
})

// conformance is an http.RoundTripper that checks every request and its
// answer against the OpenAPI document: a request the document does not
// allow, or an answer it does not describe (status, content type, body
// schema), fails the test. Requests meant to be bad are sent with
// unchecked set.
type conformance struct {
	t      testing.TB
	router routers.Router
	next   http.RoundTripper
	// unchecked skips the request's own check (hostile requests); the
	// answer is still checked.
	unchecked bool
}

func newConformance(t testing.TB, unchecked bool) *conformance {
	t.Helper()
	doc, err := theDoc()
	if err != nil {
		t.Fatal(err)
	}
	// The document's server is "/": any host.
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &conformance{t: t, router: router, next: http.DefaultTransport, unchecked: unchecked}
}

func (c *conformance) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil {
		reqBody, _ = io.ReadAll(req.Body)
		req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	route, pathParams, routeErr := c.router.FindRoute(req)
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true}
	in := &openapi3filter.RequestValidationInput{Request: req.Clone(req.Context()), PathParams: pathParams, Route: route, Options: opts}
	if reqBody != nil {
		in.Request.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	if !c.unchecked {
		if routeErr != nil {
			c.t.Errorf("%s %s: not in the OpenAPI document: %v", req.Method, req.URL.Path, routeErr)
		} else if err := openapi3filter.ValidateRequest(req.Context(), in); err != nil {
			c.t.Errorf("%s %s: the request does not conform to the OpenAPI document: %v", req.Method, req.URL.Path, err)
		}
		if reqBody != nil {
			req.Body = io.NopCloser(bytes.NewReader(reqBody))
		}
	}
	resp, err := c.next.RoundTrip(req)
	if err != nil || routeErr != nil {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Options: opts}
	out.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(req.Context(), out); err != nil {
		c.t.Errorf("%s %s: the answer %d does not conform to the OpenAPI document: %v\n%s", req.Method, req.URL.Path, resp.StatusCode, err, body)
	}
	return resp, nil
}

// env is a service over a throw-away PostgreSQL database, with a token of
// each scope.
type env struct {
	st    *storage.Store
	srv   *api.Server
	http  *httptest.Server
	log   *bytes.Buffer
	admin string
	read  string
	dbURL string
}

// lockedBuffer is a bytes.Buffer safe for the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Buffer.Write(p)
}

func newEnv(t *testing.T, opts ...func(*api.Server)) *env {
	t.Helper()
	dbURL := pgtest.Database(t)
	st, err := storage.Open(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	logBuf := &lockedBuffer{}
	srv := &api.Server{Store: st, Lease: 30 * time.Second, Logger: slog.New(slog.NewTextHandler(logBuf, nil))}
	for _, o := range opts {
		o(srv)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	e := &env{st: st, srv: srv, http: hs, log: &logBuf.Buffer, dbURL: dbURL}
	e.admin = e.token(t, "admin", storage.ScopeAdmin, "")
	e.read = e.token(t, "reader", storage.ScopeRead, "")
	return e
}

// token makes a token; study names a worker token's study.
func (e *env) token(t *testing.T, name string, scope storage.Scope, study string) string {
	t.Helper()
	var id int64
	if study != "" {
		s, err := e.st.StudyByName(t.Context(), study)
		if err != nil {
			t.Fatal(err)
		}
		id = s.ID
	}
	secret, _, err := e.st.CreateToken(t.Context(), name, scope, id)
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

// do sends a request with a body (nil: none) and token ("" : none), checked
// against the document unless hostile, and returns the status and body.
func (e *env) do(t *testing.T, method, path, token string, body any, hostile bool) (int, string, http.Header) {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		panic(fmt.Sprintf("body %T", body))
	}
	req, err := http.NewRequestWithContext(t.Context(), method, e.http.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	hc := &http.Client{Transport: newConformance(t, hostile)}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func apiDoc() []byte { return api.OpenAPI }

// withMetrics serves the studies' metrics and the API's own on /metrics.
func withMetrics(s *api.Server) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewStudyCollector(search.Stats{Store: s.Store}))
	m, err := metrics.NewAPI(reg)
	if err != nil {
		panic(err)
	}
	s.Gatherer, s.Requests = reg, m
}

// doRaw sends a request with the Authorization header auth as it is, and
// checks only the answer against the document.
func (e *env) doRaw(t *testing.T, method, path, auth string, body any) (int, string) {
	t.Helper()
	var r io.Reader
	if b, ok := body.(string); ok {
		r = strings.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, e.http.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", auth)
	resp, err := (&http.Client{Transport: newConformance(t, true)}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
