// Package engage makes the signed links nudge puts in its messages, and
// serves them: a one-click unsubscribe link (RFC 8058), an open pixel and
// click redirects. Each use of a link is reported to a Sink as an
// Engagement; a link that was not signed with nudge's key, or was changed,
// used at the wrong path or has expired, is refused and reports nothing.
//
// # Links
//
//   - Unsubscribe, base + "/e/u/{token}": GET shows a small page that asks
//     "Unsubscribe from <group>?" with a button; POST (the button, or the
//     one-click POST a mail client sends for RFC 8058, body
//     List-Unsubscribe=One-Click) unsubscribes. Channels put the link in the
//     List-Unsubscribe header (channel.Message.UnsubscribeURL) and may show
//     it in the body.
//   - Open pixel, base + "/e/o/{token}.gif": a 1×1 transparent GIF; fetching
//     it reports an open. Opens are best effort: images may be blocked, or
//     fetched by a proxy that does so for every message (Apple Mail Privacy
//     Protection), so an open is a hint, not a fact.
//   - Click, base + "/e/c/{token}": reports a click and redirects (302) to
//     the target, which is inside the signed token, so the handler is not an
//     open redirect.
//
// RewriteHTML puts the last two in an HTML body: every http(s) link becomes
// a click link, and the pixel goes before </body>.
//
// # Why GET does not unsubscribe
//
// Mail security scanners and link previewers fetch every URL in a message
// with GET before the person sees it. If GET unsubscribed, every message
// would unsubscribe its recipient. RFC 8058 therefore makes the one-click
// action a POST, which those scanners do not send; a person who follows the
// link in a browser gets a page with a button that sends the same POST.
// For the same reason a HEAD request on the pixel or a click link reports
// nothing.
//
// # Signature
//
// A token is base64url (no padding) of
//
//	version (1 byte, 1) | kind (1 byte) | issued at (8 bytes, big-endian unix seconds) |
//	fields, each an unsigned varint length and its bytes:
//	  ProfileID, Subject, Key, Journey, Step, Channel, Group, target URL |
//	Version (a zig-zag varint) | HMAC-SHA256 (32 bytes)
//
// The HMAC covers every byte before it, the kind included, and is keyed
// with a key derived from the signer's key (HMAC-SHA256(key, "nudge engage
// link v1")), so that a secret shared with another use cannot sign links.
// The handler checks the MAC in constant time before it reads anything
// else, then the version, the kind (a pixel token used at the click path
// is refused), that the fields end exactly at the MAC, and the age. Every
// failure answers the same "invalid or expired link", so that a forger
// learns nothing about which check failed.
//
// Tokens are signed, not encrypted: anyone holding a link can decode its
// fields. That is why they hold no personal data in the clear: ProfileID is
// a pseudonym, Subject is sealed by the caller, and the rest names the
// message (journey, step, channel, idempotency key), the subscription group
// and the click target, which the message shows anyway.
//
// # Expiry
//
// Unsubscribe links never expire by default: people unsubscribe from
// messages they received years ago, and the law (CAN-SPAM, for one) wants
// the link to keep working. Open and click links are honoured for a year by
// default (DefaultMaxAge); after that a click is refused rather than
// redirected. Config sets other ages per kind. To rotate the key without
// breaking links already sent, pass the old keys to NewSigner: they still
// verify, only the new one signs.
package engage

import (
	"context"
	"time"

	"github.com/nudge-dev/nudge/channel"
)

// Link says what a signed link stands for: which message made it and who
// it was for.
type Link struct {
	// ProfileID is the recipient's profile id (a pseudonym, never an email
	// address or a phone number).
	ProfileID string
	// Subject is opaque to engage, sealed by the caller: which identifier
	// of the profile the engagement is for (the address the message went
	// to). It travels in the token as it is: seal (encrypt) it first.
	Subject []byte
	// Key is the message's idempotency key (channel.Message.IdempotencyKey).
	Key string
	// Journey, Version and Step name the send step that made the message.
	Journey string
	Version int
	Step    string
	// Channel is the channel the message went out on ("email").
	Channel string
	// Group is the subscription group an unsubscribe is for; "" means all
	// marketing messages.
	Group string
}

// The kinds of Engagement. They are the channel.FeedbackKind values of the
// same names, so that engagements feed the same paths as provider
// feedback (an unsubscribe suppresses).
const (
	Unsubscribed = channel.Unsubscribed
	Opened       = channel.Opened
	Clicked      = channel.Clicked
)

// Engagement is one use of a signed link.
type Engagement struct {
	// Kind is Unsubscribed, Opened or Clicked.
	Kind channel.FeedbackKind
	// Link is what the signed link stands for.
	Link Link
	// URL is the click target; "" for other kinds.
	URL string
	// At is when the handler served the request (its clock).
	At time.Time
	// UserAgent is the request's User-Agent header (cut to 512 bytes): it
	// tells a person from a scanner or an image proxy.
	UserAgent string
}

// Sink records engagements.
type Sink interface {
	// Engage records e. The handler passes the request's context, which
	// ends when the client goes away. Engage is called concurrently, and
	// for the same link many times (people open a message twice, scanners
	// fetch links, a person presses the unsubscribe button again), so what
	// must happen once (an unsubscribe) must be idempotent: Link.Key and
	// Kind identify the link. An error on an unsubscribe makes the handler
	// answer 503 so that the person or the mail client tries again; on an
	// open or a click it is logged and the person still gets the pixel or
	// the redirect.
	Engage(ctx context.Context, e Engagement) error
}

// SinkFunc adapts a function to a Sink.
type SinkFunc func(ctx context.Context, e Engagement) error

// Engage implements Sink.
func (f SinkFunc) Engage(ctx context.Context, e Engagement) error { return f(ctx, e) }
