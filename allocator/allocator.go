package allocator

import (
	"fmt"
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Buf is a pooled buffer. B holds the bytes asked for: len(B) is the size
// passed to Get and cap(B) is the size of the buffer's class. The bytes are
// not zeroed: a reused buffer holds what its last user wrote.
//
// A Buf belongs to its user from Get until Put; after Put neither it nor B
// may be used. Growing B past its capacity (or replacing it with a slice of
// another capacity) is allowed, but such a Buf is dropped at Put rather than
// retained.
type Buf struct {
	B []byte

	req   int  // the size asked for, for the rounding waste
	class int  // index into Allocator.classes; -1 for an oversize request
	free  bool // in a free list or dropped; guarded by the lock of the shard that last held it
}

// Allocator hands out size-classed pooled buffers. It is safe for concurrent
// use. The zero value is not usable; build one with New.
type Allocator struct {
	cfg     Config
	classes []class
	mask    uint32 // shards per class - 1

	// reserved is the memory shards have reserved for their free lists, in
	// chunks, so that the cap MaxBytes is checked with one atomic per chunk
	// rather than per Put. Retained memory is at most reserved.
	reserved atomic.Int64

	oversizeMu    sync.Mutex // guards the oversize figures and the free flag of oversize Bufs
	oversizeGets  uint64
	oversizePuts  uint64
	oversizeBytes int64 // bytes handed out and not yet put back
	oversizePeak  int64 // highest sampled oversizeBytes

	running atomic.Bool
}

// maxReserveChunk bounds the memory a shard reserves against MaxBytes at a
// time; a shard gives back what it holds unused past two chunks.
const maxReserveChunk = 64 << 10

// class is one size class: its free list split into shards, so that
// goroutines running at once seldom meet on one lock.
type class struct {
	size     int
	chunk    int64 // bytes a shard reserves at a time, at least size
	shardCap int   // buffers retained per shard; 0: no count cap
	shards   []shard
	peak     atomic.Int64 // highest sampled in-use count
}

// shard is a part of a class's free list with its counters, all guarded by
// mu. A Get is counted in the shard it took a buffer from (or, on a miss, in
// the first shard it looked at); a Put in the shard it went to. Sums over the
// shards are exact; a shard's own in-use figure is not meaningful.
type shard struct {
	mu     sync.Mutex
	free   []*Buf
	budget int64 // bytes reserved against MaxBytes and not used by free
	gets   uint64
	hits   uint64
	puts   uint64 // every Put, retained or dropped
	drops  uint64 // Puts not retained (grown, over a cap)
	waste  int64  // rounding loss of buffers in use (may go negative per shard)
	_      [64]byte
}

// New returns an Allocator for cfg, with defaults applied to zero fields. It
// does no I/O and starts no goroutines; call Run to load and save the warm-up
// report, or Warm to pre-fill from a report read elsewhere.
func New(cfg Config) (*Allocator, error) {
	cfg.SetDefaults()
	cfg.Classes = append([]int(nil), cfg.Classes...)
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("allocator: invalid config: %w", err)
	}
	// Four shards per P, so that two goroutines seldom hash to one shard.
	nshards := 1 << bits.Len(uint(4*runtime.GOMAXPROCS(0)-1))
	a := &Allocator{cfg: cfg, classes: make([]class, len(cfg.Classes)), mask: uint32(nshards - 1)}
	for i, size := range cfg.Classes {
		c := &a.classes[i]
		c.size = size
		// Shards hold at most two chunks reserved and unused: with chunks of
		// MaxBytes/(8*shards*classes) that leaves at least three quarters of
		// MaxBytes to the buffers themselves.
		c.chunk = max(int64(size), min(maxReserveChunk, cfg.MaxBytes/int64(8*nshards*len(cfg.Classes))))
		c.shards = make([]shard, nshards)
		if cfg.MaxPerClass > 0 {
			c.shardCap = (cfg.MaxPerClass + nshards - 1) / nshards
		}
	}
	return a, nil
}

// Config returns the allocator's configuration, defaults applied.
func (a *Allocator) Config() Config {
	c := a.cfg
	c.Classes = append([]int(nil), c.Classes...)
	return c
}

// classFor returns the index of the smallest class holding n bytes, or -1.
func (a *Allocator) classFor(n int) int {
	for i := range a.classes {
		if n <= a.classes[i].size {
			return i
		}
	}
	return -1
}

// hint returns a shard number for the calling goroutine, from the address
// of its stack taken to 8 KiB: one goroutine keeps finding the same shard
// (the buffers it put back, as Get and Put run at about the same depth), and
// goroutines running at once mostly find different ones. Goroutines whose
// small stacks share an 8 KiB block share a hint; lockShard moves them apart
// when they meet. A stack that moves only changes the hint.
func hint() uint32 {
	var x byte
	p := uintptr(unsafe.Pointer(&x)) >> 13
	return uint32((p * 0x9E3779B97F4A7C15) >> 40)
}

