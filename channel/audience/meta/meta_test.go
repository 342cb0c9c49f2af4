package meta_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/nudge-dev/nudge/channel"
	"github.com/nudge-dev/nudge/channel/audience/meta"
	"github.com/nudge-dev/nudge/channel/channeltest"
)

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

var now = time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)

func newChannel(t *testing.T, url string) *meta.Channel {
	t.Helper()
	c, err := meta.New(meta.Config{BaseURL: url, AccessToken: "tok", Audience: "6000", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func msg(fields, ids map[string]string) *channel.Message {
	return &channel.Message{IdempotencyKey: "run1.step1", Fields: fields, Recipient: channel.Recipient{ProfileID: "p1", Identifiers: ids}}
}

const ok = `{"audience_id":"6000","session_id":"1","num_received":1,"num_invalid_entries":0,"invalid_entry_samples":{}}`

func TestAddAndRemove(t *testing.T) {
	srv := channeltest.NewServer(t, channeltest.Answer{Body: ok})
	c := newChannel(t, srv.URL)
	if c.Name() != "meta_audience" || c.Idempotent() {
		t.Fatalf("name %q, idempotent %v", c.Name(), c.Idempotent())
	}
	both := map[string]string{"email": "  Foo.Bar@Example.COM ", "phone": "+1 (555) 123-4567"}
	for _, tc := range []struct {
		fields, ids           map[string]string
		method, path, payload string
	}{
		{nil, both, "POST", "/v24.0/6000/users",
			`{"schema":["EMAIL","PHONE"],"data":[["` + sha("foo.bar@example.com") + `","` + sha("15551234567") + `"]]}`},
		{map[string]string{"action": "remove", "audience": "7000"}, both, "DELETE", "/v24.0/7000/users",
			`{"schema":["EMAIL","PHONE"],"data":[["` + sha("foo.bar@example.com") + `","` + sha("15551234567") + `"]]}`},
		{nil, map[string]string{"phone": "0044 20 7946 0958"}, "POST", "/v24.0/6000/users",
			`{"schema":["PHONE"],"data":[["` + sha("442079460958") + `"]]}`},
		{nil, map[string]string{"email": "A@B.C", "phone": "555-1234"}, "POST", "/v24.0/6000/users",
			`{"schema":["EMAIL"],"data":[["` + sha("a@b.c") + `"]]}`},
	} {
		if err := c.Send(context.Background(), msg(tc.fields, tc.ids)); err != nil {
			t.Fatal(err)
		}
		r := srv.Last(t)
		r.Expect(t, tc.method, tc.path, map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
		form := r.Form(t)
		if r.RawQuery != "" || form.Get("access_token") != "tok" || form.Get("payload") != tc.payload || len(form) != 2 {
			t.Errorf("request %+v, want payload %s", r, tc.payload)
		}
		var p meta.Payload
		if err := json.Unmarshal([]byte(form.Get("payload")), &p); err != nil || len(p.Data[0]) != len(p.Schema) {
			t.Errorf("payload %+v: %v", p, err)
		}
	}
}

func TestOutcomes(t *testing.T) {
	graphError := func(status int, body string, permanent bool) channeltest.Case {
		return channeltest.Case{Answer: channeltest.Answer{Status: status, Body: body}, Permanent: permanent, Want: strconv.Itoa(status)}
	}
	channeltest.Outcomes{
		Now: now,
		Send: func(t *testing.T, url string) error {
			return newChannel(t, url).Send(context.Background(), msg(nil, map[string]string{"email": "a@b.c"}))
		},
		Cases: []channeltest.Case{
			graphError(500, `{"error":{"message":"An unknown error occurred","type":"OAuthException","code":1}}`, false),
			graphError(400, `{"error":{"message":"User request limit reached","type":"OAuthException","code":17}}`, false),
			graphError(400, `{"error":{"message":"Temporary","type":"OAuthException","code":100,"is_transient":true}}`, false),
			graphError(400, `{"error":{"message":"Invalid parameter for a@b.c","type":"OAuthException","code":100}}`, true),
			graphError(401, `{"error":{"message":"Error validating access token","type":"OAuthException","code":190}}`, true),
			{Answer: channeltest.Answer{Body: `{"audience_id":"6000","num_received":1,"num_invalid_entries":1}`}, Permanent: true, Want: "invalid"},
		},
		Private: []string{"@", "tok"},
	}.Run(t)
	srv := channeltest.NewServer(t, channeltest.Answer{Body: ok})
	if err := newChannel(t, srv.URL).Send(context.Background(), msg(nil, map[string]string{"userId": "u1"})); !channel.IsPermanent(err) || len(srv.Requests()) != 0 {
		t.Errorf("no email or phone: %v", err)
	}
	if _, err := meta.New(meta.Config{}); err == nil {
		t.Error("a channel without an access token")
	}
	if _, err := meta.New(meta.Config{AccessToken: "t", BaseURL: "graph.facebook.com"}); err == nil {
		t.Error("a base URL without a scheme")
	}
}
