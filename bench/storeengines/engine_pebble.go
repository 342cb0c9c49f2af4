package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Pebble has one key space; a table byte in front of every key stands for
// the buckets and tables of the other engines.
const (
	tHistory  = 'h'
	tProfile  = 'p'
	tPosition = 'o'
)

type pebbleStore struct {
	db    *pebble.DB
	cache interface{ Unref() }
	wo    *pebble.WriteOptions

	stalls     atomic.Int64
	stallNanos atomic.Int64
	stallStart atomic.Int64
}

var _ store = (*pebbleStore)(nil)

type pebbleConfig struct {
	sync        bool
	cacheBytes  int64
	memtable    uint64
	compression bool // Snappy; off by default since values are encrypted
	valueSep    bool // experimental blob files for values >= 256 B
	compactions int  // upper bound of CompactionConcurrencyRange; 0 keeps Pebble's 1
}

func openPebble(dir string, cfg pebbleConfig) (*pebbleStore, error) {
	s := &pebbleStore{wo: pebble.NoSync}
	if cfg.sync {
		s.wo = pebble.Sync
	}
	cache := pebble.NewCache(cfg.cacheBytes)
	s.cache = cache
	opts := &pebble.Options{
		Cache:                       cache,
		MemTableSize:                cfg.memtable,
		MemTableStopWritesThreshold: 4,
		FormatMajorVersion:          pebble.FormatNewest,
		Logger:                      quietLogger{},
		EventListener: &pebble.EventListener{
			WriteStallBegin: func(pebble.WriteStallBeginInfo) {
				s.stalls.Add(1)
				s.stallStart.Store(time.Now().UnixNano())
			},
			WriteStallEnd: func() {
				if t := s.stallStart.Load(); t != 0 {
					s.stallNanos.Add(time.Now().UnixNano() - t)
				}
			},
		},
	}
	if cfg.compactions > 0 {
		opts.CompactionConcurrencyRange = func() (int, int) { return 1, cfg.compactions }
	}
	if !cfg.compression {
		opts.ApplyCompressionSettings(func() pebble.DBCompressionSettings { return pebble.DBCompressionNone })
	}
	if cfg.valueSep {
		opts.Experimental.ValueSeparationPolicy = func() pebble.ValueSeparationPolicy {
			return pebble.ValueSeparationPolicy{
				Enabled:               true,
				MinimumSize:           256,
				MaxBlobReferenceDepth: 10,
				RewriteMinimumAge:     time.Minute,
				TargetGarbageRatio:    0.2,
			}
		}
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		cache.Unref()
		return nil, fmt.Errorf("open pebble: %w", err)
	}
	s.db = db
	return s, nil
}

func tkey(t byte, k []byte) []byte {
	out := make([]byte, 0, 1+len(k))
	return append(append(out, t), k...)
}

func (s *pebbleStore) Apply(b *batch) error {
	wb := s.db.NewBatchWithSize(int(b.logicalBytes()) + 64*(len(b.history)+len(b.profiles)+partitions))
	defer wb.Close()
	var kbuf [64]byte
	set := func(t byte, e kv) error {
		k := append(append(kbuf[:0], t), e.k...)
		return wb.Set(k, e.v, nil) // Set copies key and value into the batch
	}
	for _, e := range b.history {
		if err := set(tHistory, e); err != nil {
			return err
		}
	}
	for _, e := range b.profiles {
		if err := set(tProfile, e); err != nil {
			return err
		}
	}
	for _, e := range b.positions {
		if err := set(tPosition, e); err != nil {
			return err
		}
	}
	if err := wb.Commit(s.wo); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func (s *pebbleStore) Profile(key []byte) (bool, error) {
	v, closer, err := s.db.Get(tkey(tProfile, key))
	if err == pebble.ErrNotFound {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	sink(v)
	return true, closer.Close()
}

func (s *pebbleStore) Newest(prefix []byte, n int) (int, error) {
	lo := tkey(tHistory, prefix)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(lo)})
	if err != nil {
		return 0, err
	}
	got := 0
	for ok := it.Last(); ok && got < n; ok = it.Prev() {
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return got, err
		}
		sink(v)
		got++
	}
	return got, it.Close()
}

func (s *pebbleStore) Erase(prefix, profileKey []byte) error {
	wb := s.db.NewBatch()
	defer wb.Close()
	lo := tkey(tHistory, prefix)
	if err := wb.DeleteRange(lo, prefixEnd(lo), nil); err != nil {
		return err
	}
	if err := wb.Delete(tkey(tProfile, profileKey), nil); err != nil {
		return err
	}
	return wb.Commit(pebble.Sync)
}

func (s *pebbleStore) Reclaim(prefix, profileKey []byte) error {
	lo := tkey(tHistory, prefix)
	if err := s.db.Compact(context.Background(), lo, prefixEnd(lo), false); err != nil {
		return fmt.Errorf("compact history: %w", err)
	}
	pk := tkey(tProfile, profileKey)
	if err := s.db.Compact(context.Background(), pk, append(pk, 0), false); err != nil {
		return fmt.Errorf("compact profile: %w", err)
	}
	return nil
}

// Settle flushes the memtable and waits until no compaction is running and
// the compaction debt is under 256 MB.
func (s *pebbleStore) Settle(bound time.Duration) error {
	if err := s.db.Flush(); err != nil {
		return err
	}
	deadline := time.Now().Add(bound)
	for time.Now().Before(deadline) {
		m := s.db.Metrics()
		if m.Compact.NumInProgress == 0 && m.Compact.EstimatedDebt < 256<<20 {
			return nil
		}
		time.Sleep(250 * time.Millisecond)
	}
	return nil
}

func (s *pebbleStore) Stats() string {
	m := s.db.Metrics()
	t := m.Total()
	return fmt.Sprintf("write stalls %d (%.1fs), LSM write-amp %.2f, read-amp %d, L0 files %d, compactions %d",
		s.stalls.Load(), time.Duration(s.stallNanos.Load()).Seconds(), t.WriteAmp(), m.ReadAmp(),
		m.Levels[0].TablesCount, m.Compact.Count)
}

func (s *pebbleStore) Metrics() string { return s.db.Metrics().String() }

func (s *pebbleStore) Close() error {
	err := s.db.Close()
	s.cache.Unref()
	return err
}

// quietLogger drops Pebble's informational log lines; fatal errors still stop
// the run.
type quietLogger struct{}

func (quietLogger) Infof(string, ...interface{})      {}
func (quietLogger) Errorf(f string, a ...interface{}) { fmt.Printf("pebble: "+f+"\n", a...) }
func (quietLogger) Fatalf(f string, a ...interface{}) { panic(fmt.Sprintf(f, a...)) }
