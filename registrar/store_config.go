package registrar

import (
	"fmt"
	"net"
	"os"
	"time"
)

// Store kinds of Config.Store.
const (
	StoreMemory = "memory"
	StoreRedis  = "redis"
)

// RedisConfig is the `registrar.redis` section: how the Redis store
// reaches its server. A single Redis (with replicas or Sentinel fail-over
// in front) is supported, not Redis Cluster: an update touches the AOR's
// key and the shared indexes in one script.
type RedisConfig struct {
	// Address is the server's host:port. Default 127.0.0.1:6379.
	Address string `yaml:"address"`
	// Username and Password authenticate (Redis ACL or requirepass); empty
	// sends none.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// DB is the database number. Default 0.
	DB int `yaml:"db"`
	// KeyPrefix starts every key the store writes, so that several sipd
	// deployments can share one Redis. Default "sipd:registrar:".
	KeyPrefix string `yaml:"key_prefix"`
	// DialTimeout bounds connecting to Redis. Default 500ms.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// Timeout bounds each store operation (all its round trips and
	// retries); past it the operation fails as unavailable and the edge
	// answers 503. Default 500ms.
	Timeout time.Duration `yaml:"timeout"`
	// PoolSize is the most connections kept to Redis. Default 10 per CPU.
	PoolSize int `yaml:"pool_size"`
}

// Defaults of RedisConfig.
const (
	DefaultRedisAddress     = "127.0.0.1:6379"
	DefaultRedisKeyPrefix   = "sipd:registrar:"
	DefaultRedisDialTimeout = 500 * time.Millisecond
	DefaultRedisTimeout     = 500 * time.Millisecond
)

// setStoreDefaults fills the store, Redis and origin settings.
func (c *Config) setStoreDefaults() {
	if c.Store == "" {
		c.Store = StoreMemory
	}
	if c.Origin == "" {
		c.Origin = "registrar"
		if h, err := os.Hostname(); err == nil && h != "" {
			c.Origin = h
		}
	}
	c.Redis.SetDefaults()
}

// validateStore reports the problems of the store settings.
func (c *Config) validateStore() []error {
	switch c.Store {
	case StoreMemory:
		return nil
	case StoreRedis:
		return c.Redis.validate()
	default:
		return []error{fmt.Errorf("store %q must be %s or %s", c.Store, StoreMemory, StoreRedis)}
	}
}

// SetDefaults fills the zero fields of c with their defaults.
func (c *RedisConfig) SetDefaults() {
	if c.Address == "" {
		c.Address = DefaultRedisAddress
	}
	if c.KeyPrefix == "" {
		c.KeyPrefix = DefaultRedisKeyPrefix
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultRedisDialTimeout
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultRedisTimeout
	}
}

func (c *RedisConfig) validate() []error {
	var errs []error
	if host, port, err := net.SplitHostPort(c.Address); err != nil || host == "" || port == "" {
		errs = append(errs, fmt.Errorf("redis.address %q must be host:port", c.Address))
	}
	if c.DB < 0 {
		errs = append(errs, fmt.Errorf("redis.db (%d) must be >= 0", c.DB))
	}
	if c.DialTimeout <= 0 {
		errs = append(errs, fmt.Errorf("redis.dial_timeout (%s) must be > 0", c.DialTimeout))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("redis.timeout (%s) must be > 0", c.Timeout))
	}
	if c.PoolSize < 0 {
		errs = append(errs, fmt.Errorf("redis.pool_size (%d) must be >= 0", c.PoolSize))
	}
	return errs
}
