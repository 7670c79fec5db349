package registrar

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"time"

	registrarv1 "github.com/sipd/sipd/proto/gen/sipd/registrar/v1"
	"google.golang.org/protobuf/types/known/durationpb"
)

// SIP reason phrases of the Register answers.
const (
	reasonOK             = "OK"
	reasonBadRequest     = "Bad Request"
	reasonIntervalBrief  = "Interval Too Brief"
	reasonOutOfOrderText = "Out of Order"
	reasonTooMany        = "Too Many Contacts"
)

// errNoChange aborts a store update whose answer is already decided.
var errNoChange = errors.New("registrar: no change")

// contactUpdate is a validated Contact of a REGISTER.
type contactUpdate struct {
	uri     string
	key     string
	parsed  sipURI
	expires time.Duration
	in      *registrarv1.ContactUpdate
}

// Register applies one REGISTER to an AOR following RFC 3261 section 10.3
// and answers with the SIP code to send and every current binding. Store
// failures are gRPC errors; everything else is a SIP answer.
func (r *Registrar) Register(ctx context.Context, req *registrarv1.RegisterRequest) (*registrarv1.RegisterResponse, error) {
	resp, reason, err := r.register(ctx, req)
	if err != nil {
		r.metrics.registrations.WithLabelValues(resultRejected, reasonStoreError).Inc()
		r.log.Warn("register failed", "aor", req.GetAor(), "err", err)
		return nil, toStatus(err)
	}
	result := resultAccepted
	if resp.Code != 200 {
		result = resultRejected
	}
	r.metrics.registrations.WithLabelValues(result, reason).Inc()
	return resp, nil
}

func (r *Registrar) register(ctx context.Context, req *registrarv1.RegisterRequest) (*registrarv1.RegisterResponse, string, error) {
	aor, err := NormalizeAOR(req.GetAor())
	if err != nil {
		return reject(400, reasonBadRequest), reasonInvalid, nil
	}
	if resp, reason, err := r.registerAuth(ctx, req, aor); err != nil || resp != nil {
		return resp, reason, err
	}
	updates, resp := r.checkContacts(req)
	if resp != nil {
		reason := reasonInvalid
		if resp.Code == 423 {
			reason = reasonTooBrief
		}
		return resp, reason, nil
	}
	now := r.now()

	if len(updates) == 0 && !req.GetWildcard() {
		rec, err := r.store.Get(ctx, aor)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, "", fmt.Errorf("fetching bindings of %s: %w", aor, err)
		}
		return r.withGRUUs(req, aor, r.ok(rec.Bindings, now)), reasonFetch, nil
	}

	var (
		ch     change
		answer *registrarv1.RegisterResponse
		reason string
	)
	err = r.store.Update(ctx, aor, func(rec *Record) error {
		ch = change{before: stats(rec)}
		r.pruneLocked(rec, now, &ch)
		answer, reason = r.applyLocked(rec, req, updates, now, &ch)
		if answer.Code != 200 || reason == reasonRetransmission {
			return errNoChange
		}
		ch.after = stats(rec)
		return nil
	})
	switch {
	case errors.Is(err, errNoChange):
		return r.withGRUUs(req, aor, answer), reason, nil
	case err != nil:
		return nil, "", fmt.Errorf("updating bindings of %s: %w", aor, err)
	}
	r.commit(ch)
	return r.withGRUUs(req, aor, answer), reason, nil
}

// withGRUUs adds the GRUUs (RFC 5627) to the bindings of a 200 answer
// when the REGISTER supports them.
func (r *Registrar) withGRUUs(req *registrarv1.RegisterRequest, aor string, resp *registrarv1.RegisterResponse) *registrarv1.RegisterResponse {
	if req.GetGruu() && resp.GetCode() == 200 {
		r.gruus.add(aor, resp.GetBindings())
	}
	return resp
}

