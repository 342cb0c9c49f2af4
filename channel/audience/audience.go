// Package audience holds what the ad-audience channels share: reading a
// message's action and audience fields, and normalising and hashing a
// recipient's email address and phone number the way the ad platforms
// match them. The channels are in the sub-packages: audience/google
// (Google Ads Customer Match) and audience/meta (Meta Custom Audiences).
//
// An audience send does not deliver a message to a person: it adds the
// person to an advertising list (or removes them). Both platforms receive
// only SHA-256 hashes of the normalised identifiers, never the plain text.
//
// # Fields
//
//   - action: "add" (the default) or "remove".
//   - audience: the list or audience id (digits); overrides the channel's
//     default.
//
// # Identifiers
//
// The recipient's "email" and "phone" identifiers are read. An email
// address is trimmed and lower-cased; one without an "@" is ignored. A
// phone number must be international: a leading "+" or "00" and the
// country code; spaces, dashes, dots and parentheses are dropped, and one
// that is not then 8 to 15 digits is ignored. A recipient with neither a
// usable email address nor a usable phone number is a permanent error.
package audience

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/nudge-dev/nudge/channel"
)

// Action is what a send does to the audience.
type Action string

// The actions.
const (
	Add    Action = "add"
	Remove Action = "remove"
)

// Request is what an audience send asks of a platform.
type Request struct {
	Action Action
	// Audience is the audience field, or def when the field is missing.
	Audience string
	// Email is the normalised email address, "" when unknown.
	Email string
	// Phone is the normalised phone number in E.164 ("+" and digits),
	// "" when unknown.
	Phone string
}

// Parse reads m's action and audience fields (def is the audience when the
// field is missing) and its recipient's identifiers. Its errors are
// permanent, and name the field or identifier at fault, never its value.
func Parse(m *channel.Message, def string) (Request, error) {
	r := Request{Audience: strings.TrimSpace(m.Fields["audience"])}
	if r.Audience == "" {
		r.Audience = def
	}
	if r.Audience == "" {
		return r, channel.Permanent(errors.New("audience: the message has no audience field and the channel no default audience"))
	}
	if strings.Trim(r.Audience, "0123456789") != "" {
		return r, channel.Permanent(errors.New("audience: the audience is not an id (digits)"))
	}
	switch a := Action(strings.ToLower(strings.TrimSpace(m.Fields["action"]))); a {
	case "", Add:
		r.Action = Add
	case Remove:
		r.Action = Remove
	default:
		return r, channel.Permanent(fmt.Errorf("audience: action %q is not add or remove", a))
	}
	r.Email = NormalizeEmail(m.Recipient.Identifiers["email"])
	r.Phone = NormalizePhone(m.Recipient.Identifiers["phone"])
	if r.Email == "" && r.Phone == "" {
		return r, channel.Permanent(errors.New("audience: the recipient has no usable email or phone identifier"))
	}
	return r, nil
}

// NormalizeEmail trims and lower-cases an email address; it returns "" for
// one without an "@".
func NormalizeEmail(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if i := strings.IndexByte(s, '@'); i <= 0 || i == len(s)-1 {
		return ""
	}
	return s
}

// NormalizePhone returns an international phone number in E.164 form: "+"
// and 8 to 15 digits. The number must start with "+" or "00"; spaces,
// dashes, dots and parentheses are dropped. It returns "" for anything
// else, a national number among them: its country is unknown.
func NormalizePhone(s string) string {
	s = strings.TrimSpace(s)
	switch {
	case strings.HasPrefix(s, "+"):
		s = s[1:]
	case strings.HasPrefix(s, "00"):
		s = s[2:]
	default:
		return ""
	}
	digits := make([]byte, 0, len(s))
	for i := range len(s) {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits = append(digits, c)
		case c == ' ' || c == '-' || c == '.' || c == '(' || c == ')':
		default:
			return ""
		}
	}
	if len(digits) < 8 || len(digits) > 15 || digits[0] == '0' {
		return ""
	}
	return "+" + string(digits)
}

// Hash returns the lower-case hex SHA-256 of s, as both platforms expect.
func Hash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}
