package dedup

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)

func claimCommit(t *testing.T, ix *Index, now time.Time, keys ...Key) []bool {
	t.Helper()
	c, err := ix.Claim(context.Background(), keys, now)
	if err != nil {
		t.Fatal(err)
	}
	ix.Commit(c, now)
	return c.Fresh()
}

func TestDuplicatesWithinWindow(t *testing.T) {
	ix := New(24*time.Hour, 0)
	a, b := KeyOf("web", "m1"), KeyOf("web", "m2")
	if got := claimCommit(t, ix, t0, a, b, a); !slices.Equal(got, []bool{true, true, false}) {
		t.Fatalf("first claim = %v, want the repeat inside the request dropped", got)
	}
	if got := claimCommit(t, ix, t0.Add(23*time.Hour), a); got[0] {
		t.Fatal("a retry after 23h was accepted again")
	}
	if got := claimCommit(t, ix, t0.Add(26*time.Hour), b); !got[0] {
		t.Fatal("a key past the window is still remembered")
	}
	if KeyOf("web", "m1") == KeyOf("app", "m1") {
		t.Fatal("the same messageId from two sources must be two events")
	}
}

func TestReleaseLetsRetryStore(t *testing.T) {
	ix := New(time.Hour, 0)
	k := KeyOf("web", "m1")
	c, _ := ix.Claim(context.Background(), []Key{k}, t0)
	ix.Release(c)
	if got := claimCommit(t, ix, t0, k); !got[0] {
		t.Fatal("a key whose write failed must be claimable again")
	}
}

func TestDuplicateWaitsForFirstCopy(t *testing.T) {
	ix := New(time.Hour, 0)
	k := KeyOf("web", "m1")
	first, _ := ix.Claim(context.Background(), []Key{k}, t0)
	got := make(chan []bool)
	go func() {
		c, err := ix.Claim(context.Background(), []Key{k}, t0)
		if err != nil {
			t.Error(err)
			got <- nil
			return
		}
		got <- c.Fresh()
	}()
	select {
	case <-got:
		t.Fatal("the duplicate did not wait for the first copy's outcome")
	case <-time.After(20 * time.Millisecond):
	}
	ix.Release(first) // the first write failed: the retry must store it
	if f := <-got; !f[0] {
		t.Fatal("after the first copy failed, the second must be fresh")
	}
}

func TestClaimHonoursContext(t *testing.T) {
	ix := New(time.Hour, 0)
	k := KeyOf("web", "m1")
	ix.Claim(context.Background(), []Key{k}, t0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := ix.Claim(ctx, []Key{k}, t0); err == nil {
		t.Fatal("want the context's error while the key is pending")
	}
}

func TestMemoryBoundWithinOneBucket(t *testing.T) {
	ix := New(24*time.Hour, chunkKeys)
	for i := range 3 * chunkKeys {
		claimCommit(t, ix, t0, Key(i))
	}
	if st := ix.Stats(); st.Keys > chunkKeys || st.Evicted != uint64(2*chunkKeys) {
		t.Fatalf("stats = %+v, want at most %d keys, the oldest evicted", st, chunkKeys)
	}
	if got := claimCommit(t, ix, t0, Key(3*chunkKeys-1), Key(0)); got[0] || !got[1] {
		t.Fatalf("fresh = %v, want the newest key remembered and the oldest forgotten", got)
	}
}

func TestMemoryBoundDropsOldestBucket(t *testing.T) {
	ix := New(24*time.Hour, 3)
	claimCommit(t, ix, t0, 1, 2)
	claimCommit(t, ix, t0.Add(2*time.Hour), 3, 4)
	st := ix.Stats()
	if st.Keys != 2 || st.Evicted != 2 {
		t.Fatalf("stats = %+v, want the oldest bucket (2 keys) evicted", st)
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dedup.snap")
	ix := New(24*time.Hour, 0)
	claimCommit(t, ix, t0, 1, 2)
	claimCommit(t, ix, t0.Add(5*time.Hour), 3)
	if err := ix.Save(path, 42); err != nil {
		t.Fatal(err)
	}
	back := New(24*time.Hour, 0)
	now := t0.Add(25 * time.Hour) // keys 1 and 2 have aged out, 3 has not
	mark, err := back.Load(path, now)
	if err != nil || mark != 42 {
		t.Fatalf("Load = %d, %v", mark, err)
	}
	if got := claimCommit(t, back, now, 1, 3); !slices.Equal(got, []bool{true, false}) {
		t.Fatalf("after load: fresh = %v, want [true false]", got)
	}
	empty := New(time.Hour, 0)
	if mark, err := empty.Load(filepath.Join(t.TempDir(), "none"), now); err != nil || mark != 0 {
		t.Fatalf("missing snapshot: %d, %v", mark, err)
	}
}

func BenchmarkClaimCommit(b *testing.B) {
	ix := New(24*time.Hour, 0)
	keys := make([]Key, 100)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		for j := range keys {
			keys[j] = Key(i*100 + j)
		}
		c, _ := ix.Claim(context.Background(), keys, t0)
		ix.Commit(c, t0)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*100), "ns/key")
}

// TestSaveWhileAccepting saves a snapshot while requests keep committing
// keys: the race detector checks that the snapshot reads nothing a commit
// writes, and the snapshot holds at least every key committed before it.
func TestSaveWhileAccepting(t *testing.T) {
	ix := New(24*time.Hour, 0)
	for i := range 3 * chunkKeys {
		claimCommit(t, ix, t0, Key(i))
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 3 * chunkKeys; i < 6*chunkKeys; i++ {
			claimCommit(t, ix, t0, Key(i))
		}
	}()
	path := filepath.Join(t.TempDir(), "snap")
	if err := ix.Save(path, 1); err != nil {
		t.Fatal(err)
	}
	<-done
	back := New(24*time.Hour, 0)
	if _, err := back.Load(path, t0); err != nil {
		t.Fatal(err)
	}
	if n := back.Stats().Keys; n < 3*chunkKeys || n > 6*chunkKeys {
		t.Fatalf("snapshot holds %d keys, want between %d and %d", n, 3*chunkKeys, 6*chunkKeys)
	}
}
