package registrar

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Expiry wheel settings.
const (
	// wheelTick is the width of a wheel slot: bindings are removed (and
	// their expired events published) within about a tick of their expiry.
	wheelTick = time.Second
	// wheelSlots is the number of slots; tick x slots is the wheel's
	// horizon, the records due within it are held in the wheel.
	wheelSlots = 64
	// refillBatch is how many due records one refill reads from the store.
	refillBatch = 10000
	// sweepBatch is how many AORs one store query of sweep returns.
	sweepBatch = 500
)

// expiry is a hashed timing wheel of the AORs whose record deadline falls
// within the horizon. Run owns its turning: each tick it fires the due
// slots and expires the AORs found there. Local updates schedule the new
// deadline directly; a refill from the store's due index (Store.Expired)
// every half horizon picks up records written by other replicas, records
// due beyond the horizon when they were written, and whatever was due
// while no registrar ran.
//
// Each AOR is held at most once: at maps it to its live entry, and an
// entry that no longer matches is dropped when its slot fires (a refresh
// moved the deadline). Slots fire once their tick has passed; the slot of
// the tick in progress is checked entry by entry, so a binding is removed
// as soon as it is due and never before.
type expiry struct {
	tick   time.Duration
	slots  int
	refill time.Duration

	mu    sync.Mutex
	wheel [][]wheelEntry
	at    map[string]wheelEntry
	cur   int64 // last tick whose slot fired; 0 before the first turn
}

type wheelEntry struct {
	aor      string
	tick     int64
	deadline int64 // Unix nanoseconds
}

func newExpiry() expiry {
	return expiry{
		tick:   wheelTick,
		slots:  wheelSlots,
		refill: wheelTick * wheelSlots / 2,
		wheel:  make([][]wheelEntry, wheelSlots),
		at:     make(map[string]wheelEntry),
	}
}

// ticks returns the tick t falls in (floor) and the first tick boundary
// at or after t (ceiling).
func (e *expiry) ticks(t time.Time) (floor, ceil int64) {
	n, d := t.UnixNano(), e.tick.Nanoseconds()
	floor = n / d
	if floor*d == n {
		return floor, floor
	}
	return floor, floor + 1
}

func (e *expiry) horizon() time.Duration { return e.tick * time.Duration(e.slots) }

// schedule puts aor in the wheel for deadline, if it falls within the
// horizon; a deadline already past fires on the next advance.
func (e *expiry) schedule(aor string, deadline, now time.Time) {
	_, t := e.ticks(deadline)
	e.mu.Lock()
	defer e.mu.Unlock()
	base, _ := e.ticks(now)
	base = max(base, e.cur) // the clock may have moved since the last turn
	if t > base+int64(e.slots) {
		return // beyond the horizon: a later refill brings it in
	}
	w := wheelEntry{aor: aor, tick: max(t, base+1), deadline: deadline.UnixNano()}
	if old, ok := e.at[aor]; ok && old == w {
		return
	}
	e.at[aor] = w
	slot := int(w.tick % int64(e.slots))
	e.wheel[slot] = append(e.wheel[slot], w)
}

// advance fires the slots of the ticks passed by now, and the entries of
// the tick in progress that are due, and returns their AORs.
func (e *expiry) advance(now time.Time) []string {
	nowTick, _ := e.ticks(now)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cur == 0 || nowTick-e.cur > int64(e.slots) {
		e.cur = nowTick - int64(e.slots) // a whole turn fires everything due
	}
	var due []string
	fire := func(t int64, isDue func(w wheelEntry) bool) {
		slot := int(t % int64(e.slots))
		kept := e.wheel[slot][:0]
		for _, w := range e.wheel[slot] {
			switch {
			case e.at[w.aor] != w:
				// stale: rescheduled or already fired
			case isDue(w):
				delete(e.at, w.aor)
				due = append(due, w.aor)
			default:
				kept = append(kept, w)
			}
		}
		clear(e.wheel[slot][len(kept):])
		e.wheel[slot] = kept
	}
	for ; e.cur < nowTick; e.cur++ {
		fire(e.cur+1, func(w wheelEntry) bool { return w.tick <= nowTick })
	}
	ns := now.UnixNano()
	fire(nowTick+1, func(w wheelEntry) bool { return w.deadline <= ns })
	return due
}

