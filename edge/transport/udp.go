package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// udpSocket is one bound UDP listener.
type udpSocket struct {
	conn  *net.UDPConn
	local netip.AddrPort
}

func (l *Layer) bindUDP(ctx context.Context, lc *net.ListenConfig, network string, lis Listener) (*udpSocket, error) {
	pc, err := lc.ListenPacket(ctx, network, lis.Addr.String())
	if err != nil {
		return nil, err
	}
	uc := pc.(*net.UDPConn)
	s := &udpSocket{conn: uc, local: addrPortOf(uc.LocalAddr())}
	l.setBuffer(s, "SO_RCVBUF", l.cfg.UDPReadBuffer, uc.SetReadBuffer, true)
	l.setBuffer(s, "SO_SNDBUF", l.cfg.UDPWriteBuffer, uc.SetWriteBuffer, false)
	return s, nil
}

// setBuffer asks for a socket buffer size and warns when the kernel grants
// less. Failing to set it is not fatal: the socket works with the default.
func (l *Layer) setBuffer(s *udpSocket, name string, want int, set func(int) error, read bool) {
	if err := set(want); err != nil {
		l.logger.Warn("setting udp socket buffer", "option", name, "bytes", want, "listener", s.local.String(), "err", err)
		return
	}
	got, ok := sockBuffer(s.conn, read)
	if ok && got < want {
		l.logger.Warn("kernel granted a smaller udp socket buffer (raise net.core.rmem_max / wmem_max)",
			"option", name, "requested", want, "granted", got, "listener", s.local.String())
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

// udpSocketFor picks the socket to send to from: the one bound at local if
// any (an exact match, else a wildcard bind on local's port), else the first
// of to's address family.
func (l *Layer) udpSocketFor(to, local netip.AddrPort) *udpSocket {
	b := l.bound.Load()
	if b == nil {
		return nil
	}
	is4 := to.Addr().Is4()
	if local.IsValid() && local.Addr().Is4() == is4 {
		for _, s := range b.udp {
			if s.local == local {
				return s
			}
		}
		for _, s := range b.udp {
			if s.local.Port() == local.Port() && s.local.Addr().IsUnspecified() && s.local.Addr().Is4() == is4 {
				return s
			}
		}
	}
	for _, s := range b.udp {
		if s.local.Addr().Is4() == is4 {
			return s
		}
	}
	return nil
}
