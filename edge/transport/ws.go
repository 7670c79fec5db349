package transport

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// WebSocket (RFC 7118, SIP over RFC 6455): a WS or WSS listener upgrades an
// HTTP request carrying "Sec-WebSocket-Protocol: sip" (and answers 400 to
// one without it, or 404 to a path other than Config.WSPath when that is
// set). Each text or binary message (fragments joined) is one SIP message;
// there is no stream framing inside. Pings are answered with pongs, a close
// with a close. The reader holds no buffer between messages: a message is
// read into a pooled buffer (or one of its exact size when larger) that
// goes back once the Handler returns.

// Errors of the WebSocket transport.
var (
	ErrWSProtocol = errors.New("transport: websocket protocol error")
	errWSClosed   = errors.New("transport: websocket closed by peer")
)

// wsState is the WebSocket state of a WS or WSS connection.
type wsState struct {
	upgraded atomic.Bool // set by the reader once the 101 went out
}

// upgrade runs the server side of the WebSocket handshake on c.
func (l *Layer) upgrade(c *conn) error {
	sawSIP := false
	u := ws.Upgrader{
		Protocol: func(p []byte) bool {
			if string(p) == "sip" {
				sawSIP = true
				return true
			}
			return false
		},
		OnRequest: func(uri []byte) error {
			if l.cfg.WSPath == "" {
				return nil
			}
			path, _, _ := bytes.Cut(uri, []byte("?"))
			if string(path) != l.cfg.WSPath {
				return ws.RejectConnectionError(ws.RejectionStatus(404), ws.RejectionReason("unknown path"))
			}
			return nil
		},
		OnBeforeUpgrade: func() (ws.HandshakeHeader, error) {
			if !sawSIP {
				return nil, ws.RejectConnectionError(ws.RejectionStatus(400), ws.RejectionReason("Sec-WebSocket-Protocol: sip is required"))
			}
			return nil, nil
		},
	}
	_ = c.nc.SetDeadline(time.Now().Add(l.cfg.TLS.HandshakeTimeout))
	_, err := u.Upgrade(c.nc)
	_ = c.nc.SetWriteDeadline(time.Time{})
	if err != nil {
		l.stats.tlsErrors.Add(1)
		return fmt.Errorf("upgrading to websocket: %w", err)
	}
	c.ws.upgraded.Store(true)
	return nil
}

// wsDeadlineReader reads c.nc with the idle timeout as its deadline.
type wsDeadlineReader struct{ c *conn }

func (r wsDeadlineReader) Read(p []byte) (int, error) {
	c := r.c
	if err := c.nc.SetReadDeadline(time.Unix(0, c.lastRead.Load()).Add(c.l.cfg.TCPIdleTimeout)); err != nil {
		return 0, err
	}
	n, err := c.nc.Read(p)
	if n > 0 {
		c.lastRead.Store(time.Now().UnixNano())
	}
	return n, err
}

