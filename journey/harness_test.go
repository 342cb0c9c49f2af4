package journey

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nudge-dev/nudge"
	"github.com/nudge-dev/nudge/bus"
	"github.com/nudge-dev/nudge/channel"
	"github.com/nudge-dev/nudge/profile"
	"github.com/nudge-dev/nudge/profile/pebblestore"
	"github.com/nudge-dev/nudge/shred"
)

// The runtime's tests run it inside a real profile engine over a Pebble
// store and a keyring in a temporary directory, fed sealed log messages by
// hand (as profile/engine_test.go does), with a fake clock: no sleeps.

const hParts = 8

// fakeClock is a TimeSource that moves only when told.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	waits []fakeWait
	added chan struct{} // a signal per After
}

type fakeWait struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock(t time.Time) *fakeClock {
	return &fakeClock{now: t, added: make(chan struct{}, 1)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waits = append(c.waits, fakeWait{c.now.Add(d), ch})
	select {
	case c.added <- struct{}{}:
	default:
	}
	return ch
}

// awaitWait blocks until someone waits on the clock for at least until.
func (c *fakeClock) awaitWait(t testing.TB, until time.Time) {
	t.Helper()
	fail := time.After(10 * time.Second) // a failure bound, not a synchronisation
	for {
		c.mu.Lock()
		ok := slices.ContainsFunc(c.waits, func(w fakeWait) bool { return !w.at.Before(until) })
		c.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-c.added:
		case <-fail:
			t.Fatalf("nobody waits on the clock until %v", until)
		}
	}
}

// Advance moves the clock and fires the waits it passes.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.waits = slices.DeleteFunc(c.waits, func(w fakeWait) bool {
		if w.at.After(c.now) {
			return false
		}
		w.ch <- c.now
		return true
	})
}

// recorder is a channel that keeps what it is sent.
type recorder struct {
	name string
	mu   sync.Mutex
	msgs []*channel.Message
	// fail, when set, decides the outcome of each attempt.
	fail func(m *channel.Message, attempt int) error
	sent chan *channel.Message // when set, receives each delivery
	n    int
}

func (r *recorder) Name() string { return r.name }

func (r *recorder) Send(_ context.Context, m *channel.Message) error {
	r.mu.Lock()
	r.n++
	n := r.n
	f := r.fail
	r.mu.Unlock()
	if f != nil {
		if err := f(m, n); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
	if r.sent != nil {
		r.sent <- m
	}
	return nil
}

func (r *recorder) take() []*channel.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.msgs
	r.msgs = nil
	return out
}

var hT0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

type harness struct {
	t        testing.TB
	dir      string
	keys     *shred.Keyring
	store    *pebblestore.Store
	en       *profile.Engine
	rt       *Runtime
	clock    *fakeClock
	chans    map[string]*recorder
	journeys []*Journey
	cfg      Config
	log      []bus.Message
	seq      int
}

func newHarness(t testing.TB, journeys ...*Journey) *harness {
	t.Helper()
	h := &harness{t: t, dir: t.TempDir(), clock: newFakeClock(hT0), journeys: journeys, chans: map[string]*recorder{}}
	for _, n := range []string{"email", "sms", "push", "webhook", "log"} {
		h.chans[n] = &recorder{name: n}
	}
	var err error
	if h.keys, err = shred.Open(filepath.Join(h.dir, "keys")); err != nil {
		t.Fatal(err)
	}
	h.open()
	t.Cleanup(func() { h.store.Close(); h.keys.Close() })
	return h
}

// open starts an engine and a runtime over the store, as after a restart.
func (h *harness) open() {
	h.t.Helper()
	var err error
	if h.store, err = pebblestore.Open(filepath.Join(h.dir, "profiles"), pebblestore.Options{}); err != nil {
		h.t.Fatal(err)
	}
	h.en = profile.NewEngine(profile.Config{Partitions: hParts}, h.store, h.keys, nil, discard())
	cfg := h.cfg
	cfg.Engine, cfg.Store, cfg.Keys, cfg.Clock = h.en, h.store, h.keys, h.clock
	var chans []channel.Channel
	for _, c := range h.chans {
		chans = append(chans, c)
	}
	if h.rt, err = NewRuntime(cfg, h.journeys, chans); err != nil {
		h.t.Fatal(err)
	}
	h.en.SetReactor(h.rt)
}

// crash loses what the engine did not commit, reopens the store and
// replays the whole log (the engine skips what it committed).
func (h *harness) crash() {
	h.t.Helper()
	h.store.Close()
	h.open()
	for _, m := range h.log {
		if err := h.en.Apply(context.Background(), m); err != nil {
			h.t.Fatal(err)
		}
	}
}

func (h *harness) flush() {
	h.t.Helper()
	if err := h.en.Flush(context.Background()); err != nil {
		h.t.Fatal(err)
	}
}

