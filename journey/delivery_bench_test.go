package journey

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nudge-dev/nudge"
	"github.com/nudge-dev/nudge/channel"
	"github.com/nudge-dev/nudge/channel/webhook"
)

// Webhook deliveries to a local receiver (in this process, like a load
// generator): each event's run writes a job, the dispatcher sends it, the
// receiver answers 204.
//
//   - queued: b.N jobs are written first, then the dispatcher starts:
//     deliveries/s of the dispatcher alone.
//
//   - paced: events arrive at 2,000/s with the dispatcher running: the
//     pipeline's own latency, from the send step (the message's CreatedAt,
//     on the wall clock) to the provider call, p50 and p99.
//
//     go test -run '^$' -bench Deliveries -benchtime 20000x ./journey/
func BenchmarkDeliveries(b *testing.B) {
	for _, mode := range []string{"queued", "paced"} {
		b.Run(mode, func(b *testing.B) { benchDeliveries(b, mode == "paced") })
	}
}

func benchDeliveries(b *testing.B, paced bool) {
	var (
		mu   sync.Mutex
		lat  []time.Duration
		done atomic.Int64
		all  = make(chan struct{})
	)
	want := int64(b.N)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
		if done.Add(1) == want {
			close(all)
		}
	}))
	defer recv.Close()
	h := newHarness(b, journeyOf(b, `
id: hook
trigger: {event: Ping}
reentry: every_time
steps:
  - id: call
    send: {channel: webhook, content: {body: '{"n": {{ event.properties.n }}}'}}
`))
	wh, err := webhook.New(webhook.Config{URL: recv.URL, Secret: []byte("s")})
	if err != nil {
		b.Fatal(err)
	}
	ch := timed{wh, func(d time.Duration) { mu.Lock(); lat = append(lat, d); mu.Unlock() }}
	h.Runtime.channels["webhook"] = ch
	h.Runtime.lanes["webhook"] = newLane(ch, LaneConfig{}, h.Runtime.cfg.SendWorkers)
	h.Runtime.cfg.Clock = WallClock{}
	events := make([]nudge.Event, b.N)
	for i := range events {
		events[i] = h.ev(fmt.Sprint("u", i), "Ping", fmt.Sprintf(`{"n": %d}`, i), 0)
	}
	ctx, cancel := context.WithCancel(context.Background())
	loop := make(chan error, 1)
	run := func() { go func() { loop <- h.Runtime.Run(ctx) }() }
	if !paced {
		for i := 0; i < len(events); i += 1000 {
			h.send(events[i:min(i+1000, len(events))]...)
		}
		h.flush()
		run()
	} else {
		run()
	}
	b.ResetTimer()
	start := time.Now()
	if paced {
		const perTick, tick = 20, 10 * time.Millisecond // 2,000 events/s
		next := start
		for i := 0; i < len(events); i += perTick {
			h.send(events[i:min(i+perTick, len(events))]...)
			next = next.Add(tick)
			time.Sleep(time.Until(next))
		}
	}
	select {
	case <-all:
	case <-time.After(5 * time.Minute):
		b.Fatalf("%d of %d delivered", done.Load(), want)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	cancel()
	if err := <-loop; err != nil {
		b.Fatal(err)
	}
	if paced {
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	} else {
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "deliveries/s")
	}
}

// timed measures the pipeline's latency: from the send step (the
// message's CreatedAt, on the wall clock) to the provider call.
type timed struct {
	*webhook.Channel
	rec func(time.Duration)
}

func (t timed) Send(ctx context.Context, m *channel.Message) error {
	t.rec(time.Since(m.CreatedAt))
	return t.Channel.Send(ctx, m)
}

// Memory held with 100,000 jobs queued behind a provider that is down,
// against the same 100,000 customers' messages delivered to one that is up
// (the difference is what the queue costs: the jobs wait in the store, not
// in memory).
//
//	go test -run '^$' -bench QueuedBehindDown -benchtime 1x ./journey/
func BenchmarkQueuedBehindDown(b *testing.B) {
	for _, down := range []bool{true, false} {
		name := "down"
		if !down {
			name = "up"
		}
		b.Run(name, func(b *testing.B) { benchQueued(b, down) })
	}
}

func benchQueued(b *testing.B, down bool) {
	const jobs = 100_000
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down {
			http.Error(w, "down", http.StatusServiceUnavailable)
		}
	}))
	defer recv.Close()
	h := newHarness(b, journeyOf(b, `
id: hook
trigger: {event: Ping}
reentry: every_time
steps:
  - id: call
    send: {channel: webhook, content: {body: '{}'}}
`))
	wh, err := webhook.New(webhook.Config{URL: recv.URL, Secret: []byte("s")})
	if err != nil {
		b.Fatal(err)
	}
	h.Runtime.channels["webhook"] = wh
	h.Runtime.lanes["webhook"] = newLane(wh, LaneConfig{}, h.Runtime.cfg.SendWorkers)
	ctx, cancel := context.WithCancel(context.Background())
	loop := make(chan error, 1)
	go func() { loop <- h.Runtime.Run(ctx) }()
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range b.N {
		for i := 0; i < jobs; i += 1000 {
			batch := make([]nudge.Event, 0, 1000)
			for k := i; k < i+1000; k++ {
				batch = append(batch, h.ev(fmt.Sprint("u", k), "Ping", "", 0))
			}
			h.send(batch...)
		}
	}
	h.flush()
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	cancel()
	if err := <-loop; err != nil {
		b.Fatal(err)
	}
	queued := h.countKeys(prefixJob)
	b.ReportMetric(float64(queued), "jobs-queued")
	b.ReportMetric(float64(after.HeapInuse)/(1<<20), "heap-MB")
	b.ReportMetric(float64(int64(after.HeapInuse)-int64(before.HeapInuse))/(1<<20), "heap-growth-MB")
}
