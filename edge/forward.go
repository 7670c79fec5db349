package edge

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/emiago/sipgo/sip"

	routerv1 "github.com/sipd/sipd/proto/gen/sipd/router/v1"

	"github.com/sipd/sipd/edge/transport"
)

// hop is a next hop taken from a URI.
type hop struct {
	proto transport.Proto
	host  string
	port  int
}

// Next-hop errors, built once: they come from the request, not the network.
var (
	errNoHost       = fmt.Errorf("%w: uri without host", ErrNoRoute)
	errBadTransport = fmt.Errorf("%w: unusable transport parameter", ErrNoRoute)
)

// hopOf reads the next hop of a SIP URI: host, port (5060, 5061 for TLS)
// and the transport parameter (UDP by default).
func hopOf(u *sip.Uri) (hop, error) {
	if u == nil || u.Host == "" {
		return hop{}, errNoHost
	}
	h := hop{proto: transport.UDP, host: hostOf(u.Host), port: u.Port}
	if t, ok := u.UriParams.Get("transport"); ok && t != "" {
		p, err := transport.ParseProto(t)
		if err != nil {
			return hop{}, errBadTransport
		}
		h.proto = p
	}
	if u.IsEncrypted() {
		// sips: is TLS all the way (RFC 3261 26.2.2): transport=tcp (or
		// none) is TLS, transport=ws is WSS; UDP cannot carry it.
		switch h.proto {
		case transport.UDP:
			if _, ok := u.UriParams.Get("transport"); ok {
				return hop{}, errBadTransport
			}
			h.proto = transport.TLS
		case transport.TCP:
			h.proto = transport.TLS
		case transport.WS:
			h.proto = transport.WSS
		}
	}
	if h.port == 0 {
		h.port = 5060
		if h.proto == transport.TLS || h.proto == transport.WSS {
			h.port = 5061
		}
	}
	return h, nil
}

// needsDNS reports whether a URI's host is a name, not an address.
func needsDNS(u *sip.Uri) bool {
	_, err := netip.ParseAddr(hostOf(u.Host))
	return err != nil
}

// resolve turns a hop into an address: literal IPs as they are, names by
// A/AAAA lookup (no SRV or NAPTR yet) bounded by the service timeout.
func (e *Edge) resolve(h hop) (netip.AddrPort, error) {
	if ip, err := netip.ParseAddr(h.host); err == nil {
		return netip.AddrPortFrom(ip.Unmap(), uint16(h.port)), nil
	}
	ctx, cancel := context.WithTimeout(e.ctx(), e.cfg.ServiceTimeout)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", h.host)
	if err != nil || len(ips) == 0 {
		return netip.AddrPort{}, fmt.Errorf("%w: resolving %q: %v", ErrNoRoute, h.host, err)
	}
	best := ips[0]
	for _, ip := range ips {
		if ip.Unmap().Is4() {
			best = ip
			break
		}
	}
	return netip.AddrPortFrom(best.Unmap(), uint16(h.port)), nil
}

// parseURI parses a URI that may come in angle brackets.
func parseURI(s string) (sip.Uri, error) {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '<'); i >= 0 {
		if j := strings.IndexByte(s[i:], '>'); j > 0 {
			s = s[i+1 : i+j]
		}
	}
	var u sip.Uri
	if err := sip.ParseUri(s, &u); err != nil {
		return u, fmt.Errorf("%w: parsing uri %q: %v", ErrNoRoute, s, err)
	}
	return u, nil
}

// nextHopURI picks what a request is sent to: the target's destination,
// else the top Route, else the Request-URI.
func nextHopURI(req *sip.Request, t *routerv1.Target) (*sip.Uri, error) {
	if t != nil && t.GetDestination() != "" {
		u, err := parseURI(t.GetDestination())
		if err != nil {
			return nil, err
		}
		return &u, nil
	}
	if r := req.Route(); r != nil {
		return &r.Address, nil
	}
	return &req.Recipient, nil
}

// hopNeedsDNS reports whether forwarding req to t needs a DNS lookup.
func hopNeedsDNS(req *sip.Request, t *routerv1.Target) bool {
	if t != nil && len(t.GetRoute()) == 0 && t.GetDestination() == "" {
		u, err := parseURI(t.GetRequestUri())
		return err != nil || needsDNS(&u)
	}
	if t != nil {
		return true // rare: pre-loaded routes or destinations; let a worker decide
	}
	u, err := nextHopURI(req, nil)
	return err != nil || needsDNS(u)
}

