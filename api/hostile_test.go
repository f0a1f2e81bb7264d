package api_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/floodtune/floodtune/api"
	"github.com/floodtune/floodtune/storage"
)

// Requests that are malformed, hostile or not allowed each get their 4xx
// with a JSON error body (never a 500), and change nothing.
func TestBadRequestsGetTheirStatus(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(s *api.Server) { s.MaxBody = 4096 })
	worker := e.createStudy(t, "target", 5, "none")
	e.createStudy(t, "other", 5, "none")
	otherWorker := e.token(t, "other-worker-2", storage.ScopeWorker, "other")
	revoked := e.token(t, "revoked", storage.ScopeAdmin, "")
	if err := e.st.RevokeToken(t.Context(), "revoked"); err != nil {
		t.Fatal(err)
	}
	// A trial leased to the worker token, and its lease.
	status, body, _ := e.do(t, "POST", "/v1/studies/target/ask", worker, `{"worker":"w1"}`, false)
	var asked struct {
		Trial struct{ Number int }   `json:"trial"`
		Lease struct{ Token string } `json:"lease"`
	}
	if status != 200 || json.Unmarshal([]byte(body), &asked) != nil {
		t.Fatalf("ask: %d %s", status, body)
	}
	lease := asked.Lease.Token
	n := asked.Trial.Number
	trial := fmt.Sprintf("/v1/studies/target/trials/%d", n)
	// Another lease of the same study, held by another client.
	status, body, _ = e.do(t, "POST", "/v1/studies/target/ask", worker, `{"worker":"w2"}`, false)
	var asked2 struct {
		Lease struct{ Token string } `json:"lease"`
	}
	if status != 200 || json.Unmarshal([]byte(body), &asked2) != nil {
		t.Fatalf("second ask: %d %s", status, body)
	}
	forged := strings.Replace(lease, lease[:4], "AAAA", 1)
	huge := `{"lease":"` + lease + `","step":1,"value":0.5,"pad":"` + strings.Repeat("x", 5000) + `"}`

	for _, c := range []struct {
		name, method, path, token, body string
		status                          int
		code                            string
	}{
		{"no token", "GET", "/v1/studies", "", "", 401, "unauthenticated"},
		{"a token that was never made", "GET", "/v1/studies", "ftk_0123456789abcdef_" + strings.Repeat("0", 64), "", 401, "unauthenticated"},
		{"a malformed token", "GET", "/v1/studies", "not-a-token", "", 401, "unauthenticated"},
		{"a revoked token", "GET", "/v1/studies", revoked, "", 401, "unauthenticated"},
		{"a token with a bad scheme", "GET", "/v1/studies", "Basic:" + e.admin, "", 401, "unauthenticated"},
		{"a read token creating a study", "POST", "/v1/studies", e.read, `{"name":"x","spec":{}}`, 403, "forbidden"},
		{"a worker token creating a study", "POST", "/v1/studies", worker, `{"name":"x","spec":{}}`, 403, "forbidden"},
		{"a read token deleting a study", "DELETE", "/v1/studies/target", e.read, "", 403, "forbidden"},
		{"a worker token deleting its study", "DELETE", "/v1/studies/target", worker, "", 403, "forbidden"},
		{"a read token asking", "POST", "/v1/studies/target/ask", e.read, `{}`, 403, "forbidden"},
		{"another study's token asking", "POST", "/v1/studies/target/ask", otherWorker, `{}`, 403, "forbidden"},
		{"another study's token reading", "GET", "/v1/studies/target", otherWorker, "", 403, "forbidden"},
		{"a worker token probing a study that does not exist", "GET", "/v1/studies/nosuch", worker, "", 403, "forbidden"},
		{"another study's token reporting with a stolen lease", "POST", trial + "/report", otherWorker, `{"lease":"` + lease + `","step":1,"value":0.5}`, 403, "forbidden"},
		{"a report under another client's lease", "POST", trial + "/report", worker, `{"lease":"` + asked2.Lease.Token + `","step":1,"value":0.5}`, 409, "lease_lost"},
		{"a tell under a forged lease", "POST", trial + "/tell", worker, `{"lease":"` + forged + `","state":"complete","value":1}`, 409, "lease_lost"},
		{"a lease that ask never gave", "POST", trial + "/report", worker, `{"lease":"abc","step":1,"value":0.5}`, 400, "bad_request"},
		{"a report for a trial that does not exist", "POST", "/v1/studies/target/trials/999/report", worker, `{"lease":"` + lease + `","step":1,"value":0.5}`, 404, "not_found"},
		{"a step of the wrong type", "POST", trial + "/report", worker, `{"lease":"` + lease + `","step":"one","value":0.5}`, 400, "bad_request"},
		{"a negative step", "POST", trial + "/report", worker, `{"lease":"` + lease + `","step":-1,"value":0.5}`, 400, "bad_request"},
		{"a fractional step", "POST", trial + "/report", worker, `{"lease":"` + lease + `","step":1.5,"value":0.5}`, 400, "bad_request"},
		{"a value that is a string", "POST", trial + "/report", worker, `{"lease":"` + lease + `","step":1,"value":"0.5"}`, 400, "bad_request"},
		{"a report without its value", "POST", trial + "/report", worker, `{"lease":"` + lease + `","step":1}`, 400, "bad_request"},
		{"a bare NaN", "POST", trial + "/report", worker, `{"lease":"` + lease + `","step":1,"value":NaN}`, 400, "bad_request"},
		{"an unknown field", "POST", trial + "/report", worker, `{"lease":"` + lease + `","step":1,"value":0.5,"epoch":1}`, 400, "bad_request"},
		{"two JSON objects", "POST", trial + "/heartbeat", worker, `{"lease":"` + lease + `"}{"lease":"x"}`, 400, "bad_request"},
		{"a JSON array", "POST", trial + "/heartbeat", worker, `["` + lease + `"]`, 400, "bad_request"},
		{"truncated JSON", "POST", trial + "/heartbeat", worker, `{"lease":"` + lease, 400, "bad_request"},
		{"an empty body", "POST", trial + "/heartbeat", worker, "", 400, "bad_request"},
		{"a body over the limit", "POST", trial + "/report", worker, huge, 413, "too_large"},
		{"a tell with an unknown state", "POST", trial + "/tell", worker, `{"lease":"` + lease + `","state":"done","value":1}`, 400, "bad_request"},
		{"a complete tell without a value", "POST", trial + "/tell", worker, `{"lease":"` + lease + `","state":"complete"}`, 400, "bad_request"},
		{"attributes that are not strings", "POST", trial + "/tell", worker, `{"lease":"` + lease + `","state":"complete","value":1,"attrs":{"a":1}}`, 400, "bad_request"},
		{"an attribute with an empty key", "POST", trial + "/tell", worker, `{"lease":"` + lease + `","state":"complete","value":1,"attrs":{"":"x"}}`, 400, "bad_request"},
		{"a worker label with a newline", "POST", "/v1/studies/target/ask", worker, `{"worker":"a\nb"}`, 400, "bad_request"},
		{"a trial number that is not a number", "GET", "/v1/studies/target/trials/zero", worker, "", 400, "bad_request"},
		{"a trial number with a sign", "GET", "/v1/studies/target/trials/+1", worker, "", 400, "bad_request"},
		{"a trial number with leading zeros", "GET", "/v1/studies/target/trials/01", worker, "", 400, "bad_request"},
		{"a negative trial number", "GET", "/v1/studies/target/trials/-1", worker, "", 400, "bad_request"},
		{"a page too large", "GET", "/v1/studies/target/trials?limit=100000", worker, "", 400, "bad_request"},
		{"an unknown state filter", "GET", "/v1/studies/target/trials?state=sleeping", worker, "", 400, "bad_request"},
		{"an unknown query parameter", "GET", "/v1/studies/target/trials?where=1", worker, "", 400, "bad_request"},
		{"an escaped slash in a study name, looked up as a name", "GET", "/v1/studies/target%2F..%2Fother", e.admin, "", 404, "not_found"},
		{"a dot-dot path out of the API", "GET", "/v1/studies/target/../../../etc/passwd", e.admin, "", 404, "not_found"},
		{"a path outside the API", "GET", "/etc/passwd", e.admin, "", 404, "not_found"},
		{"a study that does not exist", "GET", "/v1/studies/nosuch", e.admin, "", 404, "not_found"},
		{"a method the path does not take", "PUT", "/v1/studies/target", e.admin, `{}`, 405, "method_not_allowed"},
		{"a study with a name already taken", "POST", "/v1/studies", e.admin, `{"name":"target","spec":"trainer: external\nsearch: {trials: 5}\nspace: {flood_level: {type: float, low: 0, high: 1}}"}`, 409, "exists"},
		{"a spec that is not a spec", "POST", "/v1/studies", e.admin, `{"name":"new","spec":{"dataset":{"name":"nosuch"}}}`, 400, "bad_request"},
		{"a spec that is a number", "POST", "/v1/studies", e.admin, `{"name":"new","spec":3}`, 400, "bad_request"},
		{"a study name with a control character", "POST", "/v1/studies", e.admin, `{"name":"a\u0007b","spec":{}}`, 400, "bad_request"},
		{"a study without a spec", "POST", "/v1/studies", e.admin, `{"name":"new"}`, 400, "bad_request"},
	} {
		t.Run(c.name, func(t *testing.T) {
			token := c.token
			var body any
			if c.body != "" {
				body = c.body
			}
			if strings.HasPrefix(token, "Basic:") {
				status, resp := e.doRaw(t, c.method, c.path, "Basic "+strings.TrimPrefix(token, "Basic:"), body)
				checkError(t, status, resp, c.status, c.code)
				return
			}
			status, resp, _ := e.do(t, c.method, c.path, token, body, true)
			checkError(t, status, resp, c.status, c.code)
		})
	}
	// Nothing of the above changed the study: its two leased trials still
	// run, unreported.
	status, body, _ = e.do(t, "GET", "/v1/studies/target/trials?state=running", e.admin, nil, false)
	var page struct {
		Trials []struct {
			Intermediate map[string]any `json:"intermediate"`
		} `json:"trials"`
	}
	if status != 200 || json.Unmarshal([]byte(body), &page) != nil || len(page.Trials) != 2 {
		t.Fatalf("running trials: %d %s", status, body)
	}
	for _, tr := range page.Trials {
		if len(tr.Intermediate) != 0 {
			t.Errorf("a refused request recorded values: %v", tr.Intermediate)
		}
	}
}

// checkError checks an error answer's status and JSON body.
func checkError(t *testing.T, status int, body string, wantStatus int, wantCode string) {
	t.Helper()
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Errorf("status %d with a body that is not a JSON error: %q", status, body)
		return
	}
	if status != wantStatus || e.Error.Code != wantCode || e.Error.Message == "" {
		t.Errorf("status %d, code %q (%s); want %d %s", status, e.Error.Code, e.Error.Message, wantStatus, wantCode)
	}
	if strings.Contains(body, "goroutine ") || strings.Contains(body, ".go:") {
		t.Errorf("the body shows the server's code: %s", body)
	}
}
