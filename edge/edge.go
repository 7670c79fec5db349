package edge

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	registrarv1 "github.com/sipd/sipd/proto/gen/sipd/registrar/v1"
	routerv1 "github.com/sipd/sipd/proto/gen/sipd/router/v1"

	"github.com/sipd/sipd/edge/transaction"
	"github.com/sipd/sipd/edge/transport"
)

// RegistrarClient is the part of the registrar's gRPC client the edge uses:
// Register for REGISTER, Lookup and Unregister to remove the contacts it
// owns that lost their keep-alives or their connection (nat.go).
type RegistrarClient interface {
	Register(ctx context.Context, in *registrarv1.RegisterRequest, opts ...grpc.CallOption) (*registrarv1.RegisterResponse, error)
	Lookup(ctx context.Context, in *registrarv1.LookupRequest, opts ...grpc.CallOption) (*registrarv1.LookupResponse, error)
	Unregister(ctx context.Context, in *registrarv1.UnregisterRequest, opts ...grpc.CallOption) (*registrarv1.UnregisterResponse, error)
}

var _ RegistrarClient = registrarv1.RegistrarServiceClient(nil)

// RouterClient is the part of the router's gRPC client the edge uses.
type RouterClient interface {
	Route(ctx context.Context, in *routerv1.RouteRequest, opts ...grpc.CallOption) (*routerv1.RouteResponse, error)
}

// Deps are the edge's collaborators.
type Deps struct {
	Registrar RegistrarClient
	Router    RouterClient
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Registerer receives the metrics; nil leaves them unregistered.
	Registerer prometheus.Registerer
	// TracerProvider defaults to otel.GetTracerProvider().
	TracerProvider trace.TracerProvider
}

// Edge is the SIP edge: transports, transactions and the proxy core.
type Edge struct {
	cfg     Config
	deps    Deps
	logger  *slog.Logger
	tracer  trace.Tracer
	m       *metrics
	tl      *transport.Layer
	tx      *transaction.Layer
	domains map[string]bool
	trusted []netip.Prefix
	static  *staticRoutes // nil without static routes
	// flowSecret signs flow tokens (flow.go).
	flowSecret []byte
	// nat is the bindings this edge owns, for keep-alives and
	// remove-on-close (nat.go).
	nat   *natTable
	jobs  chan func()
	ready chan struct{}

	runCtx atomic.Pointer[context.Context]
	// draining is set once Run's context ends: new out-of-dialog requests
	// get 503 while pending transactions finish.
	draining atomic.Bool
	// pending counts server transactions of the proxy not yet answered
	// with a final response.
	pending atomic.Int64
	localMu sync.Mutex
	local   atomic.Pointer[localInfo]
	bound   atomic.Bool
}

// localInfo is what the edge knows about its own addresses.
type localInfo struct {
	listeners []transport.Listener
	advHost   string // advertised host, "" when not set
	advPort   int
	id        string
}

// New builds an edge from a validated-or-not config; it does no I/O.
func New(cfg Config, deps Deps) (*Edge, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("validating edge config: %w", err)
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.TracerProvider == nil {
		deps.TracerProvider = otel.GetTracerProvider()
	}
	e := &Edge{
		cfg:     cfg,
		deps:    deps,
		logger:  deps.Logger.With("component", "edge"),
		tracer:  deps.TracerProvider.Tracer("github.com/sipd/sipd/edge"),
		domains: make(map[string]bool),
		jobs:    make(chan func(), cfg.QueueSize),
		ready:   make(chan struct{}),
		static:  newStaticRoutes(cfg.StaticRoutes),
		nat:     newNATTable(),
	}
	for _, d := range cfg.Domains {
		e.domains[hostOf(d)] = true
	}
	e.flowSecret = []byte(cfg.FlowSecret)
	if len(e.flowSecret) == 0 {
		e.flowSecret = make([]byte, 32)
		_, _ = rand.Read(e.flowSecret)
	}
	for _, s := range cfg.Trusted {
		p, _ := netip.ParsePrefix(s)
		e.trusted = append(e.trusted, p)
	}
	e.tx = transaction.New(transaction.Config{Timers: cfg.Timers})
	e.m = newMetrics(func() float64 { return float64(e.tx.InFlight()) })
	if err := e.m.register(deps.Registerer); err != nil {
		return nil, fmt.Errorf("registering edge metrics: %w", err)
	}
	if cfg.NAT.removeOnClose() {
		if prev := cfg.Transport.OnClose; prev != nil {
			cfg.Transport.OnClose = func(id uint64, remote netip.AddrPort) {
				prev(id, remote)
				e.connClosed(id, remote)
			}
		} else {
			cfg.Transport.OnClose = e.connClosed
		}
	}
	tl, err := transport.New(cfg.Transport, e, e.logger)
	if err != nil {
		return nil, fmt.Errorf("creating transport layer: %w", err)
	}
	e.tl = tl
	if deps.Registerer != nil {
		if err := deps.Registerer.Register(&transportCollector{stats: tl.Stats}); err != nil {
			return nil, fmt.Errorf("registering transport metrics: %w", err)
		}
	}
	e.local.Store(e.buildLocal(cfg.Transport.Listeners))
	return e, nil
}

