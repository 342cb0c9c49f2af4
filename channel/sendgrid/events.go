package sendgrid

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/nudge-dev/nudge/channel"
)

// The headers of a signed Event Webhook request.
const (
	SignatureHeader = "X-Twilio-Email-Event-Webhook-Signature"
	TimestampHeader = "X-Twilio-Email-Event-Webhook-Timestamp"
)

// maxEventsBody bounds the body ParseEvents reads: SendGrid posts batches
// of up to a few thousand events.
const maxEventsBody = 8 << 20

// ErrSignature is returned by ParseEvents and Verify for a request that
// SendGrid did not sign with the configured key.
var ErrSignature = errors.New("sendgrid: bad event webhook signature")

// Verifier checks the signatures of the Event Webhook: ECDSA P-256 over
// SHA-256 of the timestamp header followed by the body.
type Verifier struct {
	key *ecdsa.PublicKey
}

// NewVerifier returns a verifier for the webhook's verification key as
// SendGrid shows it (base64 of the DER public key) or in PEM.
func NewVerifier(publicKey string) (*Verifier, error) {
	publicKey = strings.TrimSpace(publicKey)
	var der []byte
	if block, _ := pem.Decode([]byte(publicKey)); block != nil {
		der = block.Bytes
	} else {
		b, err := base64.StdEncoding.DecodeString(publicKey)
		if err != nil {
			return nil, errors.New("sendgrid: the verification key is neither PEM nor base64")
		}
		der = b
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("sendgrid: the verification key: %w", err)
	}
	key, ok := pub.(*ecdsa.PublicKey)
	if !ok {
		return nil, errors.New("sendgrid: the verification key is not an ECDSA key")
	}
	return &Verifier{key: key}, nil
}

// Verify checks the signature header (base64 of an ASN.1 DER signature)
// of body, sent with the timestamp header ts.
func (v *Verifier) Verify(signature, ts string, body []byte) error {
	sig, err := base64.StdEncoding.DecodeString(strings.TrimSpace(signature))
	if err != nil || ts == "" {
		return fmt.Errorf("%w: malformed headers", ErrSignature)
	}
	h := sha256.New()
	h.Write([]byte(ts))
	h.Write(body)
	if !ecdsa.VerifyASN1(v.key, h.Sum(nil), sig) {
		return ErrSignature
	}
	return nil
}

// event is the part of an Event Webhook event that nudge reads. The
// message's custom arguments come back as top-level properties.
type event struct {
	Event        string `json:"event"`
	Email        string `json:"email"`
	Timestamp    int64  `json:"timestamp"`
	Type         string `json:"type"`
	Reason       string `json:"reason"`
	Response     string `json:"response"`
	EventID      string `json:"sg_event_id"`
	NudgeKey     string `json:"nudge_key"`
	NudgeProfile string `json:"nudge_profile"`
}

// ParseEvents verifies a request of SendGrid's Event Webhook with v and
// returns its events as feedback:
//
//   - delivered: Delivered
//   - deferred: Deferred
//   - bounce: Bounced, or Failed when its type is "blocked" (a soft
//     bounce: the receiving server refused for now)
//   - dropped: Failed (SendGrid did not try, for instance because the
//     address is on its own suppression list)
//   - spamreport: Complained
//   - unsubscribe, group_unsubscribe: Unsubscribed
//   - open: Opened; click: Clicked
//
// Other events (processed, group_resubscribe) are left out. Key and
// ProfileID come from the nudge_key and nudge_profile custom arguments,
// ProviderID is the sg_event_id, which a receiver can use to drop the
// repeats SendGrid makes when a post fails. An error wraps ErrSignature
// when the signature does not verify.
func ParseEvents(r *http.Request, v *Verifier) ([]channel.Feedback, error) {
	if v == nil {
		return nil, errors.New("sendgrid: ParseEvents needs a verifier")
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxEventsBody+1))
	if err != nil {
		return nil, fmt.Errorf("sendgrid: reading events: %w", err)
	}
	if len(body) > maxEventsBody {
		return nil, errors.New("sendgrid: the events are too large")
	}
	if err := v.Verify(r.Header.Get(SignatureHeader), r.Header.Get(TimestampHeader), body); err != nil {
		return nil, err
	}
	var events []event
	if err := json.Unmarshal(body, &events); err != nil {
		return nil, fmt.Errorf("sendgrid: the events are not a JSON array of events: %w", err)
	}
	var fb []channel.Feedback
	for _, e := range events {
		f := channel.Feedback{
			Key: e.NudgeKey, ProfileID: e.NudgeProfile, Address: e.Email, Channel: "email",
			ProviderID: e.EventID,
		}
		if e.Timestamp > 0 {
			f.At = time.Unix(e.Timestamp, 0).UTC()
		}
		switch e.Event {
		case "delivered":
			f.Kind = channel.Delivered
		case "deferred":
			f.Kind, f.Reason = channel.Deferred, e.Response
		case "bounce":
			f.Kind, f.Reason = channel.Bounced, e.Reason
			if e.Type == "blocked" {
				f.Kind = channel.Failed
			}
		case "dropped":
			f.Kind, f.Reason = channel.Failed, e.Reason
		case "spamreport":
			f.Kind = channel.Complained
		case "unsubscribe", "group_unsubscribe":
			f.Kind = channel.Unsubscribed
		case "open":
			f.Kind = channel.Opened
		case "click":
			f.Kind = channel.Clicked
		default:
			continue
		}
		fb = append(fb, f)
	}
	return fb, nil
}
