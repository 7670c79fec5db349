package registrar

import (
	"context"
	"slices"
	"testing"
	"time"

	registrarv1 "github.com/sipd/sipd/proto/gen/sipd/registrar/v1"
)

type bindingView struct {
	uri     string
	expires time.Duration
}

func view(bs []*registrarv1.Binding) []bindingView {
	out := make([]bindingView, len(bs))
	for i, b := range bs {
		out[i] = bindingView{b.GetUri(), b.GetExpires().AsDuration()}
	}
	return out
}

func TestRegister(t *testing.T) {
	const (
		c1 = "sip:alice@198.51.100.7:5060"
		c2 = "sip:alice@198.51.100.8:5062;transport=tcp"
	)
	tests := []struct {
		name    string
		cfg     Config
		setup   []*registrarv1.RegisterRequest // each must answer 200
		advance time.Duration                  // clock moves after setup
		req     *registrarv1.RegisterRequest
		code    int32
		want    []bindingView
		check   func(t *testing.T, resp *registrarv1.RegisterResponse)
	}{
		{
			name: "new binding gets the default expiry",
			req:  reg("a", 1, contact(c1)),
			code: 200,
			want: []bindingView{{c1, time.Hour}},
		},
		{
			name: "expires header applies to contacts without expires",
			req:  withExpires(reg("a", 1, contact(c1)), 600*time.Second),
			code: 200,
			want: []bindingView{{c1, 600 * time.Second}},
		},
		{
			name: "contact expires wins over the header",
			req:  withExpires(reg("a", 1, contactExp(c1, 120*time.Second)), 600*time.Second),
			code: 200,
			want: []bindingView{{c1, 120 * time.Second}},
		},
		{
			name: "expires above max is clamped",
			req:  reg("a", 1, contactExp(c1, 72*time.Hour)),
			code: 200,
			want: []bindingView{{c1, 24 * time.Hour}},
		},
		{
			name: "expires below min is 423 with min expires",
			req:  reg("a", 1, contactExp(c1, 30*time.Second)),
			code: 423,
			check: func(t *testing.T, resp *registrarv1.RegisterResponse) {
				if got := resp.GetMinExpires().AsDuration(); got != 60*time.Second {
					t.Errorf("min_expires = %v, want 60s", got)
				}
			},
		},
		{
			name:  "423 leaves existing bindings alone",
			setup: []*registrarv1.RegisterRequest{reg("a", 1, contact(c1))},
			req:   reg("a", 2, contact(c2), contactExp(c1, 10*time.Second)),
			code:  423,
		},
		{
			name:  "expires 0 removes the contact",
			setup: []*registrarv1.RegisterRequest{reg("a", 1, contact(c1), contact(c2))},
			req:   reg("a", 2, contactExp(c1, 0)),
			code:  200,
			want:  []bindingView{{c2, time.Hour}},
		},
		{
			name:  "expires 0 of an unknown contact is fine",
			setup: []*registrarv1.RegisterRequest{reg("a", 1, contact(c1))},
			req:   reg("b", 1, contactExp(c2, 0)),
			code:  200,
			want:  []bindingView{{c1, time.Hour}},
		},
		{
			name:  "wildcard with expires 0 removes every contact",
			setup: []*registrarv1.RegisterRequest{reg("a", 1, contact(c1)), reg("b", 1, contact(c2))},
			req:   withExpires(&registrarv1.RegisterRequest{Aor: "sip:alice@example.com", CallId: "c", Cseq: 1, Wildcard: true}, 0),
			code:  200,
			want:  []bindingView{},
		},
		{
			name: "wildcard with non-zero expires is 400",
			req:  withExpires(&registrarv1.RegisterRequest{Aor: "sip:alice@example.com", CallId: "c", Cseq: 1, Wildcard: true}, time.Hour),
			code: 400,
		},
		{
			name: "wildcard without expires is 400",
			req:  &registrarv1.RegisterRequest{Aor: "sip:alice@example.com", CallId: "c", Cseq: 1, Wildcard: true},
			code: 400,
		},
		{
			name: "wildcard with other contacts is 400",
			req:  withExpires(&registrarv1.RegisterRequest{Aor: "sip:alice@example.com", CallId: "c", Cseq: 1, Wildcard: true, Contacts: []*registrarv1.ContactUpdate{contact(c1)}}, 0),
			code: 400,
		},
		{
			name:  "wildcard with an older cseq of the same call-id is 500",
			setup: []*registrarv1.RegisterRequest{reg("a", 5, contact(c1))},
			req:   withExpires(&registrarv1.RegisterRequest{Aor: "sip:alice@example.com", CallId: "a", Cseq: 4, Wildcard: true}, 0),
			code:  500,
		},
		{
			name:    "refresh with a higher cseq renews the expiry",
			setup:   []*registrarv1.RegisterRequest{reg("a", 1, contact(c1))},
			advance: 30 * time.Minute,
			req:     reg("a", 2, contact(c1)),
			code:    200,
			want:    []bindingView{{c1, time.Hour}},
		},
		{
			name:    "retransmission answers the bindings unchanged",
			setup:   []*registrarv1.RegisterRequest{reg("a", 7, contact(c1))},
			advance: 10 * time.Second,
			req:     reg("a", 7, contactExp(c1, 0), contact(c2)),
			code:    200,
			want:    []bindingView{{c1, time.Hour - 10*time.Second}},
		},
		{
			name:  "older cseq of the same call-id is 500",
			setup: []*registrarv1.RegisterRequest{reg("a", 7, contact(c1))},
			req:   reg("a", 6, contactExp(c1, 0)),
			code:  500,
		},
		{
			name:  "lower cseq of another call-id is accepted",
			setup: []*registrarv1.RegisterRequest{reg("a", 7, contact(c1))},
			req:   reg("b", 1, contactExp(c1, 0)),
			code:  200,
			want:  []bindingView{},
		},
		{
			name:  "contacts are compared as URIs",
			setup: []*registrarv1.RegisterRequest{reg("a", 1, contact("sip:Alice@198.51.100.7:5060"))},
			req:   reg("a", 2, contactExp("SIP:alice@198.51.100.7:5060;ob", 600*time.Second)),
			code:  200,
			want:  []bindingView{{"SIP:alice@198.51.100.7:5060;ob", 600 * time.Second}},
		},
		{
			name:  "a different transport is another contact",
			setup: []*registrarv1.RegisterRequest{reg("a", 1, contact("sip:alice@198.51.100.7:5060"))},
			req:   reg("a", 2, contact("sip:alice@198.51.100.7:5060;transport=tcp")),
			code:  200,
			want:  []bindingView{{"sip:alice@198.51.100.7:5060;transport=tcp", time.Hour}, {"sip:alice@198.51.100.7:5060", time.Hour}},
		},
		{
			name:  "more than max contacts is 503 with retry after",
			cfg:   Config{MaxContacts: 2},
			setup: []*registrarv1.RegisterRequest{reg("a", 1, contactExp(c1, 600*time.Second), contact(c2))},
			req:   reg("b", 1, contact("sip:alice@198.51.100.9")),
			code:  503,
			check: func(t *testing.T, resp *registrarv1.RegisterResponse) {
				if got := resp.GetRetryAfter().AsDuration(); got != 600*time.Second {
					t.Errorf("retry_after = %v, want 600s", got)
				}
			},
		},
		{
			name:  "replacing a contact at the limit is fine",
			cfg:   Config{MaxContacts: 2},
			setup: []*registrarv1.RegisterRequest{reg("a", 1, contact(c1), contact(c2))},
			req:   reg("a", 2, contactExp(c1, 0), contact("sip:alice@198.51.100.9")),
			code:  200,
			want:  []bindingView{{"sip:alice@198.51.100.9", time.Hour}, {c2, time.Hour}},
		},
		{
			name:    "empty contact list fetches the bindings",
			setup:   []*registrarv1.RegisterRequest{reg("a", 1, contact(c1))},
			advance: time.Minute,
			req:     reg("z", 1),
			code:    200,
			want:    []bindingView{{c1, time.Hour - time.Minute}},
		},
		{
			name: "fetch of an unknown AOR answers no bindings",
			req:  reg("z", 1),
			code: 200,
			want: []bindingView{},
		},
		{
			name:    "expired bindings are not answered",
			setup:   []*registrarv1.RegisterRequest{reg("a", 1, contactExp(c1, 60*time.Second))},
			advance: 61 * time.Second,
			req:     reg("b", 1, contact(c2)),
			code:    200,
			want:    []bindingView{{c2, time.Hour}},
		},
		{
			name: "bindings are ordered by q then most recent",
			setup: []*registrarv1.RegisterRequest{
				reg("a", 1, &registrarv1.ContactUpdate{Uri: "sip:low@198.51.100.1", Q: 100}),
				reg("b", 1, &registrarv1.ContactUpdate{Uri: "sip:old@198.51.100.2", Q: 800}),
			},
			advance: time.Second,
			req:     reg("c", 1, &registrarv1.ContactUpdate{Uri: "sip:new@198.51.100.3", Q: 800}),
			code:    200,
			want: []bindingView{
				{"sip:new@198.51.100.3", time.Hour},
				{"sip:old@198.51.100.2", time.Hour - time.Second},
				{"sip:low@198.51.100.1", time.Hour - time.Second},
			},
		},
		{
			name: "AOR without user is 400",
			req:  &registrarv1.RegisterRequest{Aor: "sip:example.com", CallId: "a", Cseq: 1},
			code: 400,
		},
		{
			name: "unparseable contact is 400",
			req:  reg("a", 1, contact("mailto:alice@example.com")),
			code: 400,
		},
		{
			name: "q above 1.0 is 400",
			req:  reg("a", 1, &registrarv1.ContactUpdate{Uri: c1, Q: 1001}),
			code: 400,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.cfg)
			ctx := context.Background()
			for i, req := range tc.setup {
				resp, err := f.r.Register(ctx, req)
				if err != nil || resp.GetCode() != 200 {
					t.Fatalf("setup %d: Register = %v, %v; want 200", i, resp, err)
				}
			}
			f.clock.Advance(tc.advance)
			before, _ := f.r.Register(ctx, reg("fetch", 1))
			resp, err := f.r.Register(ctx, tc.req)
			if err != nil {
				t.Fatalf("Register = %v", err)
			}
			if resp.GetCode() != tc.code {
				t.Fatalf("code = %d %s, want %d", resp.GetCode(), resp.GetReason(), tc.code)
			}
			if tc.want != nil {
				if got := view(resp.GetBindings()); !slices.Equal(got, tc.want) {
					t.Errorf("bindings = %v, want %v", got, tc.want)
				}
			}
			if resp.GetCode() != 200 {
				// A refused request changes nothing.
				after, _ := f.r.Register(ctx, reg("fetch", 1))
				if !slices.Equal(view(after.GetBindings()), view(before.GetBindings())) {
					t.Errorf("bindings changed by a refused request: %v, were %v", view(after.GetBindings()), view(before.GetBindings()))
				}
			}
			if tc.check != nil {
				tc.check(t, resp)
			}
		})
	}
}

