package edge

import (
	"io"
	"log/slog"
	"net/netip"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/sipd/sipd/edge/transport"
)

// idleEdge builds an edge that is never run: sends fail, which the entry
// point must survive.
func idleEdge(tb testing.TB) *Edge {
	tb.Helper()
	e, err := New(testConfig(), Deps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

var seeds = []string{
	"INVITE sip:bob@localhost SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-1;rport\r\nMax-Forwards: 70\r\nFrom: <sip:a@localhost>;tag=1\r\nTo: <sip:bob@localhost>\r\nCall-ID: f1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
	"OPTIONS sip:127.0.0.1 SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bKx\r\nf: <sip:a@b>;tag=1\r\nt: <sip:c@d>\r\ni: x\r\nCSeq: 2 OPTIONS\r\nl: 0\r\n\r\n",
	"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKsdab.1\r\nVia: SIP/2.0/UDP 10.0.0.1;received=10.0.0.2;rport=9\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n",
	"BYE sip:bob@10.0.0.9 SIP/2.0\r\nVia: SIP/2.0/TCP 1.1.1.1;branch=z9hG4bK2\r\nRoute: <sip:127.0.0.1:5060;lr>\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: y\r\nCSeq: 3 BYE\r\nContent-Length: 4\r\n\r\nbody",
	"CANCEL sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4\r\nFrom: <sip:a@x>\r\nTo: <sip:b@x>\r\nCall-ID: c\r\nCSeq: 1 CANCEL\r\n\r\n",
	"REGISTER sip:localhost SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4:5060;branch=z9hG4bKr\r\nFrom: <sip:a@localhost>;tag=1\r\nTo: <sip:a@localhost>\r\nCall-ID: r\r\nCSeq: 1 REGISTER\r\nContact: *\r\nExpires: 0\r\n\r\n",
}

func FuzzHandleMessage(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	e := idleEdge(f)
	src := netip.MustParseAddrPort("10.0.0.2:5070")
	local := netip.MustParseAddrPort("127.0.0.1:5060")
	f.Fuzz(func(t *testing.T, data []byte) {
		e.HandleMessage(transport.Message{Data: data, Proto: transport.UDP, Source: src, Local: local})
		var m dto.Metric
		_ = e.m.panics.Write(&m)
		if n := m.GetCounter().GetValue(); n != 0 {
			t.Fatalf("entry point recovered %v panics", n)
		}
	})
}

// BenchmarkInviteRetransmission measures the entry point on an INVITE
// retransmission: parse, sanity, Via, transaction match and absorb.
func BenchmarkInviteRetransmission(b *testing.B) {
	e := idleEdge(b)
	data := []byte(seeds[0])
	m := transport.Message{Data: data, Proto: transport.UDP, Source: netip.MustParseAddrPort("10.0.0.1:5060"), Local: netip.MustParseAddrPort("127.0.0.1:5060")}
	e.HandleMessage(m) // creates the transaction
	b.ReportAllocs()
	for b.Loop() {
		e.HandleMessage(m)
	}
}
