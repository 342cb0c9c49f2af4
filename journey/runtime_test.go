package journey

import (
	"strings"
	"testing"
	"time"
)

const welcomeDoc = `
id: welcome
trigger:
  event: Signed Up
goal:
  event: Order Completed
  within: 7d
steps:
  - id: hello
    send:
      channel: email
      content:
        subject: "Welcome, {{ profile.traits.first_name | default: 'friend' }}!"
  - id: wait-order
    wait_for:
      event: Order Completed
      timeout: 48h
      on_timeout: incentive
  - id: bought
    exit: {reason: purchased}
  - id: incentive
    send:
      channel: email
      content: {subject: 10% off}
`

func TestEventTriggerSendAndWaitForTimeout(t *testing.T) {
	h := newHarness(t, journeyOf(t, welcomeDoc))
	h.send(h.identify("ann", `{"first_name":"Ann"}`), h.ev("ann", "Signed Up", "", 0))
	h.settle()
	msgs := h.sent("email")
	if len(msgs) != 1 || msgs[0].Fields["subject"] != "Welcome, Ann!" || msgs[0].Step != "hello" {
		t.Fatalf("sent %+v", msgs)
	}
	if !strings.HasSuffix(msgs[0].IdempotencyKey, ".hello") || msgs[0].Recipient.Identifiers["userId"] != "ann" {
		t.Fatalf("message %+v", msgs[0])
	}
	h.advance(48 * time.Hour)
	h.expect() // the timeout waits for the allowed lateness
	h.advance(5 * time.Minute)
	h.expect("email:incentive")
	s := h.stats("welcome")
	if s.Entered != 1 || s.Active != 0 || s.Exits["completed"] != 1 || s.Steps["hello"].Sent != 1 || s.Steps["incentive"].Sent != 1 {
		t.Fatalf("stats %+v", s)
	}
}
