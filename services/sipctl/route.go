package sipctl

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	routerv1 "github.com/sipd/sipd/proto/gen/sipd/router/v1"
)

// errNoRouterAPI says what `sipctl routes` will show once the router has
// its management API.
var errNoRouterAPI = errors.New("the router has no management API yet: static routes are read from router.static_routes in its configuration file; " +
	"listing routing data and destination states, setting a state and reload come with the router's management API. " +
	"Use `sipctl route test` to see what the router decides")

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

// runRoutes explains where routing data lives until the router has a
// management API.
func runRoutes(_ context.Context, c *cli, args []string) error {
	fs := c.flags("routes")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	return errNoRouterAPI
}
