package edge

import (
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"google.golang.org/protobuf/types/known/durationpb"

	registrarv1 "github.com/sipd/sipd/proto/gen/sipd/registrar/v1"

	"github.com/sipd/sipd/edge/transport"
)

// register hands a REGISTER for a local domain to the registrar, on a worker.
func (e *Edge) register(req *sip.Request, key string, src inbound) {
	p, ok := e.newProxyTx(req, key, src)
	if !ok {
		return
	}
	if !e.submit(p.register) {
		p.finishErr(ErrOverload)
	}
}

// registerRequest turns a REGISTER into the registrar's request.
func (e *Edge) registerRequest(req *sip.Request, src inbound) *registrarv1.RegisterRequest {
	in := &registrarv1.RegisterRequest{
		Aor:    aorOf(&req.To().Address),
		CallId: string(*req.CallID()),
		Cseq:   req.CSeq().SeqNo,
		Flow: &registrarv1.Flow{
			Edge:         e.ID(),
			Transport:    registrarv1.Transport(src.proto),
			Source:       src.source.String(),
			Local:        src.local.String(),
			ConnectionId: src.connID,
		},
		RequestUri:  req.Recipient.String(),
		ViaMismatch: viaMismatch(req, src),
		Trusted:     e.isTrusted(src.source.Addr()),
		Credentials: credentialsFor(req, "Authorization", hostOf(req.To().Address.Host)),
		Gruu:        supports(req, "gruu"),
	}
	for _, h := range req.GetHeaders("Contact") {
		c, ok := h.(*sip.ContactHeader)
		if !ok {
			continue
		}
		if c.Address.Wildcard {
			in.Wildcard = true
			continue
		}
		u := c.Address.Clone()
		u.Headers = nil
		cu := &registrarv1.ContactUpdate{Uri: u.String()}
		if v, ok := c.Params.Get("expires"); ok {
			if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32); err == nil {
				cu.Expires = durationpb.New(time.Duration(n) * time.Second)
			}
		}
		if v, ok := c.Params.Get("q"); ok {
			cu.Q = parseQ(v)
		}
		if v, ok := c.Params.Get("+sip.instance"); ok {
			cu.Instance = strings.Trim(v, "\"")
		}
		if v, ok := c.Params.Get("reg-id"); ok {
			if n, err := strconv.ParseInt(v, 10, 32); err == nil {
				cu.RegId = int32(n)
			}
		}
		in.Contacts = append(in.Contacts, cu)
	}
	if h := req.GetHeader("Expires"); h != nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(h.Value()), 10, 32); err == nil {
			in.Expires = durationpb.New(time.Duration(n) * time.Second)
		}
	}
	if wantsPath(req, src) {
		// Ours is the hop next to the registrar: it comes first.
		in.Path = append(in.Path, e.pathFor(src, isOutbound(req)))
	}
	for _, h := range req.GetHeaders("Path") {
		in.Path = append(in.Path, splitList(h.Value())...)
	}
	if h := req.GetHeader("User-Agent"); h != nil {
		in.UserAgent = h.Value()
	}
	return in
}

// aorOf normalises an address-of-record: "sip:user@host", host lower-cased,
// no port or parameters.
func aorOf(u *sip.Uri) string {
	scheme := strings.ToLower(u.Scheme)
	if scheme == "" {
		scheme = "sip"
	}
	host := hostOf(u.Host)
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if u.User == "" {
		return scheme + ":" + host
	}
	return scheme + ":" + u.User + "@" + host
}

// parseQ reads a q-value ("0.5") in thousandths; 0 when unset or invalid.
func parseQ(s string) int32 {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || f < 0 || f > 1 {
		return 0
	}
	return int32(f*1000 + 0.5)
}

