package registrar

import (
	"context"
	"strings"
	"testing"
	"time"

	registrarv1 "github.com/sipd/sipd/proto/gen/sipd/registrar/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// authConfig serves example.com with auth and alice/bob as users;
// open.example is served without auth.
func authConfig() Config {
	no := false
	return Config{
		Domains: []DomainConfig{{Name: "example.com"}, {Name: "open.example", AuthRequired: &no}},
		Users: []UserConfig{
			{Username: "alice", Domain: "example.com", Password: "secret"},
			{Username: "bob", Domain: "example.com", HA1MD5: ha1(AlgorithmMD5, "bob", "example.com", "pw"), HA1SHA256: ha1(AlgorithmSHA256, "bob", "example.com", "pw")},
		},
		Auth: AuthConfig{Secret: "shared"},
	}
}

// challengeParams parses a challenge value's parameters.
func challengeParams(t *testing.T, v string) map[string]string {
	t.Helper()
	rest, ok := strings.CutPrefix(v, "Digest ")
	if !ok {
		t.Fatalf("challenge %q does not start with Digest", v)
	}
	out := map[string]string{}
	for p := range strings.SplitSeq(rest, ",") {
		k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
		out[k] = strings.Trim(val, `"`)
	}
	return out
}

// answer computes credentials for a challenge as a client would.
func answer(t *testing.T, challenge, user, password, method, uri, nc string) *registrarv1.DigestCredentials {
	t.Helper()
	p := challengeParams(t, challenge)
	alg := p["algorithm"]
	h1 := ha1(alg, user, p["realm"], password)
	return &registrarv1.DigestCredentials{
		Username: user, Realm: p["realm"], Nonce: p["nonce"], Uri: uri, Algorithm: alg,
		Cnonce: "0a4f113b", Qop: "auth", Nc: nc,
		Response: digestResponse(alg, h1, p["nonce"], nc, "0a4f113b", "auth", method, uri),
	}
}

func authReg(aor string, creds *registrarv1.DigestCredentials, cseq uint32) *registrarv1.RegisterRequest {
	req := reg("call-auth", cseq, contact("sip:"+strings.TrimPrefix(aor, "sip:")[:strings.Index(strings.TrimPrefix(aor, "sip:"), "@")]+"@198.51.100.7:5060"))
	req.Aor = aor
	req.RequestUri = "sip:" + aor[strings.Index(aor, "@")+1:]
	req.Credentials = creds
	return req
}

func authRegister(t *testing.T, f *fixture, req *registrarv1.RegisterRequest) *registrarv1.RegisterResponse {
	t.Helper()
	resp, err := f.r.Register(context.Background(), req)
	if err != nil {
		t.Fatalf("Register = %v", err)
	}
	return resp
}

func bindingsOf(t *testing.T, f *fixture, aor string) int {
	t.Helper()
	resp, err := f.r.Lookup(context.Background(), &registrarv1.LookupRequest{Aor: aor})
	if err != nil {
		t.Fatalf("Lookup = %v", err)
	}
	return len(resp.GetBindings())
}

func TestRegisterChallengeOffersSHA256ThenMD5(t *testing.T) {
	f := newFixture(t, authConfig())
	resp := authRegister(t, f, authReg("sip:alice@example.com", nil, 1))
	if resp.GetCode() != 401 || len(resp.GetChallenges()) != 2 {
		t.Fatalf("got %d with %d challenges, want 401 with 2", resp.GetCode(), len(resp.GetChallenges()))
	}
	for i, alg := range []string{"SHA-256", "MD5"} {
		p := challengeParams(t, resp.GetChallenges()[i].GetValue())
		if p["algorithm"] != alg || p["realm"] != "example.com" || p["qop"] != "auth" || p["nonce"] == "" || p["stale"] != "" {
			t.Errorf("challenge %d = %v, want algorithm %s, realm, qop auth, nonce, no stale", i, p, alg)
		}
	}
	if n := bindingsOf(t, f, "sip:alice@example.com"); n != 0 {
		t.Errorf("bindings after 401 = %d, want 0", n)
	}
}

func TestRegisterDigest(t *testing.T) {
	const uri = "sip:example.com"
	tests := []struct {
		name      string
		alg       int // challenge index: 0 SHA-256, 1 MD5
		user, pw  string
		aor       string
		mutate    func(c *registrarv1.DigestCredentials)
		wantCode  int32
		wantStale bool
	}{
		{name: "md5 ok", alg: 1, user: "alice", pw: "secret", aor: "sip:alice@example.com", wantCode: 200},
		{name: "sha256 ok", alg: 0, user: "alice", pw: "secret", aor: "sip:alice@example.com", wantCode: 200},
		{name: "ha1 configured user", alg: 0, user: "bob", pw: "pw", aor: "sip:bob@example.com", wantCode: 200},
		{name: "wrong password", alg: 1, user: "alice", pw: "nope", aor: "sip:alice@example.com", wantCode: 401},
		{name: "unknown user", alg: 1, user: "mallory", pw: "secret", aor: "sip:mallory@example.com", wantCode: 401},
		{name: "user differs from aor", alg: 1, user: "bob", pw: "pw", aor: "sip:alice@example.com", wantCode: 403},
		{name: "wrong realm", alg: 1, user: "alice", pw: "secret", aor: "sip:alice@example.com",
			mutate: func(c *registrarv1.DigestCredentials) { c.Realm = "other" }, wantCode: 401},
		{name: "forged nonce", alg: 1, user: "alice", pw: "secret", aor: "sip:alice@example.com",
			mutate: func(c *registrarv1.DigestCredentials) { c.Nonce = strings.Repeat("A", len(c.Nonce)) }, wantCode: 401},
		{name: "no qop", alg: 1, user: "alice", pw: "secret", aor: "sip:alice@example.com",
			mutate: func(c *registrarv1.DigestCredentials) { c.Qop = "" }, wantCode: 401},
		{name: "unknown algorithm", alg: 1, user: "alice", pw: "secret", aor: "sip:alice@example.com",
			mutate: func(c *registrarv1.DigestCredentials) { c.Algorithm = "MD5-sess" }, wantCode: 401},
		{name: "digest uri of another request", alg: 1, user: "alice", pw: "secret", aor: "sip:alice@example.com",
			mutate: func(c *registrarv1.DigestCredentials) { c.Uri = "sip:other.example" }, wantCode: 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, authConfig())
			ch := authRegister(t, f, authReg(tt.aor, nil, 1))
			creds := answer(t, ch.GetChallenges()[tt.alg].GetValue(), tt.user, tt.pw, "REGISTER", uri, "00000001")
			if tt.mutate != nil {
				tt.mutate(creds)
			}
			resp := authRegister(t, f, authReg(tt.aor, creds, 2))
			if resp.GetCode() != tt.wantCode {
				t.Fatalf("code = %d %s, want %d", resp.GetCode(), resp.GetReason(), tt.wantCode)
			}
			want := 0
			if tt.wantCode == 200 {
				want = 1
			}
			if n := bindingsOf(t, f, tt.aor); n != want {
				t.Errorf("bindings = %d, want %d", n, want)
			}
			if tt.wantCode == 401 {
				if len(resp.GetChallenges()) != 2 {
					t.Fatalf("challenges = %d, want 2", len(resp.GetChallenges()))
				}
				if p := challengeParams(t, resp.GetChallenges()[0].GetValue()); (p["stale"] == "true") != tt.wantStale {
					t.Errorf("stale = %q, want %v", p["stale"], tt.wantStale)
				}
			}
		})
	}
}

