package transaction

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// wheelSlots is the number of slots of the timer wheel; a power of two.
const wheelSlots = 4096

// timer is one scheduled callback on the wheel.
type timer struct {
	rounds  int
	fn      func()
	stopped atomic.Bool
}

// stop cancels the timer; a nil timer is a no-op. The entry leaves the
// wheel lazily when its slot comes round.
func (t *timer) stop() {
	if t != nil {
		t.stopped.Store(true)
	}
}

// wheel is a hashed timer wheel: one slot per tick, timers further away than
// one turn carry a round count.
type wheel struct {
	tick time.Duration

	mu    sync.Mutex
	slots [wheelSlots][]*timer
	pos   uint64 // index of the next slot to fire
	fired []*timer
}

func newWheel(tick time.Duration) *wheel {
	return &wheel{tick: tick}
}

// after schedules fn to run on the wheel goroutine once d has passed
// (rounded up to the tick).
func (w *wheel) after(d time.Duration, fn func()) *timer {
	ticks := int((d + w.tick - 1) / w.tick)
	if ticks < 1 {
		ticks = 1
	}
	t := &timer{fn: fn}
	w.mu.Lock()
	// Slot pos fires on the next advance, so a delay of n ticks lands in
	// slot pos+n-1.
	slot := (w.pos + uint64(ticks) - 1) & (wheelSlots - 1)
	t.rounds = (ticks - 1) / wheelSlots
	w.slots[slot] = append(w.slots[slot], t)
	w.mu.Unlock()
	return t
}

// advance fires the current slot and moves on by one tick.
func (w *wheel) advance() {
	w.mu.Lock()
	idx := w.pos & (wheelSlots - 1)
	w.pos++
	list := w.slots[idx]
	keep := list[:0]
	fired := w.fired[:0]
	for _, t := range list {
		switch {
		case t.stopped.Load():
		case t.rounds > 0:
			t.rounds--
			keep = append(keep, t)
		default:
			fired = append(fired, t)
		}
	}
	clear(list[len(keep):])
	w.slots[idx] = keep
	w.fired = nil
	w.mu.Unlock()

	for i, t := range fired {
		if !t.stopped.Load() {
			t.fn()
		}
		fired[i] = nil
	}
	w.mu.Lock()
	if w.fired == nil {
		w.fired = fired[:0]
	}
	w.mu.Unlock()
}

// run advances the wheel at every tick until ctx ends, catching up when the
// goroutine was delayed.
func (w *wheel) run(ctx context.Context) {
	tk := time.NewTicker(w.tick)
	defer tk.Stop()
	start := time.Now()
	var done uint64
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tk.C:
			due := uint64(now.Sub(start) / w.tick)
			for done < due {
				w.advance()
				done++
			}
		}
	}
}
