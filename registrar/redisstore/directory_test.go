package redisstore_test

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	registrarv1 "github.com/sipd/sipd/proto/gen/sipd/registrar/v1"
	"github.com/sipd/sipd/registrar"
	"github.com/sipd/sipd/registrar/directorytest"
	"github.com/sipd/sipd/registrar/internal/redistest"
)

func TestDirectory(t *testing.T) {
	srv := redistest.Start(t, "--appendfsync", "everysec")
	var n atomic.Int64
	directorytest.Run(t, func(t *testing.T) registrar.Directory {
		return newStore(t, srv, fmt.Sprintf("dir%d:", n.Add(1))).Directory()
	})
}

func TestNonceCounter(t *testing.T) {
	srv := redistest.Start(t, "--appendfsync", "everysec")
	var n atomic.Int64
	directorytest.RunNonceCounter(t, func(t *testing.T, replicas int) []registrar.NonceCounter {
		prefix := fmt.Sprintf("nc%d:", n.Add(1))
		out := make([]registrar.NonceCounter, replicas)
		for i := range out {
			out[i] = newStore(t, srv, prefix).NonceCounter() // a client each, as replicas have
		}
		return out
	})
}

// TestNonceCountExpires checks that a nonce's count leaves Redis with the
// nonce (its time left plus a skew margin), so the table does not grow.
func TestNonceCountExpires(t *testing.T) {
	srv := redistest.Start(t)
	s := newStore(t, srv, "sipd:registrar:")
	if ok, err := s.NonceCounter().Advance(context.Background(), "abc", 1, time.Second); err != nil || !ok {
		t.Fatalf("Advance = %v, %v", ok, err)
	}
	rdb := redisClient(t, srv)
	ttl, err := rdb.PTTL(context.Background(), "sipd:registrar:nc:abc").Result()
	if err != nil || ttl <= time.Second || ttl > time.Second+2*time.Minute {
		t.Errorf("PTTL of the nonce count = %v, %v; want about 1s plus the skew margin", ttl, err)
	}
}

// replicaConfig is the configuration of every replica in the tests below:
// one domain that requires auth, alice with a password, a shared secret.
func replicaConfig() registrar.Config {
	return registrar.Config{
		Origin:  "replica",
		Domains: []registrar.DomainConfig{{Name: "example.com"}},
		Users:   []registrar.UserConfig{{Username: "alice", Domain: "example.com", Password: "secret"}},
		Auth:    registrar.AuthConfig{Secret: "shared", Algorithms: []string{"MD5"}},
	}
}

func newReplica(t *testing.T, srv *redistest.Server, cfg registrar.Config) *registrar.Registrar {
	t.Helper()
	r, err := registrar.New(cfg, registrar.Deps{Store: newStore(t, srv, "sipd:registrar:")})
	if err != nil {
		t.Fatalf("registrar.New = %v", err)
	}
	return r
}

