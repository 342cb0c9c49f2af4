package journey

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nudge-dev/nudge"
	"github.com/nudge-dev/nudge/channel"
	"github.com/nudge-dev/nudge/profile"
)

const pingDoc = `
id: ping
trigger: {event: Ping}
reentry: every_time
steps:
  - id: hit
    send: {channel: email, content: {subject: hi, text: "hello {{ profile.traits.name }}"}}
`

// crashAfterSendEngine fails the engine transaction that records the
// outcome of a delivery (the one after the in-flight mark): the provider
// took the message, nudge died before writing it down.
type crashAfterSendEngine struct {
	Engine
	calls, failAt atomic.Int32
}

func (f *crashAfterSendEngine) Do(ctx context.Context, fn func(*profile.Tx) error) error {
	if f.calls.Add(1) == f.failAt.Load() {
		return errCrash
	}
	return f.Engine.Do(ctx, fn)
}

// A provider that does not drop repeats (SMTP) took a marketing message and
// nudge crashed before recording it: after the restart it is not sent again
// (at most once), but dead-lettered as in doubt and counted.
func TestInFlightMarketingSendIsNotRepeatedAfterACrash(t *testing.T) {
	h := newHarness(t, journeyOf(t, pingDoc))
	h.send(h.ev("ann", "Ping", "", 0))
	crashy := &crashAfterSendEngine{Engine: h.Engine}
	crashy.failAt.Store(2) // 1: the in-flight mark, 2: the outcome
	h.Runtime.cfg.Engine = crashy
	if _, err := h.Runtime.Deliver(context.Background()); !errors.Is(err, errCrash) {
		t.Fatalf("deliver: %v", err)
	}
	if got := h.sent("email"); len(got) != 1 {
		t.Fatalf("sent %d before the crash", len(got))
	}
	h.crash()
	h.settle()
	h.advance(time.Hour)
	if got := h.sent("email"); len(got) != 0 {
		t.Fatalf("sent again after the crash: %+v", got)
	}
	if s := h.stats("ping").Steps["hit"]; s.InDoubt != 1 || s.Sent != 0 {
		t.Fatalf("stats %+v", s)
	}
	dls, _, err := h.Runtime.DeadLetters(context.Background(), "", 10)
	if err != nil || len(dls) != 1 || !strings.HasPrefix(dls[0].Error, "in doubt") {
		t.Fatalf("dead letters %+v, %v", dls, err)
	}
}

