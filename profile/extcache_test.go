package profile_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/nudge-dev/nudge"
	"github.com/nudge-dev/nudge/profile"
)

// The engine caches the reactor's values between commits. With caches of
// two profiles and a commit every few events, values are read, written,
// committed and evicted all the time; every reactor read must still be
// its last write, and the profiles and counts come out as applying the
// same log one message at a time (no cache at play) makes them.
func TestCachedExtensionValuesAreTheLastWritten(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var events []nudge.Event
	for i := range 3000 {
		c := rng.IntN(40)
		e := ev(nudge.Track, fmt.Sprint("e", i), i, func(e *nudge.Event) {
			e.AnonymousID, e.Event = fmt.Sprint("anon", c), "Viewed"
		})
		if rng.IntN(4) == 0 { // logged in: the anonymous profile merges into the user's
			e.UserID = fmt.Sprint("user", c%25) // some users on two devices
		}
		events = append(events, e)
	}

	cfg := profile.Config{CacheProfiles: 2, FlushEvents: 5}
	want := newHarness(t, cfg)
	want.en.SetReactor(&counter{})
	got := newHarness(t, cfg)
	log := &memLog{}
	for i := 0; i < len(events); {
		n := 1 + rng.IntN(4) // a few events a message
		batch := events[i:min(i+n, len(events))]
		i += n
		want.send(batch...)
		log.msgs = append(log.msgs, got.seal(batch...)...)
	}
	want.flush()

	en := profile.NewEngine(got.cfg, got.store, got.keys, log, slog.New(slog.NewTextHandler(io.Discard, nil)))
	en.SetReactor(&freshCounter{t: t, last: map[string][]byte{}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- en.Run(ctx) }()
	if err := en.WaitApplied(ctx, log.msgs[len(log.msgs)-1].Seq); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got.en = en
	t.Logf("%d commits", en.Stats().Flushes)
	for c := range 40 {
		id := fmt.Sprint("anon", c)
		if w, g := canonical(t, want.find(id)), canonical(t, got.find(id)); w != g {
			t.Errorf("%s:\nwant %s\n got %s", id, w, g)
		}
	}
	// Pseudonyms differ between the two keyrings: compare the counts.
	values := func(m map[string]int) []int { return slices.Sorted(maps.Values(m)) }
	if w, g := values(want.counts(t)), values(got.counts(t)); !slices.Equal(w, g) {
		t.Errorf("reactor counts:\nwant %v\n got %v", w, g)
	}
}
