package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Errors returned by the transport layer.
var (
	ErrBadProto         = errors.New("transport: unknown protocol")
	ErrBadListener      = errors.New("transport: bad listener")
	ErrUnsupportedProto = errors.New("transport: protocol not supported")
	ErrNoListener       = errors.New("transport: no listener to send from")
	ErrConnClosed       = errors.New("transport: connection closed")
	ErrNotRunning       = errors.New("transport: layer not running")
	ErrAlreadyRunning   = errors.New("transport: run called twice")
	ErrTooManyConns     = errors.New("transport: too many connections")
	ErrBadDest          = errors.New("transport: bad destination")
	ErrWriteTimeout     = errors.New("transport: write timed out")
	ErrNilHandler       = errors.New("transport: nil handler")
	ErrBadContentLength = errors.New("transport: bad content-length")
	ErrHeaderTooLarge   = errors.New("transport: header section too large")
	ErrMessageTooLarge  = errors.New("transport: message too large")
	ErrTLSConfig        = errors.New("transport: tls configuration")
)

// Message is one complete SIP message as received. Data is valid only during
// the HandleMessage call (the transport reuses the buffer); the handler copies
// what it keeps. For a stream whose framing failed (bad or oversized
// Content-Length, header section over the limit), FramingErr is set, Data
// holds what was read of the header section, and the transport closes the
// connection after HandleMessage returns, so the core can answer 400 first by
// Send with ConnID.
type Message struct {
	Data   []byte
	Proto  Proto
	Source netip.AddrPort
	// Local is the listener's bound address; for an outbound connection, the
	// connection's local address.
	Local netip.AddrPort
	// ConnID is 0 for UDP, else unique per connection within this process.
	ConnID     uint64
	FramingErr error
}

