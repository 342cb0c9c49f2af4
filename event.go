// Package nudge holds the domain types of the nudge marketing engine: the
// customer event that flows from ingest through the log to every consumer, and
// the small interfaces the engine's packages share.
//
// Adapters (ingest, bus, the store, channels) depend on this package; it
// depends on none of them.
package nudge

import (
	"encoding/json"
	"errors"
	"time"
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
	// TraceParent is the W3C trace context of the request that brought the
	// event (its ingest span), so that what the event causes (a journey
	// step, a delivery) joins its trace. "" when tracing is off.
	TraceParent string `json:"traceparent,omitempty"`
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

// ErrClosed is returned by components used after Close.
var ErrClosed = errors.New("nudge: closed")
