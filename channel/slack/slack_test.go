package slack_test

import (
	"context"
	"testing"
	"time"

	"github.com/nudge-dev/nudge/channel"
	"github.com/nudge-dev/nudge/channel/channeltest"
	"github.com/nudge-dev/nudge/channel/slack"
)

var now = time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)

func msg(fields map[string]string) *channel.Message {
	return &channel.Message{IdempotencyKey: "run1.step1", Fields: fields, Recipient: channel.Recipient{ProfileID: "p1"}}
}

func TestSend(t *testing.T) {
	srv := channeltest.NewServer(t, channeltest.Answer{Body: "ok"})
	c, err := slack.New(slack.Config{URL: srv.URL + "/services/T0/B0/secret"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Name() != "slack" || c.Idempotent() {
		t.Fatalf("name %q, idempotent %v", c.Name(), c.Idempotent())
	}
	for _, tc := range []struct {
		fields     map[string]string
		path, body string
	}{
		{map[string]string{"text": "New signup: *Ada*"}, "/services/T0/B0/secret", `{"text":"New signup: *Ada*"}`},
		{map[string]string{"text": "fallback", "blocks": ` [{"type":"section","text":{"type":"mrkdwn","text":"hi"}}] `, "url": srv.URL + "/services/T1/B1/other"},
			"/services/T1/B1/other", `{"text":"fallback","blocks":[{"type":"section","text":{"type":"mrkdwn","text":"hi"}}]}`},
		{map[string]string{"blocks": `[{"type":"divider"}]`}, "/services/T0/B0/secret", `{"blocks":[{"type":"divider"}]}`},
	} {
		if err := c.Send(context.Background(), msg(tc.fields)); err != nil {
			t.Fatal(err)
		}
		r := srv.Last(t)
		if r.Method != "POST" || r.Path != tc.path || r.Header.Get("Content-Type") != "application/json" || string(r.Body) != tc.body {
			t.Errorf("request %+v, want %s %s", r, tc.path, tc.body)
		}
	}
	for name, fields := range map[string]map[string]string{
		"no text or blocks": {"text": " "},
		"blocks not JSON":   {"blocks": "[{"},
		"blocks an object":  {"blocks": `{"type":"divider"}`},
		"url not http":      {"text": "x", "url": "hooks.slack.com/services/T/B/x"},
	} {
		if err := c.Send(context.Background(), msg(fields)); !channel.IsPermanent(err) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if n := len(srv.Requests()); n != 3 {
		t.Errorf("%d requests, want 3: an invalid message was sent", n)
	}
	c, _ = slack.New(slack.Config{})
	if err := c.Send(context.Background(), msg(map[string]string{"text": "x"})); !channel.IsPermanent(err) {
		t.Errorf("no URL: %v", err)
	}
	if _, err := slack.New(slack.Config{URL: "not a url"}); err == nil {
		t.Error("a channel with a bad URL")
	}
}

func TestOutcomes(t *testing.T) {
	slackError := func(status int, code string, permanent bool) channeltest.Case {
		return channeltest.Case{Answer: channeltest.Answer{Status: status, Body: code}, Permanent: permanent, Want: code}
	}
	channeltest.Outcomes{
		Now: now,
		Send: func(t *testing.T, url string) error {
			c, _ := slack.New(slack.Config{URL: url + "/services/T0/B0/secret", Now: func() time.Time { return now }})
			return c.Send(context.Background(), msg(map[string]string{"text": "hi"}))
		},
		Cases: []channeltest.Case{
			slackError(500, "rollup_error", false),
			slackError(400, "invalid_payload", true),
			slackError(403, "action_prohibited", true),
			slackError(404, "no_service", true),
			slackError(410, "channel_is_archived", true),
			// A page that is not an error code is not quoted.
			{Name: "502 page", Answer: channeltest.Answer{Status: 502, Body: "<html>Bad gateway for /services/T0/B0/secret</html>"}, Want: "502"},
		},
		// The webhook URL is a secret: neither an answer nor a network
		// failure may quote it.
		Private: []string{"secret"},
	}.Run(t)
}
