package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nudge-dev/nudge/channel"
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

type got struct {
	method, path, key, sig string
	body                   []byte
}

func server(t *testing.T, status int, header map[string]string) (*httptest.Server, chan got) {
	ch := make(chan got, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ch <- got{r.Method, r.URL.Path, r.Header.Get("Idempotency-Key"), r.Header.Get("Nudge-Signature"), b}
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv, ch
}

func TestSignedBodyAndIdempotencyKey(t *testing.T) {
	srv, ch := server(t, http.StatusNoContent, nil)
	secret := []byte("s3cret")
	c, err := webhook.New(webhook.Config{URL: srv.URL + "/hooks/", Secret: secret, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Send(context.Background(), msg(map[string]string{"url": "invite", "body": ` {"a": 1} `})); err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.method != "POST" || r.path != "/hooks/invite" || r.key != "run1.step1" || string(r.body) != `{"a": 1}` {
		t.Fatalf("request %+v", r)
	}
	if err := webhook.Verify(secret, r.sig, r.body, now.Add(time.Minute), 5*time.Minute); err != nil {
		t.Fatalf("verify %q: %v", r.sig, err)
	}
	for name, check := range map[string]error{
		"other secret": webhook.Verify([]byte("other"), r.sig, r.body, now, 5*time.Minute),
		"other body":   webhook.Verify(secret, r.sig, []byte(`{"a": 2}`), now, 5*time.Minute),
		"replayed":     webhook.Verify(secret, r.sig, r.body, now.Add(time.Hour), 5*time.Minute),
		"malformed":    webhook.Verify(secret, "v1=00", r.body, now, 5*time.Minute),
	} {
		if !errors.Is(check, webhook.ErrSignature) {
			t.Errorf("%s: %v, want ErrSignature", name, check)
		}
	}

	// Without a body field, the message goes as an envelope.
	if err := c.Send(context.Background(), msg(map[string]string{"text": "hi"})); err != nil {
		t.Fatal(err)
	}
	r = <-ch
	var env webhook.Envelope
	if err := json.Unmarshal(r.body, &env); err != nil || env.Fields["text"] != "hi" || env.ProfileID != "p1" || env.IdempotencyKey != "run1.step1" || r.path != "/hooks/" {
		t.Fatalf("envelope %s (%v) at %s", r.body, err, r.path)
	}
}

func TestOutcomes(t *testing.T) {
	for _, tc := range []struct {
		status    int
		header    map[string]string
		permanent bool
		after     time.Duration
	}{
		{status: 500},
		{status: 429, header: map[string]string{"Retry-After": "30"}, after: 30 * time.Second},
		{status: 503, header: map[string]string{"Retry-After": now.Add(2 * time.Minute).Format(http.TimeFormat)}, after: 2 * time.Minute},
		{status: 400, permanent: true},
		{status: 404, permanent: true},
	} {
		srv, _ := server(t, tc.status, tc.header)
		c, _ := webhook.New(webhook.Config{URL: srv.URL, Secret: []byte("k"), Now: func() time.Time { return now }})
		err := c.Send(context.Background(), msg(nil))
		if err == nil || channel.IsPermanent(err) != tc.permanent || channel.RetryAfter(err) != tc.after {
			t.Errorf("status %d: %v (permanent %v, retry after %v)", tc.status, err, channel.IsPermanent(err), channel.RetryAfter(err))
		}
	}
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
	// A network failure is retryable.
	srv, _ := server(t, 200, nil)
	srv.Close()
	c, _ = webhook.New(webhook.Config{URL: srv.URL, Secret: []byte("k")})
	if err := c.Send(context.Background(), msg(nil)); err == nil || channel.IsPermanent(err) {
		t.Errorf("closed server: %v", err)
	}
}
