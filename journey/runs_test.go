package journey

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/nudge-dev/nudge/channel"
)

func TestWaitForJustBeforeAndJustAfterTimeout(t *testing.T) {
	j := journeyOf(t, welcomeDoc)
	for _, tc := range []struct {
		name   string
		offset time.Duration // of the order's event time from the timeout
		arrive time.Duration // when it arrives, from the timeout
		want   string
	}{
		{"just before", -time.Millisecond, -time.Millisecond, "email:hello"},
		{"just before, arriving late", -time.Millisecond, 4 * time.Minute, "email:hello"},
		{"just after", time.Millisecond, time.Millisecond, "email:hello email:incentive"},
		{"just after, arriving before the lateness ends", time.Millisecond, -time.Second, "email:hello email:incentive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, j)
			h.send(h.ev("u1", "Signed Up", "", 0))
			h.settle()
			timeout := 48 * time.Hour
			h.advance(timeout + tc.arrive)
			order := h.ev("u1", "Order Completed", "", tc.offset-tc.arrive)
			h.send(order)
			h.advance(10 * time.Minute)
			h.expect(strings.Fields(tc.want)...)
			s := h.stats("welcome")
			if tc.offset < 0 && (s.Exits["purchased"] != 1 || s.Conversions != 1) {
				t.Fatalf("stats %+v", s)
			}
			if tc.offset > 0 && s.Exits["completed"] != 1 {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

const cartDoc = `
id: cart
trigger:
  event: Checkout Started
key: event.properties.cart_id
reentry: every_time
exit_on:
  - event: Order Completed
    correlate: cart_id
steps:
  - id: remind
    send: {channel: sms, content: {body: "cart {{ trigger.properties.cart_id }}"}}
  - id: wait
    wait: {duration: 1h}
  - id: again
    send: {channel: sms, content: {body: "still {{ trigger.properties.cart_id }}"}}
`

func TestExitOnAndKeyedRuns(t *testing.T) {
	h := newHarness(t, journeyOf(t, cartDoc))
	h.send(h.ev("u1", "Checkout Started", `{"cart_id":"a"}`, 0))
	h.send(h.ev("u1", "Checkout Started", `{"cart_id":"b"}`, 0))
	h.send(h.ev("u1", "Checkout Started", `{"cart_id":"a"}`, 0)) // a is active: skipped
	h.settle()
	h.expect("sms:remind", "sms:remind")
	h.send(h.ev("u1", "Order Completed", `{"cart_id":"a"}`, time.Minute))
	// An order that happened before the run's trigger does not end it.
	h.send(h.ev("u1", "Order Completed", `{"cart_id":"b"}`, -time.Minute))
	h.advance(time.Hour)
	msgs := h.sent("sms")
	if len(msgs) != 1 || msgs[0].Fields["body"] != "still b" {
		t.Fatalf("sent %+v", msgs)
	}
	s := h.stats("cart")
	if s.Entered != 2 || s.Skipped["active"] != 1 || s.Exits["exit_on:Order Completed"] != 1 || s.Exits["completed"] != 1 {
		t.Fatalf("stats %+v", s)
	}
	// every_time: a new run of cart a starts now that none is active.
	h.send(h.ev("u1", "Checkout Started", `{"cart_id":"a"}`, 0))
	h.settle()
	h.expect("sms:remind")
}

func TestReentryRules(t *testing.T) {
	doc := func(reentry string) *Journey {
		return journeyOf(t, fmt.Sprintf(`
id: r
trigger: {event: Ping}
reentry: %s
steps:
  - id: hit
    send: {channel: log, content: {body: x}}
`, reentry))
	}
	for _, tc := range []struct {
		reentry string
		want    int
	}{
		{"once", 1},
		{"every_time", 4},
		{"{after: 2h}", 2}, // at 0 and 3h; 1h and 2h59m are within the cooldown
	} {
		h := newHarness(t, doc(tc.reentry))
		for _, at := range []time.Duration{0, time.Hour, 2*time.Hour + 59*time.Minute, 3 * time.Hour} {
			h.send(h.ev("u1", "Ping", "", at))
		}
		h.settle()
		if got := len(h.sent("log")); got != tc.want {
			t.Errorf("reentry %s: %d runs, want %d", tc.reentry, got, tc.want)
		}
	}
	// A run that is still active blocks every rule.
	h := newHarness(t, journeyOf(t, `
id: r
trigger: {event: Ping}
reentry: every_time
steps:
  - id: w
    wait: {duration: 1h}
  - id: hit
    send: {channel: log, content: {body: x}}
`))
	h.send(h.ev("u1", "Ping", "", 0), h.ev("u1", "Ping", "", time.Second))
	h.advance(time.Hour)
	h.expect("log:hit")
}

func TestGoalConversionWithinTheWindow(t *testing.T) {
	h := newHarness(t, journeyOf(t, `
id: g
trigger: {event: Signed Up}
goal:
  event: Order Completed
  if: event.properties.total > 10
  within: 3d
steps:
  - id: hello
    send: {channel: log, content: {body: x}}
`))
	h.send(h.ev("a", "Signed Up", "", 0), h.ev("b", "Signed Up", "", 0), h.ev("c", "Signed Up", "", 0))
	h.settle()
	h.advance(2 * 24 * time.Hour)
	// The run of a ended long ago (after its one step): the conversion
	// still counts, once.
	h.send(h.ev("a", "Order Completed", `{"total": 20}`, 0), h.ev("a", "Order Completed", `{"total": 20}`, 0))
	h.send(h.ev("b", "Order Completed", `{"total": 5}`, 0))
	h.advance(2 * 24 * time.Hour)
	h.send(h.ev("c", "Order Completed", `{"total": 20}`, 0)) // after the window
	if s := h.stats("g"); s.Conversions != 1 || s.Entered != 3 {
		t.Fatalf("stats %+v", s)
	}
}

func TestSplitDeterministicPerCustomer(t *testing.T) {
	doc := `
id: ab
trigger: {event: Ping}
reentry: every_time
steps:
  - id: pick
    split:
      holdout: 0.2
      variants:
        - {name: a, weight: 1, next: send-a}
        - {name: b, weight: 3, next: send-b}
  - id: send-a
    send: {channel: log, content: {body: a}}
    next: done
  - id: send-b
    send: {channel: log, content: {body: b}}
  - id: done
    exit: {}
`
	h := newHarness(t, journeyOf(t, doc))
	const n = 2000
	first := map[string]string{}
	for round := range 2 {
		for i := range n {
			h.send(h.ev(fmt.Sprint("user-", i), "Ping", "", 0))
		}
		h.settle()
		got := map[string]string{}
		for _, m := range h.sent("log") {
			got[m.Recipient.Identifiers["userId"]] = m.Variant
		}
		if round == 0 {
			first = got
			continue
		}
		if len(got) != len(first) {
			t.Fatalf("round 2 sent %d, round 1 %d", len(got), len(first))
		}
		for u, v := range got {
			if first[u] != v {
				t.Fatalf("%s took %s, then %s", u, first[u], v)
			}
		}
	}
	s := h.stats("ab")
	va, vb, vh := s.Variants["a"].Entered, s.Variants["b"].Entered, s.Variants["holdout"].Entered
	if va+vb+vh != 2*n || s.Exits["holdout"] != vh {
		t.Fatalf("stats %+v", s)
	}
	frac := func(x int64, want float64) bool { return math.Abs(float64(x)/(2*n)-want) < 0.04 }
	if !frac(vh, 0.2) || !frac(va, 0.2) || !frac(vb, 0.6) {
		t.Fatalf("variants a %d, b %d, holdout %d of %d", va, vb, vh, 2*n)
	}
	// The variant is a function of the journey, the step and the profile
	// id only: after a restart, the same.
	h.crash()
	h.send(h.ev("user-7", "Ping", "", 0))
	h.settle()
	m := h.sent("log")
	split := h.Journeys[0].Step("pick").Split
	want := ""
	if i := split.Choose(splitU("ab", "pick", h.find("user-7").ID.P.String())); i >= 0 {
		want = split.Variants[i].Name
	}
	if want != first["user-7"] || (len(m) == 1) != (want != "") || (len(m) == 1 && m[0].Variant != want) {
		t.Fatalf("user-7: sent %+v, want variant %q (first time %q)", m, want, first["user-7"])
	}
}

func TestUpdateStepSetsTraits(t *testing.T) {
	h := newHarness(t, journeyOf(t, `
id: tier
trigger: {event: Order Completed}
steps:
  - id: mark
    update:
      set:
        tier: gold
        old: null
        since: {expr: "event.timestamp"}
        spent: {expr: "profile.revenue"}
  - id: tell
    send: {channel: log, content: {body: "{{ profile.traits.tier }} {{ profile.traits.spent }}"}}
`))
	h.send(h.identify("u1", `{"old": "x", "tier": "bronze"}`))
	o := h.ev("u1", "Order Completed", `{"revenue": 42.5}`, time.Second)
	h.send(o)
	h.settle()
	if m := h.sent("log"); len(m) != 1 || m[0].Fields["body"] != "gold 42.5" {
		t.Fatalf("sent %+v", m)
	}
	h.flush()
	p := h.find("u1")
	tr := p.State.Traits
	if string(tr["tier"].Value) != `"gold"` || string(tr["old"].Value) != "null" || string(tr["since"].Value) != `"`+o.Timestamp.Format(time.RFC3339Nano)+`"` {
		t.Fatalf("traits %v", tr)
	}
}

func TestRunFinishesOnItsVersion(t *testing.T) {
	v1 := journeyOf(t, `
id: v
version: 1
trigger: {event: Ping}
reentry: every_time
steps:
  - id: w
    wait: {duration: 1h}
  - id: old
    send: {channel: log, content: {body: one}}
`)
	v2 := journeyOf(t, `
id: v
version: 2
trigger: {event: Ping}
reentry: every_time
steps:
  - id: w
    wait: {duration: 1h}
  - id: new
    send: {channel: log, content: {body: two}}
`)
	h := newHarness(t, v1)
	h.send(h.ev("a", "Ping", "", 0))
	if err := h.Runtime.SetJourneys([]*Journey{v1, v2}); err != nil {
		t.Fatal(err)
	}
	h.send(h.ev("b", "Ping", "", 0))
	h.advance(time.Hour)
	h.expect("log:old", "log:new")
	// Dropping v1 ends its runs when they wake.
	h.send(h.ev("a", "Ping", "", 0))
	h.send(h.ev("c", "Ping", "", 0))
	h.settle()
	if err := h.Runtime.SetJourneys([]*Journey{v1, v2}); err != nil {
		t.Fatal(err)
	}
	view, _ := h.Runtime.Stats("v")
	if len(view.Versions) != 2 || view.Versions[0].Entered != 1 || view.Versions[1].Entered != 3 {
		t.Fatalf("stats %+v", view)
	}
	if err := h.Runtime.SetJourneys([]*Journey{v2}); err != nil {
		t.Fatal(err)
	}
	h.advance(time.Hour)
	h.expect("log:new", "log:new")
}

func TestMergeMovesRunsAndErasureDropsThem(t *testing.T) {
	h := newHarness(t, journeyOf(t, `
id: m
trigger: {event: Ping}
steps:
  - id: w
    wait: {duration: 1h}
  - id: hit
    send: {channel: log, content: {body: "{{ profile.traits.name }}"}}
`))
	anon := h.ev("", "Ping", "", 0)
	anon.AnonymousID = "device-1"
	h.send(anon)
	login := h.identify("ann", `{"name":"Ann"}`)
	login.AnonymousID = "device-1"
	h.send(login)
	h.advance(time.Hour)
	m := h.sent("log")
	if len(m) != 1 || m[0].Fields["body"] != "Ann" || m[0].Recipient.Identifiers["userId"] != "ann" {
		t.Fatalf("sent %+v", m)
	}
	// Erasure: the pending run, its timer and its queued message go.
	h.send(h.ev("bob", "Ping", "", 0))
	h.flush()
	if _, err := h.Engine.Erase(context.Background(), "bob"); err != nil {
		t.Fatal(err)
	}
	if n := h.countKeys(prefixTimer) + h.countKeys(prefixRecord); n != 1 { // ann's record stays (run ended, "once")
		t.Fatalf("%d keys left", n)
	}
	h.advance(2 * time.Hour)
	h.expect()
}

func TestSendRetriesThenGivesUp(t *testing.T) {
	h := newHarness(t, journeyOf(t, `
id: s
trigger: {event: Ping}
reentry: every_time
steps:
  - id: hit
    send: {channel: log, content: {body: x}}
`))
	h.Channels["log"].Fail = func(m *channel.Message, n int) error {
		if m.Recipient.Identifiers["userId"] == "bad" {
			return channel.Permanent(fmt.Errorf("no such address"))
		}
		if n <= 3 {
			return channel.Retryable(fmt.Errorf("busy"), 30*time.Second)
		}
		return nil
	}
	h.send(h.ev("good", "Ping", "", 0))
	h.settle()
	h.expect()
	for range 3 {
		h.advance(30 * time.Second)
	}
	h.advance(10 * time.Minute)
	m := h.sent("log")
	if len(m) != 1 {
		t.Fatalf("sent %d", len(m))
	}
	h.send(h.ev("bad", "Ping", "", 0))
	h.advance(time.Hour)
	s := h.stats("s").Steps["hit"]
	if s.Sent != 1 || s.Retried != 3 || s.Failed != 1 || s.Queued != 2 {
		t.Fatalf("stats %+v", s)
	}
}

func TestTemplateErrorsFailAtLoad(t *testing.T) {
	_, err := Parse("bad.yaml", []byte(`
id: bad
trigger: {event: Ping}
steps:
  - id: s
    send:
      channel: email
      content:
        subject: "{% if profile.orders > 1 %}Hi again"
        body: |
          line one
          {% for x in profile.cart %}
          no end
`))
	got := errorList(err)
	if len(got) != 2 || got[0] != `bad.yaml:9: steps[0].send.content.subject: the template does not parse: unterminated "if" block in {% if profile.orders > 1 %}` ||
		got[1] != `bad.yaml:12: steps[0].send.content.body: the template does not parse: unterminated "for" block in {% for x in profile.cart %}` {
		t.Fatalf("errors:\n%s", strings.Join(got, "\n"))
	}
}

func TestWaitUntilTraitAndLocalTime(t *testing.T) {
	h := newHarness(t, journeyOf(t, `
id: trial
trigger: {event: Trial Started}
reentry: every_time
steps:
  - id: before-end
    wait: {until_trait: trial_ends_at, offset: -1d}
  - id: remind
    send: {channel: log, content: {body: x}}
  - id: morning
    wait: {until_local_time: "09:30", timezone: America/New_York}
  - id: hello
    send: {channel: log, content: {body: y}}
`))
	end := h.Clock.Now().Add(10 * 24 * time.Hour)
	h.send(h.identify("a", fmt.Sprintf(`{"trial_ends_at": %q}`, end.Format(time.RFC3339))))
	h.send(h.identify("b", fmt.Sprintf(`{"trial_ends_at": %d}`, end.Unix())))
	h.send(h.identify("c", `{"trial_ends_at": "2001-01-01T00:00:00Z"}`)) // past: at once
	e := h.ev("d", "Trial Started", "", 0)                               // no trait: at once
	e.Context = json.RawMessage(`{"timezone":"Asia/Tokyo"}`)
	h.send(h.ev("a", "Trial Started", "", 0), h.ev("b", "Trial Started", "", 0), h.ev("c", "Trial Started", "", 0), e)
	h.settle()
	h.expect("log:remind", "log:remind")
	// It is 09:00 UTC. c has no time zone: 09:30 in New York (EST, UTC-5)
	// is 14:30 UTC; d's is Tokyo: 09:30 there is 00:30 UTC tomorrow.
	h.advance(5*time.Hour + 30*time.Minute - time.Second)
	h.expect()
	h.advance(time.Second)
	h.expect("log:hello")
	h.advance(10 * time.Hour)
	h.expect("log:hello")
	h.advance(9*24*time.Hour - 15*time.Hour - 30*time.Minute - time.Second)
	h.expect()
	h.advance(time.Second)
	h.expect("log:remind", "log:remind")
}

func TestErasureDropsQueuedMessages(t *testing.T) {
	h := newHarness(t, journeyOf(t, welcomeDoc))
	h.send(h.ev("eve", "Signed Up", "", 0), h.ev("ann", "Signed Up", "", 0))
	if _, err := h.Engine.Erase(context.Background(), "eve"); err != nil {
		t.Fatal(err)
	}
	h.settle()
	ms := h.sent("email")
	if len(ms) != 1 || ms[0].Recipient.Identifiers["userId"] != "ann" {
		t.Fatalf("sent %+v", ms)
	}
	h.advance(72 * time.Hour)
	if ms := h.sent("email"); len(ms) != 1 || ms[0].Recipient.Identifiers["userId"] != "ann" {
		t.Fatalf("sent %+v", ms)
	}
}
