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
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// On-disk format.
//
// A segment file is named by its base position, 20 decimal digits and ".wal"
// (00000000000000000000.wal). It starts with a 16-byte header:
//
//	magic "NWAL" | version uint16 | flags uint16 | base uint64   (little endian)
//
// followed by records:
//
//	length uint32 | checksum uint32 | payload
//
// The checksum is the CRC-32C (Castagnoli) of the payload, XORed in
// version 2 with the segment's seal, a 32-bit hash of its base (version 1
// segments, written by earlier builds, have no seal). Segment files are
// recycled (see spare files below), so the bytes after the last record
// may be records of the file's previous life; they fail their checksum
// under the new seal and are never taken for records. A round that
// writes into a recycled file ends its records with a zero length; in a
// new file the preallocated zeros do that.
//
// The record at file offset off has position base+off. The next segment's
// base is this segment's end of committed records, so positions only grow,
// and a segment other than the last one holds exactly the records in
// [base+headerSize, next.base).
//
// Flags: flagShred marks a segment begun by AppendInNewSegment. Every
// segment before it is deleted, never recycled, and so is every spare
// file made before it: no copy of what came before survives truncation.
//
// A segment is created as NAME.tmp, preallocated, given its header, synced and
// then renamed, so a file with a final name always has a valid header. A
// spare file (NAME.spare, named after the segment it was) is a segment
// that TruncateBefore retired: its next use gets a new header and name and
// keeps its blocks, so that neither deleting it (which TRIMs the blocks on
// a disk mounted with discard, stalling the fdatasyncs behind it) nor
// preallocating a new one reaches the disk.
const (
	headerSize    = 16
	recHeaderSize = 8
	formatVersion = 2
	flagShred     = 1
	segExt        = ".wal"
	tmpExt        = ".tmp"
	spareExt      = ".spare"

	// hintGap is the spacing of the known record starts kept per segment, so
	// that Read from the middle of a segment skips at most about this much.
	hintGap = 64 << 10
)

var (
	segMagic   = [4]byte{'N', 'W', 'A', 'L'}
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

func segName(base uint64) string { return fmt.Sprintf("%020d%s", base, segExt) }

func spareName(base uint64) string { return segName(base) + spareExt }

// parseSegName returns the base of a segment file name.
func parseSegName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, segExt)
	if !ok || len(digits) != 20 {
		return 0, false
	}
	base, err := strconv.ParseUint(digits, 10, 64)
	return base, err == nil
}

// segHeader is what a segment's header says besides its base.
type segHeader struct {
	version uint16
	flags   uint16
}

// seal is what version 2 XORs into each record's checksum: a hash of the
// base (splitmix64's finalizer), so that a record left in a recycled file
// by its previous life fails its checksum.
func (h segHeader) seal(base uint64) uint32 {
	if h.version < 2 {
		return 0
	}
	z := base + 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return uint32(z ^ (z >> 31))
}

func encodeSegHeader(base uint64, flags uint16) []byte {
	h := make([]byte, headerSize)
	copy(h, segMagic[:])
	binary.LittleEndian.PutUint16(h[4:], formatVersion)
	binary.LittleEndian.PutUint16(h[6:], flags)
	binary.LittleEndian.PutUint64(h[8:], base)
	return h
}

func checkSegHeader(h []byte, base uint64) (segHeader, error) {
	if len(h) < headerSize || [4]byte(h[:4]) != segMagic {
		return segHeader{}, errors.New("not a wal segment (bad magic)")
	}
	sh := segHeader{version: binary.LittleEndian.Uint16(h[4:]), flags: binary.LittleEndian.Uint16(h[6:])}
	if sh.version != 1 && sh.version != formatVersion {
		return segHeader{}, fmt.Errorf("unsupported segment version %d", sh.version)
	}
	if b := binary.LittleEndian.Uint64(h[8:]); b != base {
		return segHeader{}, fmt.Errorf("header base %d does not match file name", b)
	}
	return sh, nil
}

// putRecHeader writes rec's length and CRC-32C; the writer XORs the seal
// in once it knows the segment (sealRecords).
func putRecHeader(h []byte, rec []byte) {
	binary.LittleEndian.PutUint32(h, uint32(len(rec)))
	binary.LittleEndian.PutUint32(h[4:], crc32.Checksum(rec, castagnoli))
}

// sealRecords XORs seal into the checksum of each record of data.
func sealRecords(data []byte, seal uint32) {
	for off := 0; off+recHeaderSize <= len(data); {
		n := int(binary.LittleEndian.Uint32(data[off:]))
		c := data[off+4 : off+8]
		binary.LittleEndian.PutUint32(c, binary.LittleEndian.Uint32(c)^seal)
		off += recHeaderSize + n
	}
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
// unless nosync, and returns it open for writing. With spare (the path of
// a spare file) it reuses that file, its old bytes left in place. An
// existing file of that name (an empty segment being replaced) is
// replaced atomically.
func createSegment(dir string, base uint64, size int64, flags uint16, spare string, nosync bool, ops *fileOps) (*os.File, error) {
	name := filepath.Join(dir, segName(base))
	tmp := name + tmpExt
	fail := func(f *os.File, err error) (*os.File, error) {
		if f != nil {
			f.Close()
		}
		os.Remove(tmp)
		return nil, fmt.Errorf("wal: create segment %s: %w", name, err)
	}
	mode := os.O_RDWR | os.O_CREATE | os.O_TRUNC
	if spare != "" {
		if err := os.Rename(spare, tmp); err != nil {
			return fail(nil, err)
		}
		mode = os.O_RDWR
	}
	f, err := os.OpenFile(tmp, mode, 0o644)
	if err != nil {
		return fail(nil, err)
	}
	if err := ops.allocate(f, size); err != nil {
		return fail(f, err)
	}
	if _, err := f.WriteAt(encodeSegHeader(base, flags), 0); err != nil {
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

// listSegments returns the bases of the segment files and of the spare
// files in dir, ascending, and removes leftovers of interrupted segment
// creations.
func listSegments(dir string) (bases, spares []uint64, err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, segExt+tmpExt) {
			if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, nil, err
			}
			continue
		}
		if !e.Type().IsRegular() {
			continue
		}
		if base, ok := parseSegName(name); ok {
			bases = append(bases, base)
		} else if base, ok := parseSegName(strings.TrimSuffix(name, spareExt)); ok && strings.HasSuffix(name, spareExt) {
			spares = append(spares, base)
		}
	}
	slices.Sort(bases)
	slices.Sort(spares)
	return bases, spares, nil
}

func readSegHeader(path string, base uint64) (segHeader, error) {
	f, err := os.Open(path)
	if err != nil {
		return segHeader{}, err
	}
	defer f.Close()
	h := make([]byte, headerSize)
	if _, err := io.ReadFull(f, h); err != nil {
		return segHeader{}, fmt.Errorf("wal: segment %s: short header: %w", path, err)
	}
	sh, err := checkSegHeader(h, base)
	if err != nil {
		return segHeader{}, fmt.Errorf("wal: segment %s: %w", path, err)
	}
	return sh, nil
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
func recoverSegment(path string, base uint64, segSize int64, nosync bool, ops *fileOps, rec *Recovery) (f *os.File, sh segHeader, end, size int64, hints []uint64, err error) {
	f, err = os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, sh, 0, 0, nil, err
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
	if sh, err = checkSegHeader(h, base); err != nil {
		err = fmt.Errorf("wal: segment %s: %w", path, err)
		return
	}
	seal := sh.seal(base)

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
		if crc32.Checksum(buf, castagnoli)^seal != sum {
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
	return f, sh, off, size, hints, nil
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
