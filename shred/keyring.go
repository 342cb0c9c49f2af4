// Package shred erases people from nudge's append-only event log by
// crypto-shredding.
//
// Every personal field of an event is sealed (XChaCha20-Poly1305) under a key that
// belongs to the identifier the event arrived with: a user id or an
// anonymous id. What the log, the store and the write-ahead log keep is the
// ciphertext plus a pseudonym, a keyed hash (HMAC-SHA256) of the identifier
// under a secret that never leaves the keyring. Erasing a person destroys the
// keys of all their identifiers, durably and in place, so that every copy of
// their data, in the log, in replays and in backups of the log, becomes
// unreadable at once. The pseudonyms stay behind as a suppression list:
// sealing for a shredded pseudonym fails with ErrShredded, and ingest drops
// such events.
//
// The Keyring keeps all keys in memory (about 100 bytes an identifier) and
// in one file of 64-byte slots that only grows (see format.go): shredded
// slots stay, as the suppression list. A new key is written to its
// slot when it is made but becomes durable only at the next Sync; until then
// Seal hands it out as a pending KeyRecord, to every caller that seals with
// it, and the caller makes it durable together with its own data. For ingest
// that gives this protocol:
//
//  1. At start, Open the keyring, then Restore the key records of every
//     write-ahead record still on disk, before the first Seal: a Seal that
//     comes first makes a new key, the restored one is then ignored (see
//     Conflicts), and what was sealed under it can not be opened.
//  2. Seal the personal fields of each event; write every pending record
//     returned (KeyRecord.Append, once per pseudonym) into the write-ahead
//     record beside the sealed events.
//  3. Before deleting write-ahead records, call Sync, and only delete
//     records whose Seals had returned before that Sync began.
//  4. To erase a person, Shred the pseudonyms of all their identifiers; it is
//     durable when it returns.
//
// Key records are key material: they belong in the write-ahead log, which is
// deleted as it is forwarded, never in the event log. Likewise a backup of
// the keyring file holds keys that Shred can no longer reach; keep such
// backups no longer than an erasure may take.
//
// Identifiers from different namespaces should be prefixed before hashing
// (for example "u:"+userId, "a:"+anonymousId), or a user id equal to
// someone's anonymous id would share their key and their erasure.
package shred

import (
	"bufio"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"math"
	"os"
	"sync"
	"sync/atomic"
)

// Pseudonym is the keyed hash of one identifier: the first 16 bytes of
// HMAC-SHA256 under the keyring's secret. The zero Pseudonym means none.
type Pseudonym [16]byte

var pseudonymEncoding = base64.RawURLEncoding.Strict()

// String returns p in unpadded base64url (22 characters).
func (p Pseudonym) String() string { return pseudonymEncoding.EncodeToString(p[:]) }

// IsZero reports whether p is the zero Pseudonym.
func (p Pseudonym) IsZero() bool { return p == Pseudonym{} }

// ParsePseudonym parses the String form of a pseudonym.
func ParsePseudonym(s string) (Pseudonym, error) {
	var p Pseudonym
	if len(s) != 22 {
		return p, fmt.Errorf("shred: bad pseudonym: %d characters, want 22", len(s))
	}
	n, err := pseudonymEncoding.Decode(p[:], []byte(s))
	if err != nil || n != len(p) {
		return Pseudonym{}, fmt.Errorf("shred: bad pseudonym %q: not canonical unpadded base64url", s)
	}
	return p, nil
}

// KeyRecord is a key in transit: ingest writes it into its write-ahead
// record beside the events it sealed, until the keyring file has it durably.
type KeyRecord struct {
	Pseudonym Pseudonym
	Key       [32]byte
}

// KeyRecordSize is the length of an encoded KeyRecord: pseudonym then key.
const KeyRecordSize = 48

// Append appends the encoding of r (KeyRecordSize bytes) to dst.
func (r KeyRecord) Append(dst []byte) []byte {
	dst = append(dst, r.Pseudonym[:]...)
	return append(dst, r.Key[:]...)
}

// ParseKeyRecord decodes what Append wrote.
func ParseKeyRecord(b []byte) (KeyRecord, error) {
	var r KeyRecord
	if len(b) != KeyRecordSize {
		return r, fmt.Errorf("shred: bad key record: %d bytes, want %d", len(b), KeyRecordSize)
	}
	copy(r.Pseudonym[:], b)
	copy(r.Key[:], b[len(r.Pseudonym):])
	if err := r.check(); err != nil {
		return KeyRecord{}, err
	}
	return r, nil
}

