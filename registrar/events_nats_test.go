package registrar

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	registrarv1 "github.com/sipd/sipd/proto/gen/sipd/registrar/v1"
	"google.golang.org/protobuf/proto"
)

// startNATS runs an embedded NATS server on 127.0.0.1 (random port) and
// returns a connection to it.
func startNATS(t *testing.T) *nats.Conn {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatalf("configuring nats: %v", err)
	}
	srv.Start()
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	if !srv.ReadyForConnections(5 * time.Second) {
		t.Fatal("nats not ready within 5s")
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatalf("connecting to nats: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// TestEventsOnNATS registers, refreshes, unregisters and lets a binding
// expire, and reads the protobuf events from a wildcard subscription:
// every change once, in order, with increasing versions, on the AOR's
// subject.
func TestEventsOnNATS(t *testing.T) {
	nc := startNATS(t)
	sub, err := nc.SubscribeSync(EventWildcard)
	if err != nil {
		t.Fatalf("subscribing: %v", err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatalf("flushing: %v", err)
	}
	clk := &clock{now: t0}
	r, err := New(Config{Origin: "site-a/registrar-1"}, Deps{Events: nc, Now: clk.Now})
	if err != nil {
		t.Fatalf("New = %v", err)
	}
	r.expiry.tick = 10 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	}()

	const c1, c2 = "sip:alice@198.51.100.7", "sip:alice@198.51.100.8"
	steps := []*registrarv1.RegisterRequest{
		reg("a", 1, contactExp(c1, 60*time.Second), contact(c2)), // inserted c1, inserted c2
		reg("a", 2, contactExp(c1, 90*time.Second)),              // refreshed c1
		reg("a", 3, contactExp(c2, 0)),                           // removed c2
	}
	for _, req := range steps {
		if resp, err := r.Register(context.Background(), req); err != nil || resp.GetCode() != 200 {
			t.Fatalf("Register = %v, %v", resp, err)
		}
	}
	clk.Advance(2 * time.Minute) // c1 expires; Run removes it

	want := []struct {
		kind    registrarv1.BindingEventType
		contact string
		expires time.Duration
	}{
		{eventInserted, c1, 60 * time.Second},
		{eventInserted, c2, time.Hour},
		{eventRefreshed, c1, 90 * time.Second},
		{eventRemoved, c2, 0},
		{eventExpired, c1, 0},
	}
	var prev uint64
	for i, w := range want {
		msg, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("event %d (%s): %v", i, w.kind, err)
		}
		e := &registrarv1.BindingEvent{}
		if err := proto.Unmarshal(msg.Data, e); err != nil {
			t.Fatalf("event %d: decoding: %v", i, err)
		}
		if msg.Subject != SubjectFor("sip:alice@example.com") || !strings.HasPrefix(msg.Subject, EventSubject+".") {
			t.Errorf("event %d subject = %q", i, msg.Subject)
		}
		if e.GetType() != w.kind || e.GetBinding().GetUri() != w.contact || e.GetAor() != "sip:alice@example.com" {
			t.Errorf("event %d = %s %s %s, want %s %s", i, e.GetType(), e.GetAor(), e.GetBinding().GetUri(), w.kind, w.contact)
		}
		if got := e.GetBinding().GetExpires().AsDuration(); got != w.expires {
			t.Errorf("event %d expires = %v, want %v", i, got, w.expires)
		}
		if e.GetOrigin() != "site-a/registrar-1" || e.GetAt() == nil {
			t.Errorf("event %d origin %q at %v", i, e.GetOrigin(), e.GetAt())
		}
		if i > 0 && e.GetVersion() <= prev {
			t.Errorf("event %d version %d not above %d", i, e.GetVersion(), prev)
		}
		prev = e.GetVersion()
	}
	if msg, err := sub.NextMsg(50 * time.Millisecond); err == nil {
		t.Errorf("unexpected extra event on %s", msg.Subject)
	}
}

// TestEventsOrderedUnderConcurrency registers many contacts of one AOR
// from many goroutines: the events arrive in version order.
func TestEventsOrderedUnderConcurrency(t *testing.T) {
	nc := startNATS(t)
	sub, err := nc.SubscribeSync(EventWildcard)
	if err != nil {
		t.Fatalf("subscribing: %v", err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatalf("flushing: %v", err)
	}
	r, err := New(Config{MaxContacts: 1000}, Deps{Events: nc})
	if err != nil {
		t.Fatalf("New = %v", err)
	}
	const workers, each = 8, 20
	errs := make(chan error, workers*each)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for w := range workers {
			go func() {
				for i := range each {
					resp, err := r.Register(context.Background(), reg(fmt.Sprintf("w%d", w), uint32(i+1),
						contact(fmt.Sprintf("sip:alice@198.51.100.%d:%d", w+1, 5060+i))))
					if err == nil && resp.GetCode() != 200 {
						err = fmt.Errorf("answer %d %s", resp.GetCode(), resp.GetReason())
					}
					errs <- err
				}
			}()
		}
	}()
	<-done
	for range workers * each {
		if err := <-errs; err != nil {
			t.Fatalf("Register = %v", err)
		}
	}
	var prev uint64
	for i := range workers * each {
		msg, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		e := &registrarv1.BindingEvent{}
		if err := proto.Unmarshal(msg.Data, e); err != nil {
			t.Fatalf("decoding: %v", err)
		}
		if e.GetVersion() <= prev {
			t.Fatalf("event %d version %d after %d: out of order", i, e.GetVersion(), prev)
		}
		prev = e.GetVersion()
	}
}
