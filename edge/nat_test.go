package edge

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"

	registrarv1 "github.com/sipd/sipd/proto/gen/sipd/registrar/v1"

	"github.com/sipd/sipd/edge/transport"
)

// Lookup and Unregister complete fakeRegistrar (helpers_test.go) as a
// RegistrarClient: it knows no bindings, so nothing is unregistered.
func (f *fakeRegistrar) Lookup(context.Context, *registrarv1.LookupRequest, ...grpc.CallOption) (*registrarv1.LookupResponse, error) {
	return &registrarv1.LookupResponse{}, nil
}

func (f *fakeRegistrar) Unregister(context.Context, *registrarv1.UnregisterRequest, ...grpc.CallOption) (*registrarv1.UnregisterResponse, error) {
	return &registrarv1.UnregisterResponse{}, nil
}

// natRegistrar is a registrar that keeps bindings with the flow of their
// REGISTER, as the real one does, and records Unregister calls.
type natRegistrar struct {
	mu       sync.Mutex
	edge     string // when set, the edge recorded in every flow instead of the caller
	public   bool   // no received address: the contacts are not behind a NAT
	bindings map[string]*registrarv1.Binding
	removed  []string
}

func newNATRegistrar() *natRegistrar {
	return &natRegistrar{bindings: make(map[string]*registrarv1.Binding)}
}

func (r *natRegistrar) Register(_ context.Context, in *registrarv1.RegisterRequest, _ ...grpc.CallOption) (*registrarv1.RegisterResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range in.GetContacts() {
		f := in.GetFlow()
		if r.edge != "" {
			f = &registrarv1.Flow{Edge: r.edge, Transport: f.GetTransport(), Source: f.GetSource(), ConnectionId: f.GetConnectionId()}
		}
		b := &registrarv1.Binding{Uri: c.GetUri(), Expires: durationpb.New(time.Hour), Flow: f}
		if !r.public {
			b.Received = "sip:" + in.GetFlow().GetSource()
		}
		r.bindings[c.GetUri()] = b
	}
	return &registrarv1.RegisterResponse{Code: 200, Bindings: r.list()}, nil
}

func (r *natRegistrar) list() []*registrarv1.Binding {
	var out []*registrarv1.Binding
	for _, b := range r.bindings {
		out = append(out, b)
	}
	return out
}

func (r *natRegistrar) Lookup(context.Context, *registrarv1.LookupRequest, ...grpc.CallOption) (*registrarv1.LookupResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return &registrarv1.LookupResponse{Bindings: r.list()}, nil
}

func (r *natRegistrar) Unregister(_ context.Context, in *registrarv1.UnregisterRequest, _ ...grpc.CallOption) (*registrarv1.UnregisterResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.bindings, in.GetContactUri())
	r.removed = append(r.removed, in.GetContactUri())
	return &registrarv1.UnregisterResponse{Removed: 1}, nil
}

func (r *natRegistrar) removedContacts() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.removed...)
}

