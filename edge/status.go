package edge

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Sentinel errors of the edge.
var (
	// ErrOverload reports a full worker queue or transaction table.
	ErrOverload = errors.New("edge: overloaded")
	// ErrNoRoute reports a next hop that cannot be worked out or resolved.
	ErrNoRoute = errors.New("edge: no route to next hop")
	// ErrSend reports a failure to send a request to its next hop.
	ErrSend = errors.New("edge: sending failed")
	// ErrBadRouterAnswer reports a RouteResponse with neither reject nor forward.
	ErrBadRouterAnswer = errors.New("edge: router answer has no action")
	// ErrNotRunning reports a call that needs Run first.
	ErrNotRunning = errors.New("edge: not running")
)

// sipStatus is how the edge answers a failure.
type sipStatus struct {
	code       int
	retryAfter bool
}

// grpcToSIP is the one table from gRPC status codes to SIP statuses. A
// service that is down, slow or overloaded becomes 503 with Retry-After.
var grpcToSIP = map[codes.Code]sipStatus{
	codes.DeadlineExceeded:   {503, true},
	codes.Unavailable:        {503, true},
	codes.ResourceExhausted:  {503, true},
	codes.Canceled:           {503, true},
	codes.Aborted:            {503, true},
	codes.InvalidArgument:    {400, false},
	codes.OutOfRange:         {400, false},
	codes.FailedPrecondition: {400, false},
	codes.NotFound:           {404, false},
	codes.PermissionDenied:   {403, false},
	codes.Unauthenticated:    {403, false},
	codes.Unimplemented:      {501, false},
	codes.AlreadyExists:      {500, false},
	codes.Internal:           {500, false},
	codes.Unknown:            {500, false},
	codes.DataLoss:           {500, false},
}

// statusFor maps any error of the edge or of a gRPC call to the SIP status
// answered upstream. It is the only place where errors become SIP codes.
func statusFor(err error) sipStatus {
	switch {
	case err == nil:
		return sipStatus{code: 200}
	case errors.Is(err, ErrFlowFailed):
		return sipStatus{430, false}
	case errors.Is(err, ErrOverload), errors.Is(err, ErrNoRoute), errors.Is(err, ErrSend),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return sipStatus{503, true}
	case errors.Is(err, ErrBadRouterAnswer):
		return sipStatus{500, false}
	}
	if st, ok := status.FromError(err); ok {
		if s, ok := grpcToSIP[st.Code()]; ok {
			return s
		}
	}
	return sipStatus{500, false}
}

// grpcCode labels a gRPC call's outcome for metrics.
func grpcCode(err error) string {
	return status.Code(err).String()
}
