// Package cputime measures the CPU time of the process, for benchmarks: on
// a shared machine a benchmark's CPU time per op is steadier than its wall
// time, which also counts the waits for a core.
package cputime

import (
	"testing"
	"time"
)

// Timer measures the CPU time the process spends from Start on: every
// goroutine's (the garbage collector's and the store's too), user and
// system.
type Timer struct{ start time.Duration }

// Start starts a Timer.
func Start() Timer { return Timer{process()} }

// Elapsed is the CPU time used since Start.
func (t Timer) Elapsed() time.Duration { return process() - t.start }

// Report adds the CPU time per iteration to b's results, as cpu-ns/op.
func (t Timer) Report(b *testing.B) {
	b.ReportMetric(float64(t.Elapsed())/float64(b.N), "cpu-ns/op")
}
