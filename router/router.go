// Package router is sipd's routing service: for each initial request the
// edge asks it where the request goes, and it answers with a rejection or
// an ordered list of target groups. Decisions come from a chain of steps
// (package steps and below), run in a fixed order.
package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	registrarv1 "github.com/sipd/sipd/proto/gen/sipd/registrar/v1"
	routerv1 "github.com/sipd/sipd/proto/gen/sipd/router/v1"
	"github.com/sipd/sipd/router/internal/sipuri"
	"github.com/sipd/sipd/router/steps"
	"github.com/sipd/sipd/router/steps/auth"
	"github.com/sipd/sipd/router/steps/location"
	"github.com/sipd/sipd/router/steps/static"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	grpccodes "google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Locator looks AORs up in the registrar; a
// registrarv1.RegistrarServiceClient is one.
type Locator interface {
	Lookup(ctx context.Context, in *registrarv1.LookupRequest, opts ...grpc.CallOption) (*registrarv1.LookupResponse, error)
}

// Authenticator checks digest credentials in the registrar; a
// registrarv1.RegistrarServiceClient is one.
type Authenticator interface {
	Authenticate(ctx context.Context, in *registrarv1.AuthenticateRequest, opts ...grpc.CallOption) (*registrarv1.AuthenticateResponse, error)
}

// Deps are what a Router talks to.
type Deps struct {
	// Locator is the registrar; required by the location step.
	Locator Locator
	// Authenticator is the registrar's Authenticate, for the auth step;
	// nil uses Locator when it has Authenticate too, and leaves the auth
	// step out otherwise.
	Authenticator Authenticator
	// Logger; nil uses slog.Default().
	Logger *slog.Logger
	// Registerer receives the metrics; nil leaves them unregistered.
	Registerer prometheus.Registerer
	// TracerProvider; nil uses otel.GetTracerProvider().
	TracerProvider trace.TracerProvider
	// Reload re-reads the static routes from the configuration the router
	// was started with, for the Reload RPC; nil makes Reload answer
	// FailedPrecondition.
	Reload func() ([]StaticRoute, error)
}

// Sentinel errors of the management API; toStatus maps them to gRPC codes.
var (
	ErrNoReload     = errors.New("router: reload is not available (no configuration file)")
	ErrReload       = errors.New("router: reloading failed")
	ErrInvalidState = errors.New("router: state must be ROUTE_STATE_ACTIVE or ROUTE_STATE_DISABLED")
)

// chain is the order of the routing steps. Auth comes first: a caller from
// a local domain must prove who it is before anything is routed for it.
// Static routes come next: they
// are the operator's explicit word for a domain (a trunk, a PBX, a
// catch-all "*" for foreign domains) and need no lookup. Location then
// serves the local domains from the registrar. A request no step decides
// is answered 404.
var chain = []string{auth.Name, static.Name, location.Name}

// buildStep returns the step called name for cfg and deps.
func buildStep(name string, cfg Config, deps Deps, log *slog.Logger) (steps.Step, error) {
	switch name {
	case auth.Name:
		a := deps.Authenticator
		if a == nil {
			a, _ = deps.Locator.(Authenticator)
		}
		if a == nil {
			return nil, nil // no authenticator: the step is left out
		}
		return auth.New(a, cfg.Domains, log.With("step", auth.Name)), nil
	case static.Name:
		return static.New(staticRoutes(cfg.StaticRoutes)), nil
	case location.Name:
		if deps.Locator == nil {
			return nil, errors.New("router: location step needs deps.Locator")
		}
		return location.New(deps.Locator, log.With("step", location.Name)), nil
	}
	return nil, fmt.Errorf("router: unknown step %q", name)
}

func staticRoutes(rs []StaticRoute) []static.Route {
	routes := make([]static.Route, len(rs))
	for i, r := range rs {
		routes[i] = static.Route{Domain: r.Domain, Destination: r.Destination}
	}
	return routes
}

type namedStep struct {
	name string
	step steps.Step
}

var _ routerv1.RouterServiceServer = (*Router)(nil)

// Router decides where initial requests go. It implements
// routerv1.RouterServiceServer.
type Router struct {
	routerv1.UnimplementedRouterServiceServer

	domains   map[string]bool
	steps     []namedStep
	static    *static.Step // the static step, for the management API
	reload    func() ([]StaticRoute, error)
	log       *slog.Logger
	tracer    trace.Tracer
	decisions *prometheus.CounterVec
}

