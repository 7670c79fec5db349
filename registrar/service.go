package registrar

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	registrarv1 "github.com/sipd/sipd/proto/gen/sipd/registrar/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Lookup status label values.
const (
	lookupFound      = "found"
	lookupNoContacts = "no_contacts"
	lookupUnknown    = "unknown"
	lookupError      = "error"
)

// errInvalidArgument marks requests that are malformed.
var errInvalidArgument = errors.New("registrar: invalid argument")

// Lookup returns the live bindings of an AOR, best q first then most
// recent. An AOR without live bindings is NO_CONTACTS while it is known
// (it had bindings within known_retention), UNKNOWN otherwise. With a
// gruu, only the bindings of the GRUU's instance count (lookupGRUU).
func (r *Registrar) Lookup(ctx context.Context, req *registrarv1.LookupRequest) (*registrarv1.LookupResponse, error) {
	resp, err := r.lookup(ctx, req)
	if err != nil {
		r.metrics.lookups.WithLabelValues(lookupError).Inc()
		if !errors.Is(err, errInvalidArgument) {
			r.log.Warn("lookup failed", "aor", req.GetAor(), "err", err)
		}
		return nil, toStatus(err)
	}
	label := lookupUnknown
	switch resp.Status {
	case registrarv1.LookupStatus_LOOKUP_STATUS_FOUND:
		label = lookupFound
	case registrarv1.LookupStatus_LOOKUP_STATUS_NO_CONTACTS:
		label = lookupNoContacts
	}
	r.metrics.lookups.WithLabelValues(label).Inc()
	return resp, nil
}

func (r *Registrar) lookup(ctx context.Context, req *registrarv1.LookupRequest) (*registrarv1.LookupResponse, error) {
	if req.GetGruu() != "" {
		return r.lookupGRUU(ctx, req.GetGruu())
	}
	aor, err := NormalizeAOR(req.GetAor())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errInvalidArgument, err)
	}
	rec, err := r.store.Get(ctx, aor)
	switch {
	case errors.Is(err, ErrNotFound):
		return &registrarv1.LookupResponse{Status: registrarv1.LookupStatus_LOOKUP_STATUS_UNKNOWN}, nil
	case err != nil:
		return nil, fmt.Errorf("looking up %s: %w", aor, err)
	}
	now := r.now()
	if live := liveBindings(rec.Bindings, now); len(live) > 0 {
		return &registrarv1.LookupResponse{Status: registrarv1.LookupStatus_LOOKUP_STATUS_FOUND, Bindings: live}, nil
	}
	if r.knownUntil(&rec).After(now) {
		return &registrarv1.LookupResponse{Status: registrarv1.LookupStatus_LOOKUP_STATUS_NO_CONTACTS}, nil
	}
	return &registrarv1.LookupResponse{Status: registrarv1.LookupStatus_LOOKUP_STATUS_UNKNOWN}, nil
}

// knownUntil is when rec stops being known, counting bindings that expired
// but were not swept yet.
func (r *Registrar) knownUntil(rec *Record) time.Time {
	t := rec.KnownUntil
	for _, b := range rec.Bindings {
		t = later(t, b.ExpiresAt.Add(r.cfg.KnownRetention))
	}
	return t
}

// Unregister removes one contact of an AOR (compared as RFC 3261 compares
// URIs) or, with an empty contact, all of them. Removing what is not there
// answers Removed 0.
func (r *Registrar) Unregister(ctx context.Context, req *registrarv1.UnregisterRequest) (*registrarv1.UnregisterResponse, error) {
	n, err := r.unregister(ctx, req)
	if err != nil {
		if !errors.Is(err, errInvalidArgument) {
			r.log.Warn("unregister failed", "aor", req.GetAor(), "err", err)
		}
		return nil, toStatus(err)
	}
	if n > 0 {
		r.log.Info("bindings unregistered", "aor", req.GetAor(), "contact", req.GetContactUri(), "removed", n)
	}
	return &registrarv1.UnregisterResponse{Removed: int32(n)}, nil
}

func (r *Registrar) unregister(ctx context.Context, req *registrarv1.UnregisterRequest) (int, error) {
	aor, err := NormalizeAOR(req.GetAor())
	if err != nil {
		return 0, fmt.Errorf("%w: %w", errInvalidArgument, err)
	}
	var key string
	if c := req.GetContactUri(); c != "" {
		u, err := parseURI(c)
		if err != nil {
			return 0, fmt.Errorf("%w: %w", errInvalidArgument, err)
		}
		key = u.key()
	}
	now := r.now()
	var (
		ch      change
		removed int
	)
	err = r.store.Update(ctx, aor, func(rec *Record) error {
		ch, removed = change{before: stats(rec)}, 0
		r.pruneLocked(rec, now, &ch)
		kept := rec.Bindings[:0]
		for _, b := range rec.Bindings {
			if key != "" && bindingKey(b.URI) != key {
				kept = append(kept, b)
				continue
			}
			r.record(rec, &ch, eventRemoved, b)
			removed++
		}
		rec.Bindings = kept
		if removed > 0 {
			rec.KnownUntil = later(rec.KnownUntil, now.Add(r.cfg.KnownRetention))
		}
		ch.after = stats(rec)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("unregistering from %s: %w", aor, err)
	}
	r.commit(ch)
	return removed, nil
}

// List page sizes.
const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

// List pages through the AORs that have live bindings. The page token is
// the store's cursor, encoded; it is opaque to callers.
func (r *Registrar) List(ctx context.Context, req *registrarv1.ListRequest) (*registrarv1.ListResponse, error) {
	resp, err := r.list(ctx, req)
	if err != nil {
		if !errors.Is(err, errInvalidArgument) {
			r.log.Warn("list failed", "err", err)
		}
		return nil, toStatus(err)
	}
	return resp, nil
}

func (r *Registrar) list(ctx context.Context, req *registrarv1.ListRequest) (*registrarv1.ListResponse, error) {
	size := int(req.GetPageSize())
	switch {
	case size < 0:
		return nil, fmt.Errorf("%w: page_size (%d) must be >= 0", errInvalidArgument, size)
	case size == 0:
		size = defaultPageSize
	case size > maxPageSize:
		size = maxPageSize
	}
	cursor, err := base64.RawURLEncoding.DecodeString(req.GetPageToken())
	if err != nil {
		return nil, fmt.Errorf("%w: decoding page token: %w", errInvalidArgument, ErrInvalidCursor)
	}
	recs, next, err := r.store.List(ctx, string(cursor), size)
	if err != nil {
		return nil, fmt.Errorf("listing records: %w", err)
	}
	now := r.now()
	resp := &registrarv1.ListResponse{NextPageToken: base64.RawURLEncoding.EncodeToString([]byte(next))}
	for _, rec := range recs {
		if live := liveBindings(rec.Bindings, now); len(live) > 0 {
			resp.Records = append(resp.Records, &registrarv1.Record{Aor: rec.AOR, Bindings: live})
		}
	}
	return resp, nil
}

// toStatus maps a Go error to the gRPC status the registrar answers with;
// it is the one place that does. Internal error text does not leave the
// process except for invalid arguments, which describe the caller's input.
func toStatus(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errInvalidArgument), errors.Is(err, ErrInvalidCursor):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, errTooManyContacts):
		return status.Error(codes.ResourceExhausted, err.Error())
	case errors.Is(err, ErrStoreUnavailable):
		return status.Error(codes.Unavailable, "registrar: store unavailable")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "registrar: deadline exceeded")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "registrar: canceled")
	default:
		return status.Error(codes.Internal, "registrar: internal error")
	}
}
