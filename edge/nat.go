package edge

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"

	registrarv1 "github.com/sipd/sipd/proto/gen/sipd/registrar/v1"

	"github.com/sipd/sipd/edge/transaction"
	"github.com/sipd/sipd/edge/transport"
)

// NAT keep-alive and remove-on-close (Kamailio's nathelper and
// tcp_connection closed handling). The edge that answered a REGISTER owns
// the bindings whose flow is the one that REGISTER came in on: the
// registrar records that flow (edge, source, connection) with the binding,
// so exactly one edge owns a binding at a time. The owner keeps:
//
//   - NATed UDP bindings (the registrar set a received address): it sends
//     them an OPTIONS (a client transaction, retransmitted and timed out
//     by the transaction layer) or a CRLF every interval, and after
//     max_lost OPTIONS without any answer it unregisters the contact;
//   - bindings over TCP/TLS that only their connection reaches (outbound
//     or NATed contacts, see needsFlow): when the connection closes, it
//     unregisters them (remove_on_close).
//
// Before it unregisters, the edge looks the binding up: if the registrar
// now records another flow (the UA registered again elsewhere) it only
// forgets its own entry.

// NATConfig configures keep-alives towards NATed contacts and the removal
// of contacts whose connection closed.
type NATConfig struct {
	// Keepalive is what the edge sends to the NATed UDP contacts it owns:
	// "options" (an OPTIONS request; no answer counts as a lost ping),
	// "crlf" (a CRLF datagram that keeps the NAT binding open; nothing is
	// answered, so nothing is counted) or "off" (default).
	Keepalive string `yaml:"keepalive"`
	// Interval is the time between two keep-alives to one contact
	// (default 30s). An OPTIONS is sent again only after the previous one
	// was answered or timed out (timers.final_timeout).
	Interval time.Duration `yaml:"interval"`
	// MaxLost is how many OPTIONS in a row may go unanswered before the
	// contact is unregistered (default 3).
	MaxLost int `yaml:"max_lost"`
	// RemoveOnClose unregisters the contacts registered over a TCP or TLS
	// connection when that connection closes (default true): outbound
	// contacts (+sip.instance and reg-id) and NATed ones, which nothing else
	// reaches. A plain contact at a reachable address is kept; requests
	// for it open a new connection.
	RemoveOnClose *bool `yaml:"remove_on_close"`
}

// Keep-alive modes of NATConfig.Keepalive.
const (
	KeepaliveOff     = "off"
	KeepaliveOptions = "options"
	KeepaliveCRLF    = "crlf"
)

// Defaults of NATConfig.
const (
	DefaultNATInterval = 30 * time.Second
	DefaultNATMaxLost  = 3
)

// SetDefaults fills zero values.
func (c *NATConfig) SetDefaults() {
	if c.Keepalive == "" {
		c.Keepalive = KeepaliveOff
	}
	if c.Interval == 0 {
		c.Interval = DefaultNATInterval
	}
	if c.MaxLost == 0 {
		c.MaxLost = DefaultNATMaxLost
	}
	if c.RemoveOnClose == nil {
		on := true
		c.RemoveOnClose = &on
	}
}

// Validate reports every problem at once.
func (c NATConfig) Validate() error {
	var errs []error
	switch c.Keepalive {
	case KeepaliveOff, KeepaliveOptions, KeepaliveCRLF:
	default:
		errs = append(errs, fmt.Errorf("nat.keepalive (%q) must be off, options or crlf", c.Keepalive))
	}
	if c.Interval <= 0 {
		errs = append(errs, fmt.Errorf("nat.interval (%s) must be > 0", c.Interval))
	}
	if c.MaxLost < 1 {
		errs = append(errs, fmt.Errorf("nat.max_lost (%d) must be >= 1", c.MaxLost))
	}
	return errors.Join(errs...)
}

func (c NATConfig) removeOnClose() bool { return c.RemoveOnClose == nil || *c.RemoveOnClose }

// enabled reports whether the edge keeps any binding.
func (c NATConfig) enabled() bool { return c.Keepalive != KeepaliveOff || c.removeOnClose() }

const (
	// natShards is the number of shards of the binding table; the
	// keep-alive loop visits one per tick, so each every interval.
	natShards = 64
	// natMaxPingsPerTick bounds the keep-alives sent in one tick; the
	// rest of the shard waits for its next visit.
	natMaxPingsPerTick = 1024
)

// natKey names an owned binding.
type natKey struct{ aor, contact string }

