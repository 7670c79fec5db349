// Package location is the router step that delivers requests for local
// users to the contacts the registrar holds for them.
package location

import (
	"cmp"
	"context"
	"log/slog"
	"slices"
	"time"

	registrarv1 "github.com/sipd/sipd/proto/gen/sipd/registrar/v1"
	routerv1 "github.com/sipd/sipd/proto/gen/sipd/router/v1"
	"github.com/sipd/sipd/router/steps"
	"google.golang.org/grpc"
)

// Name is the step's name in the chain.
const Name = "location"

// RetryAfter is the Retry-After sent with 503 when the registrar cannot be
// reached.
const RetryAfter = 5 * time.Second

// Locator looks AORs up; a registrarv1.RegistrarServiceClient is one.
type Locator interface {
	Lookup(ctx context.Context, in *registrarv1.LookupRequest, opts ...grpc.CallOption) (*registrarv1.LookupResponse, error)
}

var _ steps.Step = (*Step)(nil)

// Step looks local users up in the registrar. Build it with New.
type Step struct {
	loc Locator
	log *slog.Logger
}

// New returns the step; log must not be nil.
func New(loc Locator, log *slog.Logger) *Step {
	return &Step{loc: loc, log: log}
}

// Route passes requests for non-local domains. For a local domain it looks
// up "sip:user@host" and forwards to the contacts, one parallel group per
// q-value, best q first; it answers 404 for an unknown user or a
// Request-URI without user, 480 for a known user without contacts and 503
// when the registrar fails. A Request-URI with a gr parameter (a GRUU,
// RFC 5627) is handed to the registrar whole, which resolves it and
// answers the bindings of that one instance: none live is 480, a GRUU
// that does not resolve 404.
func (s *Step) Route(ctx context.Context, req *steps.Request) (*routerv1.RouteResponse, error) {
	if !req.Local {
		return nil, nil
	}
	if req.User == "" {
		return steps.Reject(404, "Not Found", 0), nil
	}
	aor := "sip:" + req.User + "@" + hostOnly(req.Host)
	in := &registrarv1.LookupRequest{Aor: aor}
	if req.GRUU {
		in.Gruu = req.In.GetRequestUri()
	}
	resp, err := s.loc.Lookup(ctx, in)
	if err != nil {
		s.log.Warn("registrar lookup failed", "aor", aor, "call_id", req.In.GetCallId(), "err", err)
		return steps.Reject(503, "Service Unavailable", RetryAfter), nil
	}
	switch resp.GetStatus() {
	case registrarv1.LookupStatus_LOOKUP_STATUS_FOUND:
		if groups := targetGroups(resp.GetBindings()); len(groups) > 0 {
			return steps.Forward(true, groups...), nil
		}
		return steps.Reject(480, "Temporarily Unavailable", 0), nil
	case registrarv1.LookupStatus_LOOKUP_STATUS_NO_CONTACTS:
		return steps.Reject(480, "Temporarily Unavailable", 0), nil
	default:
		return steps.Reject(404, "Not Found", 0), nil
	}
}

// hostOnly brackets an IPv6 host.
func hostOnly(h string) string {
	for i := 0; i < len(h); i++ {
		if h[i] == ':' {
			return "[" + h + "]"
		}
	}
	return h
}

// effectiveQ orders bindings: an unset q (0) counts as 1.0, as the
// registrar orders them.
func effectiveQ(q int32) int32 {
	if q == 0 {
		return 1000
	}
	return q
}

// targetGroups turns bindings into groups of equal q, highest q first,
// keeping the registrar's order (most recent first) inside a group.
func targetGroups(bindings []*registrarv1.Binding) []*routerv1.TargetGroup {
	sorted := slices.Clone(bindings)
	slices.SortStableFunc(sorted, func(a, b *registrarv1.Binding) int {
		return cmp.Compare(effectiveQ(b.GetQ()), effectiveQ(a.GetQ()))
	})
	var groups []*routerv1.TargetGroup
	last := int32(-1)
	for _, b := range sorted {
		q := effectiveQ(b.GetQ())
		if q != last {
			groups = append(groups, &routerv1.TargetGroup{})
			last = q
		}
		g := groups[len(groups)-1]
		// With a Path the request goes through the edge named there, which
		// owns the flow; the received address serves bindings without one.
		dest := b.GetReceived()
		if len(b.GetPath()) > 0 {
			dest = ""
		}
		g.Targets = append(g.Targets, &routerv1.Target{
			RequestUri:   b.GetUri(),
			Destination:  dest,
			Route:        slices.Clone(b.GetPath()),
			Edge:         b.GetFlow().GetEdge(),
			ConnectionId: b.GetFlow().GetConnectionId(),
			Q:            q,
		})
	}
	return groups
}
