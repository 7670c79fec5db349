package edge

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net/netip"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/sipd/sipd/edge/transport"
)

// Flow tokens (RFC 5626 section 5.2): the edge names the flow a REGISTER
// arrived on (transport, listener, source address, connection id) in the
// user part of the Path it adds, <sip:TOKEN@edge:port;transport=x;lr;ob>.
// The registrar keeps the Path with the binding, so any edge that routes a
// request to the contact sends it to this edge first, which finds the flow
// in the token and delivers over it. Tokens carry an HMAC under the edge's
// flow secret: only the edge that made one accepts it.

// ErrFlowFailed reports a request for a flow whose connection is gone;
// it is answered 430 Flow Failed (RFC 5626 section 5.3).
var ErrFlowFailed = errors.New("edge: flow failed")

const (
	flowTokenVersion = 1
	// flowTokenOutbound marks the flow of an outbound contact (RFC 5626):
	// it alone is used, and its loss is 430. Without it (a plain RFC 3261
	// registration over TCP) a lost connection falls back to the contact.
	flowTokenOutbound = 0x80
	flowAddrLen       = 18 // 16 bytes of IPv6(-mapped) address, 2 of port
	flowBodyLen       = 1 + 1 + 8 + 2*flowAddrLen
	flowMACLen        = 10
	flowTokenLen      = flowBodyLen + flowMACLen
)

// flow is where a message came from, as a token names it.
type flow struct {
	proto  transport.Proto
	local  netip.AddrPort
	source netip.AddrPort
	connID uint64
	// outbound is set for the flow of an outbound contact.
	outbound bool
}

// flowOf is the flow a message arrived on.
func flowOf(src inbound) flow {
	return flow{proto: src.proto, local: src.local, source: src.source, connID: src.connID}
}

// same reports whether two flows are one: the same connection for reliable
// transports, the same listener and source for UDP.
func (f flow) same(o flow) bool {
	if f.proto != o.proto {
		return false
	}
	if f.proto.Reliable() {
		return f.connID == o.connID
	}
	return f.source.Addr().Unmap() == o.source.Addr().Unmap() && f.source.Port() == o.source.Port()
}

func putAddr(b []byte, a netip.AddrPort) {
	ip := a.Addr().As16()
	copy(b, ip[:])
	binary.BigEndian.PutUint16(b[16:], a.Port())
}

func getAddr(b []byte) netip.AddrPort {
	ip := netip.AddrFrom16([16]byte(b[:16])).Unmap()
	return netip.AddrPortFrom(ip, binary.BigEndian.Uint16(b[16:]))
}

// flowToken encodes f, signed with the edge's flow secret.
func (e *Edge) flowToken(f flow) string {
	var raw [flowTokenLen]byte
	raw[0] = flowTokenVersion
	if f.outbound {
		raw[0] |= flowTokenOutbound
	}
	raw[1] = byte(f.proto)
	binary.BigEndian.PutUint64(raw[2:], f.connID)
	putAddr(raw[10:], f.local)
	putAddr(raw[10+flowAddrLen:], f.source)
	copy(raw[flowBodyLen:], e.flowMAC(raw[:flowBodyLen]))
	return base64.RawURLEncoding.EncodeToString(raw[:])
}

func (e *Edge) flowMAC(body []byte) []byte {
	m := hmac.New(sha256.New, e.flowSecret)
	m.Write(body)
	return m.Sum(nil)[:flowMACLen]
}