// Run serves SIP until ctx ends, then drains: new out-of-dialog requests
// get 503 with Retry-After while the transactions already under way get
// their final responses, for at most DrainTimeout. It returns after every
// goroutine exited.
func (e *Edge) Run(ctx context.Context) error {
	inner, stop := context.WithCancel(context.Background())
	defer stop()
	g, gctx := errgroup.WithContext(inner)
	g.Go(func() error {
		select {
		case <-ctx.Done():
			e.drain(gctx)
			stop()
		case <-gctx.Done():
		}
		return nil
	})
	e.runCtx.Store(&gctx)
	g.Go(func() error { return e.tx.Run(gctx) })
	for range e.cfg.Workers {
		g.Go(func() error { e.work(gctx); return nil })
	}
	g.Go(func() error { return e.tl.Run(gctx) })
	if e.cfg.NAT.enabled() {
		g.Go(func() error { e.keepalive(gctx); return nil })
	}
	g.Go(func() error {
		select {
		case <-e.tl.Ready():
			e.initLocal()
			close(e.ready)
			e.logger.Info("edge ready", "id", e.ID(), "listeners", fmt.Sprint(e.Addrs()))
		case <-gctx.Done():
		}
		return nil
	})
	return g.Wait()
}

// Ready is closed once every listener is bound.
func (e *Edge) Ready() <-chan struct{} { return e.ready }

// Addrs lists the bound listeners (real ports once Ready is closed).
func (e *Edge) Addrs() []transport.Listener {
	return append([]transport.Listener(nil), e.local.Load().listeners...)
}

// ID identifies the edge in flows and router requests: its first
// advertised or bound address as "host:port".
func (e *Edge) ID() string { return e.local.Load().id }

// initLocal records the bound listeners once the transport is ready.
func (e *Edge) initLocal() {
	if e.bound.Load() {
		return
	}
	e.localMu.Lock()
	defer e.localMu.Unlock()
	if e.bound.Load() {
		return
	}
	e.local.Store(e.buildLocal(e.tl.Listeners()))
	e.bound.Store(true)
}

func (e *Edge) buildLocal(ls []transport.Listener) *localInfo {
	li := &localInfo{listeners: append([]transport.Listener(nil), ls...)}
	if e.cfg.Advertise != "" {
		li.advHost, li.advPort, _ = splitHostPort(e.cfg.Advertise)
		li.advHost = hostOf(li.advHost)
	}
	host, port := "127.0.0.1", 5060
	if len(ls) > 0 {
		host, port = listenerHostPort(ls[0])
	}
	if li.advHost != "" {
		host = li.advHost
		if li.advPort != 0 {
			port = li.advPort
		}
	}
	if a, err := netip.ParseAddr(host); err == nil && a.Is6() {
		host = "[" + host + "]"
	}
	li.id = host + ":" + strconv.Itoa(port)
	return li
}

// listenerHostPort is the address a listener is reached at; wildcard binds
// use the loopback address of their family.
func listenerHostPort(l transport.Listener) (string, int) {
	a := l.Addr.Addr().Unmap()
	if a.IsUnspecified() {
		if a.Is4() {
			a = netip.AddrFrom4([4]byte{127, 0, 0, 1})
		} else {
			a = netip.IPv6Loopback()
		}
	}
	return a.String(), int(l.Addr.Port())
}

// sentBy is the host and port the edge puts in Via and Record-Route for a listener.
func (li *localInfo) sentBy(l transport.Listener) (string, int) {
	h, p := listenerHostPort(l)
	if li.advHost != "" {
		h = li.advHost
		if li.advPort != 0 {
			p = li.advPort
		}
	}
	return h, p
}

// isLocalDomain reports whether host is one of the domains served here.
func (e *Edge) isLocalDomain(host string) bool {
	host = hostOf(host)
	if e.domains[host] {
		return true
	}
	li := e.local.Load()
	if li.advHost != "" && host == li.advHost {
		return true
	}
	for _, l := range li.listeners {
		if h, _ := listenerHostPort(l); h == host || l.Addr.Addr().String() == host {
			return true
		}
	}
	return false
}

// isLocal reports whether a URI's host and port name this edge: a local
// domain without a port, or a host of ours on a port we listen on.
func (e *Edge) isLocal(host string, port int) bool {
	if port == 0 {
		return e.isLocalDomain(host)
	}
	li := e.local.Load()
	host = hostOf(host)
	if li.advHost != "" && host == li.advHost && (li.advPort == 0 || li.advPort == port) {
		if li.advPort == port {
			return true
		}
	}
	for _, l := range li.listeners {
		if int(l.Addr.Port()) != port {
			continue
		}
		if li.advHost != "" && li.advPort == 0 && host == li.advHost {
			return true
		}
		a := l.Addr.Addr().Unmap()
		if a.String() == host {
			return true
		}
		if a.IsUnspecified() {
			if e.domains[host] {
				return true
			}
			if ip, err := netip.ParseAddr(host); err == nil && ip.IsLoopback() {
				return true
			}
		}
	}
	return false
}

