package journey

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nudge-dev/nudge/channel"
)

// Sends a provider keeps refusing with a retryable error wait in the
// outbox: the operator lists them in due order, page by page, and opens
// one with its message.
func TestOutboxListsQueuedDeliveries(t *testing.T) {
	h := newHarness(t, journeyOf(t, pingDoc))
	h.Config.Lanes = map[string]LaneConfig{"email": {BreakerFailures: 100}}
	h.crash()
	h.Channels["email"].Fail = func(*channel.Message, int) error {
		return channel.Retryable(errors.New("503 try later"), 0)
	}
	ctx := context.Background()
	if all, next, err := h.Runtime.Deliveries(ctx, "", 10); err != nil || len(all) != 0 || next != "" {
		t.Fatalf("empty outbox: %+v next %q, %v", all, next, err)
	}
	h.send(h.ev("ann", "Ping", "", 0), h.ev("bob", "Ping", "", time.Second), h.ev("cy", "Ping", "", 2*time.Second))
	h.settle()
	h.flush()

	page1, next, err := h.Runtime.Deliveries(ctx, "", 2)
	if err != nil || len(page1) != 2 || next != page1[1].ID {
		t.Fatalf("page 1: %+v next %q, %v", page1, next, err)
	}
	page2, next2, err := h.Runtime.Deliveries(ctx, next, 2)
	if err != nil || len(page2) != 1 || next2 != "" {
		t.Fatalf("page 2: %+v next %q, %v", page2, next2, err)
	}
	all := append(page1, page2...)
	seen := map[string]bool{}
	for i, d := range all {
		if d.Journey != "ping" || d.Step != "hit" || d.Channel != "email" || d.Attempts != 1 ||
			d.InFlight || d.Transactional || d.Message != nil {
			t.Fatalf("delivery %d: %+v", i, d)
		}
		if !d.Due.After(h.Clock.Now().Add(-time.Second)) || d.CreatedAt.IsZero() || d.CreatedAt.After(d.Due) {
			t.Fatalf("delivery %d due %v, created %v (now %v)", i, d.Due, d.CreatedAt, h.Clock.Now())
		}
		if i > 0 && d.Due.Before(all[i-1].Due) {
			t.Fatalf("not in due order: %v before %v", all[i-1].Due, d.Due)
		}
		if seen[d.ID] {
			t.Fatalf("listed twice: %s", d.ID)
		}
		seen[d.ID] = true
	}

	full, err := h.Runtime.DeliveryByID(ctx, all[0].ID)
	if err != nil || full.Message == nil || full.Message.Fields["subject"] != "hi" || full.Message.Step != "hit" ||
		full.Message.IdempotencyKey == "" || full.ID != all[0].ID || full.Attempts != 1 {
		t.Fatalf("by id: %+v, %v", full, err)
	}

	// Ids that are not the outbox's.
	for _, id := range []string{"", "zz", "00", all[0].ID[:len(all[0].ID)-2], all[0].ID[:len(all[0].ID)-2] + "ff"} {
		if id != all[0].ID && !seen[id] {
			if d, err := h.Runtime.DeliveryByID(ctx, id); !errors.Is(err, ErrNoDelivery) {
				t.Fatalf("DeliveryByID(%q) = %+v, %v; want ErrNoDelivery", id, d, err)
			}
		}
	}
	if _, _, err := h.Runtime.Deliveries(ctx, "not-hex", 10); !errors.Is(err, ErrNoDelivery) {
		t.Fatalf("Deliveries after a bad id: %v", err)
	}

	// Delivered, the outbox empties and the old ids answer ErrNoDelivery.
	h.Channels["email"].Fail = nil
	h.advance(time.Hour)
	h.flush()
	if got := h.sent("email"); len(got) != 3 {
		t.Fatalf("sent %d, want 3", len(got))
	}
	if left, _, err := h.Runtime.Deliveries(ctx, "", 10); err != nil || len(left) != 0 {
		t.Fatalf("left: %+v, %v", left, err)
	}
	if _, err := h.Runtime.DeliveryByID(ctx, all[0].ID); !errors.Is(err, ErrNoDelivery) {
		t.Fatalf("a delivered job by id: %v", err)
	}
}
