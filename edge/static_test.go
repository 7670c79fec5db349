package edge

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	routerv1 "github.com/sipd/sipd/proto/gen/sipd/router/v1"

	"github.com/sipd/sipd/edge/transport"
)

// inviteTo builds an initial INVITE from u to ruri.
func (u *ua) inviteTo(ruri, callID, branch string) string {
	return msg("INVITE "+ruri+" SIP/2.0", []string{
		"Via: " + u.via(branch),
		"Max-Forwards: 70",
		"From: <sip:alice@localhost>;tag=a1",
		"To: <" + ruri + ">",
		"Call-ID: " + callID,
		"CSeq: 1 INVITE",
		fmt.Sprintf("Contact: <sip:alice@%s%s>", u.addr, u.uriParam()),
		"Content-Type: application/sdp",
	}, sdp)
}

func TestStaticRouteCall(t *testing.T) {
	carrier := newUA(t, transport.UDP)
	other := newUA(t, transport.UDP)
	rt := &fakeRouter{fn: reject(404)}
	cfg := testConfig()
	cfg.StaticRoutes = []StaticRoute{
		{Domain: "Carrier.Example", Destination: "sip:" + carrier.addr.String()},
		{Domain: "*", Destination: "sip:" + other.addr.String() + ";transport=udp"},
	}
	te := startEdge(t, cfg, Deps{Router: rt})

	tests := []struct {
		name string
		ruri string
		uas  *ua
	}{
		{"domain route", "sip:+15551234@carrier.example", carrier},
		{"wildcard for a foreign domain", "sip:dave@elsewhere.example.org", other},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := newUA(t, transport.UDP)
			callID := unique("static")
			u.sendTo(te.udp, u.inviteTo(tc.ruri, callID, unique("z9hG4bK-st")))
			u.expect("100 Trying", wait, isResponse(sip.INVITE, 100))

			in := tc.uas.expect("forwarded INVITE", wait, isRequest(sip.INVITE))
			req := in.msg.(*sip.Request)
			if got := req.Recipient.String(); got != tc.ruri {
				t.Errorf("Request-URI = %q, want %q kept", got, tc.ruri)
			}
			rr := req.GetHeader("Record-Route")
			if rr == nil || !strings.Contains(rr.Value(), te.udp.String()) || !strings.Contains(rr.Value(), ";lr") {
				t.Fatalf("Record-Route = %v, want the edge's %s;lr", rr, te.udp)
			}
			if mf := maxForwards(req); mf != 69 {
				t.Errorf("Max-Forwards = %d, want 69", mf)
			}
			tc.uas.reply(in, respond(req, 180, "Ringing", "b1"))
			u.expect("180", wait, isResponse(sip.INVITE, 180))
			tc.uas.reply(in, respond(req, 200, "OK", "b1", fmt.Sprintf("Contact: <sip:bob@%s>", tc.uas.addr)))
			ok := u.expect("200", wait, isResponse(sip.INVITE, 200)).msg.(*sip.Response)
			if ok.GetHeader("Record-Route") == nil {
				t.Fatalf("200 without Record-Route")
			}

			// ACK and BYE follow the route set through the edge to the UAS.
			for _, m := range []sip.RequestMethod{sip.ACK, sip.BYE} {
				cseq := "1 ACK"
				if m == sip.BYE {
					cseq = "2 BYE"
				}
				u.sendTo(te.udp, msg(fmt.Sprintf("%s sip:bob@%s SIP/2.0", m, tc.uas.addr), []string{
					"Via: " + u.via(unique("z9hG4bK-seq")),
					"Max-Forwards: 70",
					"Route: " + ok.GetHeader("Record-Route").Value(),
					"From: <sip:alice@localhost>;tag=a1",
					"To: <" + tc.ruri + ">;tag=b1",
					"Call-ID: " + callID,
					"CSeq: " + cseq,
				}, ""))
				got := tc.uas.expect(string(m)+" at the UAS", wait, isRequest(m))
				if m == sip.BYE {
					tc.uas.reply(got, respond(got.msg.(*sip.Request), 200, "OK", ""))
					u.expect("200 to BYE", wait, isResponse(sip.BYE, 200))
				}
			}
		})
	}

	t.Run("local domain goes to the router", func(t *testing.T) {
		u := newUA(t, transport.UDP)
		u.sendTo(te.udp, u.inviteTo("sip:bob@localhost", unique("static"), unique("z9hG4bK-st")))
		u.expect("404 from the router", wait, isResponse(sip.INVITE, 404))
	})
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if len(rt.calls) != 1 || rt.calls[0].GetRequestUri() != "sip:bob@localhost" {
		var uris []string
		for _, c := range rt.calls {
			uris = append(uris, c.GetRequestUri())
		}
		t.Errorf("router calls = %v, want only sip:bob@localhost", uris)
	}
}

func TestStaticRouteUnreachable(t *testing.T) {
	cfg := testConfig()
	// Nobody listens on the discard port: the branch times out (Timer B)
	// or fails on ICMP, and the caller gets a final error, not silence.
	cfg.StaticRoutes = []StaticRoute{{Domain: "*", Destination: "sip:127.0.0.1:9"}}
	te := startEdge(t, cfg, Deps{Router: &fakeRouter{fn: func(context.Context, *routerv1.RouteRequest) (*routerv1.RouteResponse, error) {
		t.Error("router called for a statically routed request")
		return nil, nil
	}}})
	u := newUA(t, transport.UDP)
	u.sendTo(te.udp, u.inviteTo("sip:x@gw.example", unique("static"), unique("z9hG4bK-st")))
	r := u.expect("final response", 2*wait, isFinal(sip.INVITE)).msg.(*sip.Response)
	if r.StatusCode < 400 {
		t.Errorf("status = %d, want an error", r.StatusCode)
	}
}

func TestStaticRouteValidate(t *testing.T) {
	tests := []struct {
		name   string
		routes []StaticRoute
		want   []string // substrings of the error; none means valid
	}{
		{"valid", []StaticRoute{{Domain: "a.example", Destination: "sip:192.0.2.1:5080;transport=tcp"}, {Domain: "*", Destination: "sips:gw.example"}}, nil},
		{"problems reported together", []StaticRoute{
			{Domain: "A.example", Destination: "sip:192.0.2.1"},
			{Domain: "a.example", Destination: "http://x"},
			{Domain: "", Destination: "sip:"},
			{Domain: "b.example", Destination: "sip:gw.example;transport=carrier-pigeon"},
		}, []string{
			`static_routes[1].domain ("a.example") has a route already`,
			`static_routes[1].destination ("http://x")`,
			`static_routes[2].domain is empty`,
			`static_routes[2].destination ("sip:")`,
			`static_routes[3].destination`,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.StaticRoutes = tc.routes
			cfg.SetDefaults()
			err := cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate = nil, want %v", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate = %v\nwant it to contain %q", err, w)
				}
			}
		})
	}
}
