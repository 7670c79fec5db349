// Package redisstore is the Redis implementation of registrar.Store, shared
// by every registrar replica of a site and kept across restarts when Redis
// persists its data (appendonly).
//
// Keys, under a configurable prefix P (default "sipd:registrar:"):
//
//	P aor:<aor>   hash: rec (the record, JSON), rev (store revision), n (bindings)
//	P due         sorted set: AOR by record deadline, Unix microseconds
//	P aors        sorted set: every AOR with score 0, paged by ZRANGEBYLEX
//	P stats       hash: aors (AORs with a binding), contacts (bindings)
//
// Get is one HGET. Update reads the record and its revision, runs the
// caller's function, and writes with a Lua script that checks the revision
// was not changed meanwhile (retrying the function if it was) and keeps the
// indexes and counters in step, so replicas never lose each other's
// updates. Expired reads the due index with ZRANGEBYSCORE and List pages
// the AOR index with ZRANGEBYLEX: no KEYS or SCAN anywhere. Expiry is kept
// in the index, not in Redis TTLs, so a binding still expires (and its
// event is published) when every registrar was down at its deadline.
//
// Every key an update touches is written by one script, so the store needs
// a single Redis (or a primary with replicas), not Redis Cluster.
package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/sipd/sipd/registrar"
)

var _ registrar.Store = (*Store)(nil)

// maxAttempts bounds the optimistic retries of one Update.
const maxAttempts = 1000

// errConflict is the script's answer when the record changed since it was
// read.
var errConflict = errors.New("redisstore: record changed concurrently")

// Store is a registrar.Store in Redis.
type Store struct {
	// locks queue this process's updates of one AOR (by a hash of it), so
	// they do not race each other on Redis; the revision check still
	// orders them against other processes.
	seed  maphash.Seed
	locks [lockStripes]chan struct{}

	rdb     *redis.Client
	timeout time.Duration
	prefix  string
	due     string
	aors    string
	stats   string
}

// New returns a store for cfg (defaults applied). It does no I/O: the first
// operation connects.
func New(cfg registrar.RedisConfig) (*Store, error) {
	cfg.SetDefaults()
	opts := &redis.Options{
		Addr:         cfg.Address,
		Username:     cfg.Username,
		Password:     cfg.Password,
		DB:           cfg.DB,
		DialTimeout:  cfg.DialTimeout,
		ReadTimeout:  cfg.Timeout,
		WriteTimeout: cfg.Timeout,
		PoolTimeout:  cfg.Timeout,
		PoolSize:     cfg.PoolSize,
		MaxRetries:   2,
		// Fail fast when Redis is down: the edge answers 503 at once, and
		// the next request dials again.
		DialerRetries:      1,
		DialerRetryTimeout: 10 * time.Millisecond,
		MinRetryBackoff:    8 * time.Millisecond,
		MaxRetryBackoff:    64 * time.Millisecond,
		// A deadline on the context bounds each command too.
		ContextTimeoutEnabled: true,
		DisableIdentity:       true,
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
	}
	return NewWithClient(redis.NewClient(opts), cfg.KeyPrefix, cfg.Timeout), nil
}

// NewWithClient returns a store using rdb with keys under prefix; timeout
// bounds each operation (0: none beyond the caller's context).
func NewWithClient(rdb *redis.Client, prefix string, timeout time.Duration) *Store {
	s := &Store{
		seed:    maphash.MakeSeed(),
		rdb:     rdb,
		timeout: timeout,
		prefix:  prefix,
		due:     prefix + "due",
		aors:    prefix + "aors",
		stats:   prefix + "stats",
	}
	for i := range s.locks {
		s.locks[i] = make(chan struct{}, 1)
	}
	return s
}

// lockStripes is the number of local update locks, a power of two.
const lockStripes = 256

// lock takes aor's local lock, or fails when ctx ends first.
func (s *Store) lock(ctx context.Context, aor string) (unlock func(), err error) {
	l := s.locks[maphash.String(s.seed, aor)&(lockStripes-1)]
	select {
	case l <- struct{}{}:
		return func() { <-l }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close closes the connections to Redis.
func (s *Store) Close() error { return s.rdb.Close() }

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	parent := ctx
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fail(parent, "pinging redis", err)
	}
	return nil
}

func (s *Store) key(aor string) string { return s.prefix + "aor:" + aor }

