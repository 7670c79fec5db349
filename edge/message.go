package edge

import (
	"crypto/rand"
	"encoding/hex"
	"hash/fnv"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/emiago/sipgo/sip"

	"github.com/sipd/sipd/edge/transport"
)

// inbound is where a message came from.
type inbound struct {
	proto  transport.Proto
	source netip.AddrPort
	local  netip.AddrPort
	connID uint64
}

// branchPrefix starts every branch the edge generates: the magic cookie
// plus a marker, so the edge recognises its own Vias.
const branchPrefix = sip.RFC3261BranchMagicCookie + "sd"

var (
	branchSeed    = randomHex(4)
	branchCounter atomic.Uint64
)

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newBranch returns a unique branch carrying the loop-detection hash of the
// request being forwarded (RFC 3261 16.6 step 8).
func newBranch(loop uint32) string {
	var b strings.Builder
	b.Grow(48)
	b.WriteString(branchPrefix)
	b.WriteString(branchSeed)
	b.WriteString(strconv.FormatUint(branchCounter.Add(1), 36))
	b.WriteByte('.')
	b.WriteString(formatLoop(loop))
	return b.String()
}

// statelessBranch derives the branch of a statelessly forwarded request
// from the incoming one, so retransmissions get the same branch (RFC 3261 16.11).
func statelessBranch(req *sip.Request) string {
	h := fnv.New64a()
	if via := req.Via(); via != nil {
		b, _ := via.Params.Get("branch")
		h.Write([]byte(b))
		h.Write([]byte(via.Host))
	}
	h.Write([]byte(req.Recipient.String()))
	return branchPrefix + "s" + strconv.FormatUint(h.Sum64(), 36)
}

// loopHash hashes the fields that identify a request's path for loop
// detection: Request-URI, Call-ID, From tag, To tag and CSeq number.
func loopHash(req *sip.Request) uint32 {
	h := fnv.New32a()
	h.Write([]byte(req.Recipient.String()))
	if c := req.CallID(); c != nil {
		h.Write([]byte(*c))
	}
	if f := req.From(); f != nil {
		t, _ := f.Params.Get("tag")
		h.Write([]byte(t))
	}
	if t := req.To(); t != nil {
		tag, _ := t.Params.Get("tag")
		h.Write([]byte(tag))
	}
	if c := req.CSeq(); c != nil {
		h.Write([]byte(strconv.FormatUint(uint64(c.SeqNo), 10)))
	}
	return h.Sum32()
}

// localTag derives the To tag of responses the edge generates from the
// request, so retransmissions carry the same tag.
func localTag(req *sip.Request) string {
	h := fnv.New64a()
	if c := req.CallID(); c != nil {
		h.Write([]byte(*c))
	}
	if f := req.From(); f != nil {
		t, _ := f.Params.Get("tag")
		h.Write([]byte(t))
	}
	if via := req.Via(); via != nil {
		b, _ := via.Params.Get("branch")
		h.Write([]byte(b))
	}
	return "sd" + strconv.FormatUint(h.Sum64(), 36)
}

func toTag(req *sip.Request) string {
	if t := req.To(); t != nil {
		tag, _ := t.Params.Get("tag")
		return tag
	}
	return ""
}

func fromTag(req *sip.Request) string {
	if f := req.From(); f != nil {
		tag, _ := f.Params.Get("tag")
		return tag
	}
	return ""
}

// buildResponse builds a response to req the edge itself generates.
func buildResponse(req *sip.Request, code int, reason string, extra ...sip.Header) *sip.Response {
	if reason == "" {
		reason = reasonPhrase(code)
	}
	res := sip.NewResponse(code, reason)
	for _, h := range req.Headers() {
		if _, ok := h.(*sip.ViaHeader); ok {
			res.AppendHeader(sip.HeaderClone(h))
		}
	}
	if h := req.From(); h != nil {
		res.AppendHeader(sip.HeaderClone(h))
	}
	if h := req.To(); h != nil {
		to := sip.HeaderClone(h).(*sip.ToHeader)
		if code > 100 && !to.Params.Has("tag") {
			if to.Params == nil {
				to.Params = sip.NewParams()
			}
			to.Params.Add("tag", localTag(req))
		}
		res.AppendHeader(to)
	}
	if h := req.CallID(); h != nil {
		res.AppendHeader(sip.HeaderClone(h))
	}
	if h := req.CSeq(); h != nil {
		res.AppendHeader(sip.HeaderClone(h))
	}
	for _, h := range extra {
		res.AppendHeader(h)
	}
	res.AppendHeader(sip.NewHeader("Server", "sipd"))
	res.AppendHeader(sip.NewHeader("Content-Length", "0"))
	return res
}

