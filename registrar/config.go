package registrar

import (
	"errors"
	"fmt"
	"time"
)

// Config holds the registrar's settings, the `registrar:` section of the
// sipd configuration.
type Config struct {
	// DefaultExpires is the binding lifetime used when a REGISTER gives
	// neither a Contact expires parameter nor an Expires header. Default 1h.
	DefaultExpires time.Duration `yaml:"default_expires"`
	// MinExpires is the shortest lifetime accepted; a shorter non-zero
	// request is answered 423 Interval Too Brief with Min-Expires. Default 60s.
	MinExpires time.Duration `yaml:"min_expires"`
	// MaxExpires caps the lifetime of a binding; longer requests are granted
	// MaxExpires. Default 24h.
	MaxExpires time.Duration `yaml:"max_expires"`
	// MaxContacts is the most bindings one AOR may hold; a REGISTER that
	// would exceed it is answered 503 with Retry-After. Default 10.
	MaxContacts int `yaml:"max_contacts"`
	// MaxContactsPolicy says what a REGISTER past MaxContacts gets:
	// "reject" (503 with Retry-After, the default) or "evict_oldest" (the
	// least recently refreshed bindings make room, as Kamailio's
	// max_contacts with overwrite does).
	MaxContactsPolicy string `yaml:"max_contacts_policy"`
	// ExpiresSpread shortens each granted expiry by a random share of at
	// most this fraction (0 to 0.5; Kamailio's expires_range as a
	// fraction), so phones that all registered at once after a restart do
	// not all refresh at once. Default 0 (off); 0.1 is a common choice.
	ExpiresSpread float64 `yaml:"expires_spread"`
	// KnownRetention is how long an AOR stays known after its last binding
	// is gone, so that calls to it are answered 480 Temporarily Unavailable
	// rather than 404 Not Found. Default 24h.
	KnownRetention time.Duration `yaml:"known_retention"`
	// Store is where bindings live: "memory" (in this process, lost on
	// restart; the default) or "redis" (shared by every registrar replica,
	// kept across restarts).
	Store string `yaml:"store"`
	// Redis is the Redis store's connection, used when Store is "redis".
	Redis RedisConfig `yaml:"redis"`
	// Origin names this registrar in the binding events it publishes, so
	// that a replicator can tell local changes from remote ones. Default:
	// the host name.
	Origin string `yaml:"origin"`
	// Domains seed the served domains of digest authentication (name,
	// realm, auth_required); the API changes them at run time. An AOR whose
	// domain is not listed is served without authentication.
	Domains []DomainConfig `yaml:"domains"`
	// Users seed the subscribers (username, domain, and password, ha1_md5
	// or ha1_sha256).
	Users []UserConfig `yaml:"users"`
	// Auth tunes digest authentication: secret, nonce_lifetime, algorithms,
	// max_nonces.
	Auth AuthConfig `yaml:"auth"`
}

// Defaults of Config, applied by SetDefaults to zero fields.
const (
	DefaultDefaultExpires = time.Hour
	DefaultMinExpires     = 60 * time.Second
	DefaultMaxExpires     = 24 * time.Hour
	DefaultMaxContacts    = 10
	// PolicyReject and PolicyEvictOldest are the values of
	// max_contacts_policy.
	PolicyReject          = "reject"
	PolicyEvictOldest     = "evict_oldest"
	DefaultKnownRetention = 24 * time.Hour
)

// SetDefaults fills the zero fields of c with their defaults.
func (c *Config) SetDefaults() {
	if c.DefaultExpires == 0 {
		c.DefaultExpires = DefaultDefaultExpires
	}
	if c.MinExpires == 0 {
		c.MinExpires = DefaultMinExpires
	}
	if c.MaxExpires == 0 {
		c.MaxExpires = DefaultMaxExpires
	}
	if c.MaxContacts == 0 {
		c.MaxContacts = DefaultMaxContacts
	}
	if c.KnownRetention == 0 {
		c.KnownRetention = DefaultKnownRetention
	}
	if c.MaxContactsPolicy == "" {
		c.MaxContactsPolicy = PolicyReject
	}
	c.setStoreDefaults()
	c.Auth.setDefaults()
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	if c.MinExpires <= 0 {
		errs = append(errs, fmt.Errorf("min_expires (%s) must be > 0", c.MinExpires))
	}
	if c.MaxExpires <= 0 {
		errs = append(errs, fmt.Errorf("max_expires (%s) must be > 0", c.MaxExpires))
	}
	if c.MaxExpires < c.MinExpires {
		errs = append(errs, fmt.Errorf("max_expires (%s) must be >= min_expires (%s)", c.MaxExpires, c.MinExpires))
	}
	if c.DefaultExpires < c.MinExpires || c.DefaultExpires > c.MaxExpires {
		errs = append(errs, fmt.Errorf("default_expires (%s) must be between min_expires (%s) and max_expires (%s)",
			c.DefaultExpires, c.MinExpires, c.MaxExpires))
	}
	if c.MaxContacts < 1 {
		errs = append(errs, fmt.Errorf("max_contacts (%d) must be >= 1", c.MaxContacts))
	}
	if c.KnownRetention < 0 {
		errs = append(errs, fmt.Errorf("known_retention (%s) must be >= 0", c.KnownRetention))
	}
	if c.MaxContactsPolicy != PolicyReject && c.MaxContactsPolicy != PolicyEvictOldest {
		errs = append(errs, fmt.Errorf("max_contacts_policy (%q) must be %q or %q", c.MaxContactsPolicy, PolicyReject, PolicyEvictOldest))
	}
	if c.ExpiresSpread < 0 || c.ExpiresSpread > 0.5 {
		errs = append(errs, fmt.Errorf("expires_spread (%g) must be between 0 and 0.5", c.ExpiresSpread))
	}
	errs = append(errs, c.validateStore()...)
	errs = append(errs, c.validateAuth()...)
	return errors.Join(errs...)
}
