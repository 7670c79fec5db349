package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sipd/sipd/registrar"
	"github.com/sipd/sipd/registrar/internal/redistest"
	"github.com/sipd/sipd/registrar/redisstore"
	"github.com/sipd/sipd/registrar/storetest"
)

// newStore returns a store on srv under its own key prefix, closed when
// the test ends.
func newStore(t testing.TB, srv *redistest.Server, prefix string) *redisstore.Store {
	t.Helper()
	s, err := redisstore.New(registrar.RedisConfig{Address: srv.Addr(), KeyPrefix: prefix, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("redisstore.New = %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStore(t *testing.T) {
	srv := redistest.Start(t, "--appendfsync", "everysec")
	var n atomic.Int64
	storetest.Run(t, func(t *testing.T) registrar.Store {
		return newStore(t, srv, fmt.Sprintf("test%d:", n.Add(1)))
	})
}

var epoch = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func put(t *testing.T, s registrar.Store, aor string, expires time.Time) {
	t.Helper()
	err := s.Update(context.Background(), aor, func(rec *registrar.Record) error {
		rec.Version++
		rec.Bindings = append(rec.Bindings, registrar.Binding{URI: "sip:c@192.0.2.1", ExpiresAt: expires, CallID: "c", CSeq: 1})
		return nil
	})
	if err != nil {
		t.Fatalf("Update(%s) = %v", aor, err)
	}
}

// TestSurvivesRedisCrash kills redis-server with SIGKILL after
// acknowledged writes and starts it again on the same data: every record,
// the indexes and the counters are back.
func TestSurvivesRedisCrash(t *testing.T) {
	srv := redistest.Start(t)
	s := newStore(t, srv, "sipd:registrar:")
	for i := range 20 {
		put(t, s, fmt.Sprintf("sip:u%02d@example.com", i), epoch.Add(time.Duration(i)*time.Minute))
	}
	srv.Kill()
	srv.Restart()

	ctx := context.Background()
	for i := range 20 {
		aor := fmt.Sprintf("sip:u%02d@example.com", i)
		rec, err := s.Get(ctx, aor)
		if err != nil || len(rec.Bindings) != 1 || rec.Version != 1 {
			t.Fatalf("Get(%s) after crash = %+v, %v", aor, rec, err)
		}
	}
	recs, next, err := s.List(ctx, "", 100)
	if err != nil || len(recs) != 20 || next != "" {
		t.Fatalf("List after crash = %d records, %q, %v; want 20", len(recs), next, err)
	}
	due, err := s.Expired(ctx, epoch.Add(5*time.Minute), 100)
	if err != nil || len(due) != 6 {
		t.Fatalf("Expired after crash = %v, %v; want 6", due, err)
	}
	st, err := s.Stats(ctx)
	if err != nil || st.AORs != 20 || st.Contacts != 20 {
		t.Fatalf("Stats after crash = %+v, %v; want 20 and 20", st, err)
	}
}

// TestRedisDown checks that every operation fails fast with
// ErrStoreUnavailable while Redis is down, and works once it is back.
func TestRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	s, err := redisstore.New(registrar.RedisConfig{Address: srv.Addr(), Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatalf("New = %v", err)
	}
	defer s.Close()
	put(t, s, "sip:alice@example.com", epoch)
	srv.Kill()

	ctx := context.Background()
	ops := []struct {
		name string
		fn   func() error
	}{
		{"Get", func() error { _, err := s.Get(ctx, "sip:alice@example.com"); return err }},
		{"Update", func() error {
			return s.Update(ctx, "sip:alice@example.com", func(*registrar.Record) error { return nil })
		}},
		{"Delete", func() error { return s.Delete(ctx, "sip:alice@example.com") }},
		{"List", func() error { _, _, err := s.List(ctx, "", 10); return err }},
		{"Expired", func() error { _, err := s.Expired(ctx, epoch, 10); return err }},
		{"Stats", func() error { _, err := s.Stats(ctx); return err }},
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			start := time.Now()
			err := op.fn()
			if !errors.Is(err, registrar.ErrStoreUnavailable) {
				t.Errorf("%s with Redis down = %v, want ErrStoreUnavailable", op.name, err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("%s took %v with Redis down", op.name, d)
			}
		})
	}

	srv.Restart()
	deadline := time.Now().Add(5 * time.Second)
	for {
		rec, err := s.Get(ctx, "sip:alice@example.com")
		if err == nil && len(rec.Bindings) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Get after Redis came back = %+v, %v", rec, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCanceledIsNotUnavailable(t *testing.T) {
	srv := redistest.Start(t)
	s := newStore(t, srv, "p:")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Get(ctx, "sip:a@example.com"); !errors.Is(err, context.Canceled) || errors.Is(err, registrar.ErrStoreUnavailable) {
		t.Fatalf("Get(canceled) = %v, want context.Canceled only", err)
	}
}

func TestInvalidCursor(t *testing.T) {
	srv := redistest.Start(t)
	s := newStore(t, srv, "p:")
	for _, c := range []string{"xyz", "r/", "3/sip:a@b"} {
		if _, _, err := s.List(context.Background(), c, 10); !errors.Is(err, registrar.ErrInvalidCursor) {
			t.Errorf("List(%q) = %v, want ErrInvalidCursor", c, err)
		}
	}
}
