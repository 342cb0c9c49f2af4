package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/nudge-dev/nudge"
	"github.com/nudge-dev/nudge/bus"
	"github.com/nudge-dev/nudge/shred"
	"github.com/nudge-dev/nudge/wal"
)

// memLog is an in-memory bus.Log that records what the forwarder does; fail
// makes the next appends fail.
type memLog struct {
	mu     sync.Mutex
	parts  int
	stored []bus.Batch
	last   map[int]uint64
	syncs  int
	fail   int
	// syncErr, when set, is what Sync answers.
	syncErr error
	// partial makes the next failing Append store this many batches first.
	partial int
	// hook, when set, runs at the start of every Append.
	hook func(ctx context.Context)
}

var _ bus.Log = (*memLog)(nil)

func newMemLog(parts int) *memLog { return &memLog{parts: parts, last: map[int]uint64{}} }

func (m *memLog) Partitions() int { return m.parts }
func (m *memLog) Append(ctx context.Context, batches []bus.Batch) error {
	if m.hook != nil {
		m.hook(ctx)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail > 0 {
		m.fail--
		n := min(m.partial, len(batches))
		m.partial = 0
		m.storeLocked(batches[:n])
		return errors.New("log unavailable")
	}
	m.storeLocked(batches)
	return ctx.Err() // stored all the same, as a real log may have
}

func (m *memLog) storeLocked(batches []bus.Batch) {
	for _, b := range batches {
		if b.ProducerPos <= m.last[b.Partition] {
			continue
		}
		m.stored = append(m.stored, bus.Batch{Partition: b.Partition, ProducerPos: b.ProducerPos, Payload: append([]byte(nil), b.Payload...)})
		m.last[b.Partition] = b.ProducerPos
	}
}

func (m *memLog) Sync(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.syncErr != nil {
		return m.syncErr
	}
	m.syncs++
	return nil
}
func (m *memLog) LastProducerPos(_ context.Context, p int) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last[p], nil
}
func (m *memLog) LastSeq(context.Context) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return uint64(len(m.stored)), nil
}
func (m *memLog) Read(context.Context, bus.ReadOptions, bus.Handler) error { return nil }
func (m *memLog) Subscribe(context.Context, string, []int, bus.Handler) error {
	return errors.New("not used")
}
func (m *memLog) Close() error { return nil }

// events returns the message ids stored per partition, in order.
func (m *memLog) events(t *testing.T) map[int][]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[int][]string{}
	for _, b := range m.stored {
		evs, err := nudge.DecodeEvents(b.Payload)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			out[b.Partition] = append(out[b.Partition], e.MessageID)
		}
	}
	return out
}

// openWAL opens a WAL in a fresh directory, closed when the test ends,
// and an empty in-memory log to forward it to.
func openWAL(t *testing.T, parts int, opts wal.Options) (*wal.WAL, *memLog) {
	t.Helper()
	w, err := wal.Open(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w, newMemLog(parts)
}

// count returns how many times each message id was stored.
func (m *memLog) count(t *testing.T) map[string]int {
	seen := map[string]int{}
	for _, ids := range m.events(t) {
		for _, id := range ids {
			seen[id]++
		}
	}
	return seen
}

func appendEvents(t *testing.T, w *wal.WAL, parts int, ids ...string) {
	t.Helper()
	var evs []nudge.Event
	for _, id := range ids {
		evs = append(evs, nudge.Event{Type: nudge.Track, MessageID: id, UserID: "user-" + id, Event: "E"})
	}
	rec, _, err := encodeRecord(evs, parts, testKeys(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Append(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
}

// testKeys opens a keyring in a fresh directory, closed when the test ends.
func testKeys(t testing.TB) *shred.Keyring {
	t.Helper()
	k, err := shred.Open(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestForwarderRoutesByPartitionInOrder(t *testing.T) {
	const parts = 4
	w, log := openWAL(t, parts, wal.Options{})
	f := NewForwarder(w, log, testKeys(t), quiet())
	if err := f.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	var want = map[int][]string{}
	for r := range 20 {
		var ids []string
		for i := range 5 {
			id := fmt.Sprintf("r%d-%d", r, i)
			ids = append(ids, id)
			p := bus.PartitionOf("user-"+id, parts)
			want[p] = append(want[p], id)
		}
		appendEvents(t, w, parts, ids...)
	}
	if err := f.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := log.events(t)
	for p := range parts {
		if fmt.Sprint(got[p]) != fmt.Sprint(want[p]) {
			t.Errorf("partition %d: %v, want %v", p, got[p], want[p])
		}
	}
	if log.syncs != 1 {
		t.Errorf("Drain synced the log %d times, want once", log.syncs)
	}
}

// TestForwarderRecoveryResendsExactlyWhatIsMissing plays a crash: the log
// holds the first records of some partitions only; a new forwarder over the
// same WAL must fill in the rest without storing anything twice.
func TestForwarderRecoveryResendsExactlyWhatIsMissing(t *testing.T) {
	const parts = 4
	dir := t.TempDir()
	w, err := wal.Open(dir, wal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	log := newMemLog(parts)
	first := NewForwarder(w, log, testKeys(t), quiet())
	first.Recover(context.Background())
	for r := range 10 {
		appendEvents(t, w, parts, fmt.Sprintf("a%d", r), fmt.Sprintf("b%d", r), fmt.Sprintf("c%d", r))
	}
	if err := first.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	complete := log.events(t)
	// Forget the tail of every partition, as a power cut before the log's
	// fsync would.
	log.mu.Lock()
	log.stored = log.stored[:len(log.stored)/2]
	log.last = map[int]uint64{}
	for _, b := range log.stored {
		log.last[b.Partition] = b.ProducerPos
	}
	log.mu.Unlock()
	w.Close()

	w, err = wal.Open(dir, wal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	second := NewForwarder(w, log, testKeys(t), quiet())
	second.MaxBatchBytes = 64 // other batch boundaries than the first run's
	if err := second.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := second.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := log.events(t); fmt.Sprint(got) != fmt.Sprint(complete) {
		t.Fatalf("after recovery: %v\nwant %v", got, complete)
	}
}

func TestForwarderRetriesAFailingLog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const parts = 2
		w, log := openWAL(t, parts, wal.Options{NoSync: true})
		log.fail = 3
		f := NewForwarder(w, log, testKeys(t), quiet())
		f.Recover(context.Background())
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- f.Run(ctx) }()
		appendEvents(t, w, parts, "x1", "x2")
		end, _ := w.Committed()
		if err := f.WaitForwarded(ctx, end); err != nil {
			t.Fatal(err)
		}
		if n := len(log.events(t)[bus.PartitionOf("user-x1", parts)]); n == 0 || log.fail != 0 {
			t.Fatalf("after 3 failures: stored %d, failures left %d", n, log.fail)
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v, want context.Canceled", err)
		}
	})
}

// A sync that fails (the sync loop runs beside the rounds) shows in Err
// until one succeeds, however many rounds succeed meanwhile.
func TestForwarderReportsAFailingSync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const parts = 2
		w, log := openWAL(t, parts, wal.Options{NoSync: true})
		log.syncErr = errors.New("disk gone")
		f := NewForwarder(w, log, testKeys(t), quiet())
		f.SyncBytes = 1
		f.Recover(context.Background())
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- f.Run(ctx) }()
		forward := func(users ...string) {
			t.Helper()
			appendEvents(t, w, parts, users...)
			end, _ := w.Committed()
			if err := f.WaitForwarded(ctx, end); err != nil {
				t.Fatal(err)
			}
		}
		forward("s1")
		synctest.Wait() // the sync loop has had its turn
		forward("s2")   // a round that succeeds after the failed sync
		if err := f.Err(); err == nil || !strings.Contains(err.Error(), "disk gone") {
			t.Fatalf("Err after a failed sync and a good round = %v", err)
		}
		synctest.Wait()
		log.mu.Lock()
		log.syncErr = nil
		log.mu.Unlock()
		forward("s3")
		synctest.Wait()
		if err := f.Err(); err != nil {
			t.Fatalf("Err after a sync succeeded = %v", err)
		}
		cancel()
		<-done
	})
}

