package edge

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	routerv1 "github.com/sipd/sipd/proto/gen/sipd/router/v1"

	"github.com/sipd/sipd/edge/transport"
)

// testCert writes a self-signed certificate (its own CA) for 127.0.0.1
// and localhost into a temporary directory and returns the paths of the
// certificate and the key.
func testCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "sipd edge test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// tlsConfig is an edge config with UDP, TLS, WS and WSS listeners on
// random ports that trusts the test certificate.
func tlsConfig(t *testing.T) Config {
	t.Helper()
	certFile, keyFile := testCert(t)
	cfg := testConfig()
	cfg.Listen = []string{"udp:127.0.0.1:0", "tls:127.0.0.1:0", "ws:127.0.0.1:0", "wss:127.0.0.1:0"}
	cfg.Transport.TLS.CertFile, cfg.Transport.TLS.KeyFile = certFile, keyFile
	cfg.Transport.TLS.CAFile = certFile
	return cfg
}

func (te *testEdge) listener(t *testing.T, p transport.Proto) netip.AddrPort {
	t.Helper()
	for _, l := range te.Addrs() {
		if l.Proto == p {
			return l.Addr
		}
	}
	t.Fatalf("no %s listener", p)
	return netip.AddrPort{}
}

// TestPrepareTransport checks how the outgoing transport is chosen from
// the target URI (scheme and transport parameter), and the Via, the
// Record-Route and the TLS server name that go with it.
func TestPrepareTransport(t *testing.T) {
	cfg := tlsConfig(t)
	cfg.Listen = []string{"udp:127.0.0.1:5060", "tcp:127.0.0.1:5060", "tls:127.0.0.1:5061", "ws:127.0.0.1:8080", "wss:127.0.0.1:8443"}
	e := idleEdgeWith(t, cfg)
	base := parseRequest(t, newUAText("UDP", "10.0.0.1:5060"))
	src := inbound{proto: transport.UDP, source: netip.MustParseAddrPort("10.0.0.1:5060"), local: netip.MustParseAddrPort("127.0.0.1:5060")}
	tests := []struct {
		name    string
		uri     string
		proto   transport.Proto
		port    uint16
		host    string // Dest.Host
		rrTrans string // transport= of the top Record-Route
	}{
		{"sip defaults to udp", "sip:bob@192.0.2.1", transport.UDP, 5060, "", ""},
		{"transport=tcp", "sip:bob@192.0.2.1;transport=tcp", transport.TCP, 5060, "", "tcp"},
		{"transport=tls", "sip:bob@192.0.2.1;transport=tls", transport.TLS, 5061, "", "tls"},
		{"sips is tls on 5061", "sips:bob@192.0.2.1", transport.TLS, 5061, "", "tls"},
		{"sips with transport=tcp is tls", "sips:bob@192.0.2.1:5071;transport=tcp", transport.TLS, 5071, "", "tls"},
		{"transport=ws", "sip:bob@192.0.2.1:80;transport=ws", transport.WS, 80, "", "ws"},
		{"sips with transport=ws is wss", "sips:bob@192.0.2.1:443;transport=ws", transport.WSS, 443, "", "wss"},
		{"tls to a name verifies the name", "sips:bob@localhost", transport.TLS, 5061, "localhost", "tls"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fwd, dest, err := e.prepare(base, src, &routerv1.Target{RequestUri: tt.uri}, true, false)
			if err != nil {
				t.Fatalf("prepare: %v", err)
			}
			if dest.Proto != tt.proto || dest.Addr.Port() != tt.port || dest.Host != tt.host {
				t.Errorf("dest = %s %s host %q, want %s port %d host %q", dest.Proto, dest.Addr, dest.Host, tt.proto, tt.port, tt.host)
			}
			if via := fwd.Via(); via == nil || via.Transport != tt.proto.String() {
				t.Errorf("top Via %v, want transport %s", via, tt.proto)
			}
			rrs := fwd.GetHeaders("Record-Route")
			double := tt.proto != transport.UDP
			if (len(rrs) == 2) != double || len(rrs) == 0 {
				t.Fatalf("%d Record-Route headers, want double %v", len(rrs), double)
			}
			top := rrs[0].(*sip.RecordRouteHeader)
			if got, _ := top.Address.UriParams.Get("transport"); got != tt.rrTrans {
				t.Errorf("top Record-Route %s: transport %q, want %q", top.Value(), got, tt.rrTrans)
			}
		})
	}
	t.Run("sips over udp is refused", func(t *testing.T) {
		if _, _, err := e.prepare(base, src, &routerv1.Target{RequestUri: "sips:bob@192.0.2.1;transport=udp"}, false, false); err == nil {
			t.Fatal("prepare sent sips: over UDP")
		}
	})
}

