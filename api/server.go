package api

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	"github.com/floodtune/floodtune/search"
	"github.com/floodtune/floodtune/storage"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Defaults of a Server.
const (
	DefaultAddr    = "127.0.0.1:8321"
	DefaultMaxBody = 1 << 20
)

// Server is the API's handler over one storage. Its zero-valued fields
// take defaults; Store is required.
type Server struct {
	Store *storage.Store
	// Lease is how long a trial stays leased to a client that stopped
	// renewing it (default search.DefaultLease); MaxRetries how often a
	// trial whose lease ran out is retried (default
	// search.DefaultMaxRetries; negative: never).
	Lease      time.Duration
	MaxRetries int
	// MaxBody bounds a request's body, in bytes (default DefaultMaxBody).
	MaxBody int64
	// Gatherer, if set, is served on /metrics to read tokens.
	Gatherer prometheus.Gatherer
	// Requests, if set, sees every request: its route, method, status and
	// duration.
	Requests RequestObserver
	Logger   *slog.Logger

	studies cache[string, *search.Study]             // handles for the worker calls, by name
	tokens  cache[[sha256.Size]byte, *storage.Token] // authenticated tokens, by their hash
}

// How long a replica trusts what it read: a token revoked, or a study
// deleted, through another replica (or the CLI) takes effect within these.
const (
	tokenTTL = 2 * time.Second
	studyTTL = 10 * time.Second
	// cacheLimit bounds each cache; past it, it starts afresh.
	cacheLimit = 10_000
)

// cache is a map whose entries expire.
type cache[K comparable, V any] struct {
	mu      sync.Mutex
	entries map[K]cacheEntry[V]
}

type cacheEntry[V any] struct {
	v     V
	until time.Time
}

func (c *cache[K, V]) get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok || time.Now().After(e.until) {
		var zero V
		return zero, false
	}
	return e.v, true
}

func (c *cache[K, V]) put(k K, v V, ttl time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries) >= cacheLimit {
		c.entries = map[K]cacheEntry[V]{}
	}
	c.entries[k] = cacheEntry[V]{v, time.Now().Add(ttl)}
}

// drop deletes the entries that match.
func (c *cache[K, V]) drop(match func(K, V) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.entries {
		if match(k, e.v) {
			delete(c.entries, k)
		}
	}
}

// lease returns the lease length.
func (s *Server) lease() time.Duration {
	if s.Lease > 0 {
		return s.Lease
	}
	return search.DefaultLease
}

func (s *Server) maxBody() int64 {
	if s.MaxBody > 0 {
		return s.MaxBody
	}
	return DefaultMaxBody
}

func (s *Server) log() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// route is one path of the API: its handlers by method and what each
// needs of a token.
type route struct {
	pattern string
	name    string // for the metrics: the pattern, bounded
	methods map[string]endpoint
}

type endpoint struct {
	access access
	handle func(w http.ResponseWriter, r *http.Request) error
}

// Handler returns the API's handler.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	open := map[string]bool{"/healthz": true, "/readyz": true}
	for _, rt := range s.routes() {
		mux.Handle(rt.pattern, s.serve(rt, open[rt.pattern]))
	}
	mux.Handle("/", s.serve(route{pattern: "/", name: "other", methods: nil}, true))
	return mux
}

// serve wraps a route: method dispatch, authentication, authorisation of
// the routes that concern no particular study, JSON errors, recovery from
// a panic, metrics.
func (s *Server) serve(rt route, open bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log().Error("panic serving a request", "method", r.Method, "path", r.URL.EscapedPath(), "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				if sw.status == 0 {
					writeError(sw, r, nil, fail(http.StatusInternalServerError, CodeInternal, "internal error; the server's log says more"))
				}
			}
			if s.Requests != nil {
				status := sw.status
				if status == 0 {
					status = http.StatusOK
				}
				s.Requests.ObserveRequest(rt.name, r.Method, status, time.Since(start))
			}
		}()
		if err := s.dispatch(sw, r, rt, open); err != nil {
			writeError(sw, r, s.log(), err)
		}
	})
}

func (s *Server) dispatch(w http.ResponseWriter, r *http.Request, rt route, open bool) error {
	if rt.methods == nil {
		return fail(http.StatusNotFound, CodeNotFound, "no such path: %s (the API is under /v1; /v1/openapi.yaml describes it)", r.URL.EscapedPath())
	}
	ep, ok := rt.methods[r.Method]
	if !ok && r.Method == http.MethodHead {
		ep, ok = rt.methods[http.MethodGet]
	}
	if !ok {
		allow := ""
		for m := range rt.methods {
			if allow != "" {
				allow += ", "
			}
			allow += m
		}
		w.Header().Set("Allow", allow)
		return fail(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "%s does not take %s (it takes %s)", rt.pattern, r.Method, allow)
	}
	if !open {
		tok, err := s.authenticate(r)
		if err != nil {
			return err
		}
		if (ep.access == anyToken || ep.access == readAll || ep.access == adminOnly) && !allowed(tok, ep.access, 0) {
			return forbidden(tok, ep.access)
		}
		r = r.WithContext(context.WithValue(r.Context(), tokenKey{}, tok))
	}
	err := ep.handle(w, r)
	if err != nil && (errors.Is(err, storage.ErrNotFound) || classify(err).status == http.StatusNotFound) {
		// The study may be gone (deleted through another replica): read
		// it afresh next time.
		if name := r.PathValue("study"); name != "" {
			s.studies.drop(func(n string, _ *search.Study) bool { return n == name })
		}
	}
	return err
}

