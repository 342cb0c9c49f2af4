package journey

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nudge-dev/nudge"
	"github.com/nudge-dev/nudge/channel"
	"github.com/nudge-dev/nudge/profile"
	"github.com/nudge-dev/nudge/shred"
)

// The runtime's tests run it inside a real profile engine over a Pebble
// store and a keyring in a temporary directory, fed sealed log messages by
// hand (as profile/engine_test.go does), with a fake clock: no sleeps.

const hParts = 8

// fakeClock and recorder are the sandbox's (sandbox.go).
type (
	fakeClock = VirtualClock
	recorder  = Recorder
)

func newFakeClock(t time.Time) *fakeClock { return NewVirtualClock(t) }

// awaitWait blocks until someone waits on the clock for at least until.
func awaitWait(t testing.TB, c *fakeClock, until time.Time) {
	t.Helper()
	if !c.AwaitWait(until, 10*time.Second) {
		t.Fatalf("nobody waits on the clock until %v", until)
	}
}

var hT0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// harness is a Sandbox that fails the test on errors.
type harness struct {
	*Sandbox
	t   testing.TB
	seq int
}

func newHarness(t testing.TB, journeys ...*Journey) *harness {
	t.Helper()
	sb, err := NewSandbox(SandboxConfig{Dir: t.TempDir(), Start: hT0, Journeys: journeys,
		Channels: []string{"email", "sms", "push", "webhook", "log"}, Partitions: hParts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	return &harness{Sandbox: sb, t: t}
}

// crash loses what the engine did not commit, reopens the store and
// replays the whole log (the engine skips what it committed).
func (h *harness) crash() {
	h.t.Helper()
	if err := h.Crash(); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) flush() {
	h.t.Helper()
	if err := h.Flush(); err != nil {
		h.t.Fatal(err)
	}
}

// send seals the events as ingest does and applies them as log messages,
// one per partition.
func (h *harness) send(events ...nudge.Event) {
	h.t.Helper()
	if err := h.Send(events...); err != nil {
		h.t.Fatal(err)
	}
}

// advance moves the clock and lets the runtime fire what fell due and
// deliver what it sent, until nothing more is due.
func (h *harness) advance(d time.Duration) {
	h.t.Helper()
	h.Clock.Advance(d)
	h.settle()
}

func (h *harness) settle() {
	h.t.Helper()
	if err := h.Settle(); err != nil {
		h.t.Fatal(err)
	}
}

// ev makes an event of user at the clock's time plus offset.
func (h *harness) ev(user, name, props string, offset time.Duration) nudge.Event {
	h.seq++
	at := h.Clock.Now().Add(offset)
	e := nudge.Event{Type: nudge.Track, Event: name, MessageID: fmt.Sprintf("msg-%d", h.seq), Source: "web",
		UserID: user, Timestamp: at, ReceivedAt: h.Clock.Now()}
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
	p, err := h.Engine.Find(context.Background(), id)
	if err != nil {
		h.t.Fatalf("find %s: %v", id, err)
	}
	return p
}

func (h *harness) stats(id string) VersionStats {
	h.t.Helper()
	v, err := h.Runtime.Stats(id)
	if err != nil {
		h.t.Fatal(err)
	}
	if len(v.Versions) == 0 {
		return VersionStats{}
	}
	return v.Versions[len(v.Versions)-1]
}

// sent takes what a channel was sent since the last call.
func (h *harness) sent(ch string) []*channel.Message { return h.Channels[ch].Take() }

// expect checks that the channels got exactly the messages of the steps
// given (channel:step, in any order: deliveries run concurrently), and
// nothing else.
func (h *harness) expect(want ...string) {
	h.t.Helper()
	var got []string
	for _, n := range []string{"email", "sms", "push", "webhook", "log"} {
		for _, m := range h.Channels[n].Take() {
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
	err := h.Engine.Do(context.Background(), func(tx *profile.Tx) error {
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

func sealFor(h *harness, e *nudge.Event) (*shred.KeyRecord, error) { return shred.SealEvent(h.Keys, e) }

// apply applies events that are sealed already (parts: the partition of
// each), one message per partition.
func (h *harness) apply(parts []int, events []nudge.Event) {
	h.t.Helper()
	if err := h.Apply(parts, events); err != nil {
		h.t.Fatal(err)
	}
}
