package static

import (
	"context"
	"testing"

	routerv1 "github.com/sipd/sipd/proto/gen/sipd/router/v1"
	"github.com/sipd/sipd/router/steps"
)

func TestRoute(t *testing.T) {
	s := New([]Route{
		{Domain: "Carrier.example.net", Destination: "sip:192.0.2.10"},
		{Domain: "*", Destination: "sip:192.0.2.99"},
		{Domain: "carrier.example.net", Destination: "sip:ignored"},
	})
	tests := []struct {
		name     string
		host     string
		local    bool
		wantDest string // "" means pass
	}{
		{"exact domain", "carrier.example.net", false, "sip:192.0.2.10"},
		{"other domain takes the wildcard", "foreign.example", false, "sip:192.0.2.99"},
		{"local domain passes", "example.com", true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := &routerv1.RouteRequest{RequestUri: "sip:x@" + tc.host}
			resp, err := s.Route(context.Background(), &steps.Request{In: in, User: "x", Host: tc.host, Local: tc.local})
			if err != nil {
				t.Fatalf("Route = %v", err)
			}
			if tc.wantDest == "" {
				if resp != nil {
					t.Fatalf("Route = %v, want pass", resp)
				}
				return
			}
			tg := resp.GetForward().GetGroups()
			if len(tg) != 1 || len(tg[0].GetTargets()) != 1 {
				t.Fatalf("Route = %v, want one target", resp)
			}
			if got := tg[0].GetTargets()[0]; got.GetDestination() != tc.wantDest || got.GetRequestUri() != in.GetRequestUri() {
				t.Errorf("target = %v, want destination %s and the request uri kept", got, tc.wantDest)
			}
		})
	}
	if resp, _ := New(nil).Route(context.Background(), &steps.Request{In: &routerv1.RouteRequest{}, Host: "foreign.example"}); resp != nil {
		t.Errorf("no routes: Route = %v, want pass", resp)
	}
}
