package redisstore_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	registrarv1 "github.com/sipd/sipd/proto/gen/sipd/registrar/v1"
	"github.com/sipd/sipd/registrar"
	"github.com/sipd/sipd/registrar/internal/redistest"
	"github.com/sipd/sipd/registrar/redisstore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// clock is a settable test clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// recorder keeps the binding events published to it.
type recorder struct {
	mu     sync.Mutex
	events []*registrarv1.BindingEvent
}

func (p *recorder) Publish(subject string, data []byte) error {
	e := &registrarv1.BindingEvent{}
	if err := proto.Unmarshal(data, e); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, e)
	return nil
}

func (p *recorder) all() []*registrarv1.BindingEvent {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*registrarv1.BindingEvent(nil), p.events...)
}

// newRegistrar returns a registrar on srv, as a separate replica would
// have: its own store client.
func newRegistrar(t *testing.T, srv *redistest.Server, now func() time.Time, events registrar.Publisher) *registrar.Registrar {
	t.Helper()
	s := newStore(t, srv, "sipd:registrar:")
	r, err := registrar.New(registrar.Config{Origin: "replica"}, registrar.Deps{Store: s, Events: events, Now: now})
	if err != nil {
		t.Fatalf("registrar.New = %v", err)
	}
	return r
}

// serve serves r over gRPC on 127.0.0.1:0 and returns a client.
func serve(t *testing.T, r *registrar.Registrar) registrarv1.RegistrarServiceClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening: %v", err)
	}
	srv := grpc.NewServer()
	registrarv1.RegisterRegistrarServiceServer(srv, r)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dialing: %v", err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
		<-done
	})
	return registrarv1.NewRegistrarServiceClient(conn)
}

func register(aor, contact, callID string, cseq uint32, expires time.Duration) *registrarv1.RegisterRequest {
	return &registrarv1.RegisterRequest{
		Aor: aor, CallId: callID, Cseq: cseq, Trusted: true,
		Contacts: []*registrarv1.ContactUpdate{{Uri: contact, Expires: durationpb.New(expires)}},
		Flow:     &registrarv1.Flow{Edge: "edge1:5060", Transport: registrarv1.Transport_TRANSPORT_TCP, Source: "203.0.113.5:40000", ConnectionId: 42},
	}
}

// TestRegistrarRestart registers through one registrar, then reads every
// binding back through a new one on the same Redis, as after a restart.
func TestRegistrarRestart(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	first := newRegistrar(t, srv, nil, nil)
	aors := []string{"sip:alice@example.com", "sip:bob@example.com", "sip:carol@example.com"}
	for i, aor := range aors {
		resp, err := first.Register(ctx, register(aor, "sip:phone@198.51.100.1:5060", "call", uint32(i+1), time.Hour))
		if err != nil || resp.GetCode() != 200 {
			t.Fatalf("Register(%s) = %v, %v", aor, resp, err)
		}
	}

	second := newRegistrar(t, srv, nil, nil)
	for _, aor := range aors {
		look, err := second.Lookup(ctx, &registrarv1.LookupRequest{Aor: aor})
		if err != nil || look.GetStatus() != registrarv1.LookupStatus_LOOKUP_STATUS_FOUND || len(look.GetBindings()) != 1 {
			t.Fatalf("Lookup(%s) after restart = %v, %v", aor, look, err)
		}
		b := look.GetBindings()[0]
		if b.GetFlow().GetConnectionId() != 42 || b.GetFlow().GetEdge() != "edge1:5060" || b.GetUri() != "sip:phone@198.51.100.1:5060" {
			t.Errorf("binding of %s after restart = %v", aor, b)
		}
	}
	list, err := second.List(ctx, &registrarv1.ListRequest{PageSize: 2})
	if err != nil || len(list.GetRecords()) != 2 || list.GetNextPageToken() == "" {
		t.Fatalf("List page 1 = %v, %v", list, err)
	}
	list, err = second.List(ctx, &registrarv1.ListRequest{PageSize: 2, PageToken: list.GetNextPageToken()})
	if err != nil || len(list.GetRecords()) != 1 || list.GetNextPageToken() != "" {
		t.Fatalf("List page 2 = %v, %v", list, err)
	}
}

