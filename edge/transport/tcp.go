package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// streamListener is one bound TCP, TLS, WS or WSS listener.
type streamListener struct {
	ln    net.Listener
	proto Proto
	local netip.AddrPort
}

// connKey finds connections by protocol and remote address.
type connKey struct {
	proto  Proto
	remote netip.AddrPort
}

// conn is one open stream connection, inbound or outbound.
//
// At most one goroutine reads a connection at a time, and only it touches
// st and ws. On Linux a plain TCP connection that has received nothing for
// parkAfter, with nothing buffered, is parked: its reader gives its buffer
// back to the pool and exits, and the poller starts a new reader when bytes
// (or a close) arrive. An idle connection then holds no goroutine and no
// buffer.
type conn struct {
	l        *Layer
	id       uint64
	proto    Proto
	nc       net.Conn // messages are read from and written to nc (a *tls.Conn for TLS and WSS)
	raw      net.Conn // the TCP connection under nc
	remote   netip.AddrPort
	local    netip.AddrPort // the listener's address, or the local address of a dialled connection
	outbound bool
	parkable bool         // plain TCP with a poller: may be parked when idle
	sameAddr *conn        // the next older connection to the same address, in the table
	lastRead atomic.Int64 // unix nanoseconds of the last bytes received (or of adoption)
	st       stream
	ws       *wsState // WS and WSS framing state, else nil

	wsem      chan struct{} // one writer at a time; a channel so waiting can time out
	done      chan struct{} // closed when the connection is closed
	closeOnce sync.Once
}

// accept accepts connections on t until it is closed.
func (l *Layer) accept(ctx context.Context, t *streamListener) {
	var wait time.Duration
	for {
		nc, err := t.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return
			}
			l.logger.Warn("accepting connection", "listener", t.local.String(), "proto", t.proto.String(), "err", err)
			if !backoff(ctx, &wait) {
				return
			}
			continue
		}
		wait = 0
		if !l.conns.reserve(l.cfg.MaxConnections) {
			// A clean refusal: the peer sees an orderly close before any
			// data, and retries elsewhere or later.
			_ = nc.Close()
			if l.stats.refused.Add(1)%1000 == 1 {
				l.logger.Warn("refusing connections past max_connections", "listener", t.local.String(),
					"max_connections", l.cfg.MaxConnections, "refused_total", l.stats.refused.Load())
			}
			continue
		}
		var wrapped net.Conn = nc
		if t.proto == TLS || t.proto == WSS {
			wrapped = tls.Server(nc, l.tlsServer)
		}
		if _, err := l.adopt(wrapped, nc, t.proto, t.local, false); err != nil {
			continue
		}
		l.stats.accepted.Add(1)
	}
}

