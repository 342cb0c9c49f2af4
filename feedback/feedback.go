// Package feedback closes the loop from messages back to the event log:
// what providers report (deliveries, bounces, complaints, unsubscribes,
// through their webhooks) and what customers do with a message (open it,
// click a link, press unsubscribe, through signed links) become events of
// the customer, so that journeys wait_for and branch on them, stats count
// them, and an unsubscribe or a hard bounce suppresses at once through the
// profile's subscription state.
//
// # Events
//
//	Message Delivered    a provider delivered the message
//	Message Bounced      a provider could not deliver it for good (also Unsubscribed)
//	Message Complained   the customer marked it as spam (also Unsubscribed)
//	Message Failed       a provider gave up on it
//	Email Opened         the open pixel was fetched (once per message)
//	Email Link Clicked   a tracked link was followed (once per message and link)
//	Unsubscribed         the customer unsubscribed (properties channel and group)
//
// Each is a track event of the customer's user id (else anonymous id) with
// the properties channel, message_key, journey, version and step (when the
// message is known), and reason, url or group where they apply. Its
// messageId is derived from what it reports, so a provider's retried
// webhook or a second click is stored once.
//
// A message is found again from its idempotency key (channel.MessageKey),
// which a provider reports back through the custom arguments the channels
// send.
package feedback

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nudge-dev/nudge"
	"github.com/nudge-dev/nudge/channel"
	"github.com/nudge-dev/nudge/engage"
	"github.com/nudge-dev/nudge/profile"
	"github.com/nudge-dev/nudge/shred"
)

// Source is the source of the events this package makes.
const Source = "nudge-feedback"

// Publisher stores events (ingest.Handler.Publish).
type Publisher interface {
	Publish(ctx context.Context, source string, events []nudge.Event) error
}

// Finder finds a profile by any identifier or by its id (profile.Engine).
type Finder interface {
	Find(ctx context.Context, id string) (*profile.Profile, error)
}

// Config configures a Loop.
type Config struct {
	Events   Publisher
	Profiles Finder
	// Keys seals a link's subject under the person's key, so that an
	// erasure voids their links; nil leaves it in the clear (tests).
	Keys *shred.Keyring
	// Signer signs and checks links; nil: messages get no links.
	Signer *engage.Signer
	Logger *slog.Logger
}

// Loop turns feedback into events. It implements journey.Links (the links
// of messages) and engage.Sink (their use).
type Loop struct {
	cfg Config
	log *slog.Logger
}

// New returns a Loop.
func New(cfg Config) *Loop {
	l := &Loop{cfg: cfg, log: cfg.Logger}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	return l
}

// link is what a message's links stand for.
func (l *Loop) link(ref profile.Ref, m *channel.Message, group string) engage.Link {
	kind, value := profile.KindUser, m.Recipient.Identifiers[profile.KindUser]
	if value == "" {
		kind, value = profile.KindAnonymous, m.Recipient.Identifiers[profile.KindAnonymous]
	}
	subject := []byte(kind + "\x00" + value)
	if l.cfg.Keys != nil {
		sealed, _, err := l.cfg.Keys.Seal(nil, ref.P, subject)
		if err != nil {
			subject = nil // the person is erased: their links name no one
		} else {
			subject = sealed
		}
	}
	return engage.Link{
		ProfileID: ref.P.String(), Subject: subject, Key: m.IdempotencyKey,
		Journey: m.Journey, Version: m.Version, Step: m.Step, Channel: m.Channel, Group: group,
	}
}

// UnsubscribeURL implements journey.Links.
func (l *Loop) UnsubscribeURL(ref profile.Ref, m *channel.Message, group string) string {
	if l.cfg.Signer == nil {
		return ""
	}
	return l.cfg.Signer.UnsubscribeURL(l.link(ref, m, group), m.CreatedAt)
}

// Track implements journey.Links: an email's HTML gets tracked links and
// an open pixel.
func (l *Loop) Track(ref profile.Ref, m *channel.Message) error {
	html, ok := m.Fields["html"]
	if l.cfg.Signer == nil || !ok || m.Channel != "email" {
		return nil
	}
	out, err := l.cfg.Signer.RewriteHTML(html, l.link(ref, m, ""), m.CreatedAt)
	if err != nil {
		return err
	}
	m.Fields["html"] = out
	return nil
}

// Engage implements engage.Sink.
func (l *Loop) Engage(ctx context.Context, e engage.Engagement) error {
	who, err := l.subject(e.Link)
	if err != nil || who == nil {
		return err
	}
	d := newDraft(who, e.Link.Key, e.Link.Channel, e.At)
	switch e.Kind {
	case engage.Opened:
		d.ev.Event = channel.Opened.Event()
		d.ev.MessageID = messageID("open", e.Link.Key)
	case engage.Clicked:
		d.ev.Event = channel.Clicked.Event()
		d.ev.MessageID = messageID("click", e.Link.Key, e.URL)
		d.props["url"] = e.URL
	case engage.Unsubscribed:
		d.ev.Event = channel.Unsubscribed.Event()
		d.ev.MessageID = messageID("unsubscribe", e.Link.Key, e.Link.Group)
		if e.Link.Group != "" {
			d.props["group"] = e.Link.Group
		}
	default:
		return fmt.Errorf("feedback: unknown engagement %q", e.Kind)
	}
	return l.cfg.Events.Publish(ctx, Source, []nudge.Event{d.event()})
}

