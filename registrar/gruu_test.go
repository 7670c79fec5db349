package registrar

import (
	"context"
	"strings"
	"testing"
	"time"

	registrarv1 "github.com/sipd/sipd/proto/gen/sipd/registrar/v1"
)

const (
	instA = "<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>"
	instB = "<urn:uuid:00000000-0000-1000-8000-aabbccddeeff>"
)

func instanceContact(uri, instance string) *registrarv1.ContactUpdate {
	return &registrarv1.ContactUpdate{Uri: uri, Instance: instance}
}

// gruuRegister registers alice's two instances (A on .7, B on .8) and a
// plain contact, with Supported: gruu, and returns the bindings by URI.
func gruuRegister(t *testing.T, f *fixture, callID string, cseq uint32) map[string]*registrarv1.Binding {
	t.Helper()
	req := reg(callID, cseq,
		instanceContact("sip:alice@192.0.2.7", instA),
		instanceContact("sip:alice@192.0.2.8", instB),
		contact("sip:alice@192.0.2.9"))
	req.Gruu = true
	resp, err := f.r.Register(context.Background(), req)
	if err != nil || resp.GetCode() != 200 {
		t.Fatalf("Register = %v, %v", resp, err)
	}
	out := map[string]*registrarv1.Binding{}
	for _, b := range resp.GetBindings() {
		out[b.GetUri()] = b
	}
	return out
}

func TestRegisterGRUUs(t *testing.T) {
	f := newFixture(t, Config{})
	bs := gruuRegister(t, f, "c1", 1)
	a, b, plain := bs["sip:alice@192.0.2.7"], bs["sip:alice@192.0.2.8"], bs["sip:alice@192.0.2.9"]
	if want := "sip:alice@example.com;gr=urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"; a.GetPubGruu() != want {
		t.Errorf("pub_gruu = %q, want %q", a.GetPubGruu(), want)
	}
	for _, x := range []*registrarv1.Binding{a, b} {
		tg := x.GetTempGruu()
		if !strings.HasPrefix(tg, "sip:tgruu.") || !strings.HasSuffix(tg, "@example.com;gr") || strings.Contains(tg, "alice") {
			t.Errorf("temp_gruu = %q, want sip:tgruu.<opaque>@example.com;gr", tg)
		}
	}
	if plain.GetPubGruu() != "" || plain.GetTempGruu() != "" {
		t.Errorf("binding without instance got GRUUs %q %q", plain.GetPubGruu(), plain.GetTempGruu())
	}
	// A refresh mints a new temporary GRUU; the public one stays.
	again := gruuRegister(t, f, "c1", 2)["sip:alice@192.0.2.7"]
	if again.GetTempGruu() == a.GetTempGruu() || again.GetPubGruu() != a.GetPubGruu() {
		t.Errorf("refresh: temp %q (was %q), pub %q (was %q); want a new temp and the same pub",
			again.GetTempGruu(), a.GetTempGruu(), again.GetPubGruu(), a.GetPubGruu())
	}

	// Without Supported: gruu, no GRUUs.
	req := reg("c1", 3, instanceContact("sip:alice@192.0.2.7", instA))
	resp, err := f.r.Register(context.Background(), req)
	if err != nil || resp.GetCode() != 200 {
		t.Fatalf("Register = %v, %v", resp, err)
	}
	for _, x := range resp.GetBindings() {
		if x.GetPubGruu() != "" || x.GetTempGruu() != "" {
			t.Errorf("GRUUs without Supported: gruu: %v", x)
		}
	}
}