// natBinding is a binding this edge owns.
type natBinding struct {
	proto    transport.Proto
	dest     transport.Dest // where keep-alives go: the flow's source (UDP)
	connID   uint64         // the connection for TCP/TLS
	source   netip.AddrPort
	expires  time.Time
	ping     bool // a NATed UDP contact that gets keep-alives
	pending  bool // an OPTIONS is in flight
	lost     int  // OPTIONS unanswered in a row
	dropping bool // an unregister job is queued
}

// natShard holds the owned bindings of the AORs that hash to it.
type natShard struct {
	mu   sync.Mutex
	aors map[string]map[string]*natBinding // aor -> contact -> binding
}

// connShard indexes owned bindings by connection.
type connShard struct {
	mu    sync.Mutex
	conns map[uint64]map[natKey]struct{}
}

// natTable is the bindings this edge owns. Lock order: never hold a
// natShard and a connShard at once.
type natTable struct {
	seed   maphash.Seed
	shards [natShards]natShard
	byConn [natShards]connShard

	pings, lostPings, removed atomic.Uint64
}

func newNATTable() *natTable {
	t := &natTable{seed: maphash.MakeSeed()}
	for i := range t.shards {
		t.shards[i].aors = make(map[string]map[string]*natBinding)
		t.byConn[i].conns = make(map[uint64]map[natKey]struct{})
	}
	return t
}

func (t *natTable) shard(aor string) *natShard {
	return &t.shards[maphash.String(t.seed, aor)&(natShards-1)]
}

func (t *natTable) connShard(id uint64) *connShard { return &t.byConn[id&(natShards-1)] }

func (t *natTable) indexConn(id uint64, k natKey) {
	cs := t.connShard(id)
	cs.mu.Lock()
	m := cs.conns[id]
	if m == nil {
		m = make(map[natKey]struct{})
		cs.conns[id] = m
	}
	m[k] = struct{}{}
	cs.mu.Unlock()
}

func (t *natTable) unindexConn(id uint64, k natKey) {
	cs := t.connShard(id)
	cs.mu.Lock()
	if m := cs.conns[id]; m != nil {
		delete(m, k)
		if len(m) == 0 {
			delete(cs.conns, id)
		}
	}
	cs.mu.Unlock()
}

// takeConn removes and returns the keys indexed under connection id.
func (t *natTable) takeConn(id uint64) []natKey {
	cs := t.connShard(id)
	cs.mu.Lock()
	m := cs.conns[id]
	delete(cs.conns, id)
	cs.mu.Unlock()
	keys := make([]natKey, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

// deleteLocked removes one binding from its shard.
func (s *natShard) deleteLocked(k natKey) {
	if m := s.aors[k.aor]; m != nil {
		delete(m, k.contact)
		if len(m) == 0 {
			delete(s.aors, k.aor)
		}
	}
}

// count is the number of owned bindings, for tests.
func (t *natTable) count() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for _, m := range s.aors {
			n += len(m)
		}
		s.mu.Unlock()
	}
	return n
}

// natRegistered updates the owned bindings of aor from a 2xx to a REGISTER
// that arrived on src: bindings whose flow is src's are ours, bindings of
// ours that are gone or moved to another flow are forgotten.
func (e *Edge) natRegistered(aor string, bindings []*registrarv1.Binding, src inbound) {
	cfg := e.cfg.NAT
	if !cfg.enabled() {
		return
	}
	t := e.nat
	now := time.Now()
	type connChange struct {
		add bool
		id  uint64
		key natKey
	}
	var changes []connChange
	s := t.shard(aor)
	s.mu.Lock()
	old := s.aors[aor]
	next := make(map[string]*natBinding, len(bindings))
	for _, b := range bindings {
		if !e.ownsFlow(b.GetFlow(), src) {
			continue
		}
		nb := &natBinding{proto: src.proto, source: src.source, expires: now.Add(b.GetExpires().AsDuration())}
		switch {
		case src.proto == transport.UDP && b.GetReceived() != "" && cfg.Keepalive != KeepaliveOff:
			nb.ping = true
			nb.dest = transport.Dest{Proto: transport.UDP, Addr: src.source, Local: src.local}
		case src.proto.Reliable() && cfg.removeOnClose() && needsFlow(b):
			nb.connID = src.connID
		default:
			continue
		}
		if ob := old[b.GetUri()]; ob != nil && ob.ping && nb.ping && ob.source == nb.source {
			// Keep the state of the pings in flight.
			nb.pending, nb.lost, nb.dropping = ob.pending, ob.lost, ob.dropping
		}
		next[b.GetUri()] = nb
	}
	for contact, ob := range old {
		nb := next[contact]
		if ob.connID != 0 && (nb == nil || nb.connID != ob.connID) {
			changes = append(changes, connChange{id: ob.connID, key: natKey{aor, contact}})
		}
	}
	for contact, nb := range next {
		if nb.connID != 0 {
			if ob := old[contact]; ob == nil || ob.connID != nb.connID {
				changes = append(changes, connChange{add: true, id: nb.connID, key: natKey{aor, contact}})
			}
		}
	}
	if len(next) == 0 {
		delete(s.aors, aor)
	} else {
		s.aors[aor] = next
	}
	s.mu.Unlock()
	for _, c := range changes {
		if c.add {
			t.indexConn(c.id, c.key)
		} else {
			t.unindexConn(c.id, c.key)
		}
	}
}

