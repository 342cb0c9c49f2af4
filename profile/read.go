package profile

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/nudge-dev/nudge"
	"github.com/nudge-dev/nudge/bus"
	"github.com/nudge-dev/nudge/shred"
)

// Find returns a copy of the profile an identifier (user id, anonymous id,
// email, a configured trait, or the profile's own id) belongs to, or
// ErrNotFound.
func (en *Engine) Find(ctx context.Context, id string) (*Profile, error) {
	en.mu.RLock()
	defer en.mu.RUnlock()
	p, err := en.findLocked(ctx, id)
	if err != nil {
		return nil, err
	}
	c := *p
	c.Identities = slices.Clone(p.Identities)
	c.State = *p.State.Clone()
	return &c, nil
}

func (en *Engine) findLocked(ctx context.Context, id string) (*Profile, error) {
	if p, err := en.profileOf(ctx, en.ref(id), false); err != nil || p != nil {
		return p, err
	}
	if e := normalEmail(id); e != id {
		if p, err := en.profileOf(ctx, en.ref(e), false); err != nil || p != nil {
			return p, err
		}
	}
	if pid, err := shred.ParsePseudonym(id); err == nil {
		for part := range en.cfg.Partitions {
			if p, err := en.load(ctx, Ref{P: pid, Partition: part}, false); err != nil || p != nil {
				return p, err
			}
		}
	}
	return nil, ErrNotFound
}

// History returns up to limit of the person's events, newest first, older
// than before, opened; and the cursor for the next page (zero at the end).
func (en *Engine) History(ctx context.Context, p *Profile, before Cursor, limit int) ([]nudge.Event, Cursor, error) {
	subjects := make([]Ref, len(p.Identities))
	for i, id := range p.Identities {
		subjects[i] = id.Ref
	}
	en.mu.RLock()
	entries, err := en.store.History(ctx, subjects, before, limit)
	if err == nil {
		entries = en.withPendingLocked(entries, subjects, before, limit)
	}
	en.mu.RUnlock()
	if err != nil {
		return nil, Cursor{}, err
	}
	events := make([]nudge.Event, 0, len(entries))
	msgs := map[uint64][]byte{} // payloads read from the log, by sequence
	for _, entry := range entries {
		e, err := en.eventAt(ctx, entry.Log, msgs)
		if errors.Is(err, bus.ErrNotFound) {
			continue // the log no longer holds it (a retention limit)
		}
		if err != nil {
			return nil, Cursor{}, fmt.Errorf("history of %s: %w", p.ID.P, err)
		}
		if e.Subject != "" {
			if err := shred.OpenEvent(en.keys, &e); errors.Is(err, shred.ErrShredded) {
				continue
			} else if err != nil {
				return nil, Cursor{}, err
			}
		}
		events = append(events, e)
	}
	var next Cursor
	if len(entries) == limit {
		next = entries[len(entries)-1].At
	}
	return events, next, nil
}

// eventAt reads one event from the log.
func (en *Engine) eventAt(ctx context.Context, at LogRef, msgs map[uint64][]byte) (nudge.Event, error) {
	payload, ok := msgs[at.Seq]
	if !ok {
		m, err := en.log.Get(ctx, at.Seq)
		if err != nil {
			return nudge.Event{}, err
		}
		payload = m.Payload
		msgs[at.Seq] = payload
	}
	var e nudge.Event
	i := uint32(0)
	err := nudge.EachEncoded(payload, func(raw []byte) error {
		if i == at.Index {
			if err := e.Decode(raw); err != nil {
				return err
			}
			return errFound
		}
		i++
		return nil
	})
	if err == errFound {
		return e, nil
	}
	if err == nil {
		err = fmt.Errorf("%w: message %d holds %d events, not %d", ErrCorrupt, at.Seq, i, at.Index+1)
	}
	return e, err
}

var errFound = errors.New("found")

