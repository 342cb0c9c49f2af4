package cdp_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nudge-dev/nudge/channel"
	"github.com/nudge-dev/nudge/channel/cdp"
	"github.com/nudge-dev/nudge/channel/channeltest"
)

var now = time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)

func msg(fields, ids map[string]string) *channel.Message {
	return &channel.Message{
		IdempotencyKey: "run1.step1", Journey: "j", Step: "s", Fields: fields, CreatedAt: now.Add(-time.Second),
		Recipient: channel.Recipient{ProfileID: "p1", Identifiers: ids},
	}
}

func newChannel(t *testing.T, url string) *cdp.Channel {
	t.Helper()
	c, err := cdp.New(cdp.Config{BaseURL: url + "/", WriteKey: "wk", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestBatch(t *testing.T) {
	srv := channeltest.NewServer(t, channeltest.Answer{Header: map[string]string{"Content-Type": "application/json"}, Body: `{"success":true}`})
	c := newChannel(t, srv.URL)
	if c.Name() != "cdp" || !c.Idempotent() || !channel.IsIdempotent(c) {
		t.Fatalf("name %q, idempotent %v", c.Name(), c.Idempotent())
	}
	for _, tc := range []struct {
		fields, ids map[string]string
		call        string
	}{
		{map[string]string{"event": "Trial Nudged", "properties": ` {"plan": "pro", "day": 3} `}, map[string]string{"userId": "u1", "anonymousId": "a1"},
			`{"event":"Trial Nudged","messageId":"run1.step1","properties":{"day":3,"plan":"pro"},"timestamp":"2026-05-04T11:59:59Z","type":"track","userId":"u1"}`},
		{map[string]string{"type": "identify", "traits": `{"vip": true}`}, map[string]string{"anonymousId": "a1"},
			`{"anonymousId":"a1","messageId":"run1.step1","timestamp":"2026-05-04T11:59:59Z","traits":{"vip":true},"type":"identify"}`},
		{map[string]string{"type": "Track", "event": "Seen"}, map[string]string{"userId": "u1"},
			`{"event":"Seen","messageId":"run1.step1","timestamp":"2026-05-04T11:59:59Z","type":"track","userId":"u1"}`},
	} {
		if err := c.Send(context.Background(), msg(tc.fields, tc.ids)); err != nil {
			t.Fatal(err)
		}
		r := srv.Last(t)
		r.Expect(t, "POST", "/v1/batch", map[string]string{"Authorization": channeltest.BasicAuth("wk", ""), "Content-Type": "application/json"})
		var body map[string]any
		r.JSON(t, &body)
		batch, _ := body["batch"].([]any)
		if len(batch) != 1 || body["sentAt"] != "2026-05-04T12:00:00Z" || len(body) != 2 {
			t.Fatalf("body %v", body)
		}
		if b, _ := json.Marshal(batch[0]); string(b) != tc.call {
			t.Errorf("call\n got %s\nwant %s", b, tc.call)
		}
	}
	for name, tc := range map[string]struct{ fields, ids map[string]string }{
		"no identifier":        {map[string]string{"event": "E"}, map[string]string{"email": "a@b.c"}},
		"no event":             {map[string]string{"event": " "}, map[string]string{"userId": "u1"}},
		"unknown type":         {map[string]string{"type": "page"}, map[string]string{"userId": "u1"}},
		"properties not JSON":  {map[string]string{"event": "E", "properties": "{"}, map[string]string{"userId": "u1"}},
		"traits not an object": {map[string]string{"type": "identify", "traits": "[1]"}, map[string]string{"userId": "u1"}},
	} {
		if err := c.Send(context.Background(), msg(tc.fields, tc.ids)); !channel.IsPermanent(err) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if n := len(srv.Requests()); n != 3 {
		t.Errorf("%d requests, want 3: an invalid message was sent", n)
	}
}

func TestOutcomes(t *testing.T) {
	channeltest.Outcomes{
		Now: now,
		Send: func(t *testing.T, url string) error {
			return newChannel(t, url).Send(context.Background(), msg(map[string]string{"event": "E"}, map[string]string{"userId": "u1"}))
		},
		Cases: []channeltest.Case{{Answer: channeltest.Answer{Status: 401}, Permanent: true, Want: "401"}},
	}.Run(t)
	if _, err := cdp.New(cdp.Config{}); err == nil {
		t.Error("a channel without a write key")
	}
	if _, err := cdp.New(cdp.Config{WriteKey: "k", BaseURL: "::"}); err == nil {
		t.Error("a channel with a bad base URL")
	}
}
