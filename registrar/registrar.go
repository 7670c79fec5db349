package registrar

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	registrarv1 "github.com/sipd/sipd/proto/gen/sipd/registrar/v1"
)

// Publisher sends an event on a subject (a *nats.Conn in production).
type Publisher interface {
	Publish(subject string, data []byte) error
}

// Deps are what a Registrar talks to.
type Deps struct {
	// Store keeps the bindings; nil uses a new memory store.
	Store Store
	// Events receives the binding events (see EventSubject); nil publishes
	// nothing.
	Events Publisher
	// Logger; nil uses slog.Default().
	Logger *slog.Logger
	// Registerer receives the metrics; nil leaves them unregistered.
	Registerer prometheus.Registerer
	// Now is the clock; nil uses time.Now.
	Now func() time.Time
	// Directory keeps domains and users for digest authentication; nil
	// uses the Store's when it is a DirectoryProvider (the Redis store),
	// else a memory directory. Config.Domains and Config.Users are upserted
	// into it before it is first used (Run does it at start).
	Directory Directory
	// NonceCounter refuses replayed nonce counts; nil uses the Store's when
	// it is a NonceCounterProvider (the Redis store, shared by replicas),
	// else a table in this process of auth.max_nonces entries.
	NonceCounter NonceCounter
}

var _ registrarv1.RegistrarServiceServer = (*Registrar)(nil)

// Registrar is the location service. It implements
// registrarv1.RegistrarServiceServer.
type Registrar struct {
	registrarv1.UnimplementedRegistrarServiceServer

	cfg     Config
	store   Store // Deps.Store wrapped by an eventStore
	events  Publisher
	log     *slog.Logger
	now     func() time.Time
	metrics *metrics
	auth    *auth // digest authentication, auth.go
	gruus   gruus // GRUUs, gruu.go
	expiry  expiry
}

// New returns a Registrar for cfg (defaults applied, then validated). It
// does no I/O and starts no goroutines.
func New(cfg Config, deps Deps) (*Registrar, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("validating registrar config: %w", err)
	}
	r := &Registrar{
		cfg:    cfg,
		store:  deps.Store,
		events: deps.Events,
		log:    deps.Logger,
		now:    deps.Now,
		expiry: newExpiry(),
	}
	if r.store == nil {
		r.store = NewMemoryStore()
	}
	r.store = newEventStore(r.store, r)
	if r.log == nil {
		r.log = slog.Default()
	}
	if r.now == nil {
		r.now = time.Now
	}
	m, err := newMetrics(deps.Registerer, r.store, r.log)
	if err != nil {
		return nil, fmt.Errorf("registering registrar metrics: %w", err)
	}
	r.metrics = m
	if r.auth, err = newAuth(cfg, deps, r.log); err != nil {
		return nil, fmt.Errorf("registering registrar auth metrics: %w", err)
	}
	r.gruus = newGRUUs(r.auth.nonces.secret)
	return r, nil
}