// TestRegistrarRedisDown kills Redis: Register answers Unavailable (the
// edge's 503) quickly, and once Redis is back every acknowledged binding
// is there and registrations work again.
func TestRegistrarRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	s, err := redisstore.New(registrar.RedisConfig{Address: srv.Addr(), Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatalf("redisstore.New = %v", err)
	}
	defer s.Close()
	r, err := registrar.New(registrar.Config{}, registrar.Deps{Store: s})
	if err != nil {
		t.Fatalf("registrar.New = %v", err)
	}
	client := serve(t, r)
	ctx := context.Background()
	if resp, err := client.Register(ctx, register("sip:alice@example.com", "sip:a@198.51.100.1", "c1", 1, time.Hour)); err != nil || resp.GetCode() != 200 {
		t.Fatalf("Register = %v, %v", resp, err)
	}

	srv.Kill()
	start := time.Now()
	_, err = client.Register(ctx, register("sip:bob@example.com", "sip:b@198.51.100.2", "c2", 1, time.Hour))
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("Register with Redis down = %v, want Unavailable", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Register with Redis down took %v, want < 1s", d)
	}
	if _, err := client.Lookup(ctx, &registrarv1.LookupRequest{Aor: "sip:alice@example.com"}); status.Code(err) != codes.Unavailable {
		t.Errorf("Lookup with Redis down = %v, want Unavailable", err)
	}

	srv.Restart()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := client.Register(ctx, register("sip:bob@example.com", "sip:b@198.51.100.2", "c2", 2, time.Hour))
		if err == nil && resp.GetCode() == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Register after Redis came back = %v, %v", resp, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	look, err := client.Lookup(ctx, &registrarv1.LookupRequest{Aor: "sip:alice@example.com"})
	if err != nil || len(look.GetBindings()) != 1 {
		t.Fatalf("Lookup of the acknowledged binding = %v, %v", look, err)
	}
}

// TestExpiryOnceAcrossReplicas runs two registrars on one Redis past a
// binding's expiry: the binding is removed and exactly one EXPIRED event
// is published, by whichever replica removed it.
func TestExpiryOnceAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	clk := &clock{now: time.Now()}
	pubA, pubB := &recorder{}, &recorder{}
	a := newRegistrar(t, srv, clk.Now, pubA)
	b := newRegistrar(t, srv, clk.Now, pubB)
	ctx := context.Background()
	for i, aor := range []string{"sip:u1@example.com", "sip:u2@example.com", "sip:u3@example.com"} {
		if resp, err := a.Register(ctx, register(aor, "sip:p@198.51.100.1", "c", uint32(i+1), time.Minute)); err != nil || resp.GetCode() != 200 {
			t.Fatalf("Register = %v, %v", resp, err)
		}
	}
	clk.Advance(2 * time.Minute)

	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, r := range []*registrar.Registrar{a, b} {
		wg.Go(func() {
			if err := r.Run(runCtx); err != nil {
				t.Errorf("Run = %v", err)
			}
		})
	}
	probe := newStore(t, srv, "sipd:registrar:")
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := probe.Stats(ctx)
		if err == nil && st.Contacts == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bindings not expired within 10s: %+v, %v", st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	wg.Wait()

	expired := map[string]int{}
	for _, e := range append(pubA.all(), pubB.all()...) {
		if e.GetType() == registrarv1.BindingEventType_BINDING_EVENT_TYPE_EXPIRED {
			expired[e.GetAor()]++
		}
	}
	if len(expired) != 3 {
		t.Fatalf("EXPIRED events for %v, want the 3 AORs", expired)
	}
	for aor, n := range expired {
		if n != 1 {
			t.Errorf("%d EXPIRED events for %s, want 1", n, aor)
		}
	}
}
