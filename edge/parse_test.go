package edge

import (
	"bytes"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/sipd/sipd/edge/transaction"
)

var parseSeeds = append([]string{
	benchInvite,
	"INVITE sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP a:1;branch=z9hG4bK1, SIP/2.0/UDP b:2;branch=z9hG4bK2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n",
	"INVITE sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP a:1;branch=z9hG4bK1\r\nSubject: folded\r\n line\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n",
	"INVITE sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP a:1;branch=z9hG4bK1\r\nContent-Length: 10\r\n\r\nshort",
	"invite sip:b@x SIP/2.0\r\nvia: SIP/2.0/udp A.example:01;branch=z9hG4bKa;branch=z9hG4bKb\r\nl: 0\r\n\r\n",
	"INVITE sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP [::1]:5060;branch=z9hG4bK1\r\nCSeq: 1 INVITE\r\n\r\n",
	"BYE sip:b@x SIP/2.0\r\nVia: SIP/2.0/TCP Host.Example;branch=z9hG4bK9;rport\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
	"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKsd1\r\nTo: <sip:b@x>;tag=2\r\nContent-Length: 0\r\n\r\n",
	"SIP/2.0 99999 Bad\r\n\r\n",
	"REGISTER * SIP/2.0\r\n\r\n",
	"INVITE sip:b@x SIP/2.0\r\nNoColon\r\n\r\n",
	"INVITE sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP a:1;branch=z9hG4bK1\rX: y\r\n\r\n",
}, seeds...)

// FuzzParseMessage checks that the edge's parser agrees with sipgo's: the
// same message (as serialized) or both an error.
func FuzzParseMessage(f *testing.F) {
	for _, s := range parseSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		want, wantErr := sip.ParseMessage(bytes.Clone(data))
		got, gotErr := parseMessage(bytes.Clone(data))
		if (wantErr == nil) != (gotErr == nil) {
			t.Fatalf("error: sipgo %v, edge %v", wantErr, gotErr)
		}
		if wantErr != nil || want == nil {
			return
		}
		if w, g := want.String(), got.String(); w != g {
			t.Fatalf("messages differ:\nsipgo:\n%q\nedge:\n%q", w, g)
		}
	})
}

// FuzzRawServerKey checks the retransmission pre-scan: whenever it gives a
// key for a message that parses, it is the key of the parsed request.
func FuzzRawServerKey(f *testing.F) {
	for _, s := range parseSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var buf [160]byte
		key, ok := rawServerKey(data, buf[:0])
		if !ok {
			return
		}
		m, err := sip.ParseMessage(bytes.Clone(data))
		if err != nil {
			return
		}
		req, isReq := m.(*sip.Request)
		if !isReq {
			t.Fatalf("key %q for a response", key)
		}
		want, err := transaction.ServerKey(req)
		if err != nil {
			t.Fatalf("key %q where ServerKey fails: %v", key, err)
		}
		if string(key) != want {
			t.Fatalf("raw key %q, ServerKey %q", key, want)
		}
	})
}

func TestRawServerKey(t *testing.T) {
	tests := []struct {
		name string
		msg  string
		want string // "" when the pre-scan must give up
	}{
		{"invite", benchInvite, "z9hG4bK776asdhds|192.0.2.10:5060|INVITE"},
		{"host lower-cased, no port", "BYE sip:b@x SIP/2.0\r\nVia: SIP/2.0/TCP Host.Example;branch=z9hG4bK9;rport\r\n\r\n", "z9hG4bK9|host.example:0|BYE"},
		{"compact via after other headers", "OPTIONS sip:b@x SIP/2.0\r\nCall-ID: c\r\nv: SIP/2.0/UDP h:5;branch=z9hG4bKo\r\n\r\n", "z9hG4bKo|h:5|OPTIONS"},
		{"first of a via list", "INFO sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP a:1;branch=z9hG4bK1,SIP/2.0/UDP b:2;branch=z9hG4bK2\r\n\r\n", "z9hG4bK1|a:1|INFO"},
		{"ack", "ACK sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP a:1;branch=z9hG4bK1\r\n\r\n", ""},
		{"cancel", "CANCEL sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP a:1;branch=z9hG4bK1\r\n\r\n", ""},
		{"response", "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP a:1;branch=z9hG4bK1\r\n\r\n", ""},
		{"rfc 2543 branch", "INVITE sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP a:1;branch=1\r\n\r\n", ""},
		{"two branches", "INVITE sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP a:1;branch=z9hG4bK1;branch=z9hG4bK2\r\n\r\n", ""},
		{"folded via", "INVITE sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP a:1;branch=z9hG4bK1\r\n ;rport\r\n\r\n", ""},
		{"ipv6", "INVITE sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP [::1]:5060;branch=z9hG4bK1\r\n\r\n", ""},
		{"spaces in via", "INVITE sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP a:1 ; branch=z9hG4bK1\r\n\r\n", ""},
		{"lower-case method", "invite sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP a:1;branch=z9hG4bK1\r\n\r\n", ""},
		{"leading zero port", "INVITE sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP a:05060;branch=z9hG4bK1\r\n\r\n", ""},
		{"no header end", "INVITE sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP a:1;branch=z9hG4bK1\r\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf [160]byte
			key, ok := rawServerKey([]byte(tt.msg), buf[:0])
			switch {
			case tt.want == "" && ok:
				t.Fatalf("got key %q, want none", key)
			case tt.want != "" && string(key) != tt.want:
				t.Fatalf("got key %q (ok %v), want %q", key, ok, tt.want)
			}
		})
	}
}