// needsFlow reports whether a binding is reachable only over its flow: an
// outbound contact (+sip.instance and reg-id, RFC 5626) or one behind a NAT
// (the registrar recorded a received address). A plain contact at a
// reachable address is not: once its connection is gone, a request for it
// opens a new one (flowDest), so remove-on-close leaves it.
func needsFlow(b *registrarv1.Binding) bool {
	return b.GetReceived() != "" || b.GetInstance() != "" && b.GetRegId() > 0
}

// ownsFlow reports whether a binding's flow, as the registrar recorded it,
// is src on this edge.
func (e *Edge) ownsFlow(f *registrarv1.Flow, src inbound) bool {
	if f == nil || f.GetEdge() != e.ID() || transport.Proto(f.GetTransport()) != src.proto {
		return false
	}
	if src.proto.Reliable() {
		return f.GetConnectionId() == src.connID
	}
	a, err := netip.ParseAddrPort(f.GetSource())
	return err == nil && a.Addr().Unmap() == src.source.Addr().Unmap() && a.Port() == src.source.Port()
}

// connClosed is the transport's OnClose hook: the bindings registered over
// the connection are unregistered (remove_on_close). Connections closed
// because the edge stops are left alone.
func (e *Edge) connClosed(id uint64, _ netip.AddrPort) {
	if !e.cfg.NAT.removeOnClose() || e.ctx().Err() != nil {
		return
	}
	keys := e.nat.takeConn(id)
	for _, k := range keys {
		s := e.nat.shard(k.aor)
		s.mu.Lock()
		b := s.aors[k.aor][k.contact]
		mine := b != nil && b.connID == id
		if mine {
			s.deleteLocked(k)
		}
		s.mu.Unlock()
		if !mine {
			continue
		}
		if !e.submit(func() { e.natUnregister(k, b, "connection closed") }) {
			e.logger.Warn("contact of a closed connection left to expire: queue full", "aor", k.aor, "contact", k.contact)
		}
	}
}

// keepalive walks one shard of the owned bindings per tick until ctx ends:
// it forgets expired bindings, pings NATed UDP contacts and unregisters
// those that lost max_lost pings.
func (e *Edge) keepalive(ctx context.Context) {
	tick := max(e.cfg.NAT.Interval/natShards, time.Millisecond)
	tk := time.NewTicker(tick)
	defer tk.Stop()
	for i := 0; ; i = (i + 1) % natShards {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		e.visitNATShard(i, time.Now())
	}
}

// visitNATShard handles one shard of the keep-alive walk.
func (e *Edge) visitNATShard(i int, now time.Time) {
	cfg := e.cfg.NAT
	type job struct {
		key natKey
		b   *natBinding
	}
	var pings, drops []job
	var expired []job
	s := &e.nat.shards[i]
	s.mu.Lock()
	for aor, m := range s.aors {
		for contact, b := range m {
			k := natKey{aor, contact}
			switch {
			case now.After(b.expires):
				s.deleteLocked(k)
				if b.connID != 0 {
					expired = append(expired, job{k, b})
				}
			case !b.ping || b.pending || b.dropping:
			case b.lost >= cfg.MaxLost:
				b.dropping = true
				drops = append(drops, job{k, b})
			case len(pings) < natMaxPingsPerTick:
				if cfg.Keepalive == KeepaliveOptions {
					b.pending = true
				}
				pings = append(pings, job{k, b})
			}
		}
	}
	s.mu.Unlock()
	for _, j := range expired {
		e.nat.unindexConn(j.b.connID, j.key)
	}
	for _, j := range pings {
		e.nat.pings.Add(1)
		if cfg.Keepalive == KeepaliveCRLF {
			_ = e.send(j.b.dest, []byte("\r\n\r\n"))
			continue
		}
		if err := e.sendKeepalive(j.key, j.b); err != nil {
			e.logger.Debug("keep-alive not sent", "aor", j.key.aor, "contact", j.key.contact, "err", err)
			e.natPingDone(j.key, false)
		}
	}
	for _, j := range drops {
		k, b := j.key, j.b
		if !e.submit(func() {
			e.natUnregister(k, b, "keep-alives lost")
			s.mu.Lock()
			if cur := s.aors[k.aor][k.contact]; cur == b {
				s.deleteLocked(k)
			}
			s.mu.Unlock()
		}) {
			s.mu.Lock()
			b.dropping = false // try again on the next visit
			s.mu.Unlock()
		}
	}
}

