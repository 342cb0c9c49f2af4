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
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// On-disk format.
//
// A segment file is named by its base position, 20 decimal digits and ".wal"
// (00000000000000000000.wal). It starts with a 16-byte header:
//
//	magic "NWAL" | version uint32 | base uint64      (little endian)
//
// followed by records:
//
//	length uint32 | CRC-32C (Castagnoli) of payload uint32 | payload
//
// The rest of the file is preallocated zeros; a zero length marks the end of
// the records. The record at file offset off has position base+off. The next
// segment's base is this segment's end of committed records, so positions
// only grow, and a segment other than the last one holds exactly the records
// in [base+headerSize, next.base).
//
// A segment is created as NAME.tmp, preallocated, given its header, synced and
// then renamed, so a file with a final name always has a valid header.
const (
	headerSize    = 16
	recHeaderSize = 8
	formatVersion = 1
	segExt        = ".wal"
	tmpExt        = ".tmp"

	// hintGap is the spacing of the known record starts kept per segment, so
	// that Read from the middle of a segment skips at most about this much.
	hintGap = 64 << 10
)

var (
	segMagic   = [4]byte{'N', 'W', 'A', 'L'}
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

func segName(base uint64) string { return fmt.Sprintf("%020d%s", base, segExt) }

// parseSegName returns the base of a segment file name.
func parseSegName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, segExt)
	if !ok || len(digits) != 20 {
		return 0, false
	}
	base, err := strconv.ParseUint(digits, 10, 64)
	return base, err == nil
}

func encodeSegHeader(base uint64) []byte {
	h := make([]byte, headerSize)
	copy(h, segMagic[:])
	binary.LittleEndian.PutUint32(h[4:], formatVersion)
	binary.LittleEndian.PutUint64(h[8:], base)
	return h
}

func checkSegHeader(h []byte, base uint64) error {
	if len(h) < headerSize || [4]byte(h[:4]) != segMagic {
		return errors.New("not a wal segment (bad magic)")
	}
	if v := binary.LittleEndian.Uint32(h[4:]); v != formatVersion {
		return fmt.Errorf("unsupported segment version %d", v)
	}
	if b := binary.LittleEndian.Uint64(h[8:]); b != base {
		return fmt.Errorf("header base %d does not match file name", b)
	}
	return nil
}

func putRecHeader(h []byte, rec []byte) {
	binary.LittleEndian.PutUint32(h, uint32(len(rec)))
	binary.LittleEndian.PutUint32(h[4:], crc32.Checksum(rec, castagnoli))
}

// fileOps is the path by which data reaches the disk. Tests replace it to
// inject failures (ENOSPC, EIO) without a full filesystem.
type fileOps struct {
	writeAt  func(f *os.File, p []byte, off int64) (int, error)
	sync     func(f *os.File) error // fdatasync of a group-commit round
	allocate func(f *os.File, size int64) error
}

var osOps = fileOps{
	writeAt: func(f *os.File, p []byte, off int64) (int, error) { return f.WriteAt(p, off) },
	sync: func(f *os.File) error {
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
		}
		return nil
	},
	allocate: preallocate,
}

// preallocate reserves size bytes for f, so that running out of space shows
// up here rather than in the middle of a record. On a filesystem without
// fallocate the file is only extended (sparse), and ENOSPC can then come from
// a later write.
func preallocate(f *os.File, size int64) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() >= size {
		return nil
	}
	err = unix.Fallocate(int(f.Fd()), 0, st.Size(), size-st.Size())
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		return f.Truncate(size)
	}
	if err != nil {
		return &os.PathError{Op: "fallocate", Path: f.Name(), Err: err}
	}
	return nil
}

// createSegment makes the segment file of base with size bytes, durably
// unless nosync, and returns it open for writing. An existing file of that
// name (an empty segment being replaced) is replaced atomically.
func createSegment(dir string, base uint64, size int64, nosync bool, ops *fileOps) (*os.File, error) {
	name := filepath.Join(dir, segName(base))
	tmp := name + tmpExt
	fail := func(f *os.File, err error) (*os.File, error) {
		if f != nil {
			f.Close()
		}
		os.Remove(tmp)
		return nil, fmt.Errorf("wal: create segment %s: %w", name, err)
	}
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fail(nil, err)
	}
	if err := ops.allocate(f, size); err != nil {
		return fail(f, err)
	}
	if _, err := f.WriteAt(encodeSegHeader(base), 0); err != nil {
		return fail(f, err)
	}
	if !nosync {
		if err := f.Sync(); err != nil {
			return fail(f, err)
		}
	}
	if err := os.Rename(tmp, name); err != nil {
		return fail(f, err)
	}
	if !nosync {
		if err := syncDir(dir); err != nil {
			f.Close()
			return nil, fmt.Errorf("wal: create segment %s: sync dir: %w", name, err)
		}
	}
	return f, nil
}

