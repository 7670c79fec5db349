package router

import (
	"context"
	"fmt"

	routerv1 "github.com/sipd/sipd/proto/gen/sipd/router/v1"
	"github.com/sipd/sipd/router/steps/static"
)

// ListRoutes lists the static routes in configuration order with their
// admin states and counters.
func (r *Router) ListRoutes(_ context.Context, _ *routerv1.ListRoutesRequest) (*routerv1.ListRoutesResponse, error) {
	resp := &routerv1.ListRoutesResponse{}
	for _, s := range r.static.Routes() {
		resp.Routes = append(resp.Routes, toProtoRoute(s))
	}
	return resp, nil
}

// SetRouteState enables or disables the static route of one domain. A
// disabled route is skipped as if it did not exist.
func (r *Router) SetRouteState(_ context.Context, in *routerv1.SetRouteStateRequest) (*routerv1.SetRouteStateResponse, error) {
	var disabled bool
	switch in.GetState() {
	case routerv1.RouteState_ROUTE_STATE_ACTIVE:
	case routerv1.RouteState_ROUTE_STATE_DISABLED:
		disabled = true
	default:
		return nil, toStatus(ErrInvalidState)
	}
	s, err := r.static.SetDisabled(in.GetDomain(), disabled)
	if err != nil {
		return nil, toStatus(fmt.Errorf("setting state of route %q: %w", in.GetDomain(), err))
	}
	r.log.Info("route state set", "domain", s.Domain, "state", in.GetState().String())
	return &routerv1.SetRouteStateResponse{Route: toProtoRoute(s)}, nil
}

// Reload re-reads the static routes through Deps.Reload and swaps them in;
// routes whose domain is still routed keep their admin state. On any error
// the old table stays.
func (r *Router) Reload(_ context.Context, _ *routerv1.ReloadRequest) (*routerv1.ReloadResponse, error) {
	if r.reload == nil {
		return nil, toStatus(ErrNoReload)
	}
	n, err := r.reloadRoutes()
	if err != nil {
		r.log.Warn("reload failed", "err", err)
		return nil, toStatus(err)
	}
	r.log.Info("static routes reloaded", "routes", n)
	return &routerv1.ReloadResponse{Routes: int32(n)}, nil
}

func (r *Router) reloadRoutes() (int, error) {
	routes, err := r.reload()
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrReload, err)
	}
	// Validate again: Deps.Reload should have, but a bad table must never
	// replace a good one.
	if err := (Config{Domains: []string{"localhost"}, StaticRoutes: routes}).Validate(); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrReload, err)
	}
	return r.static.Replace(staticRoutes(routes)), nil
}

func toProtoRoute(s static.Status) *routerv1.StaticRoute {
	st := routerv1.RouteState_ROUTE_STATE_ACTIVE
	if s.Disabled {
		st = routerv1.RouteState_ROUTE_STATE_DISABLED
	}
	return &routerv1.StaticRoute{Domain: s.Domain, Destination: s.Destination, State: st, Attempts: s.Attempts}
}
