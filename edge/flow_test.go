package edge

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"google.golang.org/protobuf/types/known/durationpb"

	registrarv1 "github.com/sipd/sipd/proto/gen/sipd/registrar/v1"
	routerv1 "github.com/sipd/sipd/proto/gen/sipd/router/v1"

	"github.com/sipd/sipd/edge/transport"
)

func TestFlowToken(t *testing.T) {
	a, b := idleEdge(t), idleEdge(t)
	f := flow{proto: transport.TCP, local: netip.MustParseAddrPort("127.0.0.1:5060"), source: netip.MustParseAddrPort("[2001:db8::1]:40000"), connID: 42}
	tok := a.flowToken(f)
	got, ok := a.parseFlowToken(tok)
	if !ok || got != f {
		t.Fatalf("parseFlowToken = %+v, %v; want %+v", got, ok, f)
	}
	flipped := []byte(tok)
	flipped[len(flipped)/2] ^= 1
	for name, s := range map[string]string{
		"another edge's": "", "forged": string(flipped), "empty": "", "garbage": "not-a-token",
	} {
		e := a
		if name == "another edge's" {
			e, s = b, tok
		}
		if _, ok := e.parseFlowToken(s); ok {
			t.Errorf("%s token accepted", name)
		}
	}
}

func FuzzParseFlowToken(f *testing.F) {
	e := idleEdge(f)
	f.Add(e.flowToken(flow{proto: transport.UDP, local: netip.MustParseAddrPort("127.0.0.1:5060"), source: netip.MustParseAddrPort("10.0.0.1:5060")}))
	f.Add("AQEAAAAAAAAAAAAAAAAAAAAAAAD__38AAAGTMgAAAAAAAAAAAAD__38AAAGem2u-YTiRIsCtApE")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		if fl, ok := e.parseFlowToken(s); ok && e.flowToken(fl) != s {
			t.Fatalf("accepted token %q does not round-trip", s)
		}
	})
}

// locationService is a registrar and router for one user, enough to route
// a call to the binding as the real services do (target route = Path).
type locationService struct {
	mu      sync.Mutex
	binding *registrarv1.Binding
}

func (l *locationService) register(_ context.Context, in *registrarv1.RegisterRequest) (*registrarv1.RegisterResponse, error) {
	c := in.Contacts[0]
	b := &registrarv1.Binding{Uri: c.Uri, Expires: durationpb.New(time.Hour), Path: in.Path, Flow: in.Flow, Instance: c.Instance, RegId: c.RegId}
	l.mu.Lock()
	l.binding = b
	l.mu.Unlock()
	return &registrarv1.RegisterResponse{Code: 200, Bindings: []*registrarv1.Binding{b}}, nil
}

func (l *locationService) route(_ context.Context, in *routerv1.RouteRequest) (*routerv1.RouteResponse, error) {
	l.mu.Lock()
	b := l.binding
	l.mu.Unlock()
	if b == nil {
		return &routerv1.RouteResponse{Action: &routerv1.RouteResponse_Reject{Reject: &routerv1.Reject{Code: 404}}}, nil
	}
	t := &routerv1.Target{RequestUri: b.Uri, Route: b.Path, Edge: b.Flow.GetEdge(), ConnectionId: b.Flow.GetConnectionId()}
	return &routerv1.RouteResponse{Action: &routerv1.RouteResponse_Forward{Forward: &routerv1.Forward{
		RecordRoute: true, Groups: []*routerv1.TargetGroup{{Targets: []*routerv1.Target{t}}}}}}, nil
}