// Run seeds a shared directory from the configuration (at once, retried
// every tick until it succeeds) and expires bindings until ctx ends, then
// returns nil. Lookups never
// return an expired binding even before it is removed, since reads filter
// by expiry time; removal frees the store and publishes "expired" events.
//
// Several registrars sharing a Redis store may all fire for one AOR: the
// store's atomic update lets only one of them remove a binding, and only
// that one publishes its event.
func (r *Registrar) Run(ctx context.Context) error {
	t := time.NewTicker(r.expiry.tick)
	defer t.Stop()
	var nextRefill time.Time
	seedFailing := false
	for {
		// Until the configured domains and users are in a shared directory,
		// requests that need it seed it themselves or fail with 503.
		switch err := r.auth.seed(ctx); {
		case err != nil && ctx.Err() == nil && !seedFailing:
			r.log.Warn("seeding the directory from the configuration failed; retrying every tick", "err", err)
			seedFailing = true
		case err == nil && seedFailing:
			r.log.Info("directory seeded from the configuration")
			seedFailing = false
		}
		now := r.now()
		if !now.Before(nextRefill) {
			full, err := r.refill(ctx, now)
			switch {
			case err != nil && ctx.Err() == nil:
				r.log.Warn("reading due records failed", "err", err)
				nextRefill = now.Add(r.expiry.tick)
			case full:
				nextRefill = now // more are due: read again next tick
			default:
				nextRefill = now.Add(r.expiry.refill)
			}
		}
		if err := r.expire(ctx, r.expiry.advance(now), now); err != nil && ctx.Err() == nil {
			r.log.Warn("expiring bindings failed", "err", err)
			nextRefill = now // the store's due index still has them
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// refill schedules the records the store has due within the horizon. It
// reports whether the batch was full.
func (r *Registrar) refill(ctx context.Context, now time.Time) (bool, error) {
	due, err := r.store.Expired(ctx, now.Add(r.expiry.horizon()), refillBatch)
	if err != nil {
		return false, fmt.Errorf("querying due records: %w", err)
	}
	for _, d := range due {
		r.expiry.schedule(d.AOR, d.At, now)
	}
	return len(due) == refillBatch, nil
}

// sweep expires every record the store has due by now, in batches.
func (r *Registrar) sweep(ctx context.Context) error {
	now := r.now()
	for range 20 { // bounded work; the next call continues
		due, err := r.store.Expired(ctx, now, sweepBatch)
		if err != nil {
			return fmt.Errorf("querying expired records: %w", err)
		}
		aors := make([]string, len(due))
		for i, d := range due {
			aors[i] = d.AOR
		}
		if err := r.expire(ctx, aors, now); err != nil {
			return err
		}
		if len(due) < sweepBatch {
			return nil
		}
	}
	return nil
}

// expire removes the bindings of aors that expired by now, and the
// records whose retention ended. An AOR with nothing due (refreshed, or
// expired by another replica) is left alone, and its deadline scheduled.
func (r *Registrar) expire(ctx context.Context, aors []string, now time.Time) error {
	var errs []error
	for _, aor := range aors {
		var (
			next   time.Time
			exists bool
		)
		err := r.store.Update(ctx, aor, func(rec *Record) error {
			exists, next = len(rec.Bindings) > 0 || !rec.KnownUntil.IsZero(), rec.Deadline()
			var ch change
			before := len(rec.Bindings)
			r.pruneLocked(rec, now, &ch)
			if len(rec.Bindings) == 0 && !rec.KnownUntil.After(now) {
				rec.KnownUntil = time.Time{} // deletes the record
				if exists {
					return nil
				}
			}
			if len(rec.Bindings) == before {
				return errNoChange
			}
			return nil
		})
		switch {
		case errors.Is(err, errNoChange):
			if exists {
				r.expiry.schedule(aor, next, now)
			}
		case err != nil:
			errs = append(errs, fmt.Errorf("expiring bindings of %s: %w", aor, err))
			if ctx.Err() != nil {
				return errors.Join(errs...)
			}
		}
	}
	return errors.Join(errs...)
}
