package api_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/floodtune/floodtune/api"
	"github.com/floodtune/floodtune/client"
	"github.com/floodtune/floodtune/internal/pgtest"
	"github.com/floodtune/floodtune/storage"
)

// selfSigned writes a certificate for 127.0.0.1 and its key to dir and
// returns their paths and a pool that trusts the certificate.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "floodtune test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, pool
}

// run serves s as l says until the test ends, and returns the address.
func run(t *testing.T, s *api.Server, l api.Listen) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	l.Ready = ready
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case a := <-ready:
		return a
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	return ""
}

func TestTheServiceServesHTTPS(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	certFile, keyFile, pool := selfSigned(t, t.TempDir())
	addr := run(t, &api.Server{Store: e.st}, api.Listen{Addr: "127.0.0.1:0", CertFile: certFile, KeyFile: keyFile})
	c, err := client.New("https://"+addr, e.read, client.WithTLSConfig(&tls.Config{RootCAs: pool}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Studies(t.Context()); err != nil {
		t.Errorf("over HTTPS with the server's certificate trusted: %v", err)
	}
	// A client that does not trust the certificate is refused by its own
	// TLS, and plain HTTP to the port gets no answer of the API.
	untrusting, _ := client.New("https://"+addr, e.read)
	untrusting.RetryFor = 0
	var ue *tls.CertificateVerificationError
	if _, err := untrusting.Studies(t.Context()); !errors.As(err, &ue) {
		t.Errorf("a client that does not trust the certificate: %v", err)
	}
	resp, err := http.Get("http://" + addr + "/v1/studies")
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || strings.Contains(string(b), "studies") {
			t.Errorf("plain HTTP to the HTTPS port: %d %s", resp.StatusCode, b)
		}
	}
	// Both files or neither; files that are not a certificate are refused.
	for _, l := range []api.Listen{
		{Addr: "127.0.0.1:0", CertFile: certFile},
		{Addr: "127.0.0.1:0", CertFile: keyFile, KeyFile: certFile},
	} {
		if err := (&api.Server{Store: e.st}).Run(t.Context(), l); err == nil {
			t.Errorf("Run with cert %q and key %q: no error", l.CertFile, l.KeyFile)
		}
	}
}

func TestHealthNeedsNoTokenAndReadinessFollowsTheStorage(t *testing.T) {
	t.Parallel()
	// A URL with a password (trust authentication ignores it), to see
	// that no answer and no log line shows it.
	u, err := url.Parse(pgtest.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	const password = "s3cret-Pa55word"
	u.User = url.UserPassword(u.User.Username(), password)
	st, err := storage.Open(t.Context(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var log lockedBuffer
	srv := &api.Server{Store: st, Logger: slog.New(slog.NewTextHandler(&log, nil))}
	addr := run(t, srv, api.Listen{Addr: "127.0.0.1:0"})
	token, _, err := st.CreateToken(t.Context(), "reader", storage.ScopeRead, 0)
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string, auth bool) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
		if auth {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := (&http.Client{Transport: newConformance(t, false)}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if status, body := get(path, false); status != 200 || !strings.Contains(body, `"ok"`) {
			t.Errorf("%s: %d %s", path, status, body)
		}
	}
	st.Close() // the storage goes away
	if status, body := get("/readyz", false); status != 503 || !strings.Contains(body, `"unavailable"`) {
		t.Errorf("/readyz without a storage: %d %s", status, body)
	}
	if status, body := get("/healthz", false); status != 200 {
		t.Errorf("/healthz without a storage: %d %s", status, body)
	}
	status, body := get("/v1/studies", true)
	if status < 500 || !strings.Contains(body, `"error"`) {
		t.Errorf("a request without a storage: %d %s", status, body)
	}
	log.mu.Lock()
	logged := log.String()
	log.mu.Unlock()
	if logged == "" {
		t.Error("the failures were not logged")
	}
	for where, text := range map[string]string{"an answer": body, "the log": logged} {
		if strings.Contains(text, password) {
			t.Errorf("%s shows the database password: %s", where, text)
		}
	}
}

// The server reaps on its own: a trial whose client went silent is failed
// and retried even while nobody asks.
func TestTheServerReapsWhileNobodyAsks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	worker := e.createStudy(t, "silent", 3, "none")
	addr := run(t, &api.Server{Store: e.st, Lease: time.Second}, api.Listen{Addr: "127.0.0.1:0"})
	c, err := client.New("http://"+addr, worker)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := c.Ask(t.Context(), "silent", "gone")
	if err != nil {
		t.Fatal(err)
	}
	// The client says no more; nobody asks.
	deadline := time.Now().Add(time.Minute)
	for {
		got, err := c.Trial(t.Context(), "silent", tr.Number)
		if err != nil {
			t.Fatal(err)
		}
		if got.State == "fail" {
			if !strings.HasPrefix(got.FailReason, "lease expired") {
				t.Errorf("reaped with reason %q", got.FailReason)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("trial %d is still %s a minute after its 1s lease", tr.Number, got.State)
		}
		time.Sleep(100 * time.Millisecond)
	}
	waiting, err := c.Trials(t.Context(), "silent", "waiting")
	if err != nil || len(waiting) != 1 || waiting[0].Attempt != 1 {
		t.Errorf("the retry: %+v, %v", waiting, err)
	}
}
