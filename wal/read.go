package wal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
)

type reader struct {
	br  *bufio.Reader
	buf []byte
}

var readers = sync.Pool{New: func() any { return &reader{br: bufio.NewReaderSize(nil, 256<<10)} }}

// span is the part of one segment that a Read covers.
type span struct {
	base       uint64
	seal       uint32
	start, end int64 // file offsets: the first record to look at, the end of committed records
}

// Read calls fn for each durable record at a position >= from, in position
// order, up to the end that was committed when Read began. from may be any
// position at or before a record start: 0, the next of an earlier Read, or a
// position that TruncateBefore has deleted (Read starts at the first record
// that exists). rec is only valid during fn. It is safe to call concurrently
// with Append, TruncateBefore and other Reads; records of segments deleted
// while Read runs are skipped.
//
// Read reads the segment files (through the OS page cache) and verifies each
// record's CRC; a committed record that fails it ends Read with an error
// wrapping ErrCorrupt.
//
// It returns next, the position to pass to the next Read: after delivering
// everything, next is the committed end at the start of Read (or from, if
// that is later). If fn returns an error, Read stops and returns that error
// with next = the position of the record fn failed on, so that Read(next)
// delivers it again.
func (w *WAL) Read(from uint64, fn func(pos uint64, rec []byte) error) (next uint64, err error) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return from, ErrClosed
	}
	end := w.committed
	if from >= end {
		w.mu.Unlock()
		return from, nil
	}
	w.reads = append(w.reads, from)
	defer func() {
		w.mu.Lock()
		i := slices.Index(w.reads, from)
		w.reads = slices.Delete(w.reads, i, i+1)
		w.mu.Unlock()
	}()
	// The segment holding from: the last one whose base is <= from.
	i := sort.Search(len(w.segs), func(i int) bool { return w.segs[i].base > from }) - 1
	i = max(i, 0)
	var spans []span
	for j := i; j < len(w.segs); j++ {
		s := w.segs[j]
		limit := end
		if j+1 < len(w.segs) {
			limit = min(limit, w.segs[j+1].base)
		}
		if limit <= s.base+headerSize {
			continue
		}
		start := s.base + headerSize
		if j == i {
			start = w.startHintLocked(s, from)
		}
		spans = append(spans, span{base: s.base, seal: s.seal, start: int64(start - s.base), end: int64(limit - s.base)})
	}
	w.mu.Unlock()

	rd := readers.Get().(*reader)
	defer func() {
		rd.br.Reset(nil)
		if cap(rd.buf) > 8<<20 {
			rd.buf = nil
		}
		readers.Put(rd)
	}()
	for _, sp := range spans {
		pos, err := w.readSpan(rd, sp, from, fn)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && pos != 0 {
				w.setReadHint(pos)
			}
			return pos, err
		}
	}
	w.setReadHint(end)
	return end, nil
}

// readSpan delivers the records of sp at positions >= from. On error it
// returns the position of the record it stopped at.
func (w *WAL) readSpan(rd *reader, sp span, from uint64, fn func(uint64, []byte) error) (uint64, error) {
	path := filepath.Join(w.dir, segName(sp.base))
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil // deleted by TruncateBefore after Read began
	}
	if err != nil {
		return sp.base + uint64(sp.start), fmt.Errorf("wal: read: %w", err)
	}
	defer f.Close()
	rd.br.Reset(io.NewSectionReader(f, sp.start, sp.end-sp.start))
	var hdr [recHeaderSize]byte
	for off := sp.start; off < sp.end; {
		pos := sp.base + uint64(off)
		corrupt := func(what string, err error) (uint64, error) {
			if err != nil {
				what = fmt.Sprintf("%s: %v", what, err)
			}
			return pos, fmt.Errorf("%w at position %d in %s: %s", ErrCorrupt, pos, path, what)
		}
		if _, err := io.ReadFull(rd.br, hdr[:]); err != nil {
			return corrupt("reading record header", err)
		}
		length := int64(binary.LittleEndian.Uint32(hdr[:]))
		sum := binary.LittleEndian.Uint32(hdr[4:])
		if length == 0 || off+recHeaderSize+length > sp.end {
			return corrupt(fmt.Sprintf("bad length %d", length), nil)
		}
		if pos < from {
			if _, err := rd.br.Discard(int(length)); err != nil {
				return corrupt("skipping record", err)
			}
			off += recHeaderSize + length
			continue
		}
		if int64(cap(rd.buf)) < length {
			rd.buf = make([]byte, length)
		}
		rec := rd.buf[:length]
		if _, err := io.ReadFull(rd.br, rec); err != nil {
			return corrupt("reading record", err)
		}
		if crc32.Checksum(rec, castagnoli)^sp.seal != sum {
			return corrupt("checksum mismatch", nil)
		}
		if err := fn(pos, rec); err != nil {
			return pos, err
		}
		off += recHeaderSize + length
	}
	return 0, nil
}

func (w *WAL) setReadHint(pos uint64) {
	w.mu.Lock()
	w.readHint = pos
	w.mu.Unlock()
}
