package registrar

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"hash/maphash"
	"sync"
	"time"
)

// Nonces are stateless: base64url(issued unix nanoseconds (8 bytes) |
// random (8 bytes) | HMAC-SHA256(secret, issued | random | realm) cut to
// 16 bytes). Any replica holding the secret verifies one without a lookup,
// and a nonce issued for one realm is refused for another.
const (
	nonceRandLen = 8
	nonceMACLen  = 16
	nonceRawLen  = 8 + nonceRandLen + nonceMACLen
)

// nonceState is what checking a nonce found.
type nonceState int

const (
	nonceInvalid nonceState = iota // not ours: wrong size, encoding or signature
	nonceStale                     // ours, but older than the lifetime
	nonceFresh
)

// nonces issues and verifies signed nonces.
type nonces struct {
	secret   []byte
	lifetime time.Duration
}

// issue returns a new nonce for realm at now.
func (n *nonces) issue(realm string, now time.Time) string {
	var raw [nonceRawLen]byte
	binary.BigEndian.PutUint64(raw[:8], uint64(now.UnixNano()))
	_, _ = rand.Read(raw[8 : 8+nonceRandLen])
	copy(raw[8+nonceRandLen:], n.mac(raw[:8+nonceRandLen], realm))
	return base64.RawURLEncoding.EncodeToString(raw[:])
}

func (n *nonces) mac(head []byte, realm string) []byte {
	m := hmac.New(sha256.New, n.secret)
	m.Write(head)
	m.Write([]byte(realm))
	return m.Sum(nil)[:nonceMACLen]
}

// check verifies a nonce for realm at now, returning its state and when it
// stops being fresh.
func (n *nonces) check(nonce, realm string, now time.Time) (nonceState, time.Time) {
	if base64.RawURLEncoding.DecodedLen(len(nonce)) != nonceRawLen {
		return nonceInvalid, time.Time{}
	}
	raw, err := base64.RawURLEncoding.DecodeString(nonce)
	if err != nil || len(raw) != nonceRawLen {
		return nonceInvalid, time.Time{}
	}
	if !hmac.Equal(raw[8+nonceRandLen:], n.mac(raw[:8+nonceRandLen], realm)) {
		return nonceInvalid, time.Time{}
	}
	issued := time.Unix(0, int64(binary.BigEndian.Uint64(raw[:8])))
	until := issued.Add(n.lifetime)
	// A nonce from the future (clock skew between replicas beyond a
	// minute) is treated as stale too.
	if now.After(until) || issued.After(now.Add(time.Minute)) {
		return nonceStale, until
	}
	return nonceFresh, until
}

// NonceCounter remembers the highest nonce count accepted per nonce, so
// that a repeated or lower count is refused (replay protection, RFC 7616
// section 3.4). The built-in one is per process; package redisstore has
// one shared by every replica, so a nonce replayed to another replica is
// refused too.
type NonceCounter interface {
	// Advance records nc for nonce, to be kept for ttl (the time the
	// nonce has left), and reports whether nc is higher than every count
	// recorded for the nonce before. Failures of a shared counter wrap
	// ErrStoreUnavailable.
	Advance(ctx context.Context, nonce string, nc uint32, ttl time.Duration) (bool, error)
}

// NonceCounterProvider is a Store that also offers a NonceCounter shared
// like itself; New uses it when Deps.NonceCounter is nil.
type NonceCounterProvider interface {
	NonceCounter() NonceCounter
}

// DirectoryProvider is a Store that also offers a Directory shared like
// itself; New uses it when Deps.Directory is nil.
type DirectoryProvider interface {
	Directory() Directory
}

var _ NonceCounter = (*ncTable)(nil)

// ncShards is the number of shards of the nonce-count table.
const ncShards = 32

// ncTable remembers the highest nonce count accepted per nonce, until the
// nonce expires, so that a repeated or lower count is refused (replay
// protection, RFC 7616 section 3.4). It is bounded: a full shard drops its
// expired entries, then arbitrary ones (whose nonces then answer stale and
// the client asks again). It is per process: with several replicas, use a
// shared NonceCounter (redisstore's).
type ncTable struct {
	now    func() time.Time
	seed   maphash.Seed
	max    int // entries per shard
	shards [ncShards]ncShard
}

type ncShard struct {
	mu sync.Mutex
	m  map[string]ncEntry
}

type ncEntry struct {
	nc    uint32
	until time.Time
}

// NewMemoryNonceCounter returns a NonceCounter in process memory holding
// about maxEntries nonces.
func NewMemoryNonceCounter(maxEntries int) NonceCounter { return newNCTable(maxEntries) }

func newNCTable(maxEntries int) *ncTable {
	t := &ncTable{now: time.Now, seed: maphash.MakeSeed(), max: max(1, maxEntries/ncShards)}
	for i := range t.shards {
		t.shards[i].m = make(map[string]ncEntry)
	}
	return t
}

// Advance implements NonceCounter; it never fails.
func (t *ncTable) Advance(_ context.Context, nonce string, nc uint32, ttl time.Duration) (bool, error) {
	now := t.now()
	return t.advance(nonce, nc, now.Add(ttl), now), nil
}

// advance records nc for nonce, valid until until, and reports whether nc
// is higher than every count seen for the nonce before.
func (t *ncTable) advance(nonce string, nc uint32, until, now time.Time) bool {
	sh := &t.shards[maphash.String(t.seed, nonce)&(ncShards-1)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e, ok := sh.m[nonce]; ok {
		if nc <= e.nc {
			return false
		}
		sh.m[nonce] = ncEntry{nc: nc, until: until}
		return true
	}
	if len(sh.m) >= t.max {
		sh.evictLocked(now, t.max)
	}
	sh.m[nonce] = ncEntry{nc: nc, until: until}
	return true
}

// evictLocked drops expired entries and, if the shard is still full, about
// a tenth of the rest.
func (sh *ncShard) evictLocked(now time.Time, limit int) {
	for k, e := range sh.m {
		if now.After(e.until) {
			delete(sh.m, k)
		}
	}
	drop := len(sh.m) - limit + max(1, limit/10)
	for k := range sh.m {
		if drop <= 0 {
			break
		}
		delete(sh.m, k)
		drop--
	}
}

// len counts the entries, for tests.
func (t *ncTable) len() int {
	n := 0
	for i := range t.shards {
		t.shards[i].mu.Lock()
		n += len(t.shards[i].m)
		t.shards[i].mu.Unlock()
	}
	return n
}
