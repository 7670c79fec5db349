package transaction

import (
	"hash/maphash"
	"sync"
)

// table is a transaction table: shardCount shards, each a mutex and a map,
// the shard chosen by a hash of the key. Server and client transactions
// each have one.
type table[T comparable] struct {
	seed   maphash.Seed
	shards [shardCount]struct {
		mu sync.Mutex
		m  map[string]T
	}
}

func (t *table[T]) init(seed maphash.Seed) {
	t.seed = seed
	for i := range t.shards {
		t.shards[i].m = make(map[string]T)
	}
}

// get returns the entry under key, or the zero T.
func (t *table[T]) get(key string) T {
	s := &t.shards[maphash.String(t.seed, key)&(shardCount-1)]
	s.mu.Lock()
	v := s.m[key]
	s.mu.Unlock()
	return v
}

// getBytes is get for a key held in a byte slice; it does not allocate.
func (t *table[T]) getBytes(key []byte) T {
	s := &t.shards[maphash.Bytes(t.seed, key)&(shardCount-1)]
	s.mu.Lock()
	v := s.m[string(key)]
	s.mu.Unlock()
	return v
}

// insert stores v under key unless the key is taken; it returns the
// entry that is there afterwards and whether it is v.
func (t *table[T]) insert(key string, v T) (T, bool) {
	s := &t.shards[maphash.String(t.seed, key)&(shardCount-1)]
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.m[key]; ok {
		return old, false
	}
	s.m[key] = v
	return v, true
}

// remove deletes key if it still holds v.
func (t *table[T]) remove(key string, v T) {
	s := &t.shards[maphash.String(t.seed, key)&(shardCount-1)]
	s.mu.Lock()
	if s.m[key] == v {
		delete(s.m, key)
	}
	s.mu.Unlock()
}
