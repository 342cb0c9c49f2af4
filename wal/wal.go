// Package wal is nudge's write-ahead log: the place where ingest makes
// events durable before it answers 200.
//
// Append returns once its record has been written and fdatasync'ed.
// Concurrent Appends share the cost: a single writer goroutine takes every
// record queued while the previous round was being synced and writes them
// with one write and one fdatasync (group commit). A forwarder follows the
// log with Committed and Read and retires what it has forwarded with
// TruncateBefore: two retired segment files are kept as spares and reused
// for the next segments, because deleting a file TRIMs its blocks on a
// disk mounted with discard, which stalls the group commit's fdatasyncs.
//
// Every record has a position: a byte address (segment base + offset in the
// segment) that is strictly increasing in Append order, across restarts and
// segment deletion. Positions of records that were never made durable (torn
// by a crash, or failed) may be reused; no reader ever saw them.
//
// The log is a directory of segment files, each preallocated so that running
// out of space shows up when a segment is created; see segment.go for the
// format. Open recovers after a crash by removing a torn or corrupt tail of
// the last segment.
//
// A forwarder follows the log like this (next persisted by the forwarder, or
// 0 to start from the oldest record kept):
//
//	for {
//		end, changed := w.Committed()
//		if next >= end {
//			select {
//			case <-changed:
//			case <-ctx.Done():
//				return
//			}
//			continue
//		}
//		next, err = w.Read(next, publish) // on error, retry Read(next) later
//		...
//		w.TruncateBefore(next) // once next is persisted by the consumer side
//	}
package wal

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"

	"github.com/nudge-dev/nudge"
	"golang.org/x/sys/unix"
)

// ErrClosed is returned by the methods of a WAL after Close, and by Appends
// that were still queued when Close was called. errors.Is(err,
// nudge.ErrClosed) holds as well.
var ErrClosed = fmt.Errorf("wal: %w", nudge.ErrClosed)

// ErrRecordSize is returned by Append for an empty record or one of 4 GiB or
// more.
var ErrRecordSize = errors.New("wal: record must hold 1 byte to 4 GiB-1")

// ErrLocked is wrapped by Open's error when another WAL has dir open.
var ErrLocked = errors.New("wal: directory locked")

// ErrCorrupt is wrapped by Read's error when a committed record fails its
// checksum or cannot be parsed.
var ErrCorrupt = errors.New("wal: corrupt record")

// Options configure a WAL. The zero value gives the defaults.
type Options struct {
	// SegmentSize is the size of a segment file, preallocated when the
	// segment is created. Default 64 MiB. A record never spans segments: a
	// new segment starts when the current one cannot hold the next record,
	// and a record too big for an empty segment gets a segment of its own
	// size.
	SegmentSize int64
	// MaxBatchBytes bounds what one group-commit round writes (a single
	// larger record is written alone). Default 4 MiB. Appends queue at most
	// 4*MaxBatchBytes; past that Append waits (or its ctx ends).
	MaxBatchBytes int
	// NoSync skips every fsync and fdatasync ("weak mode", for tests and
	// benchmarks). Acknowledged records then survive the death of the process
	// (they are in the OS page cache) but NOT power loss or a kernel crash.
	NoSync bool
}

const (
	defaultSegmentSize   = 64 << 20
	defaultMaxBatchBytes = 4 << 20
)

// Stats are counters since Open, and whether the WAL is closed.
type Stats struct {
	Appends  uint64 // records made durable (Appends that succeeded)
	Bytes    uint64 // bytes written by successful rounds, record headers included
	Rounds   uint64 // group-commit rounds that succeeded
	Syncs    uint64 // fdatasync calls of rounds, failed ones included (0 with NoSync)
	Failed   uint64 // rounds that failed (write, sync or segment creation error)
	Segments int    // segment files now
	Closed   bool   // Close has been called
}

// WAL is a write-ahead log open in one directory; Open locks the directory
// against other WALs. All methods are safe for concurrent use.
type WAL struct {
	dir       string
	opts      Options
	ops       fileOps
	maxQueued int
	recovered Recovery
	lock      *os.File // holds the flock on dir/LOCK

	kick chan struct{} // wakes the writer; capacity 1
	done chan struct{} // closed when the writer has exited

	mu        sync.Mutex
	closed    bool
	segs      []*segment // ascending base; the last one is active
	committed uint64     // end of the durable records
	changed   chan struct{}
	readHint  uint64        // a known record start (the last next Read returned)
	queue     []*chunk      // records not yet taken by the writer, oldest first
	queued    int           // bytes in queue
	space     chan struct{} // closed when queued shrinks, or on Close
	free      []*chunk
	stats     Stats
	spares    []uint64 // bases the spare files are named after, ascending
	maxSpares int      // 2; 0 deletes every retired segment (a benchmark's baseline)
	// shredFloor is the base of the last segment begun by
	// AppendInNewSegment: no segment before it is recycled.
	shredFloor uint64
	reads      []uint64 // the from of each Read in progress

	// Owned by the writer goroutine (and by Open and Close before and after
	// it runs).
	f      *os.File // active segment
	base   uint64   // its base
	off    int64    // end of its durable records
	size   int64    // its file size
	broken bool     // a round failed in it: start a new segment before writing
	seal   uint32   // its records' seal
	stale  bool     // it is a recycled file: old bytes follow its records
	zeros  []byte
}

type segment struct {
	base  uint64
	seal  uint32
	hints []uint64 // known record starts, ascending, about hintGap apart
}

// request is one queued Append.
type request struct {
	n    int // encoded size, header included
	pos  uint64
	err  error
	done chan struct{} // closed when pos or err is set
}

// chunk is a run of encoded records queued for the writer, at most
// MaxBatchBytes unless it holds a single larger record. Appends add to the
// last chunk until the writer seals it by taking from it.
type chunk struct {
	buf    []byte
	reqs   []*request
	next   int // first request not taken yet
	off    int // its offset in buf
	sealed bool
	roll   bool // its first record starts a new segment
}

// Open opens the WAL in dir, creating dir and the first segment if needed.
// It recovers from a crash: the last segment is scanned and a torn or corrupt
// tail (short record, CRC mismatch) is removed; Recovered tells what was
// found. Open logs nothing.
func Open(dir string, opts Options) (*WAL, error) {
	return open(dir, opts, osOps)
}

func open(dir string, opts Options, ops fileOps) (*WAL, error) {
	if opts.SegmentSize <= 0 {
		opts.SegmentSize = defaultSegmentSize
	}
	if opts.MaxBatchBytes <= 0 {
		opts.MaxBatchBytes = defaultMaxBatchBytes
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	w, err := openLocked(dir, opts, ops)
	if err != nil {
		lock.Close()
		return nil, err
	}
	w.lock = lock
	go w.run()
	return w, nil
}

// lockDir takes an exclusive flock on dir/LOCK, so that a second WAL (in this
// process or another, such as an old instance still running during a deploy)
// cannot open the same directory. The lock goes with the file descriptor:
// it is released by Close or by the death of the process.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("wal: %s is in use by another WAL: %w", dir, ErrLocked)
		}
		return nil, fmt.Errorf("wal: lock %s: %w", dir, err)
	}
	return f, nil
}

func openLocked(dir string, opts Options, ops fileOps) (*WAL, error) {
	bases, spares, err := listSegments(dir)
	if err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	w := &WAL{
		dir:       dir,
		opts:      opts,
		ops:       ops,
		maxQueued: 4 * opts.MaxBatchBytes,
		kick:      make(chan struct{}, 1),
		done:      make(chan struct{}),
		changed:   make(chan struct{}),
		space:     make(chan struct{}),
		zeros:     make([]byte, 64<<10),
		maxSpares: 2,
	}
	w.recovered.Segments = len(bases)
	if len(bases) == 0 {
		f, err := createSegment(dir, 0, opts.SegmentSize, 0, "", opts.NoSync, &w.ops)
		if err != nil {
			return nil, err
		}
		w.seal = segHeader{version: formatVersion}.seal(0)
		if !opts.NoSync {
			// The directory itself may be new.
			if err := syncDir(filepath.Dir(filepath.Clean(dir))); err != nil {
				f.Close()
				return nil, fmt.Errorf("wal: %w", err)
			}
		}
		w.f, w.base, w.off, w.size = f, 0, headerSize, opts.SegmentSize
		w.segs = []*segment{{base: 0, seal: w.seal}}
	} else {
		for i, base := range bases[:len(bases)-1] {
			if bases[i+1] < base+headerSize {
				return nil, fmt.Errorf("wal: segments %s and %s overlap", segName(base), segName(bases[i+1]))
			}
			sh, err := readSegHeader(filepath.Join(dir, segName(base)), base)
			if err != nil {
				return nil, err
			}
			if sh.flags&flagShred != 0 {
				w.shredFloor = base
			}
			w.segs = append(w.segs, &segment{base: base, seal: sh.seal(base)})
		}
		base := bases[len(bases)-1]
		f, sh, end, size, hints, err := recoverSegment(filepath.Join(dir, segName(base)), base, opts.SegmentSize, opts.NoSync, &w.ops, &w.recovered)
		if err != nil {
			return nil, err
		}
		if sh.flags&flagShred != 0 {
			w.shredFloor = base
		}
		w.f, w.base, w.off, w.size, w.seal = f, base, end, size, sh.seal(base)
		w.segs = append(w.segs, &segment{base: base, seal: w.seal, hints: hints})
	}
	// Spares made before the last shredding boundary go; so do those past
	// the bound, oldest first.
	for i, base := range spares {
		if base < w.shredFloor || len(spares)-i > w.maxSpares {
			if err := os.Remove(filepath.Join(dir, spareName(base))); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("wal: %w", err)
			}
			continue
		}
		w.spares = append(w.spares, base)
	}
	w.committed = w.base + uint64(w.off)
	w.recovered.End = w.committed
	w.stats.Segments = len(w.segs)
	return w, nil
}

// Recovered reports what Open found and repaired.
func (w *WAL) Recovered() Recovery { return w.recovered }

// Stats returns the counters.
func (w *WAL) Stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.stats
	s.Segments = len(w.segs)
	s.Closed = w.closed
	return s
}

// Append writes rec and returns once it is durable (fdatasync done, unless
// NoSync), with its position. It is safe for concurrent use: Appends that
// arrive while a round is being written and synced are written together by
// the next round, with one write and one fdatasync.
//
// rec is copied before Append returns or waits; the caller may reuse it as
// soon as Append returns.
//
// If ctx is done before the record is queued (ctx already done, or while
// waiting for queue space), Append returns ctx.Err() and the record is not
// written. Once queued, the record is written even if ctx ends; Append then
// returns ctx.Err() early, and the record may or may not become durable.
//
// If the round fails (a write or fdatasync error, or ENOSPC creating a new
// segment), every Append of the round returns an error wrapping the cause, so
// errors.Is(err, syscall.ENOSPC) works. Read never delivers the failed
// records, and the next round writes into a new segment that starts where
// the failed round did (creating it may fail too, e.g. while the disk is
// full; then that round fails the same way). The failed bytes are zeroed as
// well; only a crash before that zeroing reaches the disk and before a later
// round succeeds could let Open find them again, as it may find any record
// whose Append did not return. Appends queued but not taken when Close is
// called return ErrClosed.
func (w *WAL) Append(ctx context.Context, rec []byte) (pos uint64, err error) {
	return w.append(ctx, rec, false)
}

// AppendInNewSegment is Append, but the record starts a new segment, so
// that once everything before it is no longer needed, TruncateBefore(pos)
// deletes every byte written before it. Erasure uses it to leave no copy of
// an erased person's keys in the WAL.
func (w *WAL) AppendInNewSegment(ctx context.Context, rec []byte) (pos uint64, err error) {
	return w.append(ctx, rec, true)
}

func (w *WAL) append(ctx context.Context, rec []byte, roll bool) (pos uint64, err error) {
	if len(rec) == 0 || uint64(len(rec)) > math.MaxUint32 {
		return 0, ErrRecordSize
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var hdr [recHeaderSize]byte
	putRecHeader(hdr[:], rec) // checksum outside the lock
	n := recHeaderSize + len(rec)
	r := &request{n: n, done: make(chan struct{})}

	w.mu.Lock()
	for {
		if w.closed {
			w.mu.Unlock()
			return 0, ErrClosed
		}
		if w.queued == 0 || w.queued+n <= w.maxQueued {
			break
		}
		space := w.space
		w.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		w.mu.Lock()
	}
	var c *chunk
	if k := len(w.queue); k > 0 && !roll {
		c = w.queue[k-1]
		if c.sealed || len(c.buf)+n > w.opts.MaxBatchBytes {
			c = nil
		}
	}
	if c == nil {
		c = w.newChunkLocked()
		c.roll = roll
		w.queue = append(w.queue, c)
	}
	c.buf = append(c.buf, hdr[:]...)
	c.buf = append(c.buf, rec...)
	c.reqs = append(c.reqs, r)
	w.queued += n
	w.mu.Unlock()

	select {
	case w.kick <- struct{}{}:
	default:
	}
	select {
	case <-r.done:
		return r.pos, r.err
	case <-ctx.Done():
		select {
		case <-r.done:
			return r.pos, r.err
		default:
			return 0, ctx.Err()
		}
	}
}

func (w *WAL) newChunkLocked() *chunk {
	if k := len(w.free); k > 0 {
		c := w.free[k-1]
		w.free = w.free[:k-1]
		return c
	}
	return &chunk{}
}

// Committed returns the end of the durable records (every record at a lower
// position is durable) and a channel that is closed when end moves. Each call
// returns the channel for the end it returns. After Close the channel is
// closed (and Read returns ErrClosed).
func (w *WAL) Committed() (end uint64, changed <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.committed, w.changed
}

// TruncateBefore retires the segment files all of whose records lie before
// pos (their end is <= pos): up to two are kept as spares for the next
// segments, the others are deleted. The active segment is never retired.
// Segments before one begun by AppendInNewSegment are always deleted, and
// so are the spares made before it. Reads that run concurrently skip
// records whose segment is retired under them.
func (w *WAL) TruncateBefore(pos uint64) error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return ErrClosed
	}
	i := 0
	for i < len(w.segs)-1 && w.segs[i+1].base <= pos {
		i++
	}
	victims := w.segs[:i]
	w.segs = append([]*segment(nil), w.segs[i:]...)
	// A segment a Read in progress may still read is deleted, never
	// reused: an open file keeps a deleted file's bytes, not a reused one's.
	reading := uint64(math.MaxUint64)
	for _, from := range w.reads {
		reading = min(reading, from)
	}
	next := w.segs[0].base
	w.mu.Unlock()

	var errs []error
	for k, s := range victims {
		end := next
		if k+1 < len(victims) {
			end = victims[k+1].base
		}
		path := filepath.Join(w.dir, segName(s.base))
		if end <= reading && w.retire(path, s.base) {
			continue
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if len(victims) > 0 && !w.opts.NoSync {
		if err := syncDir(w.dir); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("wal: truncate: %w", err)
	}
	return nil
}

// retire renames the segment file of base at path to a spare if there is
// room for one, it has the size of a segment and it is not before the
// shredding boundary. It reports whether it did.
func (w *WAL) retire(path string, base uint64) bool {
	w.mu.Lock()
	ok := len(w.spares) < w.maxSpares && base >= w.shredFloor
	w.mu.Unlock()
	if !ok {
		return false
	}
	if st, err := os.Stat(path); err != nil || st.Size() != w.opts.SegmentSize {
		return false
	}
	spare := filepath.Join(w.dir, spareName(base))
	if err := os.Rename(path, spare); err != nil {
		return false
	}
	// The boundary may have moved, or other spares come, since the check.
	w.mu.Lock()
	ok = len(w.spares) < w.maxSpares && base >= w.shredFloor
	if ok {
		w.spares = append(w.spares, base)
		slices.Sort(w.spares)
	}
	w.mu.Unlock()
	if !ok {
		os.Remove(spare)
	}
	return true
}

// Close stops the WAL: it waits for the round being written (its Appends get
// their real result), fails the Appends still queued with ErrClosed, and
// closes the files. Later calls return ErrClosed. Close does not wait for
// Reads in progress; they finish normally.
func (w *WAL) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return ErrClosed
	}
	w.closed = true
	close(w.space)
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
	<-w.done

	err := w.f.Close()
	w.mu.Lock()
	close(w.changed)
	w.mu.Unlock()
	w.lock.Close()
	if err != nil {
		return fmt.Errorf("wal: close: %w", err)
	}
	return nil
}

// run is the writer goroutine.
func (w *WAL) run() {
	defer close(w.done)
	for range w.kick {
		for {
			c, reqs, data, roll, newSize, ok := w.take()
			if !ok {
				return // closed
			}
			if c == nil {
				break // queue empty
			}
			w.round(reqs, data, roll, roll && c.roll && reqs[0] == c.reqs[0], newSize)
			if c.next == len(c.reqs) {
				w.recycle(c)
			}
		}
	}
}

// take removes the next round's records from the queue: the first records
// of the oldest chunk that fit in the active segment, or in a new segment if
// the first one does not fit (roll). It returns ok=false once Close has been
// called, after failing what is queued.
func (w *WAL) take() (c *chunk, reqs []*request, data []byte, roll bool, newSize int64, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		for _, c := range w.queue {
			for _, r := range c.reqs[c.next:] {
				r.err = ErrClosed
				close(r.done)
			}
		}
		w.queue, w.queued = nil, 0
		return nil, nil, nil, false, 0, false
	}
	if len(w.queue) == 0 {
		return nil, nil, nil, false, 0, true
	}
	c = w.queue[0]
	c.sealed = true
	room := w.size - w.off
	first := int64(c.reqs[c.next].n)
	if w.broken || first > room || (c.roll && c.next == 0) {
		roll = true
		newSize = max(w.opts.SegmentSize, headerSize+first)
		room = newSize - headerSize
	}
	k, sum := c.next, 0
	for k < len(c.reqs) && int64(sum+c.reqs[k].n) <= room {
		sum += c.reqs[k].n
		k++
	}
	reqs = c.reqs[c.next:k]
	data = c.buf[c.off : c.off+sum]
	c.next, c.off = k, c.off+sum
	if c.next == len(c.reqs) {
		w.queue = w.queue[1:]
	}
	w.queued -= sum
	close(w.space)
	w.space = make(chan struct{})
	return c, reqs, data, roll, newSize, true
}

func (w *WAL) recycle(c *chunk) {
	if cap(c.buf) > 2*w.opts.MaxBatchBytes {
		return // a chunk of one huge record
	}
	clear(c.reqs)
	*c = chunk{buf: c.buf[:0], reqs: c.reqs[:0]}
	w.mu.Lock()
	if len(w.free) < 4 {
		w.free = append(w.free, c)
	}
	w.mu.Unlock()
}

// round writes data (the encoded records of reqs) with one write and one
// fdatasync, then completes reqs. With roll it first starts a new segment,
// a shredding boundary if shred.
func (w *WAL) round(reqs []*request, data []byte, roll, shred bool, newSize int64) {
	fail := func(err error) {
		w.mu.Lock()
		w.stats.Failed++
		w.mu.Unlock()
		for _, r := range reqs {
			r.err = err
			close(r.done)
		}
	}
	if roll {
		if err := w.roll(newSize, shred); err != nil {
			fail(err)
			return
		}
	}
	start := w.base + uint64(w.off)
	sealRecords(data, w.seal)
	_, err := w.ops.writeAt(w.f, data, w.off)
	if end := w.off + int64(len(data)); err == nil && w.stale && end+recHeaderSize <= w.size {
		// Old bytes follow: a zero length ends the records.
		_, err = w.ops.writeAt(w.f, w.zeros[:recHeaderSize], end)
	}
	if err == nil && !w.opts.NoSync {
		w.mu.Lock()
		w.stats.Syncs++
		w.mu.Unlock()
		err = w.ops.sync(w.f)
	}
	if err != nil {
		// The bytes may be partly in the file. Nothing reads past the
		// committed end, and the next round starts a new segment at it, so
		// they are never taken for records; zero them as well, best effort,
		// in case this segment is still the last one at the next Open.
		w.broken = true
		w.zero(w.off, len(data))
		fail(fmt.Errorf("wal: append: %w", err))
		return
	}
	pos := start
	for _, r := range reqs {
		r.pos = pos
		pos += uint64(r.n)
	}
	w.off += int64(len(data))

	w.mu.Lock()
	seg := w.segs[len(w.segs)-1]
	last := seg.base + headerSize
	if k := len(seg.hints); k > 0 {
		last = seg.hints[k-1]
	}
	if start-last >= hintGap {
		seg.hints = append(seg.hints, start)
	}
	w.committed = w.base + uint64(w.off)
	close(w.changed)
	w.changed = make(chan struct{})
	w.stats.Appends += uint64(len(reqs))
	w.stats.Bytes += uint64(len(data))
	w.stats.Rounds++
	w.mu.Unlock()

	for _, r := range reqs {
		close(r.done)
	}
}

func (w *WAL) zero(off int64, n int) {
	for n > 0 {
		k := min(n, len(w.zeros))
		if _, err := w.f.WriteAt(w.zeros[:k], off); err != nil {
			return
		}
		off += int64(k)
		n -= k
	}
}

// roll makes a new segment of size bytes the active one, in a spare file if
// there is one of that size. Its base is the end of the active segment's
// durable records; if the active segment has none, it is replaced (same
// base, same name). A shredding boundary (shred) is a new file, and every
// spare is deleted. On error the active segment stays, marked broken so
// that the next round tries again.
func (w *WAL) roll(size int64, shred bool) error {
	base := w.base + uint64(w.off)
	replace := w.off == headerSize
	if replace {
		base = w.base
	}
	w.broken = true
	var spare string
	var drop []uint64
	w.mu.Lock()
	switch {
	case shred:
		w.shredFloor = base
		drop, w.spares = w.spares, nil
	case size == w.opts.SegmentSize && len(w.spares) > 0:
		spare = filepath.Join(w.dir, spareName(w.spares[0]))
		w.spares = w.spares[1:]
	}
	w.mu.Unlock()
	for _, b := range drop {
		if err := os.Remove(filepath.Join(w.dir, spareName(b))); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("wal: delete spare segment: %w", err)
		}
	}
	var flags uint16
	if shred {
		flags = flagShred
	}
	f, err := createSegment(w.dir, base, size, flags, spare, w.opts.NoSync, &w.ops)
	if err != nil {
		return err
	}
	old := w.f
	w.f, w.base, w.off, w.size, w.broken = f, base, headerSize, size, false
	w.seal, w.stale = segHeader{version: formatVersion}.seal(base), spare != ""
	w.mu.Lock()
	if replace {
		w.segs[len(w.segs)-1] = &segment{base: base, seal: w.seal}
	} else {
		w.segs = append(w.segs, &segment{base: base, seal: w.seal})
	}
	w.mu.Unlock()
	old.Close() // every round in it was synced
	return nil
}

// startHint returns a known record start in s at or before from, as late as
// known, or s's first record.
func (w *WAL) startHintLocked(s *segment, from uint64) uint64 {
	start := s.base + headerSize
	if from <= start {
		return start
	}
	if i := sort.Search(len(s.hints), func(i int) bool { return s.hints[i] > from }); i > 0 {
		start = max(start, s.hints[i-1])
	}
	if w.readHint > start && w.readHint <= from {
		start = w.readHint // from lies in s, so readHint does as well
	}
	return start
}