// TestCallThroughOtherEdgeFlow: alice registers over TCP through edge A
// with a contact nobody can reach; a call entering edge B reaches her over
// that same TCP connection through A, and the 200, ACK and BYE work. Once
// her connection is gone, a call gets 430 Flow Failed.
func TestCallThroughOtherEdgeFlow(t *testing.T) {
	loc := &locationService{}
	deps := Deps{Registrar: &fakeRegistrar{fn: loc.register}, Router: &fakeRouter{fn: loc.route}}
	edgeA, edgeB := startEdge(t, testConfig(), deps), startEdge(t, testConfig(), deps)
	alice, bob := newUA(t, transport.TCP), newUA(t, transport.UDP)

	const unreachable = "sip:alice@192.0.2.1:5999;transport=tcp"
	alice.sendTo(edgeA.tcp, msg("REGISTER sip:localhost SIP/2.0", []string{
		"Via: " + alice.via("z9hG4bK-flowreg"), "Max-Forwards: 70", "Supported: path, outbound",
		"From: <sip:alice@localhost>;tag=r1", "To: <sip:alice@localhost>", "Call-ID: flow-reg", "CSeq: 1 REGISTER",
		"Contact: <" + unreachable + `>;+sip.instance="<urn:uuid:a1>";reg-id=1`,
	}, ""))
	reg := alice.expect("200 to REGISTER", wait, isResponse(sip.REGISTER, 200))
	res := reg.msg.(*sip.Response)
	if p := res.GetHeader("Path"); p == nil || !strings.Contains(p.Value(), ";transport=tcp;lr;ob>") {
		t.Errorf("Path in 200 = %v, want ours echoed (Supported: path)", p)
	}
	if r := res.GetHeader("Require"); r == nil || r.Value() != "outbound" {
		t.Errorf("Require = %v, want outbound", r)
	}
	if c := res.GetHeader("Contact"); c == nil || !strings.Contains(c.Value(), "reg-id=1") {
		t.Errorf("Contact = %v, want reg-id echoed", c)
	}

	callID := unique("flowcall")
	inv := msg("INVITE sip:alice@localhost SIP/2.0", []string{
		"Via: " + bob.via("z9hG4bK-"+callID), "Max-Forwards: 70",
		"From: <sip:bob@localhost>;tag=b1", "To: <sip:alice@localhost>", "Call-ID: " + callID, "CSeq: 1 INVITE",
		fmt.Sprintf("Contact: <sip:bob@%s>", bob.addr),
	}, "")
	bob.sendTo(edgeB.udp, inv)
	in := alice.expect("INVITE at alice", wait, isRequest(sip.INVITE))
	if in.conn != reg.conn {
		t.Fatalf("INVITE came on another connection than alice's REGISTER")
	}
	invAtAlice := in.msg.(*sip.Request)
	if r := invAtAlice.GetHeaders("Route"); len(r) != 0 {
		t.Errorf("INVITE at alice still has Route %v", r)
	}
	if vias := invAtAlice.GetHeaders("Via"); len(vias) != 3 {
		t.Errorf("INVITE at alice has %d Vias, want 3 (bob, B, A)", len(vias))
	}
	aliceContact := fmt.Sprintf("Contact: <%s>", unreachable)
	alice.reply(in, respond(invAtAlice, 200, "OK", "a1", aliceContact))
	ok := bob.expect("200 at bob", wait, isResponse(sip.INVITE, 200)).msg.(*sip.Response)

	rrs := ok.GetHeaders("Record-Route")
	var routes []string
	for i := len(rrs) - 1; i >= 0; i-- {
		routes = append(routes, "Route: "+rrs[i].Value())
	}
	inDialog := func(method string, cseq int) string {
		hs := append([]string{"Via: " + bob.via("z9hG4bK-"+method+callID), "Max-Forwards: 70"}, routes...)
		hs = append(hs, "From: <sip:bob@localhost>;tag=b1", "To: <sip:alice@localhost>;tag=a1",
			"Call-ID: "+callID, fmt.Sprintf("CSeq: %d %s", cseq, method))
		return msg(method+" "+unreachable+" SIP/2.0", hs, "")
	}
	bob.sendTo(edgeB.udp, inDialog("ACK", 1))
	if ack := alice.expect("ACK at alice", wait, isRequest(sip.ACK)); ack.conn != reg.conn {
		t.Errorf("ACK came on another connection")
	}
	bob.sendTo(edgeB.udp, inDialog("BYE", 2))
	bye := alice.expect("BYE at alice", wait, isRequest(sip.BYE))
	if bye.conn != reg.conn {
		t.Errorf("BYE came on another connection")
	}
	alice.reply(bye, respond(bye.msg.(*sip.Request), 200, "OK", "a1"))
	bob.expect("200 to BYE", wait, isResponse(sip.BYE, 200))

	// Her connection closes: the flow has failed.
	reg.conn.Close()
	deadline := time.Now().Add(3 * time.Second)
	for i := 0; ; i++ {
		id := unique("flowgone")
		bob.sendTo(edgeB.udp, msg("INVITE sip:alice@localhost SIP/2.0", []string{
			"Via: " + bob.via("z9hG4bK-"+id), "Max-Forwards: 70",
			"From: <sip:bob@localhost>;tag=b2", "To: <sip:alice@localhost>", "Call-ID: " + id, "CSeq: 1 INVITE",
		}, ""))
		r := bob.expect("final", wait, isFinal(sip.INVITE)).msg.(*sip.Response)
		if r.StatusCode == 430 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("INVITE after the connection closed = %d, want 430 Flow Failed", r.StatusCode)
		}
		time.Sleep(50 * time.Millisecond) // the edge notices the close asynchronously
	}
}

func TestViaMismatch(t *testing.T) {
	src := inbound{proto: transport.UDP, source: netip.MustParseAddrPort("198.51.100.7:40000")}
	tests := []struct {
		name, via string
		proto     transport.Proto
		want      bool
	}{
		{name: "same address and port", via: "198.51.100.7:40000", want: false},
		{name: "private address", via: "10.0.0.5:5060", want: true},
		{name: "port differs over udp", via: "198.51.100.7:5060", want: true},
		{name: "port differs over tcp", via: "198.51.100.7:5060", proto: transport.TCP, want: false},
		{name: "host name", via: "phone.example", want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := src
			if tt.proto != 0 {
				s.proto = tt.proto
			}
			req := sip.NewRequest(sip.REGISTER, sip.Uri{Host: "localhost"})
			req.AppendHeader(sip.NewHeader("Via", "SIP/2.0/UDP "+tt.via+";branch=z9hG4bK1"))
			raw, err := sip.ParseMessage([]byte(req.String()))
			if err != nil {
				t.Fatal(err)
			}
			if got := viaMismatch(raw.(*sip.Request), s); got != tt.want {
				t.Errorf("viaMismatch = %v, want %v", got, tt.want)
			}
		})
	}
}