// checkContacts validates the contacts and expiry values of req, which do
// not depend on the stored bindings. It returns the updates, or an answer
// when the request is refused.
func (r *Registrar) checkContacts(req *registrarv1.RegisterRequest) ([]contactUpdate, *registrarv1.RegisterResponse) {
	var header *time.Duration
	if e := req.GetExpires(); e != nil {
		d := e.AsDuration()
		header = &d
	}
	if req.GetWildcard() {
		if len(req.GetContacts()) > 0 || header == nil || *header != 0 {
			return nil, reject(400, reasonBadRequest)
		}
		return nil, nil
	}
	updates := make([]contactUpdate, 0, len(req.GetContacts()))
	for _, c := range req.GetContacts() {
		u, err := parseURI(c.GetUri())
		if err != nil {
			return nil, reject(400, reasonBadRequest)
		}
		expires := r.cfg.DefaultExpires
		switch {
		case c.GetExpires() != nil:
			expires = c.GetExpires().AsDuration()
		case header != nil:
			expires = *header
		}
		switch {
		case expires < 0 || c.GetQ() < 0 || c.GetQ() > 1000:
			return nil, reject(400, reasonBadRequest)
		case expires > 0 && expires < r.cfg.MinExpires:
			resp := reject(423, reasonIntervalBrief)
			resp.MinExpires = durationpb.New(r.cfg.MinExpires)
			return nil, resp
		case expires > r.cfg.MaxExpires:
			expires = r.cfg.MaxExpires
		}
		expires = r.spread(expires)
		updates = append(updates, contactUpdate{uri: c.GetUri(), key: updateKey(u, c), parsed: u, expires: expires, in: c})
	}
	return updates, nil
}

// applyLocked applies the updates (or the wildcard removal) of req to rec,
// inside a store update. A non-200 answer or a retransmission leaves the
// stored record as it was.
func (r *Registrar) applyLocked(rec *Record, req *registrarv1.RegisterRequest, updates []contactUpdate, now time.Time, ch *change) (*registrarv1.RegisterResponse, string) {
	keys := make([]string, len(rec.Bindings))
	for i, b := range rec.Bindings {
		keys[i] = storedKey(b)
	}
	// Call-ID and CSeq (RFC 3261 section 10.3 step 6): an older CSeq of the
	// same Call-ID fails the request; the same CSeq is a retransmission,
	// answered with the bindings as they are.
	retransmission := false
	for i, b := range rec.Bindings {
		if !req.GetWildcard() && !slices.ContainsFunc(updates, func(u contactUpdate) bool { return u.key == keys[i] }) {
			continue
		}
		if b.CallID != req.GetCallId() {
			continue
		}
		switch {
		case req.GetCseq() < b.CSeq:
			return reject(500, reasonOutOfOrderText), reasonOutOfOrder
		case req.GetCseq() == b.CSeq:
			retransmission = true
		}
	}
	if retransmission {
		return r.ok(rec.Bindings, now), reasonRetransmission
	}

	if req.GetWildcard() {
		for _, b := range rec.Bindings {
			r.record(rec, ch, eventRemoved, b)
		}
		rec.Bindings = nil
		rec.KnownUntil = later(rec.KnownUntil, now.Add(r.cfg.KnownRetention))
		return r.ok(nil, now), reasonUpdated
	}

	for _, u := range updates {
		i := slices.Index(keys, u.key)
		if u.expires == 0 {
			if i >= 0 {
				r.record(rec, ch, eventRemoved, rec.Bindings[i])
				rec.Bindings = slices.Delete(rec.Bindings, i, i+1)
				keys = slices.Delete(keys, i, i+1)
				rec.KnownUntil = later(rec.KnownUntil, now.Add(r.cfg.KnownRetention))
			}
			continue
		}
		b := Binding{
			URI:       u.uri,
			ExpiresAt: now.Add(u.expires),
			UpdatedAt: now,
			Q:         u.in.GetQ(),
			CallID:    req.GetCallId(),
			CSeq:      req.GetCseq(),
			Path:      slices.Clone(req.GetPath()),
			Flow:      flowFrom(req.GetFlow()),
			Instance:  u.in.GetInstance(),
			RegID:     u.in.GetRegId(),
			UserAgent: req.GetUserAgent(),
			Received:  receivedOf(u.parsed, req),
		}
		rec.KnownUntil = later(rec.KnownUntil, b.ExpiresAt.Add(r.cfg.KnownRetention))
		if i >= 0 {
			rec.Bindings[i] = b
			r.record(rec, ch, eventRefreshed, b)
			continue
		}
		rec.Bindings = append(rec.Bindings, b)
		keys = append(keys, u.key)
		r.record(rec, ch, eventInserted, b)
	}
	if len(rec.Bindings) > r.cfg.MaxContacts && r.cfg.MaxContactsPolicy == PolicyEvictOldest {
		r.evictOldestLocked(rec, updates, ch)
	}
	if len(rec.Bindings) > r.cfg.MaxContacts {
		resp := reject(503, reasonTooMany)
		resp.RetryAfter = durationpb.New(r.retryAfter(rec.Bindings, now))
		return resp, reasonTooManyContact
	}
	return r.ok(rec.Bindings, now), reasonUpdated
}

