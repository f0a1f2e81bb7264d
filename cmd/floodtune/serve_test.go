package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestServeExportsTheStudiesOfTheStorage(t *testing.T) {
	t.Parallel()
	url, spec := newStudyEnv(t, smallSpec)
	mustRun(t, "study", "create", "served", "--spec", spec, "--storage", url)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--addr", "", "--metrics-addr", addr, "--storage", url}, &out, &errOut)
	}()
	var body string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		break
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("serve exited %d: %s", code, errOut.String())
	}
	for _, want := range []string{`floodtune_study_trials{state="waiting",study="served"} 1`, `floodtune_study_budget_trials{study="served"} 4`, "floodtune_storage_up 1"} {
		if !strings.Contains(body, want) {
			t.Errorf("the metrics lack %q:\n%s", want, body)
		}
	}
}

func TestServeRefusesBadAddressesAndPlainHTTPBeyondLoopback(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--addr", "", "--metrics-addr", ""}, "both off"},
		{[]string{"serve", "--metrics-addr", "nonsense"}, "--metrics-addr"},
		{[]string{"serve", "--addr", "nonsense"}, "--addr"},
		{[]string{"serve", "--addr", "0.0.0.0:8321", "--metrics-addr", ""}, "--tls-cert"},
		{[]string{"serve", "--addr", "192.0.2.1:8321", "--metrics-addr", ""}, "--insecure"},
		{[]string{"serve", "--tls-cert", "server.crt", "--metrics-addr", ""}, "go together"},
		{[]string{"serve", "--tls-cert", "/nonexistent.crt", "--tls-key", "/nonexistent.key", "--metrics-addr", ""}, "/nonexistent.crt"},
		{[]string{"serve", "--lease", "1s", "--metrics-addr", ""}, "--lease"},
		{[]string{"serve", "--max-retries", "-1", "--metrics-addr", ""}, "--max-retries"},
		{[]string{"serve", "--max-body", "10", "--metrics-addr", ""}, "--max-body"},
	} {
		code, out, errOut := runCLI(t, append(c.args, "--storage", "sqlite::memory:")...)
		if code != 2 || !strings.Contains(errOut, c.want) || strings.Contains(errOut, "goroutine") || out != "" {
			t.Errorf("%v: exit %d, stderr %q, want 2 and %q", c.args, code, errOut, c.want)
		}
	}
}

// lockedBuffer is a bytes.Buffer that a running command may write while
// the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestServeWarnsWhenNoTokenCanReachTheAPI(t *testing.T) {
	t.Parallel()
	url, spec := newStudyEnv(t, smallSpec)
	mustRun(t, "study", "create", "served", "--spec", spec, "--storage", url)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--metrics-addr", "", "--storage", url}, &out, &errOut)
	}()
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(errOut.String(), "API on http://127.0.0.1:"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("serve does not say where it listens:\n%s", errOut.String())
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("serve exited %d: %s", code, errOut.String())
	}
	if !strings.Contains(errOut.String(), "no valid token") || !strings.Contains(errOut.String(), "floodtune token create") {
		t.Errorf("serve on a storage without tokens did not warn:\n%s", errOut.String())
	}
}
