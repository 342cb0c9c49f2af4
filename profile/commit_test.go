package profile_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nudge-dev/nudge"
	"github.com/nudge-dev/nudge/profile"
	"github.com/nudge-dev/nudge/profile/pebblestore"
)

// gatedStore holds each commit until the reactor has seen an event of a
// later message than the commit holds, so that a test applies events while
// a commit is in flight; after openAll commits pass at once.
type gatedStore struct {
	*pebblestore.Store
	mu      sync.Mutex
	changed sync.Cond // on mu
	reacted uint64    // the last message the reactor saw an event of
	held    uint64    // the last message of the commit held (0: none)
	open    bool
}

func (s *gatedStore) Commit(ctx context.Context, b *profile.Batch) error {
	last := b.Positions[len(b.Positions)-1]
	s.mu.Lock()
	s.held = last
	s.changed.Broadcast()
	for !s.open && s.reacted <= last {
		s.changed.Wait()
	}
	s.held = 0
	s.mu.Unlock()
	return s.Store.Commit(ctx, b)
}

// reacted records that the reactor saw an event of message seq, which
// lets the commit held through; it reports whether one was held.
func (s *gatedStore) react(seq uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	held := s.held != 0 && s.held < seq
	s.reacted = max(s.reacted, seq)
	s.changed.Broadcast()
	return held
}

// waitHeld returns once the commit that ends with message seq is held.
func (s *gatedStore) waitHeld(seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.held != seq {
		s.changed.Wait()
	}
}

func (s *gatedStore) openAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.open = true
	s.changed.Broadcast()
}

// checkedCounter is the freshCounter (every read of its keys returns what
// it wrote last, wherever that is: the batch, a commit in flight, the
// store), which then lets a held commit through. The
// events of the test are one a message, message e<i> at sequence i+1.
type checkedCounter struct {
	freshCounter
	gs       *gatedStore
	overlaps int // events applied while a commit was held
}

func (c *checkedCounter) React(ctx context.Context, tx *profile.Tx, p *profile.Profile, e *nudge.Event) error {
	if err := c.freshCounter.React(ctx, tx, p, e); err != nil {
		return err
	}
	i, err := strconv.Atoi(strings.TrimPrefix(e.MessageID, "e"))
	if err != nil {
		return err
	}
	if c.gs.react(uint64(i) + 1) {
		c.overlaps++
	}
	return nil
}

// gatedRun runs an engine over h's store behind a gatedStore, with the
// checkedCounter reactor, on a log of one event a message (e0, e1, ...);
// stop lets every commit through, ends Run and returns its error.
type gatedRun struct {
	en   *profile.Engine
	gs   *gatedStore
	c    *checkedCounter
	stop func() error
}

func startGated(t *testing.T, h *harness, events []nudge.Event) *gatedRun {
	t.Helper()
	gs := &gatedStore{Store: h.store}
	gs.changed.L = &gs.mu
	log := &memLog{}
	for i, e := range events {
		if e.MessageID != fmt.Sprint("e", i) {
			t.Fatalf("event %d is %s", i, e.MessageID)
		}
		log.msgs = append(log.msgs, h.seal(e)...)
	}
	r := &gatedRun{gs: gs, c: &checkedCounter{freshCounter: freshCounter{t: t, last: map[string][]byte{}}, gs: gs}}
	r.en = profile.NewEngine(h.cfg, gs, h.keys, log, slog.New(slog.NewTextHandler(io.Discard, nil)))
	r.en.SetReactor(r.c)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.en.Run(ctx) }()
	var once sync.Once
	var err error
	r.stop = func() error {
		once.Do(func() {
			gs.openAll()
			cancel()
			err = <-done
		})
		return err
	}
	t.Cleanup(func() { r.stop() }) // before the harness closes the store
	if err := r.en.WaitApplied(ctx, uint64(len(log.msgs))); err != nil {
		t.Fatal(err)
	}
	return r
}