// reasonPhrase returns the standard reason phrase of a status code.
func reasonPhrase(code int) string {
	switch code {
	case 100:
		return "Trying"
	case 180:
		return "Ringing"
	case 183:
		return "Session Progress"
	case 200:
		return "OK"
	case 202:
		return "Accepted"
	case 400:
		return "Bad Request"
	case 401:
		return "Unauthorized"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 405:
		return "Method Not Allowed"
	case 407:
		return "Proxy Authentication Required"
	case 408:
		return "Request Timeout"
	case 410:
		return "Gone"
	case 413:
		return "Request Entity Too Large"
	case 415:
		return "Unsupported Media Type"
	case 416:
		return "Unsupported URI Scheme"
	case 420:
		return "Bad Extension"
	case 423:
		return "Interval Too Brief"
	case 430:
		return "Flow Failed"
	case 480:
		return "Temporarily Unavailable"
	case 481:
		return "Call/Transaction Does Not Exist"
	case 482:
		return "Loop Detected"
	case 483:
		return "Too Many Hops"
	case 484:
		return "Address Incomplete"
	case 486:
		return "Busy Here"
	case 487:
		return "Request Terminated"
	case 488:
		return "Not Acceptable Here"
	case 491:
		return "Request Pending"
	case 500:
		return "Server Internal Error"
	case 501:
		return "Not Implemented"
	case 502:
		return "Bad Gateway"
	case 503:
		return "Service Unavailable"
	case 504:
		return "Server Time-out"
	case 513:
		return "Message Too Large"
	case 600:
		return "Busy Everywhere"
	case 603:
		return "Decline"
	case 604:
		return "Does Not Exist Anywhere"
	case 606:
		return "Not Acceptable"
	}
	switch code / 100 {
	case 1:
		return "Session Progress"
	case 2:
		return "OK"
	case 3:
		return "Redirect"
	case 4:
		return "Request Failure"
	case 5:
		return "Server Error"
	}
	return "Global Failure"
}

// saneReason reports whether a reason phrase from a service may go on the
// wire: short printable text without control characters.
func saneReason(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// hostOf strips IPv6 brackets and lower-cases a host.
func hostOf(h string) string {
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	return strings.ToLower(h)
}

// fixVia applies RFC 3261 18.2.1 and RFC 3581 to the top Via of a request:
// received= when the source differs from the sent-by host, rport=<port>
// when rport is present and empty, and both always over WS and WSS.
func fixVia(req *sip.Request, src inbound) {
	via := req.Via()
	if via == nil || !src.source.IsValid() {
		return
	}
	ip := src.source.Addr().Unmap()
	rport, hasRport := via.Params.Get("rport")
	if !hasRport && (src.proto == transport.WS || src.proto == transport.WSS) {
		// RFC 7118: a WebSocket client's sent-by is not an address (often
		// a random .invalid name); received and rport name its connection,
		// so a response forwarded statelessly finds it.
		hasRport = true
	}
	if hasRport && rport == "" {
		via.Params.Add("rport", strconv.Itoa(int(src.source.Port())))
	}
	if a, err := netip.ParseAddr(hostOf(via.Host)); err != nil || a.Unmap() != ip || hasRport {
		via.Params.Add("received", ip.String())
	}
}

// responseDest is where responses to req go (RFC 3261 18.2.2, RFC 3581):
// the same connection for reliable transports, else the source address
// when rport was asked for, else the source IP and the Via port.
func responseDest(req *sip.Request, src inbound) transport.Dest {
	d := transport.Dest{Proto: src.proto, Addr: src.source, ConnID: src.connID, Local: src.local}
	if src.proto.Reliable() {
		return d
	}
	via := req.Via()
	if via == nil {
		return d
	}
	if _, ok := via.Params.Get("rport"); ok {
		return d
	}
	port := via.Port
	if port == 0 {
		port = 5060
	}
	d.Addr = netip.AddrPortFrom(src.source.Addr(), uint16(port))
	return d
}

// splitList splits a header value on commas outside <> and quotes.
func splitList(s string) []string {
	var out []string
	depth, quoted, start := 0, false, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == '<':
			depth++
		case c == '>':
			depth--
		case c == ',' && depth == 0:
			if v := strings.TrimSpace(s[start:i]); v != "" {
				out = append(out, v)
			}
			start = i + 1
		}
	}
	if v := strings.TrimSpace(s[start:]); v != "" {
		out = append(out, v)
	}
	return out
}

// maxForwards returns the request's Max-Forwards, 70 when absent.
func maxForwards(req *sip.Request) uint32 {
	if mf := req.MaxForwards(); mf != nil {
		return uint32(*mf)
	}
	return 70
}

// decrementMaxForwards lowers Max-Forwards by one, adding it (70) when absent.
func decrementMaxForwards(req *sip.Request) {
	if mf := req.MaxForwards(); mf != nil {
		if *mf > 0 {
			*mf--
		}
		return
	}
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
}

// ensureContentLength adds Content-Length when a datagram came without it.
func ensureContentLength(req sip.Message) {
	if req.ContentLength() == nil {
		cl := sip.ContentLengthHeader(len(req.Body()))
		req.AppendHeader(&cl)
	}
}

// removeTopVia removes the first Via of a message.
func removeTopVia(m *sip.Response) {
	m.RemoveHeader("Via")
}

// formatLoop renders a loop hash as it appears in our branches.
func formatLoop(h uint32) string { return strconv.FormatUint(uint64(h), 36) }
