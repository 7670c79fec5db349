package registrar

import (
	"context"
	"errors"
	"slices"
	"time"

	registrarv1 "github.com/sipd/sipd/proto/gen/sipd/registrar/v1"
)

// Errors returned by stores. A store wraps its own failures (a lost Redis
// connection, a timeout) in ErrStoreUnavailable so that callers can tell a
// store that is down from a missing record.
var (
	ErrNotFound         = errors.New("registrar: aor not found")
	ErrStoreUnavailable = errors.New("registrar: store unavailable")
	ErrInvalidCursor    = errors.New("registrar: invalid list cursor")
)

// Store keeps the records of AORs. Every operation on one AOR is atomic;
// operations on different AORs are independent. NewMemoryStore is the
// embedded store (a mutex per shard); package redisstore keeps records in
// Redis, shared by replicas, with a compare-and-set per update.
type Store interface {
	// Get returns a copy of the record of aor, or ErrNotFound.
	Get(ctx context.Context, aor string) (Record, error)
	// Update reads the record of aor (a new Record with only AOR set if none
	// exists), calls fn on a private copy, and stores the result atomically.
	// If fn returns an error nothing is stored and Update returns that
	// error. fn may be called more than once (optimistic stores retry it on
	// conflict), so it must not have side effects beyond rec. A record left
	// with no bindings and a zero KnownUntil is deleted.
	Update(ctx context.Context, aor string, fn func(rec *Record) error) error
	// Delete removes the record of aor; deleting a missing record is not an
	// error.
	Delete(ctx context.Context, aor string) error
	// List returns up to limit records in a stable order, starting after
	// cursor ("" for the first page), and the cursor of the next page, ""
	// once every record has been listed. Records changed during paging may
	// be seen or missed, but a record present throughout is listed once.
	List(ctx context.Context, cursor string, limit int) (recs []Record, next string, err error)
	// Expired returns up to limit records whose Deadline is not after
	// until, with their deadlines, soonest first where the store can tell
	// cheaply. It never scans every record. The expiry wheel asks for the
	// records due within its horizon.
	Expired(ctx context.Context, until time.Time, limit int) ([]Due, error)
	// Stats counts what the store holds, across every registrar that
	// shares it.
	Stats(ctx context.Context) (Stats, error)
}

// Due is a record's AOR and Deadline, from Store.Expired.
type Due struct {
	AOR string
	At  time.Time
}

// Stats are the store's counts.
type Stats struct {
	// AORs counts the records with at least one binding.
	AORs int64
	// Contacts counts the bindings, including those expired since the
	// last sweep.
	Contacts int64
}

// Record is the state of one AOR.
type Record struct {
	// AOR is the normalised address-of-record, "sip:user@host".
	AOR string `json:"aor"`
	// Bindings are the AOR's contacts, in no particular order. They may
	// include bindings that expired since the last sweep.
	Bindings []Binding `json:"bindings,omitempty"`
	// Version counts changes to the AOR; the registrar bumps it once per
	// binding event, so events carry an increasing version.
	Version uint64 `json:"version"`
	// KnownUntil is the time up to which the AOR counts as known once it has
	// no live binding.
	KnownUntil time.Time `json:"known_until,omitzero"`

	// pending are the events of the update in progress, published once the
	// store has written it. Stores neither keep nor copy them.
	pending []pendingEvent
}

// Deadline is the next time the record needs attention from the expiry
// sweep: the earliest binding expiry, or KnownUntil for a record without
// bindings. Stores index records by it.
func (r *Record) Deadline() time.Time {
	if len(r.Bindings) == 0 {
		return r.KnownUntil
	}
	d := r.Bindings[0].ExpiresAt
	for _, b := range r.Bindings[1:] {
		if b.ExpiresAt.Before(d) {
			d = b.ExpiresAt
		}
	}
	return d
}

// Clone returns a deep copy of r.
func (r Record) Clone() Record {
	c := r
	c.pending = nil
	if r.Bindings != nil {
		c.Bindings = make([]Binding, len(r.Bindings))
		for i, b := range r.Bindings {
			b.Path = slices.Clone(b.Path)
			c.Bindings[i] = b
		}
	}
	return c
}

// Binding is one contact of an AOR.
type Binding struct {
	// URI is the contact URI as registered.
	URI string `json:"uri"`
	// ExpiresAt is when the binding ends.
	ExpiresAt time.Time `json:"expires_at"`
	// UpdatedAt is when the binding was last registered or refreshed.
	UpdatedAt time.Time `json:"updated_at"`
	// Q is the q-value in thousandths; 0 means unset.
	Q         int32    `json:"q,omitempty"`
	CallID    string   `json:"call_id"`
	CSeq      uint32   `json:"cseq"`
	Path      []string `json:"path,omitempty"`
	Flow      Flow     `json:"flow"`
	Instance  string   `json:"instance,omitempty"`
	RegID     int32    `json:"reg_id,omitempty"`
	UserAgent string   `json:"user_agent,omitempty"`
	// Received is "sip:ip:port;transport=x" when the contact is behind NAT.
	Received string `json:"received,omitempty"`
}

// Flow is where a REGISTER arrived: edge, transport, source and connection.
type Flow struct {
	Edge         string                `json:"edge,omitempty"`
	Transport    registrarv1.Transport `json:"transport,omitempty"`
	Source       string                `json:"source,omitempty"`
	Local        string                `json:"local,omitempty"`
	ConnectionID uint64                `json:"connection_id,omitempty"`
}
