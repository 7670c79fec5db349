package registrar

import (
	"cmp"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Errors of a Directory.
var (
	ErrDomainNotFound = errors.New("registrar: domain not found")
	ErrUserNotFound   = errors.New("registrar: user not found")
)

// Domain is a served SIP domain.
type Domain struct {
	// Name is the lower-case domain name.
	Name string `json:"name"`
	// Realm is the digest realm (the name when configured empty).
	Realm string `json:"realm"`
	// AuthRequired asks untrusted sources for credentials.
	AuthRequired bool `json:"auth_required"`
}

// User is a subscriber of a domain, with its HA1 hashes (never the
// password).
type User struct {
	Username string `json:"username"`
	// Domain is the lower-case domain name.
	Domain string `json:"domain"`
	// HA1MD5 is MD5(username:realm:password), lower-case hex, "" if unknown.
	HA1MD5 string `json:"ha1_md5,omitempty"`
	// HA1SHA256 is SHA-256(username:realm:password), lower-case hex.
	HA1SHA256 string `json:"ha1_sha256,omitempty"`
}

// Directory keeps the served domains and their users. The memory
// directory is the built-in one; package redisstore has a shared one, so
// that every replica sees the same subscribers. Every Directory must pass
// the contract suite in registrar/directorytest. Failures of a shared
// directory wrap ErrStoreUnavailable.
type Directory interface {
	// Domain returns the domain called name, or ErrDomainNotFound.
	Domain(ctx context.Context, name string) (Domain, error)
	// PutDomain adds or updates a domain.
	PutDomain(ctx context.Context, d Domain) error
	// DeleteDomain removes a domain and its users; a missing domain is not
	// an error.
	DeleteDomain(ctx context.Context, name string) error
	// Domains lists every domain by name.
	Domains(ctx context.Context) ([]Domain, error)
	// User returns a user of a domain, or ErrUserNotFound.
	User(ctx context.Context, domain, username string) (User, error)
	// PutUser adds or updates a user; its domain must exist
	// (ErrDomainNotFound).
	PutUser(ctx context.Context, u User) error
	// DeleteUser removes a user; a missing user is not an error.
	DeleteUser(ctx context.Context, domain, username string) error
	// Users lists the users of a domain by name.
	Users(ctx context.Context, domain string) ([]User, error)
}

var _ Directory = (*memoryDirectory)(nil)

// memoryDirectory is a Directory in process memory: one mutex, a map of
// domains and a map of users per domain. Reads dominate, so an RWMutex.
type memoryDirectory struct {
	mu      sync.RWMutex
	domains map[string]Domain
	users   map[string]map[string]User // domain -> username -> user
}

// NewMemoryDirectory returns an empty in-memory Directory.
func NewMemoryDirectory() Directory {
	return &memoryDirectory{domains: map[string]Domain{}, users: map[string]map[string]User{}}
}

func (m *memoryDirectory) Domain(_ context.Context, name string) (Domain, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	d, ok := m.domains[strings.ToLower(name)]
	if !ok {
		return Domain{}, ErrDomainNotFound
	}
	return d, nil
}

func (m *memoryDirectory) PutDomain(_ context.Context, d Domain) error {
	d.Name = strings.ToLower(d.Name)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.domains[d.Name] = d
	if m.users[d.Name] == nil {
		m.users[d.Name] = map[string]User{}
	}
	return nil
}

func (m *memoryDirectory) DeleteDomain(_ context.Context, name string) error {
	name = strings.ToLower(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.domains, name)
	delete(m.users, name)
	return nil
}

func (m *memoryDirectory) Domains(context.Context) ([]Domain, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]Domain, 0, len(m.domains))
	for _, d := range m.domains {
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b Domain) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

func (m *memoryDirectory) User(_ context.Context, domain, username string) (User, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	u, ok := m.users[strings.ToLower(domain)][username]
	if !ok {
		return User{}, ErrUserNotFound
	}
	return u, nil
}

func (m *memoryDirectory) PutUser(_ context.Context, u User) error {
	u.Domain = strings.ToLower(u.Domain)
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.domains[u.Domain]; !ok {
		return ErrDomainNotFound
	}
	m.users[u.Domain][u.Username] = u
	return nil
}

func (m *memoryDirectory) DeleteUser(_ context.Context, domain, username string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.users[strings.ToLower(domain)], username)
	return nil
}

func (m *memoryDirectory) Users(_ context.Context, domain string) ([]User, error) {
	domain = strings.ToLower(domain)
	m.mu.RLock()
	defer m.mu.RUnlock()
	if _, ok := m.domains[domain]; !ok {
		return nil, ErrDomainNotFound
	}
	out := make([]User, 0, len(m.users[domain]))
	for _, u := range m.users[domain] {
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b User) int { return cmp.Compare(a.Username, b.Username) })
	return out, nil
}

// ha1 computes H(username:realm:password) for an algorithm, in hex.
func ha1(alg, username, realm, password string) string {
	return hashHex(alg, username+":"+realm+":"+password)
}

// hashHex is the lower-case hex digest of s under alg (MD5 or SHA-256).
func hashHex(alg, s string) string {
	if alg == AlgorithmSHA256 {
		h := sha256.Sum256([]byte(s))
		return hex.EncodeToString(h[:])
	}
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

// userFromConfig builds a User (with HA1 hashes) from its settings; realm
// is its domain's realm.
func userFromConfig(username, domain, realm, password, ha1MD5, ha1SHA256 string) User {
	u := User{Username: username, Domain: strings.ToLower(domain),
		HA1MD5: strings.ToLower(ha1MD5), HA1SHA256: strings.ToLower(ha1SHA256)}
	if password != "" {
		u.HA1MD5 = ha1(AlgorithmMD5, username, realm, password)
		u.HA1SHA256 = ha1(AlgorithmSHA256, username, realm, password)
	}
	return u
}

// seedDirectory upserts the configured domains and users into dir:
// configured entries overwrite stored ones of the same name, and entries
// added through the API are kept.
func seedDirectory(ctx context.Context, dir Directory, cfg Config) error {
	realms := map[string]string{}
	for _, d := range cfg.Domains {
		dom := Domain{Name: strings.ToLower(strings.TrimSpace(d.Name)), Realm: d.Realm, AuthRequired: d.AuthRequired == nil || *d.AuthRequired}
		if dom.Realm == "" {
			dom.Realm = dom.Name
		}
		realms[dom.Name] = dom.Realm
		if err := dir.PutDomain(ctx, dom); err != nil {
			return fmt.Errorf("seeding domain %q: %w", dom.Name, err)
		}
	}
	for _, u := range cfg.Users {
		dom := strings.ToLower(strings.TrimSpace(u.Domain))
		if err := dir.PutUser(ctx, userFromConfig(u.Username, dom, realms[dom], u.Password, u.HA1MD5, u.HA1SHA256)); err != nil {
			return fmt.Errorf("seeding user %q of %q: %w", u.Username, dom, err)
		}
	}
	return nil
}
