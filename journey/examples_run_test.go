package journey

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nudge-dev/nudge/channel"
)

// The shipped examples, end to end: all five loaded together, as nudge
// serve loads them, events in, messages out through recording channels.

func examplesHarness(t *testing.T) *harness {
	t.Helper()
	js, err := LoadDir(examplesDir)
	if err != nil {
		t.Fatal(err)
	}
	return newHarness(t, js...)
}

// byJourney takes every channel's messages of one journey.
func (h *harness) byJourney(id string) []*channel.Message {
	var out []*channel.Message
	for _, n := range []string{"email", "sms", "push", "webhook", "log"} {
		out = append(out, h.Channels[n].TakeIf(func(m *channel.Message) bool { return m.Journey == id })...)
	}
	return out
}

func steps(ms []*channel.Message) string {
	var s []string
	for _, m := range ms {
		s = append(s, m.Channel+":"+m.Step)
	}
	return strings.Join(s, " ")
}

func TestExampleWelcome(t *testing.T) {
	h := examplesHarness(t)
	h.send(h.identify("ann", `{"first_name":"Ann","email":"ann@example.com"}`), h.ev("ann", "Signed Up", "", 0))
	h.send(h.ev("bob", "Signed Up", "", 0))
	h.settle()
	ms := h.byJourney("welcome")
	if steps(ms) != "email:welcome-email email:welcome-email" {
		t.Fatalf("sent %s", steps(ms))
	}
	for _, m := range ms {
		if m.Recipient.Identifiers["userId"] == "ann" && (m.Fields["subject"] != "Welcome, Ann!" || m.Recipient.Identifiers["email"] != "ann@example.com") {
			t.Fatalf("ann's welcome: %+v", m)
		}
	}
	h.advance(24 * time.Hour)
	h.send(h.ev("bob", "Order Completed", `{"revenue": 30}`, 0))
	h.advance(24*time.Hour + 5*time.Minute)
	ms = h.byJourney("welcome")
	if steps(ms) != "email:incentive" || ms[0].Recipient.Identifiers["userId"] != "ann" || ms[0].Fields["subject"] != "Ann, 10% off your first order" {
		t.Fatalf("after 48 hours: %+v", ms)
	}
	s := h.stats("welcome")
	if s.Entered != 2 || s.Exits["purchased"] != 1 || s.Exits["completed"] != 1 || s.Conversions != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestExampleAbandonedCart(t *testing.T) {
	h := examplesHarness(t)
	added := `{"product_id":"p-42","sku":"RUN-42","name":"Trail runner","price":120,"quantity":2,"cart_id":"c1"}`
	h.send(h.identify("ann", `{"first_name":"Ann"}`))
	h.send(h.ev("ann", "Product Added", added, 0), h.ev("ann", "Checkout Started", `{"cart_id":"c1"}`, time.Minute))
	// Bob checks out and orders within the hour: no run.
	h.send(h.ev("bob", "Product Added", added, 0), h.ev("bob", "Checkout Started", `{"cart_id":"c2"}`, time.Minute))
	h.advance(20 * time.Minute)
	h.send(h.ev("bob", "Order Completed", `{"cart_id":"c2","revenue":240}`, 0))
	h.advance(time.Hour - 20*time.Minute + time.Minute + 5*time.Minute) // the window's end plus the allowed lateness
	ms := h.byJourney("abandoned-cart")
	if steps(ms) != "sms:sms-discount" {
		t.Fatalf("after an hour: %s", steps(ms))
	}
	sms := ms[0].Fields["body"]
	if ms[0].Recipient.Identifiers["userId"] != "ann" || !strings.Contains(sms, "Ann, you left") || !strings.Contains(sms, "Trail runner") {
		t.Fatalf("sms %q", sms)
	}
	h.advance(30 * time.Minute)
	ms = h.byJourney("abandoned-cart")
	if steps(ms) != "push:push-reminder" || !strings.Contains(ms[0].Fields["body"], "2 × Trail runner") || ms[0].Fields["title"] != "Your cart is waiting" {
		t.Fatalf("after 30 more minutes: %+v", ms)
	}
	h.advance(23*time.Hour + 30*time.Minute)
	ms = h.byJourney("abandoned-cart")
	if steps(ms) != "email:email-reminder" {
		t.Fatalf("after 24 hours: %s", steps(ms))
	}
	if body := ms[0].Fields["text"]; !strings.Contains(body, "2 × Trail runner (SKU RUN-42), 120") || !strings.Contains(body, "Hi Ann,") {
		t.Fatalf("email body %q", body)
	}
	// The idempotency keys name the run and the step.
	if k := ms[0].IdempotencyKey; !strings.HasSuffix(k, ".email-reminder") {
		t.Fatalf("key %q", k)
	}

	// An order after the SMS ends the run; the conversion counts.
	h.send(h.ev("cid", "Product Added", added, 0), h.ev("cid", "Checkout Started", `{"cart_id":"c3"}`, 0))
	h.advance(time.Hour + 5*time.Minute)
	if ms := h.byJourney("abandoned-cart"); steps(ms) != "sms:sms-discount" {
		t.Fatalf("cid: %s", steps(ms))
	}
	h.send(h.ev("cid", "Order Completed", `{"cart_id":"c3","revenue":240}`, 0))
	h.advance(48 * time.Hour)
	if ms := h.byJourney("abandoned-cart"); len(ms) != 0 {
		t.Fatalf("after the order: %s", steps(ms))
	}
	// An emptied cart ends the run at the branch.
	h.send(h.ev("dan", "Product Added", added, 0), h.ev("dan", "Checkout Started", `{"cart_id":"c4"}`, 0))
	h.advance(time.Hour + 5*time.Minute)
	h.send(h.ev("dan", "Product Removed", `{"product_id":"p-42"}`, 0))
	h.advance(30 * time.Minute)
	if ms := h.byJourney("abandoned-cart"); steps(ms) != "sms:sms-discount" {
		t.Fatalf("dan: %s", steps(ms))
	}
	s := h.stats("abandoned-cart")
	if s.Entered != 3 || s.Exits["reminded"] != 1 || s.Exits["exit_on:Order Completed"] != 1 || s.Exits["cart-emptied"] != 1 || s.Conversions != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestExampleHighIntent(t *testing.T) {
	h := examplesHarness(t)
	for i, cat := range []string{"shoes", "hats", "shoes", "shoes"} {
		h.send(h.ev("ann", "Product Viewed", fmt.Sprintf(`{"category":%q,"name":"Model \"%d\""}`, cat, i), time.Duration(i)*time.Minute))
	}
	h.settle()
	ms := h.byJourney("high-intent")
	if steps(ms) != "webhook:live-chat-invite" || ms[0].Fields["url"] != "https://chat.example.com/hooks/invite" {
		t.Fatalf("sent %+v", ms)
	}
	var body map[string]string
	if err := json.Unmarshal([]byte(ms[0].Fields["body"]), &body); err != nil {
		t.Fatalf("body %q: %v", ms[0].Fields["body"], err)
	}
	if body["user_id"] != "ann" || body["category"] != "shoes" || body["product"] != `Model "3"` || body["message"] != "Questions about our shoes? We are here to help." {
		t.Fatalf("body %v", body)
	}
	// At most one invitation a day.
	for i := range 3 {
		h.send(h.ev("ann", "Product Viewed", `{"category":"shoes"}`, time.Duration(10+i)*time.Minute))
	}
	h.advance(23 * time.Hour)
	for i := range 3 {
		h.send(h.ev("ann", "Product Viewed", `{"category":"shoes"}`, time.Duration(i)*time.Minute))
	}
	h.settle()
	if ms := h.byJourney("high-intent"); len(ms) != 0 {
		t.Fatalf("within a day: %s", steps(ms))
	}
	h.advance(2 * time.Hour)
	for i := range 3 {
		h.send(h.ev("ann", "Product Viewed", `{"category":"shoes"}`, time.Duration(i)*time.Minute))
	}
	h.settle()
	if ms := h.byJourney("high-intent"); len(ms) != 1 {
		t.Fatalf("a day later: %s", steps(ms))
	}
}

func TestExampleReengagement(t *testing.T) {
	h := examplesHarness(t)
	const n = 40
	for i := range n {
		e := h.ev(fmt.Sprint("user-", i), "Page Viewed", "", 0)
		e.Context = json.RawMessage(`{"timezone":"Europe/Paris"}`)
		h.send(e)
	}
	// One comes back after 6 days: their silence starts again.
	h.advance(6 * 24 * time.Hour)
	h.send(h.ev("user-0", "Product Viewed", "", 0))
	h.advance(24*time.Hour + 5*time.Minute) // 7 days and the allowed lateness
	if ms := h.byJourney("re-engagement"); len(ms) != 0 {
		t.Fatalf("before 10:00 in Paris: %s", steps(ms))
	}
	s := h.stats("re-engagement")
	if s.Entered != n-1 {
		t.Fatalf("stats %+v", s)
	}
	// 09:05 UTC is 10:05 in Paris in March (UTC+1): the next 10:00 is
	// tomorrow at 09:00 UTC.
	h.advance(24*time.Hour - 5*time.Minute - time.Second)
	if ms := h.byJourney("re-engagement"); len(ms) != 0 {
		t.Fatalf("a second before 10:00: %s", steps(ms))
	}
	h.advance(time.Second)
	ms := h.byJourney("re-engagement")
	variants := map[string]int{}
	for _, m := range ms {
		variants[m.Variant]++
		if m.CreatedAt.In(mustZone(t, "Europe/Paris")).Hour() != 10 || m.Recipient.Identifiers["userId"] == "user-0" {
			t.Fatalf("message %+v", m)
		}
	}
	s = h.stats("re-engagement")
	held := s.Variants["holdout"].Entered
	if int64(len(ms))+held != n-1 || variants["discount"] == 0 || variants["newsletter"] == 0 || held != s.Exits["holdout"] {
		t.Fatalf("%d sent %v, stats %+v", len(ms), variants, s)
	}
	// Coming back on a page converts (goal: a page within 7 days).
	h.send(h.ev("user-1", "", "", 0))
	h.Channels["email"].Take()
	e := h.ev("user-2", "", "", 0)
	e.Type, e.Name = "page", "Home"
	h.send(e)
	if s := h.stats("re-engagement"); s.Conversions != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func mustZone(t *testing.T, name string) *time.Location {
	l, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestExampleLoyalty(t *testing.T) {
	h := examplesHarness(t)
	h.send(h.identify("ann", `{"first_name":"Ann"}`))
	for i := range 4 {
		h.send(h.ev("ann", "Order Completed", `{"revenue": 50}`, time.Duration(i)*time.Hour))
		h.settle()
		ms := h.byJourney("loyalty")
		if want := i == 2; (len(ms) == 1) != want {
			t.Fatalf("after order %d: %s", i+1, steps(ms))
		}
		if i == 2 && ms[0].Fields["subject"] != "You're a silver member now, Ann" {
			t.Fatalf("subject %q", ms[0].Fields["subject"])
		}
	}
	tr := h.find("ann").State.Traits
	if string(tr["loyalty_tier"].Value) != `"silver"` || string(tr["lifetime_value"].Value) != "150" {
		t.Fatalf("traits %v", tr)
	}
}
