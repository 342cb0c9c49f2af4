package twilio_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nudge-dev/nudge/channel"
	"github.com/nudge-dev/nudge/channel/channeltest"
	"github.com/nudge-dev/nudge/channel/twilio"
)

var now = time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)

const sid, token = "AC0123456789abcdef0123456789abcdef", "auth-token"

func msg(fields map[string]string) *channel.Message {
	return &channel.Message{
		IdempotencyKey: "run1.step1", Channel: "sms", Journey: "welcome", Step: "step1",
		Recipient: channel.Recipient{ProfileID: "p1", Identifiers: map[string]string{"phone": "+15005550006"}},
		Fields:    fields, CreatedAt: now,
	}
}

// sent checks that the server's last request is a message as the
// Messages API takes it, and returns its form.
func sent(t *testing.T, srv *channeltest.Server) url.Values {
	t.Helper()
	r := srv.Last(t)
	r.Expect(t, http.MethodPost, "/2010-04-01/Accounts/"+sid+"/Messages.json", map[string]string{
		"Authorization": channeltest.BasicAuth(sid, token),
		"Content-Type":  "application/x-www-form-urlencoded",
	})
	return r.Form(t)
}

func newChannel(t *testing.T, cfg twilio.Config) *twilio.Channel {
	t.Helper()
	cfg.AccountSID, cfg.AuthToken, cfg.Now = sid, token, func() time.Time { return now }
	cfg.From = "+15005550001"
	c, err := twilio.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSend(t *testing.T) {
	srv := channeltest.NewServer(t, channeltest.Answer{Status: http.StatusCreated, Body: `{"sid":"SM1","status":"queued"}`})
	c := newChannel(t, twilio.Config{BaseURL: srv.URL, StatusCallbackURL: "https://nudge.example/hooks/twilio?tenant=a"})
	if err := c.Send(context.Background(), msg(map[string]string{"body": "Your cart misses you"})); err != nil {
		t.Fatal(err)
	}
	want := url.Values{
		"To":             {"+15005550006"},
		"From":           {"+15005550001"},
		"Body":           {"Your cart misses you"},
		"StatusCallback": {"https://nudge.example/hooks/twilio?nudge_key=run1.step1&nudge_profile=p1&tenant=a"},
	}
	if got := sent(t, srv); !reflect.DeepEqual(got, want) {
		t.Errorf("form\n%v\nwant\n%v", got, want)
	}

	// A messaging service, the to field, no status callback.
	c = newChannel(t, twilio.Config{BaseURL: srv.URL, MessagingServiceSID: "MG1"})
	if err := c.Send(context.Background(), msg(map[string]string{"to": "+15005550009", "body": "Hi"})); err != nil {
		t.Fatal(err)
	}
	want = url.Values{"To": {"+15005550009"}, "MessagingServiceSid": {"MG1"}, "Body": {"Hi"}}
	if got := sent(t, srv); !reflect.DeepEqual(got, want) {
		t.Errorf("form\n%v\nwant\n%v", got, want)
	}
	// A from field wins over the service.
	if err := c.Send(context.Background(), msg(map[string]string{"from": "+15005550002", "body": "Hi"})); err != nil {
		t.Fatal(err)
	}
	if got := sent(t, srv); got.Get("From") != "+15005550002" || got.Has("MessagingServiceSid") {
		t.Errorf("form %v", got)
	}
	if c.Name() != "sms" || channel.IsIdempotent(c) {
		t.Errorf("name %q, idempotent %v", c.Name(), channel.IsIdempotent(c))
	}
}

func TestOutcomes(t *testing.T) {
	twilioError := func(status, code int, permanent bool, message string) channeltest.Case {
		c := channeltest.Case{
			Answer:    channeltest.Answer{Status: status, Body: fmt.Sprintf(`{"code":%d,"message":%q,"status":%d}`, code, message, status)},
			Permanent: permanent,
			Want:      fmt.Sprintf("%d with error %d", status, code),
		}
		if status == 429 {
			c.Answer.Header, c.RetryAfter = map[string]string{"Retry-After": "30"}, 30*time.Second
		}
		return c
	}
	channeltest.Outcomes{
		Now: now,
		Send: func(t *testing.T, url string) error {
			return newChannel(t, twilio.Config{BaseURL: url}).Send(context.Background(), msg(map[string]string{"body": "b"}))
		},
		Cases: []channeltest.Case{
			twilioError(500, 20500, false, "Internal Server Error"),
			twilioError(429, 20429, false, "Too Many Requests"),
			twilioError(400, 21211, true, "The 'To' number +15005550006 is not a valid phone number."),
			twilioError(400, 21610, true, "Attempt to send to unsubscribed recipient"),
			twilioError(401, 20003, true, "Authenticate"),
		},
		Private: []string{"+1500", token},
	}.Run(t)

	c := newChannel(t, twilio.Config{BaseURL: "http://127.0.0.1:1"})
	noPhone := msg(map[string]string{"body": "b"})
	noPhone.Recipient.Identifiers = map[string]string{"email": "ada@example.com"}
	if err := c.Send(context.Background(), noPhone); !channel.IsPermanent(err) || !strings.Contains(err.Error(), "phone identifier") || strings.Contains(err.Error(), "ada@") {
		t.Errorf("no phone: %v", err)
	}
	if err := c.Send(context.Background(), msg(nil)); !channel.IsPermanent(err) || !strings.Contains(err.Error(), "body") {
		t.Errorf("no body: %v", err)
	}
	for name, cfg := range map[string]twilio.Config{
		"no sid":       {AuthToken: "t", From: "+1"},
		"no token":     {AccountSID: "AC1", From: "+1"},
		"no sender":    {AccountSID: "AC1", AuthToken: "t"},
		"bad url":      {AccountSID: "AC1", AuthToken: "t", From: "+1", BaseURL: "ftp://x"},
		"bad callback": {AccountSID: "AC1", AuthToken: "t", From: "+1", StatusCallbackURL: "/relative"},
	} {
		if _, err := twilio.New(cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

const publicURL = "https://nudge.example/hooks/twilio"

// webhook returns a request Twilio signed with key: a POST of form to
// publicURL with the query string query, received behind a proxy at
// another URL.
func webhook(key, query string, form url.Values) *http.Request {
	target := "http://10.0.0.5:8080/hooks/twilio"
	full := publicURL
	if query != "" {
		target += "?" + query
		full += "?" + query
	}
	r := httptest.NewRequest(http.MethodPost, target, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set(twilio.SignatureHeader, twilio.Sign(key, full, form))
	return r
}

func TestParseStatus(t *testing.T) {
	const query = "nudge_key=run1.step1&nudge_profile=p1"
	status := func(s, code string) url.Values {
		v := url.Values{"MessageSid": {"SM1"}, "SmsSid": {"SM1"}, "AccountSid": {sid}, "From": {"+15005550001"},
			"To": {"+15005550006"}, "MessageStatus": {s}, "SmsStatus": {s}, "ApiVersion": {"2010-04-01"}}
		if code != "" {
			v.Set("ErrorCode", code)
		}
		return v
	}
	sent := channel.Feedback{Key: "run1.step1", ProfileID: "p1", Address: "+15005550006", Channel: "sms", ProviderID: "SM1"}
	with := func(k channel.FeedbackKind, reason string) []channel.Feedback {
		f := sent
		f.Kind, f.Reason = k, reason
		return []channel.Feedback{f}
	}
	for _, tc := range []struct {
		form url.Values
		want []channel.Feedback
	}{
		{status("delivered", ""), with(channel.Delivered, "")},
		{status("read", ""), with(channel.Opened, "")},
		{status("sent", ""), nil},
		{status("undelivered", "30005"), with(channel.Bounced, "undelivered: error 30005")},
		{status("undelivered", "30003"), with(channel.Failed, "undelivered: error 30003")},
		{status("failed", "21610"), with(channel.Unsubscribed, "failed: error 21610")},
		{status("failed", "21211"), with(channel.Bounced, "failed: error 21211")},
		{status("failed", ""), with(channel.Failed, "failed")},
	} {
		got, err := twilio.ParseStatus(webhook(token, query, tc.form), token, publicURL)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%v:\n%+v (%v)\nwant\n%+v", tc.form, got, err, tc.want)
		}
	}

	inbound := func(body string) url.Values {
		return url.Values{"MessageSid": {"SM9"}, "SmsStatus": {"received"}, "From": {"+15005550006"}, "To": {"+15005550001"}, "Body": {body}, "NumMedia": {"0"}}
	}
	stop := []channel.Feedback{{Kind: channel.Unsubscribed, Address: "+15005550006", Channel: "sms", ProviderID: "SM9"}}
	for body, want := range map[string][]channel.Feedback{"STOP": stop, " unsubscribe\n": stop, "Stop": stop, "stop please": nil, "Thanks!": nil} {
		got, err := twilio.ParseStatus(webhook(token, "", inbound(body)), token, publicURL)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("inbound %q: %+v (%v), want %+v", body, got, err, want)
		}
	}

	tampered := webhook(token, query, status("delivered", ""))
	tampered.Body = io.NopCloser(strings.NewReader(status("failed", "30005").Encode()))
	otherQuery := webhook(token, query, status("delivered", ""))
	otherQuery.URL.RawQuery = "nudge_key=run2.step1&nudge_profile=p1"
	for name, r := range map[string]*http.Request{
		"other token": webhook("other", query, status("delivered", "")),
		"tampered":    tampered,
		"other query": otherQuery,
		"unsigned":    httptest.NewRequest(http.MethodPost, publicURL, nil),
	} {
		if _, err := twilio.ParseStatus(r, token, publicURL); !errors.Is(err, twilio.ErrSignature) {
			t.Errorf("%s: %v, want ErrSignature", name, err)
		}
	}
	if _, err := twilio.ParseStatus(webhook(token, query, status("delivered", "")), token, "/hooks/twilio"); err == nil {
		t.Error("a relative public URL")
	}
}

// TestSignature checks Sign against the example of Twilio's documentation
// (https://www.twilio.com/docs/usage/security#validating-requests).
func TestSignature(t *testing.T) {
	form := url.Values{"CallSid": {"CA1234567890ABCDE"}, "Caller": {"+12349013030"}, "Digits": {"1234"}, "From": {"+12349013030"}, "To": {"+18005551212"}}
	if got := twilio.Sign("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", form); got != "0/KCTR6DLpKmkAf8muzZqo1nDgQ=" {
		t.Errorf("signature %q", got)
	}
}
