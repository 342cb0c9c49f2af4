// Package nudge holds the domain types of the nudge marketing engine: the
// customer event that flows from ingest through the log to every consumer, and
// the small interfaces the engine's packages share.
//
// Adapters (ingest, bus, the store, channels) depend on this package; it
// depends on none of them.
package nudge

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// EventType is the kind of a tracking call, as in the Segment spec.
type EventType string

// The tracking call kinds of the Segment spec.
const (
	Track    EventType = "track"
	Identify EventType = "identify"
	Page     EventType = "page"
	Screen   EventType = "screen"
	Group    EventType = "group"
	Alias    EventType = "alias"
)

// Erase is not a tracking call: nudge publishes it on the log when a person
// is erased, so that every consumer drops them. Subject is the erased
// profile; Erased lists the pseudonyms of all their identifiers.
const Erase EventType = "erase"

// Valid reports whether t is one of the Segment call kinds.
func (t EventType) Valid() bool {
	switch t {
	case Track, Identify, Page, Screen, Group, Alias:
		return true
	}
	return false
}

// Event is one customer event as nudge stores it: the Segment spec's common
// fields, with free-form objects (properties, traits, context...) kept as raw
// JSON so that ingest never pays to decode what it does not read.
//
// Timestamp is the event time every consumer should use: the client's
// timestamp, or originalTimestamp corrected for the client's clock skew
// (receivedAt - sentAt), or receivedAt when the client sent neither.
type Event struct {
	Type        EventType `json:"type"`
	MessageID   string    `json:"messageId"`
	Source      string    `json:"source"`
	UserID      string    `json:"userId,omitempty"`
	AnonymousID string    `json:"anonymousId,omitempty"`
	PreviousID  string    `json:"previousId,omitempty"` // alias: the id being linked to UserID
	GroupID     string    `json:"groupId,omitempty"`    // group
	Event       string    `json:"event,omitempty"`      // track: the event name
	Name        string    `json:"name,omitempty"`       // page, screen
	Category    string    `json:"category,omitempty"`   // page

	Properties   json.RawMessage `json:"properties,omitempty"`
	Traits       json.RawMessage `json:"traits,omitempty"`
	Context      json.RawMessage `json:"context,omitempty"`
	Integrations json.RawMessage `json:"integrations,omitempty"`
	Metadata     json.RawMessage `json:"_metadata,omitempty"`
	Channel      string          `json:"channel,omitempty"`

	Timestamp         time.Time `json:"timestamp"`
	OriginalTimestamp time.Time `json:"originalTimestamp,omitzero"`
	SentAt            time.Time `json:"sentAt,omitzero"`
	ReceivedAt        time.Time `json:"receivedAt"`

	// Subject and Sealed hold the personal fields while the event is at rest
	// (package shred): Subject is the pseudonym of CustomerKey and Sealed the
	// encrypted userId, anonymousId, previousId, groupId, properties, traits
	// and context. A sealed event has those fields empty.
	Subject string `json:"subject,omitempty"`
	Sealed  []byte `json:"sealed,omitempty"`
	// Erased, on an Erase event, lists the pseudonyms of the erased
	// person's identifiers.
	Erased []string `json:"erased,omitempty"`
}

// CustomerKey is the identifier the log partitions the event by: the user id
// when the event has one, else the anonymous id. Ingest rejects events that
// have neither.
func (e *Event) CustomerKey() string {
	if e.UserID != "" {
		return e.UserID
	}
	return e.AnonymousID
}

// EncodeEvents appends events to buf in the payload format of a log
// message: each event as JSON (AppendJSON) behind its length as a uvarint.
// Length prefixes, not newlines, frame the events, so raw JSON fields may
// hold any whitespace.
func EncodeEvents(buf []byte, events []Event) []byte {
	for i := range events {
		buf = AppendEncoded(buf, &events[i])
	}
	return buf
}

// AppendEncoded appends one event in the payload format of EncodeEvents.
func AppendEncoded(buf []byte, e *Event) []byte {
	// Write the JSON after room for the longest prefix, then move it up
	// behind the prefix it turned out to need.
	const room = binary.MaxVarintLen32
	start := len(buf)
	buf = e.AppendJSON(append(buf, make([]byte, room)...))
	n := len(buf) - start - room
	var prefix [binary.MaxVarintLen64]byte
	k := binary.PutUvarint(prefix[:], uint64(n))
	copy(buf[start:], prefix[:k])
	copy(buf[start+k:], buf[start+room:])
	return buf[:start+k+n]
}

