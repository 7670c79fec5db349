// Package auth is the router step that asks callers from local domains for
// digest credentials (RFC 3261 section 22.3, proxy authentication), the
// registrar checking them.
package auth

import (
	"context"
	"log/slog"
	"strings"
	"time"

	registrarv1 "github.com/sipd/sipd/proto/gen/sipd/registrar/v1"
	routerv1 "github.com/sipd/sipd/proto/gen/sipd/router/v1"
	"github.com/sipd/sipd/router/internal/sipuri"
	"github.com/sipd/sipd/router/steps"
	"google.golang.org/grpc"
)

// Name is the step's name in the chain.
const Name = "auth"

// RetryAfter is the Retry-After sent with 503 when the registrar cannot be
// reached.
const RetryAfter = 5 * time.Second

// Authenticator checks credentials; a registrarv1.RegistrarServiceClient
// is one.
type Authenticator interface {
	Authenticate(ctx context.Context, in *registrarv1.AuthenticateRequest, opts ...grpc.CallOption) (*registrarv1.AuthenticateResponse, error)
}

var _ steps.Step = (*Step)(nil)

// Step authenticates requests from local users. Build it with New.
type Step struct {
	auth    Authenticator
	domains map[string]bool
	log     *slog.Logger
}

// New returns the step for the local domains (lower-case); log must not be
// nil.
func New(a Authenticator, domains []string, log *slog.Logger) *Step {
	s := &Step{auth: a, domains: make(map[string]bool, len(domains)), log: log}
	for _, d := range domains {
		s.domains[strings.ToLower(d)] = true
	}
	return s
}

// Route passes trusted requests, ACK and CANCEL, and requests whose From
// domain is not local. For the others it asks the registrar: good
// credentials (or a domain that needs none) pass to the next step; missing,
// wrong or stale ones are answered 407 with Proxy-Authenticate challenges;
// credentials of another user than From are answered 403; a registrar that
// fails is 503.
func (s *Step) Route(ctx context.Context, req *steps.Request) (*routerv1.RouteResponse, error) {
	in := req.In
	if in.GetTrusted() || in.GetMethod() == "ACK" || in.GetMethod() == "CANCEL" {
		return nil, nil
	}
	from, err := sipuri.Parse(in.GetFromUri())
	if err != nil || !s.domains[from.Host] {
		return nil, nil
	}
	resp, err := s.auth.Authenticate(ctx, &registrarv1.AuthenticateRequest{
		Method:      in.GetMethod(),
		RequestUri:  in.GetRequestUri(),
		FromUri:     in.GetFromUri(),
		Credentials: in.GetCredentials(),
	})
	if err != nil {
		s.log.Warn("registrar authenticate failed", "from", in.GetFromUri(), "call_id", in.GetCallId(), "err", err)
		return steps.Reject(503, "Service Unavailable", RetryAfter), nil
	}
	switch resp.GetCode() {
	case 200:
		return nil, nil
	case 407:
		rej := steps.Reject(407, "Proxy Authentication Required", 0)
		for _, c := range resp.GetChallenges() {
			rej.GetReject().Headers = append(rej.GetReject().Headers, &routerv1.Header{Name: "Proxy-Authenticate", Value: c.GetValue()})
		}
		return rej, nil
	default:
		return steps.Reject(403, "Forbidden", 0), nil
	}
}
