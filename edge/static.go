package edge

import (
	"fmt"
	"strings"

	routerv1 "github.com/sipd/sipd/proto/gen/sipd/router/v1"
)

// StaticRoute forwards initial requests for one domain to a fixed next hop,
// decided by the edge itself: no router call. It is the edge's static-route
// mode, for an edge that works as a plain stateful proxy (a trunk
// gateway, or a benchmark), and it mirrors the router's static routes.
type StaticRoute struct {
	// Domain is the Request-URI host the route applies to, compared without
	// case, or "*" for every domain that is not local.
	Domain string `yaml:"domain"`
	// Destination is the SIP URI of the next hop, for example
	// "sip:192.0.2.10:5060;transport=tcp". The Request-URI is kept, and the
	// edge record-routes.
	Destination string `yaml:"destination"`
}

// staticWildcard as a route's domain matches every domain that is not local.
const staticWildcard = "*"

// staticRoutes is the compiled form of Config.StaticRoutes.
type staticRoutes struct {
	byDomain map[string]staticDest
	fallback *staticDest // the "*" route, nil if none
}

// staticDest is a route's next hop; inline is true when its host is an IP
// address, so forwarding needs no DNS and can run on the receiving
// goroutine.
type staticDest struct {
	uri    string
	inline bool
}

// validateStaticRoutes reports every problem of the routes.
func validateStaticRoutes(routes []StaticRoute) []error {
	var errs []error
	seen := make(map[string]bool, len(routes))
	for i, r := range routes {
		d := strings.ToLower(strings.TrimSpace(r.Domain))
		switch {
		case d == "":
			errs = append(errs, fmt.Errorf("static_routes[%d].domain is empty", i))
		case seen[d]:
			errs = append(errs, fmt.Errorf("static_routes[%d].domain (%q) has a route already", i, r.Domain))
		}
		seen[d] = true
		u, err := parseURI(r.Destination)
		if err == nil {
			_, err = hopOf(&u)
		}
		if err != nil || (u.Scheme != "sip" && u.Scheme != "sips") {
			errs = append(errs, fmt.Errorf("static_routes[%d].destination (%q) is not a sip or sips URI with a host", i, r.Destination))
		}
	}
	return errs
}

// newStaticRoutes compiles validated routes; nil when there are none.
func newStaticRoutes(routes []StaticRoute) *staticRoutes {
	if len(routes) == 0 {
		return nil
	}
	s := &staticRoutes{byDomain: make(map[string]staticDest, len(routes))}
	for _, r := range routes {
		u, err := parseURI(r.Destination)
		if err != nil {
			continue // Validate refuses it
		}
		d := staticDest{uri: r.Destination, inline: !needsDNS(&u)}
		dom := strings.ToLower(strings.TrimSpace(r.Domain))
		if dom == staticWildcard {
			if s.fallback == nil {
				s.fallback = &d
			}
			continue
		}
		if _, dup := s.byDomain[dom]; !dup {
			s.byDomain[dom] = d
		}
	}
	return s
}

// staticLookup returns the route for a Request-URI host: its domain's, else
// the "*" route when the host is not local.
func (e *Edge) staticLookup(host string) (staticDest, bool) {
	s := e.static
	if s == nil {
		return staticDest{}, false
	}
	host = hostOf(host)
	d, ok := s.byDomain[host]
	if !ok {
		d, ok = s.byDomain[strings.ToLower(host)]
	}
	if ok {
		return d, true
	}
	if s.fallback != nil && !e.isLocalDomain(host) {
		return *s.fallback, true
	}
	return staticDest{}, false
}

// routeStatic forwards an initial request by a static route, statefully
// and record-routing, and reports whether a route matched. The router is
// not asked.
func (p *proxyTx) routeStatic() bool {
	d, ok := p.e.staticLookup(p.req.Recipient.Host)
	if !ok {
		return false
	}
	target := &routerv1.Target{RequestUri: p.req.Recipient.String(), Destination: d.uri}
	p.mu.Lock()
	p.routed = true
	p.groups = []*routerv1.TargetGroup{{Targets: []*routerv1.Target{target}}}
	p.recordRoute = true
	p.mu.Unlock()
	if d.inline {
		p.startGroup(0)
		return true
	}
	if !p.e.submit(func() { p.startGroup(0) }) {
		p.finishErr(ErrOverload)
	}
	return true
}