func (s *Store) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if s.timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, s.timeout)
}

// fail wraps a Redis error. When the caller's own context (parent) ended,
// that is the error; anything else (refused, the operation's timeout,
// loading, read-only) means the store is unavailable.
func fail(parent context.Context, what string, err error) error {
	if perr := parent.Err(); perr != nil {
		return fmt.Errorf("%s: %w", what, perr)
	}
	return fmt.Errorf("%s: %w: %w", what, registrar.ErrStoreUnavailable, err)
}

// Get implements registrar.Store.
func (s *Store) Get(ctx context.Context, aor string) (registrar.Record, error) {
	if err := ctx.Err(); err != nil {
		return registrar.Record{}, err
	}
	parent := ctx
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	data, err := s.rdb.HGet(ctx, s.key(aor), "rec").Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		return registrar.Record{}, registrar.ErrNotFound
	case err != nil:
		return registrar.Record{}, fail(parent, "reading "+aor, err)
	}
	return decode(aor, data)
}

func decode(aor string, data []byte) (registrar.Record, error) {
	var rec registrar.Record
	if err := json.Unmarshal(data, &rec); err != nil {
		return registrar.Record{}, fmt.Errorf("decoding record of %s: %w", aor, err)
	}
	rec.AOR = aor
	return rec, nil
}

// updateScript writes one record if its revision is still ARGV[1] ("*"
// skips the check), or deletes it when ARGV[2] is empty, and keeps the due
// and AOR indexes and the counters in step.
//
// KEYS: record, due, aors, stats. ARGV: expected rev ("" when absent), record
// JSON ("" to delete), deadline (µs), binding count, AOR.
var updateScript = redis.NewScript(`
local rev = redis.call('HGET', KEYS[1], 'rev')
if ARGV[1] ~= '*' and (rev or '') ~= ARGV[1] then
  return 0
end
local oldn = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
local newn = 0
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[5])
  redis.call('ZREM', KEYS[3], ARGV[5])
else
  newn = tonumber(ARGV[4])
  redis.call('HSET', KEYS[1], 'rec', ARGV[2], 'n', newn, 'rev', (tonumber(rev or '0') + 1))
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[5])
  redis.call('ZADD', KEYS[3], 0, ARGV[5])
end
if newn ~= oldn then
  redis.call('HINCRBY', KEYS[4], 'contacts', newn - oldn)
end
local was, is = 0, 0
if oldn > 0 then was = 1 end
if newn > 0 then is = 1 end
if was ~= is then
  redis.call('HINCRBY', KEYS[4], 'aors', is - was)
end
return 1
`)

// Update implements registrar.Store: read, fn, then a compare-and-set on
// the record's revision, retried while other writers get there first.
func (s *Store) Update(ctx context.Context, aor string, fn func(rec *registrar.Record) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	parent := ctx
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	unlock, err := s.lock(ctx, aor)
	if err != nil {
		return fail(parent, "waiting to update "+aor, err)
	}
	defer unlock()
	key := s.key(aor)
	for attempt := range maxAttempts {
		vals, err := s.rdb.HMGet(ctx, key, "rev", "rec").Result()
		if err != nil {
			return fail(parent, "reading "+aor, err)
		}
		rev, _ := vals[0].(string)
		rec := registrar.Record{AOR: aor}
		if data, ok := vals[1].(string); ok {
			if rec, err = decode(aor, []byte(data)); err != nil {
				return err
			}
		}
		if err := fn(&rec); err != nil {
			return err
		}
		rec.AOR = aor
		err = s.write(parent, ctx, key, aor, rev, &rec)
		if !errors.Is(err, errConflict) {
			return err
		}
		if err := backoff(ctx, attempt); err != nil {
			return fail(parent, "updating "+aor, err)
		}
	}
	return fmt.Errorf("updating %s: %w after %d attempts", aor, errConflict, maxAttempts)
}