func TestLookupGRUU(t *testing.T) {
	f := newFixture(t, Config{})
	bs := gruuRegister(t, f, "c1", 1)
	a := bs["sip:alice@192.0.2.7"]
	tempA := a.GetTempGruu()
	other := newFixture(t, Config{Auth: AuthConfig{Secret: "another"}})
	foreign := other.r.gruus.temp("sip:alice@example.com", instA, "c1")
	tampered := tempA[:len("sip:tgruu.")+3] + "A" + tempA[len("sip:tgruu.")+4:]
	if tampered == tempA {
		tampered = tempA[:len("sip:tgruu.")+3] + "B" + tempA[len("sip:tgruu.")+4:]
	}

	tests := []struct {
		name   string
		gruu   string
		status registrarv1.LookupStatus
		uri    string // the one binding expected with FOUND
	}{
		{"public", a.GetPubGruu(), registrarv1.LookupStatus_LOOKUP_STATUS_FOUND, "sip:alice@192.0.2.7"},
		{"public other instance", bs["sip:alice@192.0.2.8"].GetPubGruu(), registrarv1.LookupStatus_LOOKUP_STATUS_FOUND, "sip:alice@192.0.2.8"},
		{"public escaped, other case", "sip:alice@EXAMPLE.com;gr=urn%3Auuid%3AF81D4FAE-7DEC-11d0-a765-00a0c91e6bf6", registrarv1.LookupStatus_LOOKUP_STATUS_FOUND, "sip:alice@192.0.2.7"},
		{"temporary", tempA, registrarv1.LookupStatus_LOOKUP_STATUS_FOUND, "sip:alice@192.0.2.7"},
		{"public, instance not registered", "sip:alice@example.com;gr=urn:uuid:99999999-0000-1000-8000-000000000000", registrarv1.LookupStatus_LOOKUP_STATUS_NO_CONTACTS, ""},
		{"public, unknown aor", "sip:nobody@example.com;gr=urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6", registrarv1.LookupStatus_LOOKUP_STATUS_UNKNOWN, ""},
		{"temporary of another secret", foreign, registrarv1.LookupStatus_LOOKUP_STATUS_UNKNOWN, ""},
		{"temporary tampered", tampered, registrarv1.LookupStatus_LOOKUP_STATUS_UNKNOWN, ""},
		{"bare gr on a plain user", "sip:alice@example.com;gr", registrarv1.LookupStatus_LOOKUP_STATUS_UNKNOWN, ""},
		{"gr not a urn", "sip:alice@example.com;gr=foo", registrarv1.LookupStatus_LOOKUP_STATUS_UNKNOWN, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := f.r.Lookup(context.Background(), &registrarv1.LookupRequest{Gruu: tc.gruu})
			if err != nil {
				t.Fatalf("Lookup(%q) = %v", tc.gruu, err)
			}
			if resp.GetStatus() != tc.status {
				t.Fatalf("Lookup(%q) status = %v, want %v", tc.gruu, resp.GetStatus(), tc.status)
			}
			if tc.uri != "" && (len(resp.GetBindings()) != 1 || resp.GetBindings()[0].GetUri() != tc.uri) {
				t.Errorf("Lookup(%q) bindings = %v, want only %s", tc.gruu, resp.GetBindings(), tc.uri)
			}
		})
	}
}

// TestTempGRUUEndsWithCallID re-registers instance A with a new Call-ID
// (a rebooted UA): the old temporary GRUU no longer reaches it (480), the
// public GRUU and the new temporary one do. Once the binding expires, the
// public GRUU is 480 too.
func TestTempGRUUEndsWithCallID(t *testing.T) {
	f := newFixture(t, Config{})
	old := gruuRegister(t, f, "c1", 1)["sip:alice@192.0.2.7"]
	fresh := gruuRegister(t, f, "c2", 1)["sip:alice@192.0.2.7"]
	look := func(gruu string) registrarv1.LookupStatus {
		t.Helper()
		resp, err := f.r.Lookup(context.Background(), &registrarv1.LookupRequest{Gruu: gruu})
		if err != nil {
			t.Fatalf("Lookup(%q) = %v", gruu, err)
		}
		return resp.GetStatus()
	}
	if s := look(old.GetTempGruu()); s != registrarv1.LookupStatus_LOOKUP_STATUS_NO_CONTACTS {
		t.Errorf("old temp-gruu after a new Call-ID: %v, want NO_CONTACTS", s)
	}
	if s := look(fresh.GetTempGruu()); s != registrarv1.LookupStatus_LOOKUP_STATUS_FOUND {
		t.Errorf("new temp-gruu: %v, want FOUND", s)
	}
	f.clock.Advance(2 * time.Hour)
	if s := look(fresh.GetPubGruu()); s != registrarv1.LookupStatus_LOOKUP_STATUS_NO_CONTACTS {
		t.Errorf("pub-gruu after expiry: %v, want NO_CONTACTS", s)
	}
}