func idleEdgeWith(t *testing.T, cfg Config) *Edge {
	t.Helper()
	e, err := New(cfg, Deps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func newUAText(proto, addr string) string {
	return msg("INVITE sip:bob@localhost SIP/2.0", []string{
		"Via: SIP/2.0/" + proto + " " + addr + ";branch=z9hG4bK-p1;rport",
		"Max-Forwards: 70", "From: <sip:alice@localhost>;tag=a1", "To: <sip:bob@localhost>",
		"Call-ID: prep1", "CSeq: 1 INVITE",
	}, "")
}

func parseRequest(t *testing.T, s string) *sip.Request {
	t.Helper()
	m, err := sip.ParseMessage([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return m.(*sip.Request)
}

// newTLSUA is a test UA that accepts TLS connections with the test
// certificate.
func newTLSUA(t *testing.T, certFile, keyFile string) *ua {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	u := &ua{t: t, proto: transport.TLS, ln: ln, addr: ln.Addr().(*net.TCPAddr).AddrPort(),
		msgs: make(chan received, 256), conns: make(map[netip.AddrPort]net.Conn)}
	u.wg.Add(1)
	go u.accept()
	t.Cleanup(u.close)
	return u
}

// TestCallToTLS proxies a call from a UDP caller to a callee reached over
// TLS: the INVITE arrives over TLS with a TLS Via and a double
// Record-Route, and the responses come back.
func TestCallToTLS(t *testing.T) {
	cfg := tlsConfig(t)
	caller := newUA(t, transport.UDP)
	callee := newTLSUA(t, cfg.Transport.TLS.CertFile, cfg.Transport.TLS.KeyFile)
	te := startEdge(t, cfg, Deps{Router: &fakeRouter{fn: forwardTo(fmt.Sprintf("sip:bob@%s;transport=tls", callee.addr))}})

	callID := unique("tls")
	caller.sendTo(te.udp, caller.invite(callID, "z9hG4bK-"+callID))
	in := callee.expect("INVITE over TLS", wait, isRequest(sip.INVITE))
	inv := in.msg.(*sip.Request)
	if via := inv.Via(); via.Transport != "TLS" {
		t.Errorf("top Via transport %q, want TLS", via.Transport)
	}
	rrs := inv.GetHeaders("Record-Route")
	if len(rrs) != 2 || !strings.Contains(rrs[0].Value(), "transport=tls") || strings.Contains(rrs[1].Value(), "transport=") {
		t.Errorf("Record-Route %v, want a tls one then a udp one", rrs)
	}
	callee.reply(in, respond(inv, 180, "Ringing", "b1"))
	caller.expect("180 from the TLS callee", wait, isResponse(sip.INVITE, 180))
	callee.reply(in, respond(inv, 486, "Busy Here", "b1"))
	caller.expect("486 from the TLS callee", wait, isResponse(sip.INVITE, 486))
}

// wsClient is a SIP over WebSocket client (RFC 7118) for tests.
type wsClient struct {
	t    *testing.T
	c    net.Conn
	msgs chan sip.Message
	wg   sync.WaitGroup
}

func dialWSClient(t *testing.T, url string, tlsCfg *tls.Config) *wsClient {
	t.Helper()
	d := ws.Dialer{Protocols: []string{"sip"}, TLSConfig: tlsCfg, Timeout: wait}
	c, _, _, err := d.Dial(t.Context(), url)
	if err != nil {
		t.Fatalf("dialing %s: %v", url, err)
	}
	w := &wsClient{t: t, c: c, msgs: make(chan sip.Message, 64)}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for {
			data, _, err := wsutil.ReadServerData(c)
			if err != nil {
				return
			}
			if m, err := sip.ParseMessage(data); err == nil {
				w.msgs <- m
			}
		}
	}()
	t.Cleanup(func() { c.Close(); w.wg.Wait() })
	return w
}

func (w *wsClient) send(s string) {
	w.t.Helper()
	if err := wsutil.WriteClientText(w.c, []byte(s)); err != nil {
		w.t.Fatalf("ws send: %v", err)
	}
}

func (w *wsClient) expect(what string, pred func(sip.Message) bool) sip.Message {
	w.t.Helper()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		select {
		case m := <-w.msgs:
			if pred(m) {
				return m
			}
		case <-deadline.C:
			w.t.Fatalf("timed out waiting for %s over ws", what)
			return nil
		}
	}
}

// TestCallFromWebSocket runs a call from a WebSocket client (WS and WSS)
// to a UDP callee: the client's Via gets received and rport, the edge
// record-routes twice with transport=ws/wss and a flow token, responses
// return over the client's connection, and the callee's BYE, routed by
// the Record-Route, is delivered over that connection too.
func TestCallFromWebSocket(t *testing.T) {
	cfg := tlsConfig(t)
	tests := []struct {
		name  string
		proto transport.Proto
		url   string
		rr    string
	}{
		{"ws", transport.WS, "ws://%s/", "transport=ws"},
		{"wss", transport.WSS, "wss://%s/", "transport=wss"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			callee := newUA(t, transport.UDP)
			te := startEdge(t, cfg, Deps{Router: &fakeRouter{fn: forwardTo("sip:bob@" + callee.addr.String())}})
			w := dialWSClient(t, fmt.Sprintf(tt.url, te.listener(t, tt.proto)), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // test certificate
			callID := unique("ws")
			w.send(msg("INVITE sip:bob@localhost SIP/2.0", []string{
				"Via: SIP/2.0/" + tt.proto.String() + " df7jal23ls0d.invalid;branch=z9hG4bK-" + callID,
				"Max-Forwards: 70",
				"From: <sip:alice@localhost>;tag=a1",
				"To: <sip:bob@localhost>",
				"Call-ID: " + callID,
				"CSeq: 1 INVITE",
				"Contact: <sip:alice@df7jal23ls0d.invalid;transport=ws;ob>",
			}, ""))
			in := callee.expect("INVITE from the ws client", wait, isRequest(sip.INVITE))
			inv := in.msg.(*sip.Request)
			vias := inv.GetHeaders("Via")
			if len(vias) != 2 {
				t.Fatalf("%d Vias, want 2", len(vias))
			}
			client := vias[1].(*sip.ViaHeader)
			if _, ok := client.Params.Get("received"); !ok {
				t.Errorf("client Via %s has no received", client.Value())
			}
			if rp, _ := client.Params.Get("rport"); rp == "" {
				t.Errorf("client Via %s has no rport value", client.Value())
			}
			rrs := inv.GetHeaders("Record-Route")
			if len(rrs) != 2 || strings.Contains(rrs[0].Value(), "transport=") || !strings.Contains(rrs[1].Value(), tt.rr) {
				t.Fatalf("Record-Route %v, want a udp one then one with %s", rrs, tt.rr)
			}
			if rrs[1].(*sip.RecordRouteHeader).Address.User == "" {
				t.Errorf("Record-Route %s carries no flow token", rrs[1].Value())
			}
			callee.reply(in, respond(inv, 180, "Ringing", "b1"))
			w.expect("180", isResponse(sip.INVITE, 180))
			callee.reply(in, respond(inv, 200, "OK", "b1", fmt.Sprintf("Contact: <sip:bob@%s>", callee.addr)))
			w.expect("200", isResponse(sip.INVITE, 200))

			// The callee hangs up: its BYE follows the Record-Route (as
			// Route, in order) to the edge, which sends it over the ws
			// connection.
			var routes []string
			for _, rr := range rrs {
				routes = append(routes, "Route: "+rr.Value())
			}
			bye := msg("BYE sip:alice@df7jal23ls0d.invalid;transport=ws SIP/2.0", append(append([]string{
				"Via: " + callee.via("z9hG4bK-bye-"+callID), "Max-Forwards: 70"}, routes...),
				"From: <sip:bob@localhost>;tag=b1", "To: <sip:alice@localhost>;tag=a1",
				"Call-ID: "+callID, "CSeq: 1 BYE"), "")
			callee.sendTo(te.udp, bye)
			got := w.expect("BYE over the ws connection", isRequest(sip.BYE)).(*sip.Request)
			if r := got.GetHeaders("Route"); len(r) != 0 {
				t.Errorf("BYE at the ws client still has %d Route headers", len(r))
			}
			w.send(respond(got, 200, "OK", ""))
			callee.expect("200 to BYE", wait, isResponse(sip.BYE, 200))
		})
	}
}
