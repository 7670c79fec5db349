// Package static is the router step that forwards requests by the
// Request-URI's domain to a configured next hop.
package static

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"

	routerv1 "github.com/sipd/sipd/proto/gen/sipd/router/v1"
	"github.com/sipd/sipd/router/steps"
)

// Name is the step's name in the chain.
const Name = "static"

// Wildcard as a route's domain matches every domain that is not local.
const Wildcard = "*"

// ErrRouteNotFound is returned by SetDisabled for a domain with no route.
var ErrRouteNotFound = errors.New("static: route not found")

// Route sends requests for Domain to Destination.
type Route struct {
	// Domain is the Request-URI host the route applies to, or "*".
	Domain string
	// Destination is the next hop's SIP URI.
	Destination string
}

// Status is a route with its admin state and counters.
type Status struct {
	Route
	// Disabled routes are skipped, as if they did not exist.
	Disabled bool
	// Attempts counts the decisions that forwarded to the route.
	Attempts uint64
}

// entry is one route of a table; its state and counters change in place.
type entry struct {
	route    Route
	disabled atomic.Bool
	attempts atomic.Uint64
}

func (e *entry) status() Status {
	return Status{Route: e.route, Disabled: e.disabled.Load(), Attempts: e.attempts.Load()}
}

// table is an immutable set of routes; only the entries' state and
// counters change.
type table struct {
	ordered  []*entry          // as configured
	byDomain map[string]*entry // lower-case domain, "*" included
}

var _ steps.Step = (*Step)(nil)

// Step forwards by static route. Build it with New. Its route table is
// swapped whole by Replace; Route reads it without a lock.
type Step struct {
	t  atomic.Pointer[table]
	mu sync.Mutex // serialises Replace and SetDisabled
}

// New returns the step for routes; domains are compared case-insensitively.
// Later routes for the same domain are ignored (the router's config
// validation refuses them).
func New(routes []Route) *Step {
	s := &Step{}
	s.t.Store(newTable(routes, nil))
	return s
}

// newTable builds a table for routes; a route whose domain and destination
// are in old keeps its admin state and counters.
func newTable(routes []Route, old *table) *table {
	t := &table{byDomain: make(map[string]*entry, len(routes))}
	for _, r := range routes {
		d := strings.ToLower(r.Domain)
		if _, dup := t.byDomain[d]; dup {
			continue
		}
		e := &entry{route: r}
		if old != nil {
			if prev, ok := old.byDomain[d]; ok {
				e.disabled.Store(prev.disabled.Load())
				if prev.route.Destination == r.Destination {
					e.attempts.Store(prev.attempts.Load())
				}
			}
		}
		t.byDomain[d] = e
		t.ordered = append(t.ordered, e)
	}
	return t
}

// Replace swaps the route table for routes. A route whose domain was
// routed before keeps its admin state (and its counters when the
// destination is unchanged). It returns the number of routes.
func (s *Step) Replace(routes []Route) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := newTable(routes, s.t.Load())
	s.t.Store(t)
	return len(t.ordered)
}

// Routes returns the routes in configuration order with their states.
func (s *Step) Routes() []Status {
	t := s.t.Load()
	out := make([]Status, len(t.ordered))
	for i, e := range t.ordered {
		out[i] = e.status()
	}
	return out
}

// SetDisabled sets the admin state of domain's route (case-insensitive,
// "*" for the wildcard) and returns the route.
func (s *Step) SetDisabled(domain string, disabled bool) (Status, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.t.Load().byDomain[strings.ToLower(domain)]
	if !ok {
		return Status{}, ErrRouteNotFound
	}
	e.disabled.Store(disabled)
	return e.status(), nil
}

// Route forwards the request, Request-URI unchanged, to the destination of
// its domain's route, or of the "*" route for a non-local domain; it
// passes when no active route matches. A disabled route counts as absent.
func (s *Step) Route(_ context.Context, req *steps.Request) (*routerv1.RouteResponse, error) {
	t := s.t.Load()
	e, ok := t.byDomain[req.Host]
	if ok && (req.Host == Wildcard || e.disabled.Load()) {
		ok = false
	}
	if !ok {
		if req.Local {
			return nil, nil
		}
		if e, ok = t.byDomain[Wildcard]; !ok || e.disabled.Load() {
			return nil, nil
		}
	}
	e.attempts.Add(1)
	return steps.Forward(true, &routerv1.TargetGroup{Targets: []*routerv1.Target{{
		RequestUri:  req.In.GetRequestUri(),
		Destination: e.route.Destination,
	}}}), nil
}
