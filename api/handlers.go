package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/floodtune/floodtune/search"
	"github.com/floodtune/floodtune/storage"
)

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	if err := s.Store.Ping(r.Context()); err != nil {
		s.log().Warn("not ready: the storage does not answer", "err", err.Error())
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": "the storage does not answer"})
		return nil
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

func (s *Server) openapi(w http.ResponseWriter, _ *http.Request) error {
	w.Header().Set("Content-Type", "application/yaml")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(OpenAPI)
	return nil
}

// study loads the study of r's path, once the token may do a with it. The
// worker calls take a handle this replica loaded in the last studyTTL (a
// study's spec never changes); the others read the study afresh.
func (s *Server) study(r *http.Request, a access) (*search.Study, error) {
	name := r.PathValue("study")
	if err := storage.CheckName(name); err != nil {
		return nil, badRequest("study name: %s", oneLine(err.Error()))
	}
	tok := tokenOf(r.Context())
	if tok.Scope == storage.ScopeWorker && name != tok.StudyName {
		// Before the lookup: a worker token learns nothing of other
		// studies, not even whether they exist.
		return nil, forbidden(tok, a)
	}
	st, cached := (*search.Study)(nil), false
	if a == workStudy {
		st, cached = s.studies.get(name)
	}
	if !cached {
		var err error
		st, err = search.Load(r.Context(), s.Store, name)
		if errors.Is(err, storage.ErrNotFound) {
			return nil, fail(http.StatusNotFound, CodeNotFound, "no study named %q", name)
		}
		if err != nil {
			return nil, err
		}
		if a == workStudy {
			s.studies.put(name, st, studyTTL)
		}
	}
	if !allowed(tok, a, st.ID()) {
		return nil, forbidden(tok, a)
	}
	return st, nil
}

// trialNumber is the trial number of r's path.
func trialNumber(r *http.Request) (int, error) {
	raw := r.PathValue("number")
	n, err := strconv.Atoi(raw)
	if err != nil || n < 0 || strconv.Itoa(n) != raw {
		return 0, badRequest("trial number %q: want a whole number from 0", raw)
	}
	return n, nil
}

// trialJSON is a trial as the API shows it.
type trialJSON struct {
	Number       int               `json:"number"`
	State        storage.State     `json:"state"`
	Value        number            `json:"value"`
	Params       map[string]any    `json:"params"`
	Intermediate map[string]number `json:"intermediate"`
	Seed         int64             `json:"seed"`
	Baseline     bool              `json:"baseline"`
	Attempt      int               `json:"attempt"`
	RetryOf      *int              `json:"retry_of,omitempty"`
	FailReason   string            `json:"fail_reason,omitempty"`
	Worker       string            `json:"worker,omitempty"`
	Started      *time.Time        `json:"started,omitempty"`
	Completed    *time.Time        `json:"completed,omitempty"`
	UserAttrs    map[string]string `json:"user_attrs"`
}

func newTrialJSON(t *search.TrialRecord) trialJSON {
	out := trialJSON{Number: t.Number, State: t.State, Value: number(t.Value), Params: t.Params,
		Intermediate: make(map[string]number, len(t.Intermediate)), Seed: t.Seed, Baseline: t.Baseline,
		Attempt: t.Attempt, FailReason: t.FailReason, Worker: t.Worker, UserAttrs: t.UserAttrs}
	if out.Params == nil {
		out.Params = map[string]any{}
	}
	if out.UserAttrs == nil {
		out.UserAttrs = map[string]string{}
	}
	for step, v := range t.Intermediate {
		out.Intermediate[strconv.Itoa(step)] = number(v)
	}
	if t.Attempt > 0 {
		n := t.RetryOf
		out.RetryOf = &n
	}
	if !t.Started.IsZero() {
		ts := t.Started.UTC()
		out.Started = &ts
	}
	if !t.Completed.IsZero() {
		ts := t.Completed.UTC()
		out.Completed = &ts
	}
	return out
}

// studyJSON is a study as the API shows it.
type studyJSON struct {
	Name      string                `json:"name"`
	Direction storage.Direction     `json:"direction"`
	Budget    int                   `json:"budget"`
	Seed      int64                 `json:"seed"`
	Created   time.Time             `json:"created"`
	Counts    map[storage.State]int `json:"counts"`
	Counted   int                   `json:"counted"`
	Spec      json.RawMessage       `json:"spec"`
	Best      *trialJSON            `json:"best,omitempty"`
	Baseline  *trialJSON            `json:"baseline,omitempty"`
}

// describe reads a study's progress; with its handle st, also its best
// trial and its baseline.
func (s *Server) describe(ctx context.Context, stored *storage.Study, st *search.Study) (*studyJSON, error) {
	counts, counted, err := s.Store.Counts(ctx, stored.ID)
	if err != nil {
		return nil, err
	}
	spec := stored.Spec
	if len(spec) == 0 {
		spec = json.RawMessage("{}")
	}
	out := &studyJSON{Name: stored.Name, Direction: stored.Direction, Budget: stored.Budget, Seed: stored.Seed,
		Created: stored.CreatedAt.UTC(), Counts: counts, Counted: counted, Spec: spec}
	if out.Counts == nil {
		out.Counts = map[storage.State]int{}
	}
	if st == nil {
		return out, nil
	}
	for _, f := range []struct {
		read func(context.Context) (*search.TrialRecord, error)
		into **trialJSON
	}{{st.Best, &out.Best}, {st.Baseline, &out.Baseline}} {
		t, err := f.read(ctx)
		switch {
		case err == nil:
			j := newTrialJSON(t)
			*f.into = &j
		case !errors.Is(err, storage.ErrNotFound):
			return nil, err
		}
	}
	return out, nil
}

func (s *Server) listStudies(w http.ResponseWriter, r *http.Request) error {
	tok := tokenOf(r.Context())
	stored, err := s.Store.Studies(r.Context())
	if err != nil {
		return err
	}
	out := []*studyJSON{}
	for _, ss := range stored {
		if !allowed(tok, readStudy, ss.ID) {
			continue
		}
		d, err := s.describe(r.Context(), ss, nil)
		if err != nil {
			return err
		}
		out = append(out, d)
	}
	writeJSON(w, http.StatusOK, map[string]any{"studies": out})
	return nil
}

// createStudyRequest is the body of POST /v1/studies.
type createStudyRequest struct {
	Name string          `json:"name"`
	Spec json.RawMessage `json:"spec"`
}

func (s *Server) createStudy(w http.ResponseWriter, r *http.Request) error {
	var req createStudyRequest
	if err := decode(w, r, s.maxBody(), &req, false); err != nil {
		return err
	}
	if err := storage.CheckName(req.Name); err != nil {
		return badRequest("name: %s", oneLine(err.Error()))
	}
	raw := []byte(req.Spec)
	if len(raw) == 0 || string(raw) == "null" {
		return badRequest("spec: required, as a JSON object or a string of YAML")
	}
	switch raw[0] {
	case '"':
		var text string
		if err := json.Unmarshal(raw, &text); err != nil {
			return badRequest("spec: %s", oneLine(err.Error()))
		}
		raw = []byte(text)
	case '{':
	default:
		return badRequest("spec: want a JSON object or a string of YAML")
	}
	spec, err := search.ParseSpec(raw)
	if err != nil {
		return badRequest("spec: %s", oneLine(strings.TrimPrefix(err.Error(), "spec: ")))
	}
	st, err := search.Create(r.Context(), s.Store, req.Name, spec)
	if errors.Is(err, storage.ErrStudyExists) {
		return fail(http.StatusConflict, CodeExists, "a study named %q exists already: choose another name, or delete it first", req.Name)
	}
	if err != nil {
		return err
	}
	d, err := s.describe(r.Context(), st.Stored(), st)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/studies/"+pathEscape(req.Name))
	writeJSON(w, http.StatusCreated, d)
	return nil
}

// pathEscape escapes a study name for a path segment.
func pathEscape(name string) string {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func (s *Server) getStudy(w http.ResponseWriter, r *http.Request) error {
	st, err := s.study(r, readStudy)
	if err != nil {
		return err
	}
	d, err := s.describe(r.Context(), st.Stored(), st)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

func (s *Server) deleteStudy(w http.ResponseWriter, r *http.Request) error {
	st, err := s.study(r, adminOnly)
	if err != nil {
		return err
	}
	if err := s.Store.DeleteStudy(r.Context(), st.ID()); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return fail(http.StatusNotFound, CodeNotFound, "no study named %q", st.Name())
		}
		return err
	}
	// Its worker tokens went with it.
	s.studies.drop(func(name string, _ *search.Study) bool { return name == st.Name() })
	s.tokens.drop(func(_ [32]byte, t *storage.Token) bool { return t.StudyID == st.ID() })
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// Bounds of a page of trials.
const (
	defaultPage = 100
	maxPage     = 1000
)

func (s *Server) listTrials(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	for k := range q {
		if k != "state" && k != "after" && k != "limit" {
			return badRequest("unknown query parameter %q (state, after and limit are known)", k)
		}
	}
	var state storage.State
	if v := q.Get("state"); v != "" {
		state = storage.State(v)
		if !slices.Contains([]storage.State{storage.Waiting, storage.Running, storage.Complete, storage.Pruned, storage.Fail}, state) {
			return badRequest("state %q: want waiting, running, complete, pruned or fail", v)
		}
	}
	after, limit := -1, defaultPage
	if v := q.Get("after"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < -1 {
			return badRequest("after %q: want a trial number (or -1 for the first page)", v)
		}
		after = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPage {
			return badRequest("limit %q: want a whole number from 1 to %d", v, maxPage)
		}
		limit = n
	}
	st, err := s.study(r, readStudy)
	if err != nil {
		return err
	}
	trials, err := st.Trials(r.Context())
	if err != nil {
		return err
	}
	page := []trialJSON{}
	var next *int
	for i := range trials {
		t := &trials[i]
		if t.Number <= after || (state != "" && t.State != state) {
			continue
		}
		if len(page) == limit {
			n := page[len(page)-1].Number
			next = &n
			break
		}
		page = append(page, newTrialJSON(t))
	}
	body := map[string]any{"trials": page}
	if next != nil {
		body["next_after"] = *next
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

func (s *Server) getTrial(w http.ResponseWriter, r *http.Request) error {
	n, err := trialNumber(r)
	if err != nil {
		return err
	}
	st, err := s.study(r, readStudy)
	if err != nil {
		return err
	}
	t, err := st.Trial(r.Context(), n)
	if errors.Is(err, storage.ErrNotFound) {
		return fail(http.StatusNotFound, CodeNotFound, "study %q has no trial %d", st.Name(), n)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, newTrialJSON(t))
	return nil
}

// A lease token is random bytes and the worker's label; the trial runs
// under the label and a hash of the token.
const leaseBytes = 24

// workerLabel is what a client may call its worker.
var workerLabel = regexp.MustCompile(`^[A-Za-z0-9._:@/-]{0,100}$`)

// newLease returns a lease token for a worker labelled label.
func newLease(label string) string {
	b := make([]byte, leaseBytes)
	rand.Read(b) // never fails (Go ≥ 1.24)
	return base64.RawURLEncoding.EncodeToString(b) + "~" + label
}

// leaseWorker is the worker name a lease token's trial runs under; false
// if the token is malformed.
func leaseWorker(token string) (string, bool) {
	random, label, ok := strings.Cut(token, "~")
	if !ok || len(random) != base64.RawURLEncoding.EncodedLen(leaseBytes) || !workerLabel.MatchString(label) {
		return "", false
	}
	if _, err := base64.RawURLEncoding.DecodeString(random); err != nil {
		return "", false
	}
	sum := sha256.Sum256([]byte(token))
	if label == "" {
		label = "api"
	}
	return label + "#" + hex.EncodeToString(sum[:12]), true
}

// leaseJSON is a lease as the API shows it.
type leaseJSON struct {
	Token    string    `json:"token"`
	Deadline time.Time `json:"deadline"`
	Seconds  float64   `json:"seconds"`
}

func (s *Server) leaseOf(token string, renewed time.Time) leaseJSON {
	return leaseJSON{Token: token, Deadline: renewed.Add(s.lease()).UTC(), Seconds: s.lease().Seconds()}
}

type askRequest struct {
	Worker string `json:"worker"`
}

type askedTrial struct {
	Number      int              `json:"number"`
	Params      map[string]any   `json:"params"`
	FloodLevel  float64          `json:"flood_level"`
	FloodMethod string           `json:"flood_method"`
	Seed        int64            `json:"seed"`
	Baseline    bool             `json:"baseline"`
	Attempt     int              `json:"attempt"`
	Config      *json.RawMessage `json:"config,omitempty"`
}

type askResponse struct {
	Status     string      `json:"status"`
	Trial      *askedTrial `json:"trial,omitempty"`
	Lease      *leaseJSON  `json:"lease,omitempty"`
	RetryAfter float64     `json:"retry_after,omitempty"`
}

// Answers of ask.
const (
	AskLeased    = "leased"
	AskExhausted = "exhausted" // the budget is spent and every trial ended
	AskWait      = "wait"      // the budget is spent, but trials still run and may be retried
)

// retryAfter is how long a worker told to wait waits before it asks again:
// a quarter of the lease, from half a second to five.
func (s *Server) retryAfter() time.Duration {
	return min(max(s.lease()/4, 500*time.Millisecond), 5*time.Second)
}

func (s *Server) ask(w http.ResponseWriter, r *http.Request) error {
	var req askRequest
	if err := decode(w, r, s.maxBody(), &req, true); err != nil {
		return err
	}
	if !workerLabel.MatchString(req.Worker) {
		return badRequest("worker %q: at most 100 letters, digits and . _ : @ / -", req.Worker)
	}
	st, err := s.study(r, workStudy)
	if err != nil {
		return err
	}
	label := req.Worker
	if label == "" {
		label = "api-" + tokenOf(r.Context()).Name
		if !workerLabel.MatchString(label) {
			label = "api"
		}
	}
	token := newLease(label)
	worker, _ := leaseWorker(token)
	t, err := st.Ask(r.Context(), search.AskOptions{Worker: worker, Heartbeat: -1, Lease: s.lease(), MaxRetries: s.MaxRetries})
	switch {
	case errors.Is(err, search.ErrBudgetExhausted):
		// Spent; but a trial still running may yet be reaped and retried,
		// and a waiting one leased: until none is left, say when to ask
		// again rather than send the worker home.
		counts, _, err := st.Counts(r.Context())
		if err != nil {
			return err
		}
		if counts[storage.Running]+counts[storage.Waiting] > 0 {
			writeJSON(w, http.StatusOK, askResponse{Status: AskWait, RetryAfter: s.retryAfter().Seconds()})
			return nil
		}
		writeJSON(w, http.StatusOK, askResponse{Status: AskExhausted})
		return nil
	case errors.Is(err, search.ErrProposalFailed):
		// The trial was failed with the reason; say why, and let the
		// client ask again.
		return &httpError{status: http.StatusServiceUnavailable, code: CodeUnavailable, message: oneLine(err.Error()) + "; ask again", cause: err}
	case err != nil:
		return err
	}
	at := askedTrial{Number: t.Number, Params: t.Params, FloodLevel: t.FloodLevel(), FloodMethod: string(t.FloodMethod()),
		Seed: t.Seed, Baseline: t.Baseline, Attempt: t.Attempt}
	if at.FloodMethod == "" {
		at.FloodMethod = "flood"
	}
	if !st.Spec().External() {
		raw, err := json.Marshal(t.Config)
		if err != nil {
			return err
		}
		cfg := json.RawMessage(raw)
		at.Config = &cfg
	}
	l := s.leaseOf(token, t.Renewed())
	writeJSON(w, http.StatusOK, askResponse{Status: AskLeased, Trial: &at, Lease: &l})
	return nil
}

// leased takes up the trial of r's path under the lease token.
func (s *Server) leased(r *http.Request, token string) (*search.Study, *search.Trial, string, error) {
	n, err := trialNumber(r)
	if err != nil {
		return nil, nil, "", err
	}
	if token == "" {
		return nil, nil, "", badRequest("lease: required (the token ask gave)")
	}
	worker, ok := leaseWorker(token)
	if !ok {
		return nil, nil, "", badRequest("lease: not a lease token that ask gave")
	}
	st, err := s.study(r, workStudy)
	if err != nil {
		return nil, nil, "", err
	}
	t, err := st.Leased(r.Context(), n, worker)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil, "", fail(http.StatusNotFound, CodeNotFound, "study %q has no trial %d", st.Name(), n)
	}
	if err != nil {
		return st, nil, worker, err
	}
	return st, t, worker, nil
}

type reportRequest struct {
	Lease string   `json:"lease"`
	Step  *int     `json:"step"`
	Value *float64 `json:"value"` // nil: null (NaN) or missing, which raw tells apart
}

// MaxStep bounds a reported step.
const MaxStep = 1_000_000

func (s *Server) report(w http.ResponseWriter, r *http.Request) error {
	var raw map[string]json.RawMessage
	var req reportRequest
	if err := decodeWithKeys(w, r, s.maxBody(), &req, &raw); err != nil {
		return err
	}
	if req.Step == nil || *req.Step < 0 || *req.Step > MaxStep {
		return badRequest("step: required, a whole number from 0 to %d", MaxStep)
	}
	if _, ok := raw["value"]; !ok {
		return badRequest("value: required (a number, or null for NaN)")
	}
	v := math.NaN()
	if req.Value != nil {
		v = *req.Value
	}
	_, t, _, err := s.leased(r, req.Lease)
	if err != nil {
		return err
	}
	prune := false
	switch err := t.Report(r.Context(), *req.Step, v); {
	case errors.Is(err, search.ErrPruned):
		prune = true
	case err != nil:
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"prune": prune, "lease": s.leaseOf(req.Lease, t.Renewed())})
	return nil
}

type heartbeatRequest struct {
	Lease string `json:"lease"`
}

func (s *Server) heartbeat(w http.ResponseWriter, r *http.Request) error {
	var req heartbeatRequest
	if err := decode(w, r, s.maxBody(), &req, false); err != nil {
		return err
	}
	_, t, _, err := s.leased(r, req.Lease)
	if err != nil {
		return err
	}
	if err := t.Heartbeat(r.Context()); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"lease": s.leaseOf(req.Lease, t.Renewed())})
	return nil
}

