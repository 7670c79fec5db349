package router_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	registrarv1 "github.com/sipd/sipd/proto/gen/sipd/registrar/v1"
	routerv1 "github.com/sipd/sipd/proto/gen/sipd/router/v1"
	"github.com/sipd/sipd/router"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// fakeLocator answers lookups from a table.
type fakeLocator struct {
	mu      sync.Mutex
	answers map[string]*registrarv1.LookupResponse
	err     error
	asked   []string
}

func (f *fakeLocator) Lookup(_ context.Context, in *registrarv1.LookupRequest, _ ...grpc.CallOption) (*registrarv1.LookupResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, in.GetAor())
	if f.err != nil {
		return nil, f.err
	}
	if r, ok := f.answers[in.GetAor()]; ok {
		return r, nil
	}
	return &registrarv1.LookupResponse{Status: registrarv1.LookupStatus_LOOKUP_STATUS_UNKNOWN}, nil
}

var _ router.Locator = (*fakeLocator)(nil)
var _ router.Locator = registrarv1.RegistrarServiceClient(nil)

func binding(uri string, q int32, received string) *registrarv1.Binding {
	return &registrarv1.Binding{
		Uri:      uri,
		Q:        q,
		Received: received,
		Path:     path(received),
		Flow:     &registrarv1.Flow{Edge: "edge1.example.com:5060", ConnectionId: 9},
		Expires:  durationpb.New(time.Hour),
	}
}

// path is the Path of a test binding: none for one behind NAT (received
// set), one edge otherwise.
func path(received string) []string {
	if received != "" {
		return nil
	}
	return []string{"<sip:edge1.example.com;lr>"}
}

func locator() *fakeLocator {
	return &fakeLocator{answers: map[string]*registrarv1.LookupResponse{
		"sip:alice@example.com": {
			Status: registrarv1.LookupStatus_LOOKUP_STATUS_FOUND,
			Bindings: []*registrarv1.Binding{
				binding("sip:alice@198.51.100.1", 1000, ""),
				binding("sip:alice@10.0.0.2:5060", 0, "sip:203.0.113.2:4000;transport=udp"),
				binding("sip:alice@198.51.100.3", 500, ""),
			},
		},
		"sip:bob@example.com": {Status: registrarv1.LookupStatus_LOOKUP_STATUS_NO_CONTACTS},
	}}
}

// target is the expected target of a binding(): a binding behind NAT has
// no Path and goes to its received address; the others go by their Path.
func target(uri, dest string, q int32) *routerv1.Target {
	t := &routerv1.Target{RequestUri: uri, Destination: dest, Q: q, Edge: "edge1.example.com:5060", ConnectionId: 9}
	if dest == "" {
		t.Route = []string{"<sip:edge1.example.com;lr>"}
	}
	return t
}

func forward(groups ...[]*routerv1.Target) *routerv1.RouteResponse {
	f := &routerv1.Forward{RecordRoute: true}
	for _, g := range groups {
		f.Groups = append(f.Groups, &routerv1.TargetGroup{Targets: g})
	}
	return &routerv1.RouteResponse{Action: &routerv1.RouteResponse_Forward{Forward: f}}
}

func reject(code int32, reason string, retry time.Duration) *routerv1.RouteResponse {
	r := &routerv1.Reject{Code: code, Reason: reason}
	if retry > 0 {
		r.RetryAfter = durationpb.New(retry)
	}
	return &routerv1.RouteResponse{Action: &routerv1.RouteResponse_Reject{Reject: r}}
}

func staticForward(ruri, dest string) *routerv1.RouteResponse {
	return &routerv1.RouteResponse{Action: &routerv1.RouteResponse_Forward{Forward: &routerv1.Forward{
		RecordRoute: true,
		Groups:      []*routerv1.TargetGroup{{Targets: []*routerv1.Target{{RequestUri: ruri, Destination: dest}}}},
	}}}
}