// readWS upgrades c and reads its messages until it closes or fails.
func (l *Layer) readWS(c *conn) error {
	if err := l.upgrade(c); err != nil {
		return err
	}
	r := wsDeadlineReader{c}
	var msg []byte // the message being assembled; nil between messages
	pooled := false
	release := func() {
		if pooled {
			b := msg[:poolBufSize]
			bufPool.Put(&b)
		}
		msg, pooled = nil, false
	}
	defer release()
	for {
		h, err := ws.ReadHeader(r)
		if err != nil {
			return err
		}
		if h.Rsv != 0 || !h.Masked {
			l.closeWS(c, ws.StatusProtocolError)
			return fmt.Errorf("%w: reserved bits or an unmasked client frame", ErrWSProtocol)
		}
		if h.OpCode.IsControl() {
			if !h.Fin || h.Length > 125 {
				l.closeWS(c, ws.StatusProtocolError)
				return fmt.Errorf("%w: bad control frame", ErrWSProtocol)
			}
			var p [125]byte
			payload := p[:h.Length]
			if _, err := io.ReadFull(r, payload); err != nil {
				return err
			}
			ws.Cipher(payload, h.Mask, 0)
			switch h.OpCode {
			case ws.OpPing:
				if err := c.writeFrame(ws.OpPong, payload, time.Now().Add(l.cfg.WriteTimeout)); err != nil {
					return err
				}
			case ws.OpClose:
				code := ws.StatusNormalClosure
				if len(payload) < 2 {
					code = ws.StatusNoStatusRcvd
				}
				if code == ws.StatusNoStatusRcvd {
					_ = c.writeFrame(ws.OpClose, nil, time.Now().Add(l.cfg.WriteTimeout))
				} else {
					l.closeWS(c, code)
				}
				return errWSClosed
			}
			continue
		}
		switch {
		case h.OpCode == ws.OpContinuation && msg == nil,
			h.OpCode != ws.OpContinuation && msg != nil,
			h.OpCode != ws.OpContinuation && h.OpCode != ws.OpText && h.OpCode != ws.OpBinary:
			l.closeWS(c, ws.StatusProtocolError)
			return fmt.Errorf("%w: unexpected opcode %d", ErrWSProtocol, h.OpCode)
		}
		have := len(msg)
		if h.Length > int64(l.cfg.MaxMessageSize-have) {
			l.stats.framingErrors.Add(1)
			l.closeWS(c, ws.StatusMessageTooBig)
			return fmt.Errorf("websocket message: %w", ErrMessageTooLarge)
		}
		need := have + int(h.Length)
		if msg == nil {
			msg = []byte{}
		}
		if need > cap(msg) {
			wasPooled := pooled
			var nb []byte
			if need <= poolBufSize && !pooled {
				nb, pooled = (*bufPool.Get().(*[]byte))[:0], true
			} else {
				nb, pooled = make([]byte, 0, need), false
			}
			nb = append(nb, msg...)
			if wasPooled && !pooled {
				b := msg[:poolBufSize]
				bufPool.Put(&b)
			}
			msg = nb
		}
		msg = msg[:need]
		if _, err := io.ReadFull(r, msg[have:]); err != nil {
			return err
		}
		ws.Cipher(msg[have:], h.Mask, 0)
		if !h.Fin {
			continue
		}
		switch {
		case isBlank(msg):
			// An RFC 5626 keep-alive carried in a frame: answer like a stream.
			if bytes.Equal(msg, crlfcrlf) {
				l.stats.keepAlives.Add(1)
				if err := c.write(crlf, time.Now().Add(l.cfg.WriteTimeout)); err != nil {
					return err
				}
			}
		default:
			l.stats.received.Add(1)
			l.h.HandleMessage(Message{Data: msg, Proto: c.proto, Source: c.remote, Local: c.local, ConnID: c.id})
		}
		release()
	}
}

// closeWS sends a close frame with code, best effort.
func (l *Layer) closeWS(c *conn, code ws.StatusCode) {
	_ = c.writeFrame(ws.OpClose, ws.NewCloseFrameBody(code, ""), time.Now().Add(l.cfg.WriteTimeout))
}

// wsFrame returns p as one unmasked server frame.
func wsFrame(op ws.OpCode, p []byte) []byte {
	var hdr [10]byte
	hdr[0] = 0x80 | byte(op)
	n := 2
	switch l := len(p); {
	case l <= 125:
		hdr[1] = byte(l)
	case l <= 0xffff:
		hdr[1] = 126
		hdr[2], hdr[3] = byte(l>>8), byte(l)
		n = 4
	default:
		hdr[1] = 127
		for i := range 8 {
			hdr[2+i] = byte(uint64(l) >> (56 - 8*i))
		}
		n = 10
	}
	out := make([]byte, 0, n+len(p))
	return append(append(out, hdr[:n]...), p...)
}

// writeFrame writes one frame of any opcode on c, serialised with Send.
func (c *conn) writeFrame(op ws.OpCode, p []byte, deadline time.Time) error {
	return c.writeRaw(wsFrame(op, p), deadline)
}
