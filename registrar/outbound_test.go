package registrar

import (
	"context"
	"testing"

	registrarv1 "github.com/sipd/sipd/proto/gen/sipd/registrar/v1"
)

// TestOutboundReplacesFlow checks RFC 5626 section 6: the same instance
// and reg-id over a new flow (another contact URI, another connection)
// replaces the binding; another reg-id is a second binding.
func TestOutboundReplacesFlow(t *testing.T) {
	f := newFixture(t, Config{})
	ob := func(uri string, regID int32, conn uint64, cseq uint32) *registrarv1.RegisterRequest {
		req := reg("call-ob", cseq, &registrarv1.ContactUpdate{Uri: uri, Instance: "<urn:uuid:1>", RegId: regID})
		req.Flow.Transport = registrarv1.Transport_TRANSPORT_TCP
		req.Flow.ConnectionId = conn
		return req
	}
	steps := []struct {
		req       *registrarv1.RegisterRequest
		wantConns []uint64
	}{
		{ob("sip:alice@198.51.100.7:40000;transport=tcp", 1, 1, 1), []uint64{1}},
		{ob("sip:alice@198.51.100.7:40001;transport=tcp", 1, 2, 2), []uint64{2}},
		{ob("sip:alice@198.51.100.7:40002;transport=tcp", 2, 3, 3), []uint64{3, 2}},
	}
	for i, s := range steps {
		resp, err := f.r.Register(context.Background(), s.req)
		if err != nil || resp.GetCode() != 200 {
			t.Fatalf("step %d: Register = %v, %v", i, resp, err)
		}
		var conns []uint64
		for _, b := range resp.GetBindings() {
			conns = append(conns, b.GetFlow().GetConnectionId())
		}
		if len(conns) != len(s.wantConns) {
			t.Fatalf("step %d: bindings on connections %v, want %v", i, conns, s.wantConns)
		}
		for j := range conns {
			if conns[j] != s.wantConns[j] {
				t.Errorf("step %d: bindings on connections %v, want %v", i, conns, s.wantConns)
			}
		}
	}
}

func TestReceivedOnViaMismatch(t *testing.T) {
	tests := []struct {
		name     string
		contact  string
		mismatch bool
		want     string
	}{
		{name: "public contact, via matches", contact: "sip:alice@203.0.113.9:5060", want: ""},
		{name: "public contact, via differs", contact: "sip:alice@203.0.113.9:5060", mismatch: true, want: "sip:198.51.100.7:40000;transport=udp"},
		{name: "contact is the source", contact: "sip:alice@198.51.100.7:40000", mismatch: true, want: ""},
		{name: "private contact", contact: "sip:alice@10.0.0.5:5060", want: "sip:198.51.100.7:40000;transport=udp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, Config{})
			req := reg("call-nat", 1, contact(tt.contact))
			req.ViaMismatch = tt.mismatch
			resp, err := f.r.Register(context.Background(), req)
			if err != nil || len(resp.GetBindings()) != 1 {
				t.Fatalf("Register = %v, %v", resp, err)
			}
			if got := resp.GetBindings()[0].GetReceived(); got != tt.want {
				t.Errorf("received = %q, want %q", got, tt.want)
			}
		})
	}
}