func md5hex(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

// digest answers an MD5 challenge for alice with the nonce count nc.
func digest(t *testing.T, challenge, user, password, uri, nc string) *registrarv1.DigestCredentials {
	t.Helper()
	params := map[string]string{}
	for p := range strings.SplitSeq(strings.TrimPrefix(challenge, "Digest "), ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		params[k] = strings.Trim(v, `"`)
	}
	ha1 := md5hex(user + ":" + params["realm"] + ":" + password)
	ha2 := md5hex("REGISTER:" + uri)
	resp := md5hex(ha1 + ":" + params["nonce"] + ":" + nc + ":c0ffee:auth:" + ha2)
	return &registrarv1.DigestCredentials{Username: user, Realm: params["realm"], Nonce: params["nonce"], Uri: uri,
		Algorithm: "MD5", Cnonce: "c0ffee", Qop: "auth", Nc: nc, Response: resp}
}

func authRegister(aor string, cseq uint32, creds *registrarv1.DigestCredentials) *registrarv1.RegisterRequest {
	req := register(aor, "sip:phone@198.51.100.1:5060", "call-auth", cseq, time.Hour)
	req.Trusted = false
	req.RequestUri = "sip:example.com"
	req.Credentials = creds
	return req
}

// TestNonceReplayRefusedByEveryReplica uses a nonce at replica A with
// nc=1, replays it at replica B (refused with a stale challenge), and
// sends nc=2 at B (accepted).
func TestNonceReplayRefusedByEveryReplica(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a, b := newReplica(t, srv, replicaConfig()), newReplica(t, srv, replicaConfig())
	aor := "sip:alice@example.com"

	ch, err := a.Register(ctx, authRegister(aor, 1, nil))
	if err != nil || ch.GetCode() != 401 || len(ch.GetChallenges()) != 1 {
		t.Fatalf("Register without credentials = %v, %v; want 401 with one challenge", ch, err)
	}
	challenge := ch.GetChallenges()[0].GetValue()

	steps := []struct {
		name    string
		replica *registrar.Registrar
		nc      string
		want    int32
		stale   bool
	}{
		{"A nc=1", a, "00000001", 200, false},
		{"B nc=1 replayed", b, "00000001", 401, true},
		{"B nc=2", b, "00000002", 200, false},
		{"A nc=2 replayed", a, "00000002", 401, true},
	}
	for i, s := range steps {
		resp, err := s.replica.Register(ctx, authRegister(aor, uint32(i+2), digest(t, challenge, "alice", "secret", "sip:example.com", s.nc)))
		if err != nil || resp.GetCode() != s.want {
			t.Fatalf("%s: Register = %v, %v; want %d", s.name, resp, err, s.want)
		}
		if s.stale && (len(resp.GetChallenges()) == 0 || !strings.Contains(resp.GetChallenges()[0].GetValue(), "stale=true")) {
			t.Errorf("%s: challenges %v, want stale=true", s.name, resp.GetChallenges())
		}
	}
}

// TestDirectorySharedByReplicas changes domains and users at replica A
// through the API and sees them at replica B; the configuration seeds the
// directory, and a restart with it keeps what the API added.
func TestDirectorySharedByReplicas(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a, b := newReplica(t, srv, replicaConfig()), newReplica(t, srv, replicaConfig())

	if _, err := a.PutDomain(ctx, &registrarv1.PutDomainRequest{Domain: &registrarv1.Domain{Name: "other.example", AuthRequired: true}}); err != nil {
		t.Fatalf("PutDomain at A = %v", err)
	}
	if _, err := a.PutUser(ctx, &registrarv1.PutUserRequest{User: &registrarv1.User{Username: "bob", Domain: "other.example", Password: "pw"}}); err != nil {
		t.Fatalf("PutUser at A = %v", err)
	}
	doms, err := b.ListDomains(ctx, &registrarv1.ListDomainsRequest{})
	if err != nil || len(doms.GetDomains()) != 2 || doms.GetDomains()[0].GetName() != "example.com" || doms.GetDomains()[1].GetName() != "other.example" {
		t.Fatalf("ListDomains at B = %v, %v; want the configured and the added domain", doms, err)
	}
	users, err := b.ListUsers(ctx, &registrarv1.ListUsersRequest{Domain: "other.example"})
	if err != nil || len(users.GetUsers()) != 1 || users.GetUsers()[0].GetUsername() != "bob" {
		t.Fatalf("ListUsers at B = %v, %v; want bob", users, err)
	}

	// bob authenticates at B with the password given to A.
	aor := "sip:bob@other.example"
	req := authRegister(aor, 1, nil)
	req.RequestUri = "sip:other.example"
	ch, err := b.Register(ctx, req)
	if err != nil || ch.GetCode() != 401 {
		t.Fatalf("Register at B without credentials = %v, %v", ch, err)
	}
	req = authRegister(aor, 2, digest(t, ch.GetChallenges()[0].GetValue(), "bob", "pw", "sip:other.example", "00000001"))
	req.RequestUri = "sip:other.example"
	if resp, err := b.Register(ctx, req); err != nil || resp.GetCode() != 200 {
		t.Fatalf("Register at B with the password set at A = %v, %v", resp, err)
	}

	// A restart seeds the configuration again and keeps the API's domain.
	if _, err := a.DeleteUser(ctx, &registrarv1.DeleteUserRequest{Domain: "example.com", Username: "alice"}); err != nil {
		t.Fatalf("DeleteUser = %v", err)
	}
	c := newReplica(t, srv, replicaConfig())
	users, err = c.ListUsers(ctx, &registrarv1.ListUsersRequest{Domain: "example.com"})
	if err != nil || len(users.GetUsers()) != 1 || users.GetUsers()[0].GetUsername() != "alice" {
		t.Errorf("ListUsers after a restart = %v, %v; want alice seeded again", users, err)
	}
	doms, err = c.ListDomains(ctx, &registrarv1.ListDomainsRequest{})
	if err != nil || len(doms.GetDomains()) != 2 {
		t.Errorf("ListDomains after a restart = %v, %v; want the API's domain kept", doms, err)
	}
}

// redisClient is a plain client of srv, to look at keys.
func redisClient(t *testing.T, srv *redistest.Server) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}
