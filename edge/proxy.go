package edge

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	routerv1 "github.com/sipd/sipd/proto/gen/sipd/router/v1"

	"github.com/sipd/sipd/edge/transaction"
	"github.com/sipd/sipd/edge/transport"
)

// proxyTx is the proxy state of one server transaction: the request as
// received, the targets and the branches forked to them, and the best
// final response so far (RFC 3261 16.7).
type proxyTx struct {
	e        *Edge
	req      *sip.Request
	src      inbound
	respDest transport.Dest
	stx      *transaction.ServerTx
	invite   bool
	span     trace.Span
	ctx      context.Context // carries the span
	spanOnce sync.Once

	mu          sync.Mutex
	groups      []*routerv1.TargetGroup
	failover    []int32
	recordRoute bool
	next        int // next group to try
	branches    []*branch
	pending     int // branches of the current group without a final response
	bestCode    int
	bestRes     *sip.Response // nil when the best is synthetic
	routed      bool
	finalSent   bool
	cancelled   bool // CANCEL received or a 2xx arrived: cancel the rest
}

// branch is one forwarded copy of a request and its client transaction.
type branch struct {
	p           *proxyTx
	req         *sip.Request
	dest        transport.Dest
	provisional bool // guarded by p.mu
	done        bool // guarded by p.mu
	cancelSent  bool // guarded by p.mu
}

var (
	_ transaction.ServerUser = (*proxyTx)(nil)
	_ transaction.ClientUser = (*branch)(nil)
)

// newProxyTx creates the server transaction of req. It returns false when
// a transaction under key already exists (the request was a
// retransmission, handled here).
func (e *Edge) newProxyTx(req *sip.Request, key string, src inbound) (*proxyTx, bool) {
	p := &proxyTx{e: e, req: req, src: src, respDest: responseDest(req, src), invite: req.Method == sip.INVITE}
	dest := p.respDest
	stx, created := e.tx.NewServer(key, req, src.proto.Reliable(), func(b []byte) error { return e.send(dest, b) }, p)
	if !created {
		stx.Retransmission()
		return nil, false
	}
	p.stx = stx
	var callID string
	if c := req.CallID(); c != nil {
		callID = string(*c)
	}
	e.pending.Add(1)
	p.ctx, p.span = e.tracer.Start(context.Background(), "SIP "+string(req.Method),
		trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(
			attribute.String("sip.method", string(req.Method)),
			attribute.String("sip.call_id", callID),
			attribute.String("net.transport", src.proto.String()),
			attribute.String("net.peer", src.source.String()),
		))
	return p, true
}

// callContext is the context of a gRPC call made for this transaction:
// the span's, bounded by Run's context and the service timeout.
func (p *proxyTx) callContext() (context.Context, context.CancelFunc) {
	ctx := trace.ContextWithSpan(p.e.ctx(), p.span)
	return context.WithTimeout(ctx, p.e.cfg.ServiceTimeout)
}

// ServerTerminated ends the span if no final response ended it.
func (p *proxyTx) ServerTerminated(*transaction.ServerTx) { p.endSpan(0) }

func (p *proxyTx) endSpan(code int) {
	p.spanOnce.Do(func() {
		p.e.pending.Add(-1)
		if code > 0 {
			p.span.SetAttributes(attribute.Int("sip.status_code", code))
			if code >= 500 {
				p.span.SetStatus(codes.Error, reasonPhrase(code))
			}
		}
		p.span.End()
	})
}

// respond sends a response the edge generates through the server transaction.
func (p *proxyTx) respond(code int, reason string, extra ...sip.Header) {
	p.send(buildResponse(p.req, code, reason, extra...))
}

// send sends res upstream through the server transaction; a 2xx after the
// transaction ended still goes out (RFC 6026).
func (p *proxyTx) send(res *sip.Response) {
	code := res.StatusCode
	data := []byte(res.String())
	err := p.stx.Respond(code, data)
	switch {
	case err == nil:
	case errors.Is(err, transaction.ErrTerminated) && code >= 200 && code < 300:
		_ = p.e.send(p.respDest, data)
	case errors.Is(err, transaction.ErrFinal), errors.Is(err, transaction.ErrTerminated):
		return
	}
	p.e.m.response(code)
	if code >= 200 {
		p.endSpan(code)
	}
}

