// Package client is the Go client of floodtune's HTTP API (floodtune
// serve): a worker that asks for trials, reports their epochs and tells
// their outcomes through the service, without the database's credentials,
// and a reader of studies and trials.
//
//	c, err := client.New("https://floodtune.example:8321", os.Getenv("FLOODTUNE_TOKEN"))
//	for {
//		t, err := c.Ask(ctx, "noise20", "gpu-3")
//		if errors.Is(err, client.ErrExhausted) {
//			break // the budget is spent
//		}
//		... train with t.FloodLevel, t.Params, t.Seed; after each epoch:
//		prune, err := t.Report(ctx, epoch, valAcc)
//		...
//		err = t.Tell(ctx, valAcc, map[string]string{"test_acc": "0.91"})
//	}
//
// Calls that the service makes idempotent (reads, report, heartbeat, tell)
// are retried when the server cannot be reached or answers 503, for up to
// RetryFor; an ask is retried only when it surely did not reach the
// server, because a lost answer to an ask leaves a leased trial that only
// its lease's end gives back.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Errors of the client, matched with errors.Is.
var (
	// ErrExhausted is Ask's error when the study's budget is spent.
	ErrExhausted = errors.New("the study's trial budget is spent")
	// ErrLeaseLost is matched by the error of a call about a trial that no
	// longer runs under its lease (it was reaped, or told already).
	ErrLeaseLost = errors.New("the trial is no longer running under this lease")
	// ErrNotFound is matched by the error of a call about a study or trial
	// that does not exist.
	ErrNotFound = errors.New("not found")
)

// Error is an answer of the service other than 2xx.
type Error struct {
	Status  int    // the HTTP status
	Code    string // the API's error code (bad_request, lease_lost, ...)
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("floodtune API: %d %s: %s", e.Status, e.Code, e.Message)
}

// Is makes a lease_lost answer match ErrLeaseLost and a 404 ErrNotFound.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrLeaseLost:
		return e.Code == "lease_lost"
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	}
	return false
}

// Client calls one floodtune service. Its methods are safe for concurrent
// use.
type Client struct {
	bases []*url.URL // the replicas, tried in turn
	next  atomic.Int64
	token string
	http  *http.Client
	// RetryFor bounds the retries of a call (default 30 s; 0 after New:
	// none).
	RetryFor time.Duration
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient makes the client send its requests with hc.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.http = hc } }

// WithTLSConfig makes the client use cfg for HTTPS (a private CA's pool in
// RootCAs, for example).
func WithTLSConfig(cfg *tls.Config) Option {
	return func(c *Client) {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = cfg
		c.http = &http.Client{Transport: tr, Timeout: c.http.Timeout}
	}
}

// New returns a client of the service at baseURL (http or https, with no
// path or with the path the service is mounted under) that authenticates
// with token. baseURL may list several replicas of the service, separated
// by commas: a call that cannot reach one goes to the next (the service
// holds no state between requests, so a trial leased through one replica
// is reported and told through any other).
func New(baseURL, token string, opts ...Option) (*Client, error) {
	c := &Client{token: token, RetryFor: 30 * time.Second, http: &http.Client{Timeout: 70 * time.Second}}
	for _, raw := range strings.Split(baseURL, ",") {
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("client: the server URL %q: want http://host:port or https://host:port", raw)
		}
		u.Path = strings.TrimSuffix(u.Path, "/")
		c.bases = append(c.bases, u)
	}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// call sends method path with body (nil: none) and decodes the answer into
// out (nil: discarded). retry says whether the call may be sent again after
// a failure that may have reached the server.
func (c *Client) call(ctx context.Context, method, path string, body, out any, retry bool) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return fmt.Errorf("client: encode the request: %w", err)
		}
	}
	deadline := time.Now().Add(c.RetryFor)
	wait := 50 * time.Millisecond
	for failed := 0; ; {
		i := c.next.Load()
		err := c.once(ctx, c.bases[int(i)%len(c.bases)], method, path, payload, out)
		if err == nil {
			return nil
		}
		again := false
		var ae *Error
		switch {
		case errors.As(err, &ae):
			again = ae.Status == http.StatusServiceUnavailable
		case ctx.Err() != nil:
			return err
		default:
			again = retry || notSent(err)
			// This replica is unreachable: the next call goes to the next.
			c.next.CompareAndSwap(i, i+1)
			failed++
			if again && len(c.bases) > 1 && failed%len(c.bases) != 0 {
				continue // another replica at once
			}
		}
		if !again || time.Now().Add(wait).After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// notSent reports whether err says that the request never reached the
// server (the connection was refused).
func notSent(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED)
}

func (c *Client) once(ctx context.Context, base *url.URL, method, path string, payload []byte, out any) error {
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, base.String()+path, body)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("client: %s %s: read the answer: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		var eb struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		e := &Error{Status: resp.StatusCode}
		if json.Unmarshal(raw, &eb) == nil && eb.Error.Code != "" {
			e.Code, e.Message = eb.Error.Code, eb.Error.Message
		} else {
			e.Code, e.Message = "http", strings.TrimSpace(string(raw))
		}
		return e
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("client: %s %s: decode the answer: %w", method, path, err)
	}
	return nil
}