// spread shortens a granted expiry by a random share of at most
// ExpiresSpread, never below MinExpires.
func (r *Registrar) spread(expires time.Duration) time.Duration {
	if r.cfg.ExpiresSpread <= 0 || expires <= r.cfg.MinExpires {
		return expires
	}
	cut := time.Duration(rand.Float64() * r.cfg.ExpiresSpread * float64(expires)).Truncate(time.Second)
	return max(expires-cut, r.cfg.MinExpires)
}

// evictOldestLocked removes the least recently refreshed bindings that
// this request did not touch until the AOR is within MaxContacts.
func (r *Registrar) evictOldestLocked(rec *Record, updates []contactUpdate, ch *change) {
	touched := func(b Binding) bool {
		k := storedKey(b)
		return slices.ContainsFunc(updates, func(u contactUpdate) bool { return u.key == k })
	}
	for len(rec.Bindings) > r.cfg.MaxContacts {
		oldest := -1
		for i, b := range rec.Bindings {
			if touched(b) {
				continue
			}
			if oldest < 0 || b.UpdatedAt.Before(rec.Bindings[oldest].UpdatedAt) {
				oldest = i
			}
		}
		if oldest < 0 {
			return // only this request's contacts are left: refuse below
		}
		r.record(rec, ch, eventRemoved, rec.Bindings[oldest])
		rec.Bindings = slices.Delete(rec.Bindings, oldest, oldest+1)
	}
}

// retryAfter is how long until a binding slot frees: the time left of the
// binding that expires first, rounded up to whole seconds.
func (r *Registrar) retryAfter(bindings []Binding, now time.Time) time.Duration {
	soonest := r.cfg.MaxExpires
	for _, b := range bindings {
		if left := b.ExpiresAt.Sub(now); left > 0 && left < soonest {
			soonest = left
		}
	}
	return max(ceilSecond(soonest), time.Second)
}

// ceilSecond rounds d up to a whole second, as SIP counts in seconds.
func ceilSecond(d time.Duration) time.Duration {
	return (d + time.Second - 1).Truncate(time.Second)
}

// ok is a 200 answer listing the live bindings.
func (r *Registrar) ok(bindings []Binding, now time.Time) *registrarv1.RegisterResponse {
	return &registrarv1.RegisterResponse{Code: 200, Reason: reasonOK, Bindings: liveBindings(bindings, now)}
}

func reject(code int32, reason string) *registrarv1.RegisterResponse {
	return &registrarv1.RegisterResponse{Code: code, Reason: reason}
}

// effectiveQ is the q-value a binding is ordered by: an unset q counts as
// 1.0, as most registrars do.
func effectiveQ(q int32) int32 {
	if q == 0 {
		return 1000
	}
	return q
}

