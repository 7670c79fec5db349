// Package directorytest is the contract test suite of registrar.Directory
// and registrar.NonceCounter. Every implementation runs it:
//
//	func TestDirectory(t *testing.T) {
//		directorytest.Run(t, func(t *testing.T) registrar.Directory { return newDirectory(t) })
//	}
package directorytest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sipd/sipd/registrar"
)

// Run runs the Directory contract; newDirectory returns a new, empty
// directory for each subtest and registers its cleanup with t.
func Run(t *testing.T, newDirectory func(t *testing.T) registrar.Directory) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, d registrar.Directory)
	}{
		{"DomainMissing", testDomainMissing},
		{"PutDomainAndGet", testPutDomain},
		{"DomainNamesIgnoreCase", testDomainCase},
		{"PutDomainUpdates", testPutDomainUpdates},
		{"PutDomainKeepsUsers", testPutDomainKeepsUsers},
		{"DomainsSorted", testDomainsSorted},
		{"DeleteDomainRemovesUsers", testDeleteDomain},
		{"DeleteMissingIsNoError", testDeleteMissing},
		{"UserMissing", testUserMissing},
		{"PutUserNeedsDomain", testPutUserNeedsDomain},
		{"PutUserAndGet", testPutUser},
		{"UserNamesAreCaseSensitive", testUserCase},
		{"UsersSorted", testUsersSorted},
		{"UsersOfMissingDomain", testUsersMissingDomain},
		{"DeleteUser", testDeleteUser},
		{"CanceledContext", testCanceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newDirectory(t))
		})
	}
}

var ctx = context.Background()

func putDomain(t *testing.T, d registrar.Directory, dom registrar.Domain) {
	t.Helper()
	if err := d.PutDomain(ctx, dom); err != nil {
		t.Fatalf("PutDomain(%+v) = %v", dom, err)
	}
}

func putUser(t *testing.T, d registrar.Directory, u registrar.User) {
	t.Helper()
	if err := d.PutUser(ctx, u); err != nil {
		t.Fatalf("PutUser(%+v) = %v", u, err)
	}
}

func user(name, domain string) registrar.User {
	return registrar.User{Username: name, Domain: domain,
		HA1MD5: fmt.Sprintf("%032x", len(name)), HA1SHA256: fmt.Sprintf("%064x", len(name)+len(domain))}
}

func testDomainMissing(t *testing.T, d registrar.Directory) {
	if _, err := d.Domain(ctx, "example.com"); !errors.Is(err, registrar.ErrDomainNotFound) {
		t.Errorf("Domain(missing) = %v, want ErrDomainNotFound", err)
	}
	ds, err := d.Domains(ctx)
	if err != nil || len(ds) != 0 {
		t.Errorf("Domains(empty) = %v, %v; want none", ds, err)
	}
}

func testPutDomain(t *testing.T, d registrar.Directory) {
	want := registrar.Domain{Name: "example.com", Realm: "Example Realm", AuthRequired: true}
	putDomain(t, d, want)
	got, err := d.Domain(ctx, "example.com")
	if err != nil || got != want {
		t.Errorf("Domain = %+v, %v; want %+v", got, err, want)
	}
}

func testDomainCase(t *testing.T, d registrar.Directory) {
	putDomain(t, d, registrar.Domain{Name: "Example.COM", Realm: "r"})
	got, err := d.Domain(ctx, "EXAMPLE.com")
	if err != nil || got.Name != "example.com" {
		t.Errorf("Domain(other case) = %+v, %v; want the lower-case name", got, err)
	}
	putUser(t, d, user("alice", "EXAMPLE.COM"))
	if u, err := d.User(ctx, "example.com", "alice"); err != nil || u.Domain != "example.com" {
		t.Errorf("User = %+v, %v; want domain example.com", u, err)
	}
	if err := d.DeleteDomain(ctx, "Example.Com"); err != nil {
		t.Fatalf("DeleteDomain = %v", err)
	}
	if _, err := d.Domain(ctx, "example.com"); !errors.Is(err, registrar.ErrDomainNotFound) {
		t.Errorf("Domain after delete = %v, want ErrDomainNotFound", err)
	}
}

func testPutDomainUpdates(t *testing.T, d registrar.Directory) {
	putDomain(t, d, registrar.Domain{Name: "example.com", Realm: "a", AuthRequired: true})
	want := registrar.Domain{Name: "example.com", Realm: "b", AuthRequired: false}
	putDomain(t, d, want)
	if got, err := d.Domain(ctx, "example.com"); err != nil || got != want {
		t.Errorf("Domain = %+v, %v; want %+v", got, err, want)
	}
}

func testPutDomainKeepsUsers(t *testing.T, d registrar.Directory) {
	putDomain(t, d, registrar.Domain{Name: "example.com", Realm: "a"})
	putUser(t, d, user("alice", "example.com"))
	putDomain(t, d, registrar.Domain{Name: "example.com", Realm: "a", AuthRequired: true})
	if _, err := d.User(ctx, "example.com", "alice"); err != nil {
		t.Errorf("User after PutDomain again = %v, want kept", err)
	}
}