// TestUnknownUserLooksLikeWrongPassword checks that the answers carry
// nothing that tells the two apart.
func TestUnknownUserLooksLikeWrongPassword(t *testing.T) {
	f := newFixture(t, authConfig())
	shape := func(user, aor string) string {
		ch := authRegister(t, f, authReg(aor, nil, 1))
		creds := answer(t, ch.GetChallenges()[1].GetValue(), user, "bad", "REGISTER", "sip:example.com", "00000001")
		resp := authRegister(t, f, authReg(aor, creds, 2))
		var b strings.Builder
		b.WriteString(resp.GetReason())
		for _, c := range resp.GetChallenges() {
			p := challengeParams(t, c.GetValue())
			delete(p, "nonce")
			b.WriteString(strings.Join([]string{p["realm"], p["algorithm"], p["qop"], p["stale"]}, "|"))
		}
		return b.String()
	}
	if a, b := shape("alice", "sip:alice@example.com"), shape("nobody", "sip:nobody@example.com"); a != b {
		t.Errorf("wrong password answer %q differs from unknown user answer %q", a, b)
	}
}

func TestRegisterReplayAndStale(t *testing.T) {
	f := newFixture(t, authConfig())
	const aor, uri = "sip:alice@example.com", "sip:example.com"
	ch := authRegister(t, f, authReg(aor, nil, 1))
	first := answer(t, ch.GetChallenges()[1].GetValue(), "alice", "secret", "REGISTER", uri, "00000001")
	if resp := authRegister(t, f, authReg(aor, first, 2)); resp.GetCode() != 200 {
		t.Fatalf("first = %d, want 200", resp.GetCode())
	}

	// The same nonce count again: a replay.
	resp := authRegister(t, f, authReg(aor, first, 3))
	if resp.GetCode() != 401 || !strings.Contains(resp.GetChallenges()[0].GetValue(), "stale=true") {
		t.Fatalf("replay = %d %v, want 401 stale", resp.GetCode(), resp.GetChallenges())
	}
	// A higher count on the same nonce is fine.
	next := answer(t, ch.GetChallenges()[1].GetValue(), "alice", "secret", "REGISTER", uri, "00000002")
	if resp := authRegister(t, f, authReg(aor, next, 4)); resp.GetCode() != 200 {
		t.Fatalf("nc 2 = %d, want 200", resp.GetCode())
	}

	// Past the lifetime the nonce is stale.
	f.clock.Advance(DefaultNonceLifetime + time.Second)
	late := answer(t, ch.GetChallenges()[1].GetValue(), "alice", "secret", "REGISTER", uri, "00000003")
	resp = authRegister(t, f, authReg(aor, late, 5))
	if resp.GetCode() != 401 || !strings.Contains(resp.GetChallenges()[0].GetValue(), "stale=true") {
		t.Fatalf("stale = %d %v, want 401 stale", resp.GetCode(), resp.GetChallenges())
	}
	// A stale nonce with a wrong password is not marked stale.
	bad := answer(t, ch.GetChallenges()[1].GetValue(), "alice", "wrong", "REGISTER", uri, "00000004")
	resp = authRegister(t, f, authReg(aor, bad, 6))
	if resp.GetCode() != 401 || strings.Contains(resp.GetChallenges()[0].GetValue(), "stale") {
		t.Fatalf("stale and wrong = %d %v, want 401 without stale", resp.GetCode(), resp.GetChallenges())
	}
}

