package transport

import (
	"errors"
	"net"
	"testing"
	"time"
)

func TestUDPRoundTrip(t *testing.T) {
	tests := []struct {
		name   string
		listen string
		client string
		v6     bool
	}{
		{name: "ipv4", listen: "udp:127.0.0.1:0", client: "udp4"},
		{name: "ipv6", listen: "udp:[::1]:0", client: "udp6", v6: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.v6 {
				skipWithoutIPv6(t)
			}
			rec := newRecorder()
			l := startLayer(t, Config{Listeners: []Listener{mustListener(t, tt.listen)}}, rec)
			lis := listenerFor(t, l, UDP)
			if lis.Addr.Port() == 0 {
				t.Fatalf("bound port is 0: %v", lis)
			}
			cl, err := net.ListenUDP(tt.client, &net.UDPAddr{IP: lis.Addr.Addr().AsSlice()})
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			// A keep-alive datagram is ignored.
			if _, err := cl.WriteToUDPAddrPort([]byte("\r\n\r\n"), lis.Addr); err != nil {
				t.Fatal(err)
			}
			req := sipMsg("")
			if _, err := cl.WriteToUDPAddrPort([]byte(req), lis.Addr); err != nil {
				t.Fatal(err)
			}
			m := rec.next(t)
			if string(m.Data) != req {
				t.Errorf("Data = %q, want %q", m.Data, req)
			}
			if m.Proto != UDP || m.ConnID != 0 || m.FramingErr != nil {
				t.Errorf("Proto, ConnID, FramingErr = %v, %d, %v; want UDP, 0, nil", m.Proto, m.ConnID, m.FramingErr)
			}
			if want := addrPort(cl.LocalAddr()); m.Source != want {
				t.Errorf("Source = %v, want %v", m.Source, want)
			}
			if m.Local != lis.Addr {
				t.Errorf("Local = %v, want %v", m.Local, lis.Addr)
			}

			resp := "SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"
			if err := l.Send(Dest{Proto: UDP, Addr: m.Source, Local: m.Local}, []byte(resp)); err != nil {
				t.Fatalf("Send: %v", err)
			}
			cl.SetReadDeadline(time.Now().Add(waitFor))
			buf := make([]byte, 2048)
			n, from, err := cl.ReadFromUDPAddrPort(buf)
			if err != nil {
				t.Fatalf("reading reply: %v", err)
			}
			if string(buf[:n]) != resp {
				t.Errorf("reply = %q, want %q", buf[:n], resp)
			}
			if addrPortOf(net.UDPAddrFromAddrPort(from)) != lis.Addr {
				t.Errorf("reply from %v, want %v", from, lis.Addr)
			}
			if s := l.Stats(); s.Received != 1 || s.Sent != 1 {
				t.Errorf("Stats Received, Sent = %d, %d; want 1, 1", s.Received, s.Sent)
			}
		})
	}
}

func TestUDPOversizedDropped(t *testing.T) {
	rec := newRecorder()
	l := startLayer(t, Config{Listeners: []Listener{mustListener(t, "udp:127.0.0.1:0")}, MaxMessageSize: 1024}, rec)
	lis := listenerFor(t, l, UDP)
	cl, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(lis.Addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	big := sipMsg(string(make([]byte, 2000)))
	if _, err := cl.Write([]byte(big)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "oversized datagram counted as dropped", func() bool { return l.Stats().Dropped == 1 })
	small := sipMsg("")
	if _, err := cl.Write([]byte(small)); err != nil {
		t.Fatal(err)
	}
	if m := rec.next(t); string(m.Data) != small {
		t.Errorf("Data = %q, want %q", m.Data, small)
	}
}

func TestUDPSendErrors(t *testing.T) {
	l := startLayer(t, Config{Listeners: []Listener{mustListener(t, "udp:127.0.0.1:0")}}, newRecorder())
	tests := []struct {
		name string
		dest Dest
		want error
	}{
		{name: "no ipv6 listener", dest: Dest{Proto: UDP, Addr: mustListener(t, "udp:[::1]:5060").Addr}, want: ErrNoListener},
		{name: "no address", dest: Dest{Proto: UDP}, want: ErrBadDest},
		{name: "ws without a connection", dest: Dest{Proto: WS, Addr: mustListener(t, "ws:127.0.0.1:5060").Addr}, want: ErrConnClosed},
		{name: "unknown proto", dest: Dest{Proto: 9, Addr: mustListener(t, "udp:127.0.0.1:5060").Addr}, want: ErrBadProto},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := l.Send(tt.dest, []byte("x")); !errors.Is(err, tt.want) {
				t.Errorf("Send = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestUDPMappedAddressSendsOverIPv4(t *testing.T) {
	l := startLayer(t, Config{Listeners: []Listener{mustListener(t, "udp:127.0.0.1:0")}}, newRecorder())
	cl, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	to := netipMapped(addrPort(cl.LocalAddr()))
	if err := l.Send(Dest{Proto: UDP, Addr: to}, []byte("hello")); err != nil {
		t.Fatalf("Send to %v: %v", to, err)
	}
	cl.SetReadDeadline(time.Now().Add(waitFor))
	buf := make([]byte, 64)
	n, _, err := cl.ReadFromUDPAddrPort(buf)
	if err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("read %q, %v; want hello", buf[:n], err)
	}
}

// TestUDPReuseportSockets checks that several sockets share a listener and
// that datagrams from many sources all arrive and are answered from the
// listener's address.
func TestUDPReuseportSockets(t *testing.T) {
	if !reuseportSupported {
		t.Skip("no SO_REUSEPORT")
	}
	rec := newRecorder()
	l := startLayer(t, Config{Listeners: []Listener{mustListener(t, "udp:127.0.0.1:0")}, UDPSockets: 4}, rec)
	b := l.bound.Load()
	if n := len(b.udp[0].socks); n != 4 {
		t.Fatalf("sockets = %d, want 4", n)
	}
	lis := listenerFor(t, l, UDP)
	const clients = 16
	for i := range clients {
		cl, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		if _, err := cl.WriteToUDPAddrPort([]byte(sipMsg("")), lis.Addr); err != nil {
			t.Fatal(err)
		}
		m := rec.next(t)
		if m.Local != lis.Addr {
			t.Errorf("client %d: Local = %v, want %v", i, m.Local, lis.Addr)
		}
		if err := l.Send(Dest{Proto: UDP, Addr: m.Source, Local: m.Local}, []byte("SIP/2.0 200 OK\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		cl.SetReadDeadline(time.Now().Add(waitFor))
		buf := make([]byte, 100)
		_, from, err := cl.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("client %d: reading reply: %v", i, err)
		}
		if addrPortOf(net.UDPAddrFromAddrPort(from)) != lis.Addr {
			t.Errorf("client %d: reply from %v, want %v", i, from, lis.Addr)
		}
	}
}
