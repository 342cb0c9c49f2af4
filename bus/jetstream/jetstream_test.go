package jetstream

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nudge-dev/nudge/bus"
	"github.com/nudge-dev/nudge/bus/bustest"
)

// testLogger shows warnings and errors; it writes to stderr rather than to
// t, since connection callbacks may log after a test has finished.
func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fastRetry shortens the handler retry backoff, so that the suite's retry
// test does not wait for real backoff, and the consumers' AckWait, which a
// subscriber resuming after a restart may wait for.
func fastRetry(l *Log) {
	l.retryMin = time.Millisecond
	l.retryMax = 10 * time.Millisecond
	l.ackWait = 2 * time.Second
}

func openEmbedded(t testing.TB, dir string, partitions int) *Log {
	t.Helper()
	l, err := Open(testCtx(t), Config{Dir: dir, Partitions: partitions, Logger: testLogger()})
	if err != nil {
		t.Fatalf("Open embedded: %v", err)
	}
	fastRetry(l)
	return l
}

func TestEmbedded(t *testing.T) {
	bustest.Run(t, func(t *testing.T, partitions int) bus.Log {
		l := openEmbedded(t, t.TempDir(), partitions)
		t.Cleanup(func() {
			if err := l.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return l
	})
}

// externalURL is the server TestExternal uses: $NUDGE_NATS_URL, by default
// the local one CI starts.
func externalURL() string {
	if u := os.Getenv("NUDGE_NATS_URL"); u != "" {
		return u
	}
	return "nats://127.0.0.1:4222"
}

// requireExternal fails (not skips) the test when no JetStream server is
// reachable: CI starts one, and a skipped adapter test would hide that.
func requireExternal(t *testing.T) string {
	t.Helper()
	url := externalURL()
	nc, err := nats.Connect(url, nats.Timeout(3*time.Second))
	if err != nil {
		t.Fatalf("no NATS server at %s (%v): start one with JetStream enabled, e.g. `nats-server -js` "+
			"(CI starts it; set NUDGE_NATS_URL to use another)", url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream at %s: %v", url, err)
	}
	if _, err := js.AccountInfo(testCtx(t)); err != nil {
		t.Fatalf("NATS server at %s has no JetStream (%v): start it with -js (CI does)", url, err)
	}
	return url
}

func uniqueName() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%d_%s", time.Now().UnixNano(), hex.EncodeToString(b[:]))
}

// openExternal opens a log on a stream and subject prefix of its own, and
// deletes the stream in cleanup.
func openExternal(t *testing.T, url, id string, partitions int) (*Log, error) {
	l, err := Open(testCtx(t), Config{
		URL:        url,
		Stream:     "NUDGE_TEST_" + id,
		Subject:    "nudgetest." + id,
		Partitions: partitions,
		Logger:     testLogger(),
	})
	if err != nil {
		return nil, err
	}
	fastRetry(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := l.js.DeleteStream(ctx, l.cfg.Stream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("delete stream %s: %v", l.cfg.Stream, err)
		}
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return l, nil
}

func TestExternal(t *testing.T) {
	url := requireExternal(t)
	bustest.Run(t, func(t *testing.T, partitions int) bus.Log {
		l, err := openExternal(t, url, uniqueName(), partitions)
		if err != nil {
			t.Fatalf("Open %s: %v", url, err)
		}
		return l
	})
}

func TestExternalPartitionMismatch(t *testing.T) {
	url := requireExternal(t)
	id := uniqueName()
	if _, err := openExternal(t, url, id, 4); err != nil {
		t.Fatal(err)
	}
	// The count survives in the stream's config even on servers that drop
	// metadata (before 2.10).
	_, err := openExternal(t, url, id, 6)
	if err == nil || !strings.Contains(err.Error(), "4") || !strings.Contains(err.Error(), "6") {
		t.Fatalf("reopen with 6 partitions: err %v, want one naming 4 and 6", err)
	}
	if _, err := openExternal(t, url, id, 4); err != nil {
		t.Fatalf("reopen with the same count: %v", err)
	}
}

func TestEmbeddedPartitionMismatch(t *testing.T) {
	dir := t.TempDir()
	l := openEmbedded(t, dir, 4)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := Open(testCtx(t), Config{Dir: dir, Partitions: 8, Logger: testLogger()})
	if err == nil || !strings.Contains(err.Error(), "4") || !strings.Contains(err.Error(), "8") {
		t.Fatalf("reopen with 8 partitions: err %v, want one naming 4 and 8", err)
	}
	// The default count is checked as well, and the failed opens changed
	// nothing.
	if _, err := Open(testCtx(t), Config{Dir: dir, Logger: testLogger()}); err == nil {
		t.Fatal("reopen of a 4-partition log with the default 16: no error")
	}
	l = openEmbedded(t, dir, 4)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestEmbeddedReopen(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	l := openEmbedded(t, dir, 3)
	var batches []bus.Batch
	for pos := uint64(1); pos <= 20; pos++ {
		for p := range 3 {
			batches = append(batches, bus.Batch{Partition: p, ProducerPos: pos, Payload: bustest.Payload(p, pos)})
		}
	}
	if err := l.Append(ctx, batches); err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// A group handles partition 1 up to pos 5.
	sctx, cancel := context.WithCancel(ctx)
	handled := 0
	err := l.Subscribe(sctx, "g", []int{1}, func(_ context.Context, m bus.Message) error {
		handled++
		if m.ProducerPos == 5 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || handled != 5 {
		t.Fatalf("Subscribe: %v after %d messages", err, handled)
	}
	before := readAllMsgs(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l = openEmbedded(t, dir, 3)
	defer l.Close()
	after := readAllMsgs(t, l)
	if len(after) != len(before) || len(after) != 60 {
		t.Fatalf("after reopen: %d messages, before %d, want 60", len(after), len(before))
	}
	for i := range after {
		if after[i].Seq != before[i].Seq || after[i].ProducerPos != before[i].ProducerPos ||
			after[i].Partition != before[i].Partition || string(after[i].Payload) != string(before[i].Payload) ||
			!after[i].Time.Equal(before[i].Time) {
			t.Fatalf("message %d differs after reopen", i)
		}
	}
	for p := range 3 {
		if pos, err := l.LastProducerPos(ctx, p); err != nil || pos != 20 {
			t.Fatalf("LastProducerPos(%d) after reopen = %d, %v", p, pos, err)
		}
	}
	// The group resumes after pos 5.
	sctx, cancel = context.WithCancel(ctx)
	var first uint64
	err = l.Subscribe(sctx, "g", []int{1}, func(_ context.Context, m bus.Message) error {
		first = m.ProducerPos
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) || first != 6 {
		t.Fatalf("Subscribe after reopen: %v, first position %d, want 6", err, first)
	}
	// Dedup still works for a recent resend.
	if err := l.Append(ctx, batches[len(batches)-3:]); err != nil {
		t.Fatal(err)
	}
	if n := len(readAllMsgs(t, l)); n != 60 {
		t.Fatalf("resend after reopen stored again: %d messages", n)
	}
}

func TestEmbeddedReopenUpdatesMaxAge(t *testing.T) {
	dir := t.TempDir()
	l := openEmbedded(t, dir, 2)
	if got := l.stream.CachedInfo().Config; got.MaxAge != 0 || got.Duplicates != DuplicateWindow || got.Storage != jetstream.FileStorage {
		t.Fatalf("new stream: MaxAge %v, Duplicates %v, Storage %v", got.MaxAge, got.Duplicates, got.Storage)
	}
	l.Close()
	l, err := Open(testCtx(t), Config{Dir: dir, Partitions: 2, MaxAge: time.Hour, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	info, err := l.stream.Info(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.MaxAge != time.Hour {
		t.Fatalf("reopened with MaxAge 1h: stream MaxAge %v", info.Config.MaxAge)
	}
	if n, err := partitionsOf(info.Config); err != nil || n != 2 {
		t.Fatalf("partitions after update: %d, %v", n, err)
	}
}

// TestCloseUnblocks: Close ends running Read and Subscribe calls with an
// error rather than leaving them hanging.
func TestCloseUnblocks(t *testing.T) {
	ctx := testCtx(t)
	l := openEmbedded(t, t.TempDir(), 2)
	if err := l.Append(ctx, []bus.Batch{{Partition: 0, ProducerPos: 1, Payload: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{}, 2)
	done := make(chan error, 2)
	go func() {
		done <- l.Read(ctx, bus.ReadOptions{Follow: true}, func(context.Context, bus.Message) error {
			started <- struct{}{}
			return nil
		})
	}()
	go func() {
		done <- l.Subscribe(ctx, "g", nil, func(context.Context, bus.Message) error {
			started <- struct{}{}
			return nil
		})
	}()
	for range 2 {
		select {
		case <-started:
		case <-ctx.Done():
			t.Fatal("Read and Subscribe did not start")
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case err := <-done:
			if err == nil {
				t.Fatal("Read or Subscribe returned nil after Close")
			}
		case <-ctx.Done():
			t.Fatal("Read or Subscribe still running after Close")
		}
	}
	if err := l.Append(ctx, []bus.Batch{{Partition: 0, ProducerPos: 2}}); err == nil {
		t.Fatal("Append after Close: no error")
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestLastSeq(t *testing.T) {
	ctx := testCtx(t)
	l := openEmbedded(t, t.TempDir(), 2)
	defer l.Close()
	if seq, err := l.LastSeq(ctx); err != nil || seq != 0 {
		t.Fatalf("LastSeq of an empty log = %d, %v", seq, err)
	}
	if err := l.Append(ctx, []bus.Batch{{Partition: 1, ProducerPos: 1}, {Partition: 0, ProducerPos: 1}}); err != nil {
		t.Fatal(err)
	}
	msgs := readAllMsgs(t, l)
	if seq, err := l.LastSeq(ctx); err != nil || seq != msgs[len(msgs)-1].Seq {
		t.Fatalf("LastSeq = %d, %v; last message has Seq %d", seq, err, msgs[len(msgs)-1].Seq)
	}
}

func readAllMsgs(t *testing.T, l *Log) []bus.Message {
	t.Helper()
	var out []bus.Message
	err := l.Read(testCtx(t), bus.ReadOptions{}, func(_ context.Context, m bus.Message) error {
		m.Payload = append([]byte(nil), m.Payload...)
		out = append(out, m)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestOpenInvalidConfig(t *testing.T) {
	for _, cfg := range []Config{
		{},                                  // embedded without Dir
		{Dir: t.TempDir(), Partitions: -1},  // bad count
		{Dir: t.TempDir(), Stream: "a.b"},   // bad stream name
		{Dir: t.TempDir(), Subject: "a.*"},  // wildcard prefix
		{Dir: t.TempDir(), Subject: "a..b"}, // empty token
		{Dir: t.TempDir(), MaxAge: -time.Second},
	} {
		if l, err := Open(testCtx(t), cfg); err == nil {
			l.Close()
			t.Errorf("Open(%+v): no error", cfg)
		}
	}
}

func TestSubscribeInvalidGroup(t *testing.T) {
	l := openEmbedded(t, t.TempDir(), 2)
	defer l.Close()
	for _, g := range []string{"", "a.b", "a b", "a*"} {
		if err := l.Subscribe(testCtx(t), g, nil, func(context.Context, bus.Message) error { return nil }); err == nil {
			t.Errorf("Subscribe(group %q): no error", g)
		}
	}
}

// TestAppendWindow appends more batches in one call, and from several
// goroutines, than the async publish window holds.
func TestAppendWindow(t *testing.T) {
	ctx := testCtx(t)
	l := openEmbedded(t, t.TempDir(), 4)
	defer l.Close()
	const n = maxPendingAcks + 500
	payload := make([]byte, 64)
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for w := range 3 {
		wg.Go(func() {
			var bs []bus.Batch
			for i := range n {
				bs = append(bs, bus.Batch{Partition: w, ProducerPos: uint64(i + 1), Payload: payload})
			}
			errs <- l.Append(ctx, bs)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := len(l.pubSlots); got != 0 {
		t.Fatalf("%d publish slots still taken", got)
	}
	for w := range 3 {
		if pos, err := l.LastProducerPos(ctx, w); err != nil || pos != n {
			t.Fatalf("LastProducerPos(%d) = %d, %v", w, pos, err)
		}
	}
	// A cancelled Append returns ctx's error and frees its slots.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := l.Append(cctx, []bus.Batch{{Partition: 3, ProducerPos: 1}}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append with a cancelled ctx = %v", err)
	}
}

func TestNextDelay(t *testing.T) {
	d := 100 * time.Millisecond
	var got []time.Duration
	for range 8 {
		got = append(got, d)
		d = nextDelay(d, 5*time.Second)
	}
	want := []time.Duration{100, 200, 400, 800, 1600, 3200, 5000, 5000}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("backoff %v, want %v ms", got, want)
		}
	}
}

func TestVersionAtLeast(t *testing.T) {
	for v, want := range map[string]bool{
		"2.9.10": false, "2.10.0": true, "2.15.2": true, "3.0.0": true, "2.10.0-beta.1": true, "": false, "1.4.1": false,
	} {
		if got := versionAtLeast(v, 2, 10); got != want {
			t.Errorf("versionAtLeast(%q, 2, 10) = %v", v, got)
		}
	}
}

// BenchmarkAppend appends to an embedded log with 16 partitions batches of
// 100 events of 500 bytes (50 KB), from 1 or 4 goroutines (each its own
// partitions), with 64 or 512 batches per Append call. One op is one batch.
func BenchmarkAppend(b *testing.B) {
	const partitions, batchSize = 16, 100 * 500
	payload := make([]byte, batchSize)
	for i := range payload {
		payload[i] = byte('a' + i%26)
	}
	for _, perCall := range []int{64, 512} {
		for _, writers := range []int{1, 4} {
			b.Run(fmt.Sprintf("per_call=%d/writers=%d", perCall, writers), func(b *testing.B) {
				ctx := context.Background()
				l, err := Open(ctx, Config{Dir: b.TempDir(), Partitions: partitions, Logger: testLogger()})
				if err != nil {
					b.Fatal(err)
				}
				defer l.Close()
				b.SetBytes(batchSize)
				b.ResetTimer()
				var wg sync.WaitGroup
				for w := range writers {
					n := b.N / writers
					if w == 0 {
						n += b.N % writers
					}
					wg.Go(func() {
						pos := make([]uint64, partitions)
						bs := make([]bus.Batch, 0, perCall)
						for i := 0; i < n; {
							bs = bs[:0]
							for j := 0; j < perCall && i < n; j, i = j+1, i+1 {
								p := w + (i*writers)%partitions
								pos[p]++
								bs = append(bs, bus.Batch{Partition: p, ProducerPos: pos[p], Payload: payload})
							}
							if err := l.Append(ctx, bs); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				b.StopTimer()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "batches/s")
			})
		}
	}
}

// BenchmarkGet reads single messages (batches of 6 KB, as at 10,000
// events/s over 16 partitions) by sequence from an embedded log of 10,000,
// at random: what a journey pays to read back an event it kept as a log
// reference when its run starts.
func BenchmarkGet(b *testing.B) {
	ctx := context.Background()
	l, err := Open(ctx, Config{Dir: b.TempDir(), Partitions: 16, Logger: testLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	payload := make([]byte, 6<<10)
	const n = 10_000
	bs := make([]bus.Batch, 0, n)
	for i := range n {
		bs = append(bs, bus.Batch{Partition: i % 16, ProducerPos: uint64(i/16 + 1), Payload: payload})
	}
	if err := l.Append(ctx, bs); err != nil {
		b.Fatal(err)
	}
	rng := mrand.New(mrand.NewPCG(1, 2))
	b.ResetTimer()
	for b.Loop() {
		if _, err := l.Get(ctx, 1+rng.Uint64N(n)); err != nil {
			b.Fatal(err)
		}
	}
}
