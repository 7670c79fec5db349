package registrar

import (
	"context"
	"fmt"
	"hash/fnv"
	"hash/maphash"
	"time"

	registrarv1 "github.com/sipd/sipd/proto/gen/sipd/registrar/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// EventSubject starts the NATS subjects of binding events. The events of
// one AOR go to EventSubject + "." + AORToken(aor) (see SubjectFor);
// EventWildcard receives every AOR's.
const (
	EventSubject  = "sipd.registrar.binding"
	EventWildcard = EventSubject + ".>"
)

// SubjectFor is the subject aor's binding events are published on:
// "sipd.registrar.binding." and AORToken(aor).
func SubjectFor(aor string) string {
	return EventSubject + "." + AORToken(aor)
}

// AORToken is the subject token of an AOR: the 16 lower-case hex digits of
// the 64-bit FNV-1a hash of the normalised AOR. A hash keeps dots and
// wildcards of the AOR out of the subject and gives every AOR one subject,
// so a JetStream stream keeps each AOR's events in order per subject.
func AORToken(aor string) string {
	h := fnv.New64a()
	h.Write([]byte(aor))
	return fmt.Sprintf("%016x", h.Sum64())
}

// Binding event kinds.
const (
	eventInserted  = registrarv1.BindingEventType_BINDING_EVENT_TYPE_INSERTED
	eventRefreshed = registrarv1.BindingEventType_BINDING_EVENT_TYPE_REFRESHED
	eventRemoved   = registrarv1.BindingEventType_BINDING_EVENT_TYPE_REMOVED
	eventExpired   = registrarv1.BindingEventType_BINDING_EVENT_TYPE_EXPIRED
)

// pendingEvent is an event noted during a store update, published once the
// update is stored.
type pendingEvent struct {
	kind    registrarv1.BindingEventType
	binding Binding
	version uint64
	at      time.Time
}

// change collects what one store update did. The gauges come from the
// store's counts, so only the shape remains for the update functions.
type change struct {
	before, after recordStats
}

type recordStats struct{ aors, contacts int }

func stats(rec *Record) recordStats {
	if len(rec.Bindings) == 0 {
		return recordStats{}
	}
	return recordStats{aors: 1, contacts: len(rec.Bindings)}
}

// record notes an event on rec, giving it the next version; the
// eventStore publishes it once the update is stored. A new record starts
// its versions at the clock in nanoseconds, so versions keep increasing
// across a delete and re-create of the AOR. The version lives in the
// record, so it keeps increasing across registrars sharing a store.
func (r *Registrar) record(rec *Record, _ *change, kind registrarv1.BindingEventType, b Binding) {
	now := r.now()
	if rec.Version == 0 {
		rec.Version = uint64(now.UnixNano())
	}
	rec.Version++
	rec.pending = append(rec.pending, pendingEvent{kind: kind, binding: b, version: rec.Version, at: now})
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

// commit follows a successful update. Its events were already published
// by the eventStore, in order, and the gauges read the store's counts, so
// there is nothing left to do; it stays as the update functions' hook.
func (r *Registrar) commit(change) {}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// lockStripes is the number of per-AOR publish locks, a power of two.
const lockStripes = 1024

// eventStore wraps the registrar's store: an update of an AOR holds that
// AOR's stripe lock from the read to the publication of its events, so
// this registrar publishes each AOR's events in version order. It also
// feeds the expiry wheel with the record's new deadline.
//
// The locks are channels so that waiting for one honours the context: a
// store that hangs does not pile up requests past their deadlines.
type eventStore struct {
	Store
	r     *Registrar
	seed  maphash.Seed
	locks [lockStripes]chan struct{}
}

func newEventStore(s Store, r *Registrar) *eventStore {
	es := &eventStore{Store: s, r: r, seed: maphash.MakeSeed()}
	for i := range es.locks {
		es.locks[i] = make(chan struct{}, 1)
	}
	return es
}

func (s *eventStore) lock(ctx context.Context, aor string) (unlock func(), err error) {
	l := s.locks[maphash.String(s.seed, aor)&(lockStripes-1)]
	select {
	case l <- struct{}{}:
		return func() { <-l }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Update runs fn in the inner store under aor's lock, then schedules the
// record's deadline and publishes the events of the attempt that was
// stored, if the update succeeded.
func (s *eventStore) Update(ctx context.Context, aor string, fn func(rec *Record) error) error {
	unlock, err := s.lock(ctx, aor)
	if err != nil {
		return err
	}
	defer unlock()
	var (
		events   []pendingEvent
		deadline time.Time
		kept     bool
	)
	err = s.Store.Update(ctx, aor, func(rec *Record) error {
		rec.pending = nil
		err := fn(rec)
		events, rec.pending = rec.pending, nil
		if err != nil {
			return err
		}
		deadline, kept = rec.Deadline(), len(rec.Bindings) > 0 || !rec.KnownUntil.IsZero()
		return nil
	})
	if err != nil {
		return err
	}
	if kept {
		s.r.expiry.schedule(aor, deadline, s.r.now())
	}
	s.r.publish(aor, events)
	return nil
}

// Delete removes aor's record under its lock.
func (s *eventStore) Delete(ctx context.Context, aor string) error {
	unlock, err := s.lock(ctx, aor)
	if err != nil {
		return err
	}
	defer unlock()
	return s.Store.Delete(ctx, aor)
}

// publish sends events of aor, in order, as registrarv1.BindingEvent
// protobuf messages on SubjectFor(aor).
func (r *Registrar) publish(aor string, events []pendingEvent) {
	if r.events == nil || len(events) == 0 {
		return
	}
	subject := SubjectFor(aor)
	for _, e := range events {
		b := toProto(e.binding, e.at)
		b.Expires = durationpb.New(0)
		if e.kind == eventInserted || e.kind == eventRefreshed {
			b.Expires = durationpb.New(max(e.binding.ExpiresAt.Sub(e.at), 0))
		}
		data, err := proto.Marshal(&registrarv1.BindingEvent{
			Aor:     aor,
			Type:    e.kind,
			Binding: b,
			Version: e.version,
			At:      timestamppb.New(e.at),
			Origin:  r.cfg.Origin,
		})
		if err != nil {
			r.log.Error("encoding binding event", "aor", aor, "err", err)
			r.metrics.events.WithLabelValues(eventFailed).Inc()
			continue
		}
		if err := r.events.Publish(subject, data); err != nil {
			r.log.Warn("publishing binding event failed", "aor", aor, "event", e.kind.String(), "version", e.version, "err", err)
			r.metrics.events.WithLabelValues(eventFailed).Inc()
			continue
		}
		r.metrics.events.WithLabelValues(eventPublished).Inc()
	}
}