func TestRegisterKeepsRequestData(t *testing.T) {
	f := newFixture(t, Config{})
	req := reg("a", 3, &registrarv1.ContactUpdate{
		Uri: "sip:alice@10.0.0.5:5060", Q: 700, Instance: "<urn:uuid:1>", RegId: 2,
	})
	req.Path = []string{"<sip:edge1.example.com;lr>"}
	req.Flow.ConnectionId = 42
	req.Flow.Transport = registrarv1.Transport_TRANSPORT_TCP
	resp, err := f.r.Register(context.Background(), req)
	if err != nil || resp.GetCode() != 200 || len(resp.GetBindings()) != 1 {
		t.Fatalf("Register = %v, %v", resp, err)
	}
	b := resp.GetBindings()[0]
	checks := []struct {
		name      string
		got, want any
	}{
		{"q", b.GetQ(), int32(700)},
		{"instance", b.GetInstance(), "<urn:uuid:1>"},
		{"reg_id", b.GetRegId(), int32(2)},
		{"call_id", b.GetCallId(), "a"},
		{"cseq", b.GetCseq(), uint32(3)},
		{"user_agent", b.GetUserAgent(), "phone/1.0"},
		{"path", len(b.GetPath()), 1},
		{"flow edge", b.GetFlow().GetEdge(), "edge1.example.com:5060"},
		{"flow connection", b.GetFlow().GetConnectionId(), uint64(42)},
		{"flow source", b.GetFlow().GetSource(), "198.51.100.7:40000"},
		{"received", b.GetReceived(), "sip:198.51.100.7:40000;transport=tcp"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestReceivedFor(t *testing.T) {
	tests := []struct {
		name, contact, source string
		transport             registrarv1.Transport
		want                  string
	}{
		{"private behind NAT", "sip:a@192.168.1.10:5060", "203.0.113.5:1024", registrarv1.Transport_TRANSPORT_UDP, "sip:203.0.113.5:1024;transport=udp"},
		{"carrier-grade NAT", "sip:a@100.64.3.4", "203.0.113.5:1024", registrarv1.Transport_TRANSPORT_TCP, "sip:203.0.113.5:1024;transport=tcp"},
		{"RFC 1918 10/8", "sip:a@10.1.2.3", "203.0.113.5:5060", registrarv1.Transport_TRANSPORT_UDP, "sip:203.0.113.5:5060;transport=udp"},
		{"private but same as source", "sip:a@192.168.1.10:5060", "192.168.1.10:5060", registrarv1.Transport_TRANSPORT_UDP, ""},
		{"public contact", "sip:a@198.51.100.1", "203.0.113.5:1024", registrarv1.Transport_TRANSPORT_UDP, ""},
		{"host name contact", "sip:a@phone.example.com", "203.0.113.5:1024", registrarv1.Transport_TRANSPORT_UDP, ""},
		{"IPv6 ULA", "sip:a@[fd00::5]:5060", "[2001:db8::1]:5060", registrarv1.Transport_TRANSPORT_UDP, "sip:[2001:db8::1]:5060;transport=udp"},
		{"no source", "sip:a@192.168.1.10", "", registrarv1.Transport_TRANSPORT_UDP, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := parseURI(tc.contact)
			if err != nil {
				t.Fatalf("parseURI(%q) = %v", tc.contact, err)
			}
			got := receivedFor(u, &registrarv1.Flow{Source: tc.source, Transport: tc.transport})
			if got != tc.want {
				t.Errorf("receivedFor = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestNormalizeAOR(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{in: "sip:alice@example.com", want: "sip:alice@example.com"},
		{in: "sip:alice@EXAMPLE.com:5060;transport=tcp?subject=x", want: "sip:alice@example.com"},
		{in: "sips:Alice@Example.com", want: "sip:Alice@example.com"},
		{in: "SIP:alice:secret@example.com", want: "sip:alice@example.com"},
		{in: "sip:alice@[2001:DB8::1]:5060", want: "sip:alice@[2001:db8::1]"},
		{in: "sip:example.com", wantErr: true},
		{in: "tel:+15551234", wantErr: true},
		{in: "", wantErr: true},
		{in: "sip:alice@", wantErr: true},
		{in: "sip:alice@host:99999", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := NormalizeAOR(tc.in)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("NormalizeAOR(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.wantErr)
			}
		})
	}
}
