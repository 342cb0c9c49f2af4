// Package sendgrid is an email channel that sends through the SendGrid v3
// Mail Send API, and parses SendGrid's signed Event Webhook into
// channel.Feedback (see ParseEvents).
//
// # Fields
//
// A send reads the fields of channel.Email: to (default: the recipient's
// "email" identifier), subject, text and/or html, from (default:
// Config.From) and reply_to.
//
// The message's UnsubscribeURL goes in the List-Unsubscribe header, with
// List-Unsubscribe-Post: List-Unsubscribe=One-Click (RFC 8058). The
// idempotency key and the profile id go in the custom arguments nudge_key
// and nudge_profile, which SendGrid echoes in its events.
//
// # Outcome
//
// 202 (any 2xx) is a delivery. 408, 425, 429 and 5xx answers and network errors are
// retryable (a Retry-After header is passed on); any other answer is
// permanent. Errors name the fields SendGrid complained about, not its
// messages, which may quote an address. The Mail Send API takes no
// idempotency key, so the channel is not Idempotent.
package sendgrid

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/nudge-dev/nudge/channel"
)

// Config configures a SendGrid channel.
type Config struct {
	// Name is the channel's name in send steps; default "email".
	Name string
	// BaseURL is the API's base URL; default https://api.sendgrid.com
	// (https://api.eu.sendgrid.com for EU subusers). Tests point it at a
	// local server.
	BaseURL string
	// APIKey authenticates the requests; required.
	APIKey string
	// From is the sender of messages without a from field.
	From string
	// Client sends the requests; default: a client with a 10 s timeout.
	Client *http.Client
	// Now is the clock that turns a Retry-After date into a wait; default
	// time.Now.
	Now func() time.Time
}

// Channel is a SendGrid email channel.
type Channel struct {
	cfg      Config
	endpoint string
}

var _ channel.Channel = (*Channel)(nil)

// New returns a SendGrid channel.
func New(cfg Config) (*Channel, error) {
	if cfg.APIKey == "" {
		return nil, errors.New("sendgrid: an API key is required")
	}
	if err := channel.CheckFrom(cfg.From); err != nil {
		return nil, fmt.Errorf("sendgrid: %w", err)
	}
	base, err := channel.BaseURL(cfg.BaseURL, "https://api.sendgrid.com")
	if err != nil {
		return nil, fmt.Errorf("sendgrid: %w", err)
	}
	cfg.BaseURL = base
	cfg.Name = cmp.Or(cfg.Name, "email")
	cfg.Client = channel.HTTPClient(cfg.Client)
	cfg.Now = channel.Clock(cfg.Now)
	return &Channel{cfg: cfg, endpoint: base + "/v3/mail/send"}, nil
}

// Name implements channel.Channel.
func (c *Channel) Name() string { return c.cfg.Name }

// Idempotent: the Mail Send API takes no idempotency key.
func (c *Channel) Idempotent() bool { return false }

type address struct {
	Email string `json:"email"`
	Name  string `json:"name,omitempty"`
}

type content struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// request is the body of POST /v3/mail/send.
type request struct {
	Personalizations []personalization `json:"personalizations"`
	From             address           `json:"from"`
	ReplyTo          *address          `json:"reply_to,omitempty"`
	Subject          string            `json:"subject"`
	Content          []content         `json:"content"`
	Headers          map[string]string `json:"headers,omitempty"`
	CustomArgs       map[string]string `json:"custom_args"`
}

type personalization struct {
	To []address `json:"to"`
}

// Send implements channel.Channel.
func (c *Channel) Send(ctx context.Context, m *channel.Message) error {
	body, err := c.body(m)
	if err != nil {
		return channel.Permanent(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		return channel.Permanent(fmt.Errorf("sendgrid: %w", err))
	}
	req.Header.Set("Authorization", "Bearer "+c.cfg.APIKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := channel.Do(c.cfg.Client, req)
	if err != nil {
		return channel.Retryable(fmt.Errorf("sendgrid: %w", err), 0)
	}
	raw, _ := channel.ReadBody(resp, 64<<10)
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	var answer struct {
		Errors []struct {
			Field *string `json:"field"`
		} `json:"errors"`
	}
	_ = json.NewDecoder(bytes.NewReader(raw)).Decode(&answer)
	var fields []string
	for _, e := range answer.Errors {
		if e.Field != nil && *e.Field != "" {
			fields = append(fields, *e.Field)
		}
	}
	err = fmt.Errorf("sendgrid: SendGrid answered %d", resp.StatusCode)
	if len(fields) > 0 {
		err = fmt.Errorf("sendgrid: SendGrid answered %d about %s", resp.StatusCode, strings.Join(fields, ", "))
	}
	return channel.HTTPError(resp, err, c.cfg.Now())
}

func (c *Channel) body(m *channel.Message) ([]byte, error) {
	e, err := channel.ReadEmail(m, c.cfg.From)
	if err != nil {
		return nil, fmt.Errorf("sendgrid: %w", err)
	}
	r := request{
		Personalizations: []personalization{{To: []address{{Email: e.To.Address, Name: e.To.Name}}}},
		From:             address{Email: e.From.Address, Name: e.From.Name},
		Subject:          e.Subject,
		CustomArgs:       map[string]string{"nudge_key": m.IdempotencyKey, "nudge_profile": m.Recipient.ProfileID},
	}
	if a := e.ReplyTo; a != nil {
		r.ReplyTo = &address{Email: a.Address, Name: a.Name}
	}
	// SendGrid wants text/plain before text/html.
	if e.Text != "" {
		r.Content = append(r.Content, content{"text/plain", e.Text})
	}
	if e.HTML != "" {
		r.Content = append(r.Content, content{"text/html", e.HTML})
	}
	if u := e.ListUnsubscribe(); u != "" {
		r.Headers = map[string]string{"List-Unsubscribe": u, "List-Unsubscribe-Post": channel.OneClick}
	}
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("sendgrid: %w", err)
	}
	return b, nil
}
