package edge

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"google.golang.org/protobuf/types/known/durationpb"

	registrarv1 "github.com/sipd/sipd/proto/gen/sipd/registrar/v1"
	routerv1 "github.com/sipd/sipd/proto/gen/sipd/router/v1"

	"github.com/sipd/sipd/edge/transport"
)

const wait = 3 * time.Second

func TestOptionsToUs(t *testing.T) {
	te := startEdge(t, testConfig(), Deps{})
	for _, p := range []transport.Proto{transport.UDP, transport.TCP} {
		t.Run(p.String(), func(t *testing.T) {
			u := newUA(t, p)
			u.sendTo(te.addr(p), msg("OPTIONS sip:"+te.addr(p).String()+" SIP/2.0", []string{
				"Via: SIP/2.0/" + p.String() + " 10.9.9.9:5099;branch=z9hG4bK-opt1;rport",
				"From: <sip:alice@localhost>;tag=x", "To: <sip:localhost>", "Call-ID: " + unique("opt"), "CSeq: 1 OPTIONS",
			}, ""))
			r := u.expect("200 to OPTIONS", wait, isResponse(sip.OPTIONS, 200)).msg.(*sip.Response)
			if r.GetHeader("Allow") == nil {
				t.Errorf("no Allow header")
			}
			via := r.Via()
			if got, _ := via.Params.Get("received"); got != "127.0.0.1" {
				t.Errorf("received = %q, want 127.0.0.1", got)
			}
			if got, _ := via.Params.Get("rport"); got == "" || p == transport.UDP && got != fmt.Sprint(u.addr.Port()) {
				t.Errorf("rport = %q, want %d", got, u.addr.Port())
			}
		})
	}
}

func TestRegister(t *testing.T) {
	reg := &fakeRegistrar{fn: func(_ context.Context, in *registrarv1.RegisterRequest) (*registrarv1.RegisterResponse, error) {
		return &registrarv1.RegisterResponse{Code: 200, Bindings: []*registrarv1.Binding{
			{Uri: in.Contacts[0].Uri, Expires: durationpb.New(time.Hour)},
		}}, nil
	}}
	te := startEdge(t, testConfig(), Deps{Registrar: reg})
	u := newUA(t, transport.UDP)
	u.sendTo(te.udp, msg("REGISTER sip:localhost SIP/2.0", []string{
		"Via: " + u.via("z9hG4bK-reg1"),
		"Max-Forwards: 70",
		"From: <sip:alice@localhost>;tag=r1", "To: <sip:alice@LOCALHOST>", "Call-ID: reg-1", "CSeq: 7 REGISTER",
		fmt.Sprintf("Contact: <sip:alice@%s>;expires=3600;q=0.5;+sip.instance=\"<urn:uuid:1>\";reg-id=1", u.addr),
		"Expires: 1800", "Path: <sip:p1.example;lr>,<sip:p2.example;lr>", "User-Agent: test-ua",
	}, ""))
	r := u.expect("200 to REGISTER", wait, isResponse(sip.REGISTER, 200)).msg.(*sip.Response)
	if c := r.GetHeader("Contact"); c == nil || !strings.Contains(c.Value(), "expires=3600") {
		t.Errorf("Contact = %v, want expires=3600", c)
	}
	if r.GetHeader("Date") == nil {
		t.Errorf("no Date header")
	}
	in := reg.last()
	switch {
	case in.Aor != "sip:alice@localhost":
		t.Errorf("aor = %q", in.Aor)
	case in.CallId != "reg-1" || in.Cseq != 7:
		t.Errorf("call-id/cseq = %q/%d", in.CallId, in.Cseq)
	case len(in.Contacts) != 1 || in.Contacts[0].Q != 500 || in.Contacts[0].RegId != 1 || in.Contacts[0].Instance != "<urn:uuid:1>" || in.Contacts[0].Expires.AsDuration() != time.Hour:
		t.Errorf("contacts = %v", in.Contacts)
	case in.Expires.AsDuration() != 1800*time.Second:
		t.Errorf("expires = %v", in.Expires)
	case len(in.Path) != 3 || !strings.HasSuffix(in.Path[0], "@"+te.udp.String()+";lr;ob>") || in.Path[1] != "<sip:p1.example;lr>":
		// An outbound contact (+sip.instance and reg-id): our Path with a
		// flow token first, then the UA's.
		t.Errorf("path = %v", in.Path)
	case in.Flow.GetTransport() != registrarv1.Transport_TRANSPORT_UDP || in.Flow.GetSource() != u.addr.String() || in.Flow.GetEdge() != te.ID():
		t.Errorf("flow = %v (edge id %s)", in.Flow, te.ID())
	case in.UserAgent != "test-ua":
		t.Errorf("user agent = %q", in.UserAgent)
	}
}

