package registrar

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// DomainConfig is one served domain in the configuration (`domains:` of
// the registrar section). Domains are data: the API adds and removes them
// at run time; the configuration seeds the built-in directory.
type DomainConfig struct {
	// Name is the SIP domain, e.g. example.com.
	Name string `yaml:"name"`
	// Realm is the digest realm; empty means Name.
	Realm string `yaml:"realm"`
	// AuthRequired asks untrusted sources for credentials. Default true.
	AuthRequired *bool `yaml:"auth_required"`
}

// UserConfig is one subscriber in the configuration (`users:`). Exactly one
// way of giving the secret is needed: Password (hashed at start and not
// kept), or one or both HA1 hashes.
type UserConfig struct {
	// Username is the user part of the AOR and the digest username.
	Username string `yaml:"username"`
	// Domain is one of the configured domains.
	Domain string `yaml:"domain"`
	// Password is the clear-text password.
	Password string `yaml:"password"`
	// HA1MD5 is MD5(username:realm:password) in hex.
	HA1MD5 string `yaml:"ha1_md5"`
	// HA1SHA256 is SHA-256(username:realm:password) in hex.
	HA1SHA256 string `yaml:"ha1_sha256"`
}

// AuthConfig tunes digest authentication (`auth:`).
type AuthConfig struct {
	// Secret signs nonces so that any registrar replica can verify them,
	// and keys the temporary GRUUs (RFC 5627) so that any replica can
	// resolve them. Every replica must share it; empty picks a random
	// secret per process (a warning is logged when a domain asks for
	// authentication), which only works with a single registrar.
	Secret string `yaml:"secret"`
	// NonceLifetime is how long a nonce is accepted; an older one is
	// answered with a new challenge marked stale=true. Default 5m.
	NonceLifetime time.Duration `yaml:"nonce_lifetime"`
	// Algorithms are the digest algorithms offered, one challenge each in
	// this order: SHA-256 and MD5 (RFC 8760). Default [SHA-256, MD5].
	Algorithms []string `yaml:"algorithms"`
	// MaxNonces bounds the in-process nonce-count table used against
	// replays with the memory store (with store redis the counts are in
	// Redis, shared by every replica, and expire with their nonces).
	// Default 100000.
	MaxNonces int `yaml:"max_nonces"`
}

// Defaults of AuthConfig.
const (
	DefaultNonceLifetime = 5 * time.Minute
	DefaultMaxNonces     = 100000
)

// Digest algorithm names as they appear on the wire.
const (
	AlgorithmMD5    = "MD5"
	AlgorithmSHA256 = "SHA-256"
)

func (a *AuthConfig) setDefaults() {
	if a.NonceLifetime == 0 {
		a.NonceLifetime = DefaultNonceLifetime
	}
	if len(a.Algorithms) == 0 {
		a.Algorithms = []string{AlgorithmSHA256, AlgorithmMD5}
	}
	if a.MaxNonces == 0 {
		a.MaxNonces = DefaultMaxNonces
	}
}

var hexRE = regexp.MustCompile(`^[0-9a-fA-F]+$`)

// validateAuth reports the problems of the auth, domains and users keys.
func (c Config) validateAuth() []error {
	var errs []error
	if c.Auth.NonceLifetime <= 0 {
		errs = append(errs, fmt.Errorf("auth.nonce_lifetime (%s) must be > 0", c.Auth.NonceLifetime))
	}
	if c.Auth.MaxNonces < 1 {
		errs = append(errs, fmt.Errorf("auth.max_nonces (%d) must be >= 1", c.Auth.MaxNonces))
	}
	for i, a := range c.Auth.Algorithms {
		if canonicalAlgorithm(a) == "" {
			errs = append(errs, fmt.Errorf("auth.algorithms[%d] (%q) must be SHA-256 or MD5", i, a))
		}
	}
	domains := map[string]bool{}
	for i, d := range c.Domains {
		name := strings.ToLower(strings.TrimSpace(d.Name))
		switch {
		case name == "" || strings.ContainsAny(name, " \t;@<>\""):
			errs = append(errs, fmt.Errorf("domains[%d].name (%q) is not a host name or address", i, d.Name))
		case domains[name]:
			errs = append(errs, fmt.Errorf("domains[%d].name (%q) is listed twice", i, d.Name))
		}
		if strings.ContainsAny(d.Realm, "\"\\\r\n") {
			errs = append(errs, fmt.Errorf("domains[%d].realm (%q) must not hold quotes, backslashes or line breaks", i, d.Realm))
		}
		domains[name] = true
	}
	users := map[string]bool{}
	for i, u := range c.Users {
		dom := strings.ToLower(strings.TrimSpace(u.Domain))
		key := u.Username + "@" + dom
		switch {
		case u.Username == "" || strings.ContainsAny(u.Username, " \t;@<>:\"\\"):
			errs = append(errs, fmt.Errorf("users[%d].username (%q) is not a SIP user name", i, u.Username))
		case users[key]:
			errs = append(errs, fmt.Errorf("users[%d] (%q) is listed twice", i, key))
		}
		users[key] = true
		if !domains[dom] {
			errs = append(errs, fmt.Errorf("users[%d].domain (%q) is not one of domains", i, u.Domain))
		}
		if u.Password == "" && u.HA1MD5 == "" && u.HA1SHA256 == "" {
			errs = append(errs, fmt.Errorf("users[%d] (%q) needs password, ha1_md5 or ha1_sha256", i, key))
		}
		if u.Password != "" && (u.HA1MD5 != "" || u.HA1SHA256 != "") {
			errs = append(errs, fmt.Errorf("users[%d] (%q) sets password and an ha1: give one", i, key))
		}
		if u.HA1MD5 != "" && (len(u.HA1MD5) != 32 || !hexRE.MatchString(u.HA1MD5)) {
			errs = append(errs, fmt.Errorf("users[%d].ha1_md5 of %q must be 32 hex digits", i, key))
		}
		if u.HA1SHA256 != "" && (len(u.HA1SHA256) != 64 || !hexRE.MatchString(u.HA1SHA256)) {
			errs = append(errs, fmt.Errorf("users[%d].ha1_sha256 of %q must be 64 hex digits", i, key))
		}
	}
	return errs
}

// canonicalAlgorithm returns the wire name of a digest algorithm ("" or
// MD5: MD5), or "" when it is not supported.
func canonicalAlgorithm(a string) string {
	switch strings.ToUpper(strings.TrimSpace(a)) {
	case "", "MD5":
		return AlgorithmMD5
	case "SHA-256":
		return AlgorithmSHA256
	}
	return ""
}

// errInvalidAuthData marks a domain or user the API refuses.
var errInvalidAuthData = errors.New("registrar: invalid domain or user")
