package redisstore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sipd/sipd/registrar"
)

// The directory and the nonce counts live next to the bindings, under the
// same prefix P:
//
//	P domains          hash: domain name -> Domain (JSON)
//	P users:<domain>   hash: username -> User (JSON, with its HA1 hashes)
//	P nc:<nonce>       string: the highest nonce count accepted, expiring
//	                   with the nonce

var (
	_ registrar.Directory            = (*Directory)(nil)
	_ registrar.NonceCounter         = (*NonceCounter)(nil)
	_ registrar.DirectoryProvider    = (*Store)(nil)
	_ registrar.NonceCounterProvider = (*Store)(nil)
)

// Directory is a registrar.Directory in Redis, shared by every registrar
// replica on it. Build it with (*Store).Directory; it uses the store's
// connections and timeout.
type Directory struct {
	s       *Store
	domains string
}

// Directory returns the store's Directory (registrar.DirectoryProvider),
// so registrar.New picks it when Deps.Directory is nil.
func (s *Store) Directory() registrar.Directory {
	return &Directory{s: s, domains: s.prefix + "domains"}
}

func (d *Directory) usersKey(domain string) string { return d.s.prefix + "users:" + domain }

// Domain implements registrar.Directory.
func (d *Directory) Domain(ctx context.Context, name string) (registrar.Domain, error) {
	name = strings.ToLower(name)
	var dom registrar.Domain
	err := d.s.do(ctx, "reading domain "+name, func(ctx context.Context) error {
		data, err := d.s.rdb.HGet(ctx, d.domains, name).Bytes()
		if errors.Is(err, redis.Nil) {
			return registrar.ErrDomainNotFound
		}
		if err != nil {
			return err
		}
		return decodeJSON(data, &dom)
	})
	return dom, err
}

// PutDomain implements registrar.Directory.
func (d *Directory) PutDomain(ctx context.Context, dom registrar.Domain) error {
	dom.Name = strings.ToLower(dom.Name)
	data, err := json.Marshal(dom)
	if err != nil {
		return fmt.Errorf("encoding domain %q: %w", dom.Name, err)
	}
	return d.s.do(ctx, "writing domain "+dom.Name, func(ctx context.Context) error {
		return d.s.rdb.HSet(ctx, d.domains, dom.Name, data).Err()
	})
}

// DeleteDomain implements registrar.Directory: the domain and its users go
// in one transaction.
func (d *Directory) DeleteDomain(ctx context.Context, name string) error {
	name = strings.ToLower(name)
	return d.s.do(ctx, "deleting domain "+name, func(ctx context.Context) error {
		_, err := d.s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HDel(ctx, d.domains, name)
			p.Del(ctx, d.usersKey(name))
			return nil
		})
		return err
	})
}

// Domains implements registrar.Directory.
func (d *Directory) Domains(ctx context.Context) ([]registrar.Domain, error) {
	var out []registrar.Domain
	err := d.s.do(ctx, "listing domains", func(ctx context.Context) error {
		all, err := d.s.rdb.HGetAll(ctx, d.domains).Result()
		if err != nil {
			return err
		}
		out = make([]registrar.Domain, 0, len(all))
		for name, data := range all {
			var dom registrar.Domain
			if err := decodeJSON([]byte(data), &dom); err != nil {
				return fmt.Errorf("domain %q: %w", name, err)
			}
			out = append(out, dom)
		}
		return nil
	})
	slices.SortFunc(out, func(a, b registrar.Domain) int { return cmp.Compare(a.Name, b.Name) })
	return out, err
}

// User implements registrar.Directory.
func (d *Directory) User(ctx context.Context, domain, username string) (registrar.User, error) {
	domain = strings.ToLower(domain)
	var u registrar.User
	err := d.s.do(ctx, "reading user "+username+"@"+domain, func(ctx context.Context) error {
		data, err := d.s.rdb.HGet(ctx, d.usersKey(domain), username).Bytes()
		if errors.Is(err, redis.Nil) {
			return registrar.ErrUserNotFound
		}
		if err != nil {
			return err
		}
		return decodeJSON(data, &u)
	})
	return u, err
}

