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
	"bytes"
	"cmp"
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
	"github.com/nudge-dev/nudge/shred"
)

// Options tunes the store.
type Options struct {
	// CacheBytes is Pebble's block cache for blocks read from the files
	// (default 64 MiB). Pebble v2 also charges the memtables to the cache,
	// so Open adds room for two of them on top: without it the cache held
	// nothing once the memtable was full, and every point read went to the
	// files (measured: 0 cached blocks; 20-70 µs a read instead of about 3).
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
	cache := pebble.NewCache(opts.CacheBytes + 2*int64(opts.MemTableBytes))
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

// The lengths of fixed-size keys and values.
const (
	refKeyLen       = 3 + len(shred.Pseudonym{})
	historyKeyLen   = refKeyLen + 16
	linkValueLen    = len(shred.Pseudonym{}) + 2
	historyValueLen = 12
)

func refKey(tag byte, r profile.Ref) []byte {
	k := make([]byte, refKeyLen, historyKeyLen)
	putRefKey(k, tag, r)
	return k
}

// putRefKey writes the key of r under tag into k[:refKeyLen].
func putRefKey(k []byte, tag byte, r profile.Ref) {
	k[0] = tag
	binary.BigEndian.PutUint16(k[1:], uint16(r.Partition))
	copy(k[3:refKeyLen], r.P[:])
}

func positionKey(part int) []byte {
	return binary.BigEndian.AppendUint16([]byte{tagPosition}, uint16(part))
}

// timeKey orders times as unsigned integers.
func timeKey(t time.Time) uint64 { return uint64(t.UnixNano()) ^ (1 << 63) }

func historyKey(e profile.Ref, at profile.Cursor) []byte {
	k := make([]byte, historyKeyLen)
	putHistoryKey(k, e, at)
	return k
}

// putHistoryKey writes the history key of an event of e at at into
// k[:historyKeyLen].
func putHistoryKey(k []byte, e profile.Ref, at profile.Cursor) {
	putRefKey(k, tagHistory, e)
	binary.BigEndian.PutUint64(k[refKeyLen:], timeKey(at.Time))
	binary.BigEndian.PutUint64(k[refKeyLen+8:], at.Hash)
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
//
// The keys of each kind go into the batch in key order: Pebble inserts a
// batch into its memtable (a skiplist) in batch order and starts each
// search from where the last insert ended, so that sorted keys take a
// fraction of the comparisons and cache misses of random ones. Keys are
// written straight into the batch (SetDeferred), without a copy per key.
func (s *Store) Commit(_ context.Context, b *profile.Batch) error {
	wb := s.db.NewBatchWithSize(batchSize(b))
	defer wb.Close()
	for _, id := range b.Forget {
		k := refKey(tagHistory, id)
		if err := wb.DeleteRange(k, prefixEnd(k), nil); err != nil {
			return err
		}
	}
	for _, id := range b.Unlink {
		op := wb.DeleteDeferred(refKeyLen)
		putRefKey(op.Key, tagLink, id)
		if err := op.Finish(); err != nil {
			return err
		}
	}
	for _, id := range b.Delete {
		op := wb.DeleteDeferred(refKeyLen)
		putRefKey(op.Key, tagProfile, id)
		if err := op.Finish(); err != nil {
			return err
		}
	}
	links := make([]profile.Ref, 0, len(b.Link))
	for id := range b.Link {
		links = append(links, id)
	}
	slices.SortFunc(links, cmpRef)
	for _, id := range links {
		p := b.Link[id]
		op := wb.SetDeferred(refKeyLen, linkValueLen)
		putRefKey(op.Key, tagLink, id)
		copy(op.Value, p.P[:])
		binary.BigEndian.PutUint16(op.Value[len(p.P):], uint16(p.Partition))
		if err := op.Finish(); err != nil {
			return err
		}
	}
	order := make([]keyOrder, len(b.Put), max(len(b.Put), len(b.Events)))
	for i, r := range b.Put {
		order[i] = keyOrder{refPrefix(r.ID), int32(i)}
	}
	sortKeys(order, func(i, j int32) int { return cmpRef(b.Put[i].ID, b.Put[j].ID) })
	for _, o := range order {
		r := b.Put[o.i]
		op := wb.SetDeferred(refKeyLen, recordLen(r))
		putRefKey(op.Key, tagProfile, r.ID)
		putRecord(op.Value, r)
		if err := op.Finish(); err != nil {
			return err
		}
	}
	order = order[:len(b.Events)]
	for i := range b.Events {
		order[i] = keyOrder{refPrefix(b.Events[i].Subject), int32(i)}
	}
	sortKeys(order, func(i, j int32) int { return cmpHistory(&b.Events[i], &b.Events[j]) })
	for _, o := range order {
		e := &b.Events[o.i]
		op := wb.SetDeferred(historyKeyLen, historyValueLen)
		putHistoryKey(op.Key, e.Subject, e.At)
		binary.BigEndian.PutUint64(op.Value, e.Log.Seq)
		binary.BigEndian.PutUint32(op.Value[8:], e.Log.Index)
		if err := op.Finish(); err != nil {
			return err
		}
	}
	ext := make([]string, 0, len(b.Ext))
	for k := range b.Ext {
		ext = append(ext, k)
	}
	slices.Sort(ext)
	for _, k := range ext {
		v := b.Ext[k]
		var op *pebble.DeferredBatchOp
		if v == nil {
			op = wb.DeleteDeferred(1 + len(k))
		} else {
			op = wb.SetDeferred(1+len(k), len(v))
			copy(op.Value, v)
		}
		op.Key[0] = tagExt
		copy(op.Key[1:], k)
		if err := op.Finish(); err != nil {
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

// batchSize is about the bytes of b in a Pebble batch: room for it from
// the start saves growing (and copying) the batch as it is written.
func batchSize(b *profile.Batch) int {
	const perKey = 8 // a kind byte and two length varints, about
	n := 12 + len(b.Positions)*(perKey+3+8)
	n += (len(b.Unlink) + len(b.Delete)) * (perKey + refKeyLen)
	n += len(b.Link) * (perKey + refKeyLen + linkValueLen)
	n += len(b.Events) * (perKey + historyKeyLen + historyValueLen)
	for _, r := range b.Put {
		n += perKey + refKeyLen + recordLen(r)
	}
	for k, v := range b.Ext {
		n += perKey + 1 + len(k) + len(v)
	}
	return n
}

// keyOrder sorts the entries of a batch: prefix holds the first bytes of
// an entry's key after its tag, i its index in the batch.
type keyOrder struct {
	prefix uint64
	i      int32
}

// refPrefix is the partition and the first six bytes of the pseudonym, as
// a key under r starts.
func refPrefix(r profile.Ref) uint64 {
	return uint64(uint16(r.Partition))<<48 | binary.BigEndian.Uint64(r.P[:8])>>16
}

// sortKeys sorts o into key order, by prefix, then by cmp of the entries;
// equal keys (an event in the log twice) keep their batch order, so that
// the later one wins, as in the batch.
func sortKeys(o []keyOrder, cmpEntries func(i, j int32) int) {
	slices.SortFunc(o, func(a, b keyOrder) int {
		if a.prefix != b.prefix {
			return cmp.Compare(a.prefix, b.prefix)
		}
		return cmp.Or(cmpEntries(a.i, b.i), cmp.Compare(a.i, b.i))
	})
}

func cmpRef(a, b profile.Ref) int {
	return cmp.Or(cmp.Compare(uint16(a.Partition), uint16(b.Partition)), bytes.Compare(a.P[:], b.P[:]))
}

// cmpHistory orders history entries as their keys do.
func cmpHistory(a, b *profile.Entry) int {
	return cmp.Or(cmpRef(a.Subject, b.Subject),
		cmp.Compare(timeKey(a.At.Time), timeKey(b.At.Time)),
		cmp.Compare(a.At.Hash, b.At.Hash))
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
func recordLen(r *profile.Record) int {
	return 2 + min(len(r.Identities), math.MaxUint16)*linkValueLen + len(r.Sealed)
}

// putRecord writes r into b[:recordLen(r)].
func putRecord(b []byte, r *profile.Record) {
	ids := r.Identities[:min(len(r.Identities), math.MaxUint16)]
	binary.BigEndian.PutUint16(b, uint16(len(ids)))
	b = b[2:]
	for _, id := range ids {
		copy(b, id.P[:])
		binary.BigEndian.PutUint16(b[len(id.P):], uint16(id.Partition))
		b = b[linkValueLen:]
	}
	copy(b, r.Sealed)
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
