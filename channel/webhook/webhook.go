// Package webhook is a channel that POSTs each message as JSON to an HTTP
// endpoint, signed so that the receiver can check it came from nudge.
//
// # Fields
//
// A webhook send reads these fields of the message:
//
//   - url: where to send it. Relative to Config.URL when it is relative,
//     and Config.URL itself when the field is missing.
//   - method: POST (the default), PUT or PATCH.
//   - body: the request body, which must be JSON. Without it the body is
//     the message as a JSON object (see Envelope).
//
// # Signature
//
// Every request carries
//
//	Idempotency-Key: <the message's idempotency key>
//	Nudge-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>
//
// where the HMAC is keyed with Config.Secret over the decimal timestamp, a
// dot, and the exact body bytes. A receiver recomputes it (Verify does), compares
// in constant time, refuses timestamps too far from its clock (a replayed
// request), and drops a second request with an Idempotency-Key it has
// already processed: after a crash nudge may send a message again, always
// with the same key.
//
// # Outcome
//
// A 2xx answer is a delivery. 408, 425, 429 and 5xx answers and network
// errors are retryable (a Retry-After header, in seconds or as an HTTP
// date, is passed on); any other answer is permanent.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nudge-dev/nudge/channel"
)

// Config configures a webhook channel.
type Config struct {
	// Name is the channel's name in send steps; default "webhook".
	Name string
	// URL is the endpoint for messages without a url field, and the base
	// of relative ones. Tests point it at a local server.
	URL string
	// Secret keys the signature; required.
	Secret []byte
	// Client sends the requests; default: a client with a 10 s timeout.
	Client *http.Client
	// Now is the clock of the signature's timestamp; default time.Now.
	Now func() time.Time
}

// Channel is a webhook channel.
type Channel struct {
	cfg  Config
	base *url.URL
}

var _ channel.Channel = (*Channel)(nil)

// New returns a webhook channel.
func New(cfg Config) (*Channel, error) {
	if len(cfg.Secret) == 0 {
		return nil, errors.New("webhook: a secret is required to sign requests")
	}
	if cfg.Name == "" {
		cfg.Name = "webhook"
	}
	cfg.Client = channel.HTTPClient(cfg.Client)
	cfg.Now = channel.Clock(cfg.Now)
	c := &Channel{cfg: cfg}
	if cfg.URL != "" {
		u, ok := channel.HTTPURL(cfg.URL)
		if !ok {
			return nil, fmt.Errorf("webhook: URL %q is not an http or https URL", cfg.URL)
		}
		c.base = u
	}
	return c, nil
}

// Name implements channel.Channel.
func (c *Channel) Name() string { return c.cfg.Name }

// Idempotent: every request carries the Idempotency-Key header, and a
// receiver that follows this package's contract drops repeats.
func (c *Channel) Idempotent() bool { return true }

// Envelope is the body of a message that has no body field.
type Envelope struct {
	IdempotencyKey string            `json:"idempotency_key"`
	Journey        string            `json:"journey"`
	Version        int               `json:"version"`
	Step           string            `json:"step"`
	Variant        string            `json:"variant,omitempty"`
	ProfileID      string            `json:"profile_id"`
	Identifiers    map[string]string `json:"identifiers,omitempty"`
	Fields         map[string]string `json:"fields"`
	Transactional  bool              `json:"transactional"`
	CreatedAt      time.Time         `json:"created_at"`
}

// Send implements channel.Channel.
func (c *Channel) Send(ctx context.Context, m *channel.Message) error {
	target, err := c.target(m.Fields["url"])
	if err != nil {
		return channel.Permanent(err)
	}
	method := strings.ToUpper(strings.TrimSpace(m.Fields["method"]))
	switch method {
	case "":
		method = http.MethodPost
	case http.MethodPost, http.MethodPut, http.MethodPatch:
	default:
		return channel.Permanent(fmt.Errorf("webhook: method %q is not POST, PUT or PATCH", method))
	}
	var body []byte
	if b, ok := m.Fields["body"]; ok {
		body = []byte(strings.TrimSpace(b))
		if !json.Valid(body) {
			return channel.Permanent(errors.New("webhook: the body field is not valid JSON"))
		}
	} else {
		body, err = json.Marshal(Envelope{
			IdempotencyKey: m.IdempotencyKey, Journey: m.Journey, Version: m.Version, Step: m.Step,
			Variant: m.Variant, ProfileID: m.Recipient.ProfileID, Identifiers: m.Recipient.Identifiers,
			Fields: m.Fields, Transactional: m.Transactional, CreatedAt: m.CreatedAt,
		})
		if err != nil {
			return channel.Permanent(fmt.Errorf("webhook: %w", err))
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
	if err != nil {
		return channel.Permanent(fmt.Errorf("webhook: %w", err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "nudge-webhook/1")
	req.Header.Set("Idempotency-Key", m.IdempotencyKey)
	req.Header.Set("Nudge-Signature", Sign(c.cfg.Secret, c.cfg.Now(), body))
	resp, err := channel.Do(c.cfg.Client, req)
	if err != nil {
		return channel.Retryable(fmt.Errorf("webhook: %w", err), 0)
	}
	_, _ = channel.ReadBody(resp, 64<<10)
	if code := resp.StatusCode; code < 200 || code > 299 {
		return channel.HTTPError(resp, fmt.Errorf("webhook: the endpoint answered %d", code), c.cfg.Now())
	}
	return nil
}

func (c *Channel) target(field string) (string, error) {
	field = strings.TrimSpace(field)
	if field == "" {
		if c.base == nil {
			return "", errors.New("webhook: the message has no url field and the channel no URL")
		}
		return c.base.String(), nil
	}
	u, err := url.Parse(field)
	if err != nil {
		return "", fmt.Errorf("webhook: the url field is not a URL: %w", err)
	}
	if !u.IsAbs() {
		if c.base == nil {
			return "", errors.New("webhook: the url field is relative and the channel has no URL")
		}
		u = c.base.ResolveReference(u)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("webhook: the url field is not an http or https URL")
	}
	return u.String(), nil
}

// Sign returns the Nudge-Signature header of body, sent at t.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// ErrSignature is returned by Verify for a request nudge did not sign with
// the secret, or signed too long ago.
var ErrSignature = errors.New("webhook: bad signature")

// Verify checks a Nudge-Signature header against the body as received,
// for receivers written in Go: the HMAC must match (any of several v1
// values, as during a secret rotation) and the timestamp must be within
// tolerance of now.
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs [][]byte
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return fmt.Errorf("%w: malformed header", ErrSignature)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: timestamp outside the tolerance", ErrSignature)
	}
	want := mac(secret, ts, body)
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			return nil
		}
	}
	return fmt.Errorf("%w: no matching signature", ErrSignature)
}
