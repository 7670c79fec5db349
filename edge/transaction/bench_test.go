package transaction

import (
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// benchKeys returns n distinct server keys, as ServerKey builds them.
func benchKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "z9hG4bK776asdhds" + strconv.Itoa(i) + "|192.0.2.10:5060|INVITE"
	}
	return keys
}

// BenchmarkTxInsertMatchTerminate measures the transaction table alone: a
// server transaction is created, found once (a retransmission) and
// terminated, over a table holding 4096 other live transactions.
func BenchmarkTxInsertMatchTerminate(b *testing.B) {
	l := New(Config{})
	req := parseReq(b, invite)
	send := func([]byte) error { return nil }
	for _, k := range benchKeys(4096) {
		l.NewServer("live|"+k, req, false, send, nil)
	}
	keys := benchKeys(1024)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		k := keys[i&1023]
		i++
		tx, ok := l.NewServer(k, req, false, send, nil)
		if !ok {
			b.Fatal("key exists")
		}
		if l.FindServer(k) != tx {
			b.Fatal("no match")
		}
		tx.Terminate()
	}
}

// BenchmarkTxInsertMatchTerminateParallel is the same from every P.
func BenchmarkTxInsertMatchTerminateParallel(b *testing.B) {
	l := New(Config{})
	req := parseReq(b, invite)
	send := func([]byte) error { return nil }
	b.ReportAllocs()
	var seq atomicCounter
	b.RunParallel(func(pb *testing.PB) {
		base := "z9hG4bKp" + strconv.FormatUint(seq.next(), 10) + "-"
		keys := benchKeys(256)
		for i := range keys {
			keys[i] = base + keys[i]
		}
		i := 0
		for pb.Next() {
			k := keys[i&255]
			i++
			tx, ok := l.NewServer(k, req, false, send, nil)
			if !ok {
				b.Fatal("key exists")
			}
			if l.FindServer(k) != tx {
				b.Fatal("no match")
			}
			tx.Terminate()
		}
	})
}

// BenchmarkServerKey measures building a server key from a parsed request.
func BenchmarkServerKey(b *testing.B) {
	req := parseReq(b, invite)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ServerKey(req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkResponseKey measures building a client key from a response.
func BenchmarkResponseKey(b *testing.B) {
	m, err := sip.ParseMessage([]byte("SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKsdab12.3\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"))
	if err != nil {
		b.Fatal(err)
	}
	res := m.(*sip.Response)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ResponseKey(res); err != nil {
			b.Fatal(err)
		}
	}
}

type atomicCounter struct{ n atomic.Uint64 }

func (c *atomicCounter) next() uint64 { return c.n.Add(1) }

// BenchmarkAppendResponseKey measures the allocation-free response key
// the edge uses to match responses.
func BenchmarkAppendResponseKey(b *testing.B) {
	m, err := sip.ParseMessage([]byte("SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKsdab12.3\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"))
	if err != nil {
		b.Fatal(err)
	}
	res := m.(*sip.Response)
	var buf [128]byte
	b.ReportAllocs()
	for b.Loop() {
		if _, err := AppendResponseKey(buf[:0], res); err != nil {
			b.Fatal(err)
		}
	}
}
