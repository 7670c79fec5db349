package edge

import (
	"strings"
	"testing"
)

func TestParseDigest(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr bool
		user    string
		uri     string
		nc      string
		alg     string
	}{
		{name: "rfc 3261 example", in: `Digest username="bob", realm="biloxi.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="sip:bob@biloxi.com", qop=auth, nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41"`,
			user: "bob", uri: "sip:bob@biloxi.com", nc: "00000001"},
		{name: "sha-256 and odd spacing", in: "digest   username = \"a\" ,realm=\"r\",nonce=\"n\",response=\"x\",algorithm=SHA-256,uri=\"sip:r\"",
			user: "a", uri: "sip:r", alg: "SHA-256"},
		{name: "escaped quote", in: `Digest username="a\"b", nonce="n", response="r"`, user: `a"b`},
		{name: "unknown params skipped", in: `Digest foo=bar, username="a", nonce="n", response="r", x="y,z"`, user: "a"},
		{name: "basic scheme", in: `Basic YWxhZGRpbjpvcGVuc2VzYW1l`, wantErr: true},
		{name: "digest glued", in: `Digestusername="a"`, wantErr: true},
		{name: "unterminated quote", in: `Digest username="a, nonce="n", response="r`, wantErr: true},
		{name: "missing comma", in: `Digest username="a" nonce="n", response="r"`, wantErr: true},
		{name: "duplicate param", in: `Digest username="a", username="b", nonce="n", response="r"`, wantErr: true},
		{name: "missing response", in: `Digest username="a", nonce="n"`, wantErr: true},
		{name: "empty", in: ``, wantErr: true},
		{name: "too long", in: `Digest username="` + strings.Repeat("a", maxCredentialsLen) + `"`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseDigest(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseDigest error = %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if c.Username != tt.user || c.Uri != tt.uri || c.Nc != tt.nc || c.Algorithm != tt.alg {
				t.Errorf("parseDigest = %+v, want user %q uri %q nc %q alg %q", c, tt.user, tt.uri, tt.nc, tt.alg)
			}
		})
	}
}

func FuzzParseDigest(f *testing.F) {
	for _, s := range []string{
		`Digest username="bob", realm="biloxi.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="sip:bob@biloxi.com", qop=auth, nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41"`,
		`Digest username="a\"b", nonce="n", response="r", algorithm=SHA-256`,
		`Digest username="a`,
		`digest a=b,`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseDigest(s)
		if err != nil {
			return
		}
		if c.Username == "" || c.Nonce == "" || c.Response == "" {
			t.Fatalf("parseDigest(%q) accepted credentials without username, nonce or response", s)
		}
	})
}
