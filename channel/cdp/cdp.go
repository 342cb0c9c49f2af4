// Package cdp is a channel that forwards identify and track calls to
// another customer data platform that speaks the Segment HTTP tracking API
// (Segment, RudderStack, Jitsu, another nudge...).
//
// # Fields
//
// A cdp send reads these fields of the message:
//
//   - type: "track" (the default) or "identify".
//   - event: the event name of a track call; required for track.
//   - properties: a track call's properties, a JSON object.
//   - traits: an identify call's traits, a JSON object.
//
// The call's userId is the recipient's "userId" identifier; without one,
// its anonymousId is the "anonymousId" identifier, and a recipient with
// neither is a permanent error.
//
// # Requests
//
// Each send is one POST of {"batch": [call]} to {BaseURL}/v1/batch, with
// HTTP Basic authentication: the write key as user name and an empty
// password. The call's messageId is the message's IdempotencyKey, its
// timestamp the message's CreatedAt and its sentAt the channel's clock.
// Segment drops a call whose messageId it has seen, so a retried send is
// not counted twice.
//
// # Outcome
//
// A 2xx answer is a delivery. 408, 425, 429 and 5xx answers and network
// errors are retryable (a Retry-After header is passed on); any other
// answer is permanent.
package cdp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/nudge-dev/nudge/channel"
)

// Config configures a cdp channel.
type Config struct {
	// Name is the channel's name in send steps; default "cdp".
	Name string
	// BaseURL is the tracking API's address; default https://api.segment.io.
	// Tests point it at a local server.
	BaseURL string
	// WriteKey is the source's write key; required.
	WriteKey string
	// Client sends the requests; default: a client with a 10 s timeout.
	Client *http.Client
	// Now is the clock of sentAt and of Retry-After dates; default time.Now.
	Now func() time.Time
}

// Channel is a cdp channel.
type Channel struct {
	cfg Config
}

var _ channel.Channel = (*Channel)(nil)

// New returns a cdp channel.
func New(cfg Config) (*Channel, error) {
	if cfg.WriteKey == "" {
		return nil, errors.New("cdp: a WriteKey is required")
	}
	if cfg.Name == "" {
		cfg.Name = "cdp"
	}
	base, err := channel.BaseURL(cfg.BaseURL, "https://api.segment.io")
	if err != nil {
		return nil, fmt.Errorf("cdp: %w", err)
	}
	cfg.BaseURL = base
	cfg.Client = channel.HTTPClient(cfg.Client)
	cfg.Now = channel.Clock(cfg.Now)
	return &Channel{cfg: cfg}, nil
}

// Name implements channel.Channel.
func (c *Channel) Name() string { return c.cfg.Name }

// Idempotent: Segment deduplicates calls by messageId, which is the
// message's IdempotencyKey.
func (c *Channel) Idempotent() bool { return true }

// Call is one call of a batch.
type Call struct {
	Type        string          `json:"type"`
	MessageID   string          `json:"messageId"`
	UserID      string          `json:"userId,omitempty"`
	AnonymousID string          `json:"anonymousId,omitempty"`
	Event       string          `json:"event,omitempty"`
	Properties  json.RawMessage `json:"properties,omitempty"`
	Traits      json.RawMessage `json:"traits,omitempty"`
	Timestamp   time.Time       `json:"timestamp,omitzero"`
}

// Batch is the body of a request.
type Batch struct {
	Batch  []Call    `json:"batch"`
	SentAt time.Time `json:"sentAt"`
}

// Send implements channel.Channel.
func (c *Channel) Send(ctx context.Context, m *channel.Message) error {
	call, err := callOf(m)
	if err != nil {
		return channel.Permanent(err)
	}
	body, err := json.Marshal(Batch{Batch: []Call{call}, SentAt: c.cfg.Now().UTC()})
	if err != nil {
		return channel.Permanent(fmt.Errorf("cdp: %w", err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.BaseURL+"/v1/batch", bytes.NewReader(body))
	if err != nil {
		return channel.Permanent(fmt.Errorf("cdp: %w", err))
	}
	req.SetBasicAuth(c.cfg.WriteKey, "")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "nudge-cdp/1")
	resp, err := channel.Do(c.cfg.Client, req)
	if err != nil {
		return channel.Retryable(fmt.Errorf("cdp: %w", err), 0)
	}
	_, _ = channel.ReadBody(resp, 64<<10)
	if code := resp.StatusCode; code < 200 || code > 299 {
		return channel.HTTPError(resp, fmt.Errorf("cdp: the endpoint answered %d", code), c.cfg.Now())
	}
	return nil
}

// callOf builds m's call; its errors name the field at fault.
func callOf(m *channel.Message) (Call, error) {
	call := Call{
		Type:      strings.ToLower(strings.TrimSpace(m.Fields["type"])),
		MessageID: m.IdempotencyKey,
		UserID:    m.Recipient.Identifiers["userId"],
		Timestamp: m.CreatedAt.UTC(),
	}
	if call.UserID == "" {
		call.AnonymousID = m.Recipient.Identifiers["anonymousId"]
		if call.AnonymousID == "" {
			return call, errors.New("cdp: the recipient has no userId or anonymousId identifier")
		}
	}
	var field string
	switch call.Type {
	case "", "track":
		call.Type = "track"
		call.Event = strings.TrimSpace(m.Fields["event"])
		if call.Event == "" {
			return call, errors.New("cdp: a track call needs an event field")
		}
		field = "properties"
	case "identify":
		field = "traits"
	default:
		return call, fmt.Errorf("cdp: type %q is not track or identify", call.Type)
	}
	obj := json.RawMessage(strings.TrimSpace(m.Fields[field]))
	if len(obj) > 0 && (!json.Valid(obj) || obj[0] != '{') {
		return call, fmt.Errorf("cdp: the %s field is not a JSON object", field)
	}
	if field == "traits" {
		call.Traits = obj
	} else {
		call.Properties = obj
	}
	return call, nil
}
