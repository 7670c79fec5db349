// Package storetest is the contract test suite of registrar.Store. Every
// store implementation runs it:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) registrar.Store { return newStore(t) })
//	}
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sipd/sipd/registrar"
)

// Run runs the contract suite; newStore returns a new, empty store for each
// subtest and registers its cleanup with t.
func Run(t *testing.T, newStore func(t *testing.T) registrar.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s registrar.Store)
	}{
		{"GetMissing", testGetMissing},
		{"UpdateCreatesAndGetReturns", testUpdateCreates},
		{"UpdateSeesStoredRecord", testUpdateSeesStored},
		{"UpdateErrorStoresNothing", testUpdateError},
		{"UpdateEmptyRecordDeletes", testUpdateEmptyDeletes},
		{"KnownRecordWithoutBindingsIsKept", testKnownKept},
		{"RecordsAreCopies", testCopies},
		{"Delete", testDelete},
		{"ConcurrentUpdatesAreAtomic", testConcurrentUpdates},
		{"ListPagesThroughAll", testList},
		{"ListEmpty", testListEmpty},
		{"Expired", testExpired},
		{"ExpiredLimit", testExpiredLimit},
		{"ExpiredGivesDeadlines", testExpiredDeadlines},
		{"Stats", testStats},
		{"VersionKeptAcrossReads", testVersionKept},
		{"CanceledContext", testCanceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

var epoch = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func binding(uri string, expiresAt time.Time) registrar.Binding {
	return registrar.Binding{
		URI:       uri,
		ExpiresAt: expiresAt,
		UpdatedAt: epoch,
		Q:         500,
		CallID:    "call-1@host",
		CSeq:      7,
		Path:      []string{"<sip:edge1.example.com;lr>"},
		Flow:      registrar.Flow{Edge: "edge1.example.com:5060", Transport: 1, Source: "192.0.2.1:5060", ConnectionID: 3},
		Instance:  "<urn:uuid:00000000-0000-0000-0000-000000000001>",
		RegID:     1,
		UserAgent: "test/1.0",
		Received:  "sip:192.0.2.1:5060;transport=udp",
	}
}

// put stores bindings for aor, failing the test on error.
func put(t *testing.T, s registrar.Store, aor string, bs ...registrar.Binding) {
	t.Helper()
	err := s.Update(context.Background(), aor, func(rec *registrar.Record) error {
		rec.Bindings = append(rec.Bindings, bs...)
		rec.Version++
		return nil
	})
	if err != nil {
		t.Fatalf("Update(%q) = %v", aor, err)
	}
}

func get(t *testing.T, s registrar.Store, aor string) registrar.Record {
	t.Helper()
	rec, err := s.Get(context.Background(), aor)
	if err != nil {
		t.Fatalf("Get(%q) = %v", aor, err)
	}
	return rec
}

func equalRecords(a, b registrar.Record) bool {
	if a.AOR != b.AOR || a.Version != b.Version || !a.KnownUntil.Equal(b.KnownUntil) || len(a.Bindings) != len(b.Bindings) {
		return false
	}
	for i := range a.Bindings {
		x, y := a.Bindings[i], b.Bindings[i]
		// Times are compared with Equal: a store may drop the monotonic
		// reading or the location.
		if !x.ExpiresAt.Equal(y.ExpiresAt) || !x.UpdatedAt.Equal(y.UpdatedAt) {
			return false
		}
		x.ExpiresAt, y.ExpiresAt, x.UpdatedAt, y.UpdatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
		if !reflect.DeepEqual(x, y) {
			return false
		}
	}
	return true
}

func testGetMissing(t *testing.T, s registrar.Store) {
	if _, err := s.Get(context.Background(), "sip:nobody@example.com"); !errors.Is(err, registrar.ErrNotFound) {
		t.Fatalf("Get(missing) error = %v, want ErrNotFound", err)
	}
}

func testUpdateCreates(t *testing.T, s registrar.Store) {
	b := binding("sip:alice@192.0.2.1:5060", epoch.Add(time.Hour))
	put(t, s, "sip:alice@example.com", b)
	got := get(t, s, "sip:alice@example.com")
	want := registrar.Record{AOR: "sip:alice@example.com", Bindings: []registrar.Binding{b}, Version: 1}
	if !equalRecords(got, want) {
		t.Fatalf("Get = %+v, want %+v", got, want)
	}
}

func testUpdateSeesStored(t *testing.T, s registrar.Store) {
	put(t, s, "sip:alice@example.com", binding("sip:a@192.0.2.1", epoch.Add(time.Hour)))
	var seen registrar.Record
	err := s.Update(context.Background(), "sip:alice@example.com", func(rec *registrar.Record) error {
		seen = rec.Clone()
		rec.Bindings = append(rec.Bindings, binding("sip:b@192.0.2.2", epoch.Add(2*time.Hour)))
		return nil
	})
	if err != nil {
		t.Fatalf("Update = %v", err)
	}
	if seen.AOR != "sip:alice@example.com" || len(seen.Bindings) != 1 || seen.Version != 1 {
		t.Fatalf("fn saw %+v, want the stored record", seen)
	}
	if got := get(t, s, "sip:alice@example.com"); len(got.Bindings) != 2 {
		t.Fatalf("bindings = %d, want 2", len(got.Bindings))
	}
	// A new AOR starts as a record with only the AOR set.
	err = s.Update(context.Background(), "sip:new@example.com", func(rec *registrar.Record) error {
		seen = rec.Clone()
		return nil
	})
	if err != nil || seen.AOR != "sip:new@example.com" || len(seen.Bindings) != 0 || seen.Version != 0 {
		t.Fatalf("Update(new) = %v, fn saw %+v", err, seen)
	}
}

func testUpdateError(t *testing.T, s registrar.Store) {
	put(t, s, "sip:alice@example.com", binding("sip:a@192.0.2.1", epoch.Add(time.Hour)))
	boom := errors.New("boom")
	err := s.Update(context.Background(), "sip:alice@example.com", func(rec *registrar.Record) error {
		rec.Bindings = nil
		rec.Version = 99
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update error = %v, want %v", err, boom)
	}
	if got := get(t, s, "sip:alice@example.com"); len(got.Bindings) != 1 || got.Version != 1 {
		t.Fatalf("record changed by a failed update: %+v", got)
	}
	err = s.Update(context.Background(), "sip:bob@example.com", func(rec *registrar.Record) error {
		rec.Bindings = append(rec.Bindings, binding("sip:b@192.0.2.2", epoch))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update error = %v, want %v", err, boom)
	}
	if _, err := s.Get(context.Background(), "sip:bob@example.com"); !errors.Is(err, registrar.ErrNotFound) {
		t.Fatalf("Get after failed create = %v, want ErrNotFound", err)
	}
}

func testUpdateEmptyDeletes(t *testing.T, s registrar.Store) {
	put(t, s, "sip:alice@example.com", binding("sip:a@192.0.2.1", epoch.Add(time.Hour)))
	err := s.Update(context.Background(), "sip:alice@example.com", func(rec *registrar.Record) error {
		rec.Bindings = nil
		rec.KnownUntil = time.Time{}
		return nil
	})
	if err != nil {
		t.Fatalf("Update = %v", err)
	}
	if _, err := s.Get(context.Background(), "sip:alice@example.com"); !errors.Is(err, registrar.ErrNotFound) {
		t.Fatalf("Get after emptying = %v, want ErrNotFound", err)
	}
	if aors, err := s.Expired(context.Background(), epoch.Add(48*time.Hour), 10); err != nil || len(aors) != 0 {
		t.Fatalf("Expired after delete = %v, %v; want none", aors, err)
	}
}

func testKnownKept(t *testing.T, s registrar.Store) {
	known := epoch.Add(24 * time.Hour)
	err := s.Update(context.Background(), "sip:alice@example.com", func(rec *registrar.Record) error {
		rec.KnownUntil = known
		return nil
	})
	if err != nil {
		t.Fatalf("Update = %v", err)
	}
	if got := get(t, s, "sip:alice@example.com"); !got.KnownUntil.Equal(known) || len(got.Bindings) != 0 {
		t.Fatalf("Get = %+v, want KnownUntil %v and no bindings", got, known)
	}
}

func testCopies(t *testing.T, s registrar.Store) {
	put(t, s, "sip:alice@example.com", binding("sip:a@192.0.2.1", epoch.Add(time.Hour)))
	got := get(t, s, "sip:alice@example.com")
	got.Bindings[0].URI = "sip:changed@192.0.2.9"
	got.Bindings[0].Path[0] = "<sip:changed>"
	again := get(t, s, "sip:alice@example.com")
	if again.Bindings[0].URI != "sip:a@192.0.2.1" || again.Bindings[0].Path[0] != "<sip:edge1.example.com;lr>" {
		t.Fatalf("mutating a returned record changed the store: %+v", again.Bindings[0])
	}
}

func testDelete(t *testing.T, s registrar.Store) {
	put(t, s, "sip:alice@example.com", binding("sip:a@192.0.2.1", epoch.Add(time.Hour)))
	ctx := context.Background()
	if err := s.Delete(ctx, "sip:alice@example.com"); err != nil {
		t.Fatalf("Delete = %v", err)
	}
	if _, err := s.Get(ctx, "sip:alice@example.com"); !errors.Is(err, registrar.ErrNotFound) {
		t.Fatalf("Get after Delete = %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "sip:alice@example.com"); err != nil {
		t.Fatalf("Delete(missing) = %v, want nil", err)
	}
	if aors, err := s.Expired(ctx, epoch.Add(48*time.Hour), 10); err != nil || len(aors) != 0 {
		t.Fatalf("Expired after Delete = %v, %v; want none", aors, err)
	}
}

func testConcurrentUpdates(t *testing.T, s registrar.Store) {
	const workers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				err := s.Update(context.Background(), "sip:hot@example.com", func(rec *registrar.Record) error {
					rec.Version++
					rec.Bindings = append(rec.Bindings, binding(fmt.Sprintf("sip:%d-%d@192.0.2.1", w, i), epoch.Add(time.Hour)))
					return nil
				})
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Update = %v", err)
	}
	got := get(t, s, "sip:hot@example.com")
	if got.Version != workers*each || len(got.Bindings) != workers*each {
		t.Fatalf("version %d, %d bindings; want %d of each (lost updates)", got.Version, len(got.Bindings), workers*each)
	}
}

func testList(t *testing.T, s registrar.Store) {
	const n = 57
	want := make([]string, 0, n)
	for i := range n {
		aor := fmt.Sprintf("sip:user%02d@example.com", i)
		want = append(want, aor)
		put(t, s, aor, binding("sip:c@192.0.2.1", epoch.Add(time.Hour)))
	}
	for _, limit := range []int{1, 10, 56, 57, 100} {
		t.Run(fmt.Sprintf("limit%d", limit), func(t *testing.T) {
			var got []string
			cursor := ""
			for page := 0; ; page++ {
				if page > n+1 {
					t.Fatalf("List did not end after %d pages", page)
				}
				recs, next, err := s.List(context.Background(), cursor, limit)
				if err != nil {
					t.Fatalf("List(%q, %d) = %v", cursor, limit, err)
				}
				if len(recs) > limit {
					t.Fatalf("List returned %d records, limit %d", len(recs), limit)
				}
				for _, r := range recs {
					got = append(got, r.AOR)
					if len(r.Bindings) != 1 {
						t.Fatalf("record %s has %d bindings, want 1", r.AOR, len(r.Bindings))
					}
				}
				if next == "" {
					break
				}
				cursor = next
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Fatalf("listed %d AORs %v, want %d", len(got), got, len(want))
			}
		})
	}
}

func testListEmpty(t *testing.T, s registrar.Store) {
	recs, next, err := s.List(context.Background(), "", 10)
	if err != nil || len(recs) != 0 || next != "" {
		t.Fatalf("List(empty) = %v, %q, %v; want nothing", recs, next, err)
	}
}

func testExpired(t *testing.T, s registrar.Store) {
	ctx := context.Background()
	put(t, s, "sip:soon@example.com",
		binding("sip:a@192.0.2.1", epoch.Add(time.Hour)),
		binding("sip:b@192.0.2.1", epoch.Add(time.Minute)))
	put(t, s, "sip:late@example.com", binding("sip:c@192.0.2.1", epoch.Add(2*time.Hour)))
	err := s.Update(ctx, "sip:gone@example.com", func(rec *registrar.Record) error {
		rec.KnownUntil = epoch.Add(30 * time.Minute)
		return nil
	})
	if err != nil {
		t.Fatalf("Update = %v", err)
	}
	tests := []struct {
		name string
		now  time.Time
		want []string
	}{
		{"nothing due", epoch, nil},
		{"earliest binding due", epoch.Add(time.Minute), []string{"sip:soon@example.com"}},
		{"retention ended", epoch.Add(45 * time.Minute), []string{"sip:gone@example.com", "sip:soon@example.com"}},
		{"all due", epoch.Add(3 * time.Hour), []string{"sip:gone@example.com", "sip:late@example.com", "sip:soon@example.com"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			due, err := s.Expired(ctx, tc.now, 100)
			if err != nil {
				t.Fatalf("Expired = %v", err)
			}
			got := aorsOf(due)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("Expired(%v) = %v, want %v", tc.now, got, tc.want)
			}
		})
	}
	// Moving the deadline by an update takes the record off the due list.
	err = s.Update(ctx, "sip:soon@example.com", func(rec *registrar.Record) error {
		rec.Bindings = slices.DeleteFunc(rec.Bindings, func(b registrar.Binding) bool { return b.URI == "sip:b@192.0.2.1" })
		return nil
	})
	if err != nil {
		t.Fatalf("Update = %v", err)
	}
	if got, _ := s.Expired(ctx, epoch.Add(time.Minute), 100); len(got) != 0 {
		t.Fatalf("Expired after refresh = %v, want none", got)
	}
}

func testExpiredLimit(t *testing.T, s registrar.Store) {
	for i := range 20 {
		put(t, s, fmt.Sprintf("sip:u%d@example.com", i), binding("sip:a@192.0.2.1", epoch.Add(time.Duration(i)*time.Second)))
	}
	due, err := s.Expired(context.Background(), epoch.Add(time.Hour), 5)
	got := aorsOf(due)
	if err != nil || len(got) != 5 {
		t.Fatalf("Expired(limit 5) = %d AORs, %v; want 5", len(got), err)
	}
	if len(slices.Compact(got)) != 5 {
		t.Fatalf("Expired returned duplicates: %v", got)
	}
}

func testCanceled(t *testing.T, s registrar.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Get(ctx, "sip:a@example.com"); !errors.Is(err, context.Canceled) {
		t.Errorf("Get(canceled) = %v, want context.Canceled", err)
	}
	err := s.Update(ctx, "sip:a@example.com", func(*registrar.Record) error { return nil })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Update(canceled) = %v, want context.Canceled", err)
	}
}

// aorsOf returns the sorted AORs of due.
func aorsOf(due []registrar.Due) []string {
	var out []string
	for _, d := range due {
		out = append(out, d.AOR)
	}
	slices.Sort(out)
	return out
}

func testExpiredDeadlines(t *testing.T, s registrar.Store) {
	put(t, s, "sip:a@example.com",
		binding("sip:a1@192.0.2.1", epoch.Add(90*time.Second)),
		binding("sip:a2@192.0.2.1", epoch.Add(30*time.Second)))
	put(t, s, "sip:b@example.com", binding("sip:b@192.0.2.1", epoch.Add(10*time.Minute)))
	tests := []struct {
		name  string
		until time.Time
		want  map[string]time.Time
	}{
		{"within horizon", epoch.Add(time.Minute), map[string]time.Time{"sip:a@example.com": epoch.Add(30 * time.Second)}},
		{"both", epoch.Add(time.Hour), map[string]time.Time{
			"sip:a@example.com": epoch.Add(30 * time.Second),
			"sip:b@example.com": epoch.Add(10 * time.Minute),
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			due, err := s.Expired(context.Background(), tc.until, 10)
			if err != nil {
				t.Fatalf("Expired = %v", err)
			}
			if len(due) != len(tc.want) {
				t.Fatalf("Expired = %v, want %v", due, tc.want)
			}
			for _, d := range due {
				if w, ok := tc.want[d.AOR]; !ok || !d.At.Equal(w) {
					t.Errorf("due %s at %v, want %v", d.AOR, d.At, w)
				}
			}
		})
	}
}

func testStats(t *testing.T, s registrar.Store) {
	ctx := context.Background()
	check := func(step string, aors, contacts int64) {
		t.Helper()
		st, err := s.Stats(ctx)
		if err != nil {
			t.Fatalf("%s: Stats = %v", step, err)
		}
		if st.AORs != aors || st.Contacts != contacts {
			t.Fatalf("%s: Stats = %+v, want %d AORs, %d contacts", step, st, aors, contacts)
		}
	}
	check("empty", 0, 0)
	put(t, s, "sip:a@example.com", binding("sip:a1@192.0.2.1", epoch.Add(time.Hour)), binding("sip:a2@192.0.2.1", epoch.Add(time.Hour)))
	put(t, s, "sip:b@example.com", binding("sip:b@192.0.2.1", epoch.Add(time.Hour)))
	check("two AORs", 2, 3)
	err := s.Update(ctx, "sip:a@example.com", func(rec *registrar.Record) error {
		rec.Bindings = rec.Bindings[:1]
		return nil
	})
	if err != nil {
		t.Fatalf("Update = %v", err)
	}
	check("one binding removed", 2, 2)
	err = s.Update(ctx, "sip:b@example.com", func(rec *registrar.Record) error {
		rec.Bindings = nil
		rec.KnownUntil = epoch.Add(time.Hour)
		return nil
	})
	if err != nil {
		t.Fatalf("Update = %v", err)
	}
	check("known without bindings", 1, 1)
	if err := s.Delete(ctx, "sip:a@example.com"); err != nil {
		t.Fatalf("Delete = %v", err)
	}
	if err := s.Delete(ctx, "sip:a@example.com"); err != nil {
		t.Fatalf("Delete again = %v", err)
	}
	check("deleted", 0, 0)
}

func testVersionKept(t *testing.T, s registrar.Store) {
	ctx := context.Background()
	for range 3 {
		err := s.Update(ctx, "sip:v@example.com", func(rec *registrar.Record) error {
			rec.Version += 10
			rec.KnownUntil = epoch.Add(time.Hour)
			return nil
		})
		if err != nil {
			t.Fatalf("Update = %v", err)
		}
	}
	if got := get(t, s, "sip:v@example.com"); got.Version != 30 || !got.KnownUntil.Equal(epoch.Add(time.Hour)) {
		t.Fatalf("record = %+v, want version 30 and KnownUntil kept", got)
	}
}