func TestNonceVerifiedByAnotherReplica(t *testing.T) {
	a, b := newFixture(t, authConfig()), newFixture(t, authConfig())
	cfg := authConfig()
	cfg.Auth.Secret = "different"
	c := newFixture(t, cfg)
	ch := authRegister(t, a, authReg("sip:alice@example.com", nil, 1))
	creds := answer(t, ch.GetChallenges()[0].GetValue(), "alice", "secret", "REGISTER", "sip:example.com", "00000001")
	if resp := authRegister(t, b, authReg("sip:alice@example.com", creds, 2)); resp.GetCode() != 200 {
		t.Errorf("replica with the same secret = %d, want 200", resp.GetCode())
	}
	if resp := authRegister(t, c, authReg("sip:alice@example.com", creds, 2)); resp.GetCode() != 401 {
		t.Errorf("replica with another secret = %d, want 401", resp.GetCode())
	}
}

func TestRegisterWithoutAuth(t *testing.T) {
	tests := []struct {
		name    string
		aor     string
		trusted bool
	}{
		{name: "trusted source", aor: "sip:alice@example.com", trusted: true},
		{name: "domain without auth_required", aor: "sip:carol@open.example"},
		{name: "domain not in the directory", aor: "sip:dave@elsewhere.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, authConfig())
			req := authReg(tt.aor, nil, 1)
			req.Trusted = tt.trusted
			if resp := authRegister(t, f, req); resp.GetCode() != 200 {
				t.Errorf("code = %d, want 200", resp.GetCode())
			}
		})
	}
}