func (r *KeyRecord) check() error {
	if r.Pseudonym.IsZero() {
		return errors.New("shred: bad key record: zero pseudonym")
	}
	if r.Key == [32]byte{} {
		return fmt.Errorf("shred: bad key record for %s: zero key", r.Pseudonym)
	}
	return nil
}

var (
	// ErrShredded means the identifier was erased: its key is gone for good.
	ErrShredded = errors.New("shred: identifier was shredded")
	// ErrNoKey means the keyring has no key for the pseudonym: nothing was
	// ever sealed for it, or its key was lost and not restored.
	ErrNoKey = errors.New("shred: no key for pseudonym")
	// ErrAuth means a sealed value failed authentication: it was damaged,
	// tampered with, or sealed for another pseudonym.
	ErrAuth = errors.New("shred: sealed value failed authentication")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("shred: keyring closed")

	errZeroPseudonym = errors.New("shred: zero pseudonym")
)

const (
	shardCount = 64
	// cacheSize bounds the AEAD instances kept: a busy key allocates
	// nothing to seal or open.
	cacheSize = 4096
)

// Keyring holds the keys of identifiers. It is safe for concurrent use.
//
// Lock order: syncMu, then a shard's mu, then allocMu or the shard's cache
// mutex. Sealing and opening run outside all of them; only the expansion of
// a key missing from the cache runs under its shard's lock.
type Keyring struct {
	path   string
	f      *os.File
	ops    fileOps
	secret [32]byte
	macs   sync.Pool // of *macState
	closed atomic.Bool
	damage []error // found by Open (the first maxDamage), read-only after
	more   int     // damage found past those

	shards [shardCount]shard

	allocMu sync.Mutex
	nslots  uint32   // slots in the file, used or free
	free    []uint32 // all-zero slots below nslots

	syncMu sync.Mutex // serialises fdatasync and Close

	conflicts atomic.Uint64 // Restores ignored for a different key
}

type shard struct {
	mu        sync.RWMutex
	index     map[Pseudonym]uint32 // position in ents
	ents      []entry
	keys      int
	shredded  int
	written   []uint32   // entries whose new key's slot was written, not yet synced
	unwritten []retryKey // new keys whose slot write failed: Sync retries them
	cache     sealerCache
	_         [64]byte // keeps neighbouring shards off each other's cache lines
}

type retryKey struct {
	p Pseudonym
	i uint32 // in ents
}

// entry is one pseudonym: a key, or a shredded marker with a zero key.
type entry struct {
	key      [32]byte
	slot     uint32
	shredded bool
	pending  bool // the key is not known to be durable in the file
}

// fileOps is how data reaches the disk; tests replace it to inject failures.
type fileOps struct {
	writeAt  func(f *os.File, b []byte, off int64) (int, error)
	datasync func(f *os.File) error
}

var osOps = fileOps{writeAt: (*os.File).WriteAt, datasync: datasync}

type macState struct {
	h   hash.Hash
	buf []byte
	sum [sha256.Size]byte
}

// Open opens the keyring file at path, or creates it with a new random
// secret. It reads every slot into memory and fdatasyncs the file, so that
// keys a crashed process wrote but never synced are durable from here on.
// Slots that are torn or damaged are ignored (the keys in them are lost
// unless restored) and reported by Damage.
func Open(path string) (*Keyring, error) { return open(path, osOps) }

func open(path string, ops fileOps) (*Keyring, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		var secret [32]byte
		rand.Read(secret[:])
		if err := createFile(path, &secret); err != nil {
			return nil, fmt.Errorf("shred: keyring %s: create: %w", path, err)
		}
		f, err = os.OpenFile(path, os.O_RDWR, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("shred: keyring: %w", err)
	}
	k := &Keyring{path: path, f: f, ops: ops}
	if err := lockFile(f); err != nil {
		f.Close()
		return nil, k.errorf("%w", err)
	}
	if err := k.load(); err != nil {
		f.Close()
		return nil, err
	}
	return k, nil
}

func (k *Keyring) errorf(format string, args ...any) error {
	return fmt.Errorf("shred: keyring %s: "+format, append([]any{k.path}, args...)...)
}