// listSegments returns the bases of the segment files in dir, ascending, and
// removes leftovers of interrupted segment creations.
func listSegments(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var bases []uint64
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, segExt+tmpExt) {
			if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, err
			}
			continue
		}
		if base, ok := parseSegName(name); ok && e.Type().IsRegular() {
			bases = append(bases, base)
		}
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	return bases, nil
}

func readSegHeader(path string, base uint64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := make([]byte, headerSize)
	if _, err := io.ReadFull(f, h); err != nil {
		return fmt.Errorf("wal: segment %s: short header: %w", path, err)
	}
	if err := checkSegHeader(h, base); err != nil {
		return fmt.Errorf("wal: segment %s: %w", path, err)
	}
	return nil
}

// Recovery describes what Open found in the last segment.
type Recovery struct {
	Segments int    // segment files found (0 for a new WAL)
	Records  int    // valid records in the last segment
	End      uint64 // committed end after recovery: where the next record goes
	// Torn reports that the last segment ended in a torn or corrupt record
	// (short, or its CRC did not match), written by a round whose fdatasync
	// never completed and so never acknowledged. It and everything after it
	// was removed.
	Torn   bool
	TornAt uint64 // position of the first invalid record, if Torn
	Reason string // why it was invalid, if Torn
}

// recoverSegment scans the last segment from its start, finds the end of its
// valid records and clears everything after it: the file is truncated there
// and preallocated again up to max(its size, segSize), so that the tail reads
// as zeros and no stale bytes of an unacknowledged round can ever be taken
// for records. It returns the open file, the end offset, the file size and
// hints of record starts.
func recoverSegment(path string, base uint64, segSize int64, nosync bool, ops *fileOps, rec *Recovery) (f *os.File, end, size int64, hints []uint64, err error) {
	f, err = os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, 0, 0, nil, err
	}
	defer func() {
		if err != nil {
			f.Close()
			f = nil
		}
	}()
	st, err := f.Stat()
	if err != nil {
		return
	}
	size = st.Size()
	h := make([]byte, headerSize)
	if _, err = f.ReadAt(h, 0); err != nil {
		err = fmt.Errorf("wal: segment %s: short header: %w", path, err)
		return
	}
	if err = checkSegHeader(h, base); err != nil {
		err = fmt.Errorf("wal: segment %s: %w", path, err)
		return
	}

	br := bufio.NewReaderSize(io.NewSectionReader(f, headerSize, size-headerSize), 1<<20)
	off := int64(headerSize)
	lastHint := off
	var hdr [recHeaderSize]byte
	var buf []byte
	torn := func(reason string) {
		rec.Torn, rec.TornAt, rec.Reason = true, base+uint64(off), reason
	}
	for {
		n, rerr := io.ReadFull(br, hdr[:])
		if rerr != nil {
			if rerr == io.EOF || (rerr == io.ErrUnexpectedEOF && allZero(hdr[:n])) {
				break // clean end at the end of the file
			}
			if rerr == io.ErrUnexpectedEOF {
				torn("short record header")
				break
			}
			err = rerr
			return
		}
		length := int64(binary.LittleEndian.Uint32(hdr[:]))
		sum := binary.LittleEndian.Uint32(hdr[4:])
		if length == 0 {
			if sum != 0 {
				torn("zero length with non-zero checksum")
			}
			break
		}
		if off+recHeaderSize+length > size {
			torn("short record")
			break
		}
		if int64(cap(buf)) < length {
			buf = make([]byte, length)
		}
		buf = buf[:length]
		if _, rerr := io.ReadFull(br, buf); rerr != nil {
			err = rerr
			return
		}
		if crc32.Checksum(buf, castagnoli) != sum {
			torn("checksum mismatch")
			break
		}
		if off-lastHint >= hintGap {
			hints = append(hints, base+uint64(off))
			lastHint = off
		}
		off += recHeaderSize + length
		rec.Records++
	}

	// Clear the tail after the last valid record.
	target := max(size, segSize)
	if off < size || size < target {
		if err = f.Truncate(off); err != nil {
			return
		}
		if err = ops.allocate(f, target); err != nil {
			err = fmt.Errorf("wal: recover segment %s: %w", path, err)
			return
		}
		if !nosync {
			if err = f.Sync(); err != nil {
				return
			}
		}
		size = target
	}
	return f, off, size, hints, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
