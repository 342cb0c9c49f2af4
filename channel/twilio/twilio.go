// Package twilio is an SMS channel that sends through Twilio Programmable
// Messaging, and parses Twilio's signed status callbacks and inbound
// opt-out replies into channel.Feedback (see ParseStatus).
//
// # Fields
//
// A send reads these fields of the message:
//
//   - to: the recipient's phone number (E.164); default the recipient's
//     "phone" identifier.
//   - body: the text of the message; required.
//   - from: the sending number; default Config.From, or the messaging
//     service Config.MessagingServiceSID when it is set.
//
// When Config.StatusCallbackURL is set, every message asks Twilio to
// report its status there, with the idempotency key and the profile id in
// the query parameters nudge_key and nudge_profile.
//
// # Outcome
//
// 2xx is a delivery. 408, 425, 429 and 5xx answers and network errors are
// retryable (a Retry-After header is passed on); any other answer, such as
// 400 with error 21211 (an invalid number) or 21610 (the recipient replied
// STOP), is permanent. Errors carry the status and Twilio's error code,
// not its message, which quotes the number. Twilio takes no idempotency
// key, so the channel is not Idempotent.
package twilio

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nudge-dev/nudge/channel"
)

// Config configures a Twilio channel.
type Config struct {
	// Name is the channel's name in send steps; default "sms".
	Name string
	// BaseURL is the API's base URL; default https://api.twilio.com.
	// Tests point it at a local server.
	BaseURL string
	// AccountSID and AuthToken authenticate the requests; required.
	AccountSID string
	AuthToken  string
	// From is the sending number, and MessagingServiceSID a messaging
	// service that picks one; one of them is required, and the service
	// wins for messages without a from field.
	From                string
	MessagingServiceSID string
	// StatusCallbackURL, when set, is where Twilio reports the status of
	// each message (see ParseStatus).
	StatusCallbackURL string
	// Client sends the requests; default: a client with a 10 s timeout.
	Client *http.Client
	// Now is the clock that turns a Retry-After date into a wait; default
	// time.Now.
	Now func() time.Time
}

// Channel is a Twilio SMS channel.
type Channel struct {
	cfg      Config
	endpoint string
	callback *url.URL
}

var _ channel.Channel = (*Channel)(nil)

// New returns a Twilio channel.
func New(cfg Config) (*Channel, error) {
	if cfg.AccountSID == "" || strings.ContainsAny(cfg.AccountSID, "/?#") {
		return nil, errors.New("twilio: an account SID is required")
	}
	if cfg.AuthToken == "" {
		return nil, errors.New("twilio: an auth token is required")
	}
	if cfg.From == "" && cfg.MessagingServiceSID == "" {
		return nil, errors.New("twilio: a From number or a MessagingServiceSID is required")
	}
	base, err := channel.BaseURL(cfg.BaseURL, "https://api.twilio.com")
	if err != nil {
		return nil, fmt.Errorf("twilio: %w", err)
	}
	cfg.BaseURL = base
	c := &Channel{endpoint: base + "/2010-04-01/Accounts/" + url.PathEscape(cfg.AccountSID) + "/Messages.json"}
	if cfg.StatusCallbackURL != "" {
		cb, ok := channel.HTTPURL(cfg.StatusCallbackURL)
		if !ok {
			return nil, fmt.Errorf("twilio: StatusCallbackURL %q is not an http or https URL", cfg.StatusCallbackURL)
		}
		c.callback = cb
	}
	cfg.Name = cmp.Or(cfg.Name, "sms")
	cfg.Client = channel.HTTPClient(cfg.Client)
	cfg.Now = channel.Clock(cfg.Now)
	c.cfg = cfg
	return c, nil
}

// Name implements channel.Channel.
func (c *Channel) Name() string { return c.cfg.Name }

// Idempotent: Twilio's Messages API takes no idempotency key.
func (c *Channel) Idempotent() bool { return false }

// Send implements channel.Channel.
func (c *Channel) Send(ctx context.Context, m *channel.Message) error {
	form, err := c.form(m)
	if err != nil {
		return channel.Permanent(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return channel.Permanent(fmt.Errorf("twilio: %w", err))
	}
	req.SetBasicAuth(c.cfg.AccountSID, c.cfg.AuthToken)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := channel.Do(c.cfg.Client, req)
	if err != nil {
		return channel.Retryable(fmt.Errorf("twilio: %w", err), 0)
	}
	body, _ := channel.ReadBody(resp, 64<<10)
	code := resp.StatusCode
	if code >= 200 && code < 300 {
		return nil
	}
	var answer struct {
		Code int `json:"code"`
	}
	_ = json.NewDecoder(bytes.NewReader(body)).Decode(&answer)
	err = fmt.Errorf("twilio: Twilio answered %d", code)
	if answer.Code != 0 {
		err = fmt.Errorf("twilio: Twilio answered %d with error %d", code, answer.Code)
	}
	return channel.HTTPError(resp, err, c.cfg.Now())
}

func (c *Channel) form(m *channel.Message) (url.Values, error) {
	to := strings.TrimSpace(cmp.Or(m.Fields["to"], m.Recipient.Identifiers["phone"]))
	if to == "" {
		return nil, errors.New("twilio: the message has no to field and the recipient no phone identifier")
	}
	body := m.Fields["body"]
	if strings.TrimSpace(body) == "" {
		return nil, errors.New("twilio: the message has no body field")
	}
	v := url.Values{"To": {to}, "Body": {body}}
	switch from := m.Fields["from"]; {
	case from != "":
		v.Set("From", from)
	case c.cfg.MessagingServiceSID != "":
		v.Set("MessagingServiceSid", c.cfg.MessagingServiceSID)
	default:
		v.Set("From", c.cfg.From)
	}
	if c.callback != nil {
		cb := *c.callback
		q := cb.Query()
		q.Set("nudge_key", m.IdempotencyKey)
		q.Set("nudge_profile", m.Recipient.ProfileID)
		cb.RawQuery = q.Encode()
		v.Set("StatusCallback", cb.String())
	}
	return v, nil
}
