// Package pebblestore is the embedded profile store: profile.Store on
// Pebble, the LSM key-value engine of CockroachDB (pure Go). It was chosen
// by measurement (docs/ARCHITECTURE.md): the profile consumer writes every
// event into a history and rewrites the profiles it touched, a write-heavy
// load an LSM takes in sequential writes where a B-tree rewrites pages.
//
// Key layout (big-endian integers, partition first so that one partition's
// state is one key range):
//
//	'o' part                      -> last committed log sequence
//	'i' part pseudonym            -> profile id (pseudonym, partition)
//	'p' part pseudonym            -> profile record
//	'h' part pseudonym time hash  -> where the log holds one event of that subject
//	'x' key                       -> extension: another consumer's state
package pebblestore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"

	"github.com/nudge-dev/nudge/profile"
)

// Options tunes the store.
type Options struct {
	// CacheBytes is Pebble's block cache (default 64 MiB).
	CacheBytes int64
	// MemTableBytes is the size of one memtable (default 64 MiB).
	MemTableBytes uint64
}

// Store is a profile.Store in one directory.
type Store struct {
	db *pebble.DB
}

var _ profile.Store = (*Store)(nil)

// Open opens or creates the store in dir.
func Open(dir string, opts Options) (*Store, error) {
	if opts.CacheBytes == 0 {
		opts.CacheBytes = 64 << 20
	}
	if opts.MemTableBytes == 0 {
		opts.MemTableBytes = 64 << 20
	}
	cache := pebble.NewCache(opts.CacheBytes)
	defer cache.Unref()
	po := &pebble.Options{
		Cache:        cache,
		MemTableSize: opts.MemTableBytes,
		Logger:       quietLogger{},
	}
	// Bloom filters: an event of a new customer looks up links that do
	// not exist, which without them searches every level (24 µs here).
	for i := range po.Levels {
		po.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	po.EnsureDefaults()
	db, err := pebble.Open(dir, po)
	if err != nil {
		return nil, fmt.Errorf("profile store %s: %w", dir, err)
	}
	return &Store{db: db}, nil
}

const (
	tagPosition = 'o'
	tagLink     = 'i'
	tagProfile  = 'p'
	tagHistory  = 'h'
	tagExt      = 'x'
)

func refKey(tag byte, r profile.Ref) []byte {
	k := make([]byte, 0, 3+len(r.P)+16)
	k = append(k, tag)
	k = binary.BigEndian.AppendUint16(k, uint16(r.Partition))
	return append(k, r.P[:]...)
}

func positionKey(part int) []byte {
	return binary.BigEndian.AppendUint16([]byte{tagPosition}, uint16(part))
}

// timeKey orders times as unsigned integers.
func timeKey(t time.Time) uint64 { return uint64(t.UnixNano()) ^ (1 << 63) }

func historyKey(e profile.Ref, at profile.Cursor) []byte {
	k := refKey(tagHistory, e)
	k = binary.BigEndian.AppendUint64(k, timeKey(at.Time))
	return binary.BigEndian.AppendUint64(k, at.Hash)
}

// prefixEnd is the first key after every key that starts with prefix.
func prefixEnd(prefix []byte) []byte {
	end := slices.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// Positions implements profile.Store.
func (s *Store) Positions(_ context.Context, partitions int) ([]uint64, error) {
	out := make([]uint64, partitions)
	for p := range out {
		v, ok, err := s.get(positionKey(p))
		if err != nil {
			return nil, err
		}
		if ok {
			if len(v) != 8 {
				return nil, fmt.Errorf("%w: position of partition %d", profile.ErrCorrupt, p)
			}
			out[p] = binary.BigEndian.Uint64(v)
		}
	}
	return out, nil
}

// Link implements profile.Store.
func (s *Store) Link(_ context.Context, id profile.Ref) (profile.Ref, bool, error) {
	v, ok, err := s.get(refKey(tagLink, id))
	if err != nil || !ok {
		return profile.Ref{}, false, err
	}
	var r profile.Ref
	if len(v) != len(r.P)+2 {
		return r, false, fmt.Errorf("%w: identity link of %s", profile.ErrCorrupt, id.P)
	}
	copy(r.P[:], v)
	r.Partition = int(binary.BigEndian.Uint16(v[len(r.P):]))
	return r, true, nil
}

// Profile implements profile.Store.
func (s *Store) Profile(_ context.Context, id profile.Ref) (*profile.Record, bool, error) {
	v, ok, err := s.get(refKey(tagProfile, id))
	if err != nil || !ok {
		return nil, false, err
	}
	r, err := decodeRecord(id, v)
	if err != nil {
		return nil, false, err
	}
	return r, true, nil
}

// History implements profile.Store: each subject's newest entries, merged.
func (s *Store) History(_ context.Context, subjects []profile.Ref, before profile.Cursor, limit int) ([]profile.Entry, error) {
	var out []profile.Entry
	for _, sub := range subjects {
		lower := refKey(tagHistory, sub)
		upper := prefixEnd(lower)
		if !before.IsZero() {
			upper = historyKey(sub, before)
		}
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
		if err != nil {
			return nil, fmt.Errorf("profile store: history: %w", err)
		}
		n := 0
		for ok := it.Last(); ok && n < limit; ok = it.Prev() {
			k := it.Key()
			if len(k) != len(lower)+16 {
				it.Close()
				return nil, fmt.Errorf("%w: history key of %s", profile.ErrCorrupt, sub.P)
			}
			nanos := int64(binary.BigEndian.Uint64(k[len(lower):]) ^ (1 << 63))
			v := it.Value()
			if len(v) != 12 {
				it.Close()
				return nil, fmt.Errorf("%w: history entry of %s", profile.ErrCorrupt, sub.P)
			}
			out = append(out, profile.Entry{
				Subject: sub,
				At:      profile.Cursor{Time: time.Unix(0, nanos).UTC(), Hash: binary.BigEndian.Uint64(k[len(lower)+8:])},
				Log:     profile.LogRef{Seq: binary.BigEndian.Uint64(v), Index: binary.BigEndian.Uint32(v[8:])},
			})
			n++
		}
		if err := it.Close(); err != nil {
			return nil, fmt.Errorf("profile store: history: %w", err)
		}
	}
	slices.SortFunc(out, func(a, b profile.Entry) int {
		if c := b.At.Time.Compare(a.At.Time); c != 0 {
			return c
		}
		switch {
		case a.At.Hash > b.At.Hash:
			return -1
		case a.At.Hash < b.At.Hash:
			return 1
		}
		return 0
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// Ext implements profile.Store.
func (s *Store) Ext(_ context.Context, key []byte) ([]byte, bool, error) {
	return s.get(append([]byte{tagExt}, key...))
}

// ScanExt implements profile.Store.
func (s *Store) ScanExt(_ context.Context, from, to []byte, fn func(key, value []byte) error) error {
	lower := append([]byte{tagExt}, from...)
	upper := append([]byte{tagExt}, to...)
	if len(to) == 0 {
		upper = []byte{tagExt + 1}
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("profile store: scan: %w", err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		if err := fn(it.Key()[1:], it.Value()); err != nil {
			it.Close()
			return err
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("profile store: scan: %w", err)
	}
	return nil
}

// Commit implements profile.Store. The batch is not fsynced: what a crash
// loses of it, positions included, the consumer reads again from the log.
func (s *Store) Commit(_ context.Context, b *profile.Batch) error {
	wb := s.db.NewBatch()
	defer wb.Close()
	for _, id := range b.Forget {
		k := refKey(tagHistory, id)
		if err := wb.DeleteRange(k, prefixEnd(k), nil); err != nil {
			return err
		}
	}
	for _, id := range b.Unlink {
		if err := wb.Delete(refKey(tagLink, id), nil); err != nil {
			return err
		}
	}
	for _, id := range b.Delete {
		if err := wb.Delete(refKey(tagProfile, id), nil); err != nil {
			return err
		}
	}
	for id, p := range b.Link {
		if err := wb.Set(refKey(tagLink, id), binary.BigEndian.AppendUint16(p.P[:], uint16(p.Partition)), nil); err != nil {
			return err
		}
	}
	for _, r := range b.Put {
		if err := wb.Set(refKey(tagProfile, r.ID), encodeRecord(r), nil); err != nil {
			return err
		}
	}
	for _, e := range b.Events {
		v := binary.BigEndian.AppendUint64(make([]byte, 0, 12), e.Log.Seq)
		v = binary.BigEndian.AppendUint32(v, e.Log.Index)
		if err := wb.Set(historyKey(e.Subject, e.At), v, nil); err != nil {
			return err
		}
	}
	for k, v := range b.Ext {
		key := append([]byte{tagExt}, k...)
		var err error
		if v == nil {
			err = wb.Delete(key, nil)
		} else {
			err = wb.Set(key, v, nil)
		}
		if err != nil {
			return err
		}
	}
	for p, seq := range b.Positions {
		if seq != 0 {
			if err := wb.Set(positionKey(p), binary.BigEndian.AppendUint64(nil, seq), nil); err != nil {
				return err
			}
		}
	}
	sync := pebble.NoSync
	if b.Durable {
		sync = pebble.Sync
	}
	if err := wb.Commit(sync); err != nil {
		return fmt.Errorf("profile store: commit: %w", err)
	}
	return nil
}

// Compact rewrites the key ranges of the given subjects and profiles so that
// deleted entries leave the store's files (erasure hygiene: their contents
// are sealed under shredded keys already).
func (s *Store) Compact(ctx context.Context, refs []profile.Ref) error {
	for _, r := range refs {
		for _, tag := range []byte{tagHistory, tagProfile, tagLink} {
			k := refKey(tag, r)
			if err := s.db.Compact(ctx, k, prefixEnd(k), false); err != nil {
				return fmt.Errorf("profile store: compact: %w", err)
			}
		}
	}
	return nil
}

// Close implements profile.Store.
func (s *Store) Close() error { return s.db.Close() }

func (s *Store) get(k []byte) ([]byte, bool, error) {
	v, closer, err := s.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("profile store: %w", err)
	}
	defer closer.Close()
	return slices.Clone(v), true, nil
}

// A record is: count u16, then per identity pseudonym + partition u16, then
// the sealed rest.
func encodeRecord(r *profile.Record) []byte {
	b := make([]byte, 0, 2+len(r.Identities)*18+len(r.Sealed))
	b = binary.BigEndian.AppendUint16(b, uint16(min(len(r.Identities), math.MaxUint16)))
	for _, id := range r.Identities[:min(len(r.Identities), math.MaxUint16)] {
		b = append(b, id.P[:]...)
		b = binary.BigEndian.AppendUint16(b, uint16(id.Partition))
	}
	return append(b, r.Sealed...)
}

func decodeRecord(id profile.Ref, v []byte) (*profile.Record, error) {
	if len(v) < 2 {
		return nil, fmt.Errorf("%w: profile %s", profile.ErrCorrupt, id.P)
	}
	n := int(binary.BigEndian.Uint16(v))
	v = v[2:]
	if len(v) < n*18 {
		return nil, fmt.Errorf("%w: profile %s", profile.ErrCorrupt, id.P)
	}
	r := &profile.Record{ID: id, Identities: make([]profile.Ref, n)}
	for i := range n {
		copy(r.Identities[i].P[:], v[:16])
		r.Identities[i].Partition = int(binary.BigEndian.Uint16(v[16:]))
		v = v[18:]
	}
	r.Sealed = slices.Clone(v)
	return r, nil
}

// quietLogger drops Pebble's informational logs and keeps its errors on
// stderr through the standard logger's default.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any) {}
func (quietLogger) Errorf(format string, args ...any) {
	pebble.DefaultLogger.Errorf(format, args...)
}
func (quietLogger) Fatalf(format string, args ...any) {
	pebble.DefaultLogger.Fatalf(format, args...)
}
