package registrar

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	registrarv1 "github.com/sipd/sipd/proto/gen/sipd/registrar/v1"
)

// GRUUs (RFC 5627). A REGISTER with `Supported: gruu` gets, for each
// binding with a +sip.instance, a public GRUU (the AOR with
// gr=<instance URN>) and a temporary GRUU, "sip:tgruu.TOKEN@domain;gr".
//
// The temporary GRUU keeps no state: TOKEN is base64url(random nonce |
// AES-256-GCM(key, callID tag | AOR | NUL | instance)) with the domain as
// additional data, the key derived from auth.secret. Only a registrar
// holding the secret can make or read one, and it does not reveal the
// AOR. Every REGISTER mints a new one; all of them stay valid while a
// binding of the instance registered with the same Call-ID lives, so a
// registration with a new Call-ID (a reboot of the UA) ends them, as
// section 5.2 asks.
//
// A request whose Request-URI carries gr is looked up (LookupRequest.gruu)
// to the bindings of that instance only.

// tempGRUUPrefix starts the user part of a temporary GRUU.
const tempGRUUPrefix = "tgruu."

// callIDTagLen is the length of the Call-ID hash a temporary GRUU carries.
const callIDTagLen = 8

// errBadGRUU marks a GRUU that does not resolve: not a GRUU, a temporary
// GRUU not made with our secret, or an instance that is not a URN.
var errBadGRUU = errors.New("registrar: not a valid gruu")

// gruus mints and resolves GRUUs.
type gruus struct {
	aead cipher.AEAD
}

// newGRUUs derives the temporary GRUU key from secret.
func newGRUUs(secret []byte) gruus {
	key := sha256.Sum256(append([]byte("sipd temp-gruu v1\x00"), secret...))
	block, err := aes.NewCipher(key[:])
	if err != nil {
		panic(err) // a 32-byte key always makes a cipher
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return gruus{aead: aead}
}

// instanceURN is the instance without its angle brackets ("urn:uuid:..."),
// or "" when it is not a URN that can go in a gr parameter.
func instanceURN(instance string) string {
	urn := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(instance), "<"), ">")
	if len(urn) < 5 || !strings.EqualFold(urn[:4], "urn:") || strings.ContainsAny(urn, " \t\r\n\";<>@?&=") {
		return ""
	}
	return urn
}

// pub returns the public GRUU of an AOR's instance, "" when the instance
// is not a URN.
func (g gruus) pub(aor, instance string) string {
	urn := instanceURN(instance)
	if urn == "" {
		return ""
	}
	return aor + ";gr=" + urn
}

func callIDTag(callID string) []byte {
	h := sha256.Sum256([]byte(callID))
	return h[:callIDTagLen]
}

// temp mints a new temporary GRUU of an AOR's instance registered with
// callID, "" when the instance is not a URN.
func (g gruus) temp(aor, instance, callID string) string {
	urn := instanceURN(instance)
	u, err := parseURI(aor)
	if urn == "" || err != nil {
		return ""
	}
	plain := make([]byte, 0, callIDTagLen+len(aor)+1+len(urn))
	plain = append(plain, callIDTag(callID)...)
	plain = append(plain, aor...)
	plain = append(plain, 0)
	plain = append(plain, urn...)
	nonce := make([]byte, g.aead.NonceSize(), g.aead.NonceSize()+len(plain)+g.aead.Overhead())
	_, _ = rand.Read(nonce)
	sealed := g.aead.Seal(nonce, nonce, plain, []byte(u.host))
	return "sip:" + tempGRUUPrefix + base64.RawURLEncoding.EncodeToString(sealed) + "@" + hostPort(u.host, 0) + ";gr"
}

// gruuTarget is what a GRUU resolves to.
type gruuTarget struct {
	aor string
	urn string // the instance, without angle brackets
	// callID is the Call-ID tag a temporary GRUU must match; nil for a
	// public GRUU.
	callID []byte
}

