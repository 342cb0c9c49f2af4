// Package channel is the contract between journeys and the systems that
// deliver their messages: email and SMS providers, push services, webhooks,
// a log for development. One sub-package per provider, named for what it
// talks to (channel/webhook, channel/logchan); the journey runtime knows
// only this package.
//
// A journey's send step renders its fields (subject, body, url...) into a
// Message and hands it to the Channel named in the step. Which fields a
// channel reads is that channel's own contract, documented in its package.
//
// # Delivery
//
// The runtime calls Send from its dispatcher after the send job is durable,
// and records the outcome afterwards. A crash between a provider accepting
// a message and the runtime recording it means the job is sent again after
// the restart, with the same IdempotencyKey: a channel passes the key to
// providers that honour one (the webhook channel sends it as the
// Idempotency-Key header), so that the receiver can drop the repeat.
package channel

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Message is one message to deliver.
type Message struct {
	// IdempotencyKey is the same every time this message is attempted, and
	// different for every other message (MessageKey).
	IdempotencyKey string `json:"idempotencyKey"`
	// Channel is the name of the channel the step named.
	Channel string `json:"channel"`
	// Journey, Version, Step and Variant say which send step made the
	// message; Variant is the split variant the run took ("" if none).
	Journey string `json:"journey"`
	Version int    `json:"version"`
	Step    string `json:"step"`
	Variant string `json:"variant,omitempty"`
	// Recipient is the person the message is for.
	Recipient Recipient `json:"recipient"`
	// Fields are the rendered texts of the step's content (or of its named
	// template), by field name.
	Fields map[string]string `json:"fields"`
	// Transactional messages (receipts, password resets) skip marketing
	// consent; see docs/journeys.md.
	Transactional bool `json:"transactional"`
	// CreatedAt is when the run decided to send (the runtime's clock).
	CreatedAt time.Time `json:"createdAt"`
	// TriggeredAt is when nudge acknowledged the event that made the run
	// send (its receivedAt); zero when a timer did. Time to trigger is
	// from it to the send attempt.
	TriggeredAt time.Time `json:"triggeredAt"`
	// UnsubscribeURL, when set, is the signed one-click unsubscribe link of
	// this message (RFC 8058): email channels put it in the List-Unsubscribe
	// header, with List-Unsubscribe-Post: List-Unsubscribe=One-Click.
	UnsubscribeURL string `json:"unsubscribeUrl,omitempty"`
}

// Origin is the send step a message comes from: its journey, version,
// step, and the split variant its run took ("" if none).
type Origin struct {
	Journey string
	Version int
	Variant string
	Step    string
}

// MessageKey is the idempotency key of the message a journey run's send
// step makes: <journey>@<version>[/<variant>]:<run id>.<step>, with #<n>
// added on the run's n-th visit of the step (n > 1); the variant is
// query-escaped. Feedback about a message names its origin through it
// (ParseMessageKey).
func MessageKey(o Origin, run string, visit int64) string {
	k := o.Journey + "@" + strconv.Itoa(o.Version)
	if o.Variant != "" {
		k += "/" + url.QueryEscape(o.Variant)
	}
	k += ":" + run + "." + o.Step
	if visit > 1 {
		k += "#" + strconv.FormatInt(visit, 10)
	}
	return k
}

// ParseMessageKey recovers the origin of a MessageKey; ok is false for
// other keys.
func ParseMessageKey(key string) (o Origin, ok bool) {
	head, rest, ok1 := strings.Cut(key, ":")
	head, variant, _ := strings.Cut(head, "/")
	j, v, ok2 := strings.Cut(head, "@")
	_, st, ok3 := strings.Cut(rest, ".")
	n, err := strconv.Atoi(v)
	variant, verr := url.QueryUnescape(variant)
	st, _, _ = strings.Cut(st, "#")
	if !ok1 || !ok2 || !ok3 || err != nil || verr != nil || j == "" || st == "" {
		return Origin{}, false
	}
	return Origin{Journey: j, Version: n, Variant: variant, Step: st}, true
}

// Recipient names a person: their profile id (a pseudonym) and the
// identifiers their profile holds, by kind: "userId", "anonymousId",
// "email" and configured identifying traits such as "phone". Identifiers
// are personal data: channels must not log them.
type Recipient struct {
	ProfileID   string            `json:"profileId"`
	Identifiers map[string]string `json:"identifiers"`
}

