package sipctl

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	routerv1 "github.com/sipd/sipd/proto/gen/sipd/router/v1"
)

// runRouteTest asks the router for the decision it would make for an
// initial request, as the edge does; nothing is sent anywhere.
func runRouteTest(ctx context.Context, c *cli, args []string) error {
	fs := c.flags("route test")
	method := fs.String("method", "INVITE", "SIP method of the request")
	from := fs.String("from", "sip:sipctl@localhost", "From URI")
	to := fs.String("to", "", "To URI; empty uses the Request-URI")
	callID := fs.String("call-id", "sipctl-route-test", "Call-ID")
	source := fs.String("source", "127.0.0.1:5060", "source address the request came from, ip:port")
	trusted := fs.Bool("trusted", true, "the source is trusted (no authentication asked)")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: route test takes one REQUEST-URI", errUsage)
	}
	ruri := fs.Arg(0)
	if !strings.Contains(ruri, ":") {
		ruri = "sip:" + ruri
	}
	if *to == "" {
		*to = ruri
	}
	rt, err := c.router()
	if err != nil {
		return err
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	resp, err := rt.Route(ctx, &routerv1.RouteRequest{
		Method:     strings.ToUpper(*method),
		RequestUri: ruri,
		FromUri:    *from,
		FromTag:    "sipctl",
		ToUri:      *to,
		CallId:     *callID,
		Source:     *source,
		Transport:  routerv1.Transport_TRANSPORT_UDP,
		Edge:       "sipctl",
		Trusted:    *trusted,
	})
	if err != nil {
		return err
	}
	if c.opts.Output == "json" {
		return writeProto(c.stdout, resp)
	}
	switch a := resp.GetAction().(type) {
	case *routerv1.RouteResponse_Reject:
		fmt.Fprintf(c.stdout, "reject %d %s\n", a.Reject.GetCode(), a.Reject.GetReason())
		for _, h := range a.Reject.GetHeaders() {
			fmt.Fprintf(c.stdout, "  %s: %s\n", h.GetName(), h.GetValue())
		}
		return nil
	case *routerv1.RouteResponse_Forward:
		fmt.Fprintf(c.stdout, "forward (record-route %t)\n", a.Forward.GetRecordRoute())
		t := newTable(c.stdout, "GROUP", "REQUEST-URI", "DESTINATION", "ROUTE", "EDGE", "Q")
		for i, g := range a.Forward.GetGroups() {
			for _, tg := range g.GetTargets() {
				t.row(strconv.Itoa(i+1), tg.GetRequestUri(), tg.GetDestination(), strings.Join(tg.GetRoute(), ","), tg.GetEdge(), qValue(tg.GetQ()))
			}
		}
		return t.flush()
	default:
		_, err := fmt.Fprintln(c.stdout, "no decision")
		return err
	}
}

// runRoutes lists the router's static routes with their admin states and
// counters (OpenSIPS's dr_gw_status).
func runRoutes(ctx context.Context, c *cli, args []string) error {
	fs := c.flags("routes")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: routes takes no arguments", errUsage)
	}
	rt, err := c.router()
	if err != nil {
		return err
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	resp, err := rt.ListRoutes(ctx, &routerv1.ListRoutesRequest{})
	if err != nil {
		return err
	}
	if c.opts.Output == "json" {
		return writeProto(c.stdout, resp)
	}
	t := newTable(c.stdout, "DOMAIN", "DESTINATION", "STATE", "ATTEMPTS")
	for _, r := range resp.GetRoutes() {
		t.row(r.GetDomain(), r.GetDestination(), stateName(r.GetState()), strconv.FormatUint(r.GetAttempts(), 10))
	}
	if err := t.flush(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.stdout, "%d route(s)\n", len(resp.GetRoutes()))
	return err
}

// routeStates are the states `sipctl route-state` accepts.
var routeStates = map[string]routerv1.RouteState{
	"active":   routerv1.RouteState_ROUTE_STATE_ACTIVE,
	"disabled": routerv1.RouteState_ROUTE_STATE_DISABLED,
}

// stateName is the lower-case name of s, as route-state takes it.
func stateName(s routerv1.RouteState) string {
	for name, st := range routeStates {
		if st == s {
			return name
		}
	}
	return "unspecified"
}

// runRouteState enables or disables the static route of one domain
// (OpenSIPS's ds_set_state).
func runRouteState(ctx context.Context, c *cli, args []string) error {
	fs := c.flags("route-state")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return fmt.Errorf("%w: route-state takes DOMAIN and active or disabled", errUsage)
	}
	state, ok := routeStates[strings.ToLower(fs.Arg(1))]
	if !ok {
		return fmt.Errorf("%w: state %q must be active or disabled", errUsage, fs.Arg(1))
	}
	rt, err := c.router()
	if err != nil {
		return err
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	resp, err := rt.SetRouteState(ctx, &routerv1.SetRouteStateRequest{Domain: fs.Arg(0), State: state})
	if err != nil {
		return err
	}
	if c.opts.Output == "json" {
		return writeProto(c.stdout, resp)
	}
	r := resp.GetRoute()
	_, err = fmt.Fprintf(c.stdout, "route %s -> %s is %s\n", r.GetDomain(), r.GetDestination(), stateName(r.GetState()))
	return err
}

// runReload makes the router re-read its static routes from its
// configuration file (OpenSIPS's dr_reload).
func runReload(ctx context.Context, c *cli, args []string) error {
	fs := c.flags("reload")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: reload takes no arguments", errUsage)
	}
	rt, err := c.router()
	if err != nil {
		return err
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	resp, err := rt.Reload(ctx, &routerv1.ReloadRequest{})
	if err != nil {
		return err
	}
	if c.opts.Output == "json" {
		return writeProto(c.stdout, resp)
	}
	_, err = fmt.Fprintf(c.stdout, "reloaded %d route(s)\n", resp.GetRoutes())
	return err
}
