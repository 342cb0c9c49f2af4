// Package mailgun is an email channel that sends through the Mailgun
// Messages API, and parses Mailgun's signed webhooks into
// channel.Feedback (see ParseEvent).
//
// # Fields
//
// A send reads the fields of channel.Email: to (default: the recipient's
// "email" identifier), subject, text and/or html, from (default:
// Config.From) and reply_to.
//
// The message's UnsubscribeURL goes in the List-Unsubscribe header, with
// List-Unsubscribe-Post: List-Unsubscribe=One-Click (RFC 8058). The
// idempotency key and the profile id go in the message variables
// nudge-key and nudge-profile, which Mailgun echoes in its webhooks.
//
// # Outcome
//
// 2xx is a delivery. 408, 425, 429 and 5xx answers and network errors are
// retryable (a Retry-After header is passed on); any other answer is
// permanent. Errors carry the status, not Mailgun's message, which may
// quote an address. The Messages API takes no idempotency key, so the
// channel is not Idempotent.
package mailgun

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nudge-dev/nudge/channel"
)

// Config configures a Mailgun channel.
type Config struct {
	// Name is the channel's name in send steps; default "email".
	Name string
	// BaseURL is the API's base URL; default https://api.mailgun.net
	// (https://api.eu.mailgun.net for EU domains). Tests point it at a
	// local server.
	BaseURL string
	// Domain is the sending domain; required.
	Domain string
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

// Channel is a Mailgun email channel.
type Channel struct {
	cfg      Config
	endpoint string
}

var _ channel.Channel = (*Channel)(nil)

// New returns a Mailgun channel.
func New(cfg Config) (*Channel, error) {
	if cfg.APIKey == "" {
		return nil, errors.New("mailgun: an API key is required")
	}
	if cfg.Domain == "" || strings.ContainsAny(cfg.Domain, "/?#") {
		return nil, errors.New("mailgun: a sending domain is required")
	}
	if err := channel.CheckFrom(cfg.From); err != nil {
		return nil, fmt.Errorf("mailgun: %w", err)
	}
	base, err := channel.BaseURL(cfg.BaseURL, "https://api.mailgun.net")
	if err != nil {
		return nil, fmt.Errorf("mailgun: %w", err)
	}
	cfg.BaseURL = base
	cfg.Name = cmp.Or(cfg.Name, "email")
	cfg.Client = channel.HTTPClient(cfg.Client)
	cfg.Now = channel.Clock(cfg.Now)
	endpoint := base + "/v3/" + url.PathEscape(cfg.Domain) + "/messages"
	return &Channel{cfg: cfg, endpoint: endpoint}, nil
}

// Name implements channel.Channel.
func (c *Channel) Name() string { return c.cfg.Name }

// Idempotent: the Messages API takes no idempotency key.
func (c *Channel) Idempotent() bool { return false }

// Send implements channel.Channel.
func (c *Channel) Send(ctx context.Context, m *channel.Message) error {
	form, err := c.form(m)
	if err != nil {
		return channel.Permanent(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return channel.Permanent(fmt.Errorf("mailgun: %w", err))
	}
	req.SetBasicAuth("api", c.cfg.APIKey)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := channel.Do(c.cfg.Client, req)
	if err != nil {
		return channel.Retryable(fmt.Errorf("mailgun: %w", err), 0)
	}
	_, _ = channel.ReadBody(resp, 64<<10)
	if code := resp.StatusCode; code < 200 || code > 299 {
		return channel.HTTPError(resp, fmt.Errorf("mailgun: Mailgun answered %d", code), c.cfg.Now())
	}
	return nil
}

func (c *Channel) form(m *channel.Message) (url.Values, error) {
	e, err := channel.ReadEmail(m, c.cfg.From)
	if err != nil {
		return nil, fmt.Errorf("mailgun: %w", err)
	}
	v := url.Values{
		"from":            {e.From.String()},
		"to":              {e.To.String()},
		"subject":         {e.Subject},
		"v:nudge-key":     {m.IdempotencyKey},
		"v:nudge-profile": {m.Recipient.ProfileID},
	}
	if e.Text != "" {
		v.Set("text", e.Text)
	}
	if e.HTML != "" {
		v.Set("html", e.HTML)
	}
	if a := e.ReplyTo; a != nil {
		v.Set("h:Reply-To", a.String())
	}
	if u := e.ListUnsubscribe(); u != "" {
		v.Set("h:List-Unsubscribe", u)
		v.Set("h:List-Unsubscribe-Post", channel.OneClick)
	}
	return v, nil
}
