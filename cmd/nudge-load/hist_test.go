package main

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestPercentileExactSmall(t *testing.T) {
	// Below 256 ns the histogram is exact: 1..100 ns, nearest rank.
	var h histogram
	for _, i := range rand.Perm(100) {
		h.Record(time.Duration(i + 1))
	}
	for p, want := range map[float64]time.Duration{50: 50, 90: 90, 99: 99, 99.9: 100, 100: 100, 1: 1, 0.5: 1} {
		if got := h.Percentile(p); got != want {
			t.Errorf("p%v = %d, want %d", p, got, want)
		}
	}
	if h.Min() != 1 || h.Max() != 100 || h.Mean() != 50 || h.Count() != 100 {
		t.Errorf("min %d max %d mean %d count %d", h.Min(), h.Max(), h.Mean(), h.Count())
	}
}

func TestPercentileKnownSamples(t *testing.T) {
	// 1..1000 ms: p50 = 500 ms, p90 = 900, p99 = 990, p99.9 = 999, within
	// the histogram's 1/256 relative precision, never below the true value.
	var h histogram
	for _, i := range rand.Perm(1000) {
		h.Record(time.Duration(i+1) * time.Millisecond)
	}
	for p, ms := range map[float64]int{50: 500, 90: 900, 99: 990, 99.9: 999, 100: 1000} {
		want := time.Duration(ms) * time.Millisecond
		got := h.Percentile(p)
		if got < want || float64(got-want) > float64(want)/256 {
			t.Errorf("p%v = %v, want %v (+0.4%%)", p, got, want)
		}
	}
	if h.Max() != time.Second || h.Min() != time.Millisecond {
		t.Errorf("max %v min %v", h.Max(), h.Min())
	}

	// A skewed distribution: 990 fast samples, 10 slow ones.
	var s histogram
	for range 990 {
		s.Record(2 * time.Millisecond)
	}
	for range 10 {
		s.Record(700 * time.Millisecond)
	}
	if got := s.Percentile(99); got < 2*time.Millisecond || got > 2*time.Millisecond*257/256 {
		t.Errorf("skewed p99 = %v, want 2ms (+0.4%%)", got)
	}
	if got := s.Percentile(99.9); got != 700*time.Millisecond {
		t.Errorf("skewed p99.9 = %v, want 700ms", got)
	}
	var empty histogram
	if empty.Percentile(50) != 0 || empty.Min() != 0 || empty.Mean() != 0 {
		t.Error("empty histogram reports non-zero")
	}
}

func TestBuckets(t *testing.T) {
	var h histogram
	nBuckets := len(h.counts)
	// Every value falls in the bucket whose range holds it, and bucket ranges
	// tile the line.
	for _, v := range []uint64{0, 1, 255, 256, 257, 511, 512, 513, 1023, 1024, 123456789, 1<<40 - 1} {
		lo, hi := bucketRange(bucketOf(v))
		if v < lo || v >= hi {
			t.Errorf("%d in bucket %d = [%d,%d)", v, bucketOf(v), lo, hi)
		}
		if hi-lo > max(1, lo/histSub) {
			t.Errorf("bucket of %d is [%d,%d): too wide", v, lo, hi)
		}
	}
	for i := 1; i < nBuckets; i++ {
		_, prevHi := bucketRange(i - 1)
		if lo, _ := bucketRange(i); lo != prevHi {
			t.Fatalf("bucket %d starts at %d, previous ends at %d", i, lo, prevHi)
		}
	}
	if bucketOf(1<<50) != nBuckets-1 {
		t.Error("huge values are not clamped into the last bucket")
	}
}
