package profile_test

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"testing"

	"github.com/nudge-dev/nudge"
	"github.com/nudge-dev/nudge/profile"
)

// counter is a reactor that counts events per profile in extension keys.
type counter struct {
	merges, erasures int
}

func key(id profile.Ref) []byte { return []byte("count/" + id.P.String()) }

func (c *counter) React(ctx context.Context, tx *profile.Tx, p *profile.Profile, _ *nudge.Event) error {
	v, _, err := tx.Get(ctx, key(p.ID))
	if err != nil {
		return err
	}
	n, _ := strconv.Atoi(string(v))
	tx.Set(key(p.ID), []byte(strconv.Itoa(n+1)))
	return nil
}

func (c *counter) Merged(ctx context.Context, tx *profile.Tx, from, to profile.Ref) error {
	c.merges++
	a, _, err := tx.Get(ctx, key(from))
	if err != nil {
		return err
	}
	b, _, err := tx.Get(ctx, key(to))
	if err != nil {
		return err
	}
	x, _ := strconv.Atoi(string(a))
	y, _ := strconv.Atoi(string(b))
	tx.Delete(key(from))
	tx.Set(key(to), []byte(strconv.Itoa(x+y)))
	return nil
}

func (c *counter) Erased(_ context.Context, tx *profile.Tx, er *profile.Erasure) error {
	c.erasures++
	tx.Delete(key(er.Profile))
	return nil
}

// freshCounter is the counter reactor, which checks that every read
// returns what it wrote last.
type freshCounter struct {
	counter
	t    *testing.T
	last map[string][]byte
}

func (c *freshCounter) React(ctx context.Context, tx *profile.Tx, p *profile.Profile, e *nudge.Event) error {
	k := key(p.ID)
	if v, _, err := tx.Get(ctx, k); err != nil {
		return err
	} else if !bytes.Equal(v, c.last[string(k)]) {
		c.t.Errorf("event %s: read %q, last wrote %q", e.MessageID, v, c.last[string(k)])
	}
	if err := c.counter.React(ctx, tx, p, e); err != nil {
		return err
	}
	v, _, _ := tx.Get(ctx, k)
	c.last[string(k)] = v
	return nil
}

func (c *freshCounter) Merged(ctx context.Context, tx *profile.Tx, from, to profile.Ref) error {
	if err := c.counter.Merged(ctx, tx, from, to); err != nil {
		return err
	}
	v, _, _ := tx.Get(ctx, key(to))
	c.last[string(key(to))], c.last[string(key(from))] = v, nil
	return nil
}

func (h *harness) counts(t *testing.T) map[string]int {
	t.Helper()
	out := map[string]int{}
	err := h.en.Do(context.Background(), func(tx *profile.Tx) error {
		return tx.Scan(context.Background(), []byte("count/"), []byte("count0"), func(k, v []byte) error {
			n, err := strconv.Atoi(string(v))
			out[string(k)] = n
			return err
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestReactorStateCommitsWithTheProfiles(t *testing.T) {
	h := newHarness(t, profile.Config{})
	c := &counter{}
	h.en.SetReactor(c)
	for i := range 20 {
		h.send(ev(nudge.Track, fmt.Sprint("e", i), i, func(e *nudge.Event) {
			e.AnonymousID, e.Event = fmt.Sprint("anon-", i%2), "Viewed"
		}))
		if i == 9 {
			h.flush()
		}
	}
	// Scans see committed and pending writes alike.
	if got := h.counts(t); len(got) != 2 || got["count/"+h.find("anon-0").ID.P.String()] != 10 {
		t.Fatalf("counts %v", got)
	}
	// A crash loses the uncommitted half of both the profiles and the
	// reactor's state; the replay redoes both, once.
	h.store.Close()
	h.open()
	h.en.SetReactor(c)
	for _, m := range h.log {
		if err := h.en.Apply(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	got := h.counts(t)
	if got["count/"+h.find("anon-0").ID.P.String()] != 10 || got["count/"+h.find("anon-1").ID.P.String()] != 10 {
		t.Fatalf("after a crash and replay: %v, want 10 each", got)
	}
	// A login links the two devices: the reactor hears of the merge and
	// the counts follow the profile.
	h.send(ev(nudge.Identify, "login0", 30, func(e *nudge.Event) { e.UserID, e.AnonymousID = "u", "anon-0" }))
	h.send(ev(nudge.Alias, "login1", 31, func(e *nudge.Event) { e.UserID, e.PreviousID = "u", "anon-1" }))
	p := h.find("u")
	if got := h.counts(t); len(got) != 1 || got["count/"+p.ID.P.String()] != 22 || c.merges < 2 {
		t.Fatalf("after the merges: %v (%d merges reported), want one profile with 22", got, c.merges)
	}
	if _, err := h.en.Erase(context.Background(), "u"); err != nil {
		t.Fatal(err)
	}
	if got := h.counts(t); len(got) != 0 || c.erasures != 1 {
		t.Fatalf("after the erasure: %v, %d erasures", got, c.erasures)
	}
}
