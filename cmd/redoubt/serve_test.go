package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// selfSigned writes a certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T, dir string, serial int64) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "redoubt test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ = x509.ParseCertificate(der)
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile, cert
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// serving starts serveUntil and returns its stop function, which reports
// how long the shutdown took.
func serving(t *testing.T, cfgPath string) (stop func() (time.Duration, error)) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveUntil(ctx, []string{"--config", cfgPath}, io.Discard) }()
	return func() (time.Duration, error) {
		start := time.Now()
		cancel()
		select {
		case err := <-done:
			return time.Since(start), err
		case <-time.After(30 * time.Second):
			t.Fatal("serve did not stop")
			return 0, nil
		}
	}
}

func waitUp(t *testing.T, c *http.Client, url string) *http.Response {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		res, err := c.Get(url)
		if err == nil {
			return res
		}
		if time.Now().After(deadline) {
			t.Fatalf("server never answered: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TLS: the certificate serves, TLS 1.1 is refused, HSTS is sent, /health
// answers, and SIGHUP swaps in a renewed certificate.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, cert := selfSigned(t, dir, 1)
	addr := freePort(t)
	cfgPath, _ := writeConfig(t, "listen: "+addr+"\ntls: {cert_file: "+certFile+", key_file: "+keyFile+"}\n")
	stop := serving(t, cfgPath)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	res := waitUp(t, client, "https://"+addr+"/health")
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(body) != `{"status":"ok"}` || res.Header.Get("Strict-Transport-Security") == "" {
		t.Fatalf("health over TLS: %d %s %v", res.StatusCode, body, res.Header)
	}
	old := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS11}}}
	if _, err := old.Get("https://" + addr + "/health"); err == nil {
		t.Fatal("a TLS 1.1 client was served")
	}
	// TLS 1.2 without forward secrecy or without AEAD is refused.
	for _, suite := range []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, tls.TLS_RSA_WITH_AES_128_GCM_SHA256} {
		weak := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{suite}}}}
		if _, err := weak.Get("https://" + addr + "/health"); err == nil {
			t.Fatalf("a TLS 1.2 client offering only %s was served", tls.CipherSuiteName(suite))
		}
	}
	tls12 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS12}}}
	if res, err := tls12.Get("https://" + addr + "/.well-known/matrix/client"); err != nil {
		t.Fatalf("TLS 1.2 with its default suites: %v", err)
	} else {
		var wk map[string]map[string]string
		json.NewDecoder(res.Body).Decode(&wk)
		res.Body.Close()
		// With TLS on and no public_baseurl, clients are sent to https.
		if got := wk["m.homeserver"]["base_url"]; got != "https://"+addr {
			t.Fatalf("well-known base_url %q", got)
		}
	}
	// Renew: a new certificate file, then SIGHUP.
	_, _, renewed := selfSigned(t, dir, 2)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	for deadline := time.Now().Add(5 * time.Second); ; {
		conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err == nil {
			serial := conn.ConnectionState().PeerCertificates[0].SerialNumber
			conn.Close()
			if serial.Cmp(renewed.SerialNumber) == 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the renewed certificate was not picked up on SIGHUP")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if took, err := stop(); err != nil || took > 5*time.Second {
		t.Fatalf("stop: %v after %v", err, took)
	}
}

// Plain HTTP on a non-loopback address needs tls or plain_http.
func TestPlainHTTPOnlyWhenAllowed(t *testing.T) {
	cfgPath, _ := writeConfig(t, "listen: 0.0.0.0:8008\n")
	if err := serveUntil(context.Background(), []string{"--config", cfgPath}, io.Discard); err == nil {
		t.Fatal("plain HTTP on 0.0.0.0 without plain_http started")
	}
}

// A stop returns waiting long-polls at once and exits within the deadline.
func TestShutdownWithWaitingLongPolls(t *testing.T) {
	addr := freePort(t)
	cfgPath, _ := writeConfig(t, "listen: "+addr+"\nregistration: {open: true}\nrate_limits: {enabled: false}\nshutdown_timeout: 5s\n")
	stop := serving(t, cfgPath)
	waitUp(t, http.DefaultClient, "http://"+addr+"/health").Body.Close()
	res, err := http.Post("http://"+addr+"/_matrix/client/v3/register", "application/json",
		stringsReader(`{"username":"poller","password":"long-enough-password","auth":{"type":"m.login.dummy"}}`))
	if err != nil {
		t.Fatal(err)
	}
	var reg struct {
		AccessToken string `json:"access_token"`
	}
	decodeJSON(t, res, &reg)
	returned := make(chan int, 5)
	for range 5 {
		go func() {
			req, _ := http.NewRequest("GET", "http://"+addr+"/_matrix/client/v3/sync?timeout=60000&since=s1_0_0_0_0_0_0", nil)
			req.Header.Set("Authorization", "Bearer "+reg.AccessToken)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				returned <- 0
				return
			}
			res.Body.Close()
			returned <- res.StatusCode
		}()
	}
	time.Sleep(300 * time.Millisecond) // the polls are waiting
	took, err := stop()
	if err != nil || took > 5*time.Second {
		t.Fatalf("stop with waiting polls: %v after %v", err, took)
	}
	for range 5 {
		select {
		case code := <-returned:
			if code != 200 {
				t.Fatalf("a long-poll ended with %d", code)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a long-poll never returned")
		}
	}
}

func stringsReader(s string) io.Reader { return strings.NewReader(s) }

func decodeJSON(t *testing.T, res *http.Response, v any) {
	t.Helper()
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%d %s: %v", res.StatusCode, b, err)
	}
}

// Headers past 64 KiB get 431 and a Matrix error, on the real listener,
// not a reset connection; headers just under it are served.
func TestOversizedHeaders(t *testing.T) {
	addr := freePort(t)
	cfgPath, _ := writeConfig(t, "listen: "+addr+"\n")
	stop := serving(t, cfgPath)
	defer stop()
	waitUp(t, http.DefaultClient, "http://"+addr+"/health").Body.Close()
	for _, tc := range []struct {
		size int
		want int
	}{{60 << 10, 200}, {100 << 10, 431}, {900 << 10, 431}} {
		req, _ := http.NewRequest("GET", "http://"+addr+"/health", nil)
		req.Header.Set("X-Filler", strings.Repeat("a", tc.size))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%d bytes of headers: %v", tc.size, err)
		}
		var body map[string]string
		json.NewDecoder(res.Body).Decode(&body)
		res.Body.Close()
		if res.StatusCode != tc.want || (tc.want == 431 && body["errcode"] != "M_TOO_LARGE") {
			t.Fatalf("%d bytes of headers: %d %v", tc.size, res.StatusCode, body)
		}
	}
}