func TestRoute(t *testing.T) {
	cfg := router.Config{
		Domains: []string{"example.com", "192.0.2.1"},
		StaticRoutes: []router.StaticRoute{
			{Domain: "carrier.example.net", Destination: "sip:192.0.2.10:5060;transport=tcp"},
		},
	}
	withDefault := cfg
	withDefault.StaticRoutes = append(withDefault.StaticRoutes[:1:1], router.StaticRoute{Domain: "*", Destination: "sip:192.0.2.99"})

	tests := []struct {
		name    string
		cfg     router.Config
		ruri    string
		locErr  error
		want    *routerv1.RouteResponse
		wantAsk []string
	}{
		{
			name: "found with two q groups",
			ruri: "sip:alice@Example.com:5060;transport=udp",
			want: forward(
				[]*routerv1.Target{
					target("sip:alice@198.51.100.1", "", 1000),
					target("sip:alice@10.0.0.2:5060", "sip:203.0.113.2:4000;transport=udp", 1000),
				},
				[]*routerv1.Target{target("sip:alice@198.51.100.3", "", 500)},
			),
			wantAsk: []string{"sip:alice@example.com"},
		},
		{
			name:    "known user without contacts is 480",
			ruri:    "sip:bob@example.com",
			want:    reject(480, "Temporarily Unavailable", 0),
			wantAsk: []string{"sip:bob@example.com"},
		},
		{
			name:    "unknown user is 404",
			ruri:    "sip:carol@example.com",
			want:    reject(404, "Not Found", 0),
			wantAsk: []string{"sip:carol@example.com"},
		},
		{
			name:    "registrar error is 503 with retry after",
			ruri:    "sip:alice@example.com",
			locErr:  errors.New("connection refused"),
			want:    reject(503, "Service Unavailable", 5*time.Second),
			wantAsk: []string{"sip:alice@example.com"},
		},
		{
			name: "local domain without user is 404",
			ruri: "sip:example.com",
			want: reject(404, "Not Found", 0),
		},
		{
			name: "IP literal local domain",
			ruri: "sip:bob@192.0.2.1:5060",
			want: reject(404, "Not Found", 0),
			// The registrar keys AORs by host without port.
			wantAsk: []string{"sip:bob@192.0.2.1"},
		},
		{
			name: "static route keeps the request uri",
			ruri: "sip:+15551234@CARRIER.example.net",
			want: staticForward("sip:+15551234@CARRIER.example.net", "sip:192.0.2.10:5060;transport=tcp"),
		},
		{
			name: "non-local domain without route is 404",
			ruri: "sip:dave@elsewhere.example.org",
			want: reject(404, "Not Found", 0),
		},
		{
			name: "wildcard route takes non-local domains",
			cfg:  withDefault,
			ruri: "sip:dave@elsewhere.example.org",
			want: staticForward("sip:dave@elsewhere.example.org", "sip:192.0.2.99"),
		},
		{
			name:    "wildcard route leaves local domains to location",
			cfg:     withDefault,
			ruri:    "sip:bob@example.com",
			want:    reject(480, "Temporarily Unavailable", 0),
			wantAsk: []string{"sip:bob@example.com"},
		},
		{
			name: "unparseable request uri is 400",
			ruri: "tel:+15551234",
			want: reject(400, "Bad Request", 0),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.cfg
			if c.Domains == nil {
				c = cfg
			}
			loc := locator()
			loc.err = tc.locErr
			r, err := router.New(c, router.Deps{Locator: loc})
			if err != nil {
				t.Fatalf("New = %v", err)
			}
			got, err := r.Route(context.Background(), &routerv1.RouteRequest{Method: "INVITE", RequestUri: tc.ruri, CallId: "c1"})
			if err != nil {
				t.Fatalf("Route = %v", err)
			}
			if !proto.Equal(got, tc.want) {
				t.Errorf("Route =\n%s\nwant\n%s", prototext.Format(got), prototext.Format(tc.want))
			}
			if strings.Join(loc.asked, ",") != strings.Join(tc.wantAsk, ",") {
				t.Errorf("looked up %v, want %v", loc.asked, tc.wantAsk)
			}
		})
	}
}

