package feedback

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nudge-dev/nudge"
	"github.com/nudge-dev/nudge/channel"
	"github.com/nudge-dev/nudge/engage"
	"github.com/nudge-dev/nudge/profile"
	"github.com/nudge-dev/nudge/shred"
)

type published struct {
	mu     sync.Mutex
	events []nudge.Event
}

func (p *published) Publish(_ context.Context, source string, events []nudge.Event) error {
	if source != Source {
		return fmt.Errorf("source %q", source)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, events...)
	return nil
}

func (p *published) take() []nudge.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.events
	p.events = nil
	return out
}

type profiles map[string]*profile.Profile

func (ps profiles) Find(_ context.Context, id string) (*profile.Profile, error) {
	if p, ok := ps[id]; ok {
		return p, nil
	}
	return nil, profile.ErrNotFound
}

func props(t *testing.T, e nudge.Event) map[string]any {
	t.Helper()
	m := map[string]any{}
	if err := json.Unmarshal(e.Properties, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

type fixture struct {
	loop   *Loop
	events *published
	keys   *shred.Keyring
	ann    *profile.Profile
	msg    *channel.Message
	srv    *httptest.Server
}

func newFixture(t *testing.T, wh Webhooks) *fixture {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keys")
	if err := shred.CreateWithSecret(path, [32]byte{1}); err != nil {
		t.Fatal(err)
	}
	keys, err := shred.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { keys.Close() })
	f := &fixture{events: &published{}, keys: keys}
	f.srv = httptest.NewServer(nil)
	t.Cleanup(f.srv.Close)
	signer, err := engage.NewSigner([]byte(strings.Repeat("k", 32)), f.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	ref := profile.Ref{P: keys.Pseudonym("userId:ann")}
	f.ann = &profile.Profile{ID: ref, Identities: []profile.Identity{
		{Kind: "anonymousId", Value: "a-1"}, {Kind: "userId", Value: "ann"}, {Kind: "email", Value: "ann@example.com"},
	}}
	ps := profiles{"ann@example.com": f.ann, ref.P.String(): f.ann}
	f.loop = New(Config{Events: f.events, Profiles: ps, Keys: keys, Signer: signer})
	mux := http.NewServeMux()
	f.loop.Register(mux, wh, engage.Config{})
	f.srv.Config.Handler = mux
	f.msg = &channel.Message{
		IdempotencyKey: channel.MessageKey(channel.Origin{Journey: "cart", Version: 2, Variant: "b", Step: "email"}, "r1", 1), Channel: "email",
		Journey: "cart", Version: 2, Step: "email", CreatedAt: time.Now(),
		Recipient: channel.Recipient{ProfileID: ref.P.String(), Identifiers: map[string]string{"userId": "ann", "email": "ann@example.com"}},
		Fields:    map[string]string{"html": `<p><a href="https://shop.example/cart">Your cart</a></p>`},
	}
	return f
}

func get(t *testing.T, url string) *http.Response {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// The links of a message, used, become the customer's events; an
// unsubscribe through its one-click POST unsubscribes from its group.
func TestLinksBecomeEvents(t *testing.T) {
	f := newFixture(t, Webhooks{})
	if err := f.loop.Track(f.ann.ID, f.msg); err != nil {
		t.Fatal(err)
	}
	html := f.msg.Fields["html"]
	click := html[strings.Index(html, f.srv.URL+"/e/c/"):]
	click = click[:strings.IndexByte(click, '"')]
	pixel := html[strings.Index(html, f.srv.URL+"/e/o/"):]
	pixel = pixel[:strings.IndexByte(pixel, '"')]
	if resp := get(t, click); resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "https://shop.example/cart" {
		t.Fatalf("click: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	get(t, pixel)
	get(t, pixel) // opened twice: one event id
	unsub := f.loop.UnsubscribeURL(f.ann.ID, f.msg, "news")
	resp, err := http.Post(unsub, "application/x-www-form-urlencoded", strings.NewReader("List-Unsubscribe=One-Click"))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("unsubscribe: %v %v", resp, err)
	}
	evs := f.events.take()
	names := map[string]int{}
	ids := map[string]bool{}
	for _, e := range evs {
		names[e.Event]++
		ids[e.MessageID] = true
		if e.UserID != "ann" {
			t.Fatalf("%s for %q", e.Event, e.UserID)
		}
		p := props(t, e)
		if p["journey"] != "cart" || p["step"] != "email" || p["version"] != float64(2) || p["variant"] != "b" || p["message_key"] != f.msg.IdempotencyKey {
			t.Fatalf("%s properties %v", e.Event, p)
		}
		if e.Event == channel.Unsubscribed.Event() && (p["group"] != "news" || p["channel"] != "email") {
			t.Fatalf("unsubscribe properties %v", p)
		}
	}
	if names[channel.Clicked.Event()] != 1 || names[channel.Opened.Event()] != 2 || names[channel.Unsubscribed.Event()] != 1 || len(ids) != 3 {
		t.Fatalf("events %v, %d ids", names, len(ids))
	}
	// A tampered link reports nothing.
	tampered := unsub[:len(unsub)-2] + "xx"
	if resp, err := http.Post(tampered, "application/x-www-form-urlencoded", nil); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("tampered: %v %v", resp, err)
	}
	if evs := f.events.take(); len(evs) != 0 {
		t.Fatalf("tampered link made %v", evs)
	}
	// Erased, the person's links name no one.
	if err := f.keys.Shred(f.ann.ID.P); err != nil {
		t.Fatal(err)
	}
	get(t, click)
	if evs := f.events.take(); len(evs) != 0 {
		t.Fatalf("an erased person's click made %v", evs)
	}
}

func mailgunBody(key, event string, extra map[string]any) []byte {
	ts, token := fmt.Sprint(time.Now().Unix()), "tok"
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(ts + token))
	data := map[string]any{"event": event, "recipient": "Ann@Example.com", "timestamp": float64(time.Now().Unix()), "id": "ev-1"}
	for k, v := range extra {
		data[k] = v
	}
	b, _ := json.Marshal(map[string]any{
		"signature":  map[string]string{"timestamp": ts, "token": token, "signature": hex.EncodeToString(mac.Sum(nil))},
		"event-data": data,
	})
	return b
}

// A provider's bounce becomes the customer's events and suppresses the
// address; a forged webhook is refused; feedback about nobody is dropped.
func TestProviderWebhookBounceSuppresses(t *testing.T) {
	f := newFixture(t, Webhooks{MailgunKey: "mg-key"})
	post := func(body []byte) int {
		resp, err := http.Post(f.srv.URL+MailgunPath, "application/json", strings.NewReader(string(body)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	body := mailgunBody("mg-key", "failed", map[string]any{"severity": "permanent",
		"user-variables": map[string]string{"nudge-key": f.msg.IdempotencyKey}})
	if code := post(body); code != http.StatusOK {
		t.Fatalf("bounce: %d", code)
	}
	evs := f.events.take()
	if len(evs) != 2 || evs[0].Event != channel.Bounced.Event() || evs[1].Event != channel.Unsubscribed.Event() || evs[0].UserID != "ann" {
		t.Fatalf("events %+v", evs)
	}
	if p := props(t, evs[1]); p["channel"] != "email" || p["reason"] != "bounced" {
		t.Fatalf("suppression %v", p)
	}
	// The provider retries the same webhook: the same event ids.
	post(body)
	again := f.events.take()
	if len(again) != 2 || again[0].MessageID != evs[0].MessageID || again[1].MessageID != evs[1].MessageID {
		t.Fatalf("retried webhook: %+v", again)
	}
	if code := post(mailgunBody("wrong-key", "delivered", nil)); code != http.StatusForbidden {
		t.Fatalf("forged: %d", code)
	}
	if code := post([]byte(`{"nope"`)); code != http.StatusForbidden && code != http.StatusBadRequest {
		t.Fatalf("garbage: %d", code)
	}
	if err := f.loop.Report(context.Background(), []channel.Feedback{{Kind: channel.Delivered, Address: "nobody@example.com", Channel: "email"}}); err != nil {
		t.Fatal(err)
	}
	if evs := f.events.take(); len(evs) != 0 {
		t.Fatalf("forged or unknown made %+v", evs)
	}
}