// adopt enters a connection, reserved in the table already, and starts its
// reader, or closes it and gives the reservation back if the layer is not
// running. raw is the TCP connection under nc.
func (l *Layer) adopt(nc, raw net.Conn, p Proto, local netip.AddrPort, outbound bool) (*conn, error) {
	c := &conn{
		l:        l,
		proto:    p,
		nc:       nc,
		raw:      raw,
		remote:   addrPortOf(raw.RemoteAddr()),
		local:    local,
		outbound: outbound,
		parkable: p == TCP && l.poll != nil,
		wsem:     make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	c.lastRead.Store(time.Now().UnixNano())
	c.st.init(connReader{c}, l.cfg.MaxMessageSize)
	if p == WS || p == WSS {
		c.ws = &wsState{}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.running {
		l.conns.unreserve()
		_ = nc.Close()
		return nil, ErrNotRunning
	}
	c.id = l.nextID.Add(1)
	l.conns.insert(c)
	l.wg.Go(func() { l.readConn(c) })
	return c, nil
}

// closeConn closes c and removes it from the table; it is idempotent.
func (l *Layer) closeConn(c *conn) {
	c.closeOnce.Do(func() {
		l.conns.remove(c)
		if l.poll != nil && c.parkable {
			l.poll.forget(c)
		}
		close(c.done)
		_ = c.nc.Close()
		if l.cfg.OnClose != nil {
			l.cfg.OnClose(c.id, c.remote)
		}
	})
}

// connReader reads c with a deadline: the idle timeout counted from the
// last bytes received, or sooner (parkAfter) when c could be parked.
type connReader struct{ c *conn }

func (r connReader) Read(p []byte) (int, error) {
	c := r.c
	now := time.Now()
	dl := time.Unix(0, c.lastRead.Load()).Add(c.l.cfg.TCPIdleTimeout)
	if c.parkable && c.st.empty() {
		if p := now.Add(c.l.parkAfter); p.Before(dl) {
			dl = p
		}
	}
	if err := c.nc.SetReadDeadline(dl); err != nil {
		return 0, err
	}
	n, err := c.nc.Read(p)
	if n > 0 {
		c.lastRead.Store(time.Now().UnixNano())
	}
	return n, err
}

// idleFor reports whether c has received nothing for the idle timeout.
func (c *conn) idleExpired(now time.Time) bool {
	return now.UnixNano()-c.lastRead.Load() >= int64(c.l.cfg.TCPIdleTimeout)
}

var crlf = []byte("\r\n")

// readConn reads messages from c until it fails, is idle too long, breaks
// framing, or is closed, then closes it; or until it parks c.
func (l *Layer) readConn(c *conn) {
	if tc, ok := c.nc.(*tls.Conn); ok && !c.outbound && !tc.ConnectionState().HandshakeComplete {
		if err := l.handshake(tc, c); err != nil {
			l.closeConn(c)
			return
		}
	}
	if c.ws != nil {
		if err := l.readWS(c); err != nil {
			l.logger.Debug("websocket connection ended", "remote", c.remote.String(), "conn_id", c.id, "err", err)
		}
		l.closeConn(c)
		return
	}
	for {
		kind, data, err := c.st.next()
		switch kind {
		case framePing:
			l.stats.keepAlives.Add(1)
			if werr := c.write(crlf, time.Now().Add(l.cfg.WriteTimeout)); werr != nil {
				l.logger.Debug("answering keep-alive", "remote", c.remote.String(), "conn_id", c.id, "err", werr)
				l.endRead(c)
				return
			}
		case frameMessage:
			l.stats.received.Add(1)
			l.h.HandleMessage(Message{Data: data, Proto: c.proto, Source: c.remote, Local: c.local, ConnID: c.id})
		case frameError:
			l.stats.framingErrors.Add(1)
			l.logger.Info("closing connection on framing error", "remote", c.remote.String(), "conn_id", c.id, "err", err)
			l.h.HandleMessage(Message{Data: data, Proto: c.proto, Source: c.remote, Local: c.local, ConnID: c.id, FramingErr: err})
			l.endRead(c)
			return
		default: // a read error
			if errors.Is(err, os.ErrDeadlineExceeded) {
				now := time.Now()
				if !c.idleExpired(now) {
					if c.parkable && c.st.release() && l.poll.park(c) {
						return // the poller owns c now
					}
					continue // the deadline was early (parkAfter) but c cannot park: read on
				}
				l.stats.idleClosed.Add(1)
				l.logger.Debug("closing idle connection", "remote", c.remote.String(), "conn_id", c.id)
			} else if !errors.Is(err, net.ErrClosed) {
				l.logger.Debug("connection ended", "remote", c.remote.String(), "conn_id", c.id, "err", err)
			}
			l.endRead(c)
			return
		}
	}
}

// endRead closes c and gives its buffer back.
func (l *Layer) endRead(c *conn) {
	l.closeConn(c)
	c.st.start, c.st.end = 0, 0
	c.st.release()
}

// write writes p, one SIP message, on c (in one frame for WS and WSS).
func (c *conn) write(p []byte, deadline time.Time) error {
	if c.ws != nil {
		op := ws.OpText
		if !utf8.Valid(p) {
			op = ws.OpBinary
		}
		if !c.ws.upgraded.Load() {
			return fmt.Errorf("writing to %s: %w: websocket not upgraded yet", c.remote, ErrConnClosed)
		}
		return c.writeFrame(op, p, deadline)
	}
	return c.writeRaw(p, deadline)
}

// writeRaw writes p on c, serialised with other writers, giving up at
// deadline. A failed write closes c, since part of it may have gone out.
func (c *conn) writeRaw(p []byte, deadline time.Time) error {
	select {
	case c.wsem <- struct{}{}:
	default:
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		select {
		case c.wsem <- struct{}{}:
		case <-t.C:
			return fmt.Errorf("waiting to write to %s: %w", c.remote, ErrWriteTimeout)
		case <-c.done:
			return fmt.Errorf("writing to %s: %w", c.remote, ErrConnClosed)
		}
	}
	defer func() { <-c.wsem }()
	select {
	case <-c.done:
		return fmt.Errorf("writing to %s: %w", c.remote, ErrConnClosed)
	default:
	}
	if err := c.nc.SetWriteDeadline(deadline); err != nil {
		return fmt.Errorf("writing to %s: %w", c.remote, ErrConnClosed)
	}
	if _, err := c.nc.Write(p); err != nil {
		c.l.closeConn(c) // a parked connection has no reader to notice
		switch {
		case errors.Is(err, net.ErrClosed):
			return fmt.Errorf("writing to %s: %w", c.remote, ErrConnClosed)
		case errors.Is(err, os.ErrDeadlineExceeded):
			return fmt.Errorf("writing to %s: %w", c.remote, ErrWriteTimeout)
		}
		return fmt.Errorf("writing to %s: %w", c.remote, err)
	}
	return nil
}

// lookup returns the open connection d names by ConnID, else the newest to d.Addr.
func (l *Layer) lookup(d Dest, to netip.AddrPort) *conn {
	if d.ConnID != 0 {
		if c := l.conns.get(d.ConnID); c != nil && c.proto == d.Proto {
			return c
		}
	}
	if !to.IsValid() {
		return nil
	}
	return l.conns.newestTo(d.Proto, to)
}

func (l *Layer) sendStream(d Dest, data []byte) error {
	to := unmapAddrPort(d.Addr)
	c := l.lookup(d, to)
	if c == nil {
		if !to.IsValid() {
			if d.ConnID != 0 {
				return fmt.Errorf("sending to connection %d: %w", d.ConnID, ErrConnClosed)
			}
			return fmt.Errorf("sending over %s: %w: no address", d.Proto, ErrBadDest)
		}
		if d.Proto == WS || d.Proto == WSS {
			// WebSocket clients are reached over the connection they opened.
			return fmt.Errorf("sending over %s to %s: %w", d.Proto, to, ErrConnClosed)
		}
		var err error
		if c, err = l.dial(d.Proto, to, d.Host); err != nil {
			return err
		}
	}
	return c.write(data, time.Now().Add(l.cfg.WriteTimeout))
}

// dial opens a TCP or TLS connection to to and adopts it. host, when set,
// is the name the TLS server's certificate is verified against.
func (l *Layer) dial(p Proto, to netip.AddrPort, host string) (*conn, error) {
	l.mu.Lock()
	running, ctx := l.running, l.ctx
	l.mu.Unlock()
	if !running {
		return nil, fmt.Errorf("dialing %s: %w", to, ErrNotRunning)
	}
	if !l.conns.reserve(l.cfg.MaxConnections) {
		return nil, fmt.Errorf("dialing %s: %w", to, ErrTooManyConns)
	}
	network := "tcp4"
	if !to.Addr().Is4() {
		network = "tcp6"
	}
	ctx, cancel := context.WithTimeout(ctx, l.cfg.DialTimeout)
	defer cancel()
	var dl net.Dialer
	raw, err := dl.DialContext(ctx, network, to.String())
	if err != nil {
		l.conns.unreserve()
		l.stats.dialFailures.Add(1)
		return nil, fmt.Errorf("dialing %s: %w", to, err)
	}
	nc := raw
	if p == TLS {
		tc := tls.Client(raw, l.tlsClientConfig(to, host))
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = raw.Close()
			l.conns.unreserve()
			l.stats.dialFailures.Add(1)
			return nil, fmt.Errorf("dialing %s: tls handshake: %w", to, err)
		}
		nc = tc
	}
	c, err := l.adopt(nc, raw, p, addrPortOf(raw.LocalAddr()), true)
	if err != nil {
		return nil, fmt.Errorf("dialing %s: %w", to, err)
	}
	l.stats.dialed.Add(1)
	l.logger.Debug("dialed connection", "remote", to.String(), "proto", p.String(), "conn_id", c.id)
	return c, nil
}
