// Package meta is a channel that adds people to (or removes them from) a
// Meta (Facebook, Instagram) Custom Audience built from a customer list,
// through the Marketing API.
//
// # Fields
//
// It reads the action and audience fields and the recipient's email and
// phone identifiers, as package audience describes; audience is the
// custom audience id.
//
// # Requests
//
// A send is one form-encoded request to
// {BaseURL}/{Version}/{audience id}/users, POST to add and DELETE to
// remove, with two parameters: access_token, and payload, a JSON object
//
//	{"schema": ["EMAIL", "PHONE"], "data": [["<sha256>", "<sha256>"]]}
//
// whose schema lists the identifiers the recipient has: the SHA-256 of
// the trimmed, lower-cased email address, and of the phone number as
// digits with the country code and without the "+".
//
// # Outcome
//
// 408, 425, 429 and 5xx answers and network errors are retryable (a
// Retry-After header is passed on), and so are the Graph API's throttling
// and transient errors, which come as 400 answers (error codes 1, 2, 4,
// 17, 32, 613 and 80003, or is_transient set). Any other answer is
// permanent, and so is a 200 answer that counts the entry as invalid.
// Meta takes no idempotency key; adding a member twice, or removing one
// twice, leaves the audience as once.
package meta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nudge-dev/nudge/channel"
	"github.com/nudge-dev/nudge/channel/audience"
)

// Config configures a Meta Custom Audiences channel.
type Config struct {
	// Name is the channel's name in send steps; default "meta_audience".
	Name string
	// BaseURL is the Graph API's address; default https://graph.facebook.com.
	// Tests point it at a local server.
	BaseURL string
	// Version is the Graph API version in the path; default "v24.0".
	Version string
	// AccessToken is a system user's token with the ads_management
	// permission; required.
	AccessToken string
	// Audience is the custom audience id for messages without an audience
	// field.
	Audience string
	// Client sends the requests; default: a client with a 10 s timeout.
	Client *http.Client
	// Now is the clock that Retry-After dates are read against; default
	// time.Now.
	Now func() time.Time
}

// Channel is a Meta Custom Audiences channel.
type Channel struct {
	cfg Config
}

var _ channel.Channel = (*Channel)(nil)

// New returns a Meta Custom Audiences channel.
func New(cfg Config) (*Channel, error) {
	if cfg.AccessToken == "" {
		return nil, errors.New("meta_audience: an AccessToken is required")
	}
	if cfg.Name == "" {
		cfg.Name = "meta_audience"
	}
	base, err := channel.BaseURL(cfg.BaseURL, "https://graph.facebook.com")
	if err != nil {
		return nil, fmt.Errorf("meta_audience: %w", err)
	}
	cfg.BaseURL = base
	if cfg.Version == "" {
		cfg.Version = "v24.0"
	}
	cfg.Client = channel.HTTPClient(cfg.Client)
	cfg.Now = channel.Clock(cfg.Now)
	return &Channel{cfg: cfg}, nil
}

// Name implements channel.Channel.
func (c *Channel) Name() string { return c.cfg.Name }

// Idempotent: Meta takes no idempotency key.
func (c *Channel) Idempotent() bool { return false }

// Payload is the payload parameter of a request.
type Payload struct {
	Schema []string   `json:"schema"`
	Data   [][]string `json:"data"`
}

// Send implements channel.Channel.
func (c *Channel) Send(ctx context.Context, m *channel.Message) error {
	r, err := audience.Parse(m, c.cfg.Audience)
	if err != nil {
		return err
	}
	var p Payload
	var row []string
	if r.Email != "" {
		p.Schema = append(p.Schema, "EMAIL")
		row = append(row, audience.Hash(r.Email))
	}
	if r.Phone != "" {
		p.Schema = append(p.Schema, "PHONE")
		row = append(row, audience.Hash(strings.TrimPrefix(r.Phone, "+")))
	}
	p.Data = [][]string{row}
	payload, err := json.Marshal(p)
	if err != nil {
		return channel.Permanent(fmt.Errorf("meta_audience: %w", err))
	}
	method := http.MethodPost
	if r.Action == audience.Remove {
		method = http.MethodDelete
	}
	form := url.Values{"payload": {string(payload)}, "access_token": {c.cfg.AccessToken}}
	req, err := http.NewRequestWithContext(ctx, method, c.cfg.BaseURL+"/"+c.cfg.Version+"/"+r.Audience+"/users", strings.NewReader(form.Encode()))
	if err != nil {
		return channel.Permanent(fmt.Errorf("meta_audience: %w", err))
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "nudge-meta-audience/1")
	resp, err := channel.Do(c.cfg.Client, req)
	if err != nil {
		return channel.Retryable(fmt.Errorf("meta_audience: %w", err), 0)
	}
	body, err := channel.ReadBody(resp, 1<<20)
	if err != nil {
		return channel.Retryable(fmt.Errorf("meta_audience: reading the answer: %w", err), 0)
	}
	var answer struct {
		NumInvalidEntries int `json:"num_invalid_entries"`
		Error             struct {
			Type        string `json:"type"`
			Code        int    `json:"code"`
			Subcode     int    `json:"error_subcode"`
			IsTransient bool   `json:"is_transient"`
		} `json:"error"`
	}
	_ = json.Unmarshal(body, &answer)
	code := resp.StatusCode
	if code >= 200 && code < 300 {
		if answer.NumInvalidEntries > 0 {
			return channel.Permanent(errors.New("meta_audience: Meta counted the entry as invalid"))
		}
		return nil
	}
	// The error's message may quote the request; its type and codes
	// name the failure.
	e := answer.Error
	err = fmt.Errorf("meta_audience: the Graph API answered %d", code)
	if e.Code != 0 {
		err = fmt.Errorf("%w (%s code %d, subcode %d)", err, e.Type, e.Code, e.Subcode)
	}
	if e.IsTransient || throttled(e.Code) {
		// Throttling comes as a 400 answer, which HTTPError takes as permanent.
		return channel.Retryable(err, channel.ParseRetryAfter(resp.Header.Get("Retry-After"), c.cfg.Now()))
	}
	return channel.HTTPError(resp, err, c.cfg.Now())
}

// throttled reports whether a Graph API error code says the request may
// pass later: an unknown or temporary error, or a rate limit.
func throttled(code int) bool {
	switch code {
	case 1, 2, 4, 17, 32, 613, 80003:
		return true
	}
	return false
}