// prepare builds the copy of base forwarded to target t (nil for a
// sequential request, which keeps its Request-URI and Route set) and where
// it goes. stateless derives the branch from the incoming one.
func (e *Edge) prepare(base *sip.Request, src inbound, t *routerv1.Target, recordRoute, stateless bool) (*sip.Request, transport.Dest, error) {
	loop := loopHash(base)
	fwd := base.Clone()
	if t != nil {
		u, err := parseURI(t.GetRequestUri())
		if err != nil {
			return nil, transport.Dest{}, err
		}
		fwd.Recipient = u
		routes := t.GetRoute()
		hs := make([]sip.Header, 0, len(routes))
		for _, r := range routes {
			ru, err := parseURI(r)
			if err != nil {
				return nil, transport.Dest{}, err
			}
			hs = append(hs, &sip.RouteHeader{Address: ru})
		}
		if len(hs) > 0 {
			fwd.PrependHeader(hs...)
		}
		for _, h := range t.GetAddHeaders() {
			if h.GetName() != "" && !strings.ContainsAny(h.GetName()+h.GetValue(), "\r\n") {
				fwd.AppendHeader(sip.NewHeader(h.GetName(), h.GetValue()))
			}
		}
	}
	var (
		dest transport.Dest
		out  transport.Listener
	)
	// A top Route naming a flow of ours (our Path of the binding, or our
	// Record-Route of a dialog over a flow): deliver over that flow.
	fl, token, viaFlow := e.takeFlowRoute(fwd)
	if viaFlow {
		dest = e.flowDest(fl, &fwd.Recipient)
		out = e.listenerOf(inbound{proto: fl.proto, local: fl.local})
	} else {
		nu, err := nextHopURI(fwd, t)
		if err != nil {
			return nil, transport.Dest{}, err
		}
		h, err := hopOf(nu)
		if err != nil {
			return nil, transport.Dest{}, err
		}
		addr, err := e.resolve(h)
		if err != nil {
			return nil, transport.Dest{}, err
		}
		dest = transport.Dest{Proto: h.proto, Addr: addr}
		if (h.proto == transport.TLS || h.proto == transport.WSS) && needsDNS(nu) {
			dest.Host = h.host // the server's certificate must name it
		}
		if t != nil && t.GetConnectionId() != 0 && t.GetEdge() == e.ID() && h.proto.Reliable() {
			dest.ConnID = t.GetConnectionId()
		}
		var served bool
		out, served = e.listenerFor(h.proto, addr)
		if served {
			dest.Local = out.Addr
		}
	}
	li := e.local.Load()
	outHost, outPort := li.sentBy(out)

	if recordRoute {
		if token == "" && (src.proto == transport.WS || src.proto == transport.WSS) {
			// A WebSocket client is reachable only over its connection
			// (RFC 7118 section 5): our Record-Route names the flow, so
			// the dialog's requests towards it take that connection.
			f := flowOf(src)
			f.outbound = true
			token = e.flowToken(f)
		}
		in := e.listenerOf(src)
		double := in.Proto != out.Proto || in.Addr != out.Addr
		if double {
			inHost, inPort := li.sentBy(in)
			fwd.PrependHeader(withToken(recordRouteHeader(inHost, inPort, in.Proto, true), token))
		}
		fwd.PrependHeader(withToken(recordRouteHeader(outHost, outPort, out.Proto, double), token))
	}
	decrementMaxForwards(fwd)
	branch := newBranch(loop)
	if stateless {
		branch = statelessBranch(base)
	}
	params := sip.NewParams()
	params.Add("branch", branch)
	params.Add("rport", "")
	fwd.PrependHeader(&sip.ViaHeader{
		ProtocolName:    "SIP",
		ProtocolVersion: "2.0",
		Transport:       dest.Proto.String(),
		Host:            outHost,
		Port:            outPort,
		Params:          params,
	})
	ensureContentLength(fwd)
	return fwd, dest, nil
}

// recordRouteHeader builds our Record-Route: <sip:host:port;transport=x;lr>.
func recordRouteHeader(host string, port int, proto transport.Proto, r2 bool) *sip.RecordRouteHeader {
	params := sip.NewParams()
	if proto != transport.UDP {
		params.Add("transport", strings.ToLower(proto.String()))
	}
	params.Add("lr", "")
	if r2 {
		params.Add("r2", "on")
	}
	return &sip.RecordRouteHeader{Address: sip.Uri{Scheme: "sip", Host: host, Port: port, UriParams: params}}
}

// withToken puts a flow token in the user part of our Record-Route, so
// that requests of the dialog find the flow again (RFC 5626 section 5.3).
func withToken(rr *sip.RecordRouteHeader, token string) *sip.RecordRouteHeader {
	rr.Address.User = token
	return rr
}

// branchOf returns the branch of a request's top Via.
func branchOf(req *sip.Request) string {
	if via := req.Via(); via != nil {
		b, _ := via.Params.Get("branch")
		return b
	}
	return ""
}