type tellRequest struct {
	Lease  string            `json:"lease"`
	State  storage.State     `json:"state"`
	Value  *float64          `json:"value"`
	Reason string            `json:"reason"`
	Attrs  map[string]string `json:"attrs"`
}

// Bounds of a tell's attributes.
const (
	maxAttrs      = 200
	maxAttrKey    = 200
	maxReasonSize = 10_000
)

func (s *Server) tell(w http.ResponseWriter, r *http.Request) error {
	var req tellRequest
	var raw map[string]json.RawMessage
	if err := decodeWithKeys(w, r, s.maxBody(), &req, &raw); err != nil {
		return err
	}
	switch req.State {
	case storage.Complete:
		if _, ok := raw["value"]; !ok {
			return badRequest("value: a complete trial needs its value (null, a NaN, fails it)")
		}
		if req.Value == nil {
			nan := math.NaN()
			req.Value = &nan
		}
	case storage.Pruned, storage.Fail:
	default:
		return badRequest("state %q: want complete, pruned or fail", req.State)
	}
	if len(req.Reason) > maxReasonSize {
		return badRequest("reason: %d bytes, more than the limit of %d", len(req.Reason), maxReasonSize)
	}
	if len(req.Attrs) > maxAttrs {
		return badRequest("attrs: %d attributes, more than the limit of %d", len(req.Attrs), maxAttrs)
	}
	for k := range req.Attrs {
		if k == "" || len(k) > maxAttrKey {
			return badRequest("attrs: a key must have 1 to %d bytes", maxAttrKey)
		}
	}
	st, t, worker, err := s.leased(r, req.Lease)
	if errors.Is(err, search.ErrLeaseLost) && st != nil {
		return s.told(w, r, st, worker, req)
	}
	if err != nil {
		return err
	}
	for k, v := range req.Attrs {
		t.Attrs[k] = v
	}
	switch req.State {
	case storage.Complete:
		err = t.Tell(r.Context(), *req.Value)
		if math.IsNaN(*req.Value) && err != nil && !errors.Is(err, search.ErrLeaseLost) && !errors.Is(err, search.ErrStorage) {
			err = nil // recorded as failed, as the trial's record says
		}
	case storage.Pruned:
		var v float64
		if req.Value != nil {
			v = *req.Value
		} else if v, err = lastReport(r, st, t.Number); err != nil {
			return err
		}
		err = t.PruneAt(r.Context(), v)
	case storage.Fail:
		err = t.Fail(r.Context(), errors.New(failReason(req.Reason)))
	}
	if errors.Is(err, search.ErrLeaseLost) {
		return s.told(w, r, st, worker, req)
	}
	if err != nil {
		return err
	}
	return writeTrial(w, r, st, t.Number)
}

