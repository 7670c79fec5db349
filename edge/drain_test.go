package edge

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipd/sipd/edge/transport"
)

// TestDrainOnShutdown checks what the edge does once its context ends: a
// new INVITE gets 503 with Retry-After, the call already ringing still
// gets its 200 relayed, and Run returns as soon as that call is answered,
// well before the drain timeout.
func TestDrainOnShutdown(t *testing.T) {
	caller, callee := newUA(t, transport.UDP), newUA(t, transport.UDP)
	cfg := testConfig()
	cfg.DrainTimeout = 10 * time.Second
	e, err := New(cfg, Deps{
		Router: &fakeRouter{fn: forwardTo(fmt.Sprintf("sip:bob@%s", callee.addr))},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	select {
	case <-e.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("edge not ready")
	}
	var edgeAddr = e.Addrs()[0].Addr
	for _, l := range e.Addrs() {
		if l.Proto == transport.UDP {
			edgeAddr = l.Addr
		}
	}

	callID := unique("drain")
	caller.sendTo(edgeAddr, caller.invite(callID, "z9hG4bK-drain-"+callID))
	in := callee.expect("INVITE at callee", wait, isRequest(sip.INVITE))
	inv := in.msg.(*sip.Request)
	callee.reply(in, respond(inv, 180, "Ringing", "b1"))
	caller.expect("180", wait, isResponse(sip.INVITE, 180))

	cancel()
	// New out-of-dialog work is refused while the call is pending.
	deadline := time.Now().Add(wait)
	for !e.draining.Load() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	newCall := unique("drain-new")
	caller.sendTo(edgeAddr, caller.invite(newCall, "z9hG4bK-drain-"+newCall))
	refused := caller.expect("503 to a new INVITE", wait, func(m sip.Message) bool {
		r, ok := m.(*sip.Response)
		return ok && r.StatusCode == 503 && r.CallID() != nil && string(*r.CallID()) == newCall
	}).msg.(*sip.Response)
	if refused.GetHeader("Retry-After") == nil {
		t.Error("503 while draining has no Retry-After")
	}
	select {
	case err := <-done:
		t.Fatalf("Run returned (%v) while a call was still pending", err)
	default:
	}

	// The pending call completes and Run returns promptly after it.
	callee.reply(in, respond(inv, 200, "OK", "b1", fmt.Sprintf("Contact: <sip:bob@%s>", callee.addr)))
	caller.expect("200 relayed while draining", wait, isResponse(sip.INVITE, 200))
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Run did not return within 3s of the last pending call's answer")
	}
}
