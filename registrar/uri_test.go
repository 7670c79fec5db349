package registrar

import (
	"errors"
	"strings"
	"testing"
)

func TestContactKey(t *testing.T) {
	tests := []struct {
		name string
		a, b string
		same bool
	}{
		{"case of scheme, user and host", "SIP:Alice@EXAMPLE.com", "sip:alice@example.com", true},
		{"other parameters ignored", "sip:alice@example.com;ob;expires=30", "sip:alice@example.com", true},
		{"transport case", "sip:a@h;transport=TCP", "sip:a@h;transport=tcp", true},
		{"port differs", "sip:a@h:5060", "sip:a@h:5070", false},
		{"explicit port is not the default", "sip:a@h:5060", "sip:a@h", false},
		{"transport differs", "sip:a@h;transport=udp", "sip:a@h;transport=tcp", false},
		{"sips is not sip", "sips:a@h", "sip:a@h", false},
		{"user differs", "sip:a@h", "sip:b@h", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := bindingKey(tc.a) == bindingKey(tc.b); got != tc.same {
				t.Errorf("same(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.same)
			}
		})
	}
}

func FuzzNormalizeAOR(f *testing.F) {
	for _, s := range []string{
		"sip:alice@example.com", "sips:Alice:pw@EXAMPLE.com:5061;transport=tls?subject=x",
		"sip:alice@[2001:db8::1]:5060", "sip:example.com", "tel:+1555", "sip:a@b@c", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		aor, err := NormalizeAOR(s)
		if err != nil {
			if !errors.Is(err, errInvalidURI) {
				t.Fatalf("NormalizeAOR(%q) error %v does not wrap errInvalidURI", s, err)
			}
			return
		}
		if !strings.HasPrefix(aor, "sip:") || !strings.Contains(aor, "@") {
			t.Fatalf("NormalizeAOR(%q) = %q, not sip:user@host", s, aor)
		}
		// Normalising is idempotent.
		again, err := NormalizeAOR(aor)
		if err != nil || again != aor {
			t.Fatalf("NormalizeAOR(%q) = %q, then %q, %v", s, aor, again, err)
		}
	})
}