// slotFix is a slot that Open rewrites: one holding key bytes that must not
// stay on disk.
type slotFix struct {
	slot uint32
	p    Pseudonym
	free bool // zero the slot rather than mark it shredded
}

func (k *Keyring) load() error {
	st, err := k.f.Stat()
	if err != nil {
		return fmt.Errorf("shred: keyring: %w", err)
	}
	size := st.Size()
	hdr := make([]byte, headerSize)
	if _, err := k.f.ReadAt(hdr, 0); err != nil && !(errors.Is(err, io.EOF) && size < headerSize) {
		return fmt.Errorf("shred: keyring: %w", err)
	}
	if size < headerSize {
		hdr = hdr[:size]
	}
	secret, err := decodeHeader(hdr)
	if err != nil {
		return k.errorf("%w", err)
	}
	k.secret = secret
	k.macs.New = func() any { return &macState{h: hmac.New(sha256.New, k.secret[:])} }

	n := (size - headerSize) / slotSize
	if n > math.MaxUint32 {
		return k.errorf("too many slots (%d)", n)
	}
	perShard := int(n)/shardCount + int(n)/shardCount/8 + 8
	for i := range k.shards {
		s := &k.shards[i]
		s.index = make(map[Pseudonym]uint32, perShard)
		s.ents = make([]entry, 0, perShard)
		s.cache = newSealerCache(cacheSize / shardCount)
	}

	r := bufio.NewReaderSize(io.NewSectionReader(k.f, headerSize, size-headerSize), 1<<20)
	var b [slotSize]byte
	var fixes []slotFix
	for slot := range uint32(n) {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return k.errorf("slot %d: %w", slot, err)
		}
		rec, free, err := decodeSlot(b[:])
		switch {
		case free:
			k.free = append(k.free, slot)
		case err != nil:
			k.addDamage(k.errorf("slot %d: %w", slot, err))
		default:
			fixes = k.addLoaded(slot, &rec, fixes)
		}
	}
	k.nslots = uint32(n)
	if tail := (size - headerSize) % slotSize; tail > 0 {
		if _, err := io.ReadFull(r, b[:tail]); err != nil {
			return k.errorf("slot %d: %w", n, err)
		}
		for _, c := range b[:tail] {
			if c != 0 {
				k.addDamage(k.errorf("slot %d: torn (%d of %d bytes)", n, tail, slotSize))
				break
			}
		}
	}

	for _, fx := range fixes {
		var b [slotSize]byte
		if !fx.free {
			encodeSlot(&b, fx.p, nil)
		}
		if err := k.writeSlot(fx.slot, &b); err != nil {
			return err
		}
		if fx.free {
			k.free = append(k.free, fx.slot)
		}
	}
	if err := k.ops.datasync(k.f); err != nil {
		return fmt.Errorf("shred: keyring: %w", err)
	}
	return nil
}

// addLoaded adds a slot read by Open. A pseudonym found in two slots (which
// Keyring never writes) is resolved so that no key bytes stay on disk that
// a Shred would miss: shredded wins over a key, and of two keys the first
// is kept and the second zeroed.
func (k *Keyring) addLoaded(slot uint32, rec *slotRecord, fixes []slotFix) []slotFix {
	s := k.shard(rec.p)
	i, ok := s.index[rec.p]
	if !ok {
		if rec.dirty {
			fixes = append(fixes, slotFix{slot: slot, p: rec.p})
		}
		s.index[rec.p] = uint32(len(s.ents))
		s.ents = append(s.ents, entry{key: rec.key, slot: slot, shredded: rec.shredded})
		if rec.shredded {
			s.shredded++
		} else {
			s.keys++
		}
		return fixes
	}
	e := &s.ents[i]
	k.addDamage(k.errorf("slot %d: pseudonym also in slot %d", slot, e.slot))
	switch {
	case rec.shredded && !e.shredded:
		fixes = append(fixes, slotFix{slot: e.slot, p: rec.p})
		e.key, e.shredded = [32]byte{}, true
		s.keys--
		s.shredded++
	case rec.shredded:
		if rec.dirty {
			fixes = append(fixes, slotFix{slot: slot, p: rec.p})
		}
	case e.shredded:
		fixes = append(fixes, slotFix{slot: slot, p: rec.p})
	default:
		fixes = append(fixes, slotFix{slot: slot, free: true})
	}
	return fixes
}

func (k *Keyring) shard(p Pseudonym) *shard { return &k.shards[p[0]%shardCount] }