// natPing is the transaction user of one keep-alive OPTIONS.
type natPing struct {
	e   *Edge
	key natKey
}

// ClientResponse counts any final answer, even an error, as the contact
// being alive.
func (p natPing) ClientResponse(_ *transaction.ClientTx, res *sip.Response) {
	if res.StatusCode >= 200 {
		p.e.natPingDone(p.key, true)
	}
}

// ClientTimeout counts a lost ping.
func (p natPing) ClientTimeout(*transaction.ClientTx) { p.e.natPingDone(p.key, false) }

// natPingDone records the outcome of a keep-alive.
func (e *Edge) natPingDone(k natKey, answered bool) {
	if !answered {
		e.nat.lostPings.Add(1)
	}
	s := e.nat.shard(k.aor)
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.aors[k.aor][k.contact]
	if b == nil || !b.pending {
		return
	}
	b.pending = false
	if answered {
		b.lost = 0
	} else {
		b.lost++
	}
}

// sendKeepalive sends an out-of-dialog OPTIONS to a NATed contact at its
// flow's source address, through a client transaction.
func (e *Edge) sendKeepalive(k natKey, b *natBinding) error {
	ruri, err := parseURI(k.contact)
	if err != nil {
		return err
	}
	out := e.listenerOf(inbound{proto: b.dest.Proto, local: b.dest.Local})
	host, port := e.local.Load().sentBy(out)
	if a, err := netip.ParseAddr(host); err == nil && a.Is6() {
		host = "[" + host + "]"
	}
	req := sip.NewRequest(sip.OPTIONS, ruri)
	params := sip.NewParams()
	params.Add("branch", newBranch(0))
	params.Add("rport", "")
	req.AppendHeader(&sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: b.dest.Proto.String(), Host: host, Port: port, Params: params})
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "keepalive", Host: host, Port: port}, Params: sip.NewParams()}
	from.Params.Add("tag", randomHex(4))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: ruri, Params: sip.NewParams()})
	callID := sip.CallIDHeader("ka-" + randomHex(8) + "@" + host)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.OPTIONS})
	ensureContentLength(req)
	key := transaction.ClientKey(branchOf(req), req.Method)
	d := b.dest
	_, err = e.tx.NewClient(key, req, []byte(req.String()), false,
		func(data []byte) error { return e.send(d, data) }, natPing{e: e, key: k})
	return err
}

// natUnregister removes a contact from the registrar, unless the registrar
// records another flow for it by now (the UA registered again, maybe
// through another edge). It runs on a worker.
func (e *Edge) natUnregister(k natKey, b *natBinding, why string) {
	reg := e.deps.Registrar
	if reg == nil {
		return
	}
	ctx, cancel := context.WithTimeout(e.ctx(), 2*e.cfg.ServiceTimeout)
	defer cancel()
	resp, err := reg.Lookup(ctx, &registrarv1.LookupRequest{Aor: k.aor})
	if err != nil {
		e.logger.Warn("looking up a contact to unregister", "aor", k.aor, "contact", k.contact, "err", err)
		return
	}
	src := inbound{proto: b.proto, source: b.source, connID: b.connID}
	found := false
	for _, rb := range resp.GetBindings() {
		if rb.GetUri() == k.contact {
			found = e.ownsFlow(rb.GetFlow(), src)
			break
		}
	}
	if !found {
		return
	}
	if _, err := reg.Unregister(ctx, &registrarv1.UnregisterRequest{Aor: k.aor, ContactUri: k.contact}); err != nil {
		e.logger.Warn("unregistering a contact", "aor", k.aor, "contact", k.contact, "reason", why, "err", err)
		return
	}
	e.nat.removed.Add(1)
	e.logger.Info("contact unregistered", "aor", k.aor, "contact", k.contact, "reason", why)
}
