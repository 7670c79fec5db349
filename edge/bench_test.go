package edge

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/sipd/sipd/edge/transaction"
	"github.com/sipd/sipd/edge/transport"
)

// benchInvite is a realistic initial INVITE as a softphone sends it: twelve
// headers, some the proxy never looks into, and an SDP offer (about 1 kB).
const benchInvite = "INVITE sip:bob@example.com SIP/2.0\r\n" +
	"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\r\n" +
	"Max-Forwards: 70\r\n" +
	"To: Bob <sip:bob@example.com>\r\n" +
	"From: Alice <sip:alice@example.com>;tag=1928301774\r\n" +
	"Call-ID: a84b4c76e66710@pc33.example.com\r\n" +
	"CSeq: 314159 INVITE\r\n" +
	"Contact: <sip:alice@192.0.2.10:5060;transport=udp>\r\n" +
	"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, PRACK, UPDATE, REFER, NOTIFY\r\n" +
	"Supported: replaces, timer, 100rel\r\n" +
	"User-Agent: Softphone/7.1.2 (Linux)\r\n" +
	"Session-Expires: 1800\r\n" +
	"P-Asserted-Identity: \"Alice\" <sip:alice@example.com>\r\n" +
	"Content-Type: application/sdp\r\n" +
	"Content-Length: 300\r\n" +
	"\r\n" +
	"v=0\r\n" +
	"o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\n" +
	"s=-\r\n" +
	"c=IN IP4 192.0.2.10\r\n" +
	"t=0 0\r\n" +
	"m=audio 49170 RTP/AVP 0 8 9 18 101\r\n" +
	"a=rtpmap:0 PCMU/8000\r\n" +
	"a=rtpmap:8 PCMA/8000\r\n" +
	"a=rtpmap:9 G722/8000\r\n" +
	"a=rtpmap:18 G729/8000\r\n" +
	"a=rtpmap:101 telephone-event/8000\r\n" +
	"a=fmtp:101 0-16\r\n" +
	"a=ptime:20\r\n" +
	"a=sendrecv\r\n" +
	"a=x-p:0123\r\n"

func init() {
	// Keep the Content-Length of benchInvite honest.
	if _, body, _ := strings.Cut(benchInvite, "\r\n\r\n"); len(body) != 300 {
		panic("benchInvite body is not 300 bytes")
	}
}

// BenchmarkParseInvite measures the edge's parse of a full INVITE with SDP.
func BenchmarkParseInvite(b *testing.B) {
	data := []byte(benchInvite)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseMessage(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInviteParseAndMatch measures the retransmission path without
// sending: a full parse, the server key and the lookup of the existing
// transaction.
func BenchmarkInviteParseAndMatch(b *testing.B) {
	tl := transaction.New(transaction.Config{})
	data := []byte(benchInvite)
	m, err := parseMessage(data)
	if err != nil {
		b.Fatal(err)
	}
	key, err := transaction.ServerKey(m.(*sip.Request))
	if err != nil {
		b.Fatal(err)
	}
	tl.NewServer(key, m.(*sip.Request), false, func([]byte) error { return nil }, nil)
	b.ReportAllocs()
	for b.Loop() {
		m, err := parseMessage(data)
		if err != nil {
			b.Fatal(err)
		}
		key, err := transaction.ServerKey(m.(*sip.Request))
		if err != nil {
			b.Fatal(err)
		}
		if tl.FindServer(key) == nil {
			b.Fatal("no match")
		}
	}
}

// BenchmarkHandleRetransmission measures the entry point, HandleMessage,
// on a retransmitted INVITE whose transaction exists (the 100 Trying is
// sent again; the edge is not running, so that send fails).
func BenchmarkHandleRetransmission(b *testing.B) {
	e := idleEdge(b)
	m := transport.Message{Data: []byte(benchInvite), Proto: transport.UDP,
		Source: netip.MustParseAddrPort("192.0.2.10:5060"), Local: netip.MustParseAddrPort("127.0.0.1:5060")}
	e.HandleMessage(m) // creates the transaction
	b.ReportAllocs()
	for b.Loop() {
		e.HandleMessage(m)
	}
}
