// Package nudge holds the domain types of the nudge marketing engine: the
// customer event that flows from ingest through the log to every consumer, and
// the small interfaces the engine's packages share.
//
// Adapters (ingest, bus, the store, channels) depend on this package; it
// depends on none of them.
package nudge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
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

// EncodeEvents appends events to buf as JSON lines, the payload format of a
// log message.
func EncodeEvents(buf []byte, events []Event) ([]byte, error) {
	for i := range events {
		b, err := json.Marshal(&events[i])
		if err != nil {
			return buf, fmt.Errorf("encode event %d: %w", i, err)
		}
		buf = append(buf, b...)
		buf = append(buf, '\n')
	}
	return buf, nil
}

// DecodeEvents parses a log message payload written by EncodeEvents.
func DecodeEvents(payload []byte) ([]Event, error) {
	var events []Event
	for len(payload) > 0 {
		line := payload
		if i := bytes.IndexByte(payload, '\n'); i >= 0 {
			line, payload = payload[:i], payload[i+1:]
		} else {
			payload = nil
		}
		if len(line) == 0 {
			continue
		}
		var e Event
		if err := json.Unmarshal(line, &e); err != nil {
			return events, fmt.Errorf("decode event %d: %w", len(events), err)
		}
		events = append(events, e)
	}
	return events, nil
}

// ErrClosed is returned by components used after Close.
var ErrClosed = errors.New("nudge: closed")