func TestRegisterServiceDown(t *testing.T) {
	reg := &fakeRegistrar{fn: func(ctx context.Context, _ *registrarv1.RegisterRequest) (*registrarv1.RegisterResponse, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	te := startEdge(t, testConfig(), Deps{Registrar: reg})
	u := newUA(t, transport.UDP)
	start := time.Now()
	u.sendTo(te.udp, msg("REGISTER sip:localhost SIP/2.0", []string{
		"Via: " + u.via("z9hG4bK-reg2"), "From: <sip:a@localhost>;tag=1", "To: <sip:a@localhost>",
		"Call-ID: reg-2", "CSeq: 1 REGISTER", "Contact: <sip:a@127.0.0.1:1>",
	}, ""))
	r := u.expect("503", wait, isResponse(sip.REGISTER, 503)).msg.(*sip.Response)
	if r.GetHeader("Retry-After") == nil {
		t.Errorf("503 without Retry-After")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("503 after %v, want within the service timeout", d)
	}
}

// call runs INVITE/100/180/200/ACK/BYE/200 between two UAs through the edge.
func TestCall(t *testing.T) {
	tests := []struct {
		name       string
		in, out    transport.Proto
		recordRows int
	}{
		{"UDP", transport.UDP, transport.UDP, 1},
		{"TCP", transport.TCP, transport.TCP, 1},
		{"UDP to TCP (double Record-Route)", transport.UDP, transport.TCP, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.in
			caller, callee := newUA(t, tc.in), newUA(t, tc.out)
			rt := &fakeRouter{fn: forwardTo(fmt.Sprintf("sip:bob@%s%s", callee.addr, callee.uriParam()))}
			te := startEdge(t, testConfig(), Deps{Router: rt})
			edge := te.addr(p)
			callID := unique("call")
			caller.sendTo(edge, caller.invite(callID, "z9hG4bK-inv-"+callID))
			caller.expect("100 Trying", wait, isResponse(sip.INVITE, 100))

			in := callee.expect("INVITE at callee", wait, isRequest(sip.INVITE))
			inv := in.msg.(*sip.Request)
			if got := inv.Recipient.User; got != "bob" {
				t.Errorf("R-URI user = %q", got)
			}
			if rr := inv.GetHeaders("Record-Route"); len(rr) != tc.recordRows {
				t.Fatalf("%d Record-Route headers, want %d", len(rr), tc.recordRows)
			}
			if mf := inv.MaxForwards(); mf == nil || *mf != 69 {
				t.Errorf("Max-Forwards = %v, want 69", mf)
			}
			if vias := inv.GetHeaders("Via"); len(vias) != 2 {
				t.Errorf("vias = %d, want 2", len(vias))
			}
			contact := fmt.Sprintf("Contact: <sip:bob@%s%s>", callee.addr, callee.uriParam())
			callee.reply(in, respond(inv, 180, "Ringing", "b1", contact))
			caller.expect("180", wait, isResponse(sip.INVITE, 180))
			callee.reply(in, respond(inv, 200, "OK", "b1", contact))
			ok := caller.expect("200", wait, isResponse(sip.INVITE, 200)).msg.(*sip.Response)
			if vias := ok.GetHeaders("Via"); len(vias) != 1 {
				t.Errorf("200 at caller has %d Vias, want 1", len(vias))
			}

			// The caller's route set is the Record-Route list reversed.
			rrs := ok.GetHeaders("Record-Route")
			var routes []string
			for i := len(rrs) - 1; i >= 0; i-- {
				routes = append(routes, "Route: "+rrs[i].Value())
			}
			target := fmt.Sprintf("sip:bob@%s%s", callee.addr, callee.uriParam())
			inDialog := func(method string, cseq int, branch string) string {
				hs := append([]string{"Via: " + caller.via(branch), "Max-Forwards: 70"}, routes...)
				hs = append(hs, "From: <sip:alice@localhost>;tag=a1", "To: <sip:bob@localhost>;tag=b1",
					"Call-ID: "+callID, fmt.Sprintf("CSeq: %d %s", cseq, method))
				return msg(method+" "+target+" SIP/2.0", hs, "")
			}
			caller.sendTo(edge, inDialog("ACK", 1, "z9hG4bK-ack-"+callID))
			ack := callee.expect("ACK at callee", wait, isRequest(sip.ACK)).msg.(*sip.Request)
			if r := ack.GetHeaders("Route"); len(r) != 0 {
				t.Errorf("ACK at callee still has %d Route headers", len(r))
			}
			caller.sendTo(edge, inDialog("BYE", 2, "z9hG4bK-bye-"+callID))
			bin := callee.expect("BYE at callee", wait, isRequest(sip.BYE))
			callee.reply(bin, respond(bin.msg.(*sip.Request), 200, "OK", "b1"))
			caller.expect("200 to BYE", wait, isResponse(sip.BYE, 200))
		})
	}
}

func TestRouterReject(t *testing.T) {
	tests := []struct {
		name string
		code int32
	}{
		{"not found", 404},
		{"unavailable", 480},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			te := startEdge(t, testConfig(), Deps{Router: &fakeRouter{fn: reject(tc.code)}})
			u := newUA(t, transport.UDP)
			callID := unique("rej")
			branch := "z9hG4bK-rej-" + callID
			u.sendTo(te.udp, u.invite(callID, branch))
			r := u.expect("final", wait, isFinal(sip.INVITE)).msg.(*sip.Response)
			if r.StatusCode != int(tc.code) {
				t.Fatalf("code = %d, want %d", r.StatusCode, tc.code)
			}
			// The ACK for the non-2xx is absorbed: no retransmission follows.
			u.sendTo(te.udp, msg("ACK sip:bob@localhost SIP/2.0", []string{
				"Via: " + u.via(branch), "Max-Forwards: 70", "From: <sip:alice@localhost>;tag=a1",
				"To: " + r.To().Value(), "Call-ID: " + callID, "CSeq: 1 ACK",
			}, ""))
			u.expectNone("retransmitted final", 300*time.Millisecond, isFinal(sip.INVITE))
		})
	}
}

