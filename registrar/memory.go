package registrar

import (
	"container/heap"
	"context"
	"fmt"
	"hash/maphash"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// memoryShards is the number of shards of the memory store, a power of two.
const memoryShards = 64

var _ Store = (*memoryStore)(nil)

// memoryStore is the embedded Store: records in memoryShards shards chosen
// by a hash of the AOR, each with a mutex, a map and a min-heap of record
// deadlines for Expired.
type memoryStore struct {
	seed   maphash.Seed
	shards [memoryShards]memoryShard
	// aors and contacts count records with bindings and bindings, kept
	// by every write for Stats.
	aors, contacts atomic.Int64
}

type memoryShard struct {
	mu      sync.Mutex
	records map[string]*memoryEntry
	due     deadlineHeap
}

type memoryEntry struct {
	rec      Record
	deadline time.Time // rec.Deadline(), cached for the heap
	index    int       // position in the shard's heap
}

// NewMemoryStore returns an empty in-memory store.
func NewMemoryStore() Store {
	s := &memoryStore{seed: maphash.MakeSeed()}
	for i := range s.shards {
		s.shards[i].records = make(map[string]*memoryEntry)
	}
	return s
}

func (s *memoryStore) shardIndex(aor string) int {
	return int(maphash.String(s.seed, aor) & (memoryShards - 1))
}

func (s *memoryStore) Get(ctx context.Context, aor string) (Record, error) {
	if err := ctx.Err(); err != nil {
		return Record{}, err
	}
	sh := &s.shards[s.shardIndex(aor)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e, ok := sh.records[aor]
	if !ok {
		return Record{}, ErrNotFound
	}
	return e.rec.Clone(), nil
}

func (s *memoryStore) Update(ctx context.Context, aor string, fn func(rec *Record) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	sh := &s.shards[s.shardIndex(aor)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e, ok := sh.records[aor]
	rec := Record{AOR: aor}
	if ok {
		rec = e.rec.Clone()
	}
	if err := fn(&rec); err != nil {
		return err
	}
	rec.AOR = aor
	if ok {
		s.count(&e.rec, -1)
	}
	switch {
	case len(rec.Bindings) == 0 && rec.KnownUntil.IsZero():
		if ok {
			sh.removeLocked(e)
		}
		return nil
	case ok:
		e.rec, e.deadline = rec, rec.Deadline()
		heap.Fix(&sh.due, e.index)
	default:
		e = &memoryEntry{rec: rec, deadline: rec.Deadline()}
		sh.records[aor] = e
		heap.Push(&sh.due, e)
	}
	s.count(&rec, 1)
	return nil
}

// count adds (sign 1) or removes (sign -1) rec from the counters.
func (s *memoryStore) count(rec *Record, sign int64) {
	if n := int64(len(rec.Bindings)); n > 0 {
		s.aors.Add(sign)
		s.contacts.Add(sign * n)
	}
}

func (s *memoryStore) Stats(ctx context.Context) (Stats, error) {
	if err := ctx.Err(); err != nil {
		return Stats{}, err
	}
	return Stats{AORs: s.aors.Load(), Contacts: s.contacts.Load()}, nil
}

func (sh *memoryShard) removeLocked(e *memoryEntry) {
	heap.Remove(&sh.due, e.index)
	delete(sh.records, e.rec.AOR)
}

func (s *memoryStore) Delete(ctx context.Context, aor string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	sh := &s.shards[s.shardIndex(aor)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e, ok := sh.records[aor]; ok {
		s.count(&e.rec, -1)
		sh.removeLocked(e)
	}
	return nil
}

// List walks the shards in order and, within a shard, the AORs in sorted
// order. The cursor is "shard/last-aor".
func (s *memoryStore) List(ctx context.Context, cursor string, limit int) ([]Record, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	if limit <= 0 {
		return nil, "", fmt.Errorf("listing records: limit (%d) must be > 0", limit)
	}
	shard, after := 0, ""
	if cursor != "" {
		idx, last, ok := strings.Cut(cursor, "/")
		n, err := strconv.Atoi(idx)
		if !ok || err != nil || n < 0 || n >= memoryShards {
			return nil, "", ErrInvalidCursor
		}
		shard, after = n, last
	}
	var out []Record
	for ; shard < memoryShards; shard, after = shard+1, "" {
		sh := &s.shards[shard]
		sh.mu.Lock()
		keys := make([]string, 0, len(sh.records))
		for k := range sh.records {
			if k > after {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			if len(out) == limit {
				// More remain in this shard: continue after the last listed.
				sh.mu.Unlock()
				return out, strconv.Itoa(shard) + "/" + out[len(out)-1].AOR, nil
			}
			out = append(out, sh.records[k].rec.Clone())
		}
		sh.mu.Unlock()
		if len(out) == limit {
			if s.moreAfter(shard + 1) {
				return out, strconv.Itoa(shard+1) + "/", nil
			}
			return out, "", nil
		}
	}
	return out, "", nil
}

// moreAfter reports whether any shard from first on holds a record.
func (s *memoryStore) moreAfter(first int) bool {
	for i := first; i < memoryShards; i++ {
		sh := &s.shards[i]
		sh.mu.Lock()
		n := len(sh.records)
		sh.mu.Unlock()
		if n > 0 {
			return true
		}
	}
	return false
}

// Expired visits, in each shard's heap, only the entries due by until: a
// child is never due before its parent, so the walk stops at the first
// entry that is not due.
func (s *memoryStore) Expired(ctx context.Context, until time.Time, limit int) ([]Due, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []Due
	for i := range s.shards {
		if len(out) >= limit {
			break
		}
		sh := &s.shards[i]
		sh.mu.Lock()
		stack := []int{0}
		for len(stack) > 0 && len(out) < limit {
			j := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if j >= len(sh.due) || sh.due[j].deadline.After(until) {
				continue
			}
			out = append(out, Due{AOR: sh.due[j].rec.AOR, At: sh.due[j].deadline})
			stack = append(stack, 2*j+1, 2*j+2)
		}
		sh.mu.Unlock()
	}
	return out, nil
}

// deadlineHeap is a min-heap of entries by record deadline.
type deadlineHeap []*memoryEntry

func (h deadlineHeap) Len() int { return len(h) }
func (h deadlineHeap) Less(i, j int) bool {
	return h[i].deadline.Before(h[j].deadline)
}
func (h deadlineHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *deadlineHeap) Push(x any) {
	e := x.(*memoryEntry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *deadlineHeap) Pop() any {
	old := *h
	n := len(old)
	e := old[n-1]
	old[n-1] = nil
	*h = old[:n-1]
	e.index = -1
	return e
}