func testDomainsSorted(t *testing.T, d registrar.Directory) {
	for _, n := range []string{"c.example", "a.example", "b.example"} {
		putDomain(t, d, registrar.Domain{Name: n, Realm: n})
	}
	ds, err := d.Domains(ctx)
	if err != nil {
		t.Fatalf("Domains = %v", err)
	}
	var names []string
	for _, x := range ds {
		names = append(names, x.Name)
	}
	if want := []string{"a.example", "b.example", "c.example"}; !reflect.DeepEqual(names, want) {
		t.Errorf("Domains = %v, want %v", names, want)
	}
}

func testDeleteDomain(t *testing.T, d registrar.Directory) {
	putDomain(t, d, registrar.Domain{Name: "example.com", Realm: "r"})
	putDomain(t, d, registrar.Domain{Name: "example.net", Realm: "r"})
	putUser(t, d, user("alice", "example.com"))
	putUser(t, d, user("bob", "example.net"))
	if err := d.DeleteDomain(ctx, "example.com"); err != nil {
		t.Fatalf("DeleteDomain = %v", err)
	}
	if _, err := d.User(ctx, "example.com", "alice"); !errors.Is(err, registrar.ErrUserNotFound) {
		t.Errorf("User of a deleted domain = %v, want ErrUserNotFound", err)
	}
	// A domain added again starts without users.
	putDomain(t, d, registrar.Domain{Name: "example.com", Realm: "r"})
	if us, err := d.Users(ctx, "example.com"); err != nil || len(us) != 0 {
		t.Errorf("Users of a domain added again = %v, %v; want none", us, err)
	}
	if _, err := d.User(ctx, "example.net", "bob"); err != nil {
		t.Errorf("User of another domain = %v, want kept", err)
	}
}

func testDeleteMissing(t *testing.T, d registrar.Directory) {
	if err := d.DeleteDomain(ctx, "missing.example"); err != nil {
		t.Errorf("DeleteDomain(missing) = %v", err)
	}
	if err := d.DeleteUser(ctx, "missing.example", "nobody"); err != nil {
		t.Errorf("DeleteUser(missing domain) = %v", err)
	}
	putDomain(t, d, registrar.Domain{Name: "example.com", Realm: "r"})
	if err := d.DeleteUser(ctx, "example.com", "nobody"); err != nil {
		t.Errorf("DeleteUser(missing) = %v", err)
	}
}

func testUserMissing(t *testing.T, d registrar.Directory) {
	if _, err := d.User(ctx, "missing.example", "alice"); !errors.Is(err, registrar.ErrUserNotFound) {
		t.Errorf("User(missing domain) = %v, want ErrUserNotFound", err)
	}
	putDomain(t, d, registrar.Domain{Name: "example.com", Realm: "r"})
	if _, err := d.User(ctx, "example.com", "alice"); !errors.Is(err, registrar.ErrUserNotFound) {
		t.Errorf("User(missing) = %v, want ErrUserNotFound", err)
	}
}

func testPutUserNeedsDomain(t *testing.T, d registrar.Directory) {
	if err := d.PutUser(ctx, user("alice", "missing.example")); !errors.Is(err, registrar.ErrDomainNotFound) {
		t.Errorf("PutUser(missing domain) = %v, want ErrDomainNotFound", err)
	}
	if _, err := d.User(ctx, "missing.example", "alice"); !errors.Is(err, registrar.ErrUserNotFound) {
		t.Errorf("User after a refused PutUser = %v, want ErrUserNotFound", err)
	}
}

func testPutUser(t *testing.T, d registrar.Directory) {
	putDomain(t, d, registrar.Domain{Name: "example.com", Realm: "r"})
	want := user("alice", "example.com")
	putUser(t, d, want)
	if got, err := d.User(ctx, "example.com", "alice"); err != nil || got != want {
		t.Errorf("User = %+v, %v; want %+v", got, err, want)
	}
	changed := want
	changed.HA1MD5 = fmt.Sprintf("%032x", 99)
	changed.HA1SHA256 = ""
	putUser(t, d, changed)
	if got, err := d.User(ctx, "example.com", "alice"); err != nil || got != changed {
		t.Errorf("User after update = %+v, %v; want %+v", got, err, changed)
	}
}

func testUserCase(t *testing.T, d registrar.Directory) {
	putDomain(t, d, registrar.Domain{Name: "example.com", Realm: "r"})
	putUser(t, d, user("alice", "example.com"))
	if _, err := d.User(ctx, "example.com", "Alice"); !errors.Is(err, registrar.ErrUserNotFound) {
		t.Errorf("User(other case) = %v, want ErrUserNotFound", err)
	}
}

