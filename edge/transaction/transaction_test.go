package transaction

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

func parseReq(t testing.TB, s string) *sip.Request {
	t.Helper()
	m, err := sip.ParseMessage([]byte(s))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return m.(*sip.Request)
}

const invite = "INVITE sip:bob@example.com SIP/2.0\r\n" +
	"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-1\r\n" +
	"From: <sip:alice@example.com>;tag=a\r\n" +
	"To: <sip:bob@example.com>\r\n" +
	"Call-ID: c1\r\n" +
	"CSeq: 1 INVITE\r\n" +
	"Content-Length: 0\r\n\r\n"

func runLayer(t *testing.T, timers Timers) *Layer {
	t.Helper()
	l := New(Config{Timers: timers, Tick: 5 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = l.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return l
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type sink struct {
	mu   sync.Mutex
	sent [][]byte
}

func (s *sink) send(b []byte) error {
	s.mu.Lock()
	s.sent = append(s.sent, b)
	s.mu.Unlock()
	return nil
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sent)
}

func TestKeys(t *testing.T) {
	req := parseReq(t, invite)
	tests := []struct {
		name   string
		method sip.RequestMethod
		want   string
	}{
		{"invite", sip.INVITE, "z9hG4bK-1|10.0.0.1:5060|INVITE"},
		{"ack maps to invite", sip.ACK, "z9hG4bK-1|10.0.0.1:5060|INVITE"},
		{"cancel has its own key", sip.CANCEL, "z9hG4bK-1|10.0.0.1:5060|CANCEL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ServerKeyFor(req, tc.method)
			if err != nil || got != tc.want {
				t.Errorf("key = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	old := parseReq(t, "INVITE sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4\r\nFrom: <sip:a@x>;tag=f\r\nTo: <sip:b@x>\r\nCall-ID: c\r\nCSeq: 5 INVITE\r\n\r\n")
	if got, _ := ServerKey(old); got != "2543|c|f|5|1.2.3.4:0|INVITE" {
		t.Errorf("rfc 2543 key = %q", got)
	}
}

func TestServerInviteRetransmitsFinalUntilACK(t *testing.T) {
	l := runLayer(t, Timers{T1: 10 * time.Millisecond, T2: 40 * time.Millisecond, T4: 20 * time.Millisecond})
	req := parseReq(t, invite)
	key, _ := ServerKey(req)
	var s sink
	tx, created := l.NewServer(key, req, false, s.send, nil)
	if !created || l.FindServer(key) != tx {
		t.Fatal("transaction not in table")
	}
	if _, again := l.NewServer(key, req, false, s.send, nil); again {
		t.Fatal("second NewServer created a transaction")
	}
	_ = tx.Respond(100, []byte("100"))
	tx.Retransmission()
	if s.count() != 2 {
		t.Fatalf("sent %d, want the 100 twice", s.count())
	}
	_ = tx.Respond(486, []byte("486"))
	eventually(t, "timer G retransmissions", func() bool { return s.count() >= 5 })
	if !tx.Ack() {
		t.Fatal("ACK not absorbed")
	}
	eventually(t, "termination after timer I", func() bool { return l.FindServer(key) == nil })
	if l.InFlight() != 0 {
		t.Errorf("in flight = %d", l.InFlight())
	}
}

type user struct {
	responses atomic.Int32
	timeouts  atomic.Int32
}

func (u *user) ClientResponse(*ClientTx, *sip.Response) { u.responses.Add(1) }
func (u *user) ClientTimeout(*ClientTx)                 { u.timeouts.Add(1) }

func TestClientInviteTimeout(t *testing.T) {
	l := runLayer(t, Timers{T1: 10 * time.Millisecond, FinalTimeout: 100 * time.Millisecond})
	req := parseReq(t, invite)
	var s sink
	var u user
	key := ClientKey("z9hG4bK-1", sip.INVITE)
	if _, err := l.NewClient(key, req, []byte("INVITE"), false, s.send, &u); err != nil {
		t.Fatal(err)
	}
	eventually(t, "timer B", func() bool { return u.timeouts.Load() == 1 })
	if s.count() < 3 {
		t.Errorf("sent %d, want retransmissions by timer A", s.count())
	}
	eventually(t, "removal", func() bool { return l.FindClient(key) == nil })
}

func TestClientInviteNon2xxIsAcked(t *testing.T) {
	l := runLayer(t, Timers{T1: 10 * time.Millisecond})
	req := parseReq(t, invite)
	var s sink
	var u user
	key := ClientKey("z9hG4bK-1", sip.INVITE)
	tx, err := l.NewClient(key, req, []byte("INVITE"), true, s.send, &u)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := sip.ParseMessage([]byte("SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-1\r\nFrom: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@example.com>;tag=b\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"))
	tx.Receive(m.(*sip.Response))
	if u.responses.Load() != 1 {
		t.Errorf("responses passed up = %d", u.responses.Load())
	}
	s.mu.Lock()
	last := string(s.sent[len(s.sent)-1])
	s.mu.Unlock()
	ack, err := sip.ParseMessage([]byte(last))
	if err != nil || ack.(*sip.Request).Method != sip.ACK {
		t.Fatalf("last sent is not an ACK: %q", last)
	}
	if tag, _ := ack.(*sip.Request).To().Params.Get("tag"); tag != "b" {
		t.Errorf("ACK To tag = %q", tag)
	}
}

func TestWheel(t *testing.T) {
	w := newWheel(time.Millisecond)
	var fired atomic.Int32
	w.after(3*time.Millisecond, func() { fired.Add(1) })
	stopped := w.after(2*time.Millisecond, func() { fired.Add(100) })
	stopped.stop()
	far := w.after(time.Duration(wheelSlots+5)*time.Millisecond, func() { fired.Add(10) })
	_ = far
	for range 3 {
		w.advance()
	}
	if fired.Load() != 1 {
		t.Fatalf("fired = %d after 3 ticks, want 1", fired.Load())
	}
	for range wheelSlots + 2 {
		w.advance()
	}
	if fired.Load() != 11 {
		t.Fatalf("fired = %d, want 11", fired.Load())
	}
}

func BenchmarkServerKeyAndMatch(b *testing.B) {
	l := New(Config{})
	data := []byte(invite)
	req := parseReq(b, invite)
	key, _ := ServerKey(req)
	l.NewServer(key, req, false, func([]byte) error { return nil }, nil)
	b.ReportAllocs()
	for b.Loop() {
		m, err := sip.ParseMessage(data)
		if err != nil {
			b.Fatal(err)
		}
		k, _ := ServerKey(m.(*sip.Request))
		if l.FindServer(k) == nil {
			b.Fatal("no match")
		}
	}
}

func TestAppendResponseKey(t *testing.T) {
	tests := []struct {
		name string
		res  string
	}{
		{"invite", "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKsd1\r\nCSeq: 1 INVITE\r\n\r\n"},
		{"bye", "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKsd2\r\nCSeq: 2 BYE\r\n\r\n"},
		{"no branch", "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060\r\nCSeq: 2 BYE\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := sip.ParseMessage([]byte(tt.res))
			if err != nil {
				t.Fatal(err)
			}
			res := m.(*sip.Response)
			want, err := ResponseKey(res)
			if err != nil {
				t.Fatal(err)
			}
			got, err := AppendResponseKey(nil, res)
			if err != nil || string(got) != want {
				t.Fatalf("AppendResponseKey = %q, %v; want %q", got, err, want)
			}
		})
	}
}
