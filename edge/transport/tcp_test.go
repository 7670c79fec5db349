package transport

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// dialLayer connects a client to l's TCP listener.
func dialLayer(t *testing.T, l *Layer) net.Conn {
	t.Helper()
	lis := listenerFor(t, l, TCP)
	c, err := net.DialTimeout("tcp", lis.Addr.String(), waitFor)
	if err != nil {
		t.Fatalf("dialing %v: %v", lis, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestTCPRoundTrip(t *testing.T) {
	tests := []struct {
		name   string
		listen string
		v6     bool
	}{
		{name: "ipv4", listen: "tcp:127.0.0.1:0"},
		{name: "ipv6", listen: "tcp:[::1]:0", v6: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.v6 {
				skipWithoutIPv6(t)
			}
			rec := newRecorder()
			l := startLayer(t, Config{Listeners: []Listener{mustListener(t, tt.listen)}}, rec)
			lis := listenerFor(t, l, TCP)
			c := dialLayer(t, l)
			req := sipMsg("v=0\r\n")
			if _, err := c.Write([]byte(req)); err != nil {
				t.Fatal(err)
			}
			m := rec.next(t)
			if string(m.Data) != req {
				t.Errorf("Data = %q, want %q", m.Data, req)
			}
			if m.Proto != TCP || m.ConnID == 0 || m.FramingErr != nil {
				t.Errorf("Proto, ConnID, FramingErr = %v, %d, %v; want TCP, non-zero, nil", m.Proto, m.ConnID, m.FramingErr)
			}
			if want := addrPort(c.LocalAddr()); m.Source != want {
				t.Errorf("Source = %v, want %v", m.Source, want)
			}
			if m.Local != lis.Addr {
				t.Errorf("Local = %v, want %v", m.Local, lis.Addr)
			}

			// Back by ConnID (with a wrong address: the ConnID wins).
			resp1 := "SIP/2.0 100 Trying\r\nContent-Length: 0\r\n\r\n"
			if err := l.Send(Dest{Proto: TCP, ConnID: m.ConnID, Addr: lis.Addr}, []byte(resp1)); err != nil {
				t.Fatalf("Send by ConnID: %v", err)
			}
			if got := readFull(t, c, len(resp1)); got != resp1 {
				t.Errorf("read %q, want %q", got, resp1)
			}
			// Back by address only: the open inbound connection is reused.
			resp2 := "SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"
			if err := l.Send(Dest{Proto: TCP, Addr: m.Source}, []byte(resp2)); err != nil {
				t.Fatalf("Send by address: %v", err)
			}
			if got := readFull(t, c, len(resp2)); got != resp2 {
				t.Errorf("read %q, want %q", got, resp2)
			}
			if s := l.Stats(); s.Connections != 1 || s.Accepted != 1 || s.Dialed != 0 {
				t.Errorf("Stats Connections, Accepted, Dialed = %d, %d, %d; want 1, 1, 0", s.Connections, s.Accepted, s.Dialed)
			}

			// Once the client leaves, its ConnID is closed.
			c.Close()
			eventually(t, "connection removed", func() bool { return l.Stats().Connections == 0 })
			if err := l.Send(Dest{Proto: TCP, ConnID: m.ConnID}, []byte(resp2)); !errors.Is(err, ErrConnClosed) {
				t.Errorf("Send on closed ConnID = %v, want ErrConnClosed", err)
			}
		})
	}
}

func TestTCPDialOnDemand(t *testing.T) {
	recA, recB := newRecorder(), newRecorder()
	a := startLayer(t, Config{Listeners: []Listener{mustListener(t, "tcp:127.0.0.1:0")}}, recA)
	b := startLayer(t, Config{Listeners: []Listener{mustListener(t, "tcp:127.0.0.1:0")}}, recB)
	bAddr := listenerFor(t, b, TCP).Addr

	req := sipMsg("")
	if err := a.Send(Dest{Proto: TCP, Addr: bAddr}, []byte(req)); err != nil {
		t.Fatalf("Send (dial): %v", err)
	}
	mb := recB.next(t)
	if string(mb.Data) != req {
		t.Fatalf("b got %q, want %q", mb.Data, req)
	}
	resp := "SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"
	if err := b.Send(Dest{Proto: TCP, ConnID: mb.ConnID}, []byte(resp)); err != nil {
		t.Fatalf("b Send: %v", err)
	}
	ma := recA.next(t)
	if string(ma.Data) != resp {
		t.Errorf("a got %q, want %q", ma.Data, resp)
	}
	if ma.ConnID == 0 || ma.Source != bAddr || ma.Local != mb.Source {
		t.Errorf("a got ConnID %d, Source %v, Local %v; want non-zero, %v, %v", ma.ConnID, ma.Source, ma.Local, bAddr, mb.Source)
	}
	// A second send reuses the dialled connection.
	if err := a.Send(Dest{Proto: TCP, Addr: bAddr}, []byte(req)); err != nil {
		t.Fatalf("second Send: %v", err)
	}
	if m := recB.next(t); m.ConnID != mb.ConnID {
		t.Errorf("second message on ConnID %d, want %d", m.ConnID, mb.ConnID)
	}
	if s := a.Stats(); s.Dialed != 1 || s.Connections != 1 {
		t.Errorf("a Stats Dialed, Connections = %d, %d; want 1, 1", s.Dialed, s.Connections)
	}
}

func TestTCPDialFailure(t *testing.T) {
	l := startLayer(t, Config{Listeners: []Listener{mustListener(t, "tcp:127.0.0.1:0")}, DialTimeout: time.Second}, newRecorder())
	// A port nothing listens on: bind one, note it, close it.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	to := addrPort(ln.Addr())
	ln.Close()
	if err := l.Send(Dest{Proto: TCP, Addr: to}, []byte("x")); err == nil {
		t.Fatal("Send to a closed port succeeded")
	}
	if s := l.Stats(); s.DialFailures != 1 || s.SendErrors != 1 {
		t.Errorf("Stats DialFailures, SendErrors = %d, %d; want 1, 1", s.DialFailures, s.SendErrors)
	}
}

func TestTCPFramingOverSocket(t *testing.T) {
	msg := sipMsg("hello")
	tests := []struct {
		name     string
		chunks   []string
		want     []string // messages, in order
		wantErr  error    // framing error after the messages
		wantPong bool     // a CRLF answers a keep-alive
	}{
		{name: "byte by byte", chunks: strings.Split(msg, ""), want: []string{msg}},
		{name: "pipelined", chunks: []string{msg + msg + msg}, want: []string{msg, msg, msg}},
		{name: "keep-alive answered", chunks: []string{"\r\n\r\n"}, wantPong: true},
		{name: "keep-alive then message", chunks: []string{"\r\n\r\n" + msg}, want: []string{msg}, wantPong: true},
		{name: "bad content-length", chunks: []string{"INVITE sip:a SIP/2.0\r\nContent-Length: x\r\n\r\n"}, wantErr: ErrBadContentLength},
		{name: "oversized", chunks: []string{"INVITE sip:a SIP/2.0\r\nContent-Length: 999999\r\n\r\n"}, wantErr: ErrMessageTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newRecorder()
			l := startLayer(t, Config{Listeners: []Listener{mustListener(t, "tcp:127.0.0.1:0")}}, rec)
			c := dialLayer(t, l)
			for _, ch := range tt.chunks {
				if _, err := c.Write([]byte(ch)); err != nil {
					t.Fatal(err)
				}
			}
			if tt.wantPong {
				if got := readFull(t, c, 2); got != "\r\n" {
					t.Errorf("keep-alive answer %q, want CRLF", got)
				}
			}
			for _, w := range tt.want {
				if m := rec.next(t); string(m.Data) != w || m.FramingErr != nil {
					t.Errorf("got %q (err %v), want %q", m.Data, m.FramingErr, w)
				}
			}
			if tt.wantErr != nil {
				m := rec.next(t)
				if !errors.Is(m.FramingErr, tt.wantErr) {
					t.Errorf("FramingErr = %v, want %v", m.FramingErr, tt.wantErr)
				}
				// The core may answer before the close.
				resp := "SIP/2.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
				_ = l.Send(Dest{Proto: TCP, ConnID: m.ConnID}, []byte(resp))
				expectClosed(t, c)
				eventually(t, "connection removed", func() bool { return l.Stats().Connections == 0 })
			}
		})
	}
}

func TestTCPFramingErrorAnsweredBeforeClose(t *testing.T) {
	rec := newRecorder()
	var l *Layer
	resp := "SIP/2.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
	rec.reply = func(m Message) {
		if m.FramingErr != nil {
			if err := l.Send(Dest{Proto: TCP, ConnID: m.ConnID}, []byte(resp)); err != nil {
				t.Errorf("Send 400: %v", err)
			}
		}
	}
	l = startLayer(t, Config{Listeners: []Listener{mustListener(t, "tcp:127.0.0.1:0")}}, rec)
	c := dialLayer(t, l)
	if _, err := c.Write([]byte("INVITE sip:a SIP/2.0\r\nl: -1\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if got := readFull(t, c, len(resp)); got != resp {
		t.Errorf("read %q, want %q", got, resp)
	}
	expectClosed(t, c)
}

func TestTCPMaxConnections(t *testing.T) {
	l := startLayer(t, Config{Listeners: []Listener{mustListener(t, "tcp:127.0.0.1:0")}, MaxConnections: 2}, newRecorder())
	dialLayer(t, l)
	dialLayer(t, l)
	eventually(t, "two connections", func() bool { return l.Stats().Connections == 2 })
	third := dialLayer(t, l)
	expectClosed(t, third)
	eventually(t, "refusal counted", func() bool { return l.Stats().Refused == 1 })
	if s := l.Stats(); s.Connections != 2 || s.Accepted != 2 {
		t.Errorf("Stats Connections, Accepted = %d, %d; want 2, 2", s.Connections, s.Accepted)
	}
	// Dialling out is refused too.
	if err := l.Send(Dest{Proto: TCP, Addr: listenerFor(t, l, TCP).Addr}, []byte("x")); err != nil {
		// Sending to our own listener address finds no connection keyed by it and dials.
		if !errors.Is(err, ErrTooManyConns) {
			t.Errorf("Send = %v, want ErrTooManyConns", err)
		}
	} else {
		t.Error("Send past MaxConnections succeeded")
	}
}

func TestTCPIdleTimeout(t *testing.T) {
	l := startLayer(t, Config{Listeners: []Listener{mustListener(t, "tcp:127.0.0.1:0")}, TCPIdleTimeout: 200 * time.Millisecond}, newRecorder())
	c := dialLayer(t, l)
	eventually(t, "connection counted", func() bool { return l.Stats().Connections == 1 })
	start := time.Now()
	expectClosed(t, c)
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("closed after %v, before the idle timeout", d)
	}
	eventually(t, "idle close counted", func() bool { s := l.Stats(); return s.IdleClosed == 1 && s.Connections == 0 })
}
