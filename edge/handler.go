package edge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/sipd/sipd/edge/transaction"
	"github.com/sipd/sipd/edge/transport"
)

// allowHeader lists the methods the edge answers or proxies.
const allowHeader = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, PRACK, UPDATE, INFO, MESSAGE, SUBSCRIBE, NOTIFY, REFER, PUBLISH"

// HandleMessage is the SIP entry point, called by the transport for every
// message. A panic is answered with 500 (for requests), counted and logged.
func (e *Edge) HandleMessage(m transport.Message) {
	var req *sip.Request
	var src inbound
	defer func() {
		if r := recover(); r != nil {
			e.m.panics.Inc()
			e.logger.Error("panic handling sip message", "panic", fmt.Sprint(r), "source", m.Source.String(), "stack", string(debug.Stack()))
			if req != nil {
				func() {
					defer func() { _ = recover() }()
					e.replyStateless(req, src, 500, "")
				}()
			}
		}
	}()
	if !e.bound.Load() {
		select {
		case <-e.tl.Ready():
			e.initLocal()
		default:
		}
	}
	src = inbound{proto: m.Proto, source: m.Source, local: m.Local, connID: m.ConnID}
	if m.FramingErr == nil && e.absorbRetransmission(m.Data) {
		return
	}
	msg, err := parseMessage(m.Data)
	if m.FramingErr != nil && err == nil {
		err = m.FramingErr
	}
	switch msg := msg.(type) {
	case *sip.Request:
		req = msg
		e.handleRequest(msg, err, src)
	case *sip.Response:
		if err != nil {
			e.m.malformed.Inc()
			e.logger.Debug("dropping malformed response", "source", m.Source.String(), "err", err)
			return
		}
		e.handleResponse(msg, src)
	default:
		e.m.malformed.Inc()
		e.logger.Debug("dropping unparsable message", "source", m.Source.String(), "err", err)
	}
}

// absorbRetransmission answers a retransmitted request (not ACK or CANCEL)
// from its server transaction, found by the key read from the raw bytes,
// without parsing the message; false means the message needs the full
// handling.
func (e *Edge) absorbRetransmission(data []byte) bool {
	var buf [160]byte
	key, ok := rawServerKey(data, buf[:0])
	if !ok {
		return false
	}
	stx := e.tx.FindServerBytes(key)
	if stx == nil {
		return false
	}
	method := key[bytes.LastIndexByte(key, '|')+1:]
	e.m.requests.WithLabelValues(methodLabel(string(method))).Inc()
	stx.Retransmission()
	return true
}

// checkRequest reports the reason phrase of a 400 for a malformed request,
// or "" when the request is well formed.
func checkRequest(req *sip.Request, parseErr error) string {
	switch {
	case errors.Is(parseErr, sip.ErrParseReadBodyIncomplete):
		return "Bad Content-Length"
	case parseErr != nil:
		return "Malformed Message"
	case req.Via() == nil:
		return "Missing Via"
	case req.CallID() == nil:
		return "Missing Call-ID"
	case req.CSeq() == nil:
		return "Missing CSeq"
	case req.From() == nil:
		return "Missing From"
	case req.To() == nil:
		return "Missing To"
	case string(req.CSeq().MethodName) != string(req.Method):
		return "CSeq Method Mismatch"
	case req.Recipient.Host == "" && req.Recipient.Raw() == "":
		return "Bad Request-URI"
	}
	return ""
}

// handleRequest is the request route: sanity, Via, transactions, then local
// answers, registration, sequential or initial routing.
func (e *Edge) handleRequest(req *sip.Request, parseErr error, src inbound) {
	e.m.requests.WithLabelValues(methodLabel(string(req.Method))).Inc()
	if reason := checkRequest(req, parseErr); reason != "" {
		e.m.malformed.Inc()
		if req.Via() == nil || req.Method == sip.ACK {
			return
		}
		fixVia(req, src)
		e.replyStateless(req, src, 400, reason)
		return
	}
	fixVia(req, src)

	switch req.Method {
	case sip.ACK:
		e.handleACK(req, src)
		return
	case sip.CANCEL:
		e.handleCANCEL(req, src)
		return
	}

	key, err := transaction.ServerKey(req)
	if err != nil {
		e.replyStateless(req, src, 400, "Bad Via")
		return
	}
	if stx := e.tx.FindServer(key); stx != nil {
		stx.Retransmission()
		return
	}

	// Strip the Route headers that name this edge (loose routing, and the
	// second entry of a double Record-Route).
	// A top Route with a flow token of ours, on a request that did not
	// come from that flow, delivers to the flow (flow.go); it stays for
	// prepare to take.
	_, toFlow := e.inboundFlow(req, src)
	popped := 0
	if !toFlow {
		popped = e.popLocalRoutes(req)
	}
	hasRoute := req.Route() != nil
	uri := &req.Recipient
	toUs := uri.User == "" && uri.Host != "" && e.isLocal(uri.Host, uri.Port) && !hasRoute

	switch {
	case req.Method == sip.OPTIONS && toUs:
		e.replyStateless(req, src, 200, "",
			sip.NewHeader("Allow", allowHeader),
			sip.NewHeader("Accept", "application/sdp"))
		return
	case maxForwards(req) == 0:
		e.replyStateless(req, src, 483, "")
		return
	case e.looped(req):
		e.replyStateless(req, src, 482, "")
		return
	}

	if e.tx.InFlight() >= int64(e.cfg.MaxTransactions) {
		e.m.overload.Inc()
		e.replyStateless(req, src, 503, "", retryAfterHeader(retryAfter))
		return
	}
	if e.draining.Load() && toTag(req) == "" {
		// Shutting down: new work goes to another edge; requests within
		// dialogs and the transactions we have are still served.
		e.replyStateless(req, src, 503, "", retryAfterHeader(retryAfter))
		return
	}

	switch {
	case req.Method == sip.REGISTER && !hasRoute:
		if !e.isLocalDomain(uri.Host) {
			e.replyStateless(req, src, 403, "Domain Not Served")
			return
		}
		e.register(req, key, src)
	case toFlow:
		e.forwardToFlow(req, key, src)
	case toTag(req) != "":
		e.sequential(req, key, src, popped)
	default:
		e.initial(req, key, src)
	}
}