// New returns a Router for cfg (defaults applied, then validated). It does
// no I/O and starts no goroutines.
func New(cfg Config, deps Deps) (*Router, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("validating router config: %w", err)
	}
	log := deps.Logger
	if log == nil {
		log = slog.Default()
	}
	tp := deps.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	r := &Router{
		domains: make(map[string]bool, len(cfg.Domains)),
		reload:  deps.Reload,
		log:     log,
		tracer:  tp.Tracer("github.com/sipd/sipd/router"),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sipd_router_decisions_total",
			Help: "Routing decisions, by action (forward, reject) and reject code.",
		}, []string{"action", "code"}),
	}
	for _, d := range cfg.Domains {
		r.domains[strings.ToLower(d)] = true
	}
	for _, name := range chain {
		s, err := buildStep(name, cfg, deps, log)
		if err != nil {
			return nil, fmt.Errorf("building step %s: %w", name, err)
		}
		if s != nil {
			r.steps = append(r.steps, namedStep{name, s})
		}
		if st, ok := s.(*static.Step); ok {
			r.static = st
		}
	}
	if deps.Registerer != nil {
		if err := deps.Registerer.Register(r.decisions); err != nil {
			return nil, fmt.Errorf("registering router metrics: %w", err)
		}
	}
	return r, nil
}

// Run blocks until ctx ends and returns nil. The router has no background
// work yet; Run is where destination probing will live.
func (r *Router) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// Route decides what to do with an initial request: the first step of the
// chain that decides wins; none deciding is 404 Not Found.
func (r *Router) Route(ctx context.Context, in *routerv1.RouteRequest) (*routerv1.RouteResponse, error) {
	ctx, span := r.tracer.Start(ctx, "router.Route", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(
			attribute.String("sip.method", in.GetMethod()),
			attribute.String("sip.call_id", in.GetCallId()),
		))
	defer span.End()

	resp, stepName, err := r.route(ctx, in)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "routing failed")
		return nil, toStatus(err)
	}
	action, code := "forward", ""
	decision := "forward"
	if rej := resp.GetReject(); rej != nil {
		action, code = "reject", strconv.Itoa(int(rej.GetCode()))
		decision = "reject " + code
	}
	r.decisions.WithLabelValues(action, code).Inc()
	span.SetAttributes(attribute.String("decision", decision), attribute.String("router.step", stepName))
	r.log.Debug("request routed", "method", in.GetMethod(), "call_id", in.GetCallId(),
		"ruri", in.GetRequestUri(), "decision", decision, "step", stepName)
	return resp, nil
}

func (r *Router) route(ctx context.Context, in *routerv1.RouteRequest) (*routerv1.RouteResponse, string, error) {
	u, err := sipuri.Parse(in.GetRequestUri())
	if err != nil {
		return steps.Reject(400, "Bad Request", 0), "", nil
	}
	req := &steps.Request{In: in, User: u.User, Host: u.Host, Local: r.domains[u.Host], GRUU: u.GR}
	for _, s := range r.steps {
		resp, err := s.step.Route(ctx, req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, s.name, ctx.Err()
			}
			r.log.Error("routing step failed", "step", s.name, "call_id", in.GetCallId(), "err", err)
			return steps.Reject(500, "Server Internal Error", 0), s.name, nil
		}
		if resp != nil {
			return resp, s.name, nil
		}
	}
	return steps.Reject(404, "Not Found", 0), "", nil
}

// toStatus maps a Go error to the router's gRPC status; it is the one
// place that does.
func toStatus(err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(grpccodes.DeadlineExceeded, "router: deadline exceeded")
	case errors.Is(err, context.Canceled):
		return status.Error(grpccodes.Canceled, "router: canceled")
	case errors.Is(err, static.ErrRouteNotFound):
		return status.Error(grpccodes.NotFound, err.Error())
	case errors.Is(err, ErrInvalidState):
		return status.Error(grpccodes.InvalidArgument, err.Error())
	case errors.Is(err, ErrNoReload), errors.Is(err, ErrReload):
		// The operator asked for it: the config problems are the answer.
		return status.Error(grpccodes.FailedPrecondition, err.Error())
	default:
		return status.Error(grpccodes.Internal, "router: internal error")
	}
}