func testUsersSorted(t *testing.T, d registrar.Directory) {
	putDomain(t, d, registrar.Domain{Name: "example.com", Realm: "r"})
	putDomain(t, d, registrar.Domain{Name: "example.net", Realm: "r"})
	for _, n := range []string{"carol", "alice", "bob"} {
		putUser(t, d, user(n, "example.com"))
	}
	putUser(t, d, user("dave", "example.net"))
	us, err := d.Users(ctx, "EXAMPLE.com")
	if err != nil {
		t.Fatalf("Users = %v", err)
	}
	want := []registrar.User{user("alice", "example.com"), user("bob", "example.com"), user("carol", "example.com")}
	if !reflect.DeepEqual(us, want) {
		t.Errorf("Users = %+v, want %+v", us, want)
	}
}

func testUsersMissingDomain(t *testing.T, d registrar.Directory) {
	if _, err := d.Users(ctx, "missing.example"); !errors.Is(err, registrar.ErrDomainNotFound) {
		t.Errorf("Users(missing domain) = %v, want ErrDomainNotFound", err)
	}
}

func testDeleteUser(t *testing.T, d registrar.Directory) {
	putDomain(t, d, registrar.Domain{Name: "example.com", Realm: "r"})
	putUser(t, d, user("alice", "example.com"))
	putUser(t, d, user("bob", "example.com"))
	if err := d.DeleteUser(ctx, "Example.com", "alice"); err != nil {
		t.Fatalf("DeleteUser = %v", err)
	}
	if _, err := d.User(ctx, "example.com", "alice"); !errors.Is(err, registrar.ErrUserNotFound) {
		t.Errorf("User after delete = %v, want ErrUserNotFound", err)
	}
	if us, err := d.Users(ctx, "example.com"); err != nil || len(us) != 1 || us[0].Username != "bob" {
		t.Errorf("Users after delete = %+v, %v; want bob", us, err)
	}
}

// testCanceled checks that a canceled context fails the shared directories
// and is harmless for the memory one: either way nothing panics, and an
// error, if any, is the context's or the store's.
func testCanceled(t *testing.T, d registrar.Directory) {
	c, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := d.Domain(c, "example.com"); err == nil {
		t.Skip("the directory ignores contexts")
	} else if !errors.Is(err, context.Canceled) && !errors.Is(err, registrar.ErrDomainNotFound) {
		t.Errorf("Domain(canceled) = %v, want context.Canceled", err)
	}
}

// RunNonceCounter runs the NonceCounter contract; newCounter returns a new,
// empty counter for each subtest, and the same counter may be shared by
// several replicas (each a NonceCounter over the same state): replicas
// returns n views of one counter.
func RunNonceCounter(t *testing.T, replicas func(t *testing.T, n int) []registrar.NonceCounter) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, cs []registrar.NonceCounter)
	}{
		{"FirstCountAccepted", testNCFirst},
		{"RepeatAndLowerRefused", testNCRepeat},
		{"NoncesAreIndependent", testNCIndependent},
		{"SharedAcrossReplicas", testNCShared},
		{"ConcurrentSameCountOnce", testNCConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, replicas(t, 2))
		})
	}
}

func advance(t *testing.T, c registrar.NonceCounter, nonce string, nc uint32) bool {
	t.Helper()
	ok, err := c.Advance(ctx, nonce, nc, time.Minute)
	if err != nil {
		t.Fatalf("Advance(%s, %d) = %v", nonce, nc, err)
	}
	return ok
}

func testNCFirst(t *testing.T, cs []registrar.NonceCounter) {
	if !advance(t, cs[0], "n1", 1) {
		t.Error("Advance(new nonce, 1) = false, want true")
	}
}

func testNCRepeat(t *testing.T, cs []registrar.NonceCounter) {
	c := cs[0]
	steps := []struct {
		nc   uint32
		want bool
	}{{1, true}, {1, false}, {3, true}, {2, false}, {3, false}, {4, true}}
	for _, s := range steps {
		if got := advance(t, c, "n1", s.nc); got != s.want {
			t.Errorf("Advance(n1, %d) = %v, want %v", s.nc, got, s.want)
		}
	}
}

func testNCIndependent(t *testing.T, cs []registrar.NonceCounter) {
	advance(t, cs[0], "n1", 5)
	if !advance(t, cs[0], "n2", 1) {
		t.Error("Advance(other nonce, 1) = false, want true")
	}
}

func testNCShared(t *testing.T, cs []registrar.NonceCounter) {
	if len(cs) < 2 || cs[0] == cs[1] {
		t.Skip("the counter is not shared")
	}
	if !advance(t, cs[0], "n1", 1) {
		t.Fatal("Advance at replica A (nc 1) = false")
	}
	if advance(t, cs[1], "n1", 1) {
		t.Error("Advance at replica B (nc 1 again) = true, want a replay refused")
	}
	if !advance(t, cs[1], "n1", 2) {
		t.Error("Advance at replica B (nc 2) = false, want true")
	}
}

func testNCConcurrent(t *testing.T, cs []registrar.NonceCounter) {
	var ok atomic.Int32
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			if got, err := cs[i%len(cs)].Advance(ctx, "n1", 7, time.Minute); err == nil && got {
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 1 {
		t.Errorf("%d concurrent Advance(n1, 7) accepted, want 1", ok.Load())
	}
}