func TestForwarderTruncatesWALAfterSync(t *testing.T) {
	const parts = 2
	w, log := openWAL(t, parts, wal.Options{SegmentSize: 4096})
	f := NewForwarder(w, log, testKeys(t), quiet())
	f.SyncBytes = 8 << 10
	f.MaxRoundBytes = 1 << 10
	f.Recover(context.Background())
	for i := range 200 {
		appendEvents(t, w, parts, fmt.Sprintf("t%d", i))
	}
	if err := f.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if log.syncs < 2 {
		t.Fatalf("synced %d times for ~%d KB forwarded, want one per SyncBytes", log.syncs, 200*80/1024)
	}
	n := 0
	if _, err := w.Read(0, func(uint64, []byte) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n >= 200 {
		t.Fatalf("the WAL still holds %d records after the log synced them", n)
	}
}

// TestForwarderPartialFailureStoresNothingTwice: an Append that stored some
// batches before failing is retried with other batch boundaries (more was
// written to the WAL meanwhile); the retry must resend only what is missing.
func TestForwarderPartialFailureStoresNothingTwice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const parts = 4
		w, log := openWAL(t, parts, wal.Options{NoSync: true})
		log.fail, log.partial = 1, 2
		f := NewForwarder(w, log, testKeys(t), quiet())
		f.Recover(context.Background())
		var ids []string
		for i := range 40 {
			ids = append(ids, fmt.Sprintf("p%d", i))
		}
		appendEvents(t, w, parts, ids[:20]...)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- f.Run(ctx) }()
		synctest.Wait() // the first round failed after storing 2 batches
		appendEvents(t, w, parts, ids[20:]...)
		end, _ := w.Committed()
		if err := f.WaitForwarded(ctx, end); err != nil {
			t.Fatal(err)
		}
		cancel()
		<-done
		seen := log.count(t)
		for _, id := range ids {
			if seen[id] != 1 {
				t.Errorf("event %s stored %d times", id, seen[id])
			}
		}
	})
}

// TestForwarderShutdownMidRoundStoresNothingTwice stops Run while an append
// is in flight, the way SIGTERM does: the log stores the batches whatever
// the context says, so the round must count them, or Drain, cutting its
// batches differently, stores them again.
func TestForwarderShutdownMidRoundStoresNothingTwice(t *testing.T) {
	const parts = 2
	w, log := openWAL(t, parts, wal.Options{NoSync: true})
	inAppend, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	log.hook = func(ctx context.Context) {
		once.Do(func() {
			close(inAppend)
			<-release
		})
	}
	f := NewForwarder(w, log, testKeys(t), quiet())
	f.Recover(context.Background())
	appendEvents(t, w, parts, "s1", "s2", "s3")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- f.Run(ctx) }()
	<-inAppend
	cancel()
	appendEvents(t, w, parts, "s4", "s5") // arrives while the round is in flight
	close(release)
	<-done
	if err := f.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	seen := log.count(t)
	for _, id := range []string{"s1", "s2", "s3", "s4", "s5"} {
		if seen[id] != 1 {
			t.Errorf("event %s stored %d times", id, seen[id])
		}
	}
}
func (m *memLog) Get(context.Context, uint64) (bus.Message, error) {
	return bus.Message{}, bus.ErrNotFound
}
