// Package static is the router step that forwards requests by the
// Request-URI's domain to a configured next hop.
package static

import (
	"context"
	"strings"

	routerv1 "github.com/sipd/sipd/proto/gen/sipd/router/v1"
	"github.com/sipd/sipd/router/steps"
)

// Name is the step's name in the chain.
const Name = "static"

// Wildcard as a route's domain matches every domain that is not local.
const Wildcard = "*"

// Route sends requests for Domain to Destination.
type Route struct {
	// Domain is the Request-URI host the route applies to, or "*".
	Domain string
	// Destination is the next hop's SIP URI.
	Destination string
}

var _ steps.Step = (*Step)(nil)

// Step forwards by static route. Build it with New.
type Step struct {
	byDomain map[string]string
	fallback string // destination of the "*" route, "" if none
}

// New returns the step for routes; domains are compared case-insensitively.
// Later routes for the same domain are ignored (the router's config
// validation refuses them).
func New(routes []Route) *Step {
	s := &Step{byDomain: make(map[string]string, len(routes))}
	for _, r := range routes {
		d := strings.ToLower(r.Domain)
		if d == Wildcard {
			if s.fallback == "" {
				s.fallback = r.Destination
			}
			continue
		}
		if _, dup := s.byDomain[d]; !dup {
			s.byDomain[d] = r.Destination
		}
	}
	return s
}

// Route forwards the request, Request-URI unchanged, to the destination of
// its domain's route, or of the "*" route for a non-local domain; it
// passes when no route matches.
func (s *Step) Route(_ context.Context, req *steps.Request) (*routerv1.RouteResponse, error) {
	dest, ok := s.byDomain[req.Host]
	if !ok {
		if req.Local || s.fallback == "" {
			return nil, nil
		}
		dest = s.fallback
	}
	return steps.Forward(true, &routerv1.TargetGroup{Targets: []*routerv1.Target{{
		RequestUri:  req.In.GetRequestUri(),
		Destination: dest,
	}}}), nil
}
