package transport

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

const waitFor = 5 * time.Second

// recorder is a Handler that keeps copies of what it receives.
type recorder struct {
	ch    chan Message
	reply func(m Message) // optional, called in HandleMessage
}

func newRecorder() *recorder { return &recorder{ch: make(chan Message, 100)} }

func (r *recorder) HandleMessage(m Message) {
	if r.reply != nil {
		r.reply(m)
	}
	m.Data = append([]byte(nil), m.Data...)
	select {
	case r.ch <- m:
	default:
		panic("recorder: channel full")
	}
}

// next waits for the next message.
func (r *recorder) next(t *testing.T) Message {
	t.Helper()
	select {
	case m := <-r.ch:
		return m
	case <-time.After(waitFor):
		t.Fatal("no message received")
		return Message{}
	}
}

// none checks that no message arrives within d.
func (r *recorder) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case m := <-r.ch:
		t.Fatalf("unexpected message %q", m.Data)
	case <-time.After(d):
	}
}

// testLogger logs to the test at debug level.
func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// startLayer runs a layer for cfg until the test ends and returns it once ready.
func startLayer(t *testing.T, cfg Config, h Handler) *Layer {
	t.Helper()
	l, err := New(cfg, h, testLogger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return runLayer(t, l)
}

// runLayer runs l until the test ends and returns it once ready.
func runLayer(t *testing.T, l *Layer) *Layer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(waitFor):
			t.Error("Run did not return after cancel")
		}
	})
	select {
	case <-l.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(waitFor):
		t.Fatal("layer not ready")
	}
	return l
}

func mustListener(t *testing.T, s string) Listener {
	t.Helper()
	l, err := ParseListener(s)
	if err != nil {
		t.Fatalf("ParseListener(%q): %v", s, err)
	}
	return l
}

// listenerFor returns the bound listener of proto p.
func listenerFor(t *testing.T, l *Layer, p Proto) Listener {
	t.Helper()
	for _, lis := range l.Listeners() {
		if lis.Proto == p {
			return lis
		}
	}
	t.Fatalf("no %s listener in %v", p, l.Listeners())
	return Listener{}
}

// skipWithoutIPv6 skips the test when ::1 cannot be bound.
func skipWithoutIPv6(t *testing.T) {
	t.Helper()
	c, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		t.Skipf("skipping: IPv6 loopback ::1 is unavailable: %v", err)
	}
	c.Close()
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// readFull reads exactly n bytes from c within the deadline.
func readFull(t *testing.T, c net.Conn, n int) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(waitFor))
	buf := make([]byte, n)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("reading %d bytes: %v (got %q)", n, err, buf)
	}
	return string(buf)
}

// expectClosed checks that the peer closes c within the deadline.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(waitFor))
	buf := make([]byte, 256)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("connection not closed by the layer")
		}
		return
	}
}

func addrPort(a net.Addr) netip.AddrPort { return addrPortOf(a) }

func sipMsg(body string) string {
	return "OPTIONS sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bK1\r\nContent-Length: " +
		itoa(len(body)) + "\r\n\r\n" + body
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for n > 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}

// netipMapped returns ap with its IPv4 address in IPv4-mapped IPv6 form.
func netipMapped(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom16(ap.Addr().As16()), ap.Port())
}
