package transport

import (
	"hash/maphash"
	"net/netip"
	"sync"
	"sync/atomic"
)

// tableShards is the number of shards of the connection table, a power of two.
const tableShards = 64

// connTable holds the open stream connections, sharded so that accepting,
// closing and looking up connections on many cores do not contend on one
// lock. By ID, a connection lives in shard id & (tableShards-1); by
// address, in the shard its (protocol, remote address) hashes to, where the
// connections to one address form a list through conn.sameAddr, newest first.
type connTable struct {
	n      atomic.Int64
	seed   maphash.Seed
	byID   [tableShards]idShard
	byAddr [tableShards]addrShard
}

type idShard struct {
	mu sync.Mutex
	m  map[uint64]*conn
	_  [40]byte // keep shards on separate cache lines
}

type addrShard struct {
	mu sync.Mutex
	m  map[connKey]*conn
	_  [40]byte
}

func newConnTable() *connTable {
	t := &connTable{seed: maphash.MakeSeed()}
	for i := range t.byID {
		t.byID[i].m = make(map[uint64]*conn)
		t.byAddr[i].m = make(map[connKey]*conn)
	}
	return t
}

func (t *connTable) addrShard(k connKey) *addrShard {
	h := maphash.Comparable(t.seed, k)
	return &t.byAddr[h&(tableShards-1)]
}

// reserve counts a connection in if the table holds fewer than max.
func (t *connTable) reserve(max int) bool {
	if t.n.Add(1) > int64(max) {
		t.n.Add(-1)
		return false
	}
	return true
}

// unreserve gives back a reservation that was not inserted.
func (t *connTable) unreserve() { t.n.Add(-1) }

// len returns the number of connections counted in.
func (t *connTable) len() int { return int(t.n.Load()) }

// insert enters c (reserved already) under its ID and address.
func (t *connTable) insert(c *conn) {
	s := &t.byID[c.id&(tableShards-1)]
	s.mu.Lock()
	s.m[c.id] = c
	s.mu.Unlock()
	k := connKey{c.proto, c.remote}
	a := t.addrShard(k)
	a.mu.Lock()
	c.sameAddr = a.m[k]
	a.m[k] = c
	a.mu.Unlock()
}

// remove takes c out of the table and gives back its reservation.
func (t *connTable) remove(c *conn) {
	s := &t.byID[c.id&(tableShards-1)]
	s.mu.Lock()
	delete(s.m, c.id)
	s.mu.Unlock()
	k := connKey{c.proto, c.remote}
	a := t.addrShard(k)
	a.mu.Lock()
	if head := a.m[k]; head == c {
		if c.sameAddr == nil {
			delete(a.m, k)
		} else {
			a.m[k] = c.sameAddr
		}
	} else {
		for p := head; p != nil; p = p.sameAddr {
			if p.sameAddr == c {
				p.sameAddr = c.sameAddr
				break
			}
		}
	}
	c.sameAddr = nil
	a.mu.Unlock()
	t.n.Add(-1)
}

// get returns the connection with this ID, or nil.
func (t *connTable) get(id uint64) *conn {
	s := &t.byID[id&(tableShards-1)]
	s.mu.Lock()
	c := s.m[id]
	s.mu.Unlock()
	return c
}

// newestTo returns the newest connection of proto p to remote, or nil.
func (t *connTable) newestTo(p Proto, remote netip.AddrPort) *conn {
	k := connKey{p, remote}
	a := t.addrShard(k)
	a.mu.Lock()
	c := a.m[k]
	a.mu.Unlock()
	return c
}

// all returns every connection in the table.
func (t *connTable) all() []*conn {
	out := make([]*conn, 0, t.len())
	for i := range t.byID {
		s := &t.byID[i]
		s.mu.Lock()
		for _, c := range s.m {
			out = append(out, c)
		}
		s.mu.Unlock()
	}
	return out
}
