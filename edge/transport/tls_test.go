package transport

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// testCA is a certificate authority made for a test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "sipd test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue writes a server certificate for 127.0.0.1 named cn, and its key,
// into dir, returning the two paths.
func (ca *testCA) issue(t *testing.T, dir, cn string, serial int64) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"sip.test"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeFile(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	writeFile(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
	return certFile, keyFile
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// dialTLS connects to addr and returns the connection and the CN the
// server presented.
func dialTLS(t *testing.T, addr string, ca *testCA) (*tls.Conn, string) {
	t.Helper()
	d := &net.Dialer{Timeout: waitFor}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: ca.pool(), ServerName: "sip.test", MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("tls dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c, c.ConnectionState().PeerCertificates[0].Subject.CommonName
}

func TestTLSRoundTripAndReload(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	certFile, keyFile := ca.issue(t, dir, "first", 2)
	rec := newRecorder()
	l := startLayer(t, Config{
		Listeners: []Listener{mustListener(t, "tls:127.0.0.1:0")},
		TLS:       TLSConfig{CertFile: certFile, KeyFile: keyFile, ReloadInterval: 10 * time.Millisecond},
	}, rec)
	lis := listenerFor(t, l, TLS)
	c, cn := dialTLS(t, lis.Addr.String(), ca)
	if cn != "first" {
		t.Fatalf("certificate %q, want first", cn)
	}
	req := sipMsg("v=0\r\n")
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	m := rec.next(t)
	if string(m.Data) != req || m.Proto != TLS {
		t.Fatalf("got %v %q, want TLS %q", m.Proto, m.Data, req)
	}
	resp := "SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"
	if err := l.Send(Dest{Proto: TLS, ConnID: m.ConnID}, []byte(resp)); err != nil {
		t.Fatal(err)
	}
	if got := readFull(t, c, len(resp)); got != resp {
		t.Fatalf("read %q, want %q", got, resp)
	}
	// Keep-alives work over TLS too.
	if _, err := c.Write([]byte("\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if got := readFull(t, c, 2); got != "\r\n" {
		t.Fatalf("keep-alive answer %q", got)
	}

	// New files: the next handshake after the interval serves them.
	ca.issue(t, dir, "second", 3)
	future := time.Now().Add(time.Minute)
	os.Chtimes(certFile, future, future)
	os.Chtimes(keyFile, future, future)
	eventually(t, "reloaded certificate served", func() bool {
		_, cn := dialTLS(t, lis.Addr.String(), ca)
		return cn == "second"
	})
	// A broken pair is refused and the current one kept.
	writeFile(t, keyFile, []byte("not a key"))
	later := future.Add(time.Minute)
	os.Chtimes(keyFile, later, later)
	time.Sleep(20 * time.Millisecond)
	for range 3 {
		if _, cn := dialTLS(t, lis.Addr.String(), ca); cn != "second" {
			t.Fatalf("after a broken reload, certificate %q, want second", cn)
		}
	}
}

func TestTLSRejectsOldVersions(t *testing.T) {
	ca := newTestCA(t)
	certFile, keyFile := ca.issue(t, t.TempDir(), "srv", 2)
	l := startLayer(t, Config{
		Listeners: []Listener{mustListener(t, "tls:127.0.0.1:0")},
		TLS:       TLSConfig{CertFile: certFile, KeyFile: keyFile},
	}, newRecorder())
	_, err := tls.Dial("tcp", listenerFor(t, l, TLS).Addr.String(), &tls.Config{RootCAs: ca.pool(), ServerName: "sip.test", MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
	if err == nil {
		t.Fatal("TLS 1.1 handshake succeeded")
	}
	eventually(t, "handshake failure counted", func() bool { return l.Stats().TLSErrors >= 1 })
}

func TestTLSDial(t *testing.T) {
	ca := newTestCA(t)
	certFile, keyFile := ca.issue(t, t.TempDir(), "b", 2)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	writeFile(t, caFile, ca.pem)
	recB := newRecorder()
	b := startLayer(t, Config{
		Listeners: []Listener{mustListener(t, "tls:127.0.0.1:0")},
		TLS:       TLSConfig{CertFile: certFile, KeyFile: keyFile},
	}, recB)
	bAddr := listenerFor(t, b, TLS).Addr
	otherCA := newTestCA(t)
	otherFile := filepath.Join(t.TempDir(), "other.pem")
	writeFile(t, otherFile, otherCA.pem)
	tests := []struct {
		name   string
		tls    TLSConfig
		host   string
		wantOK bool
	}{
		{name: "verified by ip", tls: TLSConfig{CAFile: caFile}, wantOK: true},
		{name: "verified by name", tls: TLSConfig{CAFile: caFile}, host: "sip.test", wantOK: true},
		{name: "wrong name", tls: TLSConfig{CAFile: caFile}, host: "other.test"},
		{name: "unknown ca", tls: TLSConfig{CAFile: otherFile}},
		{name: "insecure skip verify", tls: TLSConfig{CAFile: otherFile, InsecureSkipVerify: true}, wantOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := startLayer(t, Config{Listeners: []Listener{mustListener(t, "udp:127.0.0.1:0")}, TLS: tt.tls}, newRecorder())
			req := sipMsg("")
			err := a.Send(Dest{Proto: TLS, Addr: bAddr, Host: tt.host}, []byte(req))
			if (err == nil) != tt.wantOK {
				t.Fatalf("Send = %v, want ok %v", err, tt.wantOK)
			}
			if tt.wantOK {
				if m := recB.next(t); string(m.Data) != req || m.Proto != TLS {
					t.Errorf("b got %v %q", m.Proto, m.Data)
				}
			}
		})
	}
}