func TestRouterDown(t *testing.T) {
	rt := &fakeRouter{fn: func(ctx context.Context, _ *routerv1.RouteRequest) (*routerv1.RouteResponse, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	cfg := testConfig()
	te := startEdge(t, cfg, Deps{Router: rt})
	u := newUA(t, transport.UDP)
	start := time.Now()
	u.sendTo(te.udp, u.invite(unique("down"), "z9hG4bK-down"))
	r := u.expect("503", wait, isResponse(sip.INVITE, 503)).msg.(*sip.Response)
	if r.GetHeader("Retry-After") == nil {
		t.Errorf("no Retry-After")
	}
	if d := time.Since(start); d > cfg.ServiceTimeout+500*time.Millisecond {
		t.Errorf("503 after %v", d)
	}
}

func TestCancel(t *testing.T) {
	caller, callee := newUA(t, transport.UDP), newUA(t, transport.UDP)
	te := startEdge(t, testConfig(), Deps{Router: &fakeRouter{fn: forwardTo("sip:bob@" + callee.addr.String())}})
	callID := unique("cancel")
	branch := "z9hG4bK-c-" + callID
	caller.sendTo(te.udp, caller.invite(callID, branch))
	in := callee.expect("INVITE", wait, isRequest(sip.INVITE))
	inv := in.msg.(*sip.Request)
	callee.reply(in, respond(inv, 180, "Ringing", "b2"))
	caller.expect("180", wait, isResponse(sip.INVITE, 180))

	caller.sendTo(te.udp, msg("CANCEL sip:bob@localhost SIP/2.0", []string{
		"Via: " + caller.via(branch), "Max-Forwards: 70", "From: <sip:alice@localhost>;tag=a1",
		"To: <sip:bob@localhost>", "Call-ID: " + callID, "CSeq: 1 CANCEL",
	}, ""))
	caller.expect("200 to CANCEL", wait, isResponse(sip.CANCEL, 200))
	cin := callee.expect("CANCEL at callee", wait, isRequest(sip.CANCEL))
	c := cin.msg.(*sip.Request)
	if branchOf(c) != branchOf(inv) {
		t.Errorf("CANCEL branch %q, INVITE branch %q", branchOf(c), branchOf(inv))
	}
	callee.reply(cin, respond(c, 200, "OK", "b2"))
	callee.reply(in, respond(inv, 487, "Request Terminated", "b2"))
	caller.expect("487", wait, isResponse(sip.INVITE, 487))
	callee.expect("ACK for 487", wait, isRequest(sip.ACK))

	// A CANCEL matching nothing gets 481.
	caller.sendTo(te.udp, msg("CANCEL sip:bob@localhost SIP/2.0", []string{
		"Via: " + caller.via("z9hG4bK-nothing"), "From: <sip:alice@localhost>;tag=a1",
		"To: <sip:bob@localhost>", "Call-ID: nothing", "CSeq: 1 CANCEL",
	}, ""))
	caller.expect("481", wait, isResponse(sip.CANCEL, 481))
}

func TestClientTimeout(t *testing.T) {
	callee := newUA(t, transport.UDP) // never answers
	cfg := testConfig()
	cfg.Timers.FinalTimeout = 400 * time.Millisecond
	cfg.ServiceTimeout = 200 * time.Millisecond
	te := startEdge(t, cfg, Deps{Router: &fakeRouter{fn: forwardTo("sip:bob@" + callee.addr.String())}})
	u := newUA(t, transport.UDP)
	u.sendTo(te.udp, u.invite(unique("to"), "z9hG4bK-to"))
	u.expect("408", wait, isResponse(sip.INVITE, 408))
	// Timer A retransmitted the INVITE meanwhile.
	callee.expect("INVITE", time.Second, isRequest(sip.INVITE))
	callee.expect("retransmitted INVITE", time.Second, isRequest(sip.INVITE))
}

func TestFailover(t *testing.T) {
	first, second := newUA(t, transport.UDP), newUA(t, transport.UDP)
	rt := &fakeRouter{fn: func(context.Context, *routerv1.RouteRequest) (*routerv1.RouteResponse, error) {
		return &routerv1.RouteResponse{Action: &routerv1.RouteResponse_Forward{Forward: &routerv1.Forward{
			Groups: []*routerv1.TargetGroup{
				{Targets: []*routerv1.Target{{RequestUri: "sip:bob@" + first.addr.String()}}},
				{Targets: []*routerv1.Target{{RequestUri: "sip:bob@" + second.addr.String()}}},
			},
		}}}, nil
	}}
	te := startEdge(t, testConfig(), Deps{Router: rt})
	u := newUA(t, transport.UDP)
	u.sendTo(te.udp, u.invite(unique("fo"), "z9hG4bK-fo"))
	in := first.expect("INVITE at first", wait, isRequest(sip.INVITE))
	first.reply(in, respond(in.msg.(*sip.Request), 503, "Service Unavailable", "f1"))
	in2 := second.expect("INVITE at second", wait, isRequest(sip.INVITE))
	second.reply(in2, respond(in2.msg.(*sip.Request), 200, "OK", "s1", "Contact: <sip:bob@"+second.addr.String()+">"))
	u.expect("200 from second", wait, isResponse(sip.INVITE, 200))
}

func TestMalformed(t *testing.T) {
	te := startEdge(t, testConfig(), Deps{})
	u := newUA(t, transport.UDP)
	base := map[string]string{
		"via":     "Via: " + u.via("z9hG4bK-bad"),
		"from":    "From: <sip:a@localhost>;tag=1",
		"to":      "To: <sip:b@localhost>",
		"call-id": "Call-ID: bad-1",
		"cseq":    "CSeq: 1 MESSAGE",
	}
	build := func(start string, drop string, extra ...string) string {
		var hs []string
		for _, k := range []string{"via", "from", "to", "call-id", "cseq"} {
			if k != drop {
				hs = append(hs, base[k])
			}
		}
		return msg(start, append(hs, extra...), "")
	}
	tests := []struct {
		name string
		data string
		want int // 0: dropped
	}{
		{"broken start line", "INVITE\r\nVia: x\r\n\r\n", 0},
		{"garbage", "\x00\x01hello", 0},
		{"missing via", build("MESSAGE sip:b@localhost SIP/2.0", "via"), 0},
		{"missing call-id", build("MESSAGE sip:b@localhost SIP/2.0", "call-id"), 400},
		{"missing cseq", build("MESSAGE sip:b@localhost SIP/2.0", "cseq"), 400},
		{"missing from", build("MESSAGE sip:b@localhost SIP/2.0", "from"), 400},
		{"missing to", build("MESSAGE sip:b@localhost SIP/2.0", "to"), 400},
		{"content-length too large", strings.Replace(build("MESSAGE sip:b@localhost SIP/2.0", ""), "Content-Length: 0", "Content-Length: 500", 1), 400},
		{"bad max-forwards", build("MESSAGE sip:b@localhost SIP/2.0", "", "Max-Forwards: abc"), 400},
		{"max-forwards zero", build("MESSAGE sip:b@localhost SIP/2.0", "", "Max-Forwards: 0"), 483},
		{"malformed response", "SIP/2.0 200 OK\r\nCSeq: x\r\n\r\n", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u.sendTo(te.udp, tc.data)
			if tc.want == 0 {
				u.expectNone("answer", 150*time.Millisecond, func(sip.Message) bool { return true })
			} else {
				r := u.expect("answer", wait, func(m sip.Message) bool { _, ok := m.(*sip.Response); return ok }).msg.(*sip.Response)
				if r.StatusCode != tc.want {
					t.Errorf("code = %d, want %d", r.StatusCode, tc.want)
				}
			}
			// The edge still answers.
			u.sendTo(te.udp, msg("OPTIONS sip:127.0.0.1 SIP/2.0", []string{
				"Via: " + u.via("z9hG4bK-"+unique("o")), "From: <sip:a@localhost>;tag=1", "To: <sip:localhost>",
				"Call-ID: " + unique("o"), "CSeq: 1 OPTIONS",
			}, ""))
			u.expect("200 to OPTIONS", wait, isResponse(sip.OPTIONS, 200))
		})
	}
}
