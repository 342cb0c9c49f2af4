package main

import "time"

// kv is one key and value of a batch. The engine may keep references to both
// slices until Apply returns; the caller does not reuse them before that.
type kv struct {
	k, v []byte
}

// batch is what the profile consumer writes at every commit interval. Each
// slice is sorted by key, so engines that benefit from ordered inserts
// (B-trees) get them.
type batch struct {
	history   []kv // key: partition u16, pseudonym 16 B, event time u64 BE, hash 8 B
	profiles  []kv // key: partition u16, profile id 16 B
	positions []kv // key: partition u16; value: log offset
}

// logicalBytes is the sum of key and value sizes in the batch: the
// denominator of the write amplification.
func (b *batch) logicalBytes() int64 {
	var n int64
	for _, s := range [][]kv{b.history, b.profiles, b.positions} {
		for _, e := range s {
			n += int64(len(e.k) + len(e.v))
		}
	}
	return n
}

// store is what the profile consumer needs from an embedded engine.
//
// Apply is called from one goroutine; Profile and Newest may be called from
// other goroutines at the same time. Close waits for nothing in flight: the
// caller stops all goroutines first.
type store interface {
	// Apply writes the batch atomically: after a crash either all of it or
	// none of it is visible. With sync set at open, it returns only once the
	// batch is durable.
	Apply(b *batch) error
	// Profile reads the profile stored under key and reports whether it exists.
	Profile(key []byte) (bool, error)
	// Newest reads the newest n history entries whose key starts with prefix
	// (partition and pseudonym), newest first, and returns how many it read.
	Newest(prefix []byte, n int) (int, error)
	// Erase removes one customer: the history under prefix and the profile.
	Erase(prefix, profileKey []byte) error
	// Reclaim does what the engine offers to get erased bytes off the files:
	// a range compaction, a checkpoint.
	Reclaim(prefix, profileKey []byte) error
	// Settle makes the engine catch up after the bulk preload (flush and
	// compactions, checkpoint, sync), so the timed phase starts from a
	// steady store. It returns within bound.
	Settle(bound time.Duration) error
	// Stats returns engine-specific figures for the report, one line.
	Stats() string
	Close() error
}

// prefixEnd returns the smallest key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil // p is all 0xff: no upper bound
}
