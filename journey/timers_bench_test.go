package journey

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nudge-dev/nudge"
)

// A million pending timers: b.N runs (1,000,000 with -benchtime 1000000x)
// each waiting an hour from its event, the events spread over the past
// hour, so that the timers fall due over the next hour. Reports the heap
// and the process's RSS with them all pending, the store's size on disk,
// and then, on the wall clock, the lateness of the timers that fall due
// in 20 s of the Run loop (the firing rate of the spread: b.N / 3,600 a
// second); the timers that fell due while the events were loading are
// overdue when the loop starts, and their catch-up rate is reported too.
//
//	go test -run '^$' -bench MillionTimers -benchtime 1000000x -timeout 30m ./journey/
func BenchmarkMillionTimers(b *testing.B) {
	h := newHarness(b, journeyOf(b, `
id: w
trigger: {event: Ping}
steps:
  - id: wait
    wait: {duration: 1h}
  - {id: after, exit: {}}
`))
	type firing struct {
		at   time.Time
		late time.Duration
	}
	var mu sync.Mutex
	var fired []firing
	h.Config.TimerFired = func(d time.Duration) { mu.Lock(); fired = append(fired, firing{time.Now(), d}); mu.Unlock() }
	h.crash()
	h.Runtime.cfg.Clock = WallClock{} // the sandbox's clock is virtual
	now := time.Now()
	spread := time.Hour / time.Duration(b.N)
	batch := make([]nudge.Event, 0, 2000)
	for i := range b.N {
		e := h.ev(fmt.Sprint("u", i), "Ping", "", 0)
		e.Timestamp = now.Add(-time.Hour + time.Duration(i)*spread + 5*time.Second)
		e.ReceivedAt = e.Timestamp
		batch = append(batch, e)
		if len(batch) == cap(batch) || i == b.N-1 {
			h.send(batch...)
			batch = batch[:0]
		}
	}
	h.flush()
	b.StopTimer()
	if n := h.Runtime.TimersPending(); n != int64(b.N) {
		b.Fatalf("%d timers pending, want %d", n, b.N)
	}
	heap, rss := memNow()
	b.ReportMetric(heap, "heap-MB")
	b.ReportMetric(rss, "rss-MB")
	b.ReportMetric(dirMB(h.Dir), "disk-MB")

	// Loading took a while: the timers due meanwhile are overdue when the
	// loop starts (a catch-up); the lateness is of those that fall due
	// while it runs.
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.Runtime.Run(ctx); err != nil {
		b.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	var late []time.Duration
	overdue, caughtUp := 0, start
	for _, f := range fired {
		if due := f.at.Add(-f.late); due.Before(start) {
			overdue++
			caughtUp = f.at
		} else {
			late = append(late, f.late)
		}
	}
	if len(late) == 0 {
		b.Fatal("no timer fell due while the loop ran")
	}
	slices.Sort(late)
	b.ReportMetric(float64(overdue), "overdue-at-start")
	b.ReportMetric(float64(overdue)/caughtUp.Sub(start).Seconds(), "catch-up/s")
	b.ReportMetric(float64(len(late)), "fired-on-time")
	b.ReportMetric(float64(late[len(late)/2].Microseconds())/1000, "late-p50-ms")
	b.ReportMetric(float64(late[len(late)*99/100].Microseconds())/1000, "late-p99-ms")
}

func memNow() (heapMB, rssMB float64) {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			rssMB = kb / 1024
		}
	}
	return float64(ms.HeapInuse) / (1 << 20), rssMB
}

func dirMB(dir string) float64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return float64(n) / (1 << 20)
}
