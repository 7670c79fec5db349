package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"time"
)

// udpListener is one UDP listener: one or more sockets bound to the same
// address with SO_REUSEPORT, each read by its own goroutine. Replies may
// leave from any of them, since they share the address.
type udpListener struct {
	local netip.AddrPort
	socks []*udpSocket
	next  atomic.Uint32 // round robin over socks for sending
}

// udpSocket is one bound UDP socket.
type udpSocket struct {
	conn  *net.UDPConn
	local netip.AddrPort
}

// sender returns the socket to send the next datagram from.
func (u *udpListener) sender() *udpSocket {
	if len(u.socks) == 1 {
		return u.socks[0]
	}
	return u.socks[int(u.next.Add(1)%uint32(len(u.socks)))]
}

func (u *udpListener) close() {
	for _, s := range u.socks {
		_ = s.conn.Close()
	}
}

// bindUDP binds cfg.UDPSockets sockets to lis (the first one picks the port
// when lis has port 0) and sizes their buffers.
func (l *Layer) bindUDP(ctx context.Context, network string, lis Listener) (*udpListener, error) {
	var lc net.ListenConfig
	n := l.cfg.UDPSockets
	if n > 1 {
		lc.Control = setReuseport
	}
	u := &udpListener{}
	addr := lis.Addr
	for i := range n {
		pc, err := lc.ListenPacket(ctx, network, addr.String())
		if err != nil {
			u.close()
			return nil, fmt.Errorf("binding socket %d of %d: %w", i+1, n, err)
		}
		uc := pc.(*net.UDPConn)
		s := &udpSocket{conn: uc, local: addrPortOf(uc.LocalAddr())}
		if i == 0 {
			u.local, addr = s.local, s.local
		}
		l.setBuffer(s, "SO_RCVBUF", l.cfg.UDPReadBuffer, uc.SetReadBuffer, true, i == 0)
		l.setBuffer(s, "SO_SNDBUF", l.cfg.UDPWriteBuffer, uc.SetWriteBuffer, false, i == 0)
		u.socks = append(u.socks, s)
	}
	return u, nil
}

// setBuffer asks for a socket buffer size; when the kernel caps it, it
// retries with the FORCE option (CAP_NET_ADMIN) and warns (once per
// listener) if it still gets less. Failing is not fatal: the socket works
// with what it has.
func (l *Layer) setBuffer(s *udpSocket, name string, want int, set func(int) error, read, warn bool) {
	sysctl := "net.core.wmem_max"
	if read {
		sysctl = "net.core.rmem_max"
	}
	if err := set(want); err != nil {
		if warn {
			l.logger.Warn("setting udp socket buffer", "option", name, "bytes", want, "listener", s.local.String(), "err", err)
		}
		return
	}
	got, ok := sockBuffer(s.conn, read)
	if !ok || got >= want {
		return
	}
	if forceBuffer(s.conn, read, want) == nil {
		if got, ok = sockBuffer(s.conn, read); ok && got >= want {
			return
		}
	}
	if warn {
		l.logger.Warn("kernel capped the udp socket buffer: raise "+sysctl+" or grant CAP_NET_ADMIN",
			"option", name, "requested", want, "granted", got, "sysctl", sysctl, "listener", s.local.String())
	}
}

// readUDP reads datagrams from s until it is closed. Its buffer is reused for
// every datagram.
func (l *Layer) readUDP(ctx context.Context, s *udpSocket) {
	maxSize := l.cfg.MaxMessageSize
	buf := make([]byte, maxSize+1) // one more byte tells an oversized datagram
	var wait time.Duration
	for {
		n, src, err := s.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return
			}
			l.logger.Warn("reading udp", "listener", s.local.String(), "err", err)
			if !backoff(ctx, &wait) {
				return
			}
			continue
		}
		wait = 0
		if n > maxSize {
			l.stats.dropped.Add(1)
			l.logger.Debug("dropping oversized datagram", "source", src.String(), "max_message_size", maxSize)
			continue
		}
		data := buf[:n]
		if isBlank(data) {
			continue // a keep-alive
		}
		l.stats.received.Add(1)
		l.h.HandleMessage(Message{
			Data:   data,
			Proto:  UDP,
			Source: unmapAddrPort(src),
			Local:  s.local,
		})
	}
}

// isBlank reports whether a datagram holds only CR, LF, space and tab.
func isBlank(b []byte) bool {
	for _, c := range b {
		if c != '\r' && c != '\n' && c != ' ' && c != '\t' {
			return false
		}
	}
	return true
}

func (l *Layer) sendUDP(d Dest, data []byte) error {
	to := unmapAddrPort(d.Addr)
	if !to.IsValid() {
		return fmt.Errorf("sending udp: %w: no address", ErrBadDest)
	}
	s := l.udpSocketFor(to, unmapAddrPort(d.Local))
	if s == nil {
		return fmt.Errorf("sending udp to %s: %w", to, ErrNoListener)
	}
	if _, err := s.conn.WriteToUDPAddrPort(data, to); err != nil {
		if errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("sending udp to %s: %w", to, ErrNotRunning)
		}
		return fmt.Errorf("sending udp to %s: %w", to, err)
	}
	return nil
}

// udpSocketFor picks the socket to send to from: one of the listener bound
// at local if any (an exact match, else a wildcard bind on local's port),
// else one of the first listener of to's address family.
func (l *Layer) udpSocketFor(to, local netip.AddrPort) *udpSocket {
	b := l.bound.Load()
	if b == nil {
		return nil
	}
	is4 := to.Addr().Is4()
	if local.IsValid() && local.Addr().Is4() == is4 {
		for _, u := range b.udp {
			if u.local == local {
				return u.sender()
			}
		}
		for _, u := range b.udp {
			if u.local.Port() == local.Port() && u.local.Addr().IsUnspecified() && u.local.Addr().Is4() == is4 {
				return u.sender()
			}
		}
	}
	for _, u := range b.udp {
		if u.local.Addr().Is4() == is4 {
			return u.sender()
		}
	}
	return nil
}
