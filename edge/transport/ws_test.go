package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// dialWS opens a WebSocket to l's listener of proto p offering protocols.
func dialWS(t *testing.T, url string, protocols []string, tlsCfg *tls.Config) (net.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	d := ws.Dialer{Protocols: protocols, TLSConfig: tlsCfg, Timeout: waitFor}
	c, br, _, err := d.Dial(ctx, url)
	if err != nil {
		return nil, err
	}
	if br != nil {
		t.Fatal("server sent data before the client spoke")
	}
	t.Cleanup(func() { c.Close() })
	return c, nil
}

func TestWebSocket(t *testing.T) {
	ca := newTestCA(t)
	certFile, keyFile := ca.issue(t, t.TempDir(), "srv", 2)
	tests := []struct {
		name   string
		listen string
		scheme string
		proto  Proto
	}{
		{name: "ws", listen: "ws:127.0.0.1:0", scheme: "ws", proto: WS},
		{name: "wss", listen: "wss:127.0.0.1:0", scheme: "wss", proto: WSS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newRecorder()
			l := startLayer(t, Config{
				Listeners: []Listener{mustListener(t, tt.listen)},
				TLS:       TLSConfig{CertFile: certFile, KeyFile: keyFile},
				WSPath:    "/sip",
			}, rec)
			url := tt.scheme + "://" + listenerFor(t, l, tt.proto).Addr.String() + "/sip"
			tlsCfg := &tls.Config{RootCAs: ca.pool(), ServerName: "sip.test"}

			// Without the sip subprotocol, or on another path: refused.
			if _, err := dialWS(t, url, []string{"chat"}, tlsCfg); err == nil || !strings.Contains(err.Error(), "400") {
				t.Errorf("dial without sip = %v, want a 400 refusal", err)
			}
			if _, err := dialWS(t, strings.TrimSuffix(url, "/sip")+"/other", []string{"sip"}, tlsCfg); err == nil || !strings.Contains(err.Error(), "404") {
				t.Errorf("dial on another path = %v, want a 404 refusal", err)
			}

			c, err := dialWS(t, url, []string{"sip"}, tlsCfg)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			// One message, fragmented in two frames.
			req := sipMsg("v=0\r\n")
			if err := ws.WriteFrame(c, ws.MaskFrame(ws.Frame{Header: ws.Header{OpCode: ws.OpText, Length: 10}, Payload: []byte(req[:10])})); err != nil {
				t.Fatal(err)
			}
			if err := ws.WriteFrame(c, ws.MaskFrame(ws.NewFrame(ws.OpContinuation, true, []byte(req[10:])))); err != nil {
				t.Fatal(err)
			}
			m := rec.next(t)
			if string(m.Data) != req || m.Proto != tt.proto || m.ConnID == 0 {
				t.Fatalf("got %v conn %d %q, want %v %q", m.Proto, m.ConnID, m.Data, tt.proto, req)
			}
			// Two messages, one per frame, without stream framing.
			for _, s := range []string{"OPTIONS sip:a SIP/2.0\r\n\r\n", sipMsg("")} {
				if err := wsutil.WriteClientText(c, []byte(s)); err != nil {
					t.Fatal(err)
				}
				if m := rec.next(t); string(m.Data) != s {
					t.Errorf("got %q, want %q", m.Data, s)
				}
			}
			// A reply is one text frame.
			resp := "SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"
			if err := l.Send(Dest{Proto: tt.proto, ConnID: m.ConnID}, []byte(resp)); err != nil {
				t.Fatalf("Send: %v", err)
			}
			c.SetReadDeadline(time.Now().Add(waitFor))
			got, op, err := wsutil.ReadServerData(c)
			if err != nil || op != ws.OpText || string(got) != resp {
				t.Fatalf("read %v %q %v, want text %q", op, got, err, resp)
			}
			// Ping is answered with pong.
			if err := ws.WriteFrame(c, ws.MaskFrame(ws.NewPingFrame([]byte("hi")))); err != nil {
				t.Fatal(err)
			}
			h, err := ws.ReadHeader(c)
			if err != nil || h.OpCode != ws.OpPong {
				t.Fatalf("after ping read %v, %v; want pong", h.OpCode, err)
			}
			p := make([]byte, h.Length)
			io.ReadFull(c, p)
			if string(p) != "hi" {
				t.Errorf("pong payload %q, want hi", p)
			}
			// Close is answered and the connection removed.
			if err := ws.WriteFrame(c, ws.MaskFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "")))); err != nil {
				t.Fatal(err)
			}
			h, err = ws.ReadHeader(c)
			if err != nil || h.OpCode != ws.OpClose {
				t.Fatalf("after close read %v, %v; want close", h.OpCode, err)
			}
			eventually(t, "connection removed", func() bool { return l.Stats().Connections == 0 })
		})
	}
}

func TestWebSocketTooLarge(t *testing.T) {
	rec := newRecorder()
	l := startLayer(t, Config{Listeners: []Listener{mustListener(t, "ws:127.0.0.1:0")}, MaxMessageSize: 2048}, rec)
	c, err := dialWS(t, "ws://"+listenerFor(t, l, WS).Addr.String(), []string{"sip"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := wsutil.WriteClientText(c, []byte(sipMsg(strings.Repeat("x", 4000)))); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(waitFor))
	h, err := ws.ReadHeader(c)
	if err != nil || h.OpCode != ws.OpClose {
		t.Fatalf("read %v, %v; want close", h.OpCode, err)
	}
	rec.none(t, 50*time.Millisecond)
	eventually(t, "connection removed", func() bool { return l.Stats().Connections == 0 })
	if err := l.Send(Dest{Proto: WS, Addr: addrPort(c.LocalAddr())}, []byte("x")); !errors.Is(err, ErrConnClosed) {
		t.Errorf("Send to a WS client without a connection = %v, want ErrConnClosed", err)
	}
}
