package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"time"
)

// Defaults of TLSConfig.
const (
	DefaultTLSMinVersion       = "1.2"
	DefaultTLSReloadInterval   = 5 * time.Second
	DefaultTLSHandshakeTimeout = 5 * time.Second
)

// TLSConfig configures TLS and WSS listeners and outbound TLS connections.
type TLSConfig struct {
	// CertFile and KeyFile are the PEM certificate chain and private key
	// served by TLS and WSS listeners, and presented as a client
	// certificate when dialling. Required with a TLS or WSS listener. The
	// files are checked for changes (modification time and size) at most
	// every ReloadInterval, on the next handshake, and re-read without a
	// restart; a pair that fails to load is logged and the previous one
	// kept.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile, when set, makes TLS and WSS listeners require a client
	// certificate signed by one of its PEM CAs (mutual TLS).
	ClientCAFile string `yaml:"client_ca_file"`
	// CAFile, when set, holds the PEM CAs that certificates of servers
	// dialled over TLS must chain to; empty uses the system pool.
	CAFile string `yaml:"ca_file"`
	// MinVersion is the lowest TLS version accepted: "1.2" (default) or "1.3".
	MinVersion string `yaml:"min_version"`
	// InsecureSkipVerify turns off verification of server certificates
	// when dialling. For tests only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
	// ReloadInterval is how often, at most, the certificate files are
	// checked for changes (default 5s).
	ReloadInterval time.Duration `yaml:"reload_interval"`
	// HandshakeTimeout bounds the TLS handshake of an accepted connection
	// and a WebSocket upgrade (default 5s).
	HandshakeTimeout time.Duration `yaml:"handshake_timeout"`
}

func (c *TLSConfig) setDefaults() {
	if c.MinVersion == "" {
		c.MinVersion = DefaultTLSMinVersion
	}
	if c.ReloadInterval == 0 {
		c.ReloadInterval = DefaultTLSReloadInterval
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultTLSHandshakeTimeout
	}
}

func (c TLSConfig) minVersion() (uint16, bool) {
	switch c.MinVersion {
	case "1.2":
		return tls.VersionTLS12, true
	case "1.3":
		return tls.VersionTLS13, true
	}
	return 0, false
}

func (c TLSConfig) validate(needCert bool) []error {
	var errs []error
	if _, ok := c.minVersion(); !ok {
		errs = append(errs, fmt.Errorf("tls.min_version (%q) must be 1.2 or 1.3", c.MinVersion))
	}
	if needCert && (c.CertFile == "" || c.KeyFile == "") {
		errs = append(errs, fmt.Errorf("tls.cert_file (%q) and tls.key_file (%q) are required with a tls or wss listener", c.CertFile, c.KeyFile))
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		errs = append(errs, fmt.Errorf("tls.cert_file (%q) and tls.key_file (%q) must be set together", c.CertFile, c.KeyFile))
	}
	if c.ReloadInterval <= 0 {
		errs = append(errs, fmt.Errorf("tls.reload_interval (%s) must be > 0", c.ReloadInterval))
	}
	if c.HandshakeTimeout <= 0 {
		errs = append(errs, fmt.Errorf("tls.handshake_timeout (%s) must be > 0", c.HandshakeTimeout))
	}
	return errs
}

// certStore serves a certificate pair, re-reading the files when they change.
type certStore struct {
	certFile, keyFile string
	interval          time.Duration
	l                 *Layer

	mu        sync.Mutex
	cert      *tls.Certificate
	stamp     [2]fileStamp
	lastCheck time.Time
}

type fileStamp struct {
	mod  time.Time
	size int64
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{fi.ModTime(), fi.Size()}, nil
}

// load reads the pair now.
func (s *certStore) load() error {
	cs, err1 := stampOf(s.certFile)
	ks, err2 := stampOf(s.keyFile)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("%w: loading certificate: %w", ErrTLSConfig, err)
	}
	cert, err := tls.LoadX509KeyPair(s.certFile, s.keyFile)
	if err != nil {
		return fmt.Errorf("%w: loading certificate %q and key %q: %w", ErrTLSConfig, s.certFile, s.keyFile, err)
	}
	s.mu.Lock()
	s.cert, s.stamp = &cert, [2]fileStamp{cs, ks}
	s.mu.Unlock()
	return nil
}

// get returns the current certificate, first re-reading the files if they
// changed and were last checked ReloadInterval ago.
func (s *certStore) get() *tls.Certificate {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if now.Sub(s.lastCheck) < s.interval {
		return s.cert
	}
	s.lastCheck = now
	cs, err1 := stampOf(s.certFile)
	ks, err2 := stampOf(s.keyFile)
	if err1 != nil || err2 != nil || [2]fileStamp{cs, ks} == s.stamp {
		return s.cert
	}
	cert, err := tls.LoadX509KeyPair(s.certFile, s.keyFile)
	if err != nil {
		// Perhaps caught between writing the two files: keep the old pair
		// and look again after the interval.
		s.l.logger.Warn("reloading tls certificate; keeping the previous one", "cert_file", s.certFile, "key_file", s.keyFile, "err", err)
		return s.cert
	}
	s.cert, s.stamp = &cert, [2]fileStamp{cs, ks}
	s.l.logger.Info("tls certificate reloaded", "cert_file", s.certFile)
	return s.cert
}

func readPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: reading %q: %w", ErrTLSConfig, path, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%w: %q holds no PEM certificate", ErrTLSConfig, path)
	}
	return pool, nil
}

// setupTLS loads the certificate and CA files, if configured.
func (l *Layer) setupTLS() error {
	c := l.cfg.TLS
	minV, _ := c.minVersion()
	if c.CertFile != "" {
		l.certs = &certStore{certFile: c.CertFile, keyFile: c.KeyFile, interval: c.ReloadInterval, l: l}
		if err := l.certs.load(); err != nil {
			return err
		}
		l.certs.lastCheck = time.Now()
		srv := &tls.Config{
			MinVersion: minV,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
				return l.certs.get(), nil
			},
		}
		if c.ClientCAFile != "" {
			pool, err := readPool(c.ClientCAFile)
			if err != nil {
				return err
			}
			srv.ClientCAs, srv.ClientAuth = pool, tls.RequireAndVerifyClientCert
		}
		l.tlsServer = srv
	}
	if c.CAFile != "" {
		pool, err := readPool(c.CAFile)
		if err != nil {
			return err
		}
		l.rootCAs = pool
	}
	return nil
}

// tlsClientConfig is the configuration for dialling to over TLS; the
// server's certificate is verified against host, or against to's address.
func (l *Layer) tlsClientConfig(to netip.AddrPort, host string) *tls.Config {
	minV, _ := l.cfg.TLS.minVersion()
	if host == "" {
		host = to.Addr().String()
	}
	cfg := &tls.Config{
		MinVersion:         minV,
		ServerName:         host,
		RootCAs:            l.rootCAs,
		InsecureSkipVerify: l.cfg.TLS.InsecureSkipVerify, //nolint:gosec // documented as for tests only
	}
	if l.certs != nil {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return l.certs.get(), nil
		}
	}
	return cfg
}

// handshake runs the server side of a TLS handshake within HandshakeTimeout.
func (l *Layer) handshake(tc *tls.Conn, c *conn) error {
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.TLS.HandshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		l.stats.tlsErrors.Add(1)
		l.logger.Debug("tls handshake failed", "remote", c.remote.String(), "conn_id", c.id, "err", err)
		return err
	}
	return nil
}
