package registrar

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	registrarv1 "github.com/sipd/sipd/proto/gen/sipd/registrar/v1"
)

// EventSubject is the subject binding events are published on.
const EventSubject = "sipd.registrar.binding"

// Publisher sends an event on a subject (NATS in production).
type Publisher interface {
	Publish(subject string, data []byte) error
}

// Deps are what a Registrar talks to.
type Deps struct {
	// Store keeps the bindings; nil uses a new memory store.
	Store Store
	// Events receives binding events; nil publishes nothing.
	Events Publisher
	// Logger; nil uses slog.Default().
	Logger *slog.Logger
	// Registerer receives the metrics; nil leaves them unregistered.
	Registerer prometheus.Registerer
	// Now is the clock; nil uses time.Now.
	Now func() time.Time
	// Directory keeps domains and users for digest authentication; nil
	// uses a memory directory seeded from Config.Domains and Config.Users.
	Directory Directory
}

// sweepInterval is how often Run removes expired bindings.
const sweepInterval = time.Second

// sweepBatch is how many AORs one store query of the sweep returns.
const sweepBatch = 500

var _ registrarv1.RegistrarServiceServer = (*Registrar)(nil)

// Registrar is the location service. It implements
// registrarv1.RegistrarServiceServer.
type Registrar struct {
	registrarv1.UnimplementedRegistrarServiceServer

	cfg     Config
	store   Store
	events  Publisher
	log     *slog.Logger
	now     func() time.Time
	metrics *metrics
	auth    *auth // digest authentication, auth.go
	tick    time.Duration
}

// New returns a Registrar for cfg (defaults applied, then validated). It
// does no I/O and starts no goroutines.
func New(cfg Config, deps Deps) (*Registrar, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("validating registrar config: %w", err)
	}
	r := &Registrar{
		cfg:    cfg,
		store:  deps.Store,
		events: deps.Events,
		log:    deps.Logger,
		now:    deps.Now,
		tick:   sweepInterval,
	}
	if r.store == nil {
		r.store = NewMemoryStore()
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	if r.now == nil {
		r.now = time.Now
	}
	m, err := newMetrics(deps.Registerer)
	if err != nil {
		return nil, fmt.Errorf("registering registrar metrics: %w", err)
	}
	r.metrics = m
	if r.auth, err = newAuth(cfg, deps, r.log); err != nil {
		return nil, fmt.Errorf("registering registrar auth metrics: %w", err)
	}
	return r, nil
}

// Run removes expired bindings until ctx ends, then returns nil. Lookups
// never return an expired binding even between sweeps, since reads filter
// by expiry time; the sweep frees memory and publishes "expired" events.
//
// A ticker calling Store.Expired is enough at today's scale; a timer wheel
// fed by the store's deadlines can replace it when sweeps get large.
func (r *Registrar) Run(ctx context.Context) error {
	t := time.NewTicker(r.tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := r.sweep(ctx); err != nil && ctx.Err() == nil {
				r.log.Warn("expiry sweep failed", "err", err)
			}
		}
	}
}

// sweep removes the bindings that expired by now, and the records whose
// retention ended, in batches.
func (r *Registrar) sweep(ctx context.Context) error {
	now := r.now()
	for range 20 { // bounded work per tick; the next tick continues
		aors, err := r.store.Expired(ctx, now, sweepBatch)
		if err != nil {
			return fmt.Errorf("querying expired records: %w", err)
		}
		for _, aor := range aors {
			var ch change
			err := r.store.Update(ctx, aor, func(rec *Record) error {
				ch = change{before: stats(rec)}
				r.pruneLocked(rec, now, &ch)
				if len(rec.Bindings) == 0 && !rec.KnownUntil.After(now) {
					rec.KnownUntil = time.Time{} // deletes the record
				}
				ch.after = stats(rec)
				return nil
			})
			if err != nil {
				return fmt.Errorf("expiring bindings of %s: %w", aor, err)
			}
			r.commit(ch)
		}
		if len(aors) < sweepBatch {
			return nil
		}
	}
	return nil
}

// change collects what one store update did, for events and gauges.
type change struct {
	before, after recordStats
	events        []event
}

type recordStats struct{ aors, contacts int }

func stats(rec *Record) recordStats {
	if len(rec.Bindings) == 0 {
		return recordStats{}
	}
	return recordStats{aors: 1, contacts: len(rec.Bindings)}
}

// Binding event kinds.
const (
	eventInserted  = "inserted"
	eventRefreshed = "refreshed"
	eventRemoved   = "removed"
	eventExpired   = "expired"
)

// event is the JSON published on EventSubject for each binding change.
type event struct {
	AOR       string    `json:"aor"`
	Contact   string    `json:"contact"`
	Event     string    `json:"event"`
	Version   uint64    `json:"version"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// record notes an event on rec, giving it the next version. A new record
// starts its versions at the clock in nanoseconds, so versions keep
// increasing across a delete and re-create of the AOR.
func (r *Registrar) record(rec *Record, ch *change, kind string, b Binding) {
	if rec.Version == 0 {
		rec.Version = uint64(r.now().UnixNano())
	}
	rec.Version++
	e := event{AOR: rec.AOR, Contact: b.URI, Event: kind, Version: rec.Version}
	if kind == eventInserted || kind == eventRefreshed {
		e.ExpiresAt = b.ExpiresAt.UTC()
	}
	ch.events = append(ch.events, e)
}

// pruneLocked drops the bindings of rec that expired by now. It runs inside
// a store update.
func (r *Registrar) pruneLocked(rec *Record, now time.Time, ch *change) {
	kept := rec.Bindings[:0]
	for _, b := range rec.Bindings {
		if b.ExpiresAt.After(now) {
			kept = append(kept, b)
			continue
		}
		r.record(rec, ch, eventExpired, b)
		rec.KnownUntil = later(rec.KnownUntil, b.ExpiresAt.Add(r.cfg.KnownRetention))
	}
	rec.Bindings = kept
}

// commit applies a successful update's gauge deltas and publishes its
// events. The gauges count what this registrar changed, which is the truth
// for the memory store; a shared store will want a store-side count.
func (r *Registrar) commit(ch change) {
	r.metrics.aors.Add(float64(ch.after.aors - ch.before.aors))
	r.metrics.contacts.Add(float64(ch.after.contacts - ch.before.contacts))
	if r.events == nil {
		return
	}
	for _, e := range ch.events {
		data, err := json.Marshal(e)
		if err != nil {
			r.log.Error("encoding binding event", "err", err)
			continue
		}
		if err := r.events.Publish(EventSubject, data); err != nil {
			r.log.Warn("publishing binding event failed", "aor", e.AOR, "event", e.Event, "err", err)
		}
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