// The consumer commits in the background while it applies what follows:
// what it applied stays visible meanwhile (extension keys to the reactor,
// profiles and histories to readers, across cache evictions), and what it
// committed is what a restart finds.
func TestRunCommitsInTheBackground(t *testing.T) {
	const users, each = 10, 25
	// A commit every 25 events (the last one holds the last 25), and a
	// cache smaller than the profiles.
	h := newHarness(t, profile.Config{FlushEvents: 25, FlushEvery: time.Hour, CacheProfiles: 3})
	var events []nudge.Event
	for i := range users * each {
		events = append(events, ev(nudge.Track, fmt.Sprint("e", i), i, func(e *nudge.Event) {
			e.AnonymousID, e.Event = fmt.Sprint("anon-", i%users), "Viewed"
		}))
	}
	r := startGated(t, h, events)
	ctx := context.Background()
	// The last commit is held: reads see what it holds.
	r.gs.waitHeld(users * each)
	for u := range users {
		p, err := r.en.Find(ctx, fmt.Sprint("anon-", u))
		if err != nil {
			t.Fatal(err)
		}
		if n := p.State.Counts["Viewed"]; n != each {
			t.Fatalf("anon-%d: %d events counted, want %d", u, n, each)
		}
		events, _, err := r.en.History(ctx, p, profile.Cursor{}, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(events) != each {
			t.Fatalf("anon-%d: %d events in the history, want %d", u, len(events), each)
		}
	}
	check := func(when string, en *profile.Engine) {
		t.Helper()
		n := 0
		err := en.Do(ctx, func(tx *profile.Tx) error {
			return tx.Scan(ctx, []byte("count/"), []byte("count0"), func(k, v []byte) error {
				if string(v) != fmt.Sprint(each) {
					return fmt.Errorf("%s = %s, want %d", k, v, each)
				}
				n++
				return nil
			})
		})
		if err != nil || n != users {
			t.Fatalf("%s: %d counts (%v), want %d", when, n, err, users)
		}
	}
	check("while a commit is in flight", r.en)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d events applied while a commit was held; %d commits", r.c.overlaps, r.en.Stats().Flushes)
	// What Run committed, positions included, is what a restart finds:
	// the replay applies nothing twice.
	h.store.Close()
	h.open()
	h.en.SetReactor(&counter{})
	for _, m := range h.log {
		if err := h.en.Apply(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	check("after a restart", h.en)
}

// A profile that a merge dropped stays gone while the commit that deletes
// its record is in flight.
func TestMergeInFlight(t *testing.T) {
	h := newHarness(t, profile.Config{FlushEvents: 3, FlushEvery: time.Hour, CacheProfiles: 1})
	view := func(i int, anon string) nudge.Event {
		return ev(nudge.Track, fmt.Sprint("e", i), i, func(e *nudge.Event) { e.AnonymousID, e.Event = anon, "Viewed" })
	}
	events := []nudge.Event{view(0, "a"), view(1, "b"), view(2, "c")}
	// The login takes a's profile to the user id's: a's goes.
	events = append(events, view(3, "a"), view(4, "b"),
		ev(nudge.Identify, "e5", 5, func(e *nudge.Event) { e.UserID, e.AnonymousID = "u", "a" }))
	r := startGated(t, h, events)
	ctx := context.Background()
	r.gs.waitHeld(6)
	a := h.keys.Pseudonym("a")
	if p, err := r.en.Find(ctx, a.String()); !errors.Is(err, profile.ErrNotFound) {
		t.Fatalf("the merged profile's old id finds %+v (%v)", p, err)
	}
	p, err := r.en.Find(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if p.ID.P != h.keys.Pseudonym("u") || p.State.Counts["Viewed"] != 2 {
		t.Fatalf("a's profile is %s with %v", p.ID.P, p.State.Counts)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.en.Find(ctx, a.String()); !errors.Is(err, profile.ErrNotFound) {
		t.Fatalf("after the commit the merged profile's old id finds: %v", err)
	}
}

// Identifiers first seen while a commit is in flight keep their profile
// when the caches are trimmed after it: one profile per person.
func TestNewIdentifiersWhileCommitting(t *testing.T) {
	const users, each = 20, 2
	h := newHarness(t, profile.Config{FlushEvents: 3, FlushEvery: time.Hour, CacheProfiles: 1})
	var events []nudge.Event
	for i := range users * each {
		// Each person's events in a row: the second one often after a
		// commit that ended while the first was not committed.
		events = append(events, ev(nudge.Track, fmt.Sprint("e", i), i, func(e *nudge.Event) {
			e.AnonymousID, e.Event = fmt.Sprint("anon-", i/each), "Viewed"
		}))
	}
	r := startGated(t, h, events)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if n := r.en.Stats().Profiles; n != users {
		t.Fatalf("%d profiles made, want %d", n, users)
	}
	for u := range users {
		p, err := r.en.Find(context.Background(), fmt.Sprint("anon-", u))
		if err != nil {
			t.Fatal(err)
		}
		if n := p.State.Counts["Viewed"]; n != each {
			t.Fatalf("anon-%d: %d events counted, want %d", u, n, each)
		}
	}
}

// committedChecker is a reactor whose Committer checks that every key it
// wrote into the batches through the generation committed is in the store
// with its last value from those batches. With urgent set every event asks
// for a commit at once (a send job does).
type committedChecker struct {
	counter
	t         *testing.T
	store     profile.Store
	urgent    bool
	mu        sync.Mutex            // the test reads what the engine's calls write
	writes    map[string][]genValue // each key's writes not yet checked, oldest first
	committed []uint64              // the generations Committed was told
	told      chan struct{}         // kicked by Committed
}

type genValue struct {
	gen uint64
	v   []byte
}

func (c *committedChecker) React(ctx context.Context, tx *profile.Tx, p *profile.Profile, e *nudge.Event) error {
	if err := c.counter.React(ctx, tx, p, e); err != nil {
		return err
	}
	k := string(key(p.ID))
	v, _, _ := tx.Get(ctx, key(p.ID))
	c.mu.Lock()
	c.writes[k] = append(c.writes[k], genValue{tx.Gen(), v})
	c.mu.Unlock()
	if c.urgent {
		tx.Urgent()
	}
	return nil
}

func (c *committedChecker) Committed(gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := len(c.committed); n > 0 && gen <= c.committed[n-1] {
		c.t.Errorf("Committed %d after %d", gen, c.committed[n-1])
	}
	c.committed = append(c.committed, gen)
	for k, ws := range c.writes {
		i := len(ws) - 1
		for i >= 0 && ws[i].gen > gen {
			i--
		}
		if i < 0 {
			continue // every write is in a later batch
		}
		if v, _, err := c.store.Ext(context.Background(), []byte(k)); err != nil || !bytes.Equal(v, ws[i].v) {
			c.t.Errorf("Committed %d: the store has %s = %q (%v), last written through it %q (batch %d)", gen, k, v, err, ws[i].v, ws[i].gen)
		}
		c.writes[k] = ws[i+1:]
	}
	select {
	case c.told <- struct{}{}:
	default:
	}
}

// untold counts the writes Committed has not covered yet.
func (c *committedChecker) untold() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, ws := range c.writes {
		n += len(ws)
	}
	return n
}

// A Committer hears of the batches through a generation once they are in
// the store, although commits end in the background while later batches
// are written. With every event urgent the commits group messages (the
// urgent writes made while a commit is in flight go together in the next
// one), and the last is told of without a further message.
func TestCommittedFollowsTheReactorsWrites(t *testing.T) {
	for _, urgent := range []bool{false, true} {
		t.Run(fmt.Sprint("urgent=", urgent), func(t *testing.T) {
			h := newHarness(t, profile.Config{FlushEvents: 5, FlushEvery: time.Hour})
			log := &memLog{}
			en := profile.NewEngine(h.cfg, h.store, h.keys, log, slog.New(slog.NewTextHandler(io.Discard, nil)))
			c := &committedChecker{t: t, store: h.store, urgent: urgent, writes: map[string][]genValue{}, told: make(chan struct{}, 1)}
			en.SetReactor(c)
			const n = 400
			for i := range n {
				log.msgs = append(log.msgs, h.seal(ev(nudge.Track, fmt.Sprint("e", i), i, func(e *nudge.Event) {
					e.AnonymousID, e.Event = fmt.Sprint("anon-", i%7), "Viewed"
				}))...)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- en.Run(ctx) }()
			if err := en.WaitApplied(ctx, uint64(len(log.msgs))); err != nil {
				t.Fatal(err)
			}
			if urgent {
				// Nothing follows the last message: Run itself commits its
				// batch once the commit before ends, and tells of it.
				for c.untold() > 0 {
					select {
					case <-c.told:
					case <-time.After(10 * time.Second):
						t.Fatalf("%d writes never told as committed", c.untold())
					}
				}
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if len(c.committed) == 0 {
				t.Fatal("Committed was never called")
			}
			flushes := en.Stats().Flushes
			if urgent && flushes >= n {
				t.Errorf("%d commits for %d urgent messages: none grouped", flushes, n)
			}
			t.Logf("%d commits, Committed %d times", flushes, len(c.committed))
		})
	}
}