// Channel delivers messages.
type Channel interface {
	// Name is the name send steps use ("webhook", "log", "email"...).
	Name() string
	// Send delivers m, or returns why not. The caller owns ctx and bounds it
	// with a deadline. An error is retryable unless it is (or wraps) an
	// *Error with Permanent set: a network failure, a timeout or a 5xx
	// answer may pass if tried again; a request the provider refuses (a bad
	// address, a 4xx answer) will not. Send may be called concurrently, and
	// again with the same message after a crash (see the package
	// documentation).
	Send(ctx context.Context, m *Message) error
}

// Idempotent is implemented by channels whose provider drops a repeated
// message with the same IdempotencyKey (signed webhooks, APIs that take an
// idempotency key). For the others (SMTP, most SMS and push APIs) the
// delivery pipeline records a send as in flight before it starts and, after
// a crash, does not repeat an in-flight marketing message (at most once);
// see PRODUCT.md section 5.
type Idempotent interface {
	Idempotent() bool
}

// IsIdempotent reports whether ch says its provider drops repeats.
func IsIdempotent(ch Channel) bool {
	i, ok := ch.(Idempotent)
	return ok && i.Idempotent()
}

// Feedback is what a provider reports about a message after it took it:
// a delivery, a bounce, a complaint, an unsubscribe. Providers' webhook
// parsers (sendgrid.ParseEvents, mailgun.ParseEvent, twilio.ParseStatus)
// turn their callbacks into Feedback; nudge feeds it back as events
// ("Message Delivered", "Message Bounced"...) and into suppression.
type Feedback struct {
	Kind FeedbackKind
	// Key is the message's IdempotencyKey when the provider echoed it back
	// (custom arguments, message variables, a status callback parameter);
	// "" when it did not.
	Key string
	// ProfileID is the recipient's profile id when the provider echoed it.
	ProfileID string
	// Address is the email address or phone number the provider reports on.
	Address string
	// Channel is the kind of address: "email" or "sms".
	Channel string
	// At is when the provider says it happened.
	At time.Time
	// Reason is the provider's explanation, for bounces and failures.
	Reason string
	// ProviderID is the provider's own id of the message or event.
	ProviderID string
}

// FeedbackKind says what happened to a message.
type FeedbackKind string

// The feedback kinds. Bounced (a hard bounce), Complained and Unsubscribed
// suppress the address; Delivered, Failed and Deferred do not.
const (
	Delivered    FeedbackKind = "delivered"
	Deferred     FeedbackKind = "deferred"
	Failed       FeedbackKind = "failed"
	Bounced      FeedbackKind = "bounced"
	Complained   FeedbackKind = "complained"
	Unsubscribed FeedbackKind = "unsubscribed"
	Opened       FeedbackKind = "opened"
	Clicked      FeedbackKind = "clicked"
)

// Event is the name of the customer's track event that feedback of kind k
// becomes (package feedback), which journeys wait for and stats count; ""
// for Deferred, which is not reported.
func (k FeedbackKind) Event() string { return feedbackEvents[k] }

var feedbackEvents = map[FeedbackKind]string{
	Delivered: "Message Delivered", Bounced: "Message Bounced", Complained: "Message Complained",
	Failed: "Message Failed", Opened: "Email Opened", Clicked: "Email Link Clicked",
	Unsubscribed: "Unsubscribed", // what profile.State reads as an unsubscribe
}

// Suppresses reports whether feedback of kind k means: never send to this
// address again.
func (k FeedbackKind) Suppresses() bool {
	return k == Bounced || k == Complained || k == Unsubscribed
}

// Error is a failed delivery that says whether to try again.
type Error struct {
	Err error
	// Permanent: retrying cannot help.
	Permanent bool
	// RetryAfter, when positive, is how long the provider asked to wait
	// before the next attempt (HTTP Retry-After).
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	kind := "retryable"
	if e.Permanent {
		kind = "permanent"
	}
	if e.RetryAfter > 0 {
		return fmt.Sprintf("%s (%s, retry after %s)", e.Err, kind, e.RetryAfter)
	}
	return fmt.Sprintf("%s (%s)", e.Err, kind)
}

func (e *Error) Unwrap() error { return e.Err }

// Permanent marks err as a failure that retrying cannot fix.
func Permanent(err error) error { return &Error{Err: err, Permanent: true} }

// Retryable marks err as a failure that may pass later; after, when
// positive, is the wait the provider asked for.
func Retryable(err error, after time.Duration) error {
	return &Error{Err: err, RetryAfter: after}
}

// IsPermanent reports whether err says that retrying cannot help. Errors
// that do not say are retryable.
func IsPermanent(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Permanent
}

// RetryAfter returns the wait err asks for before the next attempt, or 0.
func RetryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}
