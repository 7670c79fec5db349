package redisstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	registrarv1 "github.com/sipd/sipd/proto/gen/sipd/registrar/v1"
	"github.com/sipd/sipd/registrar"
	"github.com/sipd/sipd/registrar/internal/redistest"
	"github.com/sipd/sipd/registrar/redisstore"
	"google.golang.org/protobuf/types/known/durationpb"
)

// benchRegistrar returns a registrar on a fresh redis-server with the
// append-only file fsynced every second, as a production Redis would run.
func benchRegistrar(b *testing.B) (*registrar.Registrar, *redisstore.Store) {
	b.Helper()
	srv := redistest.Start(b, "--appendfsync", "everysec")
	s, err := redisstore.New(registrar.RedisConfig{Address: srv.Addr()})
	if err != nil {
		b.Fatalf("redisstore.New = %v", err)
	}
	b.Cleanup(func() { s.Close() })
	r, err := registrar.New(registrar.Config{}, registrar.Deps{Store: s})
	if err != nil {
		b.Fatalf("registrar.New = %v", err)
	}
	return r, s
}

func benchRegister(i int) *registrarv1.RegisterRequest {
	return &registrarv1.RegisterRequest{
		Aor:     fmt.Sprintf("sip:user%d@example.com", i%10000),
		CallId:  fmt.Sprintf("call-%d", i%10000),
		Cseq:    uint32(i + 1),
		Trusted: true,
		Contacts: []*registrarv1.ContactUpdate{{
			Uri:     fmt.Sprintf("sip:user%d@198.51.100.%d:5060", i%10000, i%250+1),
			Expires: durationpb.New(time.Hour),
		}},
		Flow: &registrarv1.Flow{Edge: "edge1:5060", Transport: registrarv1.Transport_TRANSPORT_UDP, Source: "198.51.100.1:5060"},
	}
}

// BenchmarkRegister is one REGISTER (insert or refresh) through the
// registrar on the Redis store, from parallel clients.
func BenchmarkRegister(b *testing.B) {
	r, _ := benchRegistrar(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			if _, err := r.Register(ctx, benchRegister(i*7919)); err != nil {
				b.Errorf("Register = %v", err)
				return
			}
		}
	})
}

// BenchmarkLookup is one Lookup of a registered AOR on the Redis store,
// from parallel clients.
func BenchmarkLookup(b *testing.B) {
	r, _ := benchRegistrar(b)
	ctx := context.Background()
	const aors = 1000
	for i := range aors {
		if _, err := r.Register(ctx, benchRegister(i)); err != nil {
			b.Fatalf("Register = %v", err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			resp, err := r.Lookup(ctx, &registrarv1.LookupRequest{Aor: fmt.Sprintf("sip:user%d@example.com", i%aors)})
			if err != nil || len(resp.GetBindings()) != 1 {
				b.Errorf("Lookup = %v, %v", resp, err)
				return
			}
		}
	})
}

// BenchmarkStoreUpdate is the store alone: one read-modify-write of a
// record with two bindings, serially (one round trip pair each).
func BenchmarkStoreUpdate(b *testing.B) {
	_, s := benchRegistrar(b)
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		err := s.Update(ctx, fmt.Sprintf("sip:u%d@example.com", i%1000), func(rec *registrar.Record) error {
			rec.Version++
			rec.Bindings = append(rec.Bindings[:0],
				registrar.Binding{URI: "sip:a@192.0.2.1", ExpiresAt: time.Now().Add(time.Hour), CallID: "c", CSeq: uint32(i)},
				registrar.Binding{URI: "sip:b@192.0.2.2", ExpiresAt: time.Now().Add(time.Hour), CallID: "c", CSeq: uint32(i)})
			return nil
		})
		if err != nil {
			b.Fatalf("Update = %v", err)
		}
	}
}