// finish sends a final response the edge generates, once.
func (p *proxyTx) finish(code int, reason string, extra ...sip.Header) {
	p.mu.Lock()
	if p.finalSent {
		p.mu.Unlock()
		return
	}
	p.finalSent = true
	p.mu.Unlock()
	p.respond(code, reason, extra...)
}

// finishErr answers an error through the one error-to-SIP table.
func (p *proxyTx) finishErr(err error) {
	st := statusFor(err)
	if st.retryAfter {
		p.finish(st.code, "", retryAfterHeader(retryAfter))
		return
	}
	p.finish(st.code, "")
}

// initial handles an out-of-dialog request: a server transaction, 100
// Trying for INVITE, then a static route (static.go) or one Route call on
// a worker.
func (e *Edge) initial(req *sip.Request, key string, src inbound) {
	p, ok := e.newProxyTx(req, key, src)
	if !ok {
		return
	}
	if p.invite {
		p.respond(100, "")
	}
	if p.routeStatic() {
		return
	}
	if !e.submit(p.route) {
		p.finishErr(ErrOverload)
	}
}

// route asks the router what to do with the request and does it.
func (p *proxyTx) route() {
	e := p.e
	if e.deps.Router == nil {
		p.finish(404, "")
		return
	}
	req := p.req
	in := &routerv1.RouteRequest{
		Method:     string(req.Method),
		RequestUri: req.Recipient.String(),
		FromUri:    req.From().Address.String(),
		FromTag:    fromTag(req),
		ToUri:      req.To().Address.String(),
		CallId:     string(*req.CallID()),
		Source:     p.src.source.String(),
		Transport:  routerv1.Transport(p.src.proto),
		Edge:       e.ID(),
		Trusted:    e.isTrusted(p.src.source.Addr()),
	}
	if from := req.From(); from != nil {
		in.Credentials = credentialsFor(req, "Proxy-Authorization", hostOf(from.Address.Host))
	}
	for _, name := range []string{"User-Agent", "P-Asserted-Identity", "Priority"} {
		if h := req.GetHeader(name); h != nil {
			if in.Headers == nil {
				in.Headers = make(map[string]string)
			}
			in.Headers[stringsToLower(name)] = h.Value()
		}
	}
	ctx, cancel := p.callContext()
	start := time.Now()
	resp, err := e.deps.Router.Route(ctx, in)
	cancel()
	e.m.grpc.WithLabelValues("router", "Route", grpcCode(err)).Observe(time.Since(start).Seconds())
	if err != nil {
		e.logger.Warn("route call failed", "call_id", in.CallId, "err", err)
		p.span.RecordError(err)
		p.finishErr(err)
		return
	}
	p.mu.Lock()
	p.routed = true
	cancelled := p.cancelled
	p.mu.Unlock()
	if cancelled {
		p.finish(487, "")
		return
	}
	switch a := resp.GetAction().(type) {
	case *routerv1.RouteResponse_Reject:
		r := a.Reject
		code := int(r.GetCode())
		if code < 300 || code > 699 {
			code = 500
		}
		reason := r.GetReason()
		if !saneReason(reason) {
			reason = ""
		}
		var extra []sip.Header
		if ra := r.GetRetryAfter(); ra != nil && ra.AsDuration() > 0 {
			extra = append(extra, retryAfterHeader(int((ra.AsDuration()+time.Second-1)/time.Second)))
		}
		extra = append(extra, rejectHeaders(r.GetHeaders())...)
		p.finish(code, reason, extra...)
	case *routerv1.RouteResponse_Forward:
		f := a.Forward
		n := 0
		for _, g := range f.GetGroups() {
			n += len(g.GetTargets())
		}
		if n == 0 {
			p.finish(480, "")
			return
		}
		p.mu.Lock()
		p.groups = f.GetGroups()
		p.failover = f.GetFailoverCodes()
		p.recordRoute = f.GetRecordRoute()
		p.mu.Unlock()
		p.startGroup(0)
	default:
		p.finishErr(ErrBadRouterAnswer)
	}
}

