package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"
)

// tcpListener is one bound TCP listener.
type tcpListener struct {
	ln    net.Listener
	local netip.AddrPort
}

// connKey finds connections by protocol and remote address.
type connKey struct {
	proto  Proto
	remote netip.AddrPort
}

// conn is one open stream connection, inbound or outbound.
type conn struct {
	id       uint64
	proto    Proto
	nc       net.Conn
	remote   netip.AddrPort
	local    netip.AddrPort // the listener's address, or the local address of a dialled connection
	outbound bool

	wsem      chan struct{} // one writer at a time; a channel so waiting can time out
	done      chan struct{} // closed when the connection is closed
	closeOnce sync.Once
}

// accept accepts connections on t until it is closed.
func (l *Layer) accept(ctx context.Context, t *tcpListener) {
	var wait time.Duration
	for {
		nc, err := t.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return
			}
			l.logger.Warn("accepting tcp connection", "listener", t.local.String(), "err", err)
			if !backoff(ctx, &wait) {
				return
			}
			continue
		}
		wait = 0
		if _, err := l.adopt(nc, TCP, t.local, false); err != nil {
			if errors.Is(err, ErrTooManyConns) {
				l.stats.refused.Add(1)
				l.logger.Debug("refusing tcp connection", "remote", nc.RemoteAddr().String(), "max_connections", l.cfg.MaxConnections)
			}
			continue
		}
		l.stats.accepted.Add(1)
	}
}

// adopt enters nc in the connection table and starts its reader, or closes
// nc if the layer is not running or the table is full.
func (l *Layer) adopt(nc net.Conn, p Proto, local netip.AddrPort, outbound bool) (*conn, error) {
	c := &conn{
		proto:    p,
		nc:       nc,
		remote:   addrPortOf(nc.RemoteAddr()),
		local:    local,
		outbound: outbound,
		wsem:     make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.running {
		_ = nc.Close()
		return nil, ErrNotRunning
	}
	if len(l.conns) >= l.cfg.MaxConnections {
		_ = nc.Close()
		return nil, ErrTooManyConns
	}
	c.id = l.nextID.Add(1)
	l.conns[c.id] = c
	k := connKey{p, c.remote}
	l.byAddr[k] = append(l.byAddr[k], c)
	ctx := l.ctx
	l.wg.Go(func() { l.readConn(ctx, c) })
	return c, nil
}

// closeConn closes c and removes it from the table; it is idempotent.
func (l *Layer) closeConn(c *conn) {
	c.closeOnce.Do(func() {
		l.mu.Lock()
		delete(l.conns, c.id)
		k := connKey{c.proto, c.remote}
		list := l.byAddr[k]
		for i, o := range list {
			if o == c {
				list = append(list[:i], list[i+1:]...)
				break
			}
		}
		if len(list) == 0 {
			delete(l.byAddr, k)
		} else {
			l.byAddr[k] = list
		}
		l.mu.Unlock()
		close(c.done)
		_ = c.nc.Close()
	})
}

// idleReader sets a read deadline before each read, so a connection that
// receives nothing for the idle timeout fails its read.
type idleReader struct {
	nc   net.Conn
	idle time.Duration
}

func (r idleReader) Read(p []byte) (int, error) {
	if err := r.nc.SetReadDeadline(time.Now().Add(r.idle)); err != nil {
		return 0, err
	}
	return r.nc.Read(p)
}

var crlf = []byte("\r\n")

// readConn reads messages from c until it fails, is idle too long, breaks
// framing, or is closed.
func (l *Layer) readConn(ctx context.Context, c *conn) {
	defer l.closeConn(c)
	s := newStream(idleReader{c.nc, l.cfg.TCPIdleTimeout}, l.cfg.MaxMessageSize)
	for {
		kind, data, err := s.next()
		switch kind {
		case framePing:
			l.stats.keepAlives.Add(1)
			if werr := c.write(crlf, time.Now().Add(l.cfg.WriteTimeout)); werr != nil {
				l.logger.Debug("answering keep-alive", "remote", c.remote.String(), "conn_id", c.id, "err", werr)
				return
			}
		case frameMessage:
			l.stats.received.Add(1)
			l.h.HandleMessage(Message{Data: data, Proto: c.proto, Source: c.remote, Local: c.local, ConnID: c.id})
		case frameError:
			l.stats.framingErrors.Add(1)
			l.logger.Info("closing connection on framing error", "remote", c.remote.String(), "conn_id", c.id, "err", err)
			l.h.HandleMessage(Message{Data: data, Proto: c.proto, Source: c.remote, Local: c.local, ConnID: c.id, FramingErr: err})
			return
		default: // a read error
			switch {
			case errors.Is(err, os.ErrDeadlineExceeded):
				l.stats.idleClosed.Add(1)
				l.logger.Debug("closing idle connection", "remote", c.remote.String(), "conn_id", c.id)
			case errors.Is(err, net.ErrClosed), ctx.Err() != nil:
			default:
				l.logger.Debug("connection ended", "remote", c.remote.String(), "conn_id", c.id, "err", err)
			}
			return
		}
	}
}

// write writes p on c, serialised with other writers, giving up at deadline.
// A failed write closes c, since part of a message may have gone out.
func (c *conn) write(p []byte, deadline time.Time) error {
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
		_ = c.nc.Close() // the reader sees the close and removes c from the table
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

// lookup returns the open connection d names by ConnID, else one to d.Addr.
func (l *Layer) lookup(d Dest, to netip.AddrPort) *conn {
	l.mu.Lock()
	defer l.mu.Unlock()
	if d.ConnID != 0 {
		if c, ok := l.conns[d.ConnID]; ok && c.proto == d.Proto {
			return c
		}
	}
	if !to.IsValid() {
		return nil
	}
	list := l.byAddr[connKey{d.Proto, to}]
	if len(list) == 0 {
		return nil
	}
	return list[len(list)-1] // the newest
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
		var err error
		if c, err = l.dial(d.Proto, to); err != nil {
			return err
		}
	}
	return c.write(data, time.Now().Add(l.cfg.WriteTimeout))
}

// dial opens a connection to to and adopts it.
func (l *Layer) dial(p Proto, to netip.AddrPort) (*conn, error) {
	l.mu.Lock()
	running, ctx, n := l.running, l.ctx, len(l.conns)
	l.mu.Unlock()
	if !running {
		return nil, fmt.Errorf("dialing %s: %w", to, ErrNotRunning)
	}
	if n >= l.cfg.MaxConnections {
		return nil, fmt.Errorf("dialing %s: %w", to, ErrTooManyConns)
	}
	network := "tcp4"
	if !to.Addr().Is4() {
		network = "tcp6"
	}
	dl := net.Dialer{Timeout: l.cfg.DialTimeout}
	nc, err := dl.DialContext(ctx, network, to.String())
	if err != nil {
		l.stats.dialFailures.Add(1)
		return nil, fmt.Errorf("dialing %s: %w", to, err)
	}
	c, err := l.adopt(nc, p, addrPortOf(nc.LocalAddr()), true)
	if err != nil {
		return nil, fmt.Errorf("dialing %s: %w", to, err)
	}
	l.stats.dialed.Add(1)
	l.logger.Debug("dialed connection", "remote", to.String(), "conn_id", c.id)
	return c, nil
}
