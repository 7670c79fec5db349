package registrar

import (
	"context"
	"errors"
	"fmt"
	"slices"

	registrarv1 "github.com/sipd/sipd/proto/gen/sipd/registrar/v1"
)

// errTooManyContacts refuses an operator's contact past max_contacts.
var errTooManyContacts = errors.New("registrar: too many contacts")

// operatorCallID is the Call-ID of bindings an operator adds; a REGISTER
// from the device (another Call-ID) replaces such a binding.
const operatorCallID = "operator"

// AddContact adds one binding to an AOR, or refreshes it, on an operator's
// behalf (Kamailio's ul.add). The contact's expires, else default_expires,
// is capped at max_expires; 0 is refused (Unregister removes). It answers
// the AOR's live bindings and publishes an INSERTED or REFRESHED event.
func (r *Registrar) AddContact(ctx context.Context, req *registrarv1.AddContactRequest) (*registrarv1.AddContactResponse, error) {
	resp, err := r.addContact(ctx, req)
	if err != nil {
		if !errors.Is(err, errInvalidArgument) && !errors.Is(err, errTooManyContacts) {
			r.log.Warn("add contact failed", "aor", req.GetAor(), "err", err)
		}
		return nil, toStatus(err)
	}
	r.log.Info("contact added", "aor", req.GetAor(), "contact", req.GetContact().GetUri())
	return resp, nil
}

func (r *Registrar) addContact(ctx context.Context, req *registrarv1.AddContactRequest) (*registrarv1.AddContactResponse, error) {
	aor, err := NormalizeAOR(req.GetAor())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errInvalidArgument, err)
	}
	c := req.GetContact()
	u, err := parseURI(c.GetUri())
	if err != nil {
		return nil, fmt.Errorf("%w: contact: %w", errInvalidArgument, err)
	}
	expires := r.cfg.DefaultExpires
	if c.GetExpires() != nil {
		expires = c.GetExpires().AsDuration()
	}
	switch {
	case expires <= 0:
		return nil, fmt.Errorf("%w: contact expires (%s) must be > 0", errInvalidArgument, expires)
	case c.GetQ() < 0 || c.GetQ() > 1000:
		return nil, fmt.Errorf("%w: contact q (%d) must be between 0 and 1000", errInvalidArgument, c.GetQ())
	}
	expires = min(expires, r.cfg.MaxExpires)
	now := r.now()
	key := u.key()
	var bindings []Binding
	err = r.store.Update(ctx, aor, func(rec *Record) error {
		var ch change
		r.pruneLocked(rec, now, &ch)
		b := Binding{
			URI:       c.GetUri(),
			ExpiresAt: now.Add(expires),
			UpdatedAt: now,
			Q:         c.GetQ(),
			CallID:    operatorCallID,
			Instance:  c.GetInstance(),
			RegID:     c.GetRegId(),
		}
		rec.KnownUntil = later(rec.KnownUntil, b.ExpiresAt.Add(r.cfg.KnownRetention))
		if i := slices.IndexFunc(rec.Bindings, func(x Binding) bool { return bindingKey(x.URI) == key }); i >= 0 {
			rec.Bindings[i] = b
			r.record(rec, &ch, eventRefreshed, b)
		} else {
			if len(rec.Bindings) >= r.cfg.MaxContacts {
				return fmt.Errorf("%w: %s has %d (max_contacts)", errTooManyContacts, aor, len(rec.Bindings))
			}
			rec.Bindings = append(rec.Bindings, b)
			r.record(rec, &ch, eventInserted, b)
		}
		bindings = slices.Clone(rec.Bindings)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("adding a contact to %s: %w", aor, err)
	}
	return &registrarv1.AddContactResponse{Bindings: liveBindings(bindings, now)}, nil
}

// flushPage is how many records one step of Flush reads.
const flushPage = 500

// Flush removes every binding of every AOR, publishing a REMOVED event for
// each, and answers how many AORs had one. The AORs stay known for
// known_retention, as after an unregistration. Records written while it
// runs may be kept.
func (r *Registrar) Flush(ctx context.Context, _ *registrarv1.FlushRequest) (*registrarv1.FlushResponse, error) {
	n, err := r.flush(ctx)
	if err != nil {
		r.log.Warn("flush failed", "removed_aors", n, "err", err)
		return nil, toStatus(err)
	}
	r.log.Info("bindings flushed", "removed_aors", n)
	return &registrarv1.FlushResponse{RemovedAors: int32(n)}, nil
}

func (r *Registrar) flush(ctx context.Context) (int, error) {
	removed, cursor := 0, ""
	for {
		recs, next, err := r.store.List(ctx, cursor, flushPage)
		if err != nil {
			return removed, fmt.Errorf("listing records: %w", err)
		}
		for _, listed := range recs {
			if len(listed.Bindings) == 0 {
				continue
			}
			now := r.now()
			err := r.store.Update(ctx, listed.AOR, func(rec *Record) error {
				var ch change
				before := len(rec.Bindings)
				r.pruneLocked(rec, now, &ch)
				if before == 0 {
					return errNoChange
				}
				for _, b := range rec.Bindings {
					r.record(rec, &ch, eventRemoved, b)
				}
				rec.Bindings = nil
				rec.KnownUntil = later(rec.KnownUntil, now.Add(r.cfg.KnownRetention))
				return nil
			})
			switch {
			case errors.Is(err, errNoChange):
			case err != nil:
				return removed, fmt.Errorf("flushing %s: %w", listed.AOR, err)
			default:
				removed++
			}
		}
		if next == "" {
			return removed, nil
		}
		cursor = next
	}
}