// Number is a float64 that reads JSON null as NaN and writes NaN and the
// infinities as null.
type Number float64

// UnmarshalJSON reads a number, or null as NaN.
func (n *Number) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*n = Number(math.NaN())
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*n = Number(f)
	return nil
}

// MarshalJSON writes the number, or null for NaN and the infinities.
func (n Number) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return json.Marshal(f)
}

// Study is a study as the service shows it.
type Study struct {
	Name      string          `json:"name"`
	Direction string          `json:"direction"`
	Budget    int             `json:"budget"`
	Seed      int64           `json:"seed"`
	Created   time.Time       `json:"created"`
	Counts    map[string]int  `json:"counts"`
	Counted   int             `json:"counted"`
	Spec      json.RawMessage `json:"spec"`
	Best      *Trial          `json:"best"`
	Baseline  *Trial          `json:"baseline"`
}

// Trial is a trial as the service shows it.
type Trial struct {
	Number       int               `json:"number"`
	State        string            `json:"state"`
	Value        Number            `json:"value"` // NaN when the trial has none
	Params       map[string]any    `json:"params"`
	Intermediate map[string]Number `json:"intermediate"`
	Seed         int64             `json:"seed"`
	Baseline     bool              `json:"baseline"`
	Attempt      int               `json:"attempt"`
	RetryOf      *int              `json:"retry_of"`
	FailReason   string            `json:"fail_reason"`
	Worker       string            `json:"worker"`
	Started      *time.Time        `json:"started"`
	Completed    *time.Time        `json:"completed"`
	UserAttrs    map[string]string `json:"user_attrs"`
}

func studyPath(name string) string { return "/v1/studies/" + url.PathEscape(name) }

// Studies lists the studies the token may read.
func (c *Client) Studies(ctx context.Context) ([]Study, error) {
	var out struct {
		Studies []Study `json:"studies"`
	}
	if err := c.call(ctx, http.MethodGet, "/v1/studies", nil, &out, true); err != nil {
		return nil, err
	}
	return out.Studies, nil
}