func (k *Keyring) writeSlot(slot uint32, b *[slotSize]byte) error {
	if _, err := k.ops.writeAt(k.f, b[:], slotOffset(slot)); err != nil {
		return k.errorf("slot %d: write: %w", slot, err)
	}
	return nil
}

// allocSlot returns a slot for a new pseudonym: a free one, else a new one
// at the end of the file.
func (k *Keyring) allocSlot() uint32 {
	k.allocMu.Lock()
	defer k.allocMu.Unlock()
	if n := len(k.free); n > 0 {
		slot := k.free[n-1]
		k.free = k.free[:n-1]
		return slot
	}
	k.nslots++
	return k.nslots - 1
}

const maxDamage = 100 // problems that Damage lists one by one

func (k *Keyring) addDamage(err error) {
	if len(k.damage) < maxDamage {
		k.damage = append(k.damage, err)
	} else {
		k.more++
	}
}

// Damage returns what Open found wrong with the file and ignored (torn or
// damaged slots, duplicate pseudonyms), or nil. Each error names the file
// and the slot, e.g. "shred: keyring /path: slot 17: bad checksum".
func (k *Keyring) Damage() error {
	if k.more > 0 {
		return errors.Join(append(k.damage[:len(k.damage):len(k.damage)], k.errorf("%d more problems", k.more))...)
	}
	return errors.Join(k.damage...)
}

// Pseudonym returns the pseudonym of identifier. It works after Close.
func (k *Keyring) Pseudonym(identifier string) Pseudonym {
	m := k.macs.Get().(*macState)
	m.h.Reset()
	m.buf = append(m.buf[:0], identifier...)
	m.h.Write(m.buf)
	var p Pseudonym
	copy(p[:], m.h.Sum(m.sum[:0]))
	if cap(m.buf) > 4<<10 {
		m.buf = nil
	}
	k.macs.Put(m)
	return p
}

// Seal appends to dst the sealed form of plaintext under p's key (Overhead
// bytes longer), making the key when p has none. dst's spare capacity must
// not overlap plaintext.
//
// While the key is not durable in the keyring file (until a Sync that
// begins after it was made), Seal also returns its KeyRecord, to every
// caller that seals with it, so that each caller can make the key durable
// with its own data. It fails with ErrShredded when p was shredded. A failed
// write of a new key's slot does not fail Seal: the key is pending, and the
// next Sync writes it again and reports the error.
func (k *Keyring) Seal(dst []byte, p Pseudonym, plaintext []byte) (out []byte, pending *KeyRecord, err error) {
	if p.IsZero() {
		return dst, nil, errZeroPseudonym
	}
	s := k.shard(p)
	s.mu.RLock()
	if k.closed.Load() {
		s.mu.RUnlock()
		return dst, nil, ErrClosed
	}
	i, ok := s.index[p]
	if !ok {
		s.mu.RUnlock()
		return k.sealNew(dst, s, p, plaintext)
	}
	c, pending, err := s.sealerLocked(p, i)
	s.mu.RUnlock()
	if err != nil {
		return dst, nil, err
	}
	return c.seal(dst, plaintext), pending, nil
}

// sealerLocked returns the sealer of ents[i] and, while its key is pending,
// its record. s.mu must be held, read or write.
func (s *shard) sealerLocked(p Pseudonym, i uint32) (*sealer, *KeyRecord, error) {
	e := &s.ents[i]
	if e.shredded {
		return nil, nil, fmt.Errorf("%w: pseudonym %s", ErrShredded, p)
	}
	var pending *KeyRecord
	if e.pending {
		pending = &KeyRecord{Pseudonym: p, Key: e.key}
	}
	c := s.cache.get(p, i)
	if c == nil {
		c = s.cache.put(p, i, newSealer(p, &e.key))
	}
	return c, pending, nil
}

func (k *Keyring) sealNew(dst []byte, s *shard, p Pseudonym, plaintext []byte) ([]byte, *KeyRecord, error) {
	var key [32]byte
	rand.Read(key[:])
	s.mu.Lock()
	if k.closed.Load() {
		s.mu.Unlock()
		return dst, nil, ErrClosed
	}
	i, ok := s.index[p]
	if !ok {
		i = k.addKeyLocked(s, p, &key)
	}
	c, pending, err := s.sealerLocked(p, i)
	s.mu.Unlock()
	if err != nil {
		return dst, nil, err
	}
	return c.seal(dst, plaintext), pending, nil
}