// DecodeEvents parses a log message payload written by EncodeEvents.
func DecodeEvents(payload []byte) ([]Event, error) {
	var events []Event
	err := EachEncoded(payload, func(raw []byte) error {
		var e Event
		if err := json.Unmarshal(raw, &e); err != nil {
			return fmt.Errorf("decode event %d: %w", len(events), err)
		}
		events = append(events, e)
		return nil
	})
	return events, err
}

// EachEncoded calls fn with the JSON of each event of a payload written by
// EncodeEvents, in order, until fn returns an error. raw is valid only
// until fn returns.
func EachEncoded(payload []byte, fn func(raw []byte) error) error {
	for i := 0; len(payload) > 0; i++ {
		n, size := binary.Uvarint(payload)
		if size <= 0 || uint64(len(payload)-size) < n {
			return fmt.Errorf("decode event %d: bad length prefix", i)
		}
		if err := fn(payload[size : size+int(n)]); err != nil {
			return err
		}
		payload = payload[size+int(n):]
	}
	return nil
}

// AppendJSON appends e as a JSON object, the same document encoding/json
// makes of it (without its HTML escaping), several times faster: raw fields
// are copied as they are, so they must hold valid JSON, as ingest ensures.
func (e *Event) AppendJSON(b []byte) []byte {
	b = append(b, `{"type":`...)
	b = AppendJSONString(b, string(e.Type))
	b = append(b, `,"messageId":`...)
	b = AppendJSONString(b, e.MessageID)
	b = append(b, `,"source":`...)
	b = AppendJSONString(b, e.Source)
	for _, f := range [...]struct {
		key, val string
	}{
		{`,"userId":`, e.UserID}, {`,"anonymousId":`, e.AnonymousID}, {`,"previousId":`, e.PreviousID},
		{`,"groupId":`, e.GroupID}, {`,"event":`, e.Event}, {`,"name":`, e.Name}, {`,"category":`, e.Category},
	} {
		if f.val != "" {
			b = append(b, f.key...)
			b = AppendJSONString(b, f.val)
		}
	}
	for _, f := range [...]struct {
		key string
		val json.RawMessage
	}{
		{`,"properties":`, e.Properties}, {`,"traits":`, e.Traits}, {`,"context":`, e.Context},
		{`,"integrations":`, e.Integrations}, {`,"_metadata":`, e.Metadata},
	} {
		if len(f.val) > 0 {
			b = append(b, f.key...)
			b = append(b, f.val...)
		}
	}
	if e.Channel != "" {
		b = append(b, `,"channel":`...)
		b = AppendJSONString(b, e.Channel)
	}
	b = appendJSONTime(append(b, `,"timestamp":`...), e.Timestamp)
	if !e.OriginalTimestamp.IsZero() {
		b = appendJSONTime(append(b, `,"originalTimestamp":`...), e.OriginalTimestamp)
	}
	if !e.SentAt.IsZero() {
		b = appendJSONTime(append(b, `,"sentAt":`...), e.SentAt)
	}
	b = appendJSONTime(append(b, `,"receivedAt":`...), e.ReceivedAt)
	if e.Subject != "" {
		b = append(b, `,"subject":`...)
		b = AppendJSONString(b, e.Subject)
	}
	if len(e.Sealed) > 0 {
		b = append(b, `,"sealed":"`...)
		b = base64.StdEncoding.AppendEncode(b, e.Sealed)
		b = append(b, '"')
	}
	if len(e.Erased) > 0 {
		b = append(b, `,"erased":[`...)
		for i, p := range e.Erased {
			if i > 0 {
				b = append(b, ',')
			}
			b = AppendJSONString(b, p)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

func appendJSONTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string, escaping what JSON requires
// and replacing invalid UTF-8 with U+FFFD, as encoding/json does (without
// its HTML escaping).
func AppendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// ErrClosed is returned by components used after Close.
var ErrClosed = errors.New("nudge: closed")
