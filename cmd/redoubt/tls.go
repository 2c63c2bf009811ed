package main

import (
	"crypto/tls"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"golang.org/x/crypto/acme/autocert"

	"github.com/redoubt-systems/redoubt/config"
)

// certReloader serves the certificate files' current contents: SIGHUP
// reloads them, so a renewed certificate is used without a restart or a
// dropped connection.
type certReloader struct {
	certFile, keyFile string
	mu                sync.RWMutex
	cert              *tls.Certificate
}

func (c *certReloader) load() error {
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.cert = &cert
	c.mu.Unlock()
	return nil
}

func (c *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.cert, nil
}

// tls12Suites are the TLS 1.2 cipher suites served: forward secrecy
// (ECDHE) and authenticated encryption (GCM, ChaCha20-Poly1305) only; no
// CBC, no SHA-1 MACs, no RSA key exchange. TLS 1.3's suites all qualify
// and are not configurable.
var tls12Suites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// tlsConfig is the server's TLS configuration (nil without TLS): TLS 1.2
// at least, with the certificate from files or ACME.
func tlsConfig(cfg *config.Config, log *slog.Logger, stop <-chan struct{}) (*tls.Config, error) {
	switch {
	case cfg.TLS.CertFile != "":
		r := &certReloader{certFile: cfg.TLS.CertFile, keyFile: cfg.TLS.KeyFile}
		if err := r.load(); err != nil {
			return nil, err
		}
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		go func() {
			defer signal.Stop(hup)
			for {
				select {
				case <-stop:
					return
				case <-hup:
					if err := r.load(); err != nil {
						log.Error("reloading the certificate failed; keeping the old one", "err", err)
					} else {
						log.Info("certificate reloaded")
					}
				}
			}
		}()
		return &tls.Config{MinVersion: tls.VersionTLS12, CipherSuites: tls12Suites, GetCertificate: r.get}, nil
	case len(cfg.TLS.ACMEDomains) > 0:
		m := &autocert.Manager{Prompt: autocert.AcceptTOS, Email: cfg.TLS.ACMEEmail,
			HostPolicy: autocert.HostWhitelist(cfg.TLS.ACMEDomains...),
			Cache:      autocert.DirCache(cfg.ACMECacheDir())}
		tc := m.TLSConfig()
		tc.MinVersion, tc.CipherSuites = tls.VersionTLS12, tls12Suites
		return tc, nil
	}
	return nil, nil
}