// register makes the Register call and answers with its outcome.
func (p *proxyTx) register() {
	e := p.e
	if e.deps.Registrar == nil {
		p.finishErr(ErrNotRunning)
		return
	}
	in := e.registerRequest(p.req, p.src)
	ctx, cancel := p.callContext()
	start := time.Now()
	resp, err := e.deps.Registrar.Register(ctx, in)
	cancel()
	e.m.grpc.WithLabelValues("registrar", "Register", grpcCode(err)).Observe(time.Since(start).Seconds())
	if err != nil {
		e.logger.Warn("register call failed", "aor", in.Aor, "err", err)
		p.span.RecordError(err)
		p.finishErr(err)
		return
	}
	code := int(resp.GetCode())
	if code < 200 || code > 699 {
		code = 500
	}
	var extra []sip.Header
	switch {
	case code >= 200 && code < 300:
		outbound := false
		for _, b := range resp.GetBindings() {
			secs := int64(b.GetExpires().AsDuration().Round(time.Second) / time.Second)
			v := "<" + b.GetUri() + ">;expires=" + strconv.FormatInt(secs, 10)
			if b.GetInstance() != "" && !strings.ContainsAny(b.GetInstance(), "\"\r\n") {
				v += `;+sip.instance="` + b.GetInstance() + `"`
				if b.GetRegId() > 0 {
					v += ";reg-id=" + strconv.Itoa(int(b.GetRegId()))
					outbound = true
				}
			}
			// GRUUs (RFC 5627), present when the REGISTER had Supported: gruu.
			if g := b.GetPubGruu(); g != "" && !strings.ContainsAny(g, "\"\\\r\n") {
				v += `;pub-gruu="` + g + `"`
			}
			if g := b.GetTempGruu(); g != "" && !strings.ContainsAny(g, "\"\\\r\n") {
				v += `;temp-gruu="` + g + `"`
			}
			extra = append(extra, sip.NewHeader("Contact", v))
		}
		// Path is echoed to a UA that supports it (RFC 3327 section 5.3);
		// outbound is required once the registrar kept a flow (RFC 5626
		// section 6).
		if supports(p.req, "path") && len(in.Path) > 0 {
			extra = append(extra, sip.NewHeader("Path", strings.Join(in.Path, ", ")))
		}
		if outbound && wantsPath(p.req, p.src) {
			extra = append(extra, sip.NewHeader("Require", "outbound"))
		}
		extra = append(extra, sip.NewHeader("Date", time.Now().UTC().Format("Mon, 02 Jan 2006 15:04:05 GMT")))
		e.natRegistered(in.Aor, resp.GetBindings(), p.src)
	case code == 401:
		for _, c := range resp.GetChallenges() {
			if v := c.GetValue(); v != "" && !strings.ContainsAny(v, "\r\n") {
				extra = append(extra, sip.NewHeader("WWW-Authenticate", v))
			}
		}
	case code == 423:
		if me := resp.GetMinExpires(); me != nil {
			extra = append(extra, sip.NewHeader("Min-Expires", strconv.FormatInt(int64(me.AsDuration()/time.Second), 10)))
		}
	case code == 503:
		secs := retryAfter
		if ra := resp.GetRetryAfter(); ra != nil && ra.AsDuration() > 0 {
			secs = int((ra.AsDuration() + time.Second - 1) / time.Second)
		}
		extra = append(extra, retryAfterHeader(secs))
	}
	reason := resp.GetReason()
	if !saneReason(reason) {
		reason = ""
	}
	p.finish(code, reason, extra...)
}

// supports reports whether req lists option tag in Supported.
func supports(req *sip.Request, tag string) bool {
	for _, h := range req.GetHeaders("Supported") {
		for _, t := range strings.Split(h.Value(), ",") {
			if strings.EqualFold(strings.TrimSpace(t), tag) {
				return true
			}
		}
	}
	return false
}

// viaMismatch reports a REGISTER whose source differs from its top Via's
// sent-by: another IP address, or over UDP another port (Kamailio's
// nat_uac_test flags 2 and 16). The UA sits behind a NAT it does not know
// about, so its contact is reached at the source address.
func viaMismatch(req *sip.Request, src inbound) bool {
	via := req.Via()
	if via == nil {
		return false
	}
	ip, err := netip.ParseAddr(hostOf(via.Host))
	if err != nil || ip.Unmap() != src.source.Addr().Unmap() {
		return true
	}
	port := via.Port
	if port == 0 {
		port = 5060
	}
	return src.proto == transport.UDP && port != int(src.source.Port())
}
