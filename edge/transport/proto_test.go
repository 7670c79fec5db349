package transport

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestProto(t *testing.T) {
	tests := []struct {
		in       string
		want     Proto
		name     string
		reliable bool
	}{
		{in: "udp", want: UDP, name: "UDP"},
		{in: "TCP", want: TCP, name: "TCP", reliable: true},
		{in: "Tls", want: TLS, name: "TLS", reliable: true},
		{in: "ws", want: WS, name: "WS", reliable: true},
		{in: "wss", want: WSS, name: "WSS", reliable: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			p, err := ParseProto(tt.in)
			if err != nil || p != tt.want {
				t.Fatalf("ParseProto(%q) = %v, %v; want %v", tt.in, p, err, tt.want)
			}
			if p.String() != tt.name || p.Reliable() != tt.reliable {
				t.Errorf("String, Reliable = %q, %v; want %q, %v", p.String(), p.Reliable(), tt.name, tt.reliable)
			}
		})
	}
	for _, bad := range []string{"", "sctp", "udp4"} {
		if _, err := ParseProto(bad); !errors.Is(err, ErrBadProto) {
			t.Errorf("ParseProto(%q) = %v, want ErrBadProto", bad, err)
		}
	}
	if s := Proto(0).String(); s != "Proto(0)" {
		t.Errorf("Proto(0).String() = %q", s)
	}
}

func TestParseListener(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Listener
		str     string
		wantErr bool
	}{
		{name: "udp v4", in: "udp:127.0.0.1:5060", want: Listener{UDP, netip.MustParseAddrPort("127.0.0.1:5060")}, str: "udp:127.0.0.1:5060"},
		{name: "tcp v6", in: "TCP:[::1]:5060", want: Listener{TCP, netip.MustParseAddrPort("[::1]:5060")}, str: "tcp:[::1]:5060"},
		{name: "wildcard", in: "udp:[::]:0", want: Listener{UDP, netip.MustParseAddrPort("[::]:0")}, str: "udp:[::]:0"},
		{name: "default port", in: "udp:10.0.0.1", want: Listener{UDP, netip.MustParseAddrPort("10.0.0.1:5060")}, str: "udp:10.0.0.1:5060"},
		{name: "default tls port v6", in: "tls:[2001:db8::1]", want: Listener{TLS, netip.MustParseAddrPort("[2001:db8::1]:5061")}, str: "tls:[2001:db8::1]:5061"},
		{name: "mapped becomes v4", in: "tcp:[::ffff:10.0.0.1]:5060", want: Listener{TCP, netip.MustParseAddrPort("10.0.0.1:5060")}, str: "tcp:10.0.0.1:5060"},
		{name: "no proto", in: "127.0.0.1", wantErr: true},
		{name: "bad proto", in: "sctp:127.0.0.1:5060", wantErr: true},
		{name: "hostname", in: "udp:localhost:5060", wantErr: true},
		{name: "bad port", in: "udp:127.0.0.1:99999", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseListener(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrBadListener) {
					t.Errorf("ParseListener(%q) = %v, %v; want ErrBadListener", tt.in, got, err)
				}
				return
			}
			if err != nil || got != tt.want || got.String() != tt.str {
				t.Errorf("ParseListener(%q) = %v (%q), %v; want %v (%q)", tt.in, got, got.String(), err, tt.want, tt.str)
			}
			var back Listener
			if err := back.UnmarshalText([]byte(got.String())); err != nil || back != got {
				t.Errorf("round trip of %q = %v, %v", got.String(), back, err)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	var ok Config
	ok.Listeners = []Listener{{UDP, netip.MustParseAddrPort("127.0.0.1:5060")}}
	ok.SetDefaults()
	if err := ok.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	bad := Config{
		Listeners:      []Listener{ok.Listeners[0], ok.Listeners[0], {Proto: 9, Addr: ok.Listeners[0].Addr}, {Proto: TCP}},
		MaxMessageSize: 10,
		UDPReadBuffer:  -1,
		UDPWriteBuffer: -1,
		TCPIdleTimeout: -time.Second,
		MaxConnections: -1,
		DialTimeout:    -time.Second,
		WriteTimeout:   -time.Second,
	}
	err := bad.Validate()
	if err == nil {
		t.Fatal("Validate accepted a bad config")
	}
	for _, want := range []string{
		"listeners[1] (udp:127.0.0.1:5060) is listed twice",
		"unknown protocol 9",
		"listeners[3]",
		"max_message_size (10)",
		"udp_read_buffer (-1)",
		"udp_write_buffer (-1)",
		"tcp_idle_timeout (-1s)",
		"max_connections (-1)",
		"dial_timeout (-1s)",
		"write_timeout (-1s)",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error lacks %q:\n%v", want, err)
		}
	}
}