// waitUntil polls cond until it holds, failing after d.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestNATConfig(t *testing.T) {
	off := false
	tests := []struct {
		name    string
		nat     NATConfig
		wantErr string
	}{
		{name: "defaults", nat: NATConfig{}},
		{name: "options", nat: NATConfig{Keepalive: "options", Interval: time.Second, MaxLost: 1}},
		{name: "crlf without remove on close", nat: NATConfig{Keepalive: "crlf", RemoveOnClose: &off}},
		{name: "unknown mode", nat: NATConfig{Keepalive: "stun"}, wantErr: `nat.keepalive ("stun") must be off, options or crlf`},
		{name: "negative interval", nat: NATConfig{Interval: -time.Second}, wantErr: "nat.interval (-1s) must be > 0"},
		{name: "negative max lost", nat: NATConfig{MaxLost: -1}, wantErr: "nat.max_lost (-1) must be >= 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.NAT = tt.nat
			cfg.SetDefaults()
			err := cfg.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Validate = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
	var c NATConfig
	c.SetDefaults()
	if c.Keepalive != KeepaliveOff || c.Interval != DefaultNATInterval || c.MaxLost != DefaultNATMaxLost || !c.removeOnClose() {
		t.Errorf("defaults = %+v, want off, %s, %d, remove_on_close", c, DefaultNATInterval, DefaultNATMaxLost)
	}
}

// registerNAT sends a REGISTER for sip:USER@localhost from u and waits for
// the 200.
func registerNAT(t *testing.T, te *testEdge, u *ua, user, contact string) {
	t.Helper()
	u.sendTo(te.addr(u.proto), msg("REGISTER sip:localhost SIP/2.0", []string{
		"Via: " + u.via("z9hG4bK-"+unique("nat")), "Max-Forwards: 70",
		"From: <sip:" + user + "@localhost>;tag=n1", "To: <sip:" + user + "@localhost>",
		"Call-ID: " + unique("nat-reg"), "CSeq: 1 REGISTER",
		"Contact: <" + contact + ">", "Expires: 3600",
	}, ""))
	u.expect("200 to REGISTER", 3*time.Second, isResponse(sip.REGISTER, 200))
}

func natTestConfig(keepalive string) Config {
	cfg := testConfig()
	cfg.Timers.FinalTimeout = 400 * time.Millisecond
	cfg.ServiceTimeout = 200 * time.Millisecond
	cfg.NAT = NATConfig{Keepalive: keepalive, Interval: 100 * time.Millisecond, MaxLost: 2}
	return cfg
}

// TestKeepaliveOptions: a NATed UDP contact gets OPTIONS at its source
// address while it answers; once it stops, it is unregistered after
// max_lost unanswered OPTIONS.
func TestKeepaliveOptions(t *testing.T) {
	reg := newNATRegistrar()
	te := startEdge(t, natTestConfig(KeepaliveOptions), Deps{Registrar: reg})
	u := newUA(t, transport.UDP)
	contact := "sip:nat@10.0.0.7:5060"
	registerNAT(t, te, u, "nat", contact)

	for i := range 3 {
		in := u.expect(fmt.Sprintf("keep-alive OPTIONS #%d", i), 2*time.Second, isRequest(sip.OPTIONS))
		req := in.msg.(*sip.Request)
		if req.Recipient.String() != contact {
			t.Errorf("OPTIONS Request-URI = %s, want the contact %s", req.Recipient.String(), contact)
		}
		u.reply(in, respond(req, 200, "OK", "ka"))
	}
	if got := reg.removedContacts(); len(got) != 0 {
		t.Fatalf("answering contact unregistered: %q", got)
	}
	start := time.Now()
	waitUntil(t, 5*time.Second, "the silent contact to be unregistered", func() bool {
		return len(reg.removedContacts()) == 1
	})
	if got := reg.removedContacts(); got[0] != contact {
		t.Errorf("unregistered %q, want %q", got, contact)
	}
	// Two pings, each timing out after final_timeout.
	if d := time.Since(start); d < 2*natTestConfig("").Timers.FinalTimeout-100*time.Millisecond {
		t.Errorf("unregistered after %s of silence, want at least max_lost timeouts", d)
	}
	waitUntil(t, 2*time.Second, "the binding forgotten", func() bool { return te.nat.count() == 0 })
}

// TestKeepaliveCRLF sends CRLF datagrams and never unregisters.
func TestKeepaliveCRLF(t *testing.T) {
	reg := newNATRegistrar()
	te := startEdge(t, natTestConfig(KeepaliveCRLF), Deps{Registrar: reg})
	u := newUA(t, transport.UDP)
	registerNAT(t, te, u, "crlf", "sip:crlf@10.0.0.8:5060")
	waitUntil(t, 3*time.Second, "three keep-alives", func() bool { return te.nat.pings.Load() >= 3 })
	if got := reg.removedContacts(); len(got) != 0 {
		t.Errorf("CRLF keep-alives unregistered %q", got)
	}
}

// TestKeepaliveOwnership: a binding whose flow the registrar records for
// another edge is not this edge's to ping or remove.
func TestKeepaliveOwnership(t *testing.T) {
	reg := newNATRegistrar()
	reg.edge = "192.0.2.1:5060"
	te := startEdge(t, natTestConfig(KeepaliveOptions), Deps{Registrar: reg})
	u := newUA(t, transport.UDP)
	registerNAT(t, te, u, "other", "sip:other@10.0.0.9:5060")
	if n := te.nat.count(); n != 0 {
		t.Fatalf("edge owns %d bindings of another edge's flow", n)
	}
	u.expectNone("keep-alive to another edge's binding", 500*time.Millisecond, isRequest(sip.OPTIONS))
}

// TestRemoveOnClose: NATed contacts registered over a TCP connection are
// unregistered when it closes, unless remove_on_close is false; a plain
// contact at a reachable address is kept.
func TestRemoveOnClose(t *testing.T) {
	off := false
	tests := []struct {
		name        string
		remove      *bool
		public      bool
		wantRemoved bool
	}{
		{name: "default removes", wantRemoved: true},
		{name: "disabled keeps", remove: &off},
		{name: "reachable contact kept", public: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := newNATRegistrar()
			reg.public = tt.public
			cfg := natTestConfig(KeepaliveOff)
			cfg.NAT.RemoveOnClose = tt.remove
			te := startEdge(t, cfg, Deps{Registrar: reg})
			u := newUA(t, transport.TCP)
			contact := "sip:tcp@" + u.addr.String() + ";transport=tcp"
			registerNAT(t, te, u, "tcp", contact)
			u.mu.Lock()
			c := u.conns[te.tcp]
			u.mu.Unlock()
			if c == nil {
				t.Fatal("no connection to the edge")
			}
			c.Close()
			if tt.wantRemoved {
				waitUntil(t, 3*time.Second, "the contact of the closed connection unregistered", func() bool {
					return len(reg.removedContacts()) == 1
				})
				if got := reg.removedContacts()[0]; got != contact {
					t.Errorf("unregistered %q, want %q", got, contact)
				}
				return
			}
			// Nothing to poll for: give a wrong removal the time to happen.
			time.Sleep(300 * time.Millisecond)
			if got := reg.removedContacts(); len(got) != 0 {
				t.Errorf("remove_on_close false, yet unregistered %q", got)
			}
		})
	}
}