// putUserScript writes a user only if its domain exists, so that a user
// cannot outlive a domain deleted at the same time.
//
// KEYS: domains, users of the domain. ARGV: domain, username, user JSON.
var putUserScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 1
`)

// PutUser implements registrar.Directory.
func (d *Directory) PutUser(ctx context.Context, u registrar.User) error {
	u.Domain = strings.ToLower(u.Domain)
	data, err := json.Marshal(u)
	if err != nil {
		return fmt.Errorf("encoding user %q: %w", u.Username, err)
	}
	return d.s.do(ctx, "writing user "+u.Username+"@"+u.Domain, func(ctx context.Context) error {
		ok, err := putUserScript.Run(ctx, d.s.rdb, []string{d.domains, d.usersKey(u.Domain)}, u.Domain, u.Username, data).Int()
		if err == nil && ok == 0 {
			return registrar.ErrDomainNotFound
		}
		return err
	})
}

// DeleteUser implements registrar.Directory.
func (d *Directory) DeleteUser(ctx context.Context, domain, username string) error {
	domain = strings.ToLower(domain)
	return d.s.do(ctx, "deleting user "+username+"@"+domain, func(ctx context.Context) error {
		return d.s.rdb.HDel(ctx, d.usersKey(domain), username).Err()
	})
}

// Users implements registrar.Directory.
func (d *Directory) Users(ctx context.Context, domain string) ([]registrar.User, error) {
	domain = strings.ToLower(domain)
	var out []registrar.User
	err := d.s.do(ctx, "listing users of "+domain, func(ctx context.Context) error {
		var exists *redis.BoolCmd
		var all *redis.MapStringStringCmd
		if _, err := d.s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
			exists = p.HExists(ctx, d.domains, domain)
			all = p.HGetAll(ctx, d.usersKey(domain))
			return nil
		}); err != nil {
			return err
		}
		if !exists.Val() {
			return registrar.ErrDomainNotFound
		}
		out = make([]registrar.User, 0, len(all.Val()))
		for name, data := range all.Val() {
			var u registrar.User
			if err := decodeJSON([]byte(data), &u); err != nil {
				return fmt.Errorf("user %q: %w", name, err)
			}
			out = append(out, u)
		}
		return nil
	})
	slices.SortFunc(out, func(a, b registrar.User) int { return cmp.Compare(a.Username, b.Username) })
	return out, err
}

// NonceCounter is a registrar.NonceCounter in Redis, shared by every
// registrar replica on it: a nonce count accepted by one replica is
// refused by all. Build it with (*Store).NonceCounter.
type NonceCounter struct {
	s *Store
}

// NonceCounter returns the store's NonceCounter
// (registrar.NonceCounterProvider), so registrar.New picks it when
// Deps.NonceCounter is nil.
func (s *Store) NonceCounter() registrar.NonceCounter { return &NonceCounter{s: s} }

// ncSkew is added to a nonce's time left before its count expires in
// Redis, so that clocks of replicas and Redis a little apart never let a
// count expire while some replica still takes the nonce as fresh.
const ncSkew = time.Minute

// advanceScript stores ARGV[1] as the count of the nonce if it is higher
// than the stored one, with a time to live of ARGV[2] milliseconds.
//
// KEYS: the nonce's key. ARGV: count, ttl (ms).
var advanceScript = redis.NewScript(`
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) <= cur then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`)

// Advance implements registrar.NonceCounter: one atomic script.
func (n *NonceCounter) Advance(ctx context.Context, nonce string, nc uint32, ttl time.Duration) (bool, error) {
	var ok int
	err := n.s.do(ctx, "advancing a nonce count", func(ctx context.Context) error {
		var err error
		ok, err = advanceScript.Run(ctx, n.s.rdb, []string{n.s.prefix + "nc:" + nonce},
			strconv.FormatUint(uint64(nc), 10), max(ttl+ncSkew, time.Millisecond).Milliseconds()).Int()
		return err
	})
	return ok == 1, err
}

// errCorrupt marks directory entries that do not decode.
var errCorrupt = errors.New("redisstore: stored entry does not decode")

func decodeJSON(data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%w: %w", errCorrupt, err)
	}
	return nil
}

// do runs fn under the store's operation timeout. The registrar's
// not-found errors and errCorrupt pass through; anything else is a Redis
// failure, wrapped by fail.
func (s *Store) do(ctx context.Context, what string, fn func(ctx context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	parent := ctx
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	switch err := fn(ctx); {
	case err == nil:
		return nil
	case errors.Is(err, registrar.ErrDomainNotFound), errors.Is(err, registrar.ErrUserNotFound):
		return err
	case errors.Is(err, errCorrupt):
		return fmt.Errorf("%s: %w", what, err)
	default:
		return fail(parent, what, err)
	}
}
