package edge

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/sipd/sipd/edge/transaction"
	"github.com/sipd/sipd/edge/transport"
)

// Timers are the SIP protocol timers (RFC 3261 table 4) and the proxy's
// final-response timeouts.
type Timers = transaction.Timers

// Config configures the edge. The zero value plus SetDefaults listens for
// UDP and TCP on port 5060 of every IPv4 and IPv6 address.
type Config struct {
	// Listen lists the addresses to listen on as transport:host:port, e.g.
	// "udp:0.0.0.0:5060" or "tcp:[::1]:5060". Port 0 picks a free port.
	Listen []string `yaml:"listen"`
	// Advertise is the host[:port] put in Record-Route and Via; empty uses
	// each listener's own address (127.0.0.1 or ::1 for wildcard binds).
	Advertise string `yaml:"advertise"`
	// Domains are the SIP domains served locally: REGISTER is accepted for
	// them, and requests to them are routed. Every listener and advertised
	// address is local too.
	Domains []string `yaml:"domains"`
	// Trusted lists CIDRs whose requests need no authentication.
	Trusted []string `yaml:"trusted"`
	// ServiceTimeout is the deadline of each gRPC call to registrar and router.
	ServiceTimeout time.Duration `yaml:"service_timeout"`
	// Timers are the SIP timers: t1, t2, t4, invite_timeout (fr_inv_timer:
	// wait for a final response after a provisional) and final_timeout
	// (fr_timer, Timers B and F: wait for any response).
	Timers Timers `yaml:"timers"`
	// Workers is the number of goroutines that make gRPC calls.
	Workers int `yaml:"workers"`
	// QueueSize bounds the requests waiting for a worker; past it requests
	// get 503 with Retry-After.
	QueueSize int `yaml:"queue_size"`
	// MaxTransactions bounds live transactions; past it new requests get 503.
	MaxTransactions int `yaml:"max_transactions"`
	// DrainTimeout is how long the edge keeps serving the transactions it
	// has after SIGTERM, while new out-of-dialog requests get 503 with
	// Retry-After. Default 5s; 0 keeps the default, a negative value stops
	// at once.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	// Transport tunes the transports: max_message_size, udp_read_buffer,
	// udp_write_buffer (bytes), tcp_idle_timeout, max_connections,
	// dial_timeout and write_timeout. Its listeners come from Listen.
	Transport transport.Config `yaml:"transport"`
	// StaticRoutes forward initial requests for a domain ("*": every
	// non-local domain) to a fixed next hop without asking the router,
	// record-routing; requests no route matches go to the router.
	StaticRoutes []StaticRoute `yaml:"static_routes"`
	// FlowSecret signs the flow tokens the edge puts in Path and
	// Record-Route (RFC 5626), so that they cannot be forged. Empty picks a
	// random secret at start: tokens then stop working when the edge
	// restarts (TCP flows end then anyway; UDP contacts register again).
	FlowSecret string `yaml:"flow_secret"`
	// NAT configures keep-alives to the NATed UDP contacts this edge
	// registered (keepalive: options, crlf or off; interval; max_lost) and
	// the removal of contacts whose TCP/TLS connection closed
	// (remove_on_close). See nat.go.
	NAT NATConfig `yaml:"nat"`
}

// Defaults of Config.
const (
	DefaultServiceTimeout  = time.Second
	DefaultQueueSize       = 10000
	DefaultMaxTransactions = 200000
	DefaultDrainTimeout    = 5 * time.Second
	// retryAfter is the Retry-After sent with 503 on overload or a service failure.
	retryAfter = 5
)