// statusWriter records the status of an answer.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) routes() []route {
	get := func(a access, h func(http.ResponseWriter, *http.Request) error) map[string]endpoint {
		return map[string]endpoint{http.MethodGet: {a, h}}
	}
	post := func(a access, h func(http.ResponseWriter, *http.Request) error) map[string]endpoint {
		return map[string]endpoint{http.MethodPost: {a, h}}
	}
	rs := []route{
		{"/healthz", "healthz", get(anyToken, s.healthz)},
		{"/readyz", "readyz", get(anyToken, s.readyz)},
		{"/v1/openapi.yaml", "openapi", get(anyToken, s.openapi)},
		{"/v1/studies", "studies", map[string]endpoint{
			http.MethodGet:  {anyToken, s.listStudies},
			http.MethodPost: {adminOnly, s.createStudy},
		}},
		{"/v1/studies/{study}", "study", map[string]endpoint{
			http.MethodGet:    {readStudy, s.getStudy},
			http.MethodDelete: {adminOnly, s.deleteStudy},
		}},
		{"/v1/studies/{study}/trials", "trials", get(readStudy, s.listTrials)},
		{"/v1/studies/{study}/trials/{number}", "trial", get(readStudy, s.getTrial)},
		{"/v1/studies/{study}/ask", "ask", post(workStudy, s.ask)},
		{"/v1/studies/{study}/trials/{number}/report", "report", post(workStudy, s.report)},
		{"/v1/studies/{study}/trials/{number}/heartbeat", "heartbeat", post(workStudy, s.heartbeat)},
		{"/v1/studies/{study}/trials/{number}/tell", "tell", post(workStudy, s.tell)},
		{"/v1/studies/{study}/trials/{number}/release", "release", post(workStudy, s.release)},
	}
	if s.Gatherer != nil {
		h := promhttp.HandlerFor(s.Gatherer, promhttp.HandlerOpts{Timeout: 20 * time.Second})
		rs = append(rs, route{"/metrics", "metrics", get(readAll, func(w http.ResponseWriter, r *http.Request) error {
			h.ServeHTTP(w, r)
			return nil
		})})
	}
	return rs
}

// Listen says where and how Run serves.
type Listen struct {
	Addr string // host:port (default DefaultAddr)
	// CertFile and KeyFile, both or neither, serve HTTPS.
	CertFile, KeyFile string
	// Ready, if not nil, receives the address listened on once the server
	// accepts connections.
	Ready chan<- string
}

// Timeouts of the server's connections.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 60 * time.Second
	writeTimeout      = 60 * time.Second
	idleTimeout       = 120 * time.Second
	shutdownTimeout   = 10 * time.Second
)

// Run serves the API as l says until ctx ends, then lets the requests in
// flight finish (for a while).
func (s *Server) Run(ctx context.Context, l Listen) error {
	if s.Store == nil {
		return errors.New("api: the server has no storage")
	}
	if (l.CertFile == "") != (l.KeyFile == "") {
		return errors.New("api: HTTPS needs both a certificate and its key")
	}
	addr := l.Addr
	if addr == "" {
		addr = DefaultAddr
	}
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log().Handler(), slog.LevelWarn),
	}
	if l.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(l.CertFile, l.KeyFile)
		if err != nil {
			return fmt.Errorf("api: load the TLS certificate %s and key %s: %w", l.CertFile, l.KeyFile, err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("api: listen on %s: %w", addr, err)
	}
	if srv.TLSConfig != nil {
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	if l.Ready != nil {
		l.Ready <- ln.Addr().String()
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	reapCtx, stopReaping := context.WithCancel(ctx)
	defer stopReaping()
	go s.reap(reapCtx)
	select {
	case <-ctx.Done():
		shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
		defer cancel()
		_ = srv.Shutdown(shut)
		return nil
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("api: %w", err)
	}
}

// reap fails and retries, every third of a lease until ctx ends, the
// trials whose clients stopped renewing their leases: an ask does it too,
// but while every client trains, none asks. Replicas reap side by side;
// the storage reaps each trial once.
func (s *Server) reap(ctx context.Context) {
	retries := s.MaxRetries
	switch {
	case retries == 0:
		retries = search.DefaultMaxRetries
	case retries < 0:
		retries = 0
	}
	tick := time.NewTicker(s.lease() / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		reaped, err := s.Store.Reap(ctx, s.lease(), retries)
		if err != nil && ctx.Err() == nil {
			s.log().Warn("reap the trials whose lease ran out", "err", err.Error())
		}
		for _, t := range reaped {
			s.log().Warn("reaped a trial whose client stopped renewing its lease", "study_id", t.StudyID, "trial", t.Number, "retried", t.RetryID != 0)
		}
	}
}

// RequestObserver records the API's requests (metrics.API does, as
// Prometheus metrics).
type RequestObserver interface {
	// ObserveRequest records a request to route (a bounded name), its
	// method, status and duration.
	ObserveRequest(route, method string, status int, d time.Duration)
}
