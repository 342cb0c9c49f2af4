package profile_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/nudge-dev/nudge"
	"github.com/nudge-dev/nudge/bus"
	"github.com/nudge-dev/nudge/profile"
	"github.com/nudge-dev/nudge/profile/pebblestore"
	"github.com/nudge-dev/nudge/shred"
)

const parts = 8

// harness runs an engine over a real store and keyring in a temporary
// directory, fed log messages by hand.
type harness struct {
	t     *testing.T
	dir   string
	keys  *shred.Keyring
	store *pebblestore.Store
	en    *profile.Engine
	cfg   profile.Config
	log   []bus.Message // every message "stored", in log order
}

func newHarness(t *testing.T, cfg profile.Config) *harness {
	t.Helper()
	cfg.Partitions = parts
	h := &harness{t: t, dir: t.TempDir(), cfg: cfg}
	var err error
	if h.keys, err = shred.Open(filepath.Join(h.dir, "keys")); err != nil {
		t.Fatal(err)
	}
	h.open()
	t.Cleanup(func() { h.store.Close(); h.keys.Close() })
	return h
}

func (h *harness) open() {
	var err error
	if h.store, err = pebblestore.Open(filepath.Join(h.dir, "profiles"), pebblestore.Options{}); err != nil {
		h.t.Fatal(err)
	}
	h.en = profile.NewEngine(h.cfg, h.store, h.keys, harnessLog{h: h}, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// harnessLog serves the harness's messages to History.
type harnessLog struct {
	bus.Log
	h *harness
}

func (l harnessLog) Get(_ context.Context, seq uint64) (bus.Message, error) {
	if seq == 0 || seq > uint64(len(l.h.log)) {
		return bus.Message{}, bus.ErrNotFound
	}
	return l.h.log[seq-1], nil
}

// restart drops the engine's memory (what was not flushed is lost, as in a
// crash), reopens the store, and replays the whole log.
func (h *harness) restart() {
	h.store.Close()
	h.open()
	for _, m := range h.log {
		if err := h.en.Apply(context.Background(), m); err != nil {
			h.t.Fatal(err)
		}
	}
}

// send seals the events as ingest does, makes one log message per
// partition of them, and applies those.
func (h *harness) send(events ...nudge.Event) {
	h.t.Helper()
	for _, m := range h.seal(events...) {
		if err := h.en.Apply(context.Background(), m); err != nil {
			h.t.Fatal(err)
		}
	}
}

// seal seals the events as ingest does and appends one log message per
// partition of them to the log, and returns those.
func (h *harness) seal(events ...nudge.Event) []bus.Message {
	h.t.Helper()
	byPart := map[int][]nudge.Event{}
	for _, e := range events {
		p := bus.PartitionOf(e.CustomerKey(), parts)
		if _, err := shred.SealEvent(h.keys, &e); err != nil && !errors.Is(err, shred.ErrShredded) {
			h.t.Fatal(err)
		} else if err != nil {
			continue
		}
		byPart[p] = append(byPart[p], e)
	}
	var out []bus.Message
	for p := range parts {
		if len(byPart[p]) == 0 {
			continue
		}
		m := bus.Message{Partition: p, Seq: uint64(len(h.log) + 1), Payload: nudge.EncodeEvents(nil, byPart[p])}
		h.log = append(h.log, m)
		out = append(out, m)
	}
	return out
}

func (h *harness) find(id string) *profile.Profile {
	h.t.Helper()
	p, err := h.en.Find(context.Background(), id)
	if err != nil {
		h.t.Fatalf("find %s: %v", id, err)
	}
	return p
}

func (h *harness) flush() {
	h.t.Helper()
	if err := h.en.Flush(context.Background()); err != nil {
		h.t.Fatal(err)
	}
}

var t0 = time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)

func ev(typ nudge.EventType, id string, at int, f func(*nudge.Event)) nudge.Event {
	e := nudge.Event{Type: typ, MessageID: id, Source: "web", Timestamp: t0.Add(time.Duration(at) * time.Minute)}
	e.ReceivedAt = e.Timestamp
	f(&e)
	return e
}

// crossDevice is the seed's story: browsing anonymously on a phone, running
// shoes into the cart, an email left at the newsletter box, then a login
// on a desktop with the same email.
func crossDevice() []nudge.Event {
	return []nudge.Event{
		ev(nudge.Track, "m1", 0, func(e *nudge.Event) {
			e.AnonymousID, e.Event = "phone-anon", "Product Viewed"
			e.Properties = json.RawMessage(`{"product_id":"shoe-1","name":"Running shoes"}`)
		}),
		ev(nudge.Track, "m2", 1, func(e *nudge.Event) {
			e.AnonymousID, e.Event = "phone-anon", "Product Added"
			e.Properties = json.RawMessage(`{"product_id":"shoe-1","sku":"RUN-42","name":"Running shoes","price":89.9}`)
		}),
		ev(nudge.Identify, "m3", 2, func(e *nudge.Event) {
			e.AnonymousID, e.Traits = "phone-anon", json.RawMessage(`{"email":"Ann@Example.com"}`)
		}),
		ev(nudge.Identify, "m4", 60, func(e *nudge.Event) {
			e.UserID, e.AnonymousID = "user-42", "desk-anon"
			e.Traits = json.RawMessage(`{"email":"ann@example.com","name":"Ann"}`)
		}),
		ev(nudge.Track, "m5", 61, func(e *nudge.Event) {
			e.UserID, e.Event = "user-42", "Product Viewed"
			e.Properties = json.RawMessage(`{"product_id":"sock-7","name":"Socks"}`)
		}),
		ev(nudge.Page, "m6", 62, func(e *nudge.Event) { e.AnonymousID, e.Name = "desk-anon", "Home" }),
	}
}

// canonical renders what must not depend on arrival order.
func canonical(t *testing.T, p *profile.Profile) string {
	ids := slices.Clone(p.Identities)
	slices.SortFunc(ids, func(a, b profile.Identity) int { return cmpStr(a.Value, b.Value) })
	// Each harness has its own keyring, so pseudonyms differ between runs:
	// name the id by the identifier it is the pseudonym of.
	idOf := ""
	for _, id := range ids {
		if id.Ref == p.ID {
			idOf = id.Value
		}
	}
	b, err := json.Marshal(struct {
		IDOf  string
		IDs   []profile.Identity
		State *profile.State
	}{idOf, ids, &p.State})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestCrossDeviceProfileWhateverTheOrder(t *testing.T) {
	events := crossDevice()
	var want string
	rng := rand.New(rand.NewPCG(1, 2))
	orders := [][]int{{0, 1, 2, 3, 4, 5}, {5, 4, 3, 2, 1, 0}, {3, 4, 5, 0, 1, 2}}
	for range 12 {
		orders = append(orders, rng.Perm(len(events)))
	}
	for _, order := range orders {
		h := newHarness(t, profile.Config{})
		for _, i := range order {
			h.send(events[i])
		}
		for _, id := range []string{"phone-anon", "desk-anon", "user-42", "ANN@example.com"} {
			p := h.find(id)
			got := canonical(t, p)
			if want == "" {
				want = got
				if len(p.Identities) != 4 {
					t.Fatalf("identities %+v, want user id, two anonymous ids and the email", p.Identities)
				}
				items := p.State.Cart.Items()
				if len(items) != 1 || items[0].SKU != "RUN-42" {
					t.Fatalf("cart %+v, want the running shoes", items)
				}
				if p.State.Counts["Product Viewed"] != 2 || p.State.Counts["identify"] != 2 {
					t.Fatalf("counts %v", p.State.Counts)
				}
			}
			if got != want {
				t.Fatalf("order %v, looked up by %s:\n%s\nwant\n%s", order, id, got, want)
			}
		}
		events, _, err := h.en.History(context.Background(), h.find("user-42"), profile.Cursor{}, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(events) != 6 || events[0].MessageID != "m6" || events[5].MessageID != "m1" {
			t.Fatalf("order %v: history %v, want all six events, newest first", order, ids(events))
		}
	}
}

func TestAliasBeforeOrAfterTheEvents(t *testing.T) {
	alias := ev(nudge.Alias, "a1", 30, func(e *nudge.Event) { e.UserID, e.PreviousID = "user-9", "anon-9" })
	before := ev(nudge.Track, "t1", 10, func(e *nudge.Event) { e.AnonymousID, e.Event = "anon-9", "Signed Up" })
	after := ev(nudge.Track, "t2", 40, func(e *nudge.Event) {
		e.UserID, e.Event = "user-9", "Order Completed"
		e.Properties = json.RawMessage(`{"revenue":20}`)
	})
	var want string
	for _, order := range [][]nudge.Event{{alias, before, after}, {before, after, alias}, {after, alias, before}} {
		h := newHarness(t, profile.Config{})
		h.send(order...)
		// A second alias of the same two ids (a new message) changes no link.
		h.send(ev(nudge.Alias, "a2", 50, func(e *nudge.Event) { e.UserID, e.PreviousID = "user-9", "anon-9" }))
		got := canonical(t, h.find("anon-9"))
		if want == "" {
			want = got
		} else if got != want {
			t.Fatalf("got\n%s\nwant\n%s", got, want)
		}
		if s := h.en.Stats(); s.Merges > 1 {
			t.Fatalf("%d merges for one alias", s.Merges)
		}
	}
}

func TestReplayAndCrashCountEachEventOnce(t *testing.T) {
	h := newHarness(t, profile.Config{})
	for i := range 50 {
		h.send(ev(nudge.Track, fmt.Sprint("v", i), i, func(e *nudge.Event) { e.UserID, e.Event = fmt.Sprint("u", i%5), "Product Viewed" }))
		if i == 29 {
			h.flush() // the first 30 committed, the last 20 only applied
		}
	}
	check := func(when string) {
		t.Helper()
		for u := range 5 {
			if n := h.find(fmt.Sprint("u", u)).State.Counts["Product Viewed"]; n != 10 {
				t.Fatalf("%s: u%d counted %d views, want 10", when, u, n)
			}
		}
	}
	check("live")
	// The same messages delivered again are skipped.
	for _, m := range h.log {
		if err := h.en.Apply(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	check("after a redelivery")
	// A crash loses the 20 applied but uncommitted events; the replay from
	// the committed positions puts back exactly those.
	h.restart()
	check("after a crash and replay")
	h.flush()
	h.restart()
	check("after a clean restart and replay")
}

func TestRunawayIdentifierIsCappedAndReported(t *testing.T) {
	h := newHarness(t, profile.Config{})
	for i := range 300 {
		h.send(ev(nudge.Identify, fmt.Sprint("i", i), i, func(e *nudge.Event) {
			e.UserID, e.AnonymousID = fmt.Sprint("kiosk-user-", i), "shared-kiosk"
		}))
	}
	first := h.find("shared-kiosk")
	if got := userIDs(first); len(got) != 1 || got[0] != "kiosk-user-0" {
		t.Fatalf("the shared anonymous id belongs to %v, want only the first user", got)
	}
	if p := h.find("kiosk-user-299"); len(p.Identities) != 1 || p.Refused != 1 {
		t.Fatalf("a later user's profile %+v: want it alone, with the refused merge counted", p.Identities)
	}
	if s := h.en.Stats(); s.Refused != 299 || s.Profiles != 300 {
		t.Fatalf("stats %+v: want 300 profiles and 299 refusals", s)
	}

	// Identifiers per profile are bounded too.
	h2 := newHarness(t, profile.Config{MaxIdentities: 10})
	for i := range 30 {
		h2.send(ev(nudge.Identify, fmt.Sprint("j", i), i, func(e *nudge.Event) {
			e.UserID, e.AnonymousID = "u", fmt.Sprint("device-", i)
		}))
	}
	if p := h2.find("u"); len(p.Identities) != 10 || p.Refused != 21 {
		t.Fatalf("%d identities, %d refused; want 10 and 21", len(p.Identities), p.Refused)
	}
}

func userIDs(p *profile.Profile) []string {
	var out []string
	for _, id := range p.Identities {
		if id.Kind == profile.KindUser {
			out = append(out, id.Value)
		}
	}
	return out
}

func ids(events []nudge.Event) []string {
	var out []string
	for _, e := range events {
		out = append(out, e.MessageID)
	}
	return out
}

func TestHistoryPages(t *testing.T) {
	h := newHarness(t, profile.Config{})
	for i := range 120 {
		h.send(ev(nudge.Track, fmt.Sprintf("e%03d", i), i, func(e *nudge.Event) {
			e.AnonymousID, e.Event = "a", "Viewed"
			if i%2 == 1 {
				e.AnonymousID, e.UserID = "", "u" // the same person, other identifier
			}
		}))
		if i == 0 {
			h.send(ev(nudge.Identify, "link", -1, func(e *nudge.Event) { e.UserID, e.AnonymousID = "u", "a" }))
		}
		if i == 70 {
			h.flush() // pages mix committed and pending events
		}
	}
	p := h.find("u")
	var got []string
	cur := profile.Cursor{}
	for pages := 0; ; pages++ {
		events, next, err := h.en.History(context.Background(), p, cur, 50)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ids(events)...)
		if next.IsZero() {
			break
		}
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		cur = next
	}
	if len(got) != 121 || got[0] != "e119" || got[119] != "e000" || got[120] != "link" {
		t.Fatalf("%d events from %v to %v", len(got), got[:2], got[len(got)-2:])
	}
}

func TestEraseForgetsAndSuppresses(t *testing.T) {
	h := newHarness(t, profile.Config{})
	h.send(crossDevice()...)
	h.flush()
	er, err := h.en.Erase(context.Background(), "ann@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if len(er.Pseudonyms) != 4 {
		t.Fatalf("erased %d identifiers, want 4", len(er.Pseudonyms))
	}
	for _, id := range []string{"user-42", "phone-anon", "desk-anon", "ann@example.com", er.Profile.P.String()} {
		if _, err := h.en.Find(context.Background(), id); !errors.Is(err, profile.ErrNotFound) {
			t.Fatalf("find %s after erasure: %v, want ErrNotFound", id, err)
		}
		if !h.keys.Shredded(h.keys.Pseudonym(id)) && id != er.Profile.P.String() {
			t.Fatalf("%s is not suppressed", id)
		}
	}
	// The log still holds the sealed events; replaying it brings nobody back.
	h.restart()
	if _, err := h.en.Find(context.Background(), "user-42"); !errors.Is(err, profile.ErrNotFound) {
		t.Fatalf("after a replay of the log: %v, want ErrNotFound", err)
	}
	// A later event that names the erased email from a new device is dropped,
	// and that device's identifier is erased with it.
	h.send(ev(nudge.Track, "late", 100, func(e *nudge.Event) {
		e.AnonymousID, e.Event = "new-device", "Page Viewed"
		e.Context = json.RawMessage(`{"traits":{"email":"ann@example.com"}}`)
	}))
	if _, err := h.en.Find(context.Background(), "new-device"); !errors.Is(err, profile.ErrNotFound) {
		t.Fatalf("a later event of the erased email made a profile: %v", err)
	}
	if !h.keys.Shredded(h.keys.Pseudonym("new-device")) {
		t.Fatal("the new device's identifier is not erased")
	}
	// Everyone else is untouched.
	h.send(ev(nudge.Track, "other", 101, func(e *nudge.Event) { e.UserID, e.Event = "bob", "Signed Up" }))
	if p := h.find("bob"); p.State.Counts["Signed Up"] != 1 {
		t.Fatalf("bob: %v", p.State.Counts)
	}
}

// idleLog is a log with nothing new to read.
type idleLog struct{ bus.Log }

func (idleLog) Read(ctx context.Context, _ bus.ReadOptions, _ bus.Handler) error {
	<-ctx.Done()
	return ctx.Err()
}

// After a restart with nothing new in the log, the engine knows it has
// applied everything (readers waiting for their writes are not stuck).
func TestRestartKnowsWhatIsApplied(t *testing.T) {
	h := newHarness(t, profile.Config{})
	for i := range 5 {
		h.send(ev(nudge.Track, fmt.Sprint("r", i), i, func(e *nudge.Event) { e.UserID, e.Event = fmt.Sprint("u", i), "E" }))
	}
	last := h.log[len(h.log)-1].Seq
	h.flush()
	h.store.Close()
	h.open()
	en := profile.NewEngine(profile.Config{Partitions: parts}, h.store, h.keys, idleLog{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- en.Run(ctx) }()
	if err := en.WaitApplied(ctx, last); err != nil {
		t.Fatalf("waiting for sequence %d after a restart: %v", last, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Readers waiting for their writes are each woken once the log is applied
// through the sequence they wait for, not before; one that gives up leaves
// no waiter behind.
func TestWaitAppliedWakesEachReaderAtItsSequence(t *testing.T) {
	h := newHarness(t, profile.Config{})
	var msgs []bus.Message
	for i := range 6 {
		msgs = append(msgs, h.seal(ev(nudge.Track, fmt.Sprint("w", i), i, func(e *nudge.Event) { e.UserID, e.Event = "u", "E" }))...)
	}
	woken := make([]chan error, len(msgs))
	for i := len(msgs) - 1; i >= 0; i-- { // out of order: the list keeps them sorted
		woken[i] = make(chan error, 1)
		go func() { woken[i] <- h.en.WaitApplied(context.Background(), msgs[i].Seq) }()
	}
	for profile.Waiters(h.en) < len(msgs) {
		runtime.Gosched()
	}
	gaveUp, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.en.WaitApplied(gaveUp, msgs[len(msgs)-1].Seq+10); !errors.Is(err, context.Canceled) {
		t.Fatalf("a reader that gave up: %v", err)
	}
	for i, m := range msgs {
		select {
		case err := <-woken[i]:
			t.Fatalf("reader of sequence %d woken (%v) before it was applied", m.Seq, err)
		default:
		}
		if err := h.en.Apply(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-woken[i]:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("reader of sequence %d not woken once it was applied", m.Seq)
		}
	}
	if n := profile.Waiters(h.en); n != 0 {
		t.Fatalf("%d waiters left", n)
	}
}

// With nothing cached (a restart after a commit), every identifier of a
// merged profile finds it, whether it is the profile's id (one read of the
// profile) or was the id of a profile merged away (its record is gone, so
// the link leads on); and a later event of each lands on that profile.
func TestColdLookupsFindTheMergedProfile(t *testing.T) {
	h := newHarness(t, profile.Config{})
	for _, e := range crossDevice() {
		h.send(e)
		h.flush() // each profile an anonymous id had is stored before it merges
	}
	want := canonical(t, h.find("user-42"))
	for i, id := range []string{"phone-anon", "desk-anon", "user-42", "ANN@example.com"} {
		h.store.Close()
		h.open() // nothing cached
		if got := canonical(t, h.find(id)); got != want {
			t.Fatalf("looked up by %s with nothing cached:\n%s\nwant\n%s", id, got, want)
		}
		h.store.Close()
		h.open()
		h.send(ev(nudge.Track, fmt.Sprint("late", i), 100+i, func(e *nudge.Event) {
			e.Event = "Late"
			if id == "user-42" || id == "ANN@example.com" {
				e.UserID = "user-42"
			} else {
				e.AnonymousID = id
			}
		}))
		h.flush()
		p := h.find("user-42")
		if n := p.State.Counts["Late"]; n != int64(i+1) {
			t.Fatalf("after a late event by %s: %d late events on the profile, want %d (identities %+v)", id, n, i+1, p.Identities)
		}
		want = canonical(t, p)
	}
}

// The engine reports, for each message it applies, how long after its
// last event's receipt that was (on the clock receivedAt was stamped
// with); a message it skips as already applied is not reported again.
func TestDelayIsFromTheLastEventsReceipt(t *testing.T) {
	now := t0.Add(time.Hour)
	var delays []time.Duration
	h := newHarness(t, profile.Config{Now: func() time.Time { return now }, Delay: func(d time.Duration) { delays = append(delays, d) }})
	a := ev(nudge.Track, "d1", 0, func(e *nudge.Event) { e.UserID = "u1" })
	b := ev(nudge.Track, "d2", 10, func(e *nudge.Event) { e.UserID = "u1" })
	h.send(a, b) // one partition, one message: received at t0 and t0+10m
	if len(delays) != 1 || delays[0] != 50*time.Minute {
		t.Fatalf("delays %v, want [50m0s]", delays)
	}
	for _, m := range h.log {
		if err := h.en.Apply(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	if len(delays) != 1 {
		t.Fatalf("delays %v after a redelivery, want it not reported again", delays)
	}
}