func TestAuthenticate(t *testing.T) {
	f := newFixture(t, authConfig())
	ctx := context.Background()
	const ruri = "sip:bob@example.com"
	call := func(from string, creds *registrarv1.DigestCredentials) *registrarv1.AuthenticateResponse {
		t.Helper()
		resp, err := f.r.Authenticate(ctx, &registrarv1.AuthenticateRequest{Method: "INVITE", RequestUri: ruri, FromUri: from, Credentials: creds})
		if err != nil {
			t.Fatalf("Authenticate = %v", err)
		}
		return resp
	}
	ch := call("sip:alice@example.com", nil)
	if ch.GetCode() != 407 || len(ch.GetChallenges()) != 2 {
		t.Fatalf("no credentials = %d with %d challenges, want 407 with 2", ch.GetCode(), len(ch.GetChallenges()))
	}
	good := answer(t, ch.GetChallenges()[0].GetValue(), "alice", "secret", "INVITE", ruri, "00000001")
	if resp := call("sip:alice@example.com", good); resp.GetCode() != 200 || resp.GetIdentity() != "sip:alice@example.com" {
		t.Errorf("good = %d %q, want 200 sip:alice@example.com", resp.GetCode(), resp.GetIdentity())
	}
	bobs := answer(t, ch.GetChallenges()[0].GetValue(), "bob", "pw", "INVITE", ruri, "00000002")
	if resp := call("sip:alice@example.com", bobs); resp.GetCode() != 403 {
		t.Errorf("bob as alice = %d, want 403", resp.GetCode())
	}
	wrong := answer(t, ch.GetChallenges()[0].GetValue(), "alice", "bad", "INVITE", ruri, "00000003")
	if resp := call("sip:alice@example.com", wrong); resp.GetCode() != 407 {
		t.Errorf("wrong password = %d, want 407", resp.GetCode())
	}
	if resp := call("sip:carol@open.example", nil); resp.GetCode() != 200 {
		t.Errorf("open domain = %d, want 200", resp.GetCode())
	}
	if resp := call("sip:x@foreign.example", nil); resp.GetCode() != 200 {
		t.Errorf("foreign domain = %d, want 200", resp.GetCode())
	}
}