// send seals the events as ingest does and applies them as log messages,
// one per partition.
func (h *harness) send(events ...nudge.Event) {
	h.t.Helper()
	byPart := map[int][]nudge.Event{}
	for _, e := range events {
		p := bus.PartitionOf(e.CustomerKey(), hParts)
		if _, err := shred.SealEvent(h.keys, &e); err != nil {
			if errors.Is(err, shred.ErrShredded) {
				continue
			}
			h.t.Fatal(err)
		}
		byPart[p] = append(byPart[p], e)
	}
	for p := range hParts {
		if len(byPart[p]) == 0 {
			continue
		}
		m := bus.Message{Partition: p, Seq: uint64(len(h.log) + 1), Payload: nudge.EncodeEvents(nil, byPart[p])}
		h.log = append(h.log, m)
		if err := h.en.Apply(context.Background(), m); err != nil {
			h.t.Fatal(err)
		}
	}
}

// advance moves the clock and lets the runtime fire what fell due and
// deliver what it sent, until nothing more is due.
func (h *harness) advance(d time.Duration) {
	h.t.Helper()
	h.clock.Advance(d)
	h.settle()
}

func (h *harness) settle() {
	h.t.Helper()
	ctx := context.Background()
	for range 10_000 {
		f, err := h.rt.FireDue(ctx)
		if err != nil {
			h.t.Fatal(err)
		}
		n, err := h.rt.Deliver(ctx)
		if err != nil {
			h.t.Fatal(err)
		}
		if f == 0 && n == 0 {
			return
		}
	}
	h.t.Fatal("the runtime does not settle")
}

// ev makes an event of user at the clock's time plus offset.
func (h *harness) ev(user, name, props string, offset time.Duration) nudge.Event {
	h.seq++
	at := h.clock.Now().Add(offset)
	e := nudge.Event{Type: nudge.Track, Event: name, MessageID: fmt.Sprintf("msg-%d", h.seq), Source: "web",
		UserID: user, Timestamp: at, ReceivedAt: h.clock.Now()}
	if props != "" {
		e.Properties = json.RawMessage(props)
	}
	return e
}

func (h *harness) identify(user, traits string) nudge.Event {
	e := h.ev(user, "", "", 0)
	e.Type, e.Traits = nudge.Identify, json.RawMessage(traits)
	return e
}

func (h *harness) find(id string) *profile.Profile {
	h.t.Helper()
	p, err := h.en.Find(context.Background(), id)
	if err != nil {
		h.t.Fatalf("find %s: %v", id, err)
	}
	return p
}

func (h *harness) stats(id string) VersionStats {
	h.t.Helper()
	v, err := h.rt.Stats(id)
	if err != nil {
		h.t.Fatal(err)
	}
	if len(v.Versions) == 0 {
		return VersionStats{}
	}
	return v.Versions[len(v.Versions)-1]
}

// sent takes what a channel was sent since the last call.
func (h *harness) sent(ch string) []*channel.Message { return h.chans[ch].take() }

// expect checks that the channels got exactly the messages of the steps
// given (channel:step, in any order: deliveries run concurrently), and
// nothing else.
func (h *harness) expect(want ...string) {
	h.t.Helper()
	var got []string
	for _, n := range []string{"email", "sms", "push", "webhook", "log"} {
		for _, m := range h.chans[n].take() {
			got = append(got, n+":"+m.Step)
		}
	}
	slices.Sort(got)
	want = slices.Clone(want)
	slices.Sort(want)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		h.t.Fatalf("sent %v, want %v", got, want)
	}
}

func journeyOf(t testing.TB, doc string) *Journey {
	t.Helper()
	j, err := Parse("test.yaml", []byte(doc))
	if err != nil {
		t.Fatalf("Parse:\n%s", strings.Join(errorList(err), "\n"))
	}
	return j
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

type eventT = nudge.Event

// countKeys counts the extension keys of a prefix, committed or not.
func (h *harness) countKeys(prefix string) int {
	h.t.Helper()
	n := 0
	err := h.en.Do(context.Background(), func(tx *profile.Tx) error {
		return tx.Scan(context.Background(), []byte(prefix), endOf(prefix), func(k, v []byte) error {
			n++
			return nil
		})
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}

func sealFor(h *harness, e *nudge.Event) (*shred.KeyRecord, error) { return shred.SealEvent(h.keys, e) }

// apply applies events that are sealed already (parts: the partition of
// each), one message per partition.
func (h *harness) apply(parts []int, events []nudge.Event) {
	h.t.Helper()
	byPart := map[int][]nudge.Event{}
	for i, e := range events {
		byPart[parts[i]] = append(byPart[parts[i]], e)
	}
	for p := range hParts {
		if len(byPart[p]) == 0 {
			continue
		}
		m := bus.Message{Partition: p, Seq: uint64(len(h.log) + 1), Payload: nudge.EncodeEvents(nil, byPart[p])}
		h.log = append(h.log, m)
		if err := h.en.Apply(context.Background(), m); err != nil {
			h.t.Fatal(err)
		}
	}
}
