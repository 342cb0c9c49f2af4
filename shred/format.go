package shred

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
)

// On-disk format.
//
// The keyring file is a 64-byte header followed by 64-byte slots; slot i is
// at file offset 64*(i+1). All integers are little endian; each checksum is
// CRC-32C (Castagnoli) of the 60 bytes before it.
//
// Header:
//
//	0  magic "NKEY"
//	4  format version uint32 (1)
//	8  slot size uint32 (64)
//	12 zero (4)
//	16 HMAC secret (32)
//	48 zero (12)
//	60 checksum uint32
//
// Slot:
//
//	0  flags: 1 = key, 2 = shredded
//	1  zero (3)
//	4  pseudonym (16)
//	20 key (32), all zero in a shredded slot
//	52 zero (8)
//	60 checksum uint32
//
// An all-zero slot is free: a hole left by a crash (slots are allocated in
// one order and written in another) that a later key may take. A slot whose
// checksum does not match was torn by a crash or damaged; Open ignores it and
// reports it in Damage. A 64-byte slot at a 64-byte offset never crosses a
// disk sector, so on disks with atomic sector writes a slot is either old or
// new after a crash, never a mix: in particular a Shred's overwrite can not
// leave part of the old key behind.
//
// The header is written once, when the file is created (as a temporary file,
// synced, then linked into place so the final name always has a complete
// header), and never changed: losing the secret would change every pseudonym.
const (
	headerSize    = 64
	slotSize      = 64
	formatVersion = 1
	sumOffset     = 60 // of the checksum, in the header and in a slot

	flagKey      = 1
	flagShredded = 2
)

var (
	fileMagic  = [4]byte{'N', 'K', 'E', 'Y'}
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

func slotOffset(slot uint32) int64 { return headerSize + int64(slot)*slotSize }

func encodeHeader(secret *[32]byte) []byte {
	h := make([]byte, headerSize)
	copy(h, fileMagic[:])
	binary.LittleEndian.PutUint32(h[4:], formatVersion)
	binary.LittleEndian.PutUint32(h[8:], slotSize)
	copy(h[16:48], secret[:])
	putSum(h)
	return h
}

// putSum sets the checksum of a header or slot.
func putSum(b []byte) {
	binary.LittleEndian.PutUint32(b[sumOffset:], crc32.Checksum(b[:sumOffset], castagnoli))
}

// decodeHeader returns the secret of a header, or what is wrong with it.
func decodeHeader(h []byte) ([32]byte, error) {
	var secret [32]byte
	if len(h) < headerSize {
		return secret, fmt.Errorf("short header (%d bytes, want %d)", len(h), headerSize)
	}
	if [4]byte(h[:4]) != fileMagic {
		return secret, errors.New("not a keyring (bad magic)")
	}
	if sum := binary.LittleEndian.Uint32(h[sumOffset:]); sum != crc32.Checksum(h[:sumOffset], castagnoli) {
		return secret, errors.New("header: bad checksum")
	}
	if v := binary.LittleEndian.Uint32(h[4:]); v != formatVersion {
		return secret, fmt.Errorf("unsupported format version %d", v)
	}
	if s := binary.LittleEndian.Uint32(h[8:]); s != slotSize {
		return secret, fmt.Errorf("unsupported slot size %d", s)
	}
	copy(secret[:], h[16:48])
	return secret, nil
}

// encodeSlot fills b with a slot. key is nil for a shredded slot.
func encodeSlot(b *[slotSize]byte, p Pseudonym, key *[32]byte) {
	*b = [slotSize]byte{}
	b[0] = flagShredded
	if key != nil {
		b[0] = flagKey
		copy(b[20:52], key[:])
	}
	copy(b[4:20], p[:])
	putSum(b[:])
}

// slotRecord is a decoded slot.
type slotRecord struct {
	p        Pseudonym
	key      [32]byte
	shredded bool
	dirty    bool // a shredded slot that still holds key bytes: rewrite it
}

var zeroSlot [slotSize]byte

// decodeSlot decodes a slot. free reports an all-zero slot; err says what is
// wrong with a slot that must be ignored.
func decodeSlot(b []byte) (r slotRecord, free bool, err error) {
	if bytes.Equal(b, zeroSlot[:]) {
		return r, true, nil
	}
	if binary.LittleEndian.Uint32(b[sumOffset:]) != crc32.Checksum(b[:sumOffset], castagnoli) {
		return r, false, errors.New("bad checksum")
	}
	copy(r.p[:], b[4:20])
	copy(r.key[:], b[20:52])
	switch {
	case b[0] != flagKey && b[0] != flagShredded:
		return r, false, fmt.Errorf("unknown flags %#x", b[0])
	case r.p.IsZero():
		return r, false, errors.New("zero pseudonym")
	case b[0] == flagShredded:
		r.shredded = true
		r.dirty = r.key != [32]byte{}
		r.key = [32]byte{}
	case r.key == [32]byte{}:
		return r, false, errors.New("zero key")
	}
	return r, false, nil
}

// createFile makes a keyring file at path with a new secret, unless a file
// is already there. The file appears under its name complete and durable.
func createFile(path string, secret *[32]byte) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, base+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(encodeHeader(secret)); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	// A link, unlike a rename, never replaces a keyring that another process
	// created in the meantime.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil
		}
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
