package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"strings"

	"github.com/floodtune/floodtune/search"
	"github.com/floodtune/floodtune/storage"
)

// Error codes of the API's error bodies (openapi.yaml's Error.code).
const (
	CodeBadRequest       = "bad_request"
	CodeUnauthenticated  = "unauthenticated"
	CodeForbidden        = "forbidden"
	CodeNotFound         = "not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeExists           = "exists"
	CodeLeaseLost        = "lease_lost"
	CodeFinished         = "finished"
	CodeTooLarge         = "too_large"
	CodeUnsupportedMedia = "unsupported_media_type"
	CodeUnavailable      = "unavailable"
	CodeInternal         = "internal"
)

// httpError is an answer other than 2xx: its status, code and message.
type httpError struct {
	status  int
	code    string
	message string
	cause   error // logged for a 5xx, never sent
}

func (e *httpError) Error() string { return e.message }

func fail(status int, code, format string, a ...any) *httpError {
	return &httpError{status: status, code: code, message: fmt.Sprintf(format, a...)}
}

func badRequest(format string, a ...any) *httpError {
	return fail(http.StatusBadRequest, CodeBadRequest, format, a...)
}

// errorBody is the JSON of an error answer.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// classify turns an error of search or storage into an answer. The
// messages of storage failures are not sent: they may name the database.
func classify(err error) *httpError {
	var he *httpError
	switch {
	case errors.As(err, &he):
		return he
	case errors.Is(err, search.ErrLeaseLost), errors.Is(err, storage.ErrNotUpdatable):
		return fail(http.StatusConflict, CodeLeaseLost, "the trial is no longer running under this lease: it was reaped after its lease ran out, or told already")
	case errors.Is(err, search.ErrTrialFinished):
		return fail(http.StatusConflict, CodeFinished, "the trial was told already")
	case errors.Is(err, storage.ErrNotFound):
		return fail(http.StatusNotFound, CodeNotFound, "not found")
	case errors.Is(err, storage.ErrStudyExists):
		return fail(http.StatusConflict, CodeExists, "a study with that name exists already")
	case errors.Is(err, search.ErrBadSpec), errors.Is(err, search.ErrOutsideSpace):
		return &httpError{status: http.StatusBadRequest, code: CodeBadRequest, message: oneLine(err.Error())}
	case errors.Is(err, storage.ErrUnavailable), errors.Is(err, search.ErrStorage):
		return &httpError{status: http.StatusServiceUnavailable, code: CodeUnavailable, message: "the storage does not answer; try again", cause: err}
	}
	return &httpError{status: http.StatusInternalServerError, code: CodeInternal, message: "internal error; the server's log says more", cause: err}
}

// writeError answers with err as a JSON error body, and logs the cause of
// a 5xx.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	he := classify(err)
	if he.status >= 500 && log != nil {
		cause := he.cause
		if cause == nil {
			cause = he
		}
		log.Error("request failed", "method", r.Method, "path", r.URL.EscapedPath(), "status", he.status, "err", cause.Error())
	}
	var body errorBody
	body.Error.Code, body.Error.Message = he.code, he.message
	if he.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="floodtune"`)
	}
	writeJSON(w, he.status, body)
}

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal","message":"the answer could not be encoded"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// decode reads r's body, a JSON object of at most max bytes, strictly into
// v: unknown fields, trailing data and a content type other than JSON are
// refused. An empty body leaves v as it is when optional.
func decode(w http.ResponseWriter, r *http.Request, max int64, v any, optional bool) error {
	if r.ContentLength > max {
		return fail(http.StatusRequestEntityTooLarge, CodeTooLarge, "the body has %d bytes, more than the limit of %d", r.ContentLength, max)
	}
	body := http.MaxBytesReader(w, r.Body, max)
	var first [1]byte
	n, err := io.ReadFull(body, first[:])
	if n == 0 {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return fail(http.StatusRequestEntityTooLarge, CodeTooLarge, "the body is larger than the limit of %d bytes", max)
		}
		if optional {
			return nil
		}
		return badRequest("the request needs a JSON body")
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return fail(http.StatusUnsupportedMediaType, CodeUnsupportedMedia, "the body must be application/json, not %q", ct)
		}
	} else {
		return fail(http.StatusUnsupportedMediaType, CodeUnsupportedMedia, "the body must be application/json: set Content-Type")
	}
	dec := json.NewDecoder(io.MultiReader(strings.NewReader(string(first[:])), body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err, max)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return fail(http.StatusRequestEntityTooLarge, CodeTooLarge, "the body is larger than the limit of %d bytes", max)
		}
		return badRequest("the body must hold one JSON object, and nothing after it")
	}
	return nil
}

// decodeError says what was wrong with a JSON body.
func decodeError(err error, max int64) error {
	var mbe *http.MaxBytesError
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &mbe):
		return fail(http.StatusRequestEntityTooLarge, CodeTooLarge, "the body is larger than the limit of %d bytes", max)
	case errors.As(err, &se):
		return badRequest("the body is not valid JSON (at byte %d): %s", se.Offset, se.Error())
	case errors.As(err, &te):
		if te.Field == "" {
			return badRequest("the body must be a JSON object, not %s", te.Value)
		}
		return badRequest("field %q: want %s, got %s", te.Field, jsonKind(te.Type.Kind().String()), te.Value)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return badRequest("the body ends in the middle of its JSON")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return badRequest("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return badRequest("the body: %s", oneLine(err.Error()))
}

func jsonKind(k string) string {
	switch k {
	case "float64", "float32":
		return "a number"
	case "int", "int64", "int32":
		return "an integer"
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "map", "struct":
		return "an object"
	case "slice":
		return "an array"
	}
	return k
}

// oneLine joins the lines of s.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// number is a float that is JSON null when NaN or infinite.
type number float64

func (n number) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return json.Marshal(f)
}