// lastReport is the value a trial reported at its highest step; NaN if none.
func lastReport(r *http.Request, st *search.Study, number int) (float64, error) {
	rec, err := st.Trial(r.Context(), number)
	if err != nil {
		return math.NaN(), err
	}
	last, v := -1, math.NaN()
	for step, x := range rec.Intermediate {
		if step > last {
			last, v = step, x
		}
	}
	return v, nil
}

// releaseReason is the reason a released trial is failed with.
const releaseReason = "given back by its worker through the API"

func (s *Server) release(w http.ResponseWriter, r *http.Request) error {
	var req heartbeatRequest
	if err := decode(w, r, s.maxBody(), &req, false); err != nil {
		return err
	}
	st, t, worker, err := s.leased(r, req.Lease)
	if err == nil {
		err = t.ReleaseWith(r.Context(), releaseReason)
	}
	if errors.Is(err, search.ErrLeaseLost) && st != nil {
		// Released already by this lease (a retry after a lost answer)?
		return s.told(w, r, st, worker, tellRequest{State: storage.Fail, Reason: releaseReason})
	}
	if err != nil {
		return err
	}
	return writeTrial(w, r, st, t.Number)
}

// writeTrial answers with the trial numbered n of st, as stored now.
func writeTrial(w http.ResponseWriter, r *http.Request, st *search.Study, n int) error {
	rec, err := st.Trial(r.Context(), n)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, newTrialJSON(rec))
	return nil
}

