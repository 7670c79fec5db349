package sipuri

import (
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    URI
		wantErr bool
	}{
		{in: "sip:alice@example.com", want: URI{Scheme: "sip", User: "alice", Host: "example.com"}},
		{in: "SIPS:Alice:pw@Example.COM:5061;transport=TLS;lr?subject=x", want: URI{Scheme: "sips", User: "Alice", Host: "example.com", Port: 5061, Transport: "tls"}},
		{in: "sip:192.0.2.10:5060;transport=tcp", want: URI{Scheme: "sip", Host: "192.0.2.10", Port: 5060, Transport: "tcp"}},
		{in: "sip:bob@[2001:DB8::1]:5070", want: URI{Scheme: "sip", User: "bob", Host: "2001:db8::1", Port: 5070}},
		{in: "sip:[2001:db8::1]", want: URI{Scheme: "sip", Host: "2001:db8::1"}},
		{in: "sip:+1555@carrier.example;user=phone", want: URI{Scheme: "sip", User: "+1555", Host: "carrier.example"}},
		{in: "sip:alice@example.com;gr=urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6", want: URI{Scheme: "sip", User: "alice", Host: "example.com", GR: true}},
		{in: "sip:tgruu.abc@example.com;GR", want: URI{Scheme: "sip", User: "tgruu.abc", Host: "example.com", GR: true}},
		{in: "tel:+15551234", wantErr: true},
		{in: "sip:", wantErr: true},
		{in: "sip:@example.com", wantErr: true},
		{in: "sip:alice@", wantErr: true},
		{in: "sip:alice@host:0", wantErr: true},
		{in: "sip:alice@host:x", wantErr: true},
		{in: "sip:[2001:db8::1", wantErr: true},
		{in: "sip:[::1]x", wantErr: true},
		{in: "<sip:alice@example.com>", wantErr: true},
		{in: "example.com", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := Parse(tc.in)
			if tc.wantErr {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("Parse(%q) = %+v, %v; want ErrInvalid", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Parse(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestAOR(t *testing.T) {
	tests := []struct{ in, want string }{
		{"sip:alice@Example.com:5060;transport=udp", "sip:alice@example.com"},
		{"sips:alice@example.com", "sip:alice@example.com"},
		{"sip:alice@[2001:db8::1]:5060", "sip:alice@[2001:db8::1]"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			u, err := Parse(tc.in)
			if err != nil {
				t.Fatalf("Parse = %v", err)
			}
			if got := u.AOR(); got != tc.want {
				t.Errorf("AOR = %q, want %q", got, tc.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"sip:alice@example.com", "sips:a:b@[::1]:5061;transport=tls?x=y", "sip:192.0.2.1",
		"sip:%61lice@atlanta.com;transport=TCP", "sip:+1-212-555-1212:1234@gateway.com;user=phone",
		"sip:[2001:db8::10]", "sip:alice@", "tel:+1", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse(%q) error %v does not wrap ErrInvalid", s, err)
			}
			return
		}
		if u.Host == "" || (u.Scheme != "sip" && u.Scheme != "sips") || u.Port < 0 || u.Port > 65535 {
			t.Fatalf("Parse(%q) = %+v accepted a bad URI", s, u)
		}
		// A URI rebuilt from the parts parses to the same parts.
		re := u.Scheme + ":"
		if u.User != "" {
			re += u.User + "@"
		}
		re += u.HostPort()
		if u.Transport != "" {
			re += ";transport=" + u.Transport
		}
		if u.GR {
			re += ";gr"
		}
		if again, err := Parse(re); err == nil && again != u {
			t.Fatalf("Parse(%q) = %+v, but its rebuilt form %q parses to %+v", s, u, re, again)
		}
	})
}