// liveBindings returns the bindings not expired by now, best q first, then
// most recently updated first, as wire messages with their time left.
func liveBindings(bindings []Binding, now time.Time) []*registrarv1.Binding {
	// Bindings are appended as they arrive: walking them backwards puts the
	// newest first among bindings updated at the same instant.
	live := make([]Binding, 0, len(bindings))
	for _, b := range slices.Backward(bindings) {
		if b.ExpiresAt.After(now) {
			live = append(live, b)
		}
	}
	slices.SortStableFunc(live, func(a, b Binding) int {
		if c := cmp.Compare(effectiveQ(b.Q), effectiveQ(a.Q)); c != 0 {
			return c
		}
		return b.UpdatedAt.Compare(a.UpdatedAt)
	})
	out := make([]*registrarv1.Binding, len(live))
	for i, b := range live {
		out[i] = toProto(b, now)
	}
	return out
}

func toProto(b Binding, now time.Time) *registrarv1.Binding {
	return &registrarv1.Binding{
		Uri:     b.URI,
		Expires: durationpb.New(ceilSecond(b.ExpiresAt.Sub(now))),
		Q:       b.Q,
		CallId:  b.CallID,
		Cseq:    b.CSeq,
		Path:    slices.Clone(b.Path),
		Flow: &registrarv1.Flow{
			Edge:         b.Flow.Edge,
			Transport:    b.Flow.Transport,
			Source:       b.Flow.Source,
			Local:        b.Flow.Local,
			ConnectionId: b.Flow.ConnectionID,
		},
		Instance:  b.Instance,
		RegId:     b.RegID,
		UserAgent: b.UserAgent,
		Received:  b.Received,
	}
}

func flowFrom(f *registrarv1.Flow) Flow {
	return Flow{
		Edge:         f.GetEdge(),
		Transport:    f.GetTransport(),
		Source:       f.GetSource(),
		Local:        f.GetLocal(),
		ConnectionID: f.GetConnectionId(),
	}
}

// bindingKey is the comparison key of a stored contact URI; a URI that no
// longer parses is compared as is.
func bindingKey(uri string) string {
	if u, err := parseURI(uri); err == nil {
		return u.key()
	}
	return uri
}

// outboundKey identifies an RFC 5626 binding: by instance and reg-id, not
// by contact URI, so a REGISTER from the same instance and reg-id over a
// new flow replaces the old flow (section 6).
func outboundKey(instance string, regID int32) string {
	return "outbound:" + instance + ";reg-id=" + strconv.Itoa(int(regID))
}

// updateKey is the comparison key of a REGISTER contact: its outbound key
// when it carries +sip.instance and reg-id, else its URI key.
func updateKey(u sipURI, c *registrarv1.ContactUpdate) string {
	if c.GetInstance() != "" && c.GetRegId() > 0 {
		return outboundKey(c.GetInstance(), c.GetRegId())
	}
	return u.key()
}

// storedKey is the comparison key of a stored binding, as updateKey.
func storedKey(b Binding) string {
	if b.Instance != "" && b.RegID > 0 {
		return outboundKey(b.Instance, b.RegID)
	}
	return bindingKey(b.URI)
}

// receivedOf is the received address of a contact: set when the contact is
// a private address other than the source (receivedFor), or when the edge
// saw the source differ from the Via sent-by (nathelper's nat_uac_test),
// unless the contact names the source address itself.
func receivedOf(contact sipURI, req *registrarv1.RegisterRequest) string {
	if r := receivedFor(contact, req.GetFlow()); r != "" || !req.GetViaMismatch() {
		return r
	}
	f := req.GetFlow()
	src, err := netip.ParseAddrPort(f.GetSource())
	if err != nil {
		return ""
	}
	if host, err := netip.ParseAddr(contact.host); err == nil && host.Unmap() == src.Addr().Unmap() && (contact.port == int(src.Port()) || contact.port == 0 && src.Port() == 5060) {
		return ""
	}
	r := "sip:" + src.String()
	if t := transportName(f.GetTransport()); t != "" {
		r += ";transport=" + t
	}
	return r
}
