package pebblestore

import (
	"fmt"
	"testing"
)

// The block cache keeps blocks read from the files even while the
// memtable is full: the second read of a flushed key is a cache hit.
func TestBlockCacheHoldsBlocksBesideAFullMemtable(t *testing.T) {
	const memtable = 4 << 20
	// The cache as large as the memtable, as the defaults are.
	s, err := Open(t.TempDir(), Options{CacheBytes: memtable, MemTableBytes: memtable})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	val := make([]byte, 1024)
	write := func(prefix string, n int) {
		for i := range n {
			if err := s.db.Set(fmt.Appendf(nil, "%s%06d", prefix, i), val, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	write("a", 2000)
	if err := s.db.Flush(); err != nil {
		t.Fatal(err)
	}
	write("b", 3*memtable/1024/4) // the memtable three quarters full again
	for range 2 {
		v, closer, err := s.db.Get([]byte("a000042"))
		if err != nil || len(v) != len(val) {
			t.Fatalf("%d bytes, %v", len(v), err)
		}
		closer.Close()
	}
	if m := s.db.Metrics(); m.BlockCache.Hits == 0 {
		t.Errorf("no block cache hit on a key read twice: %+v", m.BlockCache)
	}
}
