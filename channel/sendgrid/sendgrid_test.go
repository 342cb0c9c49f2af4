package sendgrid_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nudge-dev/nudge/channel"
	"github.com/nudge-dev/nudge/channel/channeltest"
	"github.com/nudge-dev/nudge/channel/sendgrid"
)

var now = time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)

func msg(fields map[string]string) *channel.Message {
	return &channel.Message{
		IdempotencyKey: "run1.step1", Channel: "email", Journey: "welcome", Step: "step1",
		Recipient: channel.Recipient{ProfileID: "p1", Identifiers: map[string]string{"email": "ada@example.com"}},
		Fields:    fields, CreatedAt: now,
	}
}

// sent checks that the server's last request is a message as the Mail
// Send API takes it, and returns its decoded body.
func sent(t *testing.T, srv *channeltest.Server) map[string]any {
	t.Helper()
	r := srv.Last(t)
	r.Expect(t, http.MethodPost, "/v3/mail/send", map[string]string{"Authorization": "Bearer SG.key", "Content-Type": "application/json"})
	var v map[string]any
	r.JSON(t, &v)
	return v
}

func newChannel(t *testing.T, url string) *sendgrid.Channel {
	t.Helper()
	c, err := sendgrid.New(sendgrid.Config{BaseURL: url, APIKey: "SG.key", From: "Shop <news@shop.example>", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSend(t *testing.T) {
	srv := channeltest.NewServer(t, channeltest.Answer{Status: http.StatusAccepted})
	c := newChannel(t, srv.URL)
	m := msg(map[string]string{"subject": "Hello", "text": "Hi Ada", "html": "<p>Hi Ada</p>", "reply_to": "help@shop.example"})
	m.UnsubscribeURL = "https://nudge.example/u/abc"
	if err := c.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	var want map[string]any
	json.Unmarshal([]byte(`{
		"personalizations": [{"to": [{"email": "ada@example.com"}]}],
		"from": {"email": "news@shop.example", "name": "Shop"},
		"reply_to": {"email": "help@shop.example"},
		"subject": "Hello",
		"content": [{"type": "text/plain", "value": "Hi Ada"}, {"type": "text/html", "value": "<p>Hi Ada</p>"}],
		"headers": {"List-Unsubscribe": "<https://nudge.example/u/abc>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
		"custom_args": {"nudge_key": "run1.step1", "nudge_profile": "p1"}
	}`), &want)
	if got := sent(t, srv); !reflect.DeepEqual(got, want) {
		t.Errorf("body\n%v\nwant\n%v", got, want)
	}

	// The to and from fields win; no unsubscribe link, no headers.
	if err := c.Send(context.Background(), msg(map[string]string{"to": "grace@example.com", "from": "promo@shop.example", "subject": "S", "html": "<p>x</p>"})); err != nil {
		t.Fatal(err)
	}
	got := sent(t, srv)
	if to := got["personalizations"].([]any)[0].(map[string]any)["to"].([]any)[0].(map[string]any)["email"]; to != "grace@example.com" {
		t.Errorf("to %v", to)
	}
	if from := got["from"].(map[string]any)["email"]; from != "promo@shop.example" {
		t.Errorf("from %v", from)
	}
	if _, ok := got["headers"]; ok || len(got["content"].([]any)) != 1 {
		t.Errorf("body %v", got)
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
			{Answer: channeltest.Answer{Status: 400, Body: `{"errors":[{"message":"Invalid address ada@example.com","field":"personalizations.0.to","help":null}]}`},
				Permanent: true, Want: "personalizations.0.to"},
			{Answer: channeltest.Answer{Status: 401, Body: `{"errors":[{"field":null,"message":"authorization required"}]}`}, Permanent: true, Want: "401"},
			{Answer: channeltest.Answer{Status: 413}, Permanent: true, Want: "413"},
		},
		Private: []string{"ada@", "SG.key"},
	}.Run(t)

	c := newChannel(t, "http://127.0.0.1:1")
	// The fields are read by channel.ReadEmail (tested there); a message
	// it refuses is a permanent error that names the channel.
	if err := c.Send(context.Background(), msg(map[string]string{"text": "t"})); !channel.IsPermanent(err) || !strings.HasPrefix(err.Error(), "sendgrid: ") || !strings.Contains(err.Error(), "subject") {
		t.Errorf("no subject: %v", err)
	}
	for name, cfg := range map[string]sendgrid.Config{
		"no key":   {},
		"bad url":  {APIKey: "k", BaseURL: "ftp://x"},
		"bad from": {APIKey: "k", From: "nobody"},
	} {
		if _, err := sendgrid.New(cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

const events = `[
	{"email":"ada@example.com","timestamp":1777896000,"event":"delivered","sg_event_id":"e1","sg_message_id":"m1","nudge_key":"run1.step1","nudge_profile":"p1","response":"250 OK"},
	{"email":"ada@example.com","timestamp":1777896001,"event":"processed","sg_event_id":"e0"},
	{"email":"bob@example.com","timestamp":1777896002,"event":"bounce","type":"bounce","reason":"550 5.1.1 unknown user","sg_event_id":"e2","nudge_key":"run2.step1","nudge_profile":"p2"},
	{"email":"bob@example.com","timestamp":1777896003,"event":"bounce","type":"blocked","reason":"554 blocked","sg_event_id":"e3"},
	{"email":"bob@example.com","timestamp":1777896004,"event":"dropped","reason":"Bounced Address","sg_event_id":"e4"},
	{"email":"bob@example.com","timestamp":1777896005,"event":"deferred","response":"451 try later","attempt":"1","sg_event_id":"e5"},
	{"email":"ada@example.com","timestamp":1777896006,"event":"spamreport","sg_event_id":"e6"},
	{"email":"ada@example.com","timestamp":1777896007,"event":"unsubscribe","sg_event_id":"e7"},
	{"email":"ada@example.com","timestamp":1777896008,"event":"group_unsubscribe","asm_group_id":1,"sg_event_id":"e8"},
	{"email":"ada@example.com","timestamp":1777896009,"event":"open","sg_event_id":"e9"},
	{"email":"ada@example.com","timestamp":1777896010,"event":"click","url":"https://shop.example","sg_event_id":"e10"}
]`

func keyPair(t *testing.T) (*ecdsa.PrivateKey, string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return priv, base64.StdEncoding.EncodeToString(der)
}

func signedRequest(t *testing.T, priv *ecdsa.PrivateKey, ts, signed, sent string) *http.Request {
	t.Helper()
	h := sha256.Sum256([]byte(ts + signed))
	sig, err := ecdsa.SignASN1(rand.Reader, priv, h[:])
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, "/hooks/sendgrid", strings.NewReader(sent))
	r.Header.Set(sendgrid.SignatureHeader, base64.StdEncoding.EncodeToString(sig))
	r.Header.Set(sendgrid.TimestampHeader, ts)
	return r
}

func TestParseEvents(t *testing.T) {
	priv, pub := keyPair(t)
	v, err := sendgrid.NewVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	fb, err := sendgrid.ParseEvents(signedRequest(t, priv, "1777896011", events, events), v)
	if err != nil {
		t.Fatal(err)
	}
	at := func(s int64) time.Time { return time.Unix(1777896000+s, 0).UTC() }
	want := []channel.Feedback{
		{Kind: channel.Delivered, Key: "run1.step1", ProfileID: "p1", Address: "ada@example.com", Channel: "email", At: at(0), ProviderID: "e1"},
		{Kind: channel.Bounced, Key: "run2.step1", ProfileID: "p2", Address: "bob@example.com", Channel: "email", At: at(2), Reason: "550 5.1.1 unknown user", ProviderID: "e2"},
		{Kind: channel.Failed, Address: "bob@example.com", Channel: "email", At: at(3), Reason: "554 blocked", ProviderID: "e3"},
		{Kind: channel.Failed, Address: "bob@example.com", Channel: "email", At: at(4), Reason: "Bounced Address", ProviderID: "e4"},
		{Kind: channel.Deferred, Address: "bob@example.com", Channel: "email", At: at(5), Reason: "451 try later", ProviderID: "e5"},
		{Kind: channel.Complained, Address: "ada@example.com", Channel: "email", At: at(6), ProviderID: "e6"},
		{Kind: channel.Unsubscribed, Address: "ada@example.com", Channel: "email", At: at(7), ProviderID: "e7"},
		{Kind: channel.Unsubscribed, Address: "ada@example.com", Channel: "email", At: at(8), ProviderID: "e8"},
		{Kind: channel.Opened, Address: "ada@example.com", Channel: "email", At: at(9), ProviderID: "e9"},
		{Kind: channel.Clicked, Address: "ada@example.com", Channel: "email", At: at(10), ProviderID: "e10"},
	}
	if !reflect.DeepEqual(fb, want) {
		t.Errorf("feedback\n%+v\nwant\n%+v", fb, want)
	}

	// The same key in PEM.
	der, _ := base64.StdEncoding.DecodeString(pub)
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	if v, err := sendgrid.NewVerifier(pemKey); err != nil {
		t.Errorf("PEM key: %v", err)
	} else if _, err := sendgrid.ParseEvents(signedRequest(t, priv, "1", events, events), v); err != nil {
		t.Errorf("PEM key: %v", err)
	}

	otherPriv, _ := keyPair(t)
	tampered := strings.Replace(events, `"bounce","type":"bounce"`, `"delivered","type":"bounce"`, 1)
	badTS := signedRequest(t, priv, "1", events, events)
	badTS.Header.Set(sendgrid.TimestampHeader, "2")
	noSig := signedRequest(t, priv, "1", events, events)
	noSig.Header.Del(sendgrid.SignatureHeader)
	for name, r := range map[string]*http.Request{
		"tampered body": signedRequest(t, priv, "1", events, tampered),
		"other key":     signedRequest(t, otherPriv, "1", events, events),
		"other time":    badTS,
		"no signature":  noSig,
	} {
		if _, err := sendgrid.ParseEvents(r, v); !errors.Is(err, sendgrid.ErrSignature) {
			t.Errorf("%s: %v, want ErrSignature", name, err)
		}
	}

	if _, err := sendgrid.ParseEvents(signedRequest(t, priv, "1", "{}", "{}"), v); err == nil {
		t.Error("an object instead of an array")
	}
	for _, k := range []string{"", "not base64!", base64.StdEncoding.EncodeToString([]byte("not DER"))} {
		if _, err := sendgrid.NewVerifier(k); err == nil {
			t.Errorf("key %q accepted", k)
		}
	}
}
