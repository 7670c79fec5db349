package transport

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"time"
)

// Defaults and bounds for Config.
const (
	DefaultMaxMessageSize = 65535
	DefaultUDPBuffer      = 8 << 20
	DefaultTCPIdleTimeout = 10 * time.Minute
	DefaultMaxConnections = 10000
	DefaultDialTimeout    = 2 * time.Second
	DefaultWriteTimeout   = 2 * time.Second

	minMessageSize = 1024
	maxMessageSize = 16 << 20
	maxSockBuffer  = 1 << 30
	maxUDPSockets  = 256
)

// Config configures the transport layer.
type Config struct {
	// Listeners are the addresses to listen on, e.g. "udp:0.0.0.0:5060",
	// "tcp:[::]:5060". IPv4 and IPv6 sockets are separate (the IPv6 socket is
	// v6-only), so 0.0.0.0:5060 and [::]:5060 can both be listed.
	Listeners []Listener `yaml:"-"`
	// MaxMessageSize is the largest SIP message accepted, in bytes (default
	// 65535). Larger datagrams are dropped; on a stream, a larger message (or
	// header section) is a framing error and closes the connection.
	MaxMessageSize int `yaml:"max_message_size"`
	// UDPReadBuffer is the SO_RCVBUF size asked for on each UDP socket, in
	// bytes (default 8 MiB). When the kernel caps it (net.core.rmem_max on
	// Linux) the layer retries with SO_RCVBUFFORCE, which needs
	// CAP_NET_ADMIN, and logs a warning if it still gets less.
	UDPReadBuffer int `yaml:"udp_read_buffer"`
	// UDPWriteBuffer is the SO_SNDBUF size asked for on each UDP socket, in
	// bytes (default 8 MiB; capped by net.core.wmem_max likewise).
	UDPWriteBuffer int `yaml:"udp_write_buffer"`
	// UDPSockets is the number of sockets bound to each UDP listener with
	// SO_REUSEPORT, each with its own reading goroutine; the kernel spreads
	// datagrams across them by source address (default GOMAXPROCS; 1 where
	// SO_REUSEPORT is not available).
	UDPSockets int `yaml:"udp_sockets"`
	// TCPReuseport sets SO_REUSEPORT on TCP, TLS, WS and WSS listeners, so
	// several edge processes can listen on the same address and the kernel
	// spreads new connections across them.
	TCPReuseport bool `yaml:"tcp_reuseport"`
	// TCPIdleTimeout closes a connection that received nothing for this long
	// (default 10m).
	TCPIdleTimeout time.Duration `yaml:"tcp_idle_timeout"`
	// MaxConnections bounds open stream connections, inbound and outbound
	// (default 10000). Connections accepted past it are closed at once, and
	// dials past it fail.
	MaxConnections int `yaml:"max_connections"`
	// DialTimeout bounds opening an outbound connection (default 2s).
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// WriteTimeout bounds one send on a connection, including waiting for
	// other writers on it (default 2s).
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// TLS configures TLS and WSS listeners and outbound TLS.
	TLS TLSConfig `yaml:"tls"`
	// WSPath, when set, is the only HTTP path WS and WSS listeners upgrade
	// (default: any path).
	WSPath string `yaml:"ws_path"`
	// OnClose, when set, is called once for every stream connection that
	// closes, after it left the connection table, from the goroutine that
	// closed it; it must not block.
	OnClose func(connID uint64, remote netip.AddrPort) `yaml:"-"`
}

// SetDefaults fills zero values with the defaults.
func (c *Config) SetDefaults() {
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	if c.UDPReadBuffer == 0 {
		c.UDPReadBuffer = DefaultUDPBuffer
	}
	if c.UDPWriteBuffer == 0 {
		c.UDPWriteBuffer = DefaultUDPBuffer
	}
	if c.TCPIdleTimeout == 0 {
		c.TCPIdleTimeout = DefaultTCPIdleTimeout
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = DefaultMaxConnections
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.UDPSockets == 0 {
		c.UDPSockets = runtime.GOMAXPROCS(0)
		if !reuseportSupported {
			c.UDPSockets = 1
		}
	}
	c.TLS.setDefaults()
}

// Validate reports every problem in c at once. Call SetDefaults first.
func (c Config) Validate() error {
	var errs []error
	if len(c.Listeners) == 0 {
		errs = append(errs, errors.New("listeners must not be empty"))
	}
	seen := make(map[Listener]bool, len(c.Listeners))
	for i, l := range c.Listeners {
		switch {
		case !l.Proto.valid():
			errs = append(errs, fmt.Errorf("listeners[%d] (%s): unknown protocol %d", i, l, uint8(l.Proto)))
		case !l.Addr.IsValid():
			errs = append(errs, fmt.Errorf("listeners[%d] (%s): address is not set", i, l))
		case seen[l]:
			errs = append(errs, fmt.Errorf("listeners[%d] (%s) is listed twice", i, l))
		}
		seen[l] = true
	}
	if c.MaxMessageSize < minMessageSize || c.MaxMessageSize > maxMessageSize {
		errs = append(errs, fmt.Errorf("max_message_size (%d) must be between %d and %d", c.MaxMessageSize, minMessageSize, maxMessageSize))
	}
	if c.UDPReadBuffer <= 0 || c.UDPReadBuffer > maxSockBuffer {
		errs = append(errs, fmt.Errorf("udp_read_buffer (%d) must be > 0 and <= %d", c.UDPReadBuffer, maxSockBuffer))
	}
	if c.UDPWriteBuffer <= 0 || c.UDPWriteBuffer > maxSockBuffer {
		errs = append(errs, fmt.Errorf("udp_write_buffer (%d) must be > 0 and <= %d", c.UDPWriteBuffer, maxSockBuffer))
	}
	if c.TCPIdleTimeout <= 0 {
		errs = append(errs, fmt.Errorf("tcp_idle_timeout (%s) must be > 0", c.TCPIdleTimeout))
	}
	if c.MaxConnections <= 0 {
		errs = append(errs, fmt.Errorf("max_connections (%d) must be > 0", c.MaxConnections))
	}
	if c.DialTimeout <= 0 {
		errs = append(errs, fmt.Errorf("dial_timeout (%s) must be > 0", c.DialTimeout))
	}
	if c.WriteTimeout <= 0 {
		errs = append(errs, fmt.Errorf("write_timeout (%s) must be > 0", c.WriteTimeout))
	}
	if c.UDPSockets < 1 || c.UDPSockets > maxUDPSockets {
		errs = append(errs, fmt.Errorf("udp_sockets (%d) must be between 1 and %d", c.UDPSockets, maxUDPSockets))
	} else if c.UDPSockets > 1 && !reuseportSupported {
		errs = append(errs, fmt.Errorf("udp_sockets (%d) must be 1: SO_REUSEPORT is not available here", c.UDPSockets))
	}
	if c.TCPReuseport && !reuseportSupported {
		errs = append(errs, errors.New("tcp_reuseport (true): SO_REUSEPORT is not available here"))
	}
	needTLS := false
	for _, l := range c.Listeners {
		needTLS = needTLS || l.Proto == TLS || l.Proto == WSS
	}
	errs = append(errs, c.TLS.validate(needTLS)...)
	if c.WSPath != "" && c.WSPath[0] != '/' {
		errs = append(errs, fmt.Errorf("ws_path (%q) must start with /", c.WSPath))
	}
	return errors.Join(errs...)
}
