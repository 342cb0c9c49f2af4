package profile

import (
	"bytes"
	"cmp"
	"encoding/json"
	"strings"

	"github.com/nudge-dev/nudge"
)

// Kinds of identifier. Configured identifying traits (Config.IdentityTraits,
// such as "phone") are kinds named after the trait.
const (
	KindUser      = "userId"
	KindAnonymous = "anonymousId"
	KindPrevious  = "previousId" // alias: the id the user was known by
	KindEmail     = "email"
)

// Identity is one identifier of a person. Two identifiers with the same
// value are the same identifier, whatever their kind (an app that uses the
// email as user id links the two).
type Identity struct {
	Kind  string `json:"type"`
	Value string `json:"id"`
	Ref   Ref    `json:"-"`
}

// rank orders kinds: a profile's id is the pseudonym of its best
// identifier (user ids first), and an identifier seen as several kinds
// keeps the best one, so neither depends on the order events arrive in.
func rank(kind string) int {
	switch kind {
	case KindUser:
		return 0
	case KindAnonymous:
		return 1
	case KindPrevious:
		return 2
	case KindEmail:
		return 3
	}
	return 4
}

func cmpIdentity(a, b Identity) int {
	if c := cmp.Compare(rank(a.Kind), rank(b.Kind)); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Kind, b.Kind); c != 0 {
		return c
	}
	return bytes.Compare(a.Ref.P[:], b.Ref.P[:])
}

// appendIdentifiers appends to dst the identifiers an (opened) event
// names, its customer key first: userId, anonymousId, alias previousId,
// then the email and the configured identifying traits from traits and
// context.traits.
func appendIdentifiers(dst []Identity, e *nudge.Event, traitKinds []string) []Identity {
	ids := dst
	start := len(dst)
	add := func(kind, v string) {
		if kind == KindEmail {
			v = normalEmail(v)
		}
		if v == "" {
			return
		}
		for _, id := range ids[start:] {
			if id.Value == v {
				return
			}
		}
		ids = append(ids, Identity{Kind: kind, Value: v})
	}
	add(KindUser, e.UserID)
	add(KindAnonymous, e.AnonymousID)
	if e.Type == nudge.Alias {
		add(KindPrevious, e.PreviousID)
	}
	for _, traits := range [2]json.RawMessage{e.Traits, contextTraits(e.Context)} {
		if len(traits) == 0 || traits[0] != '{' {
			continue
		}
		var m map[string]json.RawMessage
		if json.Unmarshal(traits, &m) != nil {
			continue
		}
		add(KindEmail, jsonString(m["email"]))
		for _, k := range traitKinds {
			add(k, jsonString(m[k]))
		}
	}
	return ids
}

func contextTraits(ctx json.RawMessage) json.RawMessage {
	if len(ctx) == 0 || !bytes.Contains(ctx, []byte(`"traits"`)) {
		return nil
	}
	var c struct {
		Traits json.RawMessage `json:"traits"`
	}
	if json.Unmarshal(ctx, &c) != nil {
		return nil
	}
	return c.Traits
}

func jsonString(raw json.RawMessage) string {
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

// normalEmail is the form emails are compared in.
func normalEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }
