// Package dedup recognises events a retrying SDK sends twice: the same
// messageId from the same source within a window (24 hours by default).
//
// The index keeps a 64-bit hash of (source, messageId) per accepted event in
// time buckets that expire as a whole. At 5 million keys the chance that two
// different ids share a hash is about 7 in 10 million, and the cost of such a
// collision is one event dropped as a duplicate.
//
// Claims are two-phase so that a 200 is never given for an event that is not
// durable: Claim reserves the new keys, the caller makes the events durable,
// then Commit (or Release on failure). A duplicate that arrives while its
// first copy is still being written waits for that outcome.
//
// The index survives restarts through snapshots (see Save and Load) plus the
// events stored after the snapshot, which the caller adds back with Add.
package dedup

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
)

// Key is the hash of one event's identity.
type Key uint64

// KeyOf hashes a source and a messageId.
func KeyOf(source, messageID string) Key {
	var d xxhash.Digest
	d.Reset()
	d.WriteString(source)
	d.Write([]byte{0})
	d.WriteString(messageID)
	return Key(d.Sum64())
}

const buckets = 24 // the window is split into this many buckets

// Index is the set of recently accepted event keys. It is safe for
// concurrent use.
type Index struct {
	window  time.Duration
	width   time.Duration // of one bucket
	maxKeys int

	mu       sync.Mutex
	keys     map[Key]struct{}  // accepted keys
	byBucket map[int64][][]Key // bucket number (time / width) -> its keys in chunks, to expire them together
	pending  map[Key]*Claim    // keys being written, few
	evicted  uint64            // keys dropped early to stay under maxKeys
}

// New makes an empty index. maxKeys bounds memory (about 20 bytes a key,
// twice that in RSS with the garbage collector's headroom):
// past it the oldest bucket is dropped before its time, which shortens the
// window; Stats reports how often.
func New(window time.Duration, maxKeys int) *Index {
	if window <= 0 {
		window = 24 * time.Hour
	}
	if maxKeys <= 0 {
		maxKeys = 5_000_000
	}
	return &Index{
		window:   window,
		width:    max(window/buckets, time.Second),
		maxKeys:  maxKeys,
		keys:     make(map[Key]struct{}),
		byBucket: make(map[int64][][]Key),
		pending:  make(map[Key]*Claim),
	}
}

// Claim is the reservation of one request's keys, ended by Commit or Release.
type Claim struct {
	keys  []Key
	fresh []bool
	done  chan struct{}
}

// Fresh reports, for each key given to Claim, whether it is new; a key
// repeated within one request is fresh only at its first place.
func (c *Claim) Fresh() []bool { return c.fresh }

// Claim reserves keys for a request received at now. Fresh keys stay
// reserved until Commit or Release. When a key is being written by another
// request, Claim waits for that outcome (or ctx): a 200 for the duplicate
// must not come before the first copy is durable.
func (ix *Index) Claim(ctx context.Context, keys []Key, now time.Time) (*Claim, error) {
	c := &Claim{keys: keys, fresh: make([]bool, len(keys)), done: make(chan struct{})}
	for {
		var wait *Claim
		ix.mu.Lock()
		ix.expire(now)
		for i, k := range keys {
			if other, ok := ix.pending[k]; ok {
				if other != c {
					wait = other
					break
				}
				continue // repeated within this request
			}
			if _, ok := ix.keys[k]; ok {
				continue
			}
			ix.pending[k] = c
			c.fresh[i] = true
		}
		if wait == nil {
			ix.mu.Unlock()
			return c, nil
		}
		// Give back what this round reserved, wait, and start over: the
		// other request's outcome decides whether our copy is fresh.
		ix.unpendLocked(c)
		clear(c.fresh)
		ix.mu.Unlock()
		select {
		case <-wait.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Commit records the fresh keys of c as accepted at now.
func (ix *Index) Commit(c *Claim, now time.Time) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	b := ix.bucket(now)
	for i, k := range c.keys {
		if c.fresh[i] {
			delete(ix.pending, k)
			ix.keys[k] = struct{}{}
			ix.remember(b, k)
		}
	}
	ix.evictLocked()
	close(c.done)
}

// Release gives back the fresh keys of c, whose events were not kept.
func (ix *Index) Release(c *Claim) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.unpendLocked(c)
	close(c.done)
}

func (ix *Index) unpendLocked(c *Claim) {
	for i, k := range c.keys {
		if c.fresh[i] {
			delete(ix.pending, k)
		}
	}
}

// Add records a key accepted at t, as when rebuilding after a restart. Keys
// older than the window are ignored.
func (ix *Index) Add(k Key, t time.Time, now time.Time) {
	if now.Sub(t) >= ix.window {
		return
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.addLocked(k, t)
}

func (ix *Index) addLocked(k Key, t time.Time) {
	b := ix.bucket(t)
	if _, ok := ix.keys[k]; ok {
		return
	}
	ix.keys[k] = struct{}{}
	ix.remember(b, k)
	ix.evictLocked()
}

// chunkKeys is the size of the chunks a bucket's key list grows by, so that
// a growing bucket never copies its millions of keys.
const chunkKeys = 8192

func (ix *Index) remember(b int64, k Key) {
	chunks := ix.byBucket[b]
	if n := len(chunks); n == 0 || len(chunks[n-1]) == chunkKeys {
		chunks = append(chunks, make([]Key, 0, chunkKeys))
	}
	last := len(chunks) - 1
	chunks[last] = append(chunks[last], k)
	ix.byBucket[b] = chunks
}

func (ix *Index) bucket(t time.Time) int64 { return t.UnixNano() / int64(ix.width) }

// evictLocked forgets the oldest keys, a chunk at a time, while the index
// holds more than maxKeys.
func (ix *Index) evictLocked() {
	for len(ix.keys) > ix.maxKeys {
		b := ix.oldestLocked()
		chunks := ix.byBucket[b]
		for _, k := range chunks[0] {
			delete(ix.keys, k)
		}
		ix.evicted += uint64(len(chunks[0]))
		if len(chunks) == 1 {
			delete(ix.byBucket, b)
		} else {
			ix.byBucket[b] = chunks[1:]
		}
	}
}

// dropLocked forgets a bucket's keys and returns how many there were.
func (ix *Index) dropLocked(b int64) int {
	n := 0
	for _, chunk := range ix.byBucket[b] {
		for _, k := range chunk {
			delete(ix.keys, k)
		}
		n += len(chunk)
	}
	delete(ix.byBucket, b)
	return n
}

func (ix *Index) oldestLocked() int64 {
	first := true
	var oldest int64
	for b := range ix.byBucket {
		if first || b < oldest {
			oldest, first = b, false
		}
	}
	return oldest
}

// expire drops the buckets wholly outside the window ending at now.
func (ix *Index) expire(now time.Time) {
	limit := now.Add(-ix.window).UnixNano() / int64(ix.width)
	for b := range ix.byBucket {
		if b < limit {
			ix.dropLocked(b)
		}
	}
}

// Stats describes the index.
type Stats struct {
	Keys    int
	Evicted uint64 // keys dropped before their time to stay under the memory bound
}

// Stats reports the index's size.
func (ix *Index) Stats() Stats {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return Stats{Keys: len(ix.keys), Evicted: ix.evicted}
}

// Snapshot file format: magic, mark (uint64, the caller's position the
// snapshot covers), then per bucket: bucket number, key count, keys.
const magic = "nudge-dedup-1\n"

// Save writes the index atomically to path, with mark: a position of the
// caller's (nudge stores the log sequence) up to which every accepted key is
// included, so that a restart adds back only what came after it.
func (ix *Index) Save(path string, mark uint64) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("dedup snapshot: %w", err)
	}
	defer os.Remove(tmp)
	w := bufio.NewWriterSize(f, 1<<20)
	err = writeSnapshot(w, mark, ix.view())
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		return fmt.Errorf("dedup snapshot: %w", err)
	}
	return nil
}

// bucketView is a bucket's keys as they were when view was taken.
type bucketView struct {
	bucket int64
	chunks [][]Key
}

// view captures the buckets under the lock in O(chunks), so that writing
// millions of keys happens outside it: chunks only ever grow past the length
// captured here, and dropped chunks are not reused, so the captured prefixes
// stay as they were.
func (ix *Index) view() []bucketView {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	out := make([]bucketView, 0, len(ix.byBucket))
	for b, chunks := range ix.byBucket {
		v := bucketView{bucket: b, chunks: make([][]Key, len(chunks))}
		for i, c := range chunks {
			v.chunks[i] = c[:len(c):len(c)]
		}
		out = append(out, v)
	}
	return out
}

func writeSnapshot(w io.Writer, mark uint64, view []bucketView) error {
	buf := binary.LittleEndian.AppendUint64([]byte(magic), mark)
	for _, v := range view {
		n := 0
		for _, c := range v.chunks {
			n += len(c)
		}
		buf = binary.LittleEndian.AppendUint64(buf, uint64(v.bucket))
		buf = binary.LittleEndian.AppendUint64(buf, uint64(n))
		for _, chunk := range v.chunks {
			for _, k := range chunk {
				buf = binary.LittleEndian.AppendUint64(buf, uint64(k))
			}
			if _, err := w.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
	}
	_, err := w.Write(buf)
	return err
}

// Load reads a snapshot written by Save into the index, dropping buckets
// outside the window ending at now, and returns its mark. A missing file is
// not an error: the mark is zero and the index stays empty.
func (ix *Index) Load(path string, now time.Time) (mark uint64, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("dedup snapshot: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	head := make([]byte, len(magic)+8)
	if _, err := io.ReadFull(r, head); err != nil || string(head[:len(magic)]) != magic {
		return 0, fmt.Errorf("dedup snapshot %s: not a snapshot file", path)
	}
	mark = binary.LittleEndian.Uint64(head[len(magic):])
	limit := now.Add(-ix.window).UnixNano() / int64(ix.width)
	var word [8]byte
	next := func() (uint64, error) {
		_, err := io.ReadFull(r, word[:])
		return binary.LittleEndian.Uint64(word[:]), err
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for {
		b, err := next()
		if err == io.EOF {
			return mark, nil
		}
		n, err2 := next()
		if err != nil || err2 != nil {
			return 0, fmt.Errorf("dedup snapshot %s: truncated", path)
		}
		keep := int64(b) >= limit
		for range n {
			k, err := next()
			if err != nil {
				return 0, fmt.Errorf("dedup snapshot %s: truncated", path)
			}
			if keep {
				ix.addLocked(Key(k), time.Unix(0, int64(b)*int64(ix.width)))
			}
		}
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
