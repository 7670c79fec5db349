package location

import (
	"context"
	"log/slog"
	"slices"
	"testing"

	registrarv1 "github.com/sipd/sipd/proto/gen/sipd/registrar/v1"
	routerv1 "github.com/sipd/sipd/proto/gen/sipd/router/v1"
	"github.com/sipd/sipd/router/steps"
	"google.golang.org/grpc"
)

func TestTargetGroups(t *testing.T) {
	b := func(uri string, q int32) *registrarv1.Binding { return &registrarv1.Binding{Uri: uri, Q: q} }
	tests := []struct {
		name     string
		bindings []*registrarv1.Binding
		want     [][]string
	}{
		{"none", nil, nil},
		{"one", []*registrarv1.Binding{b("sip:a@h", 0)}, [][]string{{"sip:a@h"}}},
		{
			"unset q is 1.0 and order within a group is kept",
			[]*registrarv1.Binding{b("sip:a@h", 500), b("sip:b@h", 0), b("sip:c@h", 1000), b("sip:d@h", 500)},
			[][]string{{"sip:b@h", "sip:c@h"}, {"sip:a@h", "sip:d@h"}},
		},
		{
			"three groups",
			[]*registrarv1.Binding{b("sip:a@h", 100), b("sip:b@h", 900), b("sip:c@h", 500)},
			[][]string{{"sip:b@h"}, {"sip:c@h"}, {"sip:a@h"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			groups := targetGroups(tc.bindings)
			if len(groups) != len(tc.want) {
				t.Fatalf("%d groups, want %d", len(groups), len(tc.want))
			}
			for i, g := range groups {
				var got []string
				for _, tg := range g.GetTargets() {
					got = append(got, tg.GetRequestUri())
				}
				if len(got) != len(tc.want[i]) {
					t.Fatalf("group %d = %v, want %v", i, got, tc.want[i])
				}
				for j := range got {
					if got[j] != tc.want[i][j] {
						t.Fatalf("group %d = %v, want %v", i, got, tc.want[i])
					}
				}
			}
		})
	}
}

// locator answers lookups from a table keyed by AOR, or by GRUU when the
// request has one, and keeps the last request.
type locator struct {
	byAOR, byGRUU map[string]*registrarv1.LookupResponse
	last          *registrarv1.LookupRequest
}

func (l *locator) Lookup(_ context.Context, in *registrarv1.LookupRequest, _ ...grpc.CallOption) (*registrarv1.LookupResponse, error) {
	l.last = in
	if in.GetGruu() != "" {
		if r, ok := l.byGRUU[in.GetGruu()]; ok {
			return r, nil
		}
		return &registrarv1.LookupResponse{Status: registrarv1.LookupStatus_LOOKUP_STATUS_UNKNOWN}, nil
	}
	if r, ok := l.byAOR[in.GetAor()]; ok {
		return r, nil
	}
	return &registrarv1.LookupResponse{Status: registrarv1.LookupStatus_LOOKUP_STATUS_UNKNOWN}, nil
}

func TestRouteGRUU(t *testing.T) {
	const (
		pub  = "sip:alice@example.com;gr=urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"
		temp = "sip:tgruu.AbC-_1@example.com;gr"
		gone = "sip:alice@example.com;gr=urn:uuid:00000000-0000-1000-8000-000000000000"
	)
	found := func(uri string) *registrarv1.LookupResponse {
		return &registrarv1.LookupResponse{Status: registrarv1.LookupStatus_LOOKUP_STATUS_FOUND, Bindings: []*registrarv1.Binding{{Uri: uri}}}
	}
	loc := &locator{
		byAOR: map[string]*registrarv1.LookupResponse{
			"sip:alice@example.com": {Status: registrarv1.LookupStatus_LOOKUP_STATUS_FOUND, Bindings: []*registrarv1.Binding{{Uri: "sip:a@192.0.2.7"}, {Uri: "sip:a@192.0.2.8"}}},
		},
		byGRUU: map[string]*registrarv1.LookupResponse{
			pub:  found("sip:a@192.0.2.7"),
			temp: found("sip:a@192.0.2.8"),
			gone: {Status: registrarv1.LookupStatus_LOOKUP_STATUS_NO_CONTACTS},
		},
	}
	s := New(loc, slog.New(slog.DiscardHandler))
	tests := []struct {
		name     string
		ruri     string
		user     string
		gruu     bool
		wantGRUU string   // the gruu the lookup carried
		targets  []string // forwarded to, in order
		reject   int32
	}{
		{"aor forks to every contact", "sip:alice@example.com", "alice", false, "", []string{"sip:a@192.0.2.7", "sip:a@192.0.2.8"}, 0},
		{"public gruu reaches its instance", pub, "alice", true, pub, []string{"sip:a@192.0.2.7"}, 0},
		{"temporary gruu reaches its instance", temp, "tgruu.AbC-_1", true, temp, []string{"sip:a@192.0.2.8"}, 0},
		{"gruu of an instance not registered is 480", gone, "alice", true, gone, nil, 480},
		{"gruu that does not resolve is 404", "sip:tgruu.zzz@example.com;gr", "tgruu.zzz", true, "sip:tgruu.zzz@example.com;gr", nil, 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := s.Route(context.Background(), &steps.Request{
				In: &routerv1.RouteRequest{RequestUri: tc.ruri}, User: tc.user, Host: "example.com", Local: true, GRUU: tc.gruu,
			})
			if err != nil {
				t.Fatalf("Route = %v", err)
			}
			if loc.last.GetGruu() != tc.wantGRUU {
				t.Errorf("lookup gruu = %q, want %q", loc.last.GetGruu(), tc.wantGRUU)
			}
			if tc.reject != 0 {
				if resp.GetReject().GetCode() != tc.reject {
					t.Fatalf("Route = %v, want reject %d", resp, tc.reject)
				}
				return
			}
			var got []string
			for _, g := range resp.GetForward().GetGroups() {
				for _, tg := range g.GetTargets() {
					got = append(got, tg.GetRequestUri())
				}
			}
			if !slices.Equal(got, tc.targets) {
				t.Errorf("targets = %v, want %v", got, tc.targets)
			}
		})
	}
}
