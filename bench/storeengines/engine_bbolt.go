package main

import (
	"bytes"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	bHistory  = []byte("history")
	bProfile  = []byte("profile")
	bPosition = []byte("position")
)

type boltStore struct {
	db   *bolt.DB
	fill float64 // bucket FillPercent for writes
}

var _ store = (*boltStore)(nil)

type boltConfig struct {
	sync        bool
	fillPercent float64
}

func openBolt(path string, cfg boltConfig) (*boltStore, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		NoSync:         !cfg.sync,
		NoGrowSync:     true,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
		// A mapping larger than the file ever gets: the writer never remaps,
		// so readers never wait for it.
		InitialMmapSize: 32 << 30,
	})
	if err != nil {
		return nil, fmt.Errorf("open bbolt: %w", err)
	}
	db.AllocSize = 64 << 20
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bHistory, bProfile, bPosition} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &boltStore{db: db, fill: cfg.fillPercent}, nil
}

func (s *boltStore) Apply(b *batch) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, part := range []struct {
			name []byte
			kvs  []kv
		}{{bHistory, b.history}, {bProfile, b.profiles}, {bPosition, b.positions}} {
			bk := tx.Bucket(part.name)
			bk.FillPercent = s.fill
			for _, e := range part.kvs {
				if err := bk.Put(e.k, e.v); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

func (s *boltStore) Profile(key []byte) (bool, error) {
	found := false
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bProfile).Get(key); v != nil {
			sink(v)
			found = true
		}
		return nil
	})
	return found, err
}

func (s *boltStore) Newest(prefix []byte, n int) (int, error) {
	got := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bHistory).Cursor()
		k, v := c.Seek(prefixEnd(prefix))
		if k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
		for ; k != nil && bytes.HasPrefix(k, prefix) && got < n; k, v = c.Prev() {
			sink(v)
			got++
		}
		return nil
	})
	return got, err
}

func (s *boltStore) Erase(prefix, profileKey []byte) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bHistory)
		var keys [][]byte
		c := bk.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			keys = append(keys, append([]byte(nil), k...))
		}
		for _, k := range keys {
			if err := bk.Delete(k); err != nil {
				return err
			}
		}
		return tx.Bucket(bProfile).Delete(profileKey)
	})
}

// Reclaim has nothing to offer in bbolt: freed pages keep their bytes until
// the freelist hands them out again. Sync flushes what NoSync left in the
// page cache, so the files show what a crash would leave.
func (s *boltStore) Reclaim(prefix, profileKey []byte) error {
	return s.db.Sync()
}

func (s *boltStore) Settle(time.Duration) error { return s.db.Sync() }

func (s *boltStore) Stats() string {
	st := s.db.Stats()
	var pages, free int
	_ = s.db.View(func(tx *bolt.Tx) error {
		pages = int(tx.Size()) / s.db.Info().PageSize
		return nil
	})
	free = st.FreePageN + st.PendingPageN
	return fmt.Sprintf("pages %d, free %d (%.0f%%), tx page writes %d, spill %d, rebalance %d",
		pages, free, 100*float64(free)/float64(max(pages, 1)), st.TxStats.GetWrite(), st.TxStats.GetSpill(), st.TxStats.GetRebalance())
}

func (s *boltStore) Close() error { return s.db.Close() }