// subject opens a link's subject: the identifier to attribute it to; nil
// when the person is erased.
func (l *Loop) subject(link engage.Link) (*profile.Identity, error) {
	b := link.Subject
	if l.cfg.Keys != nil {
		p, err := shred.ParsePseudonym(link.ProfileID)
		if err != nil {
			return nil, fmt.Errorf("feedback: a signed link names no profile: %w", err)
		}
		if b, err = l.cfg.Keys.Open(nil, p, b); err != nil {
			if errors.Is(err, shred.ErrShredded) {
				return nil, nil
			}
			return nil, fmt.Errorf("feedback: a signed link's subject: %w", err)
		}
	}
	kind, value, ok := strings.Cut(string(b), "\x00")
	if !ok || value == "" {
		return nil, nil
	}
	return &profile.Identity{Kind: kind, Value: value}, nil
}

// Report turns what a provider reported into events. Feedback about no
// known person (erased, or never seen) is dropped.
func (l *Loop) Report(ctx context.Context, fbs []channel.Feedback) error {
	var events []nudge.Event
	for _, f := range fbs {
		who, err := l.find(ctx, f)
		if err != nil {
			return err
		}
		if who == nil {
			l.log.Info("provider feedback about no known customer dropped", "kind", f.Kind, "channel", f.Channel)
			continue
		}
		name := f.Kind.Event()
		if name == "" {
			continue // deferred: the provider tries again
		}
		// A zero f.At (Twilio says no time) is stamped by Publish.
		d := newDraft(who, f.Key, f.Channel, f.At)
		d.ev.Event = name
		d.ev.MessageID = messageID("provider", string(f.Kind), f.ProviderID, f.Key, f.Channel)
		if f.Reason != "" {
			d.props["reason"] = f.Reason
		}
		events = append(events, d.event())
		if f.Kind.Suppresses() && f.Kind != channel.Unsubscribed {
			// The address takes no more messages of the channel.
			un := newDraft(who, f.Key, f.Channel, f.At)
			un.ev.Event = channel.Unsubscribed.Event()
			un.ev.MessageID = messageID("suppress", string(f.Kind), f.ProviderID, f.Key, f.Channel)
			un.props["reason"] = string(f.Kind)
			events = append(events, un.event())
		}
	}
	if len(events) == 0 {
		return nil
	}
	return l.cfg.Events.Publish(ctx, Source, events)
}

// find finds the person feedback is about: by the profile id the provider
// echoed, else by the address; nil when nobody is.
func (l *Loop) find(ctx context.Context, f channel.Feedback) (*profile.Identity, error) {
	for _, id := range []string{f.ProfileID, f.Address} {
		if id == "" {
			continue
		}
		if f.Channel == "email" && id == f.Address {
			id = strings.ToLower(id)
		}
		p, err := l.cfg.Profiles.Find(ctx, id)
		if errors.Is(err, profile.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return eventIdentity(p), nil
	}
	return nil, nil
}

// eventIdentity is the identifier events of p carry: a user id, else an
// anonymous id.
func eventIdentity(p *profile.Profile) *profile.Identity {
	var anon *profile.Identity
	for i := range p.Identities {
		switch id := &p.Identities[i]; id.Kind {
		case profile.KindUser:
			return id
		case profile.KindAnonymous:
			if anon == nil {
				anon = id
			}
		}
	}
	return anon
}

// draft is an event being made, with its properties.
type draft struct {
	ev    nudge.Event
	props map[string]any
}

func newDraft(who *profile.Identity, key, ch string, at time.Time) *draft {
	d := &draft{ev: nudge.Event{Type: nudge.Track, Timestamp: at}, props: map[string]any{"channel": ch}}
	if who.Kind == profile.KindUser {
		d.ev.UserID = who.Value
	} else {
		d.ev.AnonymousID = who.Value
	}
	if key != "" {
		d.props["message_key"] = key
		if o, ok := channel.ParseMessageKey(key); ok {
			d.props["journey"], d.props["version"], d.props["step"] = o.Journey, o.Version, o.Step
			if o.Variant != "" {
				d.props["variant"] = o.Variant
			}
		}
	}
	return d
}

func (d *draft) event() nudge.Event {
	d.ev.Properties, _ = json.Marshal(d.props) // strings and numbers: cannot fail
	return d.ev
}

// messageID derives an event's messageId from what it reports.
func messageID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return "fb-" + hex.EncodeToString(h.Sum(nil)[:16])
}