// addKeyLocked adds a pending key for p, which s does not have, and writes
// its slot. s.mu must be held for writing.
func (k *Keyring) addKeyLocked(s *shard, p Pseudonym, key *[32]byte) uint32 {
	slot := k.allocSlot()
	i := uint32(len(s.ents))
	s.ents = append(s.ents, entry{key: *key, slot: slot, pending: true})
	s.index[p] = i
	s.keys++
	var b [slotSize]byte
	encodeSlot(&b, p, key)
	if k.writeSlot(slot, &b) != nil {
		s.unwritten = append(s.unwritten, retryKey{p, i})
	} else {
		s.written = append(s.written, i)
	}
	return i
}

// Open appends to dst the plaintext of a value that Seal made for p. It
// fails with ErrShredded, ErrNoKey, or ErrAuth (wrapped, naming p).
func (k *Keyring) Open(dst []byte, p Pseudonym, sealed []byte) ([]byte, error) {
	if len(sealed) < Overhead {
		return dst, fmt.Errorf("shred: open for %s: sealed value too short (%d bytes)", p, len(sealed))
	}
	if sealed[0] != sealVersion {
		return dst, fmt.Errorf("shred: open for %s: unknown sealed value version %d", p, sealed[0])
	}
	s := k.shard(p)
	s.mu.RLock()
	if k.closed.Load() {
		s.mu.RUnlock()
		return dst, ErrClosed
	}
	i, ok := s.index[p]
	if !ok {
		s.mu.RUnlock()
		return dst, fmt.Errorf("%w %s", ErrNoKey, p)
	}
	c, _, err := s.sealerLocked(p, i)
	s.mu.RUnlock()
	if err != nil {
		return dst, err
	}
	out, err := c.aead.Open(dst, sealed[1:1+nonceSize], sealed[1+nonceSize:], c.aad[:])
	if err != nil {
		return dst, fmt.Errorf("%w: pseudonym %s", ErrAuth, p)
	}
	return out, nil
}

// Restore puts back a key read from a write-ahead record after a crash; it
// is durable after the next Sync. It does nothing when the keyring has a
// key for the pseudonym already or it was shredded (a shredded key never
// comes back). A key that differs from the one the keyring holds is ignored
// too, and counted in Conflicts: values sealed under it can not be opened
// (the package doc says how to avoid it). It fails only for a malformed
// record or a closed keyring.
func (k *Keyring) Restore(r KeyRecord) error {
	if err := r.check(); err != nil {
		return err
	}
	s := k.shard(r.Pseudonym)
	s.mu.Lock()
	defer s.mu.Unlock()
	if k.closed.Load() {
		return ErrClosed
	}
	if i, ok := s.index[r.Pseudonym]; ok {
		if e := &s.ents[i]; !e.shredded && e.key != r.Key {
			k.conflicts.Add(1)
		}
		return nil
	}
	k.addKeyLocked(s, r.Pseudonym, &r.Key)
	return nil
}

// Conflicts returns how many Restores were ignored because the keyring held
// a different key for the pseudonym: each means values that can not be
// opened. It should stay 0; export it as a metric.
func (k *Keyring) Conflicts() uint64 { return k.conflicts.Load() }

// Sync makes every key made or restored before it began durable in the
// file (write, then fdatasync); Seal returns no pending record for them
// afterwards. It retries slot writes that failed before.
func (k *Keyring) Sync() error {
	k.syncMu.Lock()
	defer k.syncMu.Unlock()
	if k.closed.Load() {
		return ErrClosed
	}
	return k.syncLocked()
}