// sequential forwards an in-dialog request (or any ACK) by its Route set
// or Request-URI, without asking any service: statelessly for ACK, with a
// transaction for the rest.
func (e *Edge) sequential(req *sip.Request, key string, src inbound, popped int) {
	if req.Route() == nil && e.isLocal(req.Recipient.Host, req.Recipient.Port) {
		if req.Method != sip.ACK {
			e.replyStateless(req, src, 404, "")
		}
		return
	}
	if req.Method == sip.ACK {
		fwdACK := func() {
			fwd, dest, err := e.prepare(req, src, nil, false, true)
			if err != nil {
				e.logger.Debug("dropping ack", "err", err)
				return
			}
			_ = e.send(dest, []byte(fwd.String()))
		}
		if hopNeedsDNS(req, nil) {
			e.submit(fwdACK)
		} else {
			fwdACK()
		}
		return
	}
	p, ok := e.newProxyTx(req, key, src)
	if !ok {
		return
	}
	if p.invite {
		p.respond(100, "")
	}
	p.mu.Lock()
	p.routed = true
	p.groups = []*routerv1.TargetGroup{{Targets: []*routerv1.Target{nil}}}
	p.mu.Unlock()
	if hopNeedsDNS(req, nil) {
		if !e.submit(func() { p.startGroup(0) }) {
			p.finishErr(ErrOverload)
		}
		return
	}
	p.startGroup(0)
}

// forwardToFlow forwards a request whose top Route names one of our flows
// over that flow, without asking the router: an initial request (sent here
// by another edge, or by us, from the binding's Path) is record-routed with
// the flow token so that the dialog's requests find the flow too.
func (e *Edge) forwardToFlow(req *sip.Request, key string, src inbound) {
	p, ok := e.newProxyTx(req, key, src)
	if !ok {
		return
	}
	if p.invite {
		p.respond(100, "")
	}
	p.mu.Lock()
	p.routed = true
	p.recordRoute = toTag(req) == ""
	p.groups = []*routerv1.TargetGroup{{Targets: []*routerv1.Target{nil}}}
	p.mu.Unlock()
	p.startGroup(0)
}

// startGroup forks the request to every target of group idx (parallel
// forking); a nil target forwards the request as it is (sequential).
func (p *proxyTx) startGroup(idx int) {
	e := p.e
	p.mu.Lock()
	if p.finalSent {
		p.mu.Unlock()
		return
	}
	if p.cancelled {
		p.finalSent = true
		p.mu.Unlock()
		p.respond(487, "")
		return
	}
	targets := p.groups[idx].GetTargets()
	p.next = idx + 1
	if len(targets) == 0 {
		if better(480, p.bestCode) {
			p.bestCode, p.bestRes = 480, nil
		}
		after := p.afterBranchLocked()
		p.mu.Unlock()
		after()
		return
	}
	p.pending += len(targets)
	rr := p.recordRoute
	p.mu.Unlock()

	for _, t := range targets {
		b := &branch{p: p}
		fwd, dest, err := e.prepare(p.req, p.src, t, rr, false)
		if err != nil {
			e.logger.Info("cannot forward to target", "call_id", string(*p.req.CallID()), "err", err)
			p.branchFinal(b, nil, statusFor(err).code)
			continue
		}
		b.req, b.dest = fwd, dest
		p.mu.Lock()
		p.branches = append(p.branches, b)
		p.mu.Unlock()
		key := transaction.ClientKey(branchOf(fwd), fwd.Method)
		_, err = e.tx.NewClient(key, fwd, []byte(fwd.String()), dest.Proto.Reliable(), b.sendFunc(), b)
		if err != nil {
			e.logger.Info("forwarding failed", "call_id", string(*p.req.CallID()), "dest", dest.Addr.String(), "err", err)
			p.branchFinal(b, nil, statusFor(err).code)
		}
	}
}

func (b *branch) sendFunc() transaction.SendFunc {
	e, d := b.p.e, b.dest
	return func(data []byte) error { return e.send(d, data) }
}

// better reports whether final code a beats the best so far, b (RFC 3261
// 16.7, simplified): 6xx wins, then the lowest class; ties keep the first.
func better(a, b int) bool {
	if b == 0 {
		return true
	}
	if (a >= 600) != (b >= 600) {
		return a >= 600
	}
	return a/100 < b/100
}

// isFailoverLocked reports whether the best response of a group moves on
// to the next group: the router's failover codes, by default 408 and 5xx.
func (p *proxyTx) isFailoverLocked(code int) bool {
	if len(p.failover) == 0 {
		return code == 408 || code/100 == 5
	}
	return slices.Contains(p.failover, int32(code))
}

