package router_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"

	routerv1 "github.com/sipd/sipd/proto/gen/sipd/router/v1"
	"github.com/sipd/sipd/router"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const (
	active   = routerv1.RouteState_ROUTE_STATE_ACTIVE
	disabled = routerv1.RouteState_ROUTE_STATE_DISABLED
)

// reloader hands out a route table (or an error) to Deps.Reload.
type reloader struct {
	mu     sync.Mutex
	routes []router.StaticRoute
	err    error
}

func (f *reloader) load() ([]router.StaticRoute, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.routes, f.err
}

func (f *reloader) set(routes []router.StaticRoute, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.routes, f.err = routes, err
}

func newAdminRouter(t *testing.T, rl *reloader) *router.Router {
	t.Helper()
	deps := router.Deps{Locator: locator()}
	if rl != nil {
		deps.Reload = rl.load
	}
	rt, err := router.New(router.Config{
		Domains: []string{"example.com"},
		StaticRoutes: []router.StaticRoute{
			{Domain: "carrier.example.net", Destination: "sip:192.0.2.10"},
			{Domain: "pbx.example.org", Destination: "sip:192.0.2.30"},
		},
	}, deps)
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

// destOf routes an INVITE to ruri and returns the first target's
// destination, or "reject N".
func destOf(t *testing.T, rt *router.Router, ruri string) string {
	t.Helper()
	resp, err := rt.Route(context.Background(), &routerv1.RouteRequest{Method: "INVITE", RequestUri: ruri, Trusted: true})
	if err != nil {
		t.Fatalf("Route(%s) = %v", ruri, err)
	}
	if rej := resp.GetReject(); rej != nil {
		return "reject " + strconv.Itoa(int(rej.GetCode()))
	}
	return resp.GetForward().GetGroups()[0].GetTargets()[0].GetDestination()
}

// states returns domain → state and domain → attempts of ListRoutes.
func states(t *testing.T, rt *router.Router) (map[string]routerv1.RouteState, map[string]uint64) {
	t.Helper()
	resp, err := rt.ListRoutes(context.Background(), &routerv1.ListRoutesRequest{})
	if err != nil {
		t.Fatalf("ListRoutes = %v", err)
	}
	st, att := map[string]routerv1.RouteState{}, map[string]uint64{}
	for _, r := range resp.GetRoutes() {
		st[r.GetDomain()], att[r.GetDomain()] = r.GetState(), r.GetAttempts()
	}
	return st, att
}

func setState(rt *router.Router, domain string, s routerv1.RouteState) error {
	_, err := rt.SetRouteState(context.Background(), &routerv1.SetRouteStateRequest{Domain: domain, State: s})
	return err
}

func TestListAndSetRouteState(t *testing.T) {
	rt := newAdminRouter(t, nil)
	const ruri = "sip:+15551234@carrier.example.net"

	if got := destOf(t, rt, ruri); got != "sip:192.0.2.10" {
		t.Fatalf("active route: %s", got)
	}
	st, att := states(t, rt)
	if st["carrier.example.net"] != active || st["pbx.example.org"] != active || att["carrier.example.net"] != 1 || att["pbx.example.org"] != 0 {
		t.Fatalf("ListRoutes: states %v, attempts %v", st, att)
	}

	if err := setState(rt, "Carrier.Example.Net", disabled); err != nil {
		t.Fatalf("disable: %v", err)
	}
	if got := destOf(t, rt, ruri); got != "reject 404" {
		t.Errorf("disabled route: %s, want reject 404", got)
	}
	if st, _ := states(t, rt); st["carrier.example.net"] != disabled {
		t.Errorf("state after disable = %v", st)
	}

	if err := setState(rt, "carrier.example.net", active); err != nil {
		t.Fatalf("enable: %v", err)
	}
	if got := destOf(t, rt, ruri); got != "sip:192.0.2.10" {
		t.Errorf("re-enabled route: %s", got)
	}
	if _, att := states(t, rt); att["carrier.example.net"] != 2 {
		t.Errorf("attempts = %d, want 2", att["carrier.example.net"])
	}
}

func TestSetRouteStateErrors(t *testing.T) {
	rt := newAdminRouter(t, nil)
	tests := []struct {
		name   string
		domain string
		state  routerv1.RouteState
		code   codes.Code
	}{
		{"unknown domain", "nowhere.example", disabled, codes.NotFound},
		{"unspecified state", "carrier.example.net", routerv1.RouteState_ROUTE_STATE_UNSPECIFIED, codes.InvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := setState(rt, tc.domain, tc.state); status.Code(err) != tc.code {
				t.Errorf("SetRouteState = %v, want %s", err, tc.code)
			}
		})
	}
}

