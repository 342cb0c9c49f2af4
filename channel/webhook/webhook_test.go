package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nudge-dev/nudge/channel"
	"github.com/nudge-dev/nudge/channel/channeltest"
	"github.com/nudge-dev/nudge/channel/webhook"
)

var now = time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)

func msg(fields map[string]string) *channel.Message {
	return &channel.Message{
		IdempotencyKey: "run1.step1", Channel: "webhook", Journey: "j", Version: 2, Step: "step1",
		Recipient: channel.Recipient{ProfileID: "p1", Identifiers: map[string]string{"userId": "u1"}},
		Fields:    fields, CreatedAt: now,
	}
}

func TestSignedBodyAndIdempotencyKey(t *testing.T) {
	srv := channeltest.NewServer(t, channeltest.Answer{Status: http.StatusNoContent})
	secret := []byte("s3cret")
	c, err := webhook.New(webhook.Config{URL: srv.URL + "/hooks/", Secret: secret, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Send(context.Background(), msg(map[string]string{"url": "invite", "body": ` {"a": 1} `})); err != nil {
		t.Fatal(err)
	}
	r := srv.Last(t)
	if r.Method != "POST" || r.Path != "/hooks/invite" || r.Header.Get("Idempotency-Key") != "run1.step1" || string(r.Body) != `{"a": 1}` {
		t.Fatalf("request %+v", r)
	}
	sig := r.Header.Get("Nudge-Signature")
	if err := webhook.Verify(secret, sig, r.Body, now.Add(time.Minute), 5*time.Minute); err != nil {
		t.Fatalf("verify %q: %v", sig, err)
	}
	for name, check := range map[string]error{
		"other secret": webhook.Verify([]byte("other"), sig, r.Body, now, 5*time.Minute),
		"other body":   webhook.Verify(secret, sig, []byte(`{"a": 2}`), now, 5*time.Minute),
		"replayed":     webhook.Verify(secret, sig, r.Body, now.Add(time.Hour), 5*time.Minute),
		"malformed":    webhook.Verify(secret, "v1=00", r.Body, now, 5*time.Minute),
	} {
		if !errors.Is(check, webhook.ErrSignature) {
			t.Errorf("%s: %v, want ErrSignature", name, check)
		}
	}

	// Without a body field, the message goes as an envelope.
	if err := c.Send(context.Background(), msg(map[string]string{"text": "hi"})); err != nil {
		t.Fatal(err)
	}
	r = srv.Last(t)
	var env webhook.Envelope
	if err := json.Unmarshal(r.Body, &env); err != nil || env.Fields["text"] != "hi" || env.ProfileID != "p1" || env.IdempotencyKey != "run1.step1" || r.Path != "/hooks/" {
		t.Fatalf("envelope %s (%v) at %s", r.Body, err, r.Path)
	}
}

func TestOutcomes(t *testing.T) {
	channeltest.Outcomes{
		Now: now,
		Send: func(t *testing.T, url string) error {
			c, _ := webhook.New(webhook.Config{URL: url, Secret: []byte("k"), Now: func() time.Time { return now }})
			return c.Send(context.Background(), msg(nil))
		},
		Cases: []channeltest.Case{{Answer: channeltest.Answer{Status: 404}, Permanent: true, Want: "404"}},
	}.Run(t)
	c, _ := webhook.New(webhook.Config{Secret: []byte("k")})
	if err := c.Send(context.Background(), msg(map[string]string{"body": "{not json"})); !channel.IsPermanent(err) {
		t.Errorf("no URL: %v", err)
	}
	if err := c.Send(context.Background(), msg(map[string]string{"url": "ftp://x/y"})); !channel.IsPermanent(err) || !strings.Contains(err.Error(), "http") {
		t.Errorf("ftp URL: %v", err)
	}
	if _, err := webhook.New(webhook.Config{URL: "http://x"}); err == nil {
		t.Error("a channel without a secret")
	}
}