// backoff waits a random time that grows with attempt (up to 5ms) before
// an update is retried, so that writers racing on one AOR spread out.
func backoff(ctx context.Context, attempt int) error {
	if attempt == 0 {
		return nil // the first retry goes at once
	}
	limit := min(time.Duration(attempt)*100*time.Microsecond, 5*time.Millisecond)
	t := time.NewTimer(rand.N(limit) + 1)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// write stores rec if the record's revision is still rev ("*": always).
func (s *Store) write(parent, ctx context.Context, key, aor, rev string, rec *registrar.Record) error {
	var data []byte
	var deadline int64
	if len(rec.Bindings) > 0 || !rec.KnownUntil.IsZero() {
		var err error
		if data, err = json.Marshal(rec); err != nil {
			return fmt.Errorf("encoding record of %s: %w", aor, err)
		}
		deadline = micros(rec.Deadline())
	}
	ok, err := updateScript.Run(ctx, s.rdb, []string{key, s.due, s.aors, s.stats},
		rev, data, deadline, len(rec.Bindings), aor).Int()
	switch {
	case err != nil:
		return fail(parent, "writing "+aor, err)
	case ok == 0:
		return errConflict
	}
	return nil
}

// micros is t in Unix microseconds, rounded up so that a record is never
// reported due before its deadline.
func micros(t time.Time) int64 {
	return (t.UnixNano() + 999) / 1000
}

// Delete implements registrar.Store.
func (s *Store) Delete(ctx context.Context, aor string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	parent := ctx
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	return s.write(parent, ctx, s.key(aor), aor, "*", &registrar.Record{AOR: aor})
}

// cursorPrefix marks the store's List cursors: "r/" and the last AOR listed.
const cursorPrefix = "r/"

// List implements registrar.Store, in AOR order.
func (s *Store) List(ctx context.Context, cursor string, limit int) ([]registrar.Record, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	if limit <= 0 {
		return nil, "", fmt.Errorf("listing records: limit (%d) must be > 0", limit)
	}
	min := "-"
	if cursor != "" {
		after, ok := strings.CutPrefix(cursor, cursorPrefix)
		if !ok || after == "" {
			return nil, "", registrar.ErrInvalidCursor
		}
		min = "(" + after
	}
	parent := ctx
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	aors, err := s.rdb.ZRangeByLex(ctx, s.aors, &redis.ZRangeBy{Min: min, Max: "+", Count: int64(limit) + 1}).Result()
	if err != nil {
		return nil, "", fail(parent, "listing aors", err)
	}
	next := ""
	if len(aors) > limit {
		aors = aors[:limit]
		next = cursorPrefix + aors[len(aors)-1]
	}
	if len(aors) == 0 {
		return nil, next, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(aors))
	for i, aor := range aors {
		cmds[i] = pipe.HGet(ctx, s.key(aor), "rec")
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, "", fail(parent, "reading listed records", err)
	}
	recs := make([]registrar.Record, 0, len(aors))
	for i, cmd := range cmds {
		data, err := cmd.Bytes()
		if errors.Is(err, redis.Nil) {
			continue // deleted since the index was read
		}
		if err != nil {
			return nil, "", fail(parent, "reading listed records", err)
		}
		rec, err := decode(aors[i], data)
		if err != nil {
			return nil, "", err
		}
		recs = append(recs, rec)
	}
	return recs, next, nil
}

// Expired implements registrar.Store, soonest first.
func (s *Store) Expired(ctx context.Context, until time.Time, limit int) ([]registrar.Due, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	parent := ctx
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	zs, err := s.rdb.ZRangeByScoreWithScores(ctx, s.due, &redis.ZRangeBy{
		Min:   "-inf",
		Max:   strconv.FormatInt(until.UnixNano()/1000, 10),
		Count: int64(limit),
	}).Result()
	if err != nil {
		return nil, fail(parent, "reading the due index", err)
	}
	out := make([]registrar.Due, len(zs))
	for i, z := range zs {
		aor, _ := z.Member.(string)
		out[i] = registrar.Due{AOR: aor, At: time.UnixMicro(int64(math.Round(z.Score)))}
	}
	return out, nil
}

// Stats implements registrar.Store from the counters the update script
// keeps.
func (s *Store) Stats(ctx context.Context) (registrar.Stats, error) {
	if err := ctx.Err(); err != nil {
		return registrar.Stats{}, err
	}
	parent := ctx
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	vals, err := s.rdb.HMGet(ctx, s.stats, "aors", "contacts").Result()
	if err != nil {
		return registrar.Stats{}, fail(parent, "reading counters", err)
	}
	n := func(v any) int64 {
		str, _ := v.(string)
		i, _ := strconv.ParseInt(str, 10, 64)
		return i
	}
	return registrar.Stats{AORs: n(vals[0]), Contacts: n(vals[1])}, nil
}