// popLocalRoutes removes the top Route headers that name this edge (at
// most two: double Record-Route) and returns how many it removed.
func (e *Edge) popLocalRoutes(req *sip.Request) int {
	n := 0
	for n < 2 {
		r := req.Route()
		if r == nil || !e.isLocal(r.Address.Host, r.Address.Port) {
			break
		}
		req.RemoveHeader("Route")
		n++
	}
	return n
}

// looped reports a request that carries a Via of ours whose loop hash
// matches the request as it is now (RFC 3261 16.3 step 4).
func (e *Edge) looped(req *sip.Request) bool {
	var h uint32
	hashed := false
	for _, hdr := range req.Headers() {
		via, ok := hdr.(*sip.ViaHeader)
		if !ok {
			continue
		}
		b, _ := via.Params.Get("branch")
		if !strings.HasPrefix(b, branchPrefix) {
			continue
		}
		i := strings.LastIndexByte(b, '.')
		// Only a Via naming this edge's own host and port counts: another
		// edge on the same host (a local domain too) is not us.
		if i < 0 || !e.isLocal(via.Host, via.Port) {
			continue
		}
		if !hashed {
			h, hashed = loopHash(req), true
		}
		if b[i+1:] == formatLoop(h) {
			return true
		}
	}
	return false
}

// handleACK absorbs the ACK of a non-2xx final response we sent and routes
// every other ACK statelessly.
func (e *Edge) handleACK(req *sip.Request, src inbound) {
	if key, err := transaction.ServerKey(req); err == nil {
		if stx := e.tx.FindServer(key); stx != nil && stx.Ack() {
			return
		}
	}
	if _, toFlow := e.inboundFlow(req, src); !toFlow {
		e.popLocalRoutes(req)
	}
	if maxForwards(req) == 0 || e.looped(req) {
		return
	}
	e.sequential(req, "", src, 0)
}

// handleCANCEL answers a CANCEL and cancels the INVITE it matches (RFC 3261 9.2, 16.10).
func (e *Edge) handleCANCEL(req *sip.Request, src inbound) {
	key, err := transaction.ServerKeyFor(req, sip.INVITE)
	if err != nil {
		e.replyStateless(req, src, 400, "Bad Via")
		return
	}
	stx := e.tx.FindServer(key)
	if stx == nil {
		e.replyStateless(req, src, 481, "")
		return
	}
	e.replyStateless(req, src, 200, "")
	if p, ok := stx.User().(*proxyTx); ok {
		p.cancel()
	}
}

// handleResponse relays a response to its client transaction, or
// statelessly along the Vias when it is ours but unmatched.
func (e *Edge) handleResponse(res *sip.Response, src inbound) {
	via := res.Via()
	if via == nil || res.CSeq() == nil || res.CallID() == nil {
		e.m.malformed.Inc()
		return
	}
	var buf [128]byte
	key, err := transaction.AppendResponseKey(buf[:0], res)
	if err != nil {
		e.m.malformed.Inc()
		return
	}
	if ctx := e.tx.FindClientBytes(key); ctx != nil {
		ctx.Receive(res)
		return
	}
	b, _ := via.Params.Get("branch")
	if !strings.HasPrefix(b, branchPrefix) || !e.isLocal(via.Host, via.Port) {
		if e.logger.Enabled(context.Background(), slog.LevelDebug) {
			e.logger.Debug("dropping stray response", "source", src.source.String(), "call_id", string(*res.CallID()))
		}
		return
	}
	removeTopVia(res)
	d, ok := viaDest(res.Via())
	if !ok {
		return
	}
	e.m.response(res.StatusCode)
	_ = e.send(d, []byte(res.String()))
}

// viaDest is where a response goes by its (new) top Via: received/rport or
// sent-by. Only IP addresses are used.
func viaDest(via *sip.ViaHeader) (transport.Dest, bool) {
	if via == nil {
		return transport.Dest{}, false
	}
	proto, err := transport.ParseProto(via.Transport)
	if err != nil {
		return transport.Dest{}, false
	}
	host := via.Host
	if r, ok := via.Params.Get("received"); ok && r != "" {
		host = r
	}
	ip, err := netip.ParseAddr(hostOf(host))
	if err != nil {
		return transport.Dest{}, false
	}
	port := via.Port
	if r, ok := via.Params.Get("rport"); ok && r != "" {
		n, err := strconv.Atoi(r)
		if err != nil {
			return transport.Dest{}, false
		}
		port = n
	}
	if port <= 0 || port > 65535 {
		port = 5060
	}
	return transport.Dest{Proto: proto, Addr: netip.AddrPortFrom(ip, uint16(port))}, true
}
