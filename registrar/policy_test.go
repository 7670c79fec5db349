package registrar

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMaxContactsEvictOldest(t *testing.T) {
	cfg := Config{MaxContacts: 2, MaxContactsPolicy: PolicyEvictOldest}
	cfg.SetDefaults()
	f := newFixture(t, cfg)
	ctx := context.Background()
	const (
		c1 = "sip:alice@198.51.100.7:5060"
		c2 = "sip:alice@198.51.100.8:5060"
		c3 = "sip:alice@198.51.100.9:5060"
	)
	for i, c := range []string{c1, c2} {
		if resp, err := f.r.Register(ctx, reg("call-"+c, 1, contact(c))); err != nil || resp.GetCode() != 200 {
			t.Fatalf("REGISTER %d = %v, %v", i, resp.GetCode(), err)
		}
		f.clock.Advance(time.Second)
	}
	// c1 refreshes, so c2 is now the least recently refreshed.
	if resp, err := f.r.Register(ctx, reg("call-"+c1, 2, contact(c1))); err != nil || resp.GetCode() != 200 {
		t.Fatalf("refresh = %v, %v", resp.GetCode(), err)
	}
	f.clock.Advance(time.Second)
	f.pub.take()
	resp, err := f.r.Register(ctx, reg("call-"+c3, 1, contact(c3)))
	if err != nil || resp.GetCode() != 200 {
		t.Fatalf("third contact = %v, %v; want 200 with the oldest evicted", resp.GetCode(), err)
	}
	var got []string
	for _, b := range resp.GetBindings() {
		got = append(got, b.GetUri())
	}
	if len(got) != 2 || !slices.Contains(got, c1) || !slices.Contains(got, c3) {
		t.Fatalf("bindings = %v, want %s and %s", got, c1, c3)
	}
	removed := 0
	for _, e := range f.pub.take() {
		if e.GetType().String() == "BINDING_EVENT_TYPE_REMOVED" && e.GetBinding().GetUri() == c2 {
			removed++
		}
	}
	if removed != 1 {
		t.Errorf("REMOVED events for the evicted %s = %d, want 1", c2, removed)
	}
}

func TestMaxContactsEvictCannotMakeRoomForOneRequest(t *testing.T) {
	cfg := Config{MaxContacts: 1, MaxContactsPolicy: PolicyEvictOldest}
	cfg.SetDefaults()
	f := newFixture(t, cfg)
	resp, err := f.r.Register(context.Background(), reg("a", 1, contact("sip:a@198.51.100.1"), contact("sip:a@198.51.100.2")))
	if err != nil || resp.GetCode() != 503 {
		t.Fatalf("two contacts in one REGISTER past max 1 = %v, %v; want 503", resp.GetCode(), err)
	}
}

func TestExpiresSpread(t *testing.T) {
	cfg := Config{ExpiresSpread: 0.2}
	cfg.SetDefaults()
	f := newFixture(t, cfg)
	seen := map[time.Duration]bool{}
	for i := range 40 {
		req := withExpires(reg("spread", uint32(i+1), contact("sip:alice@198.51.100.7")), time.Hour)
		resp, err := f.r.Register(context.Background(), req)
		if err != nil || resp.GetCode() != 200 {
			t.Fatalf("REGISTER = %v, %v", resp.GetCode(), err)
		}
		got := resp.GetBindings()[0].GetExpires().AsDuration()
		if got > time.Hour || got < 48*time.Minute {
			t.Fatalf("granted %s, want within [48m, 1h] for a 20%% spread", got)
		}
		seen[got] = true
	}
	if len(seen) < 5 {
		t.Errorf("40 registrations got only %d distinct expiries; the spread is not random", len(seen))
	}
}

func TestPolicyConfigValidated(t *testing.T) {
	cfg := Config{MaxContactsPolicy: "drop", ExpiresSpread: 0.9}
	cfg.SetDefaults()
	err := cfg.Validate()
	if err == nil {
		t.Fatal("Validate() = nil")
	}
	for _, want := range []string{"max_contacts_policy", "expires_spread"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to name %s", err, want)
		}
	}
}
