package journey

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nudge-dev/nudge"
	"github.com/nudge-dev/nudge/profile"
)

func logJourney(id, trigger string, extra string) string {
	return fmt.Sprintf("id: %s\nreentry: every_time\ntrigger:\n%s\n%s\nsteps:\n  - id: hit\n    send: {channel: log, content: {body: \"{{ event.messageId }}\"}}\n", id, trigger, extra)
}

func TestEventTriggerFilterAndCondition(t *testing.T) {
	h := newHarness(t, journeyOf(t, logJourney("big-order", `  event: Order Completed
  if: event.properties.total > 100 && profile.orders >= 2`, "")))
	h.send(h.ev("u1", "Order Completed", `{"total": 500}`, 0)) // first order: profile.orders == 1
	h.send(h.ev("u1", "Order Completed", `{"total": 50}`, 0))
	h.send(h.ev("u1", "Order Completed", `{"total": 150}`, 0))
	h.send(h.ev("u1", "Order Viewed", `{"total": 150}`, 0))
	h.send(h.ev("u1", "Order Completed", `{}`, 0)) // a missing property: false, counted as an error
	h.settle()
	h.expect("log:hit")
	if s := h.stats("big-order"); s.Entered != 1 || s.Errors != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestCountPatternGroupedOutOfOrderAndDuplicates(t *testing.T) {
	h := newHarness(t, journeyOf(t, logJourney("hot", `  pattern:
    count: 3
    event: Product Viewed
    within: 5m
    group_by: category`, "")))
	v := func(cat string, at time.Duration) eventT {
		return h.ev("u1", "Product Viewed", `{"category":"`+cat+`"}`, at)
	}
	a, b := v("shoes", 0), v("shoes", 2*time.Minute)
	h.send(a, v("hats", time.Minute), b)
	h.send(a, b) // duplicates (a retrying SDK past the dedup window) never count twice
	h.settle()
	h.expect()
	// A third view that arrives late (it happened before b) completes it.
	h.send(v("shoes", time.Minute))
	h.settle()
	h.expect("log:hit")
	// The three views were consumed: a fourth does not fire again at once.
	h.send(v("shoes", 3*time.Minute))
	h.settle()
	h.expect()

	// Views spread over more than 5 minutes do not fire.
	h2 := newHarness(t, h.Journeys...)
	w := func(at time.Duration) eventT { return h2.ev("u2", "Product Viewed", `{"category":"x"}`, at) }
	h2.send(w(0), w(3*time.Minute), w(6*time.Minute))
	h2.settle()
	h2.expect()
	// An event older than the allowed lateness (5m before the latest seen)
	// is too late, even if it would complete a window.
	h2.send(w(0 - 30*time.Second))
	h2.settle()
	h2.expect()
	if s := h2.stats("hot"); s.LateEvents != 1 {
		t.Fatalf("stats %+v", s)
	}
	h2.send(w(4 * time.Minute))
	h2.settle()
	h2.expect("log:hit")
}

func TestSequencePatternCorrelatedOutOfOrder(t *testing.T) {
	h := newHarness(t, journeyOf(t, logJourney("seq", `  pattern:
    sequence:
      - Product Added
      - event: Checkout Started
        if: event.properties.total > 50
    within: 30m
    correlate: cart_id`, "")))
	add := h.ev("u1", "Product Added", `{"cart_id":"c1"}`, 0)
	otherCart := h.ev("u1", "Checkout Started", `{"cart_id":"c2","total":90}`, 10*time.Minute)
	small := h.ev("u1", "Checkout Started", `{"cart_id":"c1","total":20}`, 11*time.Minute)
	tooLate := h.ev("u1", "Checkout Started", `{"cart_id":"c1","total":90}`, 31*time.Minute)
	h.send(add, otherCart, small, tooLate)
	h.settle()
	h.expect()

	// B arrives before A (out of order, within the lateness): it fires when
	// A comes, with B as the trigger event.
	h2 := newHarness(t, h.Journeys...)
	b := h2.ev("u2", "Checkout Started", `{"cart_id":"c9","total":90}`, 0)
	a := h2.ev("u2", "Product Added", `{"cart_id":"c9"}`, -2*time.Minute)
	h2.send(b)
	h2.send(b) // a duplicate
	h2.send(a)
	h2.send(a)
	h2.settle()
	msgs := h2.sent("log")
	if len(msgs) != 1 || msgs[0].Fields["body"] != b.MessageID {
		t.Fatalf("sent %+v, want one message for %s", msgs, b.MessageID)
	}
}

func TestNotFollowedByCorrelated(t *testing.T) {
	h := newHarness(t, journeyOf(t, logJourney("nfb", `  pattern:
    event: Checkout Started
    not_followed_by: Order Completed
    within: 1h
    correlate: cart_id`, "allowed_lateness: 2m\nkey: event.properties.cart_id")))
	c1 := h.ev("u1", "Checkout Started", `{"cart_id":"c1"}`, 0)
	c2 := h.ev("u1", "Checkout Started", `{"cart_id":"c2"}`, time.Minute)
	h.send(c1, c2)
	h.send(c1) // a duplicate
	h.send(h.ev("u1", "Order Completed", `{"cart_id":"c2"}`, 30*time.Minute))
	h.send(h.ev("u1", "Order Completed", `{"cart_id":"c3"}`, 30*time.Minute))
	h.advance(time.Hour + time.Minute)
	h.expect() // the window is 1h, plus 2m of allowed lateness
	// An order for c1 that happened within the hour but arrives within the
	// allowed lateness still counts.
	h.send(h.ev("u1", "Order Completed", `{"cart_id":"c1"}`, -2*time.Minute))
	h.advance(2 * time.Minute)
	h.expect()

	// Without the order: the run starts at the window's end, with the
	// checkout as the trigger event.
	c3 := h.ev("u1", "Checkout Started", `{"cart_id":"c3"}`, 0)
	h.send(c3)
	h.advance(time.Hour + 2*time.Minute - time.Second)
	h.expect()
	h.advance(time.Second)
	msgs := h.sent("log")
	if len(msgs) != 1 || msgs[0].Fields["body"] != c3.MessageID {
		t.Fatalf("sent %+v", msgs)
	}
	// The order came before the checkout it follows in event time (out of
	// order): the checkout is followed.
	o := h.ev("u1", "Order Completed", `{"cart_id":"c4"}`, 10*time.Minute)
	h.send(o)
	h.send(h.ev("u1", "Checkout Started", `{"cart_id":"c4"}`, 9*time.Minute))
	h.advance(2 * time.Hour)
	h.expect()
}

// quietJourney is a journey started by a week without track events, whose
// one step logs body.
func quietJourney(t *testing.T, body string) *Journey {
	return journeyOf(t, `
id: quiet
reentry: every_time
trigger:
  absence: {duration: 7d, type: track}
allowed_lateness: 0s
steps:
  - id: hit
    send: {channel: log, content: {body: "`+body+`"}}
`)
}

func TestAbsenceTimerMovedByEvents(t *testing.T) {
	h := newHarness(t, quietJourney(t, "{{ trigger.messageId }}"))
	first := h.ev("u1", "Page Viewed", "", 0)
	h.send(first)
	h.advance(3 * 24 * time.Hour)
	last := h.ev("u1", "Clicked", "", 0)
	h.send(last)
	h.send(h.identify("u1", `{"plan":"pro"}`)) // not a track event: no activity
	h.advance(4 * 24 * time.Hour)              // 7 days after the first event
	h.expect()
	h.advance(3*24*time.Hour - time.Second)
	h.expect()
	h.advance(time.Second)
	msgs := h.sent("log")
	if len(msgs) != 1 || msgs[0].Fields["body"] != last.MessageID {
		t.Fatalf("sent %+v", msgs)
	}
	// The silence is reported once; a new event arms it again.
	h.advance(30 * 24 * time.Hour)
	h.expect()
	h.send(h.ev("u1", "Clicked", "", 0))
	h.advance(7 * 24 * time.Hour)
	h.expect("log:hit")
	// One timer per customer: re-arming, never one per event.
	for i := range 50 {
		h.send(h.ev("u1", "Clicked", "", time.Duration(i)*time.Second))
	}
	if n := h.countKeys(prefixTimer); n != 1 {
		t.Fatalf("%d timers pending, want 1", n)
	}
}

func TestProfileConditionBecomingTrue(t *testing.T) {
	h := newHarness(t, journeyOf(t, logJourney("vip", "  profile: profile.revenue > 500.0", "")))
	h.send(h.ev("u1", "Order Completed", `{"revenue": 300}`, 0))
	h.settle()
	h.expect()
	h.send(h.ev("u1", "Order Completed", `{"revenue": 300}`, 0))
	h.settle()
	h.expect("log:hit")
	// Still true: no new run.
	h.send(h.ev("u1", "Order Completed", `{"revenue": 300}`, 0))
	h.send(h.ev("u1", "Page Viewed", "", 0))
	h.settle()
	h.expect()
}

// The absence trigger keeps where the log holds the customer's last event,
// not a copy: the record stays small however big the events are, and the
// run's trigger event is read back from the log when the silence is
// reported. When the log no longer holds it, the run starts without it.
func TestAbsenceKeepsTheLastEventInTheLog(t *testing.T) {
	h := newHarness(t, quietJourney(t, "{{ trigger.messageId }} {{ trigger.properties.note | size }}"))
	big := fmt.Sprintf(`{"note":%q}`, strings.Repeat("x", 4000))
	first := h.ev("u1", "Page Viewed", big, 0)
	last := h.ev("u1", "Clicked", big, time.Second)
	h.send(first, last)
	if largest := h.largestRecord(); largest == 0 || largest > 1000 {
		t.Fatalf("the customer's record is %d bytes after two events of 4 KB: the absence state holds a copy", largest)
	}
	h.advance(7*24*time.Hour + time.Second)
	msgs := h.sent("log")
	if len(msgs) != 1 || msgs[0].Fields["body"] != last.MessageID+" 4000" {
		t.Fatalf("sent %+v, want the last event read back", msgs)
	}

	// The log loses the customer's events (a retention limit): the next
	// silence is still reported, with an event that has only its time.
	h.send(h.ev("u1", "Clicked", big, 0))
	h.Log = nil
	h.advance(7 * 24 * time.Hour)
	msgs = h.sent("log")
	if len(msgs) != 1 || msgs[0].Fields["body"] != " 0" {
		t.Fatalf("sent %d messages (%+v), want one without the event", len(msgs), msgs)
	}
}

// A not_followed_by window keeps its first event in the log too, and the
// run it starts reads it back.
func TestNotFollowedByKeepsTheFirstEventInTheLog(t *testing.T) {
	h := newHarness(t, journeyOf(t, `
id: nfb
reentry: every_time
trigger:
  pattern: {event: Checkout Started, not_followed_by: Order Completed, within: 1h}
allowed_lateness: 0s
steps:
  - id: hit
    send: {channel: log, content: {body: "{{ trigger.messageId }} {{ trigger.properties.note | size }}"}}
`))
	c := h.ev("u1", "Checkout Started", fmt.Sprintf(`{"note":%q}`, strings.Repeat("x", 4000)), 0)
	h.send(c)
	if largest := h.largestRecord(); largest == 0 || largest > 1000 {
		t.Fatalf("the customer's record is %d bytes with a checkout of 4 KB pending: the window holds a copy", largest)
	}
	h.advance(time.Hour)
	if msgs := h.sent("log"); len(msgs) != 1 || msgs[0].Fields["body"] != c.MessageID+" 4000" {
		t.Fatalf("sent %+v, want the checkout read back", msgs)
	}
}

// largestRecord commits and returns the size of the largest customer
// record.
func (h *harness) largestRecord() int {
	h.t.Helper()
	h.flush()
	largest := 0
	err := h.Engine.Do(context.Background(), func(tx *profile.Tx) error {
		return tx.Scan(context.Background(), []byte(prefixRecord), endOf(prefixRecord), func(_, v []byte) error {
			largest = max(largest, len(v))
			return nil
		})
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return largest
}

// A record written before the log reference (version 1: the absence
// state holds the event itself) still decodes, with its event.
func TestAbsenceStateOfVersion1Records(t *testing.T) {
	ev := encodeEvent(&nudge.Event{Type: nudge.Track, Event: "Clicked", MessageID: "m1"})
	id := newID("absence", "quiet", "p")
	var w wbuf
	w.count(1)
	w.str("quiet")
	w.u64(7)
	w.bool(false)
	w.byte(8) // an absence state only
	w.id(id)
	w.varint(1000)
	w.bytes(ev)
	w.varint(2000)
	w.varint(0)
	w.count(0) // keys
	w.count(0) // runs
	var rec custRecord
	if err := decodeBody(&rec, w.b, recordV1); err != nil {
		t.Fatal(err)
	}
	a := rec.journeys[0].abs
	if a.id != id || a.last != 1000 || a.due != 2000 || a.ev.at != (profile.LogRef{}) || decodeEvent(a.ev.ev).MessageID != "m1" {
		t.Fatalf("decoded %+v", a)
	}
	// Written again, it is version 2 and keeps the event.
	var again wbuf
	rec.appendBody(&again)
	var rec2 custRecord
	if err := decodeBody(&rec2, again.b, recordV2); err != nil {
		t.Fatal(err)
	}
	if b := rec2.journeys[0].abs; b.last != 1000 || decodeEvent(b.ev.ev).MessageID != "m1" {
		t.Fatalf("re-encoded %+v", b)
	}
}
