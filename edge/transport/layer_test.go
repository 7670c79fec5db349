package transport

import (
	"context"
	"errors"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestNewRejects(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		h    Handler
		want string
	}{
		{name: "no listeners", cfg: Config{}, h: newRecorder(), want: "listeners must not be empty"},
		{name: "nil handler", cfg: Config{Listeners: []Listener{{Proto: UDP, Addr: mustListener(t, "udp:127.0.0.1:0").Addr}}}, want: ErrNilHandler.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg, tt.h, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestTLSListenersNeedACertificate(t *testing.T) {
	for _, s := range []string{"tls:127.0.0.1:0", "wss:127.0.0.1:0"} {
		t.Run(s, func(t *testing.T) {
			_, err := New(Config{Listeners: []Listener{mustListener(t, s)}}, newRecorder(), testLogger(t))
			if err == nil || !strings.Contains(err.Error(), "tls.cert_file") {
				t.Errorf("New = %v, want an error naming tls.cert_file", err)
			}
		})
	}
}

func TestRunBindErrorNamesListener(t *testing.T) {
	taken, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	lis := Listener{Proto: TCP, Addr: addrPort(taken.Addr())}
	l, err := New(Config{Listeners: []Listener{mustListener(t, "udp:127.0.0.1:0"), lis}}, newRecorder(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	err = l.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), lis.String()) {
		t.Errorf("Run = %v, want an error naming %s", err, lis)
	}
	select {
	case <-l.Ready():
		t.Error("Ready closed although binding failed")
	default:
	}
}

func TestRunTwice(t *testing.T) {
	l := startLayer(t, Config{Listeners: []Listener{mustListener(t, "udp:127.0.0.1:0")}}, newRecorder())
	if err := l.Run(context.Background()); !errors.Is(err, ErrAlreadyRunning) {
		t.Errorf("second Run = %v, want ErrAlreadyRunning", err)
	}
}

func TestSendBeforeRun(t *testing.T) {
	l, err := New(Config{Listeners: []Listener{mustListener(t, "udp:127.0.0.1:0")}}, newRecorder(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	to := mustListener(t, "udp:127.0.0.1:5060").Addr
	if err := l.Send(Dest{Proto: UDP, Addr: to}, []byte("x")); !errors.Is(err, ErrNoListener) {
		t.Errorf("UDP Send = %v, want ErrNoListener", err)
	}
	if err := l.Send(Dest{Proto: TCP, Addr: to}, []byte("x")); !errors.Is(err, ErrNotRunning) {
		t.Errorf("TCP Send = %v, want ErrNotRunning", err)
	}
}

// TestDualStackSamePort binds 0.0.0.0 and [::] on one port, which works only
// because the IPv6 socket is v6-only.
func TestDualStackSamePort(t *testing.T) {
	skipWithoutIPv6(t)
	for _, p := range []string{"udp", "tcp"} {
		t.Run(p, func(t *testing.T) {
			a := startLayer(t, Config{Listeners: []Listener{mustListener(t, p+":0.0.0.0:0")}}, newRecorder())
			port := a.Listeners()[0].Addr.Port()
			b := startLayer(t, Config{Listeners: []Listener{mustListener(t, p+":[::]:"+itoa(int(port)))}}, newRecorder())
			if got := b.Listeners()[0].Addr.Port(); got != port {
				t.Errorf("IPv6 port = %d, want %d", got, port)
			}
		})
	}
}

func TestRunStopsWithoutLeaks(t *testing.T) {
	before := runtime.NumGoroutine()
	recA, recB := newRecorder(), newRecorder()
	b, errB := New(Config{Listeners: []Listener{mustListener(t, "tcp:127.0.0.1:0")}}, recB, testLogger(t))
	a, errA := New(Config{Listeners: []Listener{mustListener(t, "udp:127.0.0.1:0"), mustListener(t, "tcp:127.0.0.1:0")}}, recA, testLogger(t))
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctxB, cancelB := context.WithCancel(context.Background())
	defer cancelB()
	doneA, doneB := make(chan error, 1), make(chan error, 1)
	go func() { doneA <- a.Run(ctx) }()
	go func() { doneB <- b.Run(ctxB) }()
	for _, l := range []*Layer{a, b} {
		select {
		case <-l.Ready():
		case <-time.After(waitFor):
			t.Fatal("not ready")
		}
	}
	// An inbound connection to a, and an outbound one from a to b.
	c := dialLayer(t, a)
	if _, err := c.Write([]byte(sipMsg(""))); err != nil {
		t.Fatal(err)
	}
	recA.next(t)
	if err := a.Send(Dest{Proto: TCP, Addr: listenerFor(t, b, TCP).Addr}, []byte(sipMsg(""))); err != nil {
		t.Fatal(err)
	}
	recB.next(t)

	cancel()
	select {
	case err := <-doneA:
		if err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	case <-time.After(waitFor):
		t.Fatal("Run did not return after cancel")
	}
	if s := a.Stats(); s.Connections != 0 {
		t.Errorf("Connections after Run = %d, want 0", s.Connections)
	}
	expectClosed(t, c)
	if err := a.Send(Dest{Proto: TCP, Addr: listenerFor(t, b, TCP).Addr}, []byte("x")); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Send after Run = %v, want ErrNotRunning", err)
	}
	cancelB()
	<-doneB
	eventually(t, "goroutines back to the baseline", func() bool { return runtime.NumGoroutine() <= before })
}
