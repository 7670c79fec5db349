package edge

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	routerv1 "github.com/sipd/sipd/proto/gen/sipd/router/v1"

	"github.com/sipd/sipd/edge/transport"
)

// is503For matches a 503 with Retry-After to the INVITE of callID.
func is503For(callID string) func(sip.Message) bool {
	return func(m sip.Message) bool {
		r, ok := m.(*sip.Response)
		return ok && r.StatusCode == 503 && r.CallID() != nil && string(*r.CallID()) == callID &&
			r.GetHeader("Retry-After") != nil
	}
}

// ringingCall sets up a call from caller to callee through the edge up to
// 180 Ringing and returns the INVITE as the callee got it.
func ringingCall(t *testing.T, te *testEdge, caller, callee *ua, callID string) received {
	t.Helper()
	caller.sendTo(te.udp, caller.invite(callID, "z9hG4bK-"+callID))
	in := callee.expect("INVITE at callee", wait, isRequest(sip.INVITE))
	callee.reply(in, respond(in.msg.(*sip.Request), 180, "Ringing", "b1"))
	caller.expect("180", wait, isResponse(sip.INVITE, 180))
	return in
}

// completeCall answers a ringing call with 200, then sends ACK and, with
// bye, BYE through the edge and expects them and the 200 to BYE.
func completeCall(t *testing.T, te *testEdge, caller, callee *ua, in received, callID string, bye bool) {
	t.Helper()
	inv := in.msg.(*sip.Request)
	contact := fmt.Sprintf("Contact: <sip:bob@%s>", callee.addr)
	callee.reply(in, respond(inv, 200, "OK", "b1", contact))
	ok := caller.expect("200", wait, isResponse(sip.INVITE, 200)).msg.(*sip.Response)
	rrs := ok.GetHeaders("Record-Route")
	var routes []string
	for i := len(rrs) - 1; i >= 0; i-- {
		routes = append(routes, "Route: "+rrs[i].Value())
	}
	inDialog := func(method string, cseq int) string {
		hs := append([]string{"Via: " + caller.via("z9hG4bK-"+strings.ToLower(method)+"-"+callID), "Max-Forwards: 70"}, routes...)
		hs = append(hs, "From: <sip:alice@localhost>;tag=a1", "To: <sip:bob@localhost>;tag=b1",
			"Call-ID: "+callID, fmt.Sprintf("CSeq: %d %s", cseq, method))
		return msg(method+" sip:bob@"+callee.addr.String()+" SIP/2.0", hs, "")
	}
	caller.sendTo(te.udp, inDialog("ACK", 1))
	callee.expect("ACK at callee", wait, isRequest(sip.ACK))
	if !bye {
		return
	}
	caller.sendTo(te.udp, inDialog("BYE", 2))
	b := callee.expect("BYE at callee", wait, isRequest(sip.BYE))
	callee.reply(b, respond(b.msg.(*sip.Request), 200, "OK", "b1"))
	caller.expect("200 to BYE", wait, isResponse(sip.BYE, 200))
}

// TestOverloadQueueFull saturates the worker queue with INVITEs the router
// never answers: a new INVITE gets 503 with Retry-After at once, and the
// call already ringing still gets its 200, ACK and BYE through.
func TestOverloadQueueFull(t *testing.T) {
	caller, callee := newUA(t, transport.UDP), newUA(t, transport.UDP)
	release := make(chan struct{})
	defer close(release)
	ring := forwardTo("sip:bob@" + callee.addr.String())
	rt := &fakeRouter{fn: func(ctx context.Context, in *routerv1.RouteRequest) (*routerv1.RouteResponse, error) {
		if strings.HasPrefix(in.CallId, "ring") {
			return ring(ctx, in)
		}
		select { // a router that hangs until the test ends
		case <-release:
		case <-ctx.Done():
		}
		return nil, ctx.Err()
	}}
	cfg := testConfig()
	cfg.Workers, cfg.QueueSize = 1, 1
	cfg.ServiceTimeout = 30 * time.Second
	cfg.Timers.FinalTimeout = 60 * time.Second
	te := startEdge(t, cfg, Deps{Router: rt})

	callID := unique("ring")
	in := ringingCall(t, te, caller, callee, callID)

	// The one worker blocks in the router; then one INVITE fills the queue.
	blocked := unique("block")
	caller.sendTo(te.udp, caller.invite(blocked, "z9hG4bK-"+blocked))
	deadline := time.Now().Add(wait)
	for {
		rt.mu.Lock()
		n := len(rt.calls)
		rt.mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("router has %d calls, want 2", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	queued := unique("block")
	caller.sendTo(te.udp, caller.invite(queued, "z9hG4bK-"+queued))
	caller.expect("100 to the queued INVITE", wait, isResponse(sip.INVITE, 100))

	refused := unique("block")
	caller.sendTo(te.udp, caller.invite(refused, "z9hG4bK-"+refused))
	caller.expect("503 with Retry-After to the INVITE past the queue", wait, is503For(refused))

	completeCall(t, te, caller, callee, in, callID, true)
}

// TestOverloadMaxTransactions fills the transaction table: past
// max_transactions a new INVITE gets 503 with Retry-After while the call
// holding the table still gets its 200 and ACK (stateless) through. (Its
// BYE is a new transaction: with the table still full it would get 503.)
func TestOverloadMaxTransactions(t *testing.T) {
	caller, callee := newUA(t, transport.UDP), newUA(t, transport.UDP)
	cfg := testConfig()
	cfg.MaxTransactions = 2 // the ringing call's server and client transactions
	te := startEdge(t, cfg, Deps{Router: &fakeRouter{fn: forwardTo("sip:bob@" + callee.addr.String())}})

	callID := unique("ring")
	in := ringingCall(t, te, caller, callee, callID)

	refused := unique("full")
	caller.sendTo(te.udp, caller.invite(refused, "z9hG4bK-"+refused))
	caller.expect("503 with Retry-After past max_transactions", wait, is503For(refused))

	completeCall(t, te, caller, callee, in, callID, false)
}