func (k *Keyring) syncLocked() error {
	var taken [shardCount][]uint32
	var writeErr error
	n := 0
	for si := range k.shards {
		s := &k.shards[si]
		s.mu.Lock()
		failed := s.unwritten[:0]
		for _, r := range s.unwritten {
			e := &s.ents[r.i]
			if e.shredded {
				continue // Shred rewrote the slot
			}
			var b [slotSize]byte
			encodeSlot(&b, r.p, &e.key)
			if err := k.writeSlot(e.slot, &b); err != nil {
				writeErr = cmpOr(writeErr, err)
				failed = append(failed, r)
				continue
			}
			s.written = append(s.written, r.i)
		}
		s.unwritten = failed
		taken[si], s.written = s.written, nil
		n += len(taken[si])
		s.mu.Unlock()
	}
	if n == 0 {
		return writeErr
	}
	if err := k.ops.datasync(k.f); err != nil {
		for si := range k.shards {
			s := &k.shards[si]
			s.mu.Lock()
			s.written = append(taken[si], s.written...)
			s.mu.Unlock()
		}
		return k.errorf("%w", err)
	}
	for si := range k.shards {
		s := &k.shards[si]
		s.mu.Lock()
		for _, i := range taken[si] {
			s.ents[i].pending = false
		}
		s.mu.Unlock()
	}
	return writeErr
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// Shred destroys the keys of ps: each slot is overwritten in place with a
// shredded marker (the key bytes become zeros), then the file is
// fdatasync'ed. The pseudonyms stay known as shredded, also those that never
// had a key. It is durable when it returns nil; on error it may be called
// again with the same pseudonyms.
func (k *Keyring) Shred(ps ...Pseudonym) error {
	if len(ps) == 0 {
		return nil
	}
	var errs []error
	for _, p := range ps {
		if p.IsZero() {
			errs = append(errs, errZeroPseudonym)
			continue
		}
		if err := k.shredOne(p); err != nil {
			if errors.Is(err, ErrClosed) {
				return err
			}
			errs = append(errs, err)
		}
	}
	k.syncMu.Lock()
	defer k.syncMu.Unlock()
	if k.closed.Load() {
		return ErrClosed
	}
	if err := k.ops.datasync(k.f); err != nil {
		errs = append(errs, k.errorf("%w", err))
	}
	return errors.Join(errs...)
}

func (k *Keyring) shredOne(p Pseudonym) error {
	s := k.shard(p)
	s.mu.Lock()
	defer s.mu.Unlock()
	if k.closed.Load() {
		return ErrClosed
	}
	i, ok := s.index[p]
	if !ok {
		i = uint32(len(s.ents))
		s.ents = append(s.ents, entry{slot: k.allocSlot(), shredded: true})
		s.index[p] = i
		s.shredded++
	}
	e := &s.ents[i]
	if !e.shredded {
		e.key, e.shredded, e.pending = [32]byte{}, true, false
		s.keys--
		s.shredded++
	}
	s.cache.remove(p, i)
	// Written even when already shredded, so that a Shred that failed can
	// be repeated.
	var b [slotSize]byte
	encodeSlot(&b, p, nil)
	return k.writeSlot(e.slot, &b)
}

// Shredded reports whether p was shredded.
func (k *Keyring) Shredded(p Pseudonym) bool {
	s := k.shard(p)
	s.mu.RLock()
	defer s.mu.RUnlock()
	i, ok := s.index[p]
	return ok && s.ents[i].shredded
}

// Has reports whether p has a key (made by Seal or put back by Restore).
func (k *Keyring) Has(p Pseudonym) bool {
	s := k.shard(p)
	s.mu.RLock()
	defer s.mu.RUnlock()
	i, ok := s.index[p]
	return ok && !s.ents[i].shredded
}

// Len returns the number of pseudonyms with a key and of shredded ones.
func (k *Keyring) Len() (keys, shredded int) {
	for si := range k.shards {
		s := &k.shards[si]
		s.mu.RLock()
		keys += s.keys
		shredded += s.shredded
		s.mu.RUnlock()
	}
	return keys, shredded
}

// Close syncs pending keys (as Sync), forgets all keys and closes the file.
// Seal, Open, Restore, Sync, Shred and Close fail with ErrClosed afterwards;
// Len and Shredded report an empty keyring; Pseudonym still works.
func (k *Keyring) Close() error {
	if !k.closed.CompareAndSwap(false, true) {
		return ErrClosed
	}
	k.syncMu.Lock()
	defer k.syncMu.Unlock()
	// Operations that saw closed == false finish before syncLocked gets
	// their shard's lock; later ones see closed.
	err := k.syncLocked()
	for si := range k.shards {
		s := &k.shards[si]
		s.mu.Lock()
		clear(s.ents)
		s.ents, s.index, s.written, s.unwritten = nil, nil, nil, nil
		s.cache.reset()
		s.mu.Unlock()
	}
	if cerr := k.f.Close(); cerr != nil {
		err = cmpOr(err, fmt.Errorf("shred: keyring: %w", cerr))
	}
	return err
}