// Study reads a study: its progress, best trial and baseline.
func (c *Client) Study(ctx context.Context, name string) (*Study, error) {
	var out Study
	if err := c.call(ctx, http.MethodGet, studyPath(name), nil, &out, true); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateStudy creates a study from spec: a value that encodes as the spec's
// JSON object (a map, a json.RawMessage), or a string of YAML.
func (c *Client) CreateStudy(ctx context.Context, name string, spec any) (*Study, error) {
	var out Study
	body := map[string]any{"name": name, "spec": spec}
	if err := c.call(ctx, http.MethodPost, "/v1/studies", body, &out, false); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteStudy deletes a study and its trials.
func (c *Client) DeleteStudy(ctx context.Context, name string) error {
	return c.call(ctx, http.MethodDelete, studyPath(name), nil, nil, false)
}

// Trials reads every trial of a study (in state, if not ""), page by page.
func (c *Client) Trials(ctx context.Context, name, state string) ([]Trial, error) {
	var all []Trial
	after := -1
	for {
		q := url.Values{"after": {strconv.Itoa(after)}, "limit": {"1000"}}
		if state != "" {
			q.Set("state", state)
		}
		var page struct {
			Trials    []Trial `json:"trials"`
			NextAfter *int    `json:"next_after"`
		}
		if err := c.call(ctx, http.MethodGet, studyPath(name)+"/trials?"+q.Encode(), nil, &page, true); err != nil {
			return nil, err
		}
		all = append(all, page.Trials...)
		if page.NextAfter == nil {
			return all, nil
		}
		after = *page.NextAfter
	}
}

// Trial reads one trial.
func (c *Client) Trial(ctx context.Context, name string, number int) (*Trial, error) {
	var out Trial
	if err := c.call(ctx, http.MethodGet, fmt.Sprintf("%s/trials/%d", studyPath(name), number), nil, &out, true); err != nil {
		return nil, err
	}
	return &out, nil
}

// Leased is a trial leased to this client by Ask: what to train, and the
// calls about it. Renew its lease (Report or Heartbeat) before Deadline.
type Leased struct {
	Study       string
	Number      int
	Params      map[string]any
	FloodLevel  float64
	FloodMethod string // "flood" or "iflood"
	Seed        int64
	Baseline    bool
	Attempt     int
	// Config is the built-in trainer's configuration of the trial (nil for
	// a study of an external trainer).
	Config json.RawMessage
	// Token is the lease's token; Deadline when it runs out unless
	// renewed; LeaseSeconds its length.
	Token        string
	Deadline     time.Time
	LeaseSeconds float64

	c    *Client
	last float64
}

type leaseJSON struct {
	Token    string    `json:"token"`
	Deadline time.Time `json:"deadline"`
	Seconds  float64   `json:"seconds"`
}

// Ask leases a trial of the study for a worker called worker (may be "");
// ErrExhausted when the budget is spent and every trial has ended. While the
// budget is spent but trials still run elsewhere (one may yet fail and be
// retried), it waits as the service says and asks again, until ctx ends.
func (c *Client) Ask(ctx context.Context, study, worker string) (*Leased, error) {
	for {
		t, wait, err := c.ask(ctx, study, worker)
		if err != nil || wait == 0 {
			return t, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// ask asks once; a positive duration says to wait and ask again.
func (c *Client) ask(ctx context.Context, study, worker string) (*Leased, time.Duration, error) {
	var body any
	if worker != "" {
		body = map[string]string{"worker": worker}
	}
	var out struct {
		RetryAfter float64 `json:"retry_after"`
		Status     string  `json:"status"`
		Trial      *struct {
			Number      int             `json:"number"`
			Params      map[string]any  `json:"params"`
			FloodLevel  float64         `json:"flood_level"`
			FloodMethod string          `json:"flood_method"`
			Seed        int64           `json:"seed"`
			Baseline    bool            `json:"baseline"`
			Attempt     int             `json:"attempt"`
			Config      json.RawMessage `json:"config"`
		} `json:"trial"`
		Lease *leaseJSON `json:"lease"`
	}
	if err := c.call(ctx, http.MethodPost, studyPath(study)+"/ask", body, &out, false); err != nil {
		return nil, 0, err
	}
	switch {
	case out.Status == "exhausted":
		return nil, 0, fmt.Errorf("study %q: %w", study, ErrExhausted)
	case out.Status == "wait":
		return nil, min(max(time.Duration(out.RetryAfter*float64(time.Second)), 100*time.Millisecond), time.Minute), nil
	case out.Status != "leased" || out.Trial == nil || out.Lease == nil:
		return nil, 0, fmt.Errorf("client: ask: an answer with status %q and no trial", out.Status)
	}
	t := out.Trial
	return &Leased{Study: study, Number: t.Number, Params: t.Params, FloodLevel: t.FloodLevel, FloodMethod: t.FloodMethod,
		Seed: t.Seed, Baseline: t.Baseline, Attempt: t.Attempt, Config: t.Config,
		Token: out.Lease.Token, Deadline: out.Lease.Deadline, LeaseSeconds: out.Lease.Seconds, c: c, last: math.NaN()}, 0, nil
}

func (t *Leased) path(op string) string {
	return fmt.Sprintf("%s/trials/%d/%s", studyPath(t.Study), t.Number, op)
}

func (t *Leased) renewed(l leaseJSON) {
	t.Deadline, t.LeaseSeconds = l.Deadline, l.Seconds
}

// Report records the value after step (an epoch) and renews the lease; it
// returns true when the study's pruner says to stop (then Prune).
func (t *Leased) Report(ctx context.Context, step int, value float64) (bool, error) {
	var out struct {
		Prune bool      `json:"prune"`
		Lease leaseJSON `json:"lease"`
	}
	body := map[string]any{"lease": t.Token, "step": step, "value": Number(value)}
	if err := t.c.call(ctx, http.MethodPost, t.path("report"), body, &out, true); err != nil {
		return false, err
	}
	t.last = value
	t.renewed(out.Lease)
	return out.Prune, nil
}

// Heartbeat renews the lease.
func (t *Leased) Heartbeat(ctx context.Context) error {
	var out struct {
		Lease leaseJSON `json:"lease"`
	}
	if err := t.c.call(ctx, http.MethodPost, t.path("heartbeat"), map[string]any{"lease": t.Token}, &out, true); err != nil {
		return err
	}
	t.renewed(out.Lease)
	return nil
}

func (t *Leased) tell(ctx context.Context, body map[string]any, attrs map[string]string) (*Trial, error) {
	body["lease"] = t.Token
	if len(attrs) > 0 {
		body["attrs"] = attrs
	}
	var out Trial
	if err := t.c.call(ctx, http.MethodPost, t.path("tell"), body, &out, true); err != nil {
		return nil, err
	}
	return &out, nil
}

// Tell completes the trial with its value and user attributes; a NaN
// value fails it instead.
func (t *Leased) Tell(ctx context.Context, value float64, attrs map[string]string) (*Trial, error) {
	return t.tell(ctx, map[string]any{"state": "complete", "value": Number(value)}, attrs)
}

// Prune ends the trial as pruned, at the value reported last.
func (t *Leased) Prune(ctx context.Context, attrs map[string]string) (*Trial, error) {
	body := map[string]any{"state": "pruned"}
	if !math.IsNaN(t.last) {
		body["value"] = Number(t.last)
	}
	return t.tell(ctx, body, attrs)
}

// Release gives the trial back, to be run again by the next Ask: what a
// worker that stops does with the trials it holds.
func (t *Leased) Release(ctx context.Context) (*Trial, error) {
	var out Trial
	if err := t.c.call(ctx, http.MethodPost, t.path("release"), map[string]any{"lease": t.Token}, &out, true); err != nil {
		return nil, err
	}
	return &out, nil
}

// Fail ends the trial as failed, with reason.
func (t *Leased) Fail(ctx context.Context, reason string, attrs map[string]string) (*Trial, error) {
	return t.tell(ctx, map[string]any{"state": "fail", "reason": reason}, attrs)
}
