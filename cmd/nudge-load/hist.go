package main

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// histogram is a concurrent log-linear latency histogram over nanoseconds:
// exact below 256 ns, then 256 sub-buckets per power of two, so any reported
// percentile is within 0.4% of the true sample. Min, max and sum are exact.
type histogram struct {
	counts [(histMaxExp - histSubBits + 1) * histSub]atomic.Uint64
	n, sum atomic.Uint64
	max    atomic.Uint64
	min    atomic.Uint64 // stored as ^v so that the zero value means "none"
}

const (
	histSubBits = 8
	histSub     = 1 << histSubBits
	histMaxExp  = 40 // values are clamped below 2^40 ns (about 18 minutes)
)

func bucketOf(v uint64) int {
	if v < histSub {
		return int(v)
	}
	if v >= 1<<histMaxExp {
		v = 1<<histMaxExp - 1
	}
	shift := bits.Len64(v) - 1 - histSubBits
	return (shift+1)*histSub + int((v>>shift)&(histSub-1))
}

// bucketRange is the half-open range [lo, hi) of values in bucket i.
func bucketRange(i int) (lo, hi uint64) {
	if i < histSub {
		return uint64(i), uint64(i) + 1
	}
	shift := uint(i/histSub - 1)
	lo = uint64(histSub+i%histSub) << shift
	return lo, lo + 1<<shift
}

func (h *histogram) Record(d time.Duration) {
	v := uint64(max(d, 0))
	h.counts[bucketOf(v)].Add(1)
	h.n.Add(1)
	h.sum.Add(v)
	for cur := h.max.Load(); v > cur && !h.max.CompareAndSwap(cur, v); cur = h.max.Load() {
	}
	for cur := h.min.Load(); ^v > cur && !h.min.CompareAndSwap(cur, ^v); cur = h.min.Load() {
	}
}

func (h *histogram) Count() uint64      { return h.n.Load() }
func (h *histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

func (h *histogram) Min() time.Duration {
	if h.n.Load() == 0 {
		return 0
	}
	return time.Duration(^h.min.Load())
}

func (h *histogram) Mean() time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sum.Load() / n)
}

// Percentile returns the nearest-rank p-th percentile (0 < p <= 100): the
// smallest recorded value such that at least p% of the samples are <= it,
// reported as the highest value of its bucket and clamped to [Min, Max].
// It must not race with Record.
func (h *histogram) Percentile(p float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(p*float64(n)/100 - 1e-9)) // epsilon: 99.9% of 1000 is 999
	rank = min(max(rank, 1), n)
	var cum uint64
	for i := range h.counts {
		cum += h.counts[i].Load()
		if cum >= rank {
			_, hi := bucketRange(i)
			return min(max(time.Duration(hi-1), h.Min()), h.Max())
		}
	}
	return h.Max()
}
