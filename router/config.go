package router

import (
	"errors"
	"fmt"
	"strings"

	"github.com/sipd/sipd/router/internal/sipuri"
)

// Config holds the router's settings, the `router:` section of the sipd
// configuration.
type Config struct {
	// Domains are the SIP domains served locally: a request whose
	// Request-URI host is one of them goes to the registrar's contacts of
	// the user. Default [localhost, 127.0.0.1].
	Domains []string `yaml:"domains"`
	// StaticRoutes forward requests for other domains to a fixed next hop.
	// They are tried before the location lookup.
	StaticRoutes []StaticRoute `yaml:"static_routes"`
}

// StaticRoute forwards requests for one domain to one next hop.
type StaticRoute struct {
	// Domain is the Request-URI host the route applies to, or "*" for any
	// domain that is not local.
	Domain string `yaml:"domain"`
	// Destination is the SIP URI of the next hop, for example
	// "sip:192.0.2.10:5060;transport=tcp". The Request-URI is kept.
	Destination string `yaml:"destination"`
}

// SetDefaults fills the zero fields of c with their defaults.
func (c *Config) SetDefaults() {
	if len(c.Domains) == 0 {
		c.Domains = []string{"localhost", "127.0.0.1"}
	}
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	seenDomain := make(map[string]bool)
	for i, d := range c.Domains {
		switch {
		case strings.TrimSpace(d) == "" || strings.ContainsAny(d, " \t;@<>"):
			errs = append(errs, fmt.Errorf("domains[%d] (%q) is not a host name or address", i, d))
		case seenDomain[strings.ToLower(d)]:
			errs = append(errs, fmt.Errorf("domains[%d] (%q) is listed twice", i, d))
		}
		seenDomain[strings.ToLower(d)] = true
	}
	seenRoute := make(map[string]bool)
	for i, r := range c.StaticRoutes {
		d := strings.ToLower(r.Domain)
		switch {
		case strings.TrimSpace(d) == "":
			errs = append(errs, fmt.Errorf("static_routes[%d].domain is empty", i))
		case seenRoute[d]:
			errs = append(errs, fmt.Errorf("static_routes[%d].domain (%q) has a route already", i, r.Domain))
		}
		seenRoute[d] = true
		if _, err := sipuri.Parse(r.Destination); err != nil {
			errs = append(errs, fmt.Errorf("static_routes[%d].destination (%q) is not a sip or sips URI with a host", i, r.Destination))
		}
	}
	return errors.Join(errs...)
}
