package mailgun_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nudge-dev/nudge/channel"
	"github.com/nudge-dev/nudge/channel/channeltest"
	"github.com/nudge-dev/nudge/channel/mailgun"
)

var now = time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)

func msg(fields map[string]string) *channel.Message {
	return &channel.Message{
		IdempotencyKey: "run1.step1", Channel: "email", Journey: "welcome", Step: "step1",
		Recipient: channel.Recipient{ProfileID: "p1", Identifiers: map[string]string{"email": "ada@example.com"}},
		Fields:    fields, CreatedAt: now,
	}
}

// sent checks that the server's last request is a message as the Messages
// API takes it, and returns its form.
func sent(t *testing.T, srv *channeltest.Server) url.Values {
	t.Helper()
	r := srv.Last(t)
	r.Expect(t, http.MethodPost, "/v3/mg.shop.example/messages", map[string]string{
		"Authorization": channeltest.BasicAuth("api", "key-1"),
		"Content-Type":  "application/x-www-form-urlencoded",
	})
	return r.Form(t)
}

func newChannel(t *testing.T, url string) *mailgun.Channel {
	t.Helper()
	c, err := mailgun.New(mailgun.Config{BaseURL: url, Domain: "mg.shop.example", APIKey: "key-1", From: "Shop <news@shop.example>", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSend(t *testing.T) {
	srv := channeltest.NewServer(t, channeltest.Answer{Body: `{"id":"<20260504.1@mg.shop.example>","message":"Queued. Thank you."}`})
	c := newChannel(t, srv.URL)
	m := msg(map[string]string{"subject": "Hello", "text": "Hi Ada", "html": "<p>Hi Ada</p>", "reply_to": "help@shop.example"})
	m.UnsubscribeURL = "https://nudge.example/u/abc"
	if err := c.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	want := url.Values{
		"from":                    {`"Shop" <news@shop.example>`},
		"to":                      {"<ada@example.com>"},
		"subject":                 {"Hello"},
		"text":                    {"Hi Ada"},
		"html":                    {"<p>Hi Ada</p>"},
		"h:Reply-To":              {"<help@shop.example>"},
		"h:List-Unsubscribe":      {"<https://nudge.example/u/abc>"},
		"h:List-Unsubscribe-Post": {"List-Unsubscribe=One-Click"},
		"v:nudge-key":             {"run1.step1"},
		"v:nudge-profile":         {"p1"},
	}
	if got := sent(t, srv); !reflect.DeepEqual(got, want) {
		t.Errorf("form\n%v\nwant\n%v", got, want)
	}

	if err := c.Send(context.Background(), msg(map[string]string{"to": "grace@example.com", "from": "promo@shop.example", "subject": "S", "text": "t"})); err != nil {
		t.Fatal(err)
	}
	got := sent(t, srv)
	if got.Get("to") != "<grace@example.com>" || got.Get("from") != "<promo@shop.example>" || got.Has("html") || got.Has("h:List-Unsubscribe") {
		t.Errorf("form %v", got)
	}
	if c.Name() != "email" || channel.IsIdempotent(c) {
		t.Errorf("name %q, idempotent %v", c.Name(), channel.IsIdempotent(c))
	}
}

func TestOutcomes(t *testing.T) {
	channeltest.Outcomes{
		Now: now,
		Send: func(t *testing.T, url string) error {
			return newChannel(t, url).Send(context.Background(), msg(map[string]string{"subject": "s", "text": "t"}))
		},
		Cases: []channeltest.Case{
			{Answer: channeltest.Answer{Status: 400, Body: `{"message":"to parameter is not a valid address. please check documentation"}`}, Permanent: true, Want: "400"},
			{Answer: channeltest.Answer{Status: 401, Body: `Forbidden`}, Permanent: true, Want: "401"},
			{Answer: channeltest.Answer{Status: 404, Body: `{"message":"Domain not found: mg.shop.example"}`}, Permanent: true, Want: "404"},
		},
		Private: []string{"ada@", "key-1"},
	}.Run(t)

	c := newChannel(t, "http://127.0.0.1:1")
	if err := c.Send(context.Background(), msg(map[string]string{"subject": "s", "text": "t"})); err == nil || channel.IsPermanent(err) {
		t.Errorf("closed server: %v", err)
	}
	// The fields are read by channel.ReadEmail (tested there); a message
	// it refuses is a permanent error that names the channel.
	if err := c.Send(context.Background(), msg(map[string]string{"text": "t"})); !channel.IsPermanent(err) || !strings.HasPrefix(err.Error(), "mailgun: ") || !strings.Contains(err.Error(), "subject") {
		t.Errorf("no subject: %v", err)
	}
	for name, cfg := range map[string]mailgun.Config{
		"no key":    {Domain: "d"},
		"no domain": {APIKey: "k"},
		"bad url":   {APIKey: "k", Domain: "d", BaseURL: "ftp://x"},
		"bad from":  {APIKey: "k", Domain: "d", From: "nobody"},
	} {
		if _, err := mailgun.New(cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

const signingKey = "whsec-mailgun"

// webhook returns a webhook request for event-data, signed at ts with key.
func webhook(key string, ts time.Time, eventData string) *http.Request {
	timestamp, token := strconv.FormatInt(ts.Unix(), 10), "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0"
	h := hmac.New(sha256.New, []byte(key))
	h.Write([]byte(timestamp + token))
	body := fmt.Sprintf(`{"signature":{"timestamp":%q,"token":%q,"signature":%q},"event-data":%s}`,
		timestamp, token, hex.EncodeToString(h.Sum(nil)), eventData)
	return httptest.NewRequest(http.MethodPost, "/hooks/mailgun", strings.NewReader(body))
}

func TestParseEvent(t *testing.T) {
	at := time.Date(2026, 5, 4, 11, 59, 0, 123456000, time.UTC)
	ts := fmt.Sprintf("%d.123456", at.Unix())
	for _, tc := range []struct {
		data string
		want []channel.Feedback
	}{
		{`{"event":"delivered","id":"ev1","timestamp":` + ts + `,"recipient":"ada@example.com","user-variables":{"nudge-key":"run1.step1","nudge-profile":"p1"},"delivery-status":{"code":250,"message":"OK"}}`,
			[]channel.Feedback{{Kind: channel.Delivered, Key: "run1.step1", ProfileID: "p1", Address: "ada@example.com", Channel: "email", At: at, ProviderID: "ev1"}}},
		{`{"event":"failed","severity":"permanent","reason":"bounce","id":"ev2","timestamp":` + ts + `,"recipient":"bob@example.com","user-variables":{"nudge-key":"run2.step1","nudge-profile":12345},"delivery-status":{"code":550,"message":"5.1.1 unknown user"}}`,
			[]channel.Feedback{{Kind: channel.Bounced, Key: "run2.step1", ProfileID: "12345", Address: "bob@example.com", Channel: "email", At: at, Reason: "5.1.1 unknown user", ProviderID: "ev2"}}},
		{`{"event":"failed","severity":"temporary","reason":"generic","id":"ev3","timestamp":` + ts + `,"recipient":"bob@example.com","delivery-status":{"code":452,"message":"","description":"mailbox full"}}`,
			[]channel.Feedback{{Kind: channel.Deferred, Address: "bob@example.com", Channel: "email", At: at, Reason: "mailbox full", ProviderID: "ev3"}}},
		{`{"event":"complained","id":"ev4","timestamp":` + ts + `,"recipient":"ada@example.com"}`,
			[]channel.Feedback{{Kind: channel.Complained, Address: "ada@example.com", Channel: "email", At: at, ProviderID: "ev4"}}},
		{`{"event":"unsubscribed","id":"ev5","timestamp":` + ts + `,"recipient":"ada@example.com"}`,
			[]channel.Feedback{{Kind: channel.Unsubscribed, Address: "ada@example.com", Channel: "email", At: at, ProviderID: "ev5"}}},
		{`{"event":"opened","id":"ev6","timestamp":` + ts + `,"recipient":"ada@example.com"}`,
			[]channel.Feedback{{Kind: channel.Opened, Address: "ada@example.com", Channel: "email", At: at, ProviderID: "ev6"}}},
		{`{"event":"clicked","id":"ev7","timestamp":` + ts + `,"recipient":"ada@example.com","url":"https://shop.example"}`,
			[]channel.Feedback{{Kind: channel.Clicked, Address: "ada@example.com", Channel: "email", At: at, ProviderID: "ev7"}}},
		{`{"event":"accepted","id":"ev8","timestamp":` + ts + `,"recipient":"ada@example.com"}`, nil},
	} {
		got, err := mailgun.ParseEvent(webhook(signingKey, now.Add(-time.Minute), tc.data), signingKey, 5*time.Minute, now)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s:\n%+v (%v)\nwant\n%+v", tc.data, got, err, tc.want)
		}
	}

	data := `{"event":"delivered","id":"ev1","timestamp":1,"recipient":"ada@example.com"}`
	tampered := webhook(signingKey, now, data)
	b, _ := io.ReadAll(tampered.Body)
	tampered = httptest.NewRequest(http.MethodPost, "/", strings.NewReader(strings.Replace(string(b), `"timestamp":"`, `"timestamp":"1`, 1)))
	for name, r := range map[string]*http.Request{
		"other key": webhook("other", now, data),
		"too old":   webhook(signingKey, now.Add(-time.Hour), data),
		"future":    webhook(signingKey, now.Add(time.Hour), data),
		"tampered":  tampered,
		"unsigned":  httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"event-data":`+data+`}`)),
	} {
		if _, err := mailgun.ParseEvent(r, signingKey, 5*time.Minute, now); !errors.Is(err, mailgun.ErrSignature) {
			t.Errorf("%s: %v, want ErrSignature", name, err)
		}
	}
	if _, err := mailgun.ParseEvent(httptest.NewRequest(http.MethodPost, "/", strings.NewReader("not json")), signingKey, time.Minute, now); err == nil {
		t.Error("not JSON")
	}
}