func TestRouteTelemetry(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	reg := prometheus.NewRegistry()
	r, err := router.New(router.Config{Domains: []string{"example.com"}}, router.Deps{
		Locator: locator(), Registerer: reg, TracerProvider: tp,
	})
	if err != nil {
		t.Fatalf("New = %v", err)
	}
	ctx := context.Background()
	for _, ruri := range []string{"sip:alice@example.com", "sip:carol@example.com", "sip:x@foreign.example"} {
		if _, err := r.Route(ctx, &routerv1.RouteRequest{Method: "INVITE", RequestUri: ruri, CallId: "call-" + ruri}); err != nil {
			t.Fatalf("Route(%s) = %v", ruri, err)
		}
	}
	spans := rec.Ended()
	if len(spans) != 3 {
		t.Fatalf("%d spans, want 3", len(spans))
	}
	attrs := map[string]string{}
	for _, kv := range spans[0].Attributes() {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	for k, want := range map[string]string{"sip.method": "INVITE", "sip.call_id": "call-sip:alice@example.com", "decision": "forward"} {
		if attrs[k] != want {
			t.Errorf("span attribute %s = %q, want %q", k, attrs[k], want)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather = %v", err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "sipd_router_decisions_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			key := ""
			for _, l := range m.GetLabel() {
				key += l.GetName() + "=" + l.GetValue() + " "
			}
			got[strings.TrimSpace(key)] = m.GetCounter().GetValue()
		}
	}
	want := map[string]float64{"action=forward code=": 1, "action=reject code=404": 2}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("decisions{%s} = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  router.Config
		want []string
	}{
		{name: "defaults", cfg: router.Config{}},
		{
			name: "every problem at once",
			cfg: router.Config{
				Domains: []string{"example.com", "EXAMPLE.com"},
				StaticRoutes: []router.StaticRoute{
					{Domain: "a.example", Destination: "sip:192.0.2.1"},
					{Domain: "A.example", Destination: "http://x"},
					{Domain: "", Destination: "sip:"},
				},
			},
			want: []string{
				`domains[1] ("EXAMPLE.com") is listed twice`,
				`static_routes[1].domain ("A.example") has a route already`,
				`static_routes[1].destination ("http://x") is not a sip or sips URI with a host`,
				`static_routes[2].domain is empty`,
				`static_routes[2].destination ("sip:")`,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.SetDefaults()
			err := cfg.Validate()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Validate = %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate = nil, want errors")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate = %q, missing %q", err, w)
				}
			}
		})
	}
}

func TestGRPC(t *testing.T) {
	r, err := router.New(router.Config{Domains: []string{"example.com"}}, router.Deps{Locator: locator()})
	if err != nil {
		t.Fatalf("New = %v", err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening: %v", err)
	}
	srv := grpc.NewServer()
	routerv1.RegisterRouterServiceServer(srv, r)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	defer func() {
		srv.Stop()
		<-done
	}()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dialing: %v", err)
	}
	defer conn.Close()
	client := routerv1.NewRouterServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	resp, err := client.Route(ctx, &routerv1.RouteRequest{Method: "INVITE", RequestUri: "sip:alice@example.com", CallId: "c"})
	if err != nil {
		t.Fatalf("Route = %v", err)
	}
	if n := len(resp.GetForward().GetGroups()); n != 2 {
		t.Fatalf("Route = %v, want a forward with 2 groups", resp)
	}
	resp, err = client.Route(ctx, &routerv1.RouteRequest{Method: "INVITE", RequestUri: "sip:bob@example.com"})
	if err != nil || resp.GetReject().GetCode() != 480 {
		t.Fatalf("Route(bob) = %v, %v; want reject 480", resp, err)
	}
}

func TestRunStops(t *testing.T) {
	r, err := router.New(router.Config{}, router.Deps{Locator: locator()})
	if err != nil {
		t.Fatalf("New = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestNewNeedsLocator(t *testing.T) {
	if _, err := router.New(router.Config{}, router.Deps{}); err == nil {
		t.Fatal("New without Locator = nil error, want one")
	}
}
