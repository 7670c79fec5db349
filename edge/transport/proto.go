package transport

import (
	"fmt"
	"net/netip"
	"strings"
)

// Proto is a SIP transport protocol, as named in a Via header.
type Proto uint8

// The transport protocols.
const (
	UDP Proto = iota + 1
	TCP
	TLS
	WS
	WSS
)

var protoNames = [...]string{UDP: "UDP", TCP: "TCP", TLS: "TLS", WS: "WS", WSS: "WSS"}

// String returns the protocol's name as written in a Via header ("UDP", "TCP", ...).
func (p Proto) String() string {
	if p >= UDP && p <= WSS {
		return protoNames[p]
	}
	return fmt.Sprintf("Proto(%d)", uint8(p))
}

// Reliable reports whether the protocol is a reliable stream (everything but UDP).
func (p Proto) Reliable() bool { return p != UDP }

func (p Proto) valid() bool { return p >= UDP && p <= WSS }

// MarshalText implements encoding.TextMarshaler with the lowercase name.
func (p Proto) MarshalText() ([]byte, error) {
	if !p.valid() {
		return nil, fmt.Errorf("%w: %d", ErrBadProto, uint8(p))
	}
	return []byte(strings.ToLower(p.String())), nil
}

// UnmarshalText implements encoding.TextUnmarshaler using ParseProto.
func (p *Proto) UnmarshalText(b []byte) error {
	v, err := ParseProto(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// ParseProto parses a protocol name case-insensitively: "udp", "TCP", "tls", "ws", "wss".
func ParseProto(s string) (Proto, error) {
	for p := UDP; p <= WSS; p++ {
		if strings.EqualFold(s, protoNames[p]) {
			return p, nil
		}
	}
	return 0, fmt.Errorf("%w: %q", ErrBadProto, s)
}

// Listener is one address to listen on, written "udp:127.0.0.1:5060" or "tcp:[::1]:5060".
type Listener struct {
	Proto Proto
	Addr  netip.AddrPort
}

// ParseListener parses "proto:address:port", for example "udp:127.0.0.1:5060"
// or "tcp:[::1]:5060". Without a port, the SIP default applies (5060, or 5061
// for TLS and WSS). IPv4-mapped IPv6 addresses are turned into IPv4.
func ParseListener(s string) (Listener, error) {
	ps, rest, ok := strings.Cut(s, ":")
	if !ok {
		return Listener{}, fmt.Errorf("%w: %q has no protocol (want e.g. udp:127.0.0.1:5060)", ErrBadListener, s)
	}
	p, err := ParseProto(ps)
	if err != nil {
		return Listener{}, fmt.Errorf("%w: %q: %w", ErrBadListener, s, err)
	}
	ap, err := netip.ParseAddrPort(rest)
	if err != nil {
		// No port: "udp:127.0.0.1", "tcp:[::1]" or "tcp:::1".
		a, aerr := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(rest, "["), "]"))
		if aerr != nil {
			return Listener{}, fmt.Errorf("%w: %q: %w", ErrBadListener, s, err)
		}
		port := uint16(5060)
		if p == TLS || p == WSS {
			port = 5061
		}
		ap = netip.AddrPortFrom(a, port)
	}
	return Listener{Proto: p, Addr: unmapAddrPort(ap)}, nil
}

// String formats the listener as ParseListener reads it: "udp:127.0.0.1:5060".
func (l Listener) String() string {
	return strings.ToLower(l.Proto.String()) + ":" + l.Addr.String()
}

// MarshalText implements encoding.TextMarshaler, so listeners read and write
// as strings in YAML and JSON.
func (l Listener) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler using ParseListener.
func (l *Listener) UnmarshalText(b []byte) error {
	v, err := ParseListener(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// unmapAddrPort turns an IPv4-mapped IPv6 address into IPv4, keeping the port.
func unmapAddrPort(ap netip.AddrPort) netip.AddrPort {
	if ap.Addr().Is4In6() {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return ap
}
