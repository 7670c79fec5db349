// Package steps defines the routing step interface of sipd's router. Each
// step lives in its own package below this one; the router runs them in a
// fixed order and the first step that decides wins.
package steps

import (
	"context"
	"time"

	routerv1 "github.com/sipd/sipd/proto/gen/sipd/router/v1"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Request is an initial request on its way through the chain, with the
// Request-URI already parsed.
type Request struct {
	// In is the request as the edge sent it.
	In *routerv1.RouteRequest
	// User and Host are the Request-URI's user part and lower-case host.
	User, Host string
	// Local is true when Host is one of the router's domains.
	Local bool
	// GRUU is true when the Request-URI has a gr parameter (RFC 5627).
	GRUU bool
}

// Step is one routing step. Route returns the decision, or nil to pass the
// request to the next step. An error is answered 500 by the router; a step
// that can name a better answer (503 when a service is down) returns it as
// a decision instead.
type Step interface {
	Route(ctx context.Context, req *Request) (*routerv1.RouteResponse, error)
}

// Func adapts a function to Step.
type Func func(ctx context.Context, req *Request) (*routerv1.RouteResponse, error)

// Route calls f.
func (f Func) Route(ctx context.Context, req *Request) (*routerv1.RouteResponse, error) {
	return f(ctx, req)
}

// Reject is a decision to answer with code and reason; a non-zero
// retryAfter becomes a Retry-After header.
func Reject(code int32, reason string, retryAfter time.Duration) *routerv1.RouteResponse {
	rej := &routerv1.Reject{Code: code, Reason: reason}
	if retryAfter > 0 {
		rej.RetryAfter = durationpb.New(retryAfter)
	}
	return &routerv1.RouteResponse{Action: &routerv1.RouteResponse_Reject{Reject: rej}}
}

// Forward is a decision to send the request to the target groups in order,
// the targets of one group in parallel.
func Forward(recordRoute bool, groups ...*routerv1.TargetGroup) *routerv1.RouteResponse {
	return &routerv1.RouteResponse{Action: &routerv1.RouteResponse_Forward{
		Forward: &routerv1.Forward{Groups: groups, RecordRoute: recordRoute},
	}}
}
