package edge

import (
	"context"
	"fmt"
	"testing"

	"github.com/emiago/sipgo/sip"

	registrarv1 "github.com/sipd/sipd/proto/gen/sipd/registrar/v1"
	routerv1 "github.com/sipd/sipd/proto/gen/sipd/router/v1"

	"github.com/sipd/sipd/edge/transport"
)

// untrustedConfig trusts nothing, so the loopback test UAs count as
// outsiders.
func untrustedConfig() Config {
	cfg := testConfig()
	cfg.Trusted = []string{}
	return cfg
}

func TestRegisterChallengeAndCredentials(t *testing.T) {
	tests := []struct {
		name        string
		cfg         Config
		auth        string
		wantTrusted bool
		wantCreds   bool
	}{
		{name: "untrusted without credentials", cfg: untrustedConfig()},
		{name: "untrusted with credentials", cfg: untrustedConfig(), wantCreds: true,
			auth: `Digest username="alice", realm="localhost", nonce="n1", uri="sip:localhost", response="abc", algorithm=SHA-256, qop=auth, nc=00000001, cnonce="c"`},
		{name: "trusted loopback", cfg: testConfig(), wantTrusted: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := &fakeRegistrar{fn: func(_ context.Context, in *registrarv1.RegisterRequest) (*registrarv1.RegisterResponse, error) {
				return &registrarv1.RegisterResponse{Code: 401, Reason: "Unauthorized", Challenges: []*registrarv1.Challenge{
					{Value: `Digest realm="localhost", nonce="x", algorithm=SHA-256, qop="auth"`},
					{Value: `Digest realm="localhost", nonce="x", algorithm=MD5, qop="auth"`},
				}}, nil
			}}
			te := startEdge(t, tt.cfg, Deps{Registrar: reg})
			u := newUA(t, transport.UDP)
			hs := []string{
				"Via: " + u.via("z9hG4bK-"+unique("auth")), "Max-Forwards: 70",
				"From: <sip:alice@localhost>;tag=r1", "To: <sip:alice@localhost>", "Call-ID: " + unique("auth"), "CSeq: 1 REGISTER",
				fmt.Sprintf("Contact: <sip:alice@%s>", u.addr),
			}
			if tt.auth != "" {
				hs = append(hs, "Authorization: Digest username=\"bob\", realm=\"other\", nonce=\"o\", response=\"r\"", "Authorization: "+tt.auth)
			}
			u.sendTo(te.udp, msg("REGISTER sip:localhost SIP/2.0", hs, ""))
			r := u.expect("401", wait, isResponse(sip.REGISTER, 401)).msg.(*sip.Response)
			ch := r.GetHeaders("WWW-Authenticate")
			if len(ch) != 2 || ch[0].Value() != `Digest realm="localhost", nonce="x", algorithm=SHA-256, qop="auth"` {
				t.Errorf("WWW-Authenticate = %v, want the two challenges in order", ch)
			}
			in := reg.last()
			if in.GetTrusted() != tt.wantTrusted || in.GetRequestUri() != "sip:localhost" {
				t.Errorf("trusted = %v, request uri = %q; want %v, sip:localhost", in.GetTrusted(), in.GetRequestUri(), tt.wantTrusted)
			}
			c := in.GetCredentials()
			if (c != nil) != tt.wantCreds {
				t.Fatalf("credentials = %v, want present %v", c, tt.wantCreds)
			}
			if c != nil && (c.Username != "alice" || c.Realm != "localhost" || c.Algorithm != "SHA-256" || c.Nc != "00000001") {
				t.Errorf("credentials = %v, want alice's for realm localhost", c)
			}
		})
	}
}

func TestRouterProxyAuthenticate(t *testing.T) {
	rt := &fakeRouter{fn: func(_ context.Context, in *routerv1.RouteRequest) (*routerv1.RouteResponse, error) {
		return &routerv1.RouteResponse{Action: &routerv1.RouteResponse_Reject{Reject: &routerv1.Reject{
			Code: 407, Reason: "Proxy Authentication Required",
			Headers: []*routerv1.Header{
				{Name: "Proxy-Authenticate", Value: `Digest realm="localhost", nonce="y", algorithm=SHA-256, qop="auth"`},
				{Name: "Proxy-Authenticate", Value: "bad\r\nInjected: yes"},
				{Name: "Contact", Value: "<sip:not-allowed@x>"},
			},
		}}}, nil
	}}
	te := startEdge(t, untrustedConfig(), Deps{Router: rt})
	u := newUA(t, transport.UDP)
	callID := unique("pa")
	inv := u.invite(callID, "z9hG4bK-"+callID)
	inv = insertHeader(inv, `Proxy-Authorization: Digest username="alice", realm="localhost", nonce="n", uri="sip:bob@localhost", response="r", qop=auth, nc=00000001, cnonce="c"`)
	u.sendTo(te.udp, inv)
	r := u.expect("407", wait, isResponse(sip.INVITE, 407)).msg.(*sip.Response)
	if h := r.GetHeaders("Proxy-Authenticate"); len(h) != 1 {
		t.Errorf("Proxy-Authenticate = %v, want the one sane challenge", h)
	}
	if r.GetHeader("Injected") != nil || r.GetHeader("Contact") != nil {
		t.Errorf("407 carries headers the router may not add: %s", r)
	}
	rt.mu.Lock()
	in := rt.calls[0]
	rt.mu.Unlock()
	if in.GetTrusted() || in.GetCredentials().GetUsername() != "alice" {
		t.Errorf("route request trusted %v, credentials %v; want untrusted with alice's", in.GetTrusted(), in.GetCredentials())
	}
}

// insertHeader adds a header line after the request line.
func insertHeader(m, h string) string {
	for i := 0; i+1 < len(m); i++ {
		if m[i] == '\r' && m[i+1] == '\n' {
			return m[:i+2] + h + "\r\n" + m[i+2:]
		}
	}
	return m
}