// lockShard locks a shard of c from start on, the first one free at once
// (or start itself if all are busy), and returns its index.
func (a *Allocator) lockShard(c *class, start uint32) uint32 {
	for i := uint32(0); i <= a.mask; i++ {
		j := (start + i) & a.mask
		if c.shards[j].mu.TryLock() {
			return j
		}
	}
	j := start & a.mask
	c.shards[j].mu.Lock()
	return j
}

// Get returns a buffer with len(B) == n, taken from the free list of the
// smallest class that holds n, or allocated when that list is empty. A
// request above the largest class is allocated plainly. Get panics if n is
// negative. Return the buffer with Put.
func (a *Allocator) Get(n int) *Buf {
	if n < 0 {
		panic(fmt.Sprintf("allocator: Get(%d): negative size", n))
	}
	ci := a.classFor(n)
	if ci < 0 {
		a.oversizeMu.Lock()
		a.oversizeGets++
		a.oversizeBytes += int64(n)
		a.oversizeMu.Unlock()
		return &Buf{B: make([]byte, n), req: n, class: -1}
	}
	c := &a.classes[ci]
	waste := int64(c.size - n)
	start := a.lockShard(c, hint())
	// Look in every shard before allocating, one lock held at a time.
	for i := uint32(0); ; i++ {
		s := &c.shards[(start+i)&a.mask]
		if i > 0 {
			s.mu.Lock()
		}
		s.gets++
		s.waste += waste
		if k := len(s.free); k > 0 {
			b := s.free[k-1]
			s.free[k-1] = nil
			s.free = s.free[:k-1]
			s.hits++
			a.releaseLocked(c, s)
			b.free = false
			s.mu.Unlock()
			b.B = b.B[:n]
			b.req = n
			return b
		}
		if i == a.mask { // a miss, counted in the last shard looked at
			s.mu.Unlock()
			break
		}
		s.gets--
		s.waste -= waste
		s.mu.Unlock()
	}
	return &Buf{B: make([]byte, n, c.size), req: n, class: ci}
}

// Put returns b to its class's free list, or drops it if its slice no longer
// has the class's capacity or a cap on retained memory is reached. Put of nil
// does nothing; Put of a Buf already put panics.
func (a *Allocator) Put(b *Buf) {
	if b == nil {
		return
	}
	if b.class < 0 {
		a.oversizeMu.Lock()
		if b.free {
			a.oversizeMu.Unlock()
			panic(errDoublePut)
		}
		b.free = true
		a.oversizePuts++
		a.oversizeBytes -= int64(b.req)
		a.oversizeMu.Unlock()
		b.B = nil
		return
	}
	c := &a.classes[b.class]
	s := &c.shards[a.lockShard(c, hint())]
	if b.free {
		s.mu.Unlock()
		panic(errDoublePut)
	}
	b.free = true
	s.puts++
	s.waste -= int64(c.size - b.req)
	if cap(b.B) == c.size && (c.shardCap == 0 || len(s.free) < c.shardCap) && a.reserveLocked(c, s) {
		b.B = b.B[:c.size]
		s.free = append(s.free, b)
		s.mu.Unlock()
		return
	}
	s.drops++
	s.mu.Unlock()
	b.B = nil
}

// errDoublePut is the panic value of a Put of a Buf already put.
const errDoublePut = "allocator: Put of a Buf already put"

// reserveLocked takes one buffer of c's size from s's budget against
// MaxBytes, reserving a chunk first if the budget is short, and reports
// whether it could.
func (a *Allocator) reserveLocked(c *class, s *shard) bool {
	size := int64(c.size)
	if s.budget >= size {
		s.budget -= size
		return true
	}
	if a.reserved.Add(c.chunk) <= a.cfg.MaxBytes {
		s.budget += c.chunk - size
		return true
	}
	a.reserved.Add(-c.chunk)
	if c.chunk > size {
		if a.reserved.Add(size) <= a.cfg.MaxBytes {
			return true
		}
		a.reserved.Add(-size)
	}
	return false
}

// releaseLocked gives one buffer of c's size back to s's budget, and the
// budget past two chunks back to the allocator.
func (a *Allocator) releaseLocked(c *class, s *shard) {
	s.budget += int64(c.size)
	if s.budget > 2*c.chunk {
		a.reserved.Add(-(s.budget - c.chunk))
		s.budget = c.chunk
	}
}

// fill adds count new buffers to class ci's free lists, spread over the
// shards and within the caps, and returns how many it added.
func (a *Allocator) fill(ci, count int) int {
	c := &a.classes[ci]
	added, full := 0, 0
	for i := uint32(0); added < count && full <= int(a.mask); i++ {
		s := &c.shards[i&a.mask]
		s.mu.Lock()
		if (c.shardCap > 0 && len(s.free) >= c.shardCap) || !a.reserveLocked(c, s) {
			s.mu.Unlock()
			full++
			continue
		}
		full = 0
		b := &Buf{B: make([]byte, c.size), class: ci, free: true}
		s.free = append(s.free, b)
		s.mu.Unlock()
		added++
	}
	return added
}