// withPendingLocked adds the uncommitted events of the subjects (those of
// the batch and of a commit in flight) to a page read from the store, so a
// reader sees every applied event.
func (en *Engine) withPendingLocked(entries []Entry, subjects []Ref, before Cursor, limit int) []Entry {
	pending := [][]Entry{en.batch.Events}
	if en.inflight != nil {
		pending = append(pending, en.inflight.batch.Events)
	}
	for _, events := range pending {
		for _, e := range events {
			if !slices.Contains(subjects, e.Subject) || (!before.IsZero() && !e.At.before(before)) {
				continue
			}
			if !slices.ContainsFunc(entries, func(x Entry) bool { return x.Subject == e.Subject && x.At == e.At }) {
				entries = append(entries, e)
			}
		}
	}
	slices.SortFunc(entries, func(a, b Entry) int { return b.At.compare(a.At) })
	if len(entries) > limit {
		entries = entries[:limit]
	}
	return entries
}

func (c Cursor) compare(o Cursor) int {
	if r := c.Time.Compare(o.Time); r != 0 {
		return r
	}
	switch {
	case c.Hash < o.Hash:
		return -1
	case c.Hash > o.Hash:
		return 1
	}
	return 0
}

func (c Cursor) before(o Cursor) bool { return c.compare(o) < 0 }

// Erasure is what Erase removed: the profile and the pseudonyms of all the
// person's identifiers, now suppressed.
type Erasure struct {
	Profile    Ref
	Pseudonyms []shred.Pseudonym
}

// Erase forgets a person: their identifiers' keys are shredded (so every
// copy of their events, in the log and anywhere else, is unreadable from
// now on, and later events for those identifiers are dropped), and the
// profile, its identity links and its history leave the store.
func (en *Engine) Erase(ctx context.Context, id string) (*Erasure, error) {
	en.mu.Lock()
	defer en.mu.Unlock()
	if en.err != nil {
		return nil, en.err
	}
	p, err := en.findLocked(ctx, id)
	if err != nil {
		return nil, err
	}
	er := &Erasure{Profile: p.ID}
	refs := []Ref{p.ID}
	for _, id := range p.Identities {
		er.Pseudonyms = append(er.Pseudonyms, id.Ref.P)
		refs = append(refs, id.Ref)
	}
	if err := en.keys.Shred(er.Pseudonyms...); err != nil {
		return nil, err
	}
	en.forgetLocked(refs)
	if en.reactor != nil {
		if err := en.reactor.Erased(ctx, &en.tx, er); err != nil {
			return nil, err
		}
	}
	if err := en.flushLocked(ctx); err != nil {
		return nil, err
	}
	en.stats.Erased++
	if c, ok := en.store.(interface {
		Compact(context.Context, []Ref) error
	}); ok {
		if err := c.Compact(ctx, refs); err != nil {
			en.logger.Warn("compacting an erased profile's keys failed (its data is shredded already)", "err", err)
		}
	}
	return er, nil
}

// forgetLocked removes the profile, links and histories of refs from the
// caches and, in the batch, from the store.
func (en *Engine) forgetLocked(refs []Ref) {
	for _, r := range refs {
		delete(en.profiles, r.P)
		delete(en.dirty, r.P)
		delete(en.links, r)
		delete(en.batch.Link, r)
		en.deleted[r] = true
		en.batch.Delete = append(en.batch.Delete, r)
		en.batch.Unlink = append(en.batch.Unlink, r)
		en.batch.Forget = append(en.batch.Forget, r)
	}
	en.batch.Events = slices.DeleteFunc(en.batch.Events, func(e Entry) bool { return slices.Contains(refs, e.Subject) })
}

// replayErase handles an erasure read from the log: after a crash between
// the shredding and the store's commit, it removes what is left. The
// pseudonyms do not say their partitions, so every partition is cleared.
func (en *Engine) replayErase(_ context.Context, e *nudge.Event) error {
	var refs []Ref
	for _, s := range e.Erased {
		p, err := shred.ParsePseudonym(s)
		if err != nil {
			return fmt.Errorf("profile: erasure %s: %w", e.MessageID, err)
		}
		for part := range en.cfg.Partitions {
			refs = append(refs, Ref{P: p, Partition: part})
		}
	}
	en.forgetLocked(refs)
	return nil
}
