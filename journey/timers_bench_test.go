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
// each waiting an hour from its event. A tenth of the events are from two
// hours to one hour old when the load starts: their timers are overdue, a
// backlog like the one a restart after an outage finds. The others are
// spread over the past hour, so that their timers fall due over the next
// hour, at 0.9 × b.N / 3,600 a second (250 for a million). Reports the
// heap and the process's RSS with them all pending, and the store's size
// on disk; then runs the Run loop for 30 s on the wall clock and reports,
// from each firing's due time and the time its transaction committed:
//
//   - catch-up/s: the backlog and the timers that fell due while the
//     events loaded are overdue when the loop starts (overdue-at-start);
//     the rate at which the loop fired them, until the last of them fired
//     (the catch-up);
//   - late-catchup-p50/p99-ms: the lateness of the timers that fell due
//     during the catch-up (fell-due-in-catchup of them);
//   - late-p50/p99-ms: the lateness of every timer that fell due after
//     the catch-up, the loop's steady state with b.N pending
//     (fired-on-time of them).
//
// Every firing of the 30 s is counted in one of the three.
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
	backlog := b.N / 10
	batch := make([]nudge.Event, 0, 2000)
	for i := range b.N {
		e := h.ev(fmt.Sprint("u", i), "Ping", "", 0)
		if i < backlog {
			e.Timestamp = now.Add(-2*time.Hour + time.Duration(i)*time.Hour/time.Duration(backlog))
		} else {
			e.Timestamp = now.Add(-time.Hour + time.Duration(i-backlog)*time.Hour/time.Duration(b.N-backlog) + 5*time.Second)
		}
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

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.Runtime.Run(ctx); err != nil {
		b.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	overdue, caughtUp := 0, start
	for _, f := range fired {
		if due := f.at.Add(-f.late); due.Before(start) {
			overdue++
			caughtUp = later(caughtUp, f.at)
		}
	}
	var during, steady []time.Duration
	for _, f := range fired {
		switch due := f.at.Add(-f.late); {
		case due.Before(start):
		case due.Before(caughtUp):
			during = append(during, f.late)
		default:
			steady = append(steady, f.late)
		}
	}
	if len(steady) == 0 {
		b.Fatal("no timer fell due after the catch-up")
	}
	b.ReportMetric(float64(overdue), "overdue-at-start")
	if overdue > 0 { // b.N = 1, the framework's first run, has none
		b.ReportMetric(float64(overdue)/caughtUp.Sub(start).Seconds(), "catch-up/s")
	}
	b.ReportMetric(float64(len(during)), "fell-due-in-catchup")
	if len(during) > 0 {
		b.ReportMetric(pct(during, 50), "late-catchup-p50-ms")
		b.ReportMetric(pct(during, 99), "late-catchup-p99-ms")
	}
	b.ReportMetric(float64(len(steady)), "fired-on-time")
	b.ReportMetric(pct(steady, 50), "late-p50-ms")
	b.ReportMetric(pct(steady, 99), "late-p99-ms")
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// pct is the p-th percentile of ds, in milliseconds (it sorts ds).
func pct(ds []time.Duration, p int) float64 {
	slices.Sort(ds)
	return float64(ds[len(ds)*p/100].Microseconds()) / 1000
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