// SetDefaults fills zero values.
func (c *Config) SetDefaults() {
	if len(c.Listen) == 0 {
		c.Listen = []string{"udp:0.0.0.0:5060", "tcp:0.0.0.0:5060", "udp:[::]:5060", "tcp:[::]:5060"}
	}
	if c.Domains == nil {
		c.Domains = []string{"localhost", "127.0.0.1"}
	}
	if c.Trusted == nil {
		c.Trusted = []string{"127.0.0.0/8", "::1/128"}
	}
	if c.ServiceTimeout == 0 {
		c.ServiceTimeout = DefaultServiceTimeout
	}
	c.Timers.SetDefaults()
	if c.Workers == 0 {
		c.Workers = max(64, 32*runtime.GOMAXPROCS(0))
	}
	if c.QueueSize == 0 {
		c.QueueSize = DefaultQueueSize
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.MaxTransactions == 0 {
		c.MaxTransactions = DefaultMaxTransactions
	}
	if len(c.Transport.Listeners) == 0 {
		for _, s := range c.Listen {
			if l, err := transport.ParseListener(s); err == nil {
				c.Transport.Listeners = append(c.Transport.Listeners, l)
			}
		}
	}
	c.Transport.SetDefaults()
	c.NAT.SetDefaults()
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if len(c.Listen) == 0 {
		errs = append(errs, errors.New("listen must not be empty"))
	}
	for i, s := range c.Listen {
		if _, err := transport.ParseListener(s); err != nil {
			errs = append(errs, fmt.Errorf("listen[%d] (%q): %w", i, s, err))
		}
	}
	if c.Advertise != "" {
		if _, _, err := splitHostPort(c.Advertise); err != nil {
			errs = append(errs, fmt.Errorf("advertise (%q): %w", c.Advertise, err))
		}
	}
	for i, d := range c.Domains {
		if d == "" || strings.ContainsAny(d, " \t;:@<>") && !isIPv6Literal(d) {
			errs = append(errs, fmt.Errorf("domains[%d] (%q) is not a host name or address", i, d))
		}
	}
	for i, s := range c.Trusted {
		if _, err := netip.ParsePrefix(s); err != nil {
			errs = append(errs, fmt.Errorf("trusted[%d] (%q) is not a CIDR: %w", i, s, err))
		}
	}
	if c.ServiceTimeout <= 0 {
		errs = append(errs, fmt.Errorf("service_timeout (%s) must be > 0", c.ServiceTimeout))
	}
	t := c.Timers
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"t1", t.T1}, {"t2", t.T2}, {"t4", t.T4}, {"invite_timeout", t.InviteTimeout}, {"final_timeout", t.FinalTimeout}} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("timers.%s (%s) must be > 0", d.name, d.v))
		}
	}
	if t.T1 > 0 && t.T2 < t.T1 {
		errs = append(errs, fmt.Errorf("timers.t2 (%s) must be >= timers.t1 (%s)", t.T2, t.T1))
	}
	if c.ServiceTimeout > 0 && t.FinalTimeout > 0 && c.ServiceTimeout >= t.FinalTimeout {
		errs = append(errs, fmt.Errorf("service_timeout (%s) must be < timers.final_timeout (%s)", c.ServiceTimeout, t.FinalTimeout))
	}
	if c.Workers <= 0 {
		errs = append(errs, fmt.Errorf("workers (%d) must be > 0", c.Workers))
	}
	if c.QueueSize <= 0 {
		errs = append(errs, fmt.Errorf("queue_size (%d) must be > 0", c.QueueSize))
	}
	if c.MaxTransactions <= 0 {
		errs = append(errs, fmt.Errorf("max_transactions (%d) must be > 0", c.MaxTransactions))
	}
	errs = append(errs, validateStaticRoutes(c.StaticRoutes)...)
	if err := c.NAT.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Transport.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("transport: %w", err))
	}
	return errors.Join(errs...)
}

func isIPv6Literal(s string) bool {
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	a, err := netip.ParseAddr(s)
	return err == nil && a.Is6()
}

// splitHostPort splits "host", "host:port", "[v6]" or "[v6]:port"; port 0
// means absent.
func splitHostPort(s string) (string, int, error) {
	if s == "" {
		return "", 0, errors.New("empty address")
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		return s[1 : len(s)-1], 0, nil
	}
	if strings.Count(s, ":") > 1 && !strings.HasPrefix(s, "[") {
		return s, 0, nil // bare IPv6
	}
	if !strings.Contains(s, ":") {
		return s, 0, nil
	}
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port <= 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	return h, port, nil
}
