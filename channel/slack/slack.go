// Package slack is a channel that posts messages to Slack through incoming
// webhooks.
//
// # Fields
//
// A slack send reads these fields of the message:
//
//   - url: the incoming webhook URL; Config.URL when the field is missing.
//     It is a secret: the channel never quotes it in an error.
//   - text: the message text, in Slack's mrkdwn; with blocks, the fallback
//     shown in notifications.
//   - blocks: Block Kit blocks, a JSON array, sent as they are.
//
// A message needs text, blocks or both.
//
// # Outcome
//
// Slack answers 200 "ok" to a message it took. 408, 425, 429 and 5xx
// answers and network errors are retryable (a Retry-After header is passed
// on); any other answer (400 invalid_payload, 403 action_prohibited, 404
// no_service, 410 channel_is_archived...) is permanent. Slack's error code
// is quoted in the error. Incoming webhooks take no idempotency key.
package slack

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

// Config configures a Slack channel.
type Config struct {
	// Name is the channel's name in send steps; default "slack".
	Name string
	// URL is the incoming webhook for messages without a url field.
	URL string
	// Client sends the requests; default: a client with a 10 s timeout.
	Client *http.Client
	// Now is the clock that Retry-After dates are read against; default
	// time.Now.
	Now func() time.Time
}

// Channel is a Slack channel.
type Channel struct {
	cfg Config
}

var _ channel.Channel = (*Channel)(nil)

// New returns a Slack channel.
func New(cfg Config) (*Channel, error) {
	if cfg.URL != "" && !isHTTPURL(cfg.URL) {
		return nil, errors.New("slack: URL is not an http or https URL")
	}
	if cfg.Name == "" {
		cfg.Name = "slack"
	}
	cfg.Client = channel.HTTPClient(cfg.Client)
	cfg.Now = channel.Clock(cfg.Now)
	return &Channel{cfg: cfg}, nil
}

// Name implements channel.Channel.
func (c *Channel) Name() string { return c.cfg.Name }

// Idempotent: incoming webhooks take no idempotency key.
func (c *Channel) Idempotent() bool { return false }

type payload struct {
	Text   string          `json:"text,omitempty"`
	Blocks json.RawMessage `json:"blocks,omitempty"`
}

// Send implements channel.Channel.
func (c *Channel) Send(ctx context.Context, m *channel.Message) error {
	target := strings.TrimSpace(m.Fields["url"])
	if target == "" {
		target = c.cfg.URL
	}
	switch {
	case target == "":
		return channel.Permanent(errors.New("slack: the message has no url field and the channel no URL"))
	case !isHTTPURL(target):
		return channel.Permanent(errors.New("slack: the url field is not an http or https URL"))
	}
	p := payload{Text: m.Fields["text"]}
	if b := strings.TrimSpace(m.Fields["blocks"]); b != "" {
		p.Blocks = json.RawMessage(b)
		if !json.Valid(p.Blocks) || b[0] != '[' {
			return channel.Permanent(errors.New("slack: the blocks field is not a JSON array"))
		}
	}
	if strings.TrimSpace(p.Text) == "" && p.Blocks == nil {
		return channel.Permanent(errors.New("slack: the message has no text or blocks field"))
	}
	body, err := json.Marshal(p)
	if err != nil {
		return channel.Permanent(fmt.Errorf("slack: %w", err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return channel.Permanent(errors.New("slack: the url field is not a valid URL"))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "nudge-slack/1")
	resp, err := channel.Do(c.cfg.Client, req)
	if err != nil {
		return channel.Retryable(fmt.Errorf("slack: %w", err), 0)
	}
	answer, _ := channel.ReadBody(resp, 256)
	code := resp.StatusCode
	if code >= 200 && code < 300 {
		return nil
	}
	err = fmt.Errorf("slack: Slack answered %d", code)
	if reason := errorCode(answer); reason != "" {
		err = fmt.Errorf("slack: Slack answered %d %s", code, reason)
	}
	return channel.HTTPError(resp, err, c.cfg.Now())
}

func isHTTPURL(s string) bool {
	_, ok := channel.HTTPURL(s)
	return ok
}

// errorCode returns Slack's error code (invalid_payload, no_service...)
// from an answer, or "" when the answer is anything else: a proxy's page,
// which might quote the request.
func errorCode(answer []byte) string {
	s := strings.TrimSpace(string(answer))
	if s == "" || len(s) > 64 || strings.Trim(s, "abcdefghijklmnopqrstuvwxyz_") != "" {
		return ""
	}
	return s
}