// listenerFor picks the listener to send over proto towards to, preferring
// the same address family; ok is false when none serves proto.
func (e *Edge) listenerFor(proto transport.Proto, to netip.AddrPort) (transport.Listener, bool) {
	li := e.local.Load()
	is4 := to.Addr().Unmap().Is4()
	var any transport.Listener
	found := false
	for _, l := range li.listeners {
		if l.Proto != proto {
			continue
		}
		if l.Addr.Addr().Unmap().Is4() == is4 {
			return l, true
		}
		if !found {
			any, found = l, true
		}
	}
	if found {
		return any, true
	}
	for _, l := range li.listeners {
		if l.Addr.Addr().Unmap().Is4() == is4 {
			return transport.Listener{Proto: proto, Addr: l.Addr}, false
		}
	}
	if len(li.listeners) > 0 {
		return transport.Listener{Proto: proto, Addr: li.listeners[0].Addr}, false
	}
	return transport.Listener{Proto: proto}, false
}

// listenerOf finds the listener a message arrived on.
func (e *Edge) listenerOf(src inbound) transport.Listener {
	li := e.local.Load()
	for _, l := range li.listeners {
		if l.Proto == src.proto && l.Addr == src.local {
			return l
		}
	}
	for _, l := range li.listeners {
		if l.Proto == src.proto && l.Addr.Port() == src.local.Port() {
			return l
		}
	}
	for _, l := range li.listeners {
		if l.Proto == src.proto {
			return l
		}
	}
	return transport.Listener{Proto: src.proto, Addr: src.local}
}

// work runs queued jobs until ctx ends.
func (e *Edge) work(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case f := <-e.jobs:
			e.runJob(f)
		}
	}
}

// runJob runs a job that continues the handling of a SIP message, with the
// same panic guard as the entry point.
func (e *Edge) runJob(f func()) {
	defer func() {
		if r := recover(); r != nil {
			e.m.panics.Inc()
			e.logger.Error("panic in sip job", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		}
	}()
	f()
}

// submit queues a job for a worker; false when the queue is full.
func (e *Edge) submit(f func()) bool {
	select {
	case e.jobs <- f:
		return true
	default:
		e.m.overload.Inc()
		return false
	}
}

// ctx returns the context of Run, or a background context before Run.
func (e *Edge) ctx() context.Context {
	if p := e.runCtx.Load(); p != nil {
		return *p
	}
	return context.Background()
}

// send hands data to the transport. Its error wraps the transport's as
// ErrSend, or ErrFlowFailed for a flow whose connection is gone, without
// formatting: a failing peer must not cost a fmt.Errorf per message.
func (e *Edge) send(d transport.Dest, data []byte) error {
	err := e.tl.Send(d, data)
	if err == nil {
		return nil
	}
	if e.logger.Enabled(context.Background(), slog.LevelDebug) {
		e.logger.Debug("send failed", "dest", d.Addr.String(), "proto", d.Proto.String(), "conn_id", d.ConnID, "err", err)
	}
	if d.ConnID != 0 && !d.Addr.IsValid() && errors.Is(err, transport.ErrConnClosed) {
		return &sendError{kind: ErrFlowFailed, err: err}
	}
	return &sendError{kind: ErrSend, err: err}
}

// sendError is a send failure: kind (ErrSend or ErrFlowFailed) and the
// transport's error, both matched by errors.Is.
type sendError struct{ kind, err error }

func (s *sendError) Error() string   { return s.kind.Error() + ": " + s.err.Error() }
func (s *sendError) Unwrap() []error { return []error{s.kind, s.err} }

// replyStateless answers req without a transaction.
func (e *Edge) replyStateless(req *sip.Request, src inbound, code int, reason string, extra ...sip.Header) {
	if req.Method == sip.ACK || req.Via() == nil {
		return
	}
	res := buildResponse(req, code, reason, extra...)
	e.m.response(code)
	_ = e.send(responseDest(req, src), []byte(res.String()))
}

// retryAfterHeader is the Retry-After sent with 503.
func retryAfterHeader(secs int) sip.Header {
	return sip.NewHeader("Retry-After", strconv.Itoa(secs))
}

// drain refuses new work and waits until no proxied transaction awaits
// its final response, or DrainTimeout passes, or gctx ends.
func (e *Edge) drain(gctx context.Context) {
	e.draining.Store(true)
	if e.cfg.DrainTimeout <= 0 {
		return
	}
	start := time.Now()
	deadline := time.NewTimer(e.cfg.DrainTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for e.pending.Load() > 0 {
		select {
		case <-deadline.C:
			e.logger.Warn("drain timed out", "pending", e.pending.Load(), "waited", time.Since(start))
			return
		case <-gctx.Done():
			return
		case <-tick.C:
		}
	}
	e.logger.Info("drained", "waited", time.Since(start))
}