func TestDomainsAndUsersAPI(t *testing.T) {
	f := newFixture(t, Config{})
	ctx := context.Background()
	// Without domains nothing asks for auth.
	if resp := authRegister(t, f, authReg("sip:zoe@new.example", nil, 1)); resp.GetCode() != 200 {
		t.Fatalf("before PutDomain = %d, want 200", resp.GetCode())
	}
	if _, err := f.r.PutDomain(ctx, &registrarv1.PutDomainRequest{Domain: &registrarv1.Domain{Name: "New.Example", AuthRequired: true}}); err != nil {
		t.Fatalf("PutDomain = %v", err)
	}
	if _, err := f.r.PutUser(ctx, &registrarv1.PutUserRequest{User: &registrarv1.User{Username: "zoe", Domain: "new.example", Password: "pw"}}); err != nil {
		t.Fatalf("PutUser = %v", err)
	}
	ch := authRegister(t, f, authReg("sip:zoe@new.example", nil, 2))
	if ch.GetCode() != 401 {
		t.Fatalf("after PutDomain = %d, want 401", ch.GetCode())
	}
	creds := answer(t, ch.GetChallenges()[0].GetValue(), "zoe", "pw", "REGISTER", "sip:new.example", "00000001")
	if resp := authRegister(t, f, authReg("sip:zoe@new.example", creds, 3)); resp.GetCode() != 200 {
		t.Fatalf("with credentials = %d, want 200", resp.GetCode())
	}
	ds, err := f.r.ListDomains(ctx, &registrarv1.ListDomainsRequest{})
	if err != nil || len(ds.GetDomains()) != 1 || ds.GetDomains()[0].GetRealm() != "new.example" {
		t.Fatalf("ListDomains = %v, %v; want new.example with realm new.example", ds, err)
	}
	us, err := f.r.ListUsers(ctx, &registrarv1.ListUsersRequest{Domain: "new.example"})
	if err != nil || len(us.GetUsers()) != 1 || us.GetUsers()[0].GetHa1Md5() != "" || us.GetUsers()[0].GetPassword() != "" {
		t.Fatalf("ListUsers = %v, %v; want zoe without secrets", us, err)
	}
	for name, fn := range map[string]func() error{
		"user of unknown domain": func() error {
			_, err := f.r.PutUser(ctx, &registrarv1.PutUserRequest{User: &registrarv1.User{Username: "x", Domain: "nope.example", Password: "pw"}})
			return err
		},
		"user without secret": func() error {
			_, err := f.r.PutUser(ctx, &registrarv1.PutUserRequest{User: &registrarv1.User{Username: "x", Domain: "new.example"}})
			return err
		},
		"bad domain name": func() error {
			_, err := f.r.PutDomain(ctx, &registrarv1.PutDomainRequest{Domain: &registrarv1.Domain{Name: "a b"}})
			return err
		},
	} {
		if err := fn(); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s = %v, want InvalidArgument", name, err)
		}
	}
	if _, err := f.r.DeleteDomain(ctx, &registrarv1.DeleteDomainRequest{Name: "new.example"}); err != nil {
		t.Fatalf("DeleteDomain = %v", err)
	}
	if _, err := f.r.ListUsers(ctx, &registrarv1.ListUsersRequest{Domain: "new.example"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("ListUsers of deleted domain = %v, want InvalidArgument", err)
	}
}

func TestAuthConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(c *Config)
		want []string
	}{
		{name: "user of unknown domain", mod: func(c *Config) {
			c.Users = append(c.Users, UserConfig{Username: "x", Domain: "nope.example", Password: "p"})
		}, want: []string{`users[2].domain ("nope.example") is not one of domains`}},
		{name: "no secret", mod: func(c *Config) { c.Users[0].Password = "" }, want: []string{"needs password, ha1_md5 or ha1_sha256"}},
		{name: "bad ha1", mod: func(c *Config) { c.Users[1].HA1MD5 = "xyz" }, want: []string{"ha1_md5", "32 hex digits"}},
		{name: "bad algorithm and lifetime", mod: func(c *Config) {
			c.Auth.Algorithms = []string{"SHA-512"}
			c.Auth.NonceLifetime = -time.Second
		}, want: []string{`auth.algorithms[0] ("SHA-512")`, "auth.nonce_lifetime (-1s) must be > 0"}},
		{name: "duplicate domain", mod: func(c *Config) { c.Domains = append(c.Domains, DomainConfig{Name: "EXAMPLE.com"}) }, want: []string{"listed twice"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := authConfig()
			c.SetDefaults()
			tt.mod(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("Validate = nil")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestNCTableBounded(t *testing.T) {
	tab := newNCTable(64)
	now := t0
	for i := range 1000 {
		tab.advance(strings.Repeat("n", 5)+string(rune('a'+i%26))+strings.Repeat("x", i%40), 1, now.Add(time.Minute), now)
	}
	if n := tab.len(); n > 64+ncShards {
		t.Errorf("entries = %d, want at most about 64", n)
	}
	if !tab.advance("fresh", 5, now.Add(time.Minute), now) || tab.advance("fresh", 5, now.Add(time.Minute), now) || tab.advance("fresh", 4, now.Add(time.Minute), now) {
		t.Error("advance should accept a new count once and refuse equal or lower counts")
	}
}
