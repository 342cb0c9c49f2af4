package profile_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/nudge-dev/nudge/internal/cputime"

	"github.com/nudge-dev/nudge"
	"github.com/nudge-dev/nudge/bus"
	"github.com/nudge-dev/nudge/profile"
	"github.com/nudge-dev/nudge/profile/pebblestore"
	"github.com/nudge-dev/nudge/shred"
)

// BenchmarkApplyFromLog measures profile updates from the log: messages of
// 500 sealed track events (properties of about 300 bytes) spread uniformly
// over 100,000 known customers (the worst case for caching), applied and
// committed as the consumer does. One op is one event.
func BenchmarkApplyFromLog(b *testing.B) {
	benchApplyFromLog(b, profile.Config{})
}

// BenchmarkApplyFromLogCold is BenchmarkApplyFromLog with the engine
// caching 1% of the customers: nearly every event reads its customer's
// links and profile from the store, as over a million customers.
func BenchmarkApplyFromLogCold(b *testing.B) {
	benchApplyFromLog(b, profile.Config{CacheProfiles: 1000})
}

func benchApplyFromLog(b *testing.B, cfg profile.Config) {
	cfg.Partitions = parts
	dir := b.TempDir()
	keys, err := shred.Open(filepath.Join(dir, "keys"))
	if err != nil {
		b.Fatal(err)
	}
	defer keys.Close()
	store, err := pebblestore.Open(filepath.Join(dir, "profiles"), pebblestore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	log := &memLog{}
	en := profile.NewEngine(cfg, store, keys, log, slog.New(slog.NewTextHandler(io.Discard, nil)))

	const customers, perMessage = 100_000, 500
	props := json.RawMessage(`{"product_id":"sku-12345","name":"Trail running shoe, waterproof","category":"Shoes","price":129.95,"currency":"EUR","url":"https://shop.example/p/sku-12345","image_url":"https://cdn.example/i/sku-12345.jpg","position":3}`)
	var msgs []bus.Message
	byPart := make([][]nudge.Event, parts)
	for i := range 400 * perMessage {
		e := nudge.Event{Type: nudge.Track, MessageID: fmt.Sprint("m", i), Source: "web", Event: "Product Viewed",
			UserID: fmt.Sprint("customer-", i%customers), Properties: props,
			Context:   json.RawMessage(`{"library":{"name":"analytics.js","version":"2.11.1"},"timezone":"Europe/Berlin"}`),
			Timestamp: time.Unix(1_790_000_000+int64(i), 0).UTC()}
		e.ReceivedAt = e.Timestamp
		p := bus.PartitionOf(e.UserID, parts)
		if _, err := shred.SealEvent(keys, &e); err != nil {
			b.Fatal(err)
		}
		byPart[p] = append(byPart[p], e)
		if len(byPart[p]) == perMessage {
			msgs = append(msgs, bus.Message{Partition: p, Payload: nudge.EncodeEvents(nil, byPart[p])})
			byPart[p] = nil
		}
	}
	ctx := context.Background()
	// Warm up: every customer's profile exists, so the timed part is the
	// steady state (an event of a known customer), not profile creation.
	seq := uint64(0)
	for _, m := range msgs[:customers/perMessage+1] {
		seq++
		m.Seq = seq
		if err := en.Apply(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
	if err := en.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	// The timed part runs the consumer as nudge does (Run: one goroutine
	// decodes and opens, the other applies) over a log in memory.
	for i := 0; len(log.msgs)*perMessage < b.N; i++ {
		m := msgs[i%len(msgs)]
		seq++
		m.Seq = seq
		log.msgs = append(log.msgs, m)
	}
	// It ends when every event is applied and committed (Run commits what
	// it applied before it returns). cpu-ns/event is the process's CPU
	// time (every goroutine: Pebble's, the GC's) over the events.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	b.ResetTimer()
	start, cpu := time.Now(), cputime.Start()
	done := make(chan error, 1)
	go func() { done <- en.Run(ctx) }()
	if err := en.WaitApplied(ctx, seq); err != nil {
		b.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	elapsed, cpuUsed := time.Since(start), cpu.Elapsed()
	b.StopTimer()
	events := float64(len(log.msgs) * perMessage)
	b.ReportMetric(events/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(cpuUsed.Nanoseconds())/events, "cpu-ns/event")
}

// memLog serves messages from memory and then waits, as a followed log
// with nothing new does.
type memLog struct {
	bus.Log
	msgs []bus.Message
}

func (l *memLog) Read(ctx context.Context, opts bus.ReadOptions, h bus.Handler) error {
	for _, m := range l.msgs {
		if m.Seq < opts.FromSeq {
			continue
		}
		if err := h(ctx, m); err != nil {
			return err
		}
	}
	<-ctx.Done()
	return ctx.Err()
}

func (l *memLog) Get(_ context.Context, seq uint64) (bus.Message, error) {
	for _, m := range l.msgs {
		if m.Seq == seq {
			return m, nil
		}
	}
	return bus.Message{}, bus.ErrNotFound
}