// resolve reads a GRUU (a Request-URI with a gr parameter).
func (g gruus) resolve(uri string) (gruuTarget, error) {
	u, err := parseURI(uri)
	if err != nil || !u.hasGR || u.user == "" {
		return gruuTarget{}, fmt.Errorf("resolving %q: %w", uri, errBadGRUU)
	}
	if u.gr != "" { // public: the AOR and the instance are in plain sight
		urn := instanceURN(u.gr)
		if urn == "" {
			return gruuTarget{}, fmt.Errorf("resolving %q: gr is not a urn: %w", uri, errBadGRUU)
		}
		return gruuTarget{aor: "sip:" + u.user + "@" + hostPort(u.host, 0), urn: urn}, nil
	}
	token, ok := strings.CutPrefix(u.user, tempGRUUPrefix)
	if !ok {
		return gruuTarget{}, fmt.Errorf("resolving %q: bare gr without a temporary gruu user: %w", uri, errBadGRUU)
	}
	sealed, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(sealed) < g.aead.NonceSize()+g.aead.Overhead() {
		return gruuTarget{}, fmt.Errorf("resolving %q: %w", uri, errBadGRUU)
	}
	n := g.aead.NonceSize()
	plain, err := g.aead.Open(nil, sealed[:n], sealed[n:], []byte(u.host))
	if err != nil || len(plain) < callIDTagLen {
		return gruuTarget{}, fmt.Errorf("resolving %q: not ours: %w", uri, errBadGRUU)
	}
	aor, urn, ok := strings.Cut(string(plain[callIDTagLen:]), "\x00")
	if !ok {
		return gruuTarget{}, fmt.Errorf("resolving %q: %w", uri, errBadGRUU)
	}
	return gruuTarget{aor: aor, urn: urn, callID: plain[:callIDTagLen]}, nil
}

// matches reports whether a binding is one the GRUU reaches.
func (t gruuTarget) matches(b Binding) bool {
	if !strings.EqualFold(instanceURN(b.Instance), t.urn) {
		return false
	}
	return t.callID == nil || string(callIDTag(b.CallID)) == string(t.callID)
}

// add sets pub_gruu and temp_gruu on the bindings with an instance.
func (g gruus) add(aor string, bindings []*registrarv1.Binding) {
	for _, b := range bindings {
		if b.GetInstance() == "" {
			continue
		}
		b.PubGruu = g.pub(aor, b.GetInstance())
		b.TempGruu = g.temp(aor, b.GetInstance(), b.GetCallId())
	}
}

// lookupGRUU answers a lookup of a GRUU: the live bindings of its
// instance (FOUND), none (NO_CONTACTS: the instance is not registered
// now), or UNKNOWN for a GRUU that does not resolve or an AOR never seen.
func (r *Registrar) lookupGRUU(ctx context.Context, gruu string) (*registrarv1.LookupResponse, error) {
	unknown := &registrarv1.LookupResponse{Status: registrarv1.LookupStatus_LOOKUP_STATUS_UNKNOWN}
	t, err := r.gruus.resolve(gruu)
	if err != nil {
		return unknown, nil
	}
	rec, err := r.store.Get(ctx, t.aor)
	switch {
	case errors.Is(err, ErrNotFound):
		return unknown, nil
	case err != nil:
		return nil, fmt.Errorf("looking up gruu of %s: %w", t.aor, err)
	}
	var mine []Binding
	for _, b := range rec.Bindings {
		if t.matches(b) {
			mine = append(mine, b)
		}
	}
	if live := liveBindings(mine, r.now()); len(live) > 0 {
		return &registrarv1.LookupResponse{Status: registrarv1.LookupStatus_LOOKUP_STATUS_FOUND, Bindings: live}, nil
	}
	return &registrarv1.LookupResponse{Status: registrarv1.LookupStatus_LOOKUP_STATUS_NO_CONTACTS}, nil
}
