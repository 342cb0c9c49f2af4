package journey

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nudge-dev/nudge/channel"
	"github.com/nudge-dev/nudge/channel/webhook"
	"github.com/nudge-dev/nudge/profile"
)

const waitDoc = `
id: later
trigger: {event: Signed Up}
steps:
  - id: two-days
    wait: {duration: 48h}
  - id: hello
    send: {channel: email, content: {subject: "Still there, {{ profile.traits.name }}?"}}
`

// kill -9 in the middle of a 48-hour wait, restart, advance time: the step
// fires exactly once, whether the crash lost the run's state (replayed from
// the log) or not.
func TestCrashDuring48HourWait(t *testing.T) {
	for _, committed := range []bool{false, true} {
		h := newHarness(t, journeyOf(t, waitDoc))
		h.send(h.identify("ann", `{"name":"Ann"}`), h.ev("ann", "Signed Up", "", 0))
		if committed {
			h.flush()
		}
		h.advance(24 * time.Hour)
		h.crash()
		h.advance(24*time.Hour - time.Second)
		h.expect()
		h.advance(time.Second)
		ms := h.sent("email")
		if len(ms) != 1 || ms[0].Fields["subject"] != "Still there, Ann?" {
			t.Fatalf("committed %v: sent %+v", committed, ms)
		}
		// A crash after the firing and the delivery does not repeat it.
		h.crash()
		h.advance(72 * time.Hour)
		h.expect()
		if s := h.stats("later"); s.Entered != 1 || s.Steps["hello"].Sent != 1 {
			t.Fatalf("committed %v: stats %+v", committed, s)
		}
	}
}

// Overdue timers after downtime fire at once, in due order.
func TestOverdueTimersFireInDueOrder(t *testing.T) {
	h := newHarness(t, journeyOf(t, waitDoc))
	for i, u := range []string{"c", "a", "b"} {
		h.send(h.ev(u, "Signed Up", "", time.Duration(i)*time.Minute))
	}
	h.flush()
	h.Clock.Advance(10 * 24 * time.Hour) // down for ten days
	h.Config.SendWorkers = 1             // one worker: deliveries in job order
	h.crash()
	var order []string
	h.Channels["email"].Fail = func(m *channel.Message, _ int) error {
		order = append(order, m.Recipient.Identifiers["userId"])
		return nil
	}
	if n, err := h.Runtime.FireDue(context.Background()); err != nil || n != 3 {
		t.Fatalf("fired %d, %v", n, err)
	}
	h.settle()
	if len(order) != 3 || order[0] != "c" || order[1] != "a" || order[2] != "b" {
		t.Fatalf("delivered in order %v, want the order of their due times", order)
	}
}

// flakyEngine fails the n-th Do call from now: a crash between a delivery
// and the transaction that records it.
type flakyEngine struct {
	Engine
	failIn atomic.Int32
}

var errCrash = errors.New("crash")

func (f *flakyEngine) Do(ctx context.Context, fn func(*profile.Tx) error) error {
	if f.failIn.Add(-1) == 0 {
		return errCrash
	}
	return f.Engine.Do(ctx, fn)
}

// A provider that drops repeats (a signed webhook) gets the message again
// after a crash between its answer and the record, with the same key.
func TestCrashBetweenDeliveryAndRecordResendsWithTheSameKey(t *testing.T) {
	h := newHarness(t, journeyOf(t, welcomeDoc))
	h.Channels["email"].DropsRepeats = true
	h.Runtime.lanes["email"].idem = true
	flaky := &flakyEngine{Engine: h.Engine}
	h.Runtime.cfg.Engine = flaky
	h.send(h.ev("ann", "Signed Up", "", 0))
	flaky.failIn.Store(1) // the record fails
	if _, err := h.Runtime.Deliver(context.Background()); !errors.Is(err, errCrash) {
		t.Fatalf("deliver: %v", err)
	}
	first := h.sent("email")
	h.crash()
	h.settle()
	again := h.sent("email")
	if len(first) != 1 || len(again) != 1 || first[0].IdempotencyKey != again[0].IdempotencyKey {
		t.Fatalf("first %+v, again %+v", first, again)
	}
	h.crash()
	h.settle()
	h.expect()
}

// Run: the timer loop and the dispatcher, on their own, with a fake clock.
func TestRunLoopFiresAndDelivers(t *testing.T) {
	h := newHarness(t, journeyOf(t, welcomeDoc))
	got := make(chan *channel.Message, 10)
	h.Channels["email"].Sent = got
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Runtime.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	wait := func(step string) {
		t.Helper()
		select {
		case m := <-got:
			if m.Step != step {
				t.Fatalf("got %s, want %s", m.Step, step)
			}
		case <-time.After(10 * time.Second): // a failure bound, not a synchronisation
			t.Fatalf("no %s", step)
		}
	}
	h.send(h.ev("ann", "Signed Up", "", 0))
	wait("hello") // delivered on the kick, without the clock moving
	// The loop sleeps until the timeout (48h + 5m of lateness) on the fake
	// clock; moving the clock wakes it.
	awaitWait(t, h.Clock, h.Clock.Now().Add(48*time.Hour+5*time.Minute))
	h.Clock.Advance(48*time.Hour + 5*time.Minute)
	wait("incentive")
}

func TestWebhookChannelSignsEndToEnd(t *testing.T) {
	secret := []byte("whsec")
	type req struct {
		sig, key string
		body     []byte
	}
	reqs := make(chan req, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		reqs <- req{r.Header.Get("Nudge-Signature"), r.Header.Get("Idempotency-Key"), b}
	}))
	defer srv.Close()
	js, err := LoadDir(examplesDir)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, js...)
	// The example's url is resolved against the channel's base URL: point
	// the journey at the local server through a relative url.
	wh, err := webhook.New(webhook.Config{URL: srv.URL, Secret: secret, Now: h.Clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	h.Runtime.channels["webhook"] = wh
	h.Runtime.lanes["webhook"] = newLane(wh, LaneConfig{}, 4)
	j := journeyOf(t, `
id: hook
trigger: {event: Product Viewed}
steps:
  - id: call
    send:
      channel: webhook
      content:
        url: /hooks/invite
        body: '{"user": {{ event.userId | json }}}'
`)
	if err := h.Runtime.SetJourneys(append(js, j)); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		h.send(h.ev("ann", "Product Viewed", `{"category":"shoes"}`, time.Duration(i)*time.Second))
	}
	h.Channels["webhook"].Take()
	// high-intent's absolute url is chat.example.com: that one fails and is
	// retried; the relative one reaches the server.
	if _, err := h.Runtime.Deliver(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := <-reqs
	if string(r.body) != `{"user": "ann"}` || r.key == "" {
		t.Fatalf("request %+v", r)
	}
	if err := webhook.Verify(secret, r.sig, r.body, h.Clock.Now(), 5*time.Minute); err != nil {
		t.Fatal(err)
	}
}