func TestDisabledRouteFallsToWildcard(t *testing.T) {
	rt, err := router.New(router.Config{StaticRoutes: []router.StaticRoute{
		{Domain: "carrier.example.net", Destination: "sip:192.0.2.10"},
		{Domain: "*", Destination: "sip:192.0.2.99"},
	}}, router.Deps{Locator: locator()})
	if err != nil {
		t.Fatal(err)
	}
	if err := setState(rt, "carrier.example.net", disabled); err != nil {
		t.Fatal(err)
	}
	if got := destOf(t, rt, "sip:x@carrier.example.net"); got != "sip:192.0.2.99" {
		t.Errorf("disabled route with a wildcard: %s", got)
	}
	if err := setState(rt, "*", disabled); err != nil {
		t.Fatal(err)
	}
	if got := destOf(t, rt, "sip:x@carrier.example.net"); got != "reject 404" {
		t.Errorf("all disabled: %s", got)
	}
}

func TestReload(t *testing.T) {
	rl := &reloader{}
	rt := newAdminRouter(t, rl)
	if err := setState(rt, "carrier.example.net", disabled); err != nil {
		t.Fatal(err)
	}

	// carrier.example.net stays (new destination, state kept), pbx goes,
	// new.example arrives active.
	rl.set([]router.StaticRoute{
		{Domain: "carrier.example.net", Destination: "sip:192.0.2.11"},
		{Domain: "new.example", Destination: "sip:192.0.2.40"},
	}, nil)
	resp, err := rt.Reload(context.Background(), &routerv1.ReloadRequest{})
	if err != nil || resp.GetRoutes() != 2 {
		t.Fatalf("Reload = %v, %v; want 2 routes", resp, err)
	}
	st, _ := states(t, rt)
	if len(st) != 2 || st["carrier.example.net"] != disabled || st["new.example"] != active {
		t.Fatalf("after reload: %v", st)
	}
	if got := destOf(t, rt, "sip:x@carrier.example.net"); got != "reject 404" {
		t.Errorf("reloaded disabled route: %s", got)
	}
	if got := destOf(t, rt, "sip:x@new.example"); got != "sip:192.0.2.40" {
		t.Errorf("new route: %s", got)
	}

	tests := []struct {
		name   string
		routes []router.StaticRoute
		err    error
	}{
		{"file unreadable", nil, errors.New("loading config: no such file")},
		{"invalid routes", []router.StaticRoute{{Domain: "a.example", Destination: "not a uri"}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rl.set(tc.routes, tc.err)
			_, err := rt.Reload(context.Background(), &routerv1.ReloadRequest{})
			if status.Code(err) != codes.FailedPrecondition {
				t.Fatalf("Reload = %v, want FailedPrecondition", err)
			}
			if st, _ := states(t, rt); len(st) != 2 || st["new.example"] != active {
				t.Errorf("old table not kept: %v", st)
			}
			if got := destOf(t, rt, "sip:x@new.example"); got != "sip:192.0.2.40" {
				t.Errorf("route after failed reload: %s", got)
			}
		})
	}
}

func TestReloadUnavailable(t *testing.T) {
	rt := newAdminRouter(t, nil)
	if _, err := rt.Reload(context.Background(), &routerv1.ReloadRequest{}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("Reload without Deps.Reload = %v, want FailedPrecondition", err)
	}
}

// TestConcurrentAdmin runs routing, state changes and reloads together,
// for the race detector.
func TestConcurrentAdmin(t *testing.T) {
	rl := &reloader{routes: []router.StaticRoute{{Domain: "carrier.example.net", Destination: "sip:192.0.2.10"}}}
	rt := newAdminRouter(t, rl)
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				switch i {
				case 0:
					_, _ = rt.Reload(context.Background(), &routerv1.ReloadRequest{})
				case 1:
					_ = setState(rt, "carrier.example.net", routerv1.RouteState(1+j%2))
				case 2:
					_, _ = rt.ListRoutes(context.Background(), &routerv1.ListRoutesRequest{})
				default:
					_, _ = rt.Route(context.Background(), &routerv1.RouteRequest{Method: "INVITE", RequestUri: "sip:x@carrier.example.net"})
				}
			}
		}(i)
	}
	wg.Wait()
}
