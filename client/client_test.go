package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/floodtune/floodtune/client"
)

const asked = `{"status":"leased","trial":{"number":4,"params":{"flood_level":0.25},"flood_level":0.25,"flood_method":"flood","seed":9,"baseline":false,"attempt":0},"lease":{"token":"L","deadline":"2030-01-01T00:00:00Z","seconds":30}}`

// closedURL is the URL of a port that refuses connections.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

func newClient(t *testing.T, url string) *client.Client {
	t.Helper()
	c, err := client.New(url, "ftk_x")
	if err != nil {
		t.Fatal(err)
	}
	c.RetryFor = 5 * time.Second
	return c
}

func TestACallThatCannotReachOneReplicaGoesToTheNext(t *testing.T) {
	t.Parallel()
	var asks atomic.Int32
	live := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer ftk_x" {
			t.Errorf("Authorization %q", r.Header.Get("Authorization"))
		}
		asks.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, asked)
	}))
	defer live.Close()
	c := newClient(t, closedURL(t)+", "+live.URL)
	for range 3 {
		tr, err := c.Ask(t.Context(), "s", "w")
		if err != nil || tr.Number != 4 || tr.FloodLevel != 0.25 || tr.Token != "L" {
			t.Fatalf("Ask through the second replica: %+v, %v", tr, err)
		}
	}
	if asks.Load() != 3 {
		t.Errorf("the live replica saw %d asks, want 3", asks.Load())
	}
}

func TestAnAskWhoseAnswerWasLostIsNotSentAgain(t *testing.T) {
	t.Parallel()
	var asks atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asks.Add(1)
		// The request arrived; the answer is lost.
		hj, _ := w.(http.Hijacker)
		conn, _, _ := hj.Hijack()
		conn.Close()
	}))
	defer srv.Close()
	c := newClient(t, srv.URL)
	if _, err := c.Ask(t.Context(), "s", ""); err == nil {
		t.Fatal("Ask with its answer lost: no error")
	}
	if asks.Load() != 1 {
		t.Errorf("the server saw %d asks, want 1: a second ask would lease a second trial", asks.Load())
	}
}

func TestIdempotentCallsAreRetriedOn503AndLostAnswers(t *testing.T) {
	t.Parallel()
	var reports, tells atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasSuffix(r.URL.Path, "/ask"):
			fmt.Fprint(w, asked)
		case strings.HasSuffix(r.URL.Path, "/report"):
			if !strings.Contains(string(body), `"value":null`) {
				t.Errorf("a NaN report sent as %s", body)
			}
			if reports.Add(1) == 1 {
				w.WriteHeader(503)
				fmt.Fprint(w, `{"error":{"code":"unavailable","message":"try again"}}`)
				return
			}
			fmt.Fprint(w, `{"prune":true,"lease":{"token":"L","deadline":"2030-01-01T00:00:10Z","seconds":30}}`)
		case strings.HasSuffix(r.URL.Path, "/tell"):
			if tells.Add(1) == 1 {
				hj, _ := w.(http.Hijacker)
				conn, _, _ := hj.Hijack()
				conn.Close()
				return
			}
			fmt.Fprint(w, `{"number":4,"state":"complete","value":0.5,"params":{},"intermediate":{},"seed":9,"baseline":false,"attempt":0,"user_attrs":{}}`)
		}
	}))
	defer srv.Close()
	c := newClient(t, srv.URL)
	ctx := t.Context()
	tr, err := c.Ask(ctx, "s", "")
	if err != nil {
		t.Fatal(err)
	}
	prune, err := tr.Report(ctx, 1, math.NaN())
	if err != nil || !prune || reports.Load() != 2 || tr.Deadline.Second() != 10 {
		t.Errorf("report after a 503: prune %v, %v, %d reports, deadline %v", prune, err, reports.Load(), tr.Deadline)
	}
	rec, err := tr.Tell(ctx, 0.5, nil)
	if err != nil || rec.State != "complete" || tells.Load() != 2 {
		t.Errorf("tell after a lost answer: %+v, %v, %d tells", rec, err, tells.Load())
	}
}

func TestAskWaitsWhileTrialsRunAndStopsWhenTheBudgetIsSpent(t *testing.T) {
	t.Parallel()
	var asks atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if asks.Add(1) <= 2 {
			fmt.Fprint(w, `{"status":"wait","retry_after":0.1}`)
			return
		}
		fmt.Fprint(w, `{"status":"exhausted"}`)
	}))
	defer srv.Close()
	c := newClient(t, srv.URL)
	_, err := c.Ask(t.Context(), "s", "")
	if !errors.Is(err, client.ErrExhausted) || asks.Load() != 3 {
		t.Errorf("Ask: %v after %d asks, want ErrExhausted after 3", err, asks.Load())
	}
	ctx, cancel := context.WithCancel(t.Context())
	asks.Store(-1000) // waits for ever
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	if _, err := c.Ask(ctx, "s", ""); !errors.Is(err, context.Canceled) {
		t.Errorf("Ask whose context ends while it waits: %v", err)
	}
}

func TestErrorsMatchTheirSentinels(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if strings.HasSuffix(r.URL.Path, "/ask") {
			fmt.Fprint(w, asked)
			return
		}
		if strings.Contains(r.URL.Path, "/trials/") {
			w.WriteHeader(409)
			fmt.Fprint(w, `{"error":{"code":"lease_lost","message":"reaped"}}`)
			return
		}
		w.WriteHeader(404)
		fmt.Fprint(w, `{"error":{"code":"not_found","message":"no study named \"x\""}}`)
	}))
	defer srv.Close()
	c := newClient(t, srv.URL)
	if _, err := c.Study(t.Context(), "x"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("Study of none: %v", err)
	}
	tr, err := c.Ask(t.Context(), "s", "")
	if err != nil {
		t.Fatal(err)
	}
	var ae *client.Error
	if err := tr.Heartbeat(t.Context()); !errors.Is(err, client.ErrLeaseLost) || !errors.As(err, &ae) || ae.Status != 409 || ae.Message != "reaped" {
		t.Errorf("Heartbeat of a reaped trial: %v", err)
	}
	for _, bad := range []string{"ftp://x", "http://", "localhost:8321", "http://a,", "http://a?x=1"} {
		if _, err := client.New(bad, ""); err == nil {
			t.Errorf("New(%q): no error", bad)
		}
	}
}
