package registrar

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	registrarv1 "github.com/sipd/sipd/proto/gen/sipd/registrar/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func mustRegister(t *testing.T, f *fixture, req *registrarv1.RegisterRequest) {
	t.Helper()
	resp, err := f.r.Register(context.Background(), req)
	if err != nil || resp.GetCode() != 200 {
		t.Fatalf("Register = %v, %v; want 200", resp, err)
	}
}

func TestLookup(t *testing.T) {
	const c1, c2 = "sip:alice@198.51.100.7", "sip:alice@198.51.100.8"
	tests := []struct {
		name    string
		setup   func(t *testing.T, f *fixture)
		aor     string
		status  registrarv1.LookupStatus
		want    []string
		wantErr codes.Code
	}{
		{
			name:   "never registered is unknown",
			aor:    "sip:alice@example.com",
			status: registrarv1.LookupStatus_LOOKUP_STATUS_UNKNOWN,
		},
		{
			name: "found, best q first",
			setup: func(t *testing.T, f *fixture) {
				mustRegister(t, f, reg("a", 1, &registrarv1.ContactUpdate{Uri: c1, Q: 500}, &registrarv1.ContactUpdate{Uri: c2, Q: 900}))
			},
			aor:    "sip:alice@EXAMPLE.com;transport=udp",
			status: registrarv1.LookupStatus_LOOKUP_STATUS_FOUND,
			want:   []string{c2, c1},
		},
		{
			name: "expired bindings are filtered before any sweep",
			setup: func(t *testing.T, f *fixture) {
				mustRegister(t, f, reg("a", 1, contactExp(c1, 60*time.Second), contact(c2)))
				f.clock.Advance(61 * time.Second)
			},
			aor:    "sip:alice@example.com",
			status: registrarv1.LookupStatus_LOOKUP_STATUS_FOUND,
			want:   []string{c2},
		},
		{
			name: "all expired, within retention, is no contacts",
			setup: func(t *testing.T, f *fixture) {
				mustRegister(t, f, reg("a", 1, contactExp(c1, 60*time.Second)))
				f.clock.Advance(time.Hour)
			},
			aor:    "sip:alice@example.com",
			status: registrarv1.LookupStatus_LOOKUP_STATUS_NO_CONTACTS,
		},
		{
			name: "expired and swept, within retention, is no contacts",
			setup: func(t *testing.T, f *fixture) {
				mustRegister(t, f, reg("a", 1, contactExp(c1, 60*time.Second)))
				f.clock.Advance(time.Hour)
				if err := f.r.sweep(context.Background()); err != nil {
					t.Fatalf("sweep = %v", err)
				}
			},
			aor:    "sip:alice@example.com",
			status: registrarv1.LookupStatus_LOOKUP_STATUS_NO_CONTACTS,
		},
		{
			name: "unregistered is no contacts",
			setup: func(t *testing.T, f *fixture) {
				mustRegister(t, f, reg("a", 1, contact(c1)))
				mustRegister(t, f, reg("a", 2, contactExp(c1, 0)))
			},
			aor:    "sip:alice@example.com",
			status: registrarv1.LookupStatus_LOOKUP_STATUS_NO_CONTACTS,
		},
		{
			name: "after retention it is unknown again",
			setup: func(t *testing.T, f *fixture) {
				mustRegister(t, f, reg("a", 1, contactExp(c1, 60*time.Second)))
				f.clock.Advance(60*time.Second + 24*time.Hour)
			},
			aor:    "sip:alice@example.com",
			status: registrarv1.LookupStatus_LOOKUP_STATUS_UNKNOWN,
		},
		{
			name:    "invalid AOR",
			aor:     "nonsense",
			wantErr: codes.InvalidArgument,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Config{})
			if tc.setup != nil {
				tc.setup(t, f)
			}
			resp, err := f.r.Lookup(context.Background(), &registrarv1.LookupRequest{Aor: tc.aor})
			if tc.wantErr != codes.OK {
				if status.Code(err) != tc.wantErr {
					t.Fatalf("Lookup error = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Lookup = %v", err)
			}
			if resp.GetStatus() != tc.status {
				t.Fatalf("status = %v, want %v", resp.GetStatus(), tc.status)
			}
			var got []string
			for _, b := range resp.GetBindings() {
				got = append(got, b.GetUri())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("bindings = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestUnregister(t *testing.T) {
	tests := []struct {
		name    string
		contact string
		removed int32
		left    int
	}{
		{"one contact", "sip:ALICE@198.51.100.7", 1, 1},
		{"all contacts", "", 2, 0},
		{"unknown contact", "sip:bob@198.51.100.9", 0, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Config{})
			mustRegister(t, f, reg("a", 1, contact("sip:alice@198.51.100.7"), contact("sip:alice@198.51.100.8")))
			resp, err := f.r.Unregister(context.Background(), &registrarv1.UnregisterRequest{Aor: "sip:alice@example.com", ContactUri: tc.contact})
			if err != nil || resp.GetRemoved() != tc.removed {
				t.Fatalf("Unregister = %v, %v; want removed %d", resp, err, tc.removed)
			}
			look, err := f.r.Lookup(context.Background(), &registrarv1.LookupRequest{Aor: "sip:alice@example.com"})
			if err != nil || len(look.GetBindings()) != tc.left {
				t.Fatalf("Lookup = %v, %v; want %d bindings", look, err, tc.left)
			}
			if got := f.metric(t, "sipd_registrar_contacts", nil); got != float64(tc.left) {
				t.Errorf("contacts gauge = %v, want %d", got, tc.left)
			}
		})
	}
}

func TestEvents(t *testing.T) {
	f := newFixture(t, Config{})
	mustRegister(t, f, reg("a", 1, contactExp("sip:alice@198.51.100.7", 60*time.Second), contact("sip:alice@198.51.100.8")))
	mustRegister(t, f, reg("a", 2, contact("sip:alice@198.51.100.8")))
	mustRegister(t, f, reg("a", 3, contactExp("sip:alice@198.51.100.8", 0)))
	f.clock.Advance(2 * time.Minute)
	if err := f.r.sweep(context.Background()); err != nil {
		t.Fatalf("sweep = %v", err)
	}
	got := f.pub.take()
	want := []struct {
		contact string
		event   registrarv1.BindingEventType
	}{
		{"sip:alice@198.51.100.7", eventInserted},
		{"sip:alice@198.51.100.8", eventInserted},
		{"sip:alice@198.51.100.8", eventRefreshed},
		{"sip:alice@198.51.100.8", eventRemoved},
		{"sip:alice@198.51.100.7", eventExpired},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d events %+v, want %d", len(got), got, len(want))
	}
	for i, w := range want {
		e := got[i]
		if e.GetAor() != "sip:alice@example.com" || e.GetBinding().GetUri() != w.contact || e.GetType() != w.event {
			t.Errorf("event %d = %v, want %s %s", i, e, w.contact, w.event)
		}
		if e.GetOrigin() != "test-origin" {
			t.Errorf("event %d origin = %q, want test-origin", i, e.GetOrigin())
		}
		if i > 0 && e.GetVersion() != got[i-1].GetVersion()+1 {
			t.Errorf("event %d version %d, want %d", i, e.GetVersion(), got[i-1].GetVersion()+1)
		}
		hasExpiry := w.event == eventInserted || w.event == eventRefreshed
		if hasExpiry == (e.GetBinding().GetExpires().AsDuration() == 0) {
			t.Errorf("event %d (%s) expires = %v", i, w.event, e.GetBinding().GetExpires().AsDuration())
		}
	}
	if at, exp := got[0].GetAt().AsTime(), got[0].GetBinding().GetExpires().AsDuration(); !at.Add(exp).Equal(t0.Add(60 * time.Second)) {
		t.Errorf("expiry = %v + %v, want %v", at, exp, t0.Add(60*time.Second))
	}
	if rec, err := f.r.store.Get(context.Background(), "sip:alice@example.com"); err != nil || rec.Version != got[len(got)-1].GetVersion() {
		t.Errorf("stored version = %d, %v; want the last event's %d", rec.Version, err, got[len(got)-1].GetVersion())
	}
}

func TestSweepDeletesAfterRetention(t *testing.T) {
	f := newFixture(t, Config{KnownRetention: time.Hour})
	mustRegister(t, f, reg("a", 1, contactExp("sip:alice@198.51.100.7", 60*time.Second)))
	if got := f.metric(t, "sipd_registrar_aors", nil); got != 1 {
		t.Fatalf("aors gauge = %v, want 1", got)
	}
	f.clock.Advance(2 * time.Minute)
	if err := f.r.sweep(context.Background()); err != nil {
		t.Fatalf("sweep = %v", err)
	}
	if got := f.metric(t, "sipd_registrar_aors", nil); got != 0 {
		t.Fatalf("aors gauge after expiry = %v, want 0", got)
	}
	if _, err := f.r.store.Get(context.Background(), "sip:alice@example.com"); err != nil {
		t.Fatalf("record gone before retention ended: %v", err)
	}
	f.clock.Advance(time.Hour)
	if err := f.r.sweep(context.Background()); err != nil {
		t.Fatalf("sweep = %v", err)
	}
	if _, err := f.r.store.Get(context.Background(), "sip:alice@example.com"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after retention = %v, want ErrNotFound", err)
	}
}

func TestRunSweepsAndStops(t *testing.T) {
	f := newFixture(t, Config{})
	f.r.expiry.tick = 10 * time.Millisecond
	mustRegister(t, f, reg("a", 1, contactExp("sip:alice@198.51.100.7", 60*time.Second)))
	f.clock.Advance(2 * time.Minute)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.r.Run(ctx) }()

	deadline := time.Now().Add(5 * time.Second)
	for f.metric(t, "sipd_registrar_contacts", nil) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("Run did not sweep the expired binding within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestList(t *testing.T) {
	f := newFixture(t, Config{})
	for _, user := range []string{"a", "b", "c", "d", "e"} {
		req := reg("x", 1, contact("sip:"+user+"@198.51.100.7"))
		req.Aor = "sip:" + user + "@example.com"
		mustRegister(t, f, req)
	}
	var got []string
	token := ""
	for range 10 {
		resp, err := f.r.List(context.Background(), &registrarv1.ListRequest{PageSize: 2, PageToken: token})
		if err != nil {
			t.Fatalf("List = %v", err)
		}
		if len(resp.GetRecords()) > 2 {
			t.Fatalf("page of %d records, want at most 2", len(resp.GetRecords()))
		}
		for _, r := range resp.GetRecords() {
			got = append(got, r.GetAor())
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	slices.Sort(got)
	want := []string{"sip:a@example.com", "sip:b@example.com", "sip:c@example.com", "sip:d@example.com", "sip:e@example.com"}
	if !slices.Equal(got, want) {
		t.Fatalf("listed %v, want %v", got, want)
	}
	for _, bad := range []*registrarv1.ListRequest{{PageToken: "!!"}, {PageSize: -1}, {PageToken: "eHl6"}} {
		if _, err := f.r.List(context.Background(), bad); status.Code(err) != codes.InvalidArgument {
			t.Errorf("List(%v) error = %v, want InvalidArgument", bad, err)
		}
	}
}

func TestRegisterMetrics(t *testing.T) {
	f := newFixture(t, Config{})
	mustRegister(t, f, reg("a", 1, contact("sip:alice@198.51.100.7")))
	f.r.Register(context.Background(), reg("a", 2, contactExp("sip:alice@198.51.100.7", time.Second)))
	f.r.Lookup(context.Background(), &registrarv1.LookupRequest{Aor: "sip:alice@example.com"})
	f.r.Lookup(context.Background(), &registrarv1.LookupRequest{Aor: "sip:bob@example.com"})
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"sipd_registrar_registrations_total", map[string]string{"result": "accepted", "reason": reasonUpdated}, 1},
		{"sipd_registrar_registrations_total", map[string]string{"result": "rejected", "reason": reasonTooBrief}, 1},
		{"sipd_registrar_lookups_total", map[string]string{"status": lookupFound}, 1},
		{"sipd_registrar_lookups_total", map[string]string{"status": lookupUnknown}, 1},
		{"sipd_registrar_aors", nil, 1},
		{"sipd_registrar_contacts", nil, 1},
	}
	for _, c := range checks {
		if got := f.metric(t, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

func TestToStatus(t *testing.T) {
	tests := []struct {
		name string
		err  error
		code codes.Code
	}{
		{"store down", errors.Join(errors.New("dial tcp: refused"), ErrStoreUnavailable), codes.Unavailable},
		{"deadline", context.DeadlineExceeded, codes.DeadlineExceeded},
		{"canceled", context.Canceled, codes.Canceled},
		{"invalid", errInvalidArgument, codes.InvalidArgument},
		{"other", errors.New("secret detail"), codes.Internal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := status.Convert(toStatus(tc.err))
			if st.Code() != tc.code {
				t.Errorf("code = %v, want %v", st.Code(), tc.code)
			}
			if strings.Contains(st.Message(), "secret") {
				t.Errorf("message %q leaks internal error text", st.Message())
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string // substrings of the error; nil for valid
	}{
		{name: "defaults", cfg: Config{}},
		{
			name: "max below min",
			cfg:  Config{MinExpires: 60 * time.Second, MaxExpires: 30 * time.Second, DefaultExpires: 45 * time.Second},
			want: []string{"max_expires (30s) must be >= min_expires (1m0s)", "default_expires (45s)"},
		},
		{
			name: "every problem at once",
			cfg:  Config{MinExpires: -time.Second, MaxContacts: -1, KnownRetention: -time.Hour},
			want: []string{"min_expires (-1s) must be > 0", "max_contacts (-1) must be >= 1", "known_retention (-1h0m0s) must be >= 0"},
		},
		{name: "redis store", cfg: Config{Store: StoreRedis, Redis: RedisConfig{Address: "redis.example.net:6380", DB: 2}}},
		{
			name: "unknown store",
			cfg:  Config{Store: "etcd"},
			want: []string{`store "etcd" must be memory or redis`},
		},
		{
			name: "bad redis settings",
			cfg:  Config{Store: StoreRedis, Redis: RedisConfig{Address: "nohost", DB: -1, Timeout: -time.Second, PoolSize: -2}},
			want: []string{`redis.address "nohost" must be host:port`, "redis.db (-1) must be >= 0", "redis.timeout (-1s) must be > 0", "redis.pool_size (-2) must be >= 0"},
		},
		{name: "redis settings ignored with the memory store", cfg: Config{Redis: RedisConfig{DB: -1}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.SetDefaults()
			err := cfg.Validate()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
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
