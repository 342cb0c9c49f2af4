package twilio

import (
	"cmp"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/nudge-dev/nudge/channel"
)

// SignatureHeader is the header of Twilio's webhook signature.
const SignatureHeader = "X-Twilio-Signature"

// ErrSignature is returned by ParseStatus for a request that Twilio did
// not sign with the auth token.
var ErrSignature = errors.New("twilio: bad webhook signature")

// optOut are the replies Twilio treats as opt-out keywords.
var optOut = []string{"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"}

// ParseStatus verifies a Twilio webhook request and returns what it says
// about a message as feedback. It takes two kinds of request:
//
// A status callback (MessageStatus): delivered is Delivered and read
// (WhatsApp) Opened; undelivered and failed are Unsubscribed for error
// 21610 (the recipient replied STOP), Bounced for errors that mean the
// number cannot take messages (21211 invalid, 21614 not mobile, 30004
// blocked, 30005 unknown, 30006 landline or unreachable), else Failed.
// Intermediate statuses (queued, sent...) give no feedback: many carriers
// never confirm delivery, so sent is often the last word. Key and
// ProfileID come from the nudge_key and nudge_profile query parameters
// the channel adds to the callback URL.
//
// An inbound message: an opt-out keyword (STOP, UNSUBSCRIBE...) is
// Unsubscribed for its sender; any other reply gives no feedback.
//
// Twilio's requests say nothing of when the event happened: At is zero.
//
// publicURL is the URL Twilio was given for the webhook, as Twilio sees
// it (behind a proxy the request's own URL differs), without the query
// string: the request's query string is appended to it to check the
// signature (see Sign). An error is ErrSignature when it does not verify.
func ParseStatus(r *http.Request, authToken, publicURL string) ([]channel.Feedback, error) {
	if authToken == "" {
		return nil, errors.New("twilio: ParseStatus needs the auth token")
	}
	u, err := url.Parse(publicURL)
	if err != nil || !u.IsAbs() || u.RawQuery != "" {
		return nil, errors.New("twilio: ParseStatus needs the webhook's public URL, without a query")
	}
	if err := r.ParseForm(); err != nil {
		return nil, fmt.Errorf("twilio: reading the webhook: %w", err)
	}
	full := publicURL
	if r.URL.RawQuery != "" {
		full += "?" + r.URL.RawQuery
	}
	if !hmac.Equal([]byte(r.Header.Get(SignatureHeader)), []byte(Sign(authToken, full, r.PostForm))) {
		return nil, ErrSignature
	}

	p := r.Form
	status := cmp.Or(p.Get("MessageStatus"), p.Get("SmsStatus"))
	if status == "received" || status == "" && p.Has("Body") {
		if !slices.Contains(optOut, strings.ToUpper(strings.TrimSpace(p.Get("Body")))) {
			return nil, nil
		}
		return []channel.Feedback{{
			Kind: channel.Unsubscribed, Address: p.Get("From"), Channel: "sms", ProviderID: p.Get("MessageSid"),
		}}, nil
	}
	f := channel.Feedback{
		Key: p.Get("nudge_key"), ProfileID: p.Get("nudge_profile"), Address: p.Get("To"), Channel: "sms",
		ProviderID: p.Get("MessageSid"),
	}
	switch status {
	case "delivered":
		f.Kind = channel.Delivered
	case "read":
		f.Kind = channel.Opened
	case "undelivered", "failed":
		code := p.Get("ErrorCode")
		switch code {
		case "21610":
			f.Kind = channel.Unsubscribed
		case "21211", "21614", "30004", "30005", "30006":
			f.Kind = channel.Bounced
		default:
			f.Kind = channel.Failed
		}
		f.Reason = status
		if code != "" {
			f.Reason += ": error " + code
		}
	default:
		return nil, nil
	}
	return []channel.Feedback{f}, nil
}

// Sign returns the X-Twilio-Signature of a request to fullURL (with its
// query string) with the POST parameters form: the base64 HMAC-SHA1, keyed
// with authToken, of fullURL followed by the parameters sorted by name,
// each name followed by its value. Tests of webhook receivers sign their
// requests with it.
func Sign(authToken, fullURL string, form url.Values) string {
	h := hmac.New(sha1.New, []byte(authToken))
	h.Write([]byte(fullURL))
	for _, k := range slices.Sorted(maps.Keys(form)) {
		vs := slices.Clone(form[k])
		slices.Sort(vs)
		for _, v := range vs {
			h.Write([]byte(k))
			h.Write([]byte(v))
		}
	}
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}