// branchFinal records a branch's final non-2xx response (res nil for a
// synthetic one: timeout or send failure).
func (p *proxyTx) branchFinal(b *branch, res *sip.Response, code int) {
	p.mu.Lock()
	if b.done {
		p.mu.Unlock()
		return
	}
	b.done = true
	p.pending--
	if res == nil && p.cancelled && code == 408 {
		code = 487
	}
	if better(code, p.bestCode) {
		p.bestCode, p.bestRes = code, res
	}
	after := p.afterBranchLocked()
	p.mu.Unlock()
	after()
}

// afterBranchLocked decides, once every branch of the group is done,
// between the next group and the best response; it returns what to do
// after the lock is released.
func (p *proxyTx) afterBranchLocked() func() {
	if p.pending > 0 || p.finalSent {
		return func() {}
	}
	if !p.cancelled && p.next < len(p.groups) && p.isFailoverLocked(p.bestCode) {
		idx := p.next
		p.next++
		return func() {
			if !p.e.submit(func() { p.startGroup(idx) }) {
				p.finishErr(ErrOverload)
			}
		}
	}
	p.finalSent = true
	code, res := p.bestCode, p.bestRes
	return func() {
		if res != nil {
			p.send(res)
			return
		}
		st := sipStatus{code: code}
		if code == 503 {
			st.retryAfter = true
		}
		if st.retryAfter {
			p.respond(code, "", retryAfterHeader(retryAfter))
		} else {
			p.respond(code, "")
		}
	}
}

// ClientResponse handles a response on a branch: provisional responses go
// upstream (except 100), every 2xx goes upstream at once and cancels the
// other branches, other finals compete for the best response.
func (b *branch) ClientResponse(_ *transaction.ClientTx, res *sip.Response) {
	p := b.p
	removeTopVia(res)
	code := res.StatusCode
	switch {
	case code < 200:
		p.mu.Lock()
		b.provisional = true
		doCancel := p.invite && p.cancelled && !b.cancelSent && !b.done
		if doCancel {
			b.cancelSent = true
		}
		relay := code > 100 && !p.finalSent
		p.mu.Unlock()
		if doCancel {
			b.cancel()
		}
		if relay {
			p.send(res)
		}
	case code < 300:
		p.mu.Lock()
		if !b.done {
			b.done = true
			p.pending--
		}
		p.finalSent = true
		var cancels []*branch
		if p.invite {
			p.cancelled = true
			for _, o := range p.branches {
				if !o.done && o.provisional && !o.cancelSent {
					o.cancelSent = true
					cancels = append(cancels, o)
				}
			}
		}
		p.mu.Unlock()
		p.send(res)
		for _, o := range cancels {
			o.cancel()
		}
	default:
		p.branchFinal(b, res, code)
	}
}

// ClientTimeout turns a branch timeout into a 408 (and CANCELs the
// branch when it had a provisional response).
func (b *branch) ClientTimeout(*transaction.ClientTx) {
	p := b.p
	p.mu.Lock()
	doCancel := p.invite && b.provisional && !b.cancelSent && !b.done
	if doCancel {
		b.cancelSent = true
	}
	p.mu.Unlock()
	if doCancel {
		b.cancel()
	}
	p.branchFinal(b, nil, 408)
}

// cancel sends a CANCEL for the branch's INVITE.
func (b *branch) cancel() {
	c := transaction.BuildCANCEL(b.req)
	key := transaction.ClientKey(branchOf(c), sip.CANCEL)
	if _, err := b.p.e.tx.NewClient(key, c, []byte(c.String()), b.dest.Proto.Reliable(), b.sendFunc(), nil); err != nil {
		b.p.e.logger.Debug("cancel not sent", "err", err)
	}
}

// cancel handles a CANCEL from upstream (RFC 3261 16.10): pending branches
// with a provisional response are CANCELled now, the others when their
// first provisional arrives; no new branch is started.
func (p *proxyTx) cancel() {
	p.mu.Lock()
	if p.finalSent || !p.invite {
		p.mu.Unlock()
		return
	}
	p.cancelled = true
	var list []*branch
	for _, b := range p.branches {
		if !b.done && b.provisional && !b.cancelSent {
			b.cancelSent = true
			list = append(list, b)
		}
	}
	p.mu.Unlock()
	for _, b := range list {
		b.cancel()
	}
}

func stringsToLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