// Handler receives messages. It is called from the reading goroutine of a
// socket or connection, so it must not block for long (the core hands slow
// work to its own bounded workers).
type Handler interface {
	HandleMessage(m Message)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(m Message)

// HandleMessage calls f(m).
func (f HandlerFunc) HandleMessage(m Message) { f(m) }

// Dest says where to send.
type Dest struct {
	Proto Proto
	Addr  netip.AddrPort
	// ConnID, for reliable transports, names a connection to reuse if it is
	// still open.
	ConnID uint64
	// Local optionally prefers the listener bound at this address.
	Local netip.AddrPort
	// Host, for TLS, is the host name the destination was resolved from:
	// the server's certificate is verified against it (and it is sent as
	// SNI). Empty verifies against the IP address.
	Host string
}

// Stats are the layer's counters, for metrics.
type Stats struct {
	Connections   int    // open stream connections, inbound and outbound
	Accepted      uint64 // stream connections accepted
	Dialed        uint64 // stream connections dialled
	DialFailures  uint64 // dials that failed
	Refused       uint64 // accepted connections closed at once for MaxConnections
	Dropped       uint64 // datagrams dropped (larger than MaxMessageSize)
	IdleClosed    uint64 // connections closed for TCPIdleTimeout
	FramingErrors uint64 // streams closed for a framing error
	KeepAlives    uint64 // double-CRLF keep-alives answered
	Parked        int    // idle connections parked without a reading goroutine
	TLSErrors     uint64 // TLS handshakes and WebSocket upgrades that failed
	Received      uint64 // messages handed to the Handler
	Sent          uint64 // messages sent
	SendErrors    uint64 // sends that failed
}

type counters struct {
	accepted, dialed, dialFailures, refused, dropped atomic.Uint64
	idleClosed, framingErrors, keepAlives, tlsErrors atomic.Uint64
	received, sent, sendErrors                       atomic.Uint64
}

// bound is what Run bound, published once before Ready closes.
type bound struct {
	listeners []Listener
	udp       []*udpListener
	streams   []*streamListener
}

func (b *bound) close() {
	for _, u := range b.udp {
		u.close()
	}
	for _, t := range b.streams {
		_ = t.ln.Close()
	}
}

// Layer is the transport layer: it owns the listeners, the connection table
// and every reading goroutine.
type Layer struct {
	cfg    Config
	h      Handler
	logger *slog.Logger

	started atomic.Bool
	ready   chan struct{}
	bound   atomic.Pointer[bound]
	nextID  atomic.Uint64
	stats   counters
	conns   *connTable

	// Set by Run before any connection exists, read-only afterwards.
	poll      *poller // parks idle TCP connections; nil where unsupported
	parkAfter time.Duration
	certs     *certStore  // nil without a certificate configured
	tlsServer *tls.Config // for TLS and WSS listeners
	rootCAs   *x509.CertPool

	mu      sync.Mutex // guards the fields below
	running bool       // Run has bound and not yet begun closing
	ctx     context.Context
	wg      sync.WaitGroup // reading goroutines; Add under mu while running, or from a counted goroutine
}

// DefaultParkAfter is how long a plain TCP connection may receive nothing
// before its reading goroutine and buffer are released.
const DefaultParkAfter = time.Second

// New returns a Layer for cfg (zero values take their defaults) that hands
// received messages to h. It does no I/O. A nil logger means slog.Default().
func New(cfg Config, h Handler, logger *slog.Logger) (*Layer, error) {
	cfg.SetDefaults()
	cfg.Listeners = append([]Listener(nil), cfg.Listeners...)
	for i, l := range cfg.Listeners {
		cfg.Listeners[i].Addr = unmapAddrPort(l.Addr)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("validating transport config: %w", err)
	}
	if h == nil {
		return nil, ErrNilHandler
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Layer{
		cfg:       cfg,
		h:         h,
		logger:    logger,
		ready:     make(chan struct{}),
		conns:     newConnTable(),
		parkAfter: DefaultParkAfter,
	}, nil
}

// Ready returns a channel closed once every listener is bound. It never
// closes if binding fails.
func (l *Layer) Ready() <-chan struct{} { return l.ready }

// Listeners returns the bound addresses, with the real ports of listeners
// configured with port 0. It returns nil before Ready.
func (l *Layer) Listeners() []Listener {
	b := l.bound.Load()
	if b == nil {
		return nil
	}
	return append([]Listener(nil), b.listeners...)
}

// Stats returns the current counters.
func (l *Layer) Stats() Stats {
	n := l.conns.len()
	parked := 0
	if l.poll != nil && l.bound.Load() != nil {
		parked = l.poll.parkedCount()
	}
	s := &l.stats
	return Stats{
		Connections:   n,
		Accepted:      s.accepted.Load(),
		Dialed:        s.dialed.Load(),
		DialFailures:  s.dialFailures.Load(),
		Refused:       s.refused.Load(),
		Dropped:       s.dropped.Load(),
		IdleClosed:    s.idleClosed.Load(),
		FramingErrors: s.framingErrors.Load(),
		KeepAlives:    s.keepAlives.Load(),
		Parked:        parked,
		TLSErrors:     s.tlsErrors.Load(),
		Received:      s.received.Load(),
		Sent:          s.sent.Load(),
		SendErrors:    s.sendErrors.Load(),
	}
}

// Run binds every listener, serves until ctx ends, then closes every socket
// and connection and returns after all of its goroutines have exited. It
// returns an error naming the listener if one cannot be bound, or naming
// the file if the TLS certificate cannot be loaded, and nil after ctx ends.
func (l *Layer) Run(ctx context.Context) error {
	if !l.started.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	if err := l.setupTLS(); err != nil {
		return err
	}
	b, err := l.bind(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if p, err := newPoller(l); err != nil {
		l.logger.Warn("idle connections will not be parked", "err", err)
	} else {
		l.poll = p
	}

	l.mu.Lock()
	l.running = true
	l.ctx = ctx
	for _, u := range b.udp {
		for _, s := range u.socks {
			l.wg.Go(func() { l.readUDP(ctx, s) })
		}
	}
	for _, t := range b.streams {
		l.wg.Go(func() { l.accept(ctx, t) })
	}
	if l.poll != nil {
		l.poll.start(ctx, &l.wg)
	}
	l.mu.Unlock()

	l.bound.Store(b)
	close(l.ready)
	for _, lis := range b.listeners {
		l.logger.Info("transport listening", "listener", lis.String())
	}

	<-ctx.Done()

	l.mu.Lock()
	l.running = false
	l.mu.Unlock()
	b.close()
	for _, c := range l.conns.all() {
		l.closeConn(c)
	}
	l.wg.Wait()
	if l.poll != nil {
		l.poll.close()
	}
	l.logger.Info("transport stopped")
	return nil
}

// bind opens every listener, closing those already open if one fails.
func (l *Layer) bind(ctx context.Context) (*bound, error) {
	b := &bound{}
	fail := func(lis Listener, err error) (*bound, error) {
		b.close()
		return nil, fmt.Errorf("binding listener %s: %w", lis, err)
	}
	var lc net.ListenConfig
	if l.cfg.TCPReuseport {
		lc.Control = setReuseport
	}
	for _, lis := range l.cfg.Listeners {
		network := "4"
		if !lis.Addr.Addr().Is4() {
			network = "6" // the socket is v6-only, so [::] and 0.0.0.0 can share a port
		}
		switch lis.Proto {
		case UDP:
			u, err := l.bindUDP(ctx, "udp"+network, lis)
			if err != nil {
				return fail(lis, err)
			}
			b.udp = append(b.udp, u)
			b.listeners = append(b.listeners, Listener{Proto: UDP, Addr: u.local})
		case TCP, TLS, WS, WSS:
			ln, err := lc.Listen(ctx, "tcp"+network, lis.Addr.String())
			if err != nil {
				return fail(lis, err)
			}
			t := &streamListener{ln: ln, proto: lis.Proto, local: addrPortOf(ln.Addr())}
			b.streams = append(b.streams, t)
			b.listeners = append(b.listeners, Listener{Proto: lis.Proto, Addr: t.local})
		default:
			return fail(lis, ErrUnsupportedProto)
		}
	}
	return b, nil
}

// Send sends data, one complete SIP message, to d. It is safe for
// concurrent use.
//
// Over UDP it sends from (one of the sockets of) the listener bound at
// d.Local if there is one, else from the first UDP listener of d.Addr's
// address family. Over TCP and TLS it writes on connection d.ConnID if still
// open, else on the newest open connection to d.Addr, else on a new
// connection dialled within DialTimeout (which is then read from like an
// accepted one; TLS verifies the server's certificate against d.Host, or
// the address). Over WS and WSS it writes one frame on the connection the
// client opened, and fails with ErrConnClosed when there is none. Writes on
// one connection are serialised, and one Send waits at most WriteTimeout
// for its write. d.Local is not used for streams: dialled connections take
// an ephemeral local port.
func (l *Layer) Send(d Dest, data []byte) error {
	var err error
	switch d.Proto {
	case UDP:
		err = l.sendUDP(d, data)
	case TCP, TLS, WS, WSS:
		err = l.sendStream(d, data)
	default:
		if d.Proto.valid() {
			err = fmt.Errorf("sending over %s: %w", d.Proto, ErrUnsupportedProto)
		} else {
			err = fmt.Errorf("sending: %w: %d", ErrBadProto, uint8(d.Proto))
		}
	}
	if err != nil {
		l.stats.sendErrors.Add(1)
		return err
	}
	l.stats.sent.Add(1)
	return nil
}

// addrPortOf returns a socket address as an unmapped netip.AddrPort.
func addrPortOf(a net.Addr) netip.AddrPort {
	var ap netip.AddrPort
	switch a := a.(type) {
	case *net.UDPAddr:
		ap = a.AddrPort()
	case *net.TCPAddr:
		ap = a.AddrPort()
	}
	return unmapAddrPort(ap)
}

// backoff waits d (doubled for the next call, up to a second) or until ctx
// ends, reporting whether ctx is still live. It paces retries after errors
// that may last, such as running out of file descriptors.
func backoff(ctx context.Context, d *time.Duration) bool {
	if *d == 0 {
		*d = 5 * time.Millisecond
	} else {
		*d = min(2**d, time.Second)
	}
	t := time.NewTimer(*d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }
