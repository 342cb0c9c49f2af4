package channel

import (
	"cmp"
	"errors"
	"net/mail"
	"net/url"
	"strings"
)

// Email is what every email channel (SMTP, SendGrid, Mailgun) reads from a
// message, read and checked the same way by ReadEmail, so that a send step
// means the same whichever provider carries it. The fields of a send:
//
//   - to: the recipient's address; default the recipient's "email"
//     identifier.
//   - subject: the subject line; required.
//   - text, html: the plain-text and HTML bodies; at least one.
//   - from: the sender, "Name <address>" or an address; default the
//     channel's own From.
//   - reply_to: an optional Reply-To address.
type Email struct {
	From, To *mail.Address
	ReplyTo  *mail.Address // nil: none
	Subject  string
	Text     string
	HTML     string
	// Unsubscribe is the message's one-click unsubscribe URL (checked: an
	// absolute URL that cannot break out of a header), or "". It goes in
	// the List-Unsubscribe header as ListUnsubscribe(), with
	// List-Unsubscribe-Post: OneClick (RFC 8058).
	Unsubscribe string
}

// OneClick is the value of the List-Unsubscribe-Post header (RFC 8058).
const OneClick = "List-Unsubscribe=One-Click"

// ListUnsubscribe is the value of the List-Unsubscribe header, or "".
func (e *Email) ListUnsubscribe() string {
	if e.Unsubscribe == "" {
		return ""
	}
	return "<" + e.Unsubscribe + ">"
}

// ReadEmail reads an email from m's fields; defaultFrom is the channel's
// sender for messages without a from field. An error names the field at
// fault and never quotes its value (an address is personal data); the
// caller prefixes its own name.
func ReadEmail(m *Message, defaultFrom string) (*Email, error) {
	f := m.Fields
	rcpt := cmp.Or(f["to"], m.Recipient.Identifiers["email"])
	if rcpt == "" {
		return nil, errors.New("the message has no to field and the recipient no email identifier")
	}
	to, err := mail.ParseAddress(rcpt)
	if err != nil {
		return nil, errors.New("the recipient's address is not an email address")
	}
	sender := cmp.Or(f["from"], defaultFrom)
	if sender == "" {
		return nil, errors.New("the message has no from field and the channel no From")
	}
	from, err := mail.ParseAddress(sender)
	if err != nil {
		return nil, errors.New("the from field is not an email address")
	}
	e := &Email{From: from, To: to, Subject: strings.TrimSpace(f["subject"]), Text: f["text"], HTML: f["html"]}
	if e.Subject == "" {
		return nil, errors.New("the message has no subject field")
	}
	if e.Text == "" && e.HTML == "" {
		return nil, errors.New("the message has neither a text nor an html field")
	}
	if rt := f["reply_to"]; rt != "" {
		if e.ReplyTo, err = mail.ParseAddress(rt); err != nil {
			return nil, errors.New("the reply_to field is not an email address")
		}
	}
	if u := m.UnsubscribeURL; u != "" {
		if p, err := url.Parse(u); err != nil || !p.IsAbs() || strings.ContainsAny(u, "\r\n<>") {
			return nil, errors.New("the message's UnsubscribeURL is not an absolute URL")
		}
		e.Unsubscribe = u
	}
	return e, nil
}

// CheckFrom checks a channel's configured sender: "" (every message then
// needs a from field) or an address.
func CheckFrom(from string) error {
	if from == "" {
		return nil
	}
	if _, err := mail.ParseAddress(from); err != nil {
		return errors.New("From is not an email address")
	}
	return nil
}
