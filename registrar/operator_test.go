package registrar

import (
	"context"
	"testing"
	"time"

	registrarv1 "github.com/sipd/sipd/proto/gen/sipd/registrar/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestAddContact(t *testing.T) {
	tests := []struct {
		name     string
		req      *registrarv1.AddContactRequest
		code     codes.Code
		bindings int
		event    registrarv1.BindingEventType
	}{
		{
			name:     "new binding",
			req:      &registrarv1.AddContactRequest{Aor: "sip:bob@example.com", Contact: contactExp("sip:bob@192.0.2.9", time.Hour)},
			bindings: 2,
			event:    eventInserted,
		},
		{
			name:     "refreshes a registered contact",
			req:      &registrarv1.AddContactRequest{Aor: "sip:bob@example.com", Contact: contact("sip:bob@198.51.100.7")},
			bindings: 1,
			event:    eventRefreshed,
		},
		{"bad aor", &registrarv1.AddContactRequest{Aor: "bogus", Contact: contact("sip:bob@192.0.2.9")}, codes.InvalidArgument, 0, 0},
		{"bad contact", &registrarv1.AddContactRequest{Aor: "sip:bob@example.com", Contact: contact("nope")}, codes.InvalidArgument, 0, 0},
		{"zero expires", &registrarv1.AddContactRequest{Aor: "sip:bob@example.com", Contact: contactExp("sip:bob@192.0.2.9", 0)}, codes.InvalidArgument, 0, 0},
		{"past max_contacts", &registrarv1.AddContactRequest{Aor: "sip:bob@example.com", Contact: contact("sip:bob@192.0.2.10")}, codes.ResourceExhausted, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Config{MaxContacts: 1})
			if tc.code == codes.ResourceExhausted || tc.event != 0 {
				req := reg("a", 1, contact("sip:bob@198.51.100.7"))
				req.Aor = "sip:bob@example.com"
				mustRegister(t, f, req)
				f.pub.take()
			}
			if tc.name == "new binding" {
				f.r.cfg.MaxContacts = 2
			}
			resp, err := f.r.AddContact(context.Background(), tc.req)
			if status.Code(err) != tc.code {
				t.Fatalf("AddContact = %v, %v; want %v", resp, err, tc.code)
			}
			if tc.code != codes.OK {
				return
			}
			if len(resp.GetBindings()) != tc.bindings {
				t.Errorf("bindings = %d, want %d", len(resp.GetBindings()), tc.bindings)
			}
			look, err := f.r.Lookup(context.Background(), &registrarv1.LookupRequest{Aor: tc.req.GetAor()})
			if err != nil || len(look.GetBindings()) != tc.bindings {
				t.Errorf("Lookup = %v, %v", look, err)
			}
			ev := f.pub.take()
			if len(ev) != 1 || ev[0].GetType() != tc.event {
				t.Errorf("events = %v, want one %s", ev, tc.event)
			}
		})
	}
}

func TestFlush(t *testing.T) {
	f := newFixture(t, Config{})
	for _, user := range []string{"a", "b", "c"} {
		req := reg("x", 1, contact("sip:"+user+"@198.51.100.7"), contact("sip:"+user+"@198.51.100.8"))
		req.Aor = "sip:" + user + "@example.com"
		mustRegister(t, f, req)
	}
	f.pub.take()
	resp, err := f.r.Flush(context.Background(), &registrarv1.FlushRequest{})
	if err != nil || resp.GetRemovedAors() != 3 {
		t.Fatalf("Flush = %v, %v; want 3 AORs", resp, err)
	}
	ev := f.pub.take()
	if len(ev) != 6 {
		t.Fatalf("%d events, want 6 REMOVED", len(ev))
	}
	for _, e := range ev {
		if e.GetType() != eventRemoved {
			t.Errorf("event %v, want REMOVED", e)
		}
	}
	look, err := f.r.Lookup(context.Background(), &registrarv1.LookupRequest{Aor: "sip:a@example.com"})
	if err != nil || look.GetStatus() != registrarv1.LookupStatus_LOOKUP_STATUS_NO_CONTACTS {
		t.Errorf("Lookup after Flush = %v, %v; want NO_CONTACTS", look, err)
	}
	if got := f.metric(t, "sipd_registrar_contacts", nil); got != 0 {
		t.Errorf("contacts gauge = %v, want 0", got)
	}
	if resp, err := f.r.Flush(context.Background(), &registrarv1.FlushRequest{}); err != nil || resp.GetRemovedAors() != 0 {
		t.Errorf("second Flush = %v, %v; want 0", resp, err)
	}
}

func TestExpiryWheel(t *testing.T) {
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		schedule map[string]time.Duration // AOR -> deadline after base
		resched  map[string]time.Duration // applied after schedule
		at       []time.Duration          // advance to base + each, in turn
		want     [][]string               // AORs fired by each advance
	}{
		{
			name:     "fires at the deadline, not before",
			schedule: map[string]time.Duration{"a": 2500 * time.Millisecond},
			at:       []time.Duration{2 * time.Second, 2400 * time.Millisecond, 2500 * time.Millisecond, 10 * time.Second},
			want:     [][]string{nil, nil, {"a"}, nil},
		},
		{
			name:     "a refresh moves the entry",
			schedule: map[string]time.Duration{"a": 2 * time.Second},
			resched:  map[string]time.Duration{"a": 5 * time.Second},
			at:       []time.Duration{3 * time.Second, 5 * time.Second},
			want:     [][]string{nil, {"a"}},
		},
		{
			name:     "beyond the horizon is left to the refill",
			schedule: map[string]time.Duration{"far": time.Hour},
			at:       []time.Duration{2 * time.Hour},
			want:     [][]string{nil},
		},
		{
			name:     "a jump of more than a turn fires everything due",
			schedule: map[string]time.Duration{"a": time.Second, "b": 30 * time.Second},
			at:       []time.Duration{10 * time.Minute},
			want:     [][]string{{"a", "b"}},
		},
		{
			name:     "overdue fires on the next turn",
			schedule: map[string]time.Duration{"late": -time.Minute},
			at:       []time.Duration{0},
			want:     [][]string{{"late"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newExpiry()
			e.advance(base)
			for aor, d := range tc.schedule {
				e.schedule(aor, base.Add(d), base)
			}
			for aor, d := range tc.resched {
				e.schedule(aor, base.Add(d), base)
			}
			for i, at := range tc.at {
				got := e.advance(base.Add(at))
				if len(got) != len(tc.want[i]) {
					t.Fatalf("advance(+%v) = %v, want %v", at, got, tc.want[i])
				}
				for _, w := range tc.want[i] {
					found := false
					for _, g := range got {
						found = found || g == w
					}
					if !found {
						t.Fatalf("advance(+%v) = %v, want %v", at, got, tc.want[i])
					}
				}
			}
		})
	}
}
