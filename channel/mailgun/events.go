package mailgun

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/nudge-dev/nudge/channel"
)

// maxEventBody bounds the body ParseEvent reads.
const maxEventBody = 1 << 20

// ErrSignature is returned by ParseEvent for a webhook that Mailgun did
// not sign with the signing key, or signed longer ago than allowed.
var ErrSignature = errors.New("mailgun: bad webhook signature")

// webhook is the body of a Mailgun webhook request.
type webhook struct {
	Signature struct {
		Timestamp string `json:"timestamp"`
		Token     string `json:"token"`
		Signature string `json:"signature"`
	} `json:"signature"`
	Event struct {
		Event          string                     `json:"event"`
		Severity       string                     `json:"severity"`
		Reason         string                     `json:"reason"`
		Recipient      string                     `json:"recipient"`
		Timestamp      float64                    `json:"timestamp"`
		ID             string                     `json:"id"`
		UserVariables  map[string]json.RawMessage `json:"user-variables"`
		DeliveryStatus struct {
			Message     string `json:"message"`
			Description string `json:"description"`
		} `json:"delivery-status"`
	} `json:"event-data"`
}

// ParseEvent verifies a Mailgun webhook request and returns its event as
// feedback: none for events nudge does not track (accepted, stored...),
// else one of
//
//   - delivered: Delivered
//   - failed: Bounced when its severity is permanent, Deferred when
//     temporary
//   - complained: Complained
//   - unsubscribed: Unsubscribed
//   - opened: Opened; clicked: Clicked
//
// The signature is the hex HMAC-SHA256, keyed with the webhook signing
// key, of the signature's timestamp and token; a timestamp further than
// maxAge from now is refused as a replay. Key and ProfileID come from the
// nudge-key and nudge-profile message variables, ProviderID is the
// event's id. An error wraps ErrSignature when the signature does not
// verify.
func ParseEvent(r *http.Request, signingKey string, maxAge time.Duration, now time.Time) ([]channel.Feedback, error) {
	if signingKey == "" {
		return nil, errors.New("mailgun: ParseEvent needs the webhook signing key")
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxEventBody+1))
	if err != nil {
		return nil, fmt.Errorf("mailgun: reading the webhook: %w", err)
	}
	if len(body) > maxEventBody {
		return nil, errors.New("mailgun: the webhook is too large")
	}
	var w webhook
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, fmt.Errorf("mailgun: the webhook is not JSON: %w", err)
	}
	if err := verify(signingKey, w.Signature.Timestamp, w.Signature.Token, w.Signature.Signature, maxAge, now); err != nil {
		return nil, err
	}
	e := w.Event
	f := channel.Feedback{
		Key: str(e.UserVariables["nudge-key"]), ProfileID: str(e.UserVariables["nudge-profile"]),
		Address: e.Recipient, Channel: "email", ProviderID: e.ID,
	}
	if e.Timestamp > 0 {
		sec, frac := math.Modf(e.Timestamp)
		f.At = time.Unix(int64(sec), int64(frac*1e9)).UTC().Truncate(time.Microsecond)
	}
	switch e.Event {
	case "delivered":
		f.Kind = channel.Delivered
	case "failed":
		f.Kind = channel.Deferred
		if e.Severity == "permanent" {
			f.Kind = channel.Bounced
		}
		switch {
		case e.DeliveryStatus.Message != "":
			f.Reason = e.DeliveryStatus.Message
		case e.DeliveryStatus.Description != "":
			f.Reason = e.DeliveryStatus.Description
		default:
			f.Reason = e.Reason
		}
	case "complained":
		f.Kind = channel.Complained
	case "unsubscribed":
		f.Kind = channel.Unsubscribed
	case "opened":
		f.Kind = channel.Opened
	case "clicked":
		f.Kind = channel.Clicked
	default:
		return nil, nil
	}
	return []channel.Feedback{f}, nil
}

func verify(key, timestamp, token, signature string, maxAge time.Duration, now time.Time) error {
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil || token == "" {
		return fmt.Errorf("%w: malformed signature", ErrSignature)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > maxAge || d < -maxAge {
		return fmt.Errorf("%w: timestamp outside the allowed age", ErrSignature)
	}
	got, err := hex.DecodeString(signature)
	if err != nil {
		return fmt.Errorf("%w: malformed signature", ErrSignature)
	}
	h := hmac.New(sha256.New, []byte(key))
	h.Write([]byte(timestamp))
	h.Write([]byte(token))
	if !hmac.Equal(got, h.Sum(nil)) {
		return ErrSignature
	}
	return nil
}

// str returns a message variable as text: Mailgun passes variables that
// look like JSON (a number) on as JSON.
func str(raw json.RawMessage) string {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s
	}
	return string(raw)
}
