package registrar

import (
	"context"
	"fmt"
	"sync"
	"testing"

	registrarv1 "github.com/sipd/sipd/proto/gen/sipd/registrar/v1"
)

// TestConcurrentRegisters registers distinct contacts for one AOR from many
// goroutines: none may be lost and the gauges must match.
func TestConcurrentRegisters(t *testing.T) {
	f := newFixture(t, Config{MaxContacts: 100})
	const workers = 16
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range 4 {
				req := reg(fmt.Sprintf("w%d", w), uint32(i+1), contact(fmt.Sprintf("sip:alice@198.51.100.%d:%d", w+1, 5060+i)))
				if resp, err := f.r.Register(context.Background(), req); err != nil || resp.GetCode() != 200 {
					t.Errorf("Register = %v, %v", resp, err)
				}
				f.r.Lookup(context.Background(), &registrarv1.LookupRequest{Aor: "sip:alice@example.com"})
			}
		})
	}
	wg.Wait()
	look, err := f.r.Lookup(context.Background(), &registrarv1.LookupRequest{Aor: "sip:alice@example.com"})
	if err != nil || len(look.GetBindings()) != workers*4 {
		t.Fatalf("Lookup = %d bindings, %v; want %d", len(look.GetBindings()), err, workers*4)
	}
	if got := f.metric(t, "sipd_registrar_contacts", nil); got != workers*4 {
		t.Errorf("contacts gauge = %v, want %d", got, workers*4)
	}
	if got := len(f.pub.take()); got != workers*4 {
		t.Errorf("%d events, want %d", got, workers*4)
	}
}

func BenchmarkRegister(b *testing.B) {
	r, err := New(Config{}, Deps{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var i uint32
		for pb.Next() {
			i++
			req := reg("c", i, contact("sip:alice@198.51.100.7:5060"))
			req.Aor = fmt.Sprintf("sip:user%d@example.com", i%1024)
			if _, err := r.Register(context.Background(), req); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkLookup(b *testing.B) {
	r, err := New(Config{}, Deps{})
	if err != nil {
		b.Fatal(err)
	}
	for i := range 1024 {
		req := reg("c", 1, contact("sip:alice@198.51.100.7:5060"), contact("sip:alice@198.51.100.8:5060"))
		req.Aor = fmt.Sprintf("sip:user%d@example.com", i)
		if _, err := r.Register(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			if _, err := r.Lookup(context.Background(), &registrarv1.LookupRequest{Aor: fmt.Sprintf("sip:user%d@example.com", i%1024)}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
