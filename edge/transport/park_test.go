package transport

import (
	"net/netip"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// TestTCPParkedConnection checks that an idle connection is parked (no
// reader), is woken by a keep-alive and by a message, and is closed by the
// idle timeout while parked, calling OnClose.
func TestTCPParkedConnection(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("parking needs linux")
	}
	var closed atomic.Uint64
	rec := newRecorder()
	cfg := Config{
		Listeners:      []Listener{mustListener(t, "tcp:127.0.0.1:0")},
		TCPIdleTimeout: 1500 * time.Millisecond,
		OnClose:        func(id uint64, _ netip.AddrPort) { closed.Store(id) },
	}
	l, err := New(cfg, rec, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	l.parkAfter = 50 * time.Millisecond
	runLayer(t, l)
	c := dialLayer(t, l)
	eventually(t, "connection parked", func() bool { return l.Stats().Parked == 1 })

	// A keep-alive wakes it and is answered; it parks again.
	if _, err := c.Write([]byte("\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if got := readFull(t, c, 2); got != "\r\n" {
		t.Fatalf("keep-alive answer %q, want CRLF", got)
	}
	eventually(t, "parked again", func() bool { return l.Stats().Parked == 1 })

	// A message split across writes, with a pause longer than parkAfter
	// after the first part: the partial message keeps the reader.
	req := sipMsg("v=0\r\n")
	if _, err := c.Write([]byte(req[:10])); err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond)
	if _, err := c.Write([]byte(req[10:])); err != nil {
		t.Fatal(err)
	}
	m := rec.next(t)
	if string(m.Data) != req {
		t.Fatalf("Data = %q, want %q", m.Data, req)
	}
	// A reply reaches the parked connection.
	eventually(t, "parked after the message", func() bool { return l.Stats().Parked == 1 })
	resp := "SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"
	if err := l.Send(Dest{Proto: TCP, ConnID: m.ConnID}, []byte(resp)); err != nil {
		t.Fatalf("Send to parked: %v", err)
	}
	if got := readFull(t, c, len(resp)); got != resp {
		t.Fatalf("read %q, want %q", got, resp)
	}
	// Idle past the timeout while parked: closed.
	expectClosed(t, c)
	eventually(t, "idle close counted", func() bool {
		s := l.Stats()
		return s.IdleClosed == 1 && s.Connections == 0 && s.Parked == 0
	})
	if got := closed.Load(); got != m.ConnID {
		t.Errorf("OnClose got conn %d, want %d", got, m.ConnID)
	}
}

// TestTCPParkedPeerClose checks that a parked connection whose peer leaves
// is removed.
func TestTCPParkedPeerClose(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("parking needs linux")
	}
	l, err := New(Config{Listeners: []Listener{mustListener(t, "tcp:127.0.0.1:0")}}, newRecorder(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	l.parkAfter = 20 * time.Millisecond
	runLayer(t, l)
	c := dialLayer(t, l)
	eventually(t, "connection parked", func() bool { return l.Stats().Parked == 1 })
	c.Close()
	eventually(t, "connection removed", func() bool { s := l.Stats(); return s.Connections == 0 && s.Parked == 0 })
}