// parseFlowToken decodes a token this edge made; ok is false for anything
// else, including a token of another edge or a forged one.
func (e *Edge) parseFlowToken(s string) (flow, bool) {
	if base64.RawURLEncoding.DecodedLen(len(s)) != flowTokenLen {
		return flow{}, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(raw) != flowTokenLen || raw[0]&^flowTokenOutbound != flowTokenVersion {
		return flow{}, false
	}
	if !hmac.Equal(raw[flowBodyLen:], e.flowMAC(raw[:flowBodyLen])) {
		return flow{}, false
	}
	f := flow{
		outbound: raw[0]&flowTokenOutbound != 0,
		proto:    transport.Proto(raw[1]),
		connID:   binary.BigEndian.Uint64(raw[2:]),
		local:    getAddr(raw[10:]),
		source:   getAddr(raw[10+flowAddrLen:]),
	}
	if f.proto < transport.UDP || f.proto > transport.WSS {
		return flow{}, false
	}
	return f, true
}

// pathFor is the Path value the edge adds to a REGISTER that arrived on
// src: <sip:TOKEN@host:port;transport=x;lr;ob>, naming the listener the
// REGISTER came in on.
func (e *Edge) pathFor(src inbound, outbound bool) string {
	l := e.listenerOf(src)
	host, port := e.local.Load().sentBy(l)
	if a, err := netip.ParseAddr(host); err == nil && a.Is6() {
		host = "[" + host + "]"
	}
	f := flowOf(src)
	f.outbound = outbound
	v := "<sip:" + e.flowToken(f) + "@" + host + ":" + strconv.Itoa(port)
	if l.Proto != transport.UDP {
		v += ";transport=" + strings.ToLower(l.Proto.String())
	}
	return v + ";lr;ob>"
}

// wantsPath reports whether a REGISTER gets our Path: over a reliable
// transport (the connection is the way back to the contact) or when a
// contact asks for outbound.
func wantsPath(req *sip.Request, src inbound) bool {
	return src.proto.Reliable() || isOutbound(req)
}

// isOutbound reports a REGISTER with a contact asking for outbound
// (+sip.instance with reg-id, RFC 5626).
func isOutbound(req *sip.Request) bool {
	for _, h := range req.GetHeaders("Contact") {
		if c, ok := h.(*sip.ContactHeader); ok {
			_, inst := c.Params.Get("+sip.instance")
			_, reg := c.Params.Get("reg-id")
			if inst && reg {
				return true
			}
		}
	}
	return false
}

// inboundFlow returns the flow named by the top Route when it is ours and
// the request did not arrive on that flow: the request goes to the flow.
// A request that arrived on the flow itself (the UA's own requests,
// routed by our Record-Route) is outbound and routed as usual.
func (e *Edge) inboundFlow(req *sip.Request, src inbound) (flow, bool) {
	r := req.Route()
	if r == nil || r.Address.User == "" || !e.isLocal(r.Address.Host, r.Address.Port) {
		return flow{}, false
	}
	f, ok := e.parseFlowToken(r.Address.User)
	if !ok || f.same(flowOf(src)) {
		return flow{}, false
	}
	return f, true
}

// takeFlowRoute removes the top Route when it names a flow of ours (and a
// second local Route after it, from a double Record-Route), returning the
// flow and its token.
func (e *Edge) takeFlowRoute(req *sip.Request) (flow, string, bool) {
	r := req.Route()
	if r == nil || r.Address.User == "" || !e.isLocal(r.Address.Host, r.Address.Port) {
		return flow{}, "", false
	}
	tok := r.Address.User
	f, ok := e.parseFlowToken(tok)
	if !ok {
		return flow{}, "", false
	}
	req.RemoveHeader("Route")
	if r := req.Route(); r != nil && e.isLocal(r.Address.Host, r.Address.Port) {
		req.RemoveHeader("Route")
	}
	return f, tok, true
}

// flowDest is where a request for f goes: its connection for reliable
// transports (for an outbound or WebSocket flow without an address, so a closed
// connection fails rather than a new one being dialled; otherwise the
// Request-URI's address is the fallback, RFC 3261 style), the source
// address from the same listener for UDP.
func (e *Edge) flowDest(f flow, ruri *sip.Uri) transport.Dest {
	if f.proto.Reliable() {
		d := transport.Dest{Proto: f.proto, ConnID: f.connID}
		// A WebSocket client is reached only over the connection it
		// opened (RFC 7118): its contact's address is not dialable.
		ws := f.proto == transport.WS || f.proto == transport.WSS
		if !f.outbound && !ws {
			if h, err := hopOf(ruri); err == nil {
				if a, err := e.resolve(h); err == nil {
					d.Addr = a
				}
			}
		}
		return d
	}
	return transport.Dest{Proto: f.proto, Addr: f.source, Local: f.local}
}
