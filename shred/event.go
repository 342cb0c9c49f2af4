package shred

import (
	"encoding/json"
	"fmt"

	"github.com/nudge-dev/nudge"
)

// personal is the part of an event that is sealed: every field that names
// or describes the person. What stays in the clear (type, event name, page
// name, message id, source, times, integrations, _metadata) says what
// happened, not to whom.
type personal struct {
	UserID      string          `json:"userId,omitempty"`
	AnonymousID string          `json:"anonymousId,omitempty"`
	PreviousID  string          `json:"previousId,omitempty"`
	GroupID     string          `json:"groupId,omitempty"`
	Properties  json.RawMessage `json:"properties,omitempty"`
	Traits      json.RawMessage `json:"traits,omitempty"`
	Context     json.RawMessage `json:"context,omitempty"`
}

// SealEvent moves e's personal fields into e.Sealed, sealed under the key of
// its customer key (userId, else anonymousId), and sets e.Subject to that
// key's pseudonym. It returns the key record when the key is not yet
// durable (see Keyring.Seal), and ErrShredded for an erased person.
func SealEvent(k *Keyring, e *nudge.Event) (*KeyRecord, error) {
	p := k.Pseudonym(e.CustomerKey())
	buf := appendPersonal(make([]byte, 0, 96+len(e.Properties)+len(e.Traits)+len(e.Context)), e)
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
	var f personal
	if err := json.Unmarshal(plain, &f); err != nil {
		return fmt.Errorf("event %s: sealed fields: %w", e.MessageID, err)
	}
	e.UserID, e.AnonymousID, e.PreviousID, e.GroupID = f.UserID, f.AnonymousID, f.PreviousID, f.GroupID
	e.Properties, e.Traits, e.Context = f.Properties, f.Traits, f.Context
	e.Sealed = nil
	return nil
}

// appendPersonal encodes the personal fields as a JSON object; the raw
// fields hold valid JSON already (ingest checked them).
func appendPersonal(b []byte, e *nudge.Event) []byte {
	b = append(b, '{')
	sep := func() {
		if len(b) > 1 {
			b = append(b, ',')
		}
	}
	for _, f := range [...]struct{ key, val string }{
		{`"userId":`, e.UserID}, {`"anonymousId":`, e.AnonymousID},
		{`"previousId":`, e.PreviousID}, {`"groupId":`, e.GroupID},
	} {
		if f.val != "" {
			sep()
			b = nudge.AppendJSONString(append(b, f.key...), f.val)
		}
	}
	for _, f := range [...]struct {
		key string
		val json.RawMessage
	}{{`"properties":`, e.Properties}, {`"traits":`, e.Traits}, {`"context":`, e.Context}} {
		if len(f.val) > 0 {
			sep()
			b = append(append(b, f.key...), f.val...)
		}
	}
	return append(b, '}')
}
