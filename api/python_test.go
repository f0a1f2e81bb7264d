package api_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// validating wraps h: every request it serves and every answer it gives
// are checked against the OpenAPI document; the problems are collected.
type validating struct {
	h        http.Handler
	t        *testing.T
	mu       sync.Mutex
	problems []string
	seen     map[string]int // operation ids served
}

func (v *validating) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	doc, err := theDoc()
	if err != nil {
		v.t.Fatal(err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		v.t.Fatal(err)
	}
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	problem := func(format string, a ...any) {
		v.mu.Lock()
		defer v.mu.Unlock()
		v.problems = append(v.problems, r.Method+" "+r.URL.Path+": "+strings.TrimSpace(fmt.Sprintf(format, a...)))
	}
	route, params, err := router.FindRoute(r)
	if err != nil {
		problem("not in the document: %v", err)
		v.h.ServeHTTP(w, r)
		return
	}
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true}
	in := &openapi3filter.RequestValidationInput{Request: r.Clone(r.Context()), PathParams: params, Route: route, Options: opts}
	in.Request.Body = io.NopCloser(bytes.NewReader(body))
	if err := openapi3filter.ValidateRequest(r.Context(), in); err != nil {
		problem("the request does not conform: %v", err)
	}
	v.mu.Lock()
	v.seen[route.Operation.OperationID]++
	v.mu.Unlock()
	rec := httptest.NewRecorder()
	r.Body = io.NopCloser(bytes.NewReader(body))
	v.h.ServeHTTP(rec, r)
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: rec.Code, Header: rec.Header(), Options: opts}
	out.SetBodyBytes(rec.Body.Bytes())
	if err := openapi3filter.ValidateResponse(r.Context(), out); err != nil {
		problem("the answer %d does not conform: %v", rec.Code, err)
	}
	for k, vs := range rec.Header() {
		w.Header()[k] = vs
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// pythonScript drives clients/python/floodtune_client.py through every
// call a worker and a reader make.
const pythonScript = `
import math, sys
sys.path.insert(0, "../clients/python")
from floodtune_client import Client, LeaseLost
c = Client(sys.argv[1], token=sys.argv[2], retry_for=5)
assert [s["name"] for s in c.studies()] == ["py"], c.studies()
t = c.ask("py", worker="python-check")
assert t.flood_method in ("flood", "iflood", "none"), t.flood_method
assert t.report(1, 0.5) is False
assert t.report(2, float("nan")) is False
t.heartbeat()
rec = t.tell(0.75, attrs={"test_acc": 0.7, "note": "from python"})
assert rec["state"] == "complete" and rec["value"] == 0.75 and rec["user_attrs"]["test_acc"] == "0.7", rec
t2 = c.ask("py")
t2.report(1, 0.1)
t2.prune()
t3 = c.ask("py")
t3.fail("out of memory")
t4 = c.ask("py")
t4.release()
try:
    t4.report(1, 0.2)
    raise SystemExit("a report after the release was accepted")
except LeaseLost:
    pass
t5 = c.ask("py")
with t5:
    t5.report(1, 0.9)
    t5.tell(0.9)
assert c.ask("py") is None
s = c.study("py")
assert s["counted"] == 4 and s["best"]["value"] == 0.9, s
trials = list(c.trials("py"))
assert len(trials) == 5 and [t["state"] for t in c.trials("py", state="pruned")] == ["pruned"], trials
assert c.trial("py", 0)["number"] == 0
print("ok")
`

// The Python client's requests, and the answers they get, conform to the
// OpenAPI document; the client drives every worker call of a study.
func TestThePythonClientSpeaksTheDocumentedAPI(t *testing.T) {
	t.Parallel()
	py, err := exec.LookPath("/usr/bin/python3")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("no /usr/bin/python3: install Debian's python3")
		}
		t.Skip("no /usr/bin/python3")
	}
	e := newEnv(t)
	worker := e.createStudy(t, "py", 4, "none")
	v := &validating{h: e.srv.Handler(), t: t, seen: map[string]int{}}
	hs := httptest.NewServer(v)
	defer hs.Close()
	cmd := exec.Command(py, "-c", pythonScript, hs.URL, worker)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("the Python client: %v\n%s", err, out)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, p := range v.problems {
		t.Error(p)
	}
	for _, op := range []string{"listStudies", "getStudy", "listTrials", "getTrial", "ask", "report", "heartbeat", "tell", "release"} {
		if v.seen[op] == 0 {
			t.Errorf("the Python client never called %s", op)
		}
	}
}
