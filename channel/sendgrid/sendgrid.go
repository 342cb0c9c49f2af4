// Package sendgrid is an email channel that sends through the SendGrid v3
// Mail Send API, and parses SendGrid's signed Event Webhook into
// channel.Feedback (see ParseEvents).
//
// # Fields
//
// A send reads these fields of the message:
//
//   - to: the recipient's address; default the recipient's "email"
//     identifier.
//   - subject: the subject line; required.
//   - text, html: the plain-text and HTML bodies; at least one.
//   - from: the sender, "Name <address>" or an address; default
//     Config.From.
//   - reply_to: an optional Reply-To address.
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
	"net/mail"
	"net/url"
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
	if cfg.From != "" {
		if _, err := mail.ParseAddress(cfg.From); err != nil {
			return nil, errors.New("sendgrid: From is not an email address")
		}
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
	resp, err := c.cfg.Client.Do(req)
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
	f := m.Fields
	rcpt := cmp.Or(f["to"], m.Recipient.Identifiers["email"])
	if rcpt == "" {
		return nil, errors.New("sendgrid: the message has no to field and the recipient no email identifier")
	}
	to, err := mail.ParseAddress(rcpt)
	if err != nil {
		return nil, errors.New("sendgrid: the recipient's address is not an email address")
	}
	sender := cmp.Or(f["from"], c.cfg.From)
	if sender == "" {
		return nil, errors.New("sendgrid: the message has no from field and the channel no From")
	}
	from, err := mail.ParseAddress(sender)
	if err != nil {
		return nil, errors.New("sendgrid: the from field is not an email address")
	}
	r := request{
		Personalizations: []personalization{{To: []address{{Email: to.Address, Name: to.Name}}}},
		From:             address{Email: from.Address, Name: from.Name},
		Subject:          strings.TrimSpace(f["subject"]),
		CustomArgs:       map[string]string{"nudge_key": m.IdempotencyKey, "nudge_profile": m.Recipient.ProfileID},
	}
	if r.Subject == "" {
		return nil, errors.New("sendgrid: the message has no subject field")
	}
	if rt := f["reply_to"]; rt != "" {
		a, err := mail.ParseAddress(rt)
		if err != nil {
			return nil, errors.New("sendgrid: the reply_to field is not an email address")
		}
		r.ReplyTo = &address{Email: a.Address, Name: a.Name}
	}
	// SendGrid wants text/plain before text/html.
	if t := f["text"]; t != "" {
		r.Content = append(r.Content, content{"text/plain", t})
	}
	if h := f["html"]; h != "" {
		r.Content = append(r.Content, content{"text/html", h})
	}
	if len(r.Content) == 0 {
		return nil, errors.New("sendgrid: the message has neither a text nor an html field")
	}
	if u := m.UnsubscribeURL; u != "" {
		if p, err := url.Parse(u); err != nil || !p.IsAbs() || strings.ContainsAny(u, "\r\n<>") {
			return nil, errors.New("sendgrid: the message's UnsubscribeURL is not an absolute URL")
		}
		r.Headers = map[string]string{
			"List-Unsubscribe":      "<" + u + ">",
			"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
		}
	}
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("sendgrid: %w", err)
	}
	return b, nil
}