// failReason is the reason a trial told failed is recorded with.
func failReason(given string) string {
	if given == "" {
		return "failed (its worker gave no reason)"
	}
	return given
}

// told answers a tell whose trial no longer runs under its lease: the same
// answer as the first time when this lease told it so already (a retry
// after a lost answer), else 409.
func (s *Server) told(w http.ResponseWriter, r *http.Request, st *search.Study, worker string, req tellRequest) error {
	n, err := trialNumber(r)
	if err != nil {
		return err
	}
	rec, err := st.Trial(r.Context(), n)
	if err != nil {
		return err
	}
	want := req.State
	if want == storage.Complete && math.IsNaN(*req.Value) {
		want = storage.Fail // as Trial.Tell records a NaN
	}
	same := rec.Worker == worker && rec.State == want
	switch {
	case want == storage.Complete:
		same = same && rec.Value == *req.Value
	case want == storage.Pruned:
		same = same && (req.Value == nil || rec.Value == *req.Value || math.IsNaN(rec.Value) && math.IsNaN(*req.Value))
	case req.State == storage.Fail:
		same = same && rec.FailReason == failReason(req.Reason)
	}
	if !same {
		if rec.Worker == worker && rec.State.Final() {
			return fail(http.StatusConflict, CodeLeaseLost, "trial %d is %s already: its lease ran out and it was reaped, or it was told otherwise", n, rec.State)
		}
		return fail(http.StatusConflict, CodeLeaseLost, "trial %d is not running under this lease", n)
	}
	writeJSON(w, http.StatusOK, newTrialJSON(rec))
	return nil
}

// decodeWithKeys decodes r's body into v, and its keys into raw.
func decodeWithKeys(w http.ResponseWriter, r *http.Request, max int64, v any, raw *map[string]json.RawMessage) error {
	var body json.RawMessage
	if err := decode(w, r, max, &body, false); err != nil {
		return err
	}
	if err := json.Unmarshal(body, raw); err != nil {
		return badRequest("the body must be a JSON object")
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err, max)
	}
	return nil
}