// A transactional message in flight at a crash is sent again (at least
// once), with the same key.
func TestInFlightTransactionalSendIsRepeatedAfterACrash(t *testing.T) {
	h := newHarness(t, journeyOf(t, strings.Replace(pingDoc, "channel: email,", "channel: email, transactional: true,", 1)))
	h.send(h.ev("ann", "Ping", "", 0))
	crashy := &crashAfterSendEngine{Engine: h.Engine}
	crashy.failAt.Store(2)
	h.Runtime.cfg.Engine = crashy
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
	if s := h.stats("ping").Steps["hit"]; s.Sent != 1 || s.InDoubt != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// A failure for good goes to the dead-letter queue; redriven, the message
// is sent; discarded, it is gone.
func TestDeadLetterRedriveAndDiscard(t *testing.T) {
	h := newHarness(t, journeyOf(t, pingDoc))
	var down atomic.Bool
	down.Store(true)
	h.Channels["email"].Fail = func(*channel.Message, int) error {
		if down.Load() {
			return channel.Permanent(errors.New("550 mailbox unavailable"))
		}
		return nil
	}
	h.send(h.ev("ann", "Ping", "", 0), h.ev("bob", "Ping", "", time.Second))
	h.settle()
	ctx := context.Background()
	dls, next, err := h.Runtime.DeadLetters(ctx, "", 1)
	if err != nil || len(dls) != 1 || next == "" || h.Runtime.DeadLetterCount() != 2 {
		t.Fatalf("page 1: %+v next %q, %v (count %d)", dls, next, err, h.Runtime.DeadLetterCount())
	}
	rest, next2, err := h.Runtime.DeadLetters(ctx, next, 10)
	if err != nil || len(rest) != 1 || next2 != "" || rest[0].ID == dls[0].ID {
		t.Fatalf("page 2: %+v next %q, %v", rest, next2, err)
	}
	if dls[0].Step != "hit" || dls[0].Channel != "email" || dls[0].Attempts != 1 || !strings.Contains(dls[0].Error, "550") {
		t.Fatalf("dead letter %+v", dls[0])
	}
	full, err := h.Runtime.DeadLetterByID(ctx, dls[0].ID)
	if err != nil || full.Message == nil || full.Message.Fields["subject"] != "hi" {
		t.Fatalf("by id: %+v, %v", full, err)
	}
	down.Store(false)
	if err := h.Runtime.Redrive(ctx, dls[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := h.Runtime.Redrive(ctx, dls[0].ID); !errors.Is(err, ErrNoDeadLetter) {
		t.Fatalf("second redrive: %v", err)
	}
	h.settle()
	if got := h.sent("email"); len(got) != 1 || got[0].IdempotencyKey != full.Message.IdempotencyKey {
		t.Fatalf("redriven: %+v", got)
	}
	if err := h.Runtime.Discard(ctx, rest[0].ID); err != nil {
		t.Fatal(err)
	}
	if all, _, _ := h.Runtime.DeadLetters(ctx, "", 10); len(all) != 0 || h.Runtime.DeadLetterCount() != 0 {
		t.Fatalf("left: %+v (count %d)", all, h.Runtime.DeadLetterCount())
	}
	if s := h.stats("ping").Steps["hit"]; s.Failed != 2 || s.Sent != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// Retries wait at least what the provider asked for, and stop at MaxAge.
func TestRetryAfterIsHonouredAndAgeBounded(t *testing.T) {
	h := newHarness(t, journeyOf(t, pingDoc))
	h.Config.MaxAge = 2 * time.Hour
	// The breaker counts real time, not the fake clock's: keep it closed.
	h.Config.Lanes = map[string]LaneConfig{"email": {BreakerFailures: 100}}
	h.crash()
	var attempts []time.Time
	h.Channels["email"].Fail = func(*channel.Message, int) error {
		attempts = append(attempts, h.Clock.Now())
		return channel.Retryable(errors.New("429 slow down"), 20*time.Minute)
	}
	h.send(h.ev("ann", "Ping", "", 0))
	h.settle()
	for range 40 {
		h.advance(5 * time.Minute)
	}
	if len(attempts) < 3 {
		t.Fatalf("attempts at %v", attempts)
	}
	for i := 1; i < len(attempts); i++ {
		if gap := attempts[i].Sub(attempts[i-1]); gap < 20*time.Minute {
			t.Fatalf("attempt %d came %s after the one before, under the 20m the provider asked for", i, gap)
		}
	}
	if last := attempts[len(attempts)-1]; last.Sub(attempts[0]) >= 2*time.Hour {
		t.Fatalf("attempted at %s, past the 2h age bound", last.Sub(attempts[0]))
	}
	if h.Runtime.DeadLetterCount() != 1 {
		t.Fatalf("dead letters: %d (attempts at %v)", h.Runtime.DeadLetterCount(), attempts)
	}
}

func TestBackoffDoublesWithJitter(t *testing.T) {
	rt := &Runtime{cfg: Config{RetryMin: time.Second, RetryMax: time.Minute}}
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 4: 8 * time.Second, 10: time.Minute} {
		seen := map[time.Duration]bool{}
		for range 200 {
			d := rt.backoff(n, 0)
			if d < want/2 || d > want {
				t.Fatalf("backoff(%d) = %s, want within [%s, %s]", n, d, want/2, want)
			}
			seen[d] = true
		}
		if len(seen) < 10 {
			t.Fatalf("backoff(%d) took %d values in 200 draws: no jitter", n, len(seen))
		}
	}
	if d := rt.backoff(1, 90*time.Second); d != 90*time.Second {
		t.Fatalf("backoff under Retry-After 90s: %s", d)
	}
}

// After BreakerFailures retryable failures in a row the channel's circuit
// opens: its jobs are put off without reaching the provider.
func TestCircuitBreakerHoldsAFailingChannel(t *testing.T) {
	h := newHarness(t, journeyOf(t, pingDoc))
	h.Config.Lanes = map[string]LaneConfig{"email": {BreakerFailures: 3, BreakerOpen: time.Hour}}
	h.Config.RetryMin, h.Config.RetryMax = time.Second, time.Second
	h.crash()
	var calls atomic.Int32
	h.Channels["email"].Fail = func(*channel.Message, int) error {
		calls.Add(1)
		return channel.Retryable(errors.New("503"), 0)
	}
	for i := range 6 {
		h.send(h.ev(fmt.Sprint("u", i), "Ping", "", 0))
	}
	h.Runtime.cfg.SendWorkers = 1
	h.settle()
	for range 5 {
		h.advance(2 * time.Second)
	}
	if n := calls.Load(); n != 3 {
		t.Fatalf("the provider was called %d times, want 3 before the circuit opened", n)
	}
	if s := h.stats("ping").Steps["hit"]; s.Failed != 0 || s.Sent != 0 {
		t.Fatalf("stats %+v: put-off jobs are neither sent nor failed", s)
	}
}

// Frequency caps hold across journeys; transactional messages are exempt.
func TestFrequencyCap(t *testing.T) {
	other := journeyOf(t, strings.NewReplacer("id: ping", "id: pong", "event: Ping", "event: Pong").Replace(pingDoc))
	receipt := journeyOf(t, strings.NewReplacer("id: ping", "id: receipt", "event: Ping", "event: Paid", "channel: email,", "channel: email, transactional: true,").Replace(pingDoc))
	h := newHarness(t, journeyOf(t, pingDoc), other, receipt)
	h.Config.Caps = []Cap{{Max: 2, Per: 24 * time.Hour}, {Channel: "email", Max: 1, Per: 4 * time.Hour}}
	h.crash()
	h.send(h.ev("ann", "Ping", "", 0))
	h.settle()
	h.send(h.ev("ann", "Pong", "", time.Minute)) // within 4h of the first email
	h.send(h.ev("ann", "Paid", "", 2*time.Minute))
	h.settle()
	if got := h.sent("email"); len(got) != 2 || got[1].Journey != "receipt" {
		t.Fatalf("sent %d", len(got))
	}
	h.advance(5 * time.Hour)
	h.send(h.ev("ann", "Pong", "", 5*time.Hour)) // second of the day: passes
	h.settle()
	h.advance(5 * time.Hour)
	h.send(h.ev("ann", "Ping", "", 10*time.Hour)) // third of the day: capped
	h.settle()
	if got := h.sent("email"); len(got) != 1 || got[0].Journey != "pong" {
		t.Fatalf("sent %+v", got)
	}
	if s := h.stats("pong").Steps["hit"]; s.Capped != 1 || s.Queued != 1 {
		t.Fatalf("pong stats %+v", s)
	}
	if s := h.stats("ping").Steps["hit"]; s.Capped != 1 || s.Queued != 1 {
		t.Fatalf("ping stats %+v", s)
	}
}

// Quiet hours in the customer's time zone: deferred to their end, or
// skipped.
func TestQuietHours(t *testing.T) {
	doc := strings.Replace(pingDoc, "reentry: every_time", "reentry: every_time\nquiet_hours: {from: \"21:00\", to: \"08:00\"}", 1)
	h := newHarness(t, journeyOf(t, doc), journeyOf(t, strings.NewReplacer("id: ping", "id: pong", "event: Ping", "event: Pong",
		`to: "08:00"}`, `to: "08:00", action: skip}`).Replace(doc)))
	// hT0 is 09:00 UTC: 22:00 in Auckland (UTC+13 in March), quiet.
	h.send(h.identify("ann", `{"timezone": "Pacific/Auckland"}`))
	h.send(h.ev("ann", "Ping", "", time.Second), h.ev("ann", "Pong", "", time.Second))
	h.settle()
	if got := h.sent("email"); len(got) != 0 {
		t.Fatalf("sent in quiet hours: %+v", got)
	}
	h.advance(9*time.Hour + 59*time.Minute) // 07:59 in Auckland
	if got := h.sent("email"); len(got) != 0 {
		t.Fatalf("sent at 07:59: %+v", got)
	}
	h.advance(time.Minute)
	if got := h.sent("email"); len(got) != 1 || got[0].Journey != "ping" {
		t.Fatalf("at 08:00 sent %+v", got)
	}
	if s := h.stats("ping").Steps["hit"]; s.Deferred != 1 || s.Sent != 1 {
		t.Fatalf("ping stats %+v", s)
	}
	if s := h.stats("pong").Steps["hit"]; s.Quiet != 1 || s.Queued != 0 {
		t.Fatalf("pong stats %+v", s)
	}
	// Bob has no time zone: UTC, 19:00, not quiet.
	h.send(h.ev("bob", "Ping", "", 10*time.Hour))
	h.settle()
	if got := h.sent("email"); len(got) != 1 {
		t.Fatalf("bob: %+v", got)
	}
}

// An unsubscribe from the channel, or from the step's group, stops the next
// marketing send.
func TestUnsubscribedGroupIsSuppressed(t *testing.T) {
	h := newHarness(t, journeyOf(t, strings.Replace(pingDoc, "channel: email,", "channel: email, group: news,", 1)))
	h.send(h.ev("ann", "Ping", "", 0))
	h.settle()
	if got := h.sent("email"); len(got) != 1 {
		t.Fatalf("sent %d", len(got))
	}
	h.send(h.ev("ann", "Unsubscribed", `{"channel": "email", "group": "news"}`, time.Minute))
	h.send(h.ev("ann", "Ping", "", 2*time.Minute))
	h.settle()
	if got := h.sent("email"); len(got) != 0 {
		t.Fatalf("sent after the unsubscribe: %+v", got)
	}
	if s := h.stats("ping").Steps["hit"]; s.Suppressed != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// One channel's provider hanging does not hold up another's sends.
func TestAHangingChannelDoesNotDelayOthers(t *testing.T) {
	sms := strings.NewReplacer("id: ping", "id: text", "event: Ping", "event: Text", "channel: email", "channel: sms").Replace(pingDoc)
	h := newHarness(t, journeyOf(t, pingDoc), journeyOf(t, sms))
	release := make(chan struct{})
	h.Channels["sms"].Fail = func(*channel.Message, int) error {
		<-release
		return nil
	}
	got := make(chan *channel.Message, 100)
	h.Channels["email"].Sent = got
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Runtime.Run(ctx) }()
	defer func() {
		close(release)
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	for i := range 40 { // more than the sms lane's workers and queue
		h.send(h.ev(fmt.Sprint("t", i), "Text", "", 0))
	}
	for i := range 5 {
		h.send(h.ev(fmt.Sprint("e", i), "Ping", "", 0))
		select {
		case <-got:
		case <-time.After(10 * time.Second): // a failure bound, not a synchronisation
			t.Fatalf("email %d not delivered while sms hangs", i)
		}
	}
}

// The pending timers are counted as runs arm and fire them, and each
// firing reports how late it was.
func TestTimersPendingAndLateness(t *testing.T) {
	h := newHarness(t, journeyOf(t, `
id: later
trigger: {event: Ping}
steps:
  - {id: w, wait: {duration: 1h}}
  - id: hit
    send: {channel: email, content: {subject: hi, text: x}}
`))
	var late []time.Duration
	h.Config.TimerFired = func(d time.Duration) { late = append(late, d) }
	h.crash()
	h.send(h.ev("ann", "Ping", "", 0), h.ev("bob", "Ping", "", 0))
	h.settle()
	if n := h.Runtime.TimersPending(); n != 2 {
		t.Fatalf("pending %d, want 2", n)
	}
	h.crash() // counted again from the store
	if n := h.Runtime.TimersPending(); n != 2 {
		t.Fatalf("pending after a restart %d, want 2", n)
	}
	h.Config.TimerFired = func(d time.Duration) { late = append(late, d) }
	h.crash()
	h.advance(90 * time.Minute)
	if n := h.Runtime.TimersPending(); n != 0 || len(late) != 2 || late[0] != 30*time.Minute {
		t.Fatalf("pending %d, lateness %v", n, late)
	}
	tot := h.Runtime.Totals()
	if len(tot) != 1 || tot[0].Journey != "later" || tot[0].Entered != 2 || tot[0].Exits["completed"] != 2 {
		t.Fatalf("totals %+v", tot)
	}
}

// A marketing send needs the customer's consent category (marketing by
// default) not to be refused; a transactional one does not.
func TestConsentIsHonoured(t *testing.T) {
	receipt := journeyOf(t, strings.NewReplacer("id: ping", "id: receipt", "event: Ping", "event: Paid", "channel: email,", "channel: email, transactional: true,").Replace(pingDoc))
	ads := journeyOf(t, strings.NewReplacer("id: ping", "id: ads", "event: Ping", "event: Browse", "channel: email,", "channel: email, consent: Advertising,").Replace(pingDoc))
	h := newHarness(t, journeyOf(t, pingDoc), receipt, ads)
	consent := func(prefs string) string {
		return `{"type":"identify","userId":"ann","context":{"consent":{"categoryPreferences":` + prefs + `}}}`
	}
	var e nudge.Event
	if err := json.Unmarshal([]byte(consent(`{"Marketing": false, "Advertising": true}`)), &e); err != nil {
		t.Fatal(err)
	}
	e.MessageID, e.Timestamp = "c1", h.Clock.Now()
	h.send(e)
	h.send(h.ev("ann", "Ping", "", time.Second), h.ev("ann", "Paid", "", time.Second), h.ev("ann", "Browse", "", time.Second))
	h.settle()
	got := h.sent("email")
	if len(got) != 2 || got[0].Journey == "ping" || got[1].Journey == "ping" {
		t.Fatalf("sent %+v", got)
	}
	if s := h.stats("ping").Steps["hit"]; s.Suppressed != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// Sends, and the feedback about them, are counted per split variant too.
func TestVariantDeliveryStats(t *testing.T) {
	h := newHarness(t, journeyOf(t, `
id: ab
trigger: {event: Ping}
steps:
  - id: pick
    split:
      variants:
        - {name: "short: text", weight: 1, next: a}
        - {name: long, weight: 1, next: b}
  - id: a
    send: {channel: email, content: {subject: a, text: a}}
    next: done
  - id: b
    send: {channel: email, content: {subject: b, text: b}}
    next: done
  - {id: done, exit: {}}
`))
	for i := range 20 {
		h.send(h.ev(fmt.Sprint("u", i), "Ping", "", 0))
	}
	h.settle()
	sent := h.sent("email")
	byVariant := map[string]int64{}
	for _, m := range sent {
		byVariant[m.Variant]++
		o, ok := channel.ParseMessageKey(m.IdempotencyKey)
		if !ok || o.Journey != "ab" || o.Variant != m.Variant || o.Step != m.Step {
			t.Fatalf("key %q parses to %+v", m.IdempotencyKey, o)
		}
	}
	m := sent[0]
	h.send(h.ev(m.Recipient.Identifiers["userId"], "Email Opened",
		fmt.Sprintf(`{"channel": "email", "message_key": %q}`, m.IdempotencyKey), time.Minute))
	h.settle()
	st := h.stats("ab")
	for name, n := range byVariant {
		v := st.Variants[name]
		if v.Entered != n || v.Queued != n || v.Sent != n {
			t.Fatalf("variant %q: %+v, want %d entered, queued and sent", name, v, n)
		}
	}
	if len(byVariant) != 2 || st.Variants[m.Variant].Opened != 1 || st.Steps[m.Step].Opened != 1 {
		t.Fatalf("variants %+v, steps %+v", st.Variants, st.Steps)
	}
}

// A message put off by quiet hours is checked again when they end: an
// unsubscribe meanwhile stops it.
func TestDeferredSendRechecksTheCustomersWishes(t *testing.T) {
	doc := strings.Replace(pingDoc, "reentry: every_time", "reentry: every_time\nquiet_hours: {from: \"21:00\", to: \"08:00\"}", 1)
	h := newHarness(t, journeyOf(t, doc))
	h.send(h.identify("ann", `{"timezone": "Pacific/Auckland"}`)) // 22:00 there
	h.send(h.ev("ann", "Ping", "", time.Second))
	h.settle()
	h.send(h.ev("ann", "Unsubscribed", `{"channel": "email"}`, time.Minute))
	h.advance(10 * time.Hour) // 08:00 there and later
	if got := h.sent("email"); len(got) != 0 {
		t.Fatalf("sent after the unsubscribe: %+v", got)
	}
	if s := h.stats("ping").Steps["hit"]; s.Deferred != 1 || s.Suppressed != 1 || s.Sent != 0 {
		t.Fatalf("stats %+v", s)
	}
	if n := h.countKeys(prefixJob); n != 0 {
		t.Fatalf("%d jobs left", n)
	}
}

// A scan raises the job floor to the first key it saw, but not past a key
// committed while it ran (its snapshot may have missed it), even one above
// where it started; a nil floor (the start) is not moved up by a commit.
func TestFloorIsNotRaisedPastAKeyCommittedDuringAScan(t *testing.T) {
	var f keyFloor
	f.lower([]byte("jq/m"))
	if f.get() != nil {
		t.Fatalf("a commit moved the start floor to %q", f.get())
	}
	f.raise([]byte("jq/a"))
	f.begin()
	f.lower([]byte("jq/m")) // committed during the scan, above the floor
	f.end([]byte("jq0"))
	if got := string(f.get()); got != "jq/m" {
		t.Fatalf("floor %q after a scan that missed jq/m", got)
	}
	f.begin()
	f.end([]byte("jq/z"))
	if got := string(f.get()); got != "jq/z" {
		t.Fatalf("floor %q after a quiet scan", got)
	}
}

// The unsubscribe that feedback publishes is the event profiles read as one.
func TestFeedbackUnsubscribeIsTheProfilesUnsubscribe(t *testing.T) {
	if channel.Unsubscribed.Event() != profile.Unsubscribed {
		t.Fatalf("%q is not %q", channel.Unsubscribed.Event(), profile.Unsubscribed)
	}
}
