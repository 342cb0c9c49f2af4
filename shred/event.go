package shred

import (
	"fmt"

	"github.com/nudge-dev/nudge"
)

// The personal part of an event is what is sealed: every field that names
// or describes the person. What stays in the clear (type, event name, page
// name, message id, source, times, integrations, _metadata) says what
// happened, not to whom. Sealed, it is encoded as nudge.AppendString of
// userId, anonymousId, previousId and groupId, then nudge.AppendBytes of
// properties, traits and context.
const personalV1 = 1

// SealEvent moves e's personal fields into e.Sealed, sealed under the key of
// its customer key (userId, else anonymousId), and sets e.Subject to that
// key's pseudonym. It returns the key record when the key is not yet
// durable (see Keyring.Seal), and ErrShredded for an erased person.
func SealEvent(k *Keyring, e *nudge.Event) (*KeyRecord, error) {
	p := k.Pseudonym(e.CustomerKey())
	buf := appendPersonal(make([]byte, 0, 64+len(e.UserID)+len(e.AnonymousID)+len(e.Properties)+len(e.Traits)+len(e.Context)), e)
	sealed, pending, err := k.Seal(nil, p, buf)
	if err != nil {
		return nil, err
	}
	e.Subject, e.Sealed = p.String(), sealed
	e.UserID, e.AnonymousID, e.PreviousID, e.GroupID = "", "", "", ""
	e.Properties, e.Traits, e.Context = nil, nil, nil
	return pending, nil
}

// OpenEvent puts back the personal fields of an event sealed by SealEvent.
// An event that is not sealed is left as it is. ErrShredded: the person was
// erased.
func OpenEvent(k *Keyring, e *nudge.Event) error {
	if e.Subject == "" || len(e.Sealed) == 0 {
		return nil
	}
	p, err := ParsePseudonym(e.Subject)
	if err != nil {
		return fmt.Errorf("event %s: %w", e.MessageID, err)
	}
	plain, err := k.Open(nil, p, e.Sealed)
	if err != nil {
		return err
	}
	if len(plain) == 0 || plain[0] != personalV1 {
		return fmt.Errorf("event %s: sealed fields: %w", e.MessageID, nudge.ErrEncoding)
	}
	d := nudge.NewDecoder(plain[1:])
	e.UserID, e.AnonymousID, e.PreviousID, e.GroupID = d.String(), d.String(), d.String(), d.String()
	e.Properties, e.Traits, e.Context = d.Bytes(), d.Bytes(), d.Bytes()
	if err := d.Err(); err != nil {
		return fmt.Errorf("event %s: sealed fields: %w", e.MessageID, err)
	}
	e.Sealed = nil
	return nil
}

func appendPersonal(b []byte, e *nudge.Event) []byte {
	b = append(b, personalV1)
	for _, v := range [...]string{e.UserID, e.AnonymousID, e.PreviousID, e.GroupID} {
		b = nudge.AppendString(b, v)
	}
	for _, raw := range [...][]byte{e.Properties, e.Traits, e.Context} {
		b = nudge.AppendBytes(b, raw)
	}
	return b
}
