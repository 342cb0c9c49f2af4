package shred

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nudge-dev/nudge/internal/cputime"
)

func openT(t testing.TB, path string) *Keyring {
	t.Helper()
	k, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

func sealT(t testing.TB, k *Keyring, p Pseudonym, plaintext string) ([]byte, *KeyRecord) {
	t.Helper()
	out, rec, err := k.Seal(nil, p, []byte(plaintext))
	if err != nil {
		t.Fatalf("Seal(%s): %v", p, err)
	}
	return out, rec
}

func mustOpen(t testing.TB, k *Keyring, p Pseudonym, sealed []byte, want string) {
	t.Helper()
	got, err := k.Open(nil, p, sealed)
	if err != nil {
		t.Fatalf("Open(%s): %v", p, err)
	}
	if string(got) != want {
		t.Fatalf("Open(%s) = %q, want %q", p, got, want)
	}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// slotOf returns the slot holding p in a keyring file, or -1.
func slotOf(raw []byte, p Pseudonym) int {
	for off := headerSize; off+slotSize <= len(raw); off += slotSize {
		if bytes.Equal(raw[off+4:off+20], p[:]) {
			return (off - headerSize) / slotSize
		}
	}
	return -1
}

func patchFile(t testing.TB, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestSealOpenRoundTrip(t *testing.T) {
	k := openT(t, filepath.Join(t.TempDir(), "keys"))
	p := k.Pseudonym("u:42")
	for _, pt := range []string{"", "a", "alice@example.com", strings.Repeat("x", 4000)} {
		sealed, _ := sealT(t, k, p, pt)
		if len(sealed) != len(pt)+Overhead {
			t.Fatalf("sealed %d bytes, want %d", len(sealed), len(pt)+Overhead)
		}
		if len(pt) > 8 && bytes.Contains(sealed, []byte(pt)) {
			t.Fatal("plaintext visible in sealed value")
		}
		mustOpen(t, k, p, sealed, pt)
	}

	// Seal and Open append to dst.
	prefix := []byte("prefix:")
	sealed, _, err := k.Seal(bytes.Clone(prefix), p, []byte("hello"))
	if err != nil || !bytes.HasPrefix(sealed, prefix) {
		t.Fatalf("Seal with dst: %q, %v", sealed, err)
	}
	out, err := k.Open(bytes.Clone(prefix), p, sealed[len(prefix):])
	if err != nil || string(out) != "prefix:hello" {
		t.Fatalf("Open with dst: %q, %v", out, err)
	}

	// Random nonces: the same plaintext seals differently.
	a, _ := sealT(t, k, p, "same")
	b, _ := sealT(t, k, p, "same")
	if bytes.Equal(a, b) {
		t.Fatal("two seals of the same plaintext are equal")
	}
	if keys, shredded := k.Len(); keys != 1 || shredded != 0 {
		t.Fatalf("Len = %d, %d; want 1, 0", keys, shredded)
	}
}

func TestPseudonyms(t *testing.T) {
	dir := t.TempDir()
	k1 := openT(t, filepath.Join(dir, "a"))
	k2 := openT(t, filepath.Join(dir, "b"))
	p := k1.Pseudonym("u:42")
	if p != k1.Pseudonym("u:42") {
		t.Fatal("Pseudonym is not deterministic")
	}
	if p == k1.Pseudonym("a:42") || p.IsZero() {
		t.Fatal("different identifiers share a pseudonym")
	}
	if p == k2.Pseudonym("u:42") {
		t.Fatal("two keyrings (two secrets) give the same pseudonym")
	}
	if err := k1.Close(); err != nil {
		t.Fatal(err)
	}
	if k1.Pseudonym("u:42") != p {
		t.Fatal("Pseudonym changed after Close")
	}
	k1 = openT(t, filepath.Join(dir, "a"))
	if k1.Pseudonym("u:42") != p {
		t.Fatal("Pseudonym changed after reopen: secret not kept")
	}
}

func TestParsePseudonym(t *testing.T) {
	k := openT(t, filepath.Join(t.TempDir(), "keys"))
	for i := range 1000 {
		p := k.Pseudonym(fmt.Sprint(i))
		s := p.String()
		if len(s) != 22 {
			t.Fatalf("String() = %q, %d chars", s, len(s))
		}
		q, err := ParsePseudonym(s)
		if err != nil || q != p {
			t.Fatalf("ParsePseudonym(%q) = %v, %v; want %v", s, q, err, p)
		}
	}
	var zero Pseudonym
	if q, err := ParsePseudonym(zero.String()); err != nil || !q.IsZero() {
		t.Fatalf("zero round trip: %v, %v", q, err)
	}
	good := k.Pseudonym("x").String()
	for _, bad := range []string{
		"",
		good[:21],
		good + "A",
		good + "==",
		"AAAAAAAAAAAAAAAAAAAAAB", // trailing bits set: not canonical
		"+AAAAAAAAAAAAAAAAAAAAA", // standard, not URL alphabet
		"/AAAAAAAAAAAAAAAAAAAAA",
		"AAAAAAAAAA\nAAAAAAAAAAA",
		"AAAAAAAAAAAAAAAAAAAA==",
		"AAAAAAAAAAAAAAAAAAAAA.",
	} {
		if p, err := ParsePseudonym(bad); err == nil {
			t.Errorf("ParsePseudonym(%q) = %v, want an error", bad, p)
		} else if !strings.HasPrefix(err.Error(), "shred: bad pseudonym") {
			t.Errorf("ParsePseudonym(%q): error %q", bad, err)
		}
	}
}

func TestKeyRecord(t *testing.T) {
	r := KeyRecord{Pseudonym: Pseudonym{1, 2, 3}, Key: [32]byte{9, 8, 7}}
	b := r.Append([]byte("x"))
	if len(b) != 1+KeyRecordSize {
		t.Fatalf("Append: %d bytes", len(b))
	}
	got, err := ParseKeyRecord(b[1:])
	if err != nil || got != r {
		t.Fatalf("ParseKeyRecord = %v, %v", got, err)
	}
	for _, bad := range [][]byte{nil, b[1:KeyRecordSize], b, (KeyRecord{Key: r.Key}).Append(nil), (KeyRecord{Pseudonym: r.Pseudonym}).Append(nil)} {
		if _, err := ParseKeyRecord(bad); err == nil {
			t.Errorf("ParseKeyRecord(%x): no error", bad)
		}
	}
}

func TestPendingUntilSync(t *testing.T) {
	k := openT(t, filepath.Join(t.TempDir(), "keys"))
	p := k.Pseudonym("u:1")
	_, r1 := sealT(t, k, p, "one")
	_, r2 := sealT(t, k, p, "two")
	if r1 == nil || r2 == nil {
		t.Fatalf("pending records before Sync: %v, %v", r1, r2)
	}
	if *r1 != *r2 || r1 == r2 || r1.Pseudonym != p {
		t.Fatalf("every sealer must get its own copy of the same record: %v %v", r1, r2)
	}
	if err := k.Sync(); err != nil {
		t.Fatal(err)
	}
	if _, r := sealT(t, k, p, "three"); r != nil {
		t.Fatalf("pending record after Sync: %v", r)
	}
	// A key made after Sync is pending again.
	q := k.Pseudonym("u:2")
	if _, r := sealT(t, k, q, "x"); r == nil {
		t.Fatal("no pending record for a new key")
	}
	if err := k.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := k.Sync(); err != nil { // nothing to do
		t.Fatal(err)
	}
	if _, r := sealT(t, k, q, "x"); r != nil {
		t.Fatal("pending record after second Sync")
	}
}

func TestReopenAfterSync(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys")
	k := openT(t, path)
	sealed := map[Pseudonym][]byte{}
	for i := range 100 {
		p := k.Pseudonym(fmt.Sprint("u:", i))
		sealed[p], _ = sealT(t, k, p, fmt.Sprint("secret ", i))
	}
	if err := k.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	k = openT(t, path)
	if err := k.Damage(); err != nil {
		t.Fatal(err)
	}
	if keys, shredded := k.Len(); keys != 100 || shredded != 0 {
		t.Fatalf("Len = %d, %d", keys, shredded)
	}
	for i := range 100 {
		p := k.Pseudonym(fmt.Sprint("u:", i))
		mustOpen(t, k, p, sealed[p], fmt.Sprint("secret ", i))
		if _, r := sealT(t, k, p, "x"); r != nil {
			t.Fatal("pending record for a key read from the file")
		}
	}
}

// crash replaces the keyring file at path by snapshot, as if what was
// written since (never synced) had not reached the disk. The keyring that
// had the file open is abandoned (it keeps the old inode and its lock).
func crash(t *testing.T, path string, snapshot []byte) {
	t.Helper()
	if err := os.WriteFile(path+".crash", snapshot, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".crash", path); err != nil {
		t.Fatal(err)
	}
}

func TestCrashBeforeSyncRestore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys")
	k := openT(t, path)
	old := k.Pseudonym("u:old")
	oldSealed, _ := sealT(t, k, old, "durable")
	if err := k.Sync(); err != nil {
		t.Fatal(err)
	}
	snapshot := readFile(t, path)

	p := k.Pseudonym("u:new")
	sealed, rec := sealT(t, k, p, "in the wal")
	if rec == nil {
		t.Fatal("no pending record")
	}
	wal := rec.Append(nil) // what ingest writes beside the events
	crash(t, path, snapshot)

	k2 := openT(t, path)
	mustOpen(t, k2, old, oldSealed, "durable")
	if _, err := k2.Open(nil, p, sealed); !errors.Is(err, ErrNoKey) {
		t.Fatalf("Open before Restore: %v, want ErrNoKey", err)
	}
	r, err := ParseKeyRecord(wal)
	if err != nil {
		t.Fatal(err)
	}
	if err := k2.Restore(r); err != nil {
		t.Fatal(err)
	}
	if err := k2.Restore(r); err != nil { // again: no-op
		t.Fatal(err)
	}
	mustOpen(t, k2, p, sealed, "in the wal")
	// Restored but not synced: still pending.
	if _, r2 := sealT(t, k2, p, "x"); r2 == nil || *r2 != r {
		t.Fatalf("restored key: pending record %v, want %v", r2, r)
	}
	if err := k2.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := k2.Close(); err != nil {
		t.Fatal(err)
	}
	k3 := openT(t, path)
	mustOpen(t, k3, p, sealed, "in the wal")
	if keys, _ := k3.Len(); keys != 2 {
		t.Fatalf("keys = %d, want 2", keys)
	}
}

// A crash of the process (not of the machine) leaves the unsynced slot in
// the page cache: the next Open reads it and makes it durable itself.
func TestProcessCrashKeepsUnsyncedKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys")
	k := openT(t, path)
	p := k.Pseudonym("u:1")
	sealed, rec := sealT(t, k, p, "hello")
	copyPath := filepath.Join(dir, "copy")
	if err := os.WriteFile(copyPath, readFile(t, path), 0o600); err != nil {
		t.Fatal(err)
	}
	k2 := openT(t, copyPath)
	mustOpen(t, k2, p, sealed, "hello")
	if _, r := sealT(t, k2, p, "x"); r != nil {
		t.Fatal("key read at Open is pending")
	}
	if err := k2.Restore(*rec); err != nil {
		t.Fatalf("Restore of the same key: %v", err)
	}
	if n := k2.Conflicts(); n != 0 {
		t.Fatalf("Conflicts = %d after restoring the same key", n)
	}
	// A different key for p (a Seal that ran before Restore) is ignored
	// and counted.
	other := *rec
	other.Key[0] ^= 1
	if err := k2.Restore(other); err != nil {
		t.Fatalf("Restore of another key: %v", err)
	}
	if n := k2.Conflicts(); n != 1 {
		t.Fatalf("Conflicts = %d, want 1", n)
	}
	mustOpen(t, k2, p, sealed, "hello")
}

func TestShred(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys")
	k := openT(t, path)
	alice, bob := k.Pseudonym("u:alice"), k.Pseudonym("u:bob")
	aliceAnon := k.Pseudonym("a:alice-device")
	never := k.Pseudonym("u:never-seen")

	aSealed, aRec := sealT(t, k, alice, "alice@example.com")
	anSealed, anRec := sealT(t, k, aliceAnon, "alice's phone")
	bSealed, _ := sealT(t, k, bob, "bob@example.com")
	if err := k.Sync(); err != nil {
		t.Fatal(err)
	}
	// Sealed after the Sync: this key is shredded while still pending.
	if _, r := sealT(t, k, aliceAnon, "x"); r != nil {
		t.Fatal("pending after Sync")
	}
	late := k.Pseudonym("a:alice-late")
	_, lateRec := sealT(t, k, late, "late")
	raw := readFile(t, path)
	for _, key := range [][32]byte{aRec.Key, anRec.Key, lateRec.Key} {
		if !bytes.Contains(raw, key[:]) {
			t.Fatal("key not in the file before Shred")
		}
	}

	if err := k.Shred(alice, aliceAnon, late, never); err != nil {
		t.Fatal(err)
	}
	check := func(k *Keyring) {
		t.Helper()
		for _, p := range []Pseudonym{alice, aliceAnon, late, never} {
			if !k.Shredded(p) {
				t.Errorf("Shredded(%s) = false", p)
			}
			if _, _, err := k.Seal(nil, p, []byte("again")); !errors.Is(err, ErrShredded) {
				t.Errorf("Seal after Shred: %v, want ErrShredded", err)
			}
		}
		if _, err := k.Open(nil, alice, aSealed); !errors.Is(err, ErrShredded) || !strings.Contains(err.Error(), alice.String()) {
			t.Errorf("Open after Shred: %v, want ErrShredded naming the pseudonym", err)
		}
		if _, err := k.Open(nil, aliceAnon, anSealed); !errors.Is(err, ErrShredded) {
			t.Errorf("Open after Shred: %v, want ErrShredded", err)
		}
		if k.Shredded(bob) {
			t.Error("bob shredded")
		}
		mustOpen(t, k, bob, bSealed, "bob@example.com")
		// A shredded key never comes back.
		for _, r := range []*KeyRecord{aRec, anRec, lateRec} {
			if err := k.Restore(*r); err != nil {
				t.Errorf("Restore of a shredded key: %v", err)
			}
		}
		if _, err := k.Open(nil, alice, aSealed); !errors.Is(err, ErrShredded) {
			t.Errorf("Open after Restore of a shredded key: %v", err)
		}
		if keys, shredded := k.Len(); keys != 1 || shredded != 4 {
			t.Errorf("Len = %d, %d; want 1, 4", keys, shredded)
		}
		raw := readFile(t, path)
		for _, key := range [][32]byte{aRec.Key, anRec.Key, lateRec.Key} {
			if bytes.Contains(raw, key[:]) {
				t.Error("shredded key bytes still in the file")
			}
		}
	}
	check(k)
	if err := k.Shred(alice); err != nil { // again: fine
		t.Fatal(err)
	}
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	k = openT(t, path)
	check(k)
	if err := k.Damage(); err != nil {
		t.Fatal(err)
	}
	if err := k.Shred(Pseudonym{}); err == nil {
		t.Fatal("Shred of the zero pseudonym: no error")
	}
}

func TestDamagedSlots(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys")
	k := openT(t, path)
	var ps []Pseudonym
	var sealed [][]byte
	for i := range 10 {
		p := k.Pseudonym(fmt.Sprint("u:", i))
		s, _ := sealT(t, k, p, fmt.Sprint("v", i))
		ps, sealed = append(ps, p), append(sealed, s)
	}
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	raw := readFile(t, path)
	bad, hole := slotOf(raw, ps[3]), slotOf(raw, ps[6])
	// A bit flip in slot bad's key, slot hole zeroed (a write that never
	// landed), and a torn half slot at the end.
	patchFile(t, path, slotOffset(uint32(bad))+30, []byte{raw[slotOffset(uint32(bad))+30] ^ 0x10})
	patchFile(t, path, slotOffset(uint32(hole)), make([]byte, slotSize))
	patchFile(t, path, int64(len(raw)), bytes.Repeat([]byte{0xAB}, 30))

	k = openT(t, path)
	damage := k.Damage()
	if damage == nil {
		t.Fatal("no damage reported")
	}
	for _, want := range []string{
		fmt.Sprintf("shred: keyring %s: slot %d: bad checksum", path, bad),
		fmt.Sprintf("shred: keyring %s: slot 10: torn (30 of 64 bytes)", path),
	} {
		if !strings.Contains(damage.Error(), want) {
			t.Errorf("Damage() = %q, want it to contain %q", damage, want)
		}
	}
	for i, p := range ps {
		_, err := k.Open(nil, p, sealed[i])
		switch i {
		case 3, 6:
			if !errors.Is(err, ErrNoKey) {
				t.Errorf("key %d: Open: %v, want ErrNoKey", i, err)
			}
		default:
			if err != nil {
				t.Errorf("key %d: Open: %v", i, err)
			}
		}
	}
	if keys, _ := k.Len(); keys != 8 {
		t.Fatalf("keys = %d, want 8", keys)
	}
	// New keys take the hole, then the torn tail; the damaged slot stays.
	sizeBefore := len(readFile(t, path))
	a, b := k.Pseudonym("u:a"), k.Pseudonym("u:b")
	aSealed, _ := sealT(t, k, a, "a")
	bSealed, _ := sealT(t, k, b, "b")
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	raw = readFile(t, path)
	if slotOf(raw, a) != hole || slotOf(raw, b) != 10 || len(raw) != sizeBefore+slotSize-30 {
		t.Fatalf("new keys in slots %d, %d (file %d bytes); want %d, 10", slotOf(raw, a), slotOf(raw, b), len(raw), hole)
	}
	k = openT(t, path)
	mustOpen(t, k, a, aSealed, "a")
	mustOpen(t, k, b, bSealed, "b")
	if damage := k.Damage(); damage == nil || strings.Contains(damage.Error(), "torn") || !strings.Contains(damage.Error(), "bad checksum") {
		t.Fatalf("Damage() = %v", damage)
	}
}

func TestDamageBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys")
	var junk [slotSize]byte
	for i := range junk {
		junk[i] = 0xEE
	}
	slots := make([][slotSize]byte, 150)
	for i := range slots {
		slots[i] = junk
	}
	slots[75] = slot(Pseudonym{7}, &[32]byte{7})
	writeSlots(t, path, slots...)
	k := openT(t, path)
	damage := k.Damage()
	if damage == nil {
		t.Fatal("no damage")
	}
	msg := damage.Error()
	if n := strings.Count(msg, "bad checksum"); n != maxDamage || !strings.Contains(msg, "49 more problems") {
		t.Fatalf("Damage() lists %d slots: ...%s", n, msg[max(0, len(msg)-200):])
	}
	if keys, _ := k.Len(); keys != 1 {
		t.Fatalf("keys = %d, want 1", keys)
	}
}

// writeSlots writes a keyring file by hand.
func writeSlots(t *testing.T, path string, slots ...[slotSize]byte) {
	t.Helper()
	b := encodeHeader(&[32]byte{1})
	for _, s := range slots {
		b = append(b, s[:]...)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func slot(p Pseudonym, key *[32]byte) (b [slotSize]byte) {
	encodeSlot(&b, p, key)
	return b
}

// Keyring never writes a pseudonym twice, but if a file has it, Open
// leaves no key bytes on disk that a Shred could miss.
func TestDuplicateSlots(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys")
	p1, p2, p3 := Pseudonym{1}, Pseudonym{2}, Pseudonym{3}
	k1, k2a, k2b, k3 := [32]byte{11}, [32]byte{21}, [32]byte{22}, [32]byte{31}
	writeSlots(t, path, slot(p1, &k1), slot(p1, nil), slot(p2, &k2a), slot(p2, &k2b), slot(p3, nil), slot(p3, &k3))
	k := openT(t, path)
	if !k.Shredded(p1) || k.Shredded(p2) || !k.Shredded(p3) {
		t.Fatal("shredded must win over a key")
	}
	if damage := k.Damage(); damage == nil || !strings.Contains(damage.Error(), "slot 1: pseudonym also in slot 0") {
		t.Fatalf("Damage() = %v", damage)
	}
	raw := readFile(t, path)
	for _, key := range [][32]byte{k1, k2b, k3} {
		if bytes.Contains(raw, key[:]) {
			t.Errorf("key %x still in the file", key[0])
		}
	}
	if !bytes.Contains(raw, k2a[:]) {
		t.Error("first key of p2 lost")
	}
	if keys, shredded := k.Len(); keys != 1 || shredded != 2 {
		t.Fatalf("Len = %d, %d", keys, shredded)
	}
	// The zeroed slot is reused.
	q := Pseudonym{4}
	sealT(t, k, q, "x")
	if got := slotOf(readFile(t, path), q); got != 3 {
		t.Fatalf("new key in slot %d, want 3", got)
	}
}

func TestTampering(t *testing.T) {
	k := openT(t, filepath.Join(t.TempDir(), "keys"))
	p, q := k.Pseudonym("u:p"), k.Pseudonym("u:q")
	sealed, _ := sealT(t, k, p, "the plaintext of p")
	sealT(t, k, q, "q has a key too")
	for i := range sealed {
		c := bytes.Clone(sealed)
		c[i] ^= 0x01
		if out, err := k.Open(nil, p, c); err == nil {
			t.Fatalf("byte %d flipped: opened to %q", i, out)
		} else if i > 0 && (!errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), p.String())) {
			t.Fatalf("byte %d flipped: %v, want ErrAuth naming %s", i, err, p)
		}
	}
	if _, err := k.Open(nil, q, sealed); !errors.Is(err, ErrAuth) {
		t.Fatalf("moved to another pseudonym: %v, want ErrAuth", err)
	}
	if _, err := k.Open(nil, k.Pseudonym("u:none"), sealed); !errors.Is(err, ErrNoKey) {
		t.Fatalf("moved to a pseudonym without key: %v, want ErrNoKey", err)
	}
	for _, c := range [][]byte{nil, sealed[:Overhead-1], sealed[:len(sealed)-1], append(bytes.Clone(sealed), 0)} {
		if _, err := k.Open(nil, p, c); err == nil {
			t.Fatalf("Open(%d bytes): no error", len(c))
		}
	}
	if _, _, err := k.Seal(nil, Pseudonym{}, []byte("x")); err == nil {
		t.Fatal("Seal with the zero pseudonym: no error")
	}
}

func TestConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys")
	k := openT(t, path)
	const (
		workers = 8
		rounds  = 300
		shared  = 40
	)
	sharedP := make([]Pseudonym, shared)
	for i := range sharedP {
		sharedP[i] = k.Pseudonym(fmt.Sprint("shared:", i))
	}
	doomed := make([]Pseudonym, 10) // shredded while others seal for them
	for i := range doomed {
		doomed[i] = k.Pseudonym(fmt.Sprint("doomed:", i))
	}

	type sealedValue struct {
		p         Pseudonym
		sealed    []byte
		plaintext string
	}
	var (
		mu      sync.Mutex
		keys    = map[Pseudonym][32]byte{} // every pending record seen
		results []sealedValue
		wg      sync.WaitGroup
	)
	errc := make(chan error, workers+2)
	for w := range workers {
		wg.Go(func() {
			var mine []sealedValue
			for i := range rounds {
				var p Pseudonym
				switch i % 3 {
				case 0:
					p = k.Pseudonym(fmt.Sprintf("own:%d:%d", w, i))
				case 1:
					p = sharedP[(w*7+i)%shared]
				default:
					p = doomed[i%len(doomed)]
				}
				pt := fmt.Sprintf("w%d i%d", w, i)
				sealed, rec, err := k.Seal(nil, p, []byte(pt))
				if errors.Is(err, ErrShredded) && i%3 == 2 {
					continue
				}
				if err != nil {
					errc <- err
					return
				}
				if rec != nil {
					mu.Lock()
					if key, ok := keys[p]; ok && key != rec.Key {
						mu.Unlock()
						errc <- fmt.Errorf("two keys for %s", p)
						return
					}
					keys[p] = rec.Key
					mu.Unlock()
				}
				out, err := k.Open(nil, p, sealed)
				if errors.Is(err, ErrShredded) && i%3 == 2 {
					continue
				}
				if err != nil || string(out) != pt {
					errc <- fmt.Errorf("Open = %q, %v; want %q", out, err, pt)
					return
				}
				if i%3 != 2 {
					mine = append(mine, sealedValue{p, sealed, pt})
				}
			}
			mu.Lock()
			results = append(results, mine...)
			mu.Unlock()
		})
	}
	wg.Go(func() {
		for range 20 {
			if err := k.Sync(); err != nil {
				errc <- err
				return
			}
			runtime.Gosched()
		}
	})
	wg.Go(func() {
		for _, p := range doomed {
			if err := k.Shred(p); err != nil {
				errc <- err
				return
			}
			runtime.Gosched()
		}
	})
	wg.Go(func() {
		for range 100 {
			k.Len()
			k.Shredded(doomed[0])
		}
	})
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}

	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	k = openT(t, path)
	for _, r := range results {
		mustOpen(t, k, r.p, r.sealed, r.plaintext)
	}
	keys2, shredded := k.Len()
	if want := shared + workers*rounds/3; keys2 != want || shredded != len(doomed) {
		t.Fatalf("Len = %d, %d; want %d, %d", keys2, shredded, want, len(doomed))
	}
	raw := readFile(t, path)
	for _, p := range doomed {
		if key, ok := keys[p]; ok && bytes.Contains(raw, key[:]) {
			t.Fatalf("shredded key of %s in the file", p)
		}
	}
}

func TestCacheEviction(t *testing.T) {
	k := openT(t, filepath.Join(t.TempDir(), "keys"))
	for i := range k.shards {
		k.shards[i].cache = newSealerCache(2)
	}
	var ps []Pseudonym
	var sealed [][]byte
	for i := range 500 {
		p := k.Pseudonym(fmt.Sprint(i))
		s, _ := sealT(t, k, p, fmt.Sprint(i))
		ps, sealed = append(ps, p), append(sealed, s)
	}
	for round := range 3 {
		for i, p := range ps {
			if round == 2 && i%5 == 0 {
				continue
			}
			mustOpen(t, k, p, sealed[i], fmt.Sprint(i))
		}
	}
	// A shredded key leaves the cache.
	s := k.shard(ps[0])
	i := s.index[ps[0]]
	mustOpen(t, k, ps[0], sealed[0], "0")
	if s.cache.get(ps[0], i) == nil {
		t.Fatal("a key just used is not cached")
	}
	if err := k.Shred(ps[0]); err != nil {
		t.Fatal(err)
	}
	if s.cache.get(ps[0], i) != nil {
		t.Fatal("shredded key still cached")
	}
}

// faults replaces the keyring's file operations.
type faults struct {
	mu        sync.Mutex
	writeErr  error
	syncErr   error
	syncCalls int
}

func (fl *faults) install(k *Keyring) {
	k.ops = fileOps{
		writeAt: func(f *os.File, b []byte, off int64) (int, error) {
			fl.mu.Lock()
			err := fl.writeErr
			fl.mu.Unlock()
			if err != nil {
				return 0, err
			}
			return f.WriteAt(b, off)
		},
		datasync: func(f *os.File) error {
			fl.mu.Lock()
			defer fl.mu.Unlock()
			fl.syncCalls++
			if fl.syncErr != nil {
				return fl.syncErr
			}
			return datasync(f)
		},
	}
}

func (fl *faults) set(write, sync error) {
	fl.mu.Lock()
	fl.writeErr, fl.syncErr = write, sync
	fl.mu.Unlock()
}

func TestWriteAndSyncErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys")
	k := openT(t, path)
	var fl faults
	fl.install(k)

	// A failed slot write: Seal still works, the key stays pending, Sync
	// reports the error and retries.
	fl.set(syscall.ENOSPC, nil)
	p := k.Pseudonym("u:1")
	sealed, rec := sealT(t, k, p, "x")
	if rec == nil {
		t.Fatal("no pending record")
	}
	err := k.Sync()
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Sync: %v, want ENOSPC naming the file", err)
	}
	if _, r := sealT(t, k, p, "x"); r == nil {
		t.Fatal("key not pending after a failed Sync")
	}

	// A failed fdatasync: the key stays pending.
	fl.set(nil, syscall.EIO)
	if err := k.Sync(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Sync: %v, want EIO", err)
	}
	if _, r := sealT(t, k, p, "x"); r == nil {
		t.Fatal("key not pending after a failed fdatasync")
	}
	fl.set(nil, nil)
	if err := k.Sync(); err != nil {
		t.Fatal(err)
	}
	if _, r := sealT(t, k, p, "x"); r != nil {
		t.Fatal("key pending after Sync")
	}

	// A failed Shred can be repeated.
	fl.set(syscall.EIO, nil)
	if err := k.Shred(p); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Shred: %v, want EIO", err)
	}
	if !k.Shredded(p) {
		t.Fatal("not shredded in memory after a failed Shred")
	}
	fl.set(nil, syscall.EIO)
	if err := k.Shred(p); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Shred: %v, want EIO", err)
	}
	fl.set(nil, nil)
	if err := k.Shred(p); err != nil {
		t.Fatal(err)
	}
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	k = openT(t, path)
	if _, err := k.Open(nil, p, sealed); !errors.Is(err, ErrShredded) {
		t.Fatalf("Open after reopen: %v, want ErrShredded", err)
	}
	if bytes.Contains(readFile(t, path), rec.Key[:]) {
		t.Fatal("key in the file")
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(filepath.Join(dir, "missing", "keys")); err == nil {
		t.Fatal("Open in a missing directory: no error")
	}

	path := filepath.Join(dir, "keys")
	k := openT(t, path)
	if _, err := Open(path); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second Open: %v, want in use", err)
	}
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	good := readFile(t, path)
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode %v, %v; want 0600", fi.Mode(), err)
	}

	for _, tc := range []struct {
		name string
		file []byte
		want string
	}{
		{"empty", nil, "short header (0 bytes, want 64)"},
		{"short", good[:40], "short header (40 bytes"},
		{"magic", append([]byte("XKEY"), good[4:]...), "bad magic"},
		{"checksum", append(bytes.Clone(good[:20]), append([]byte{good[20] ^ 1}, good[21:]...)...), "header: bad checksum"},
		{"version", func() []byte {
			b := encodeHeader(&[32]byte{})
			b[4] = 9
			putSum(b)
			return b
		}(), "unsupported format version 9"},
	} {
		p := filepath.Join(dir, tc.name)
		if err := os.WriteFile(p, tc.file, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Open(p)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: Open: %v, want %q naming the file", tc.name, err, tc.want)
		}
	}
}

func TestClosed(t *testing.T) {
	k := openT(t, filepath.Join(t.TempDir(), "keys"))
	p := k.Pseudonym("u:1")
	sealed, rec := sealT(t, k, p, "x")
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := k.Seal(nil, p, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Seal: %v", err)
	}
	if _, _, err := k.Seal(nil, k.Pseudonym("u:2"), nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Seal new: %v", err)
	}
	if _, err := k.Open(nil, p, sealed); !errors.Is(err, ErrClosed) {
		t.Errorf("Open: %v", err)
	}
	if err := k.Restore(*rec); !errors.Is(err, ErrClosed) {
		t.Errorf("Restore: %v", err)
	}
	if err := k.Sync(); !errors.Is(err, ErrClosed) {
		t.Errorf("Sync: %v", err)
	}
	if err := k.Shred(p); !errors.Is(err, ErrClosed) {
		t.Errorf("Shred: %v", err)
	}
	if err := k.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("Close: %v", err)
	}
}

// Close waits for nothing but makes concurrent Seals fail cleanly.
func TestCloseWhileSealing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys")
	k := openT(t, path)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				_, _, err := k.Seal(nil, k.Pseudonym(fmt.Sprint(w, ":", i%50)), []byte("x"))
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for {
		if keys, _ := k.Len(); keys >= 100 {
			break
		}
		runtime.Gosched()
	}
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	k = openT(t, path)
	if keys, _ := k.Len(); keys < 100 {
		t.Fatalf("%d keys after Close", keys)
	}
}

const benchPlaintext = 400

// seqPseudonym is the i-th of distinct pseudonyms spread over all shards,
// as HMAC outputs are.
func seqPseudonym(i int) Pseudonym {
	return Pseudonym{byte(i), byte(i >> 8), byte(i >> 16), byte(i >> 24), 1}
}

func benchKeyring(b *testing.B) (*Keyring, Pseudonym) {
	k := openT(b, filepath.Join(b.TempDir(), "keys"))
	p := k.Pseudonym("u:bench")
	if _, _, err := k.Seal(nil, p, nil); err != nil {
		b.Fatal(err)
	}
	if err := k.Sync(); err != nil {
		b.Fatal(err)
	}
	return k, p
}

// BenchmarkSeal: an existing, durable key whose AEAD instance is cached.
func BenchmarkSeal(b *testing.B) {
	k, p := benchKeyring(b)
	pt := make([]byte, benchPlaintext)
	dst := make([]byte, 0, benchPlaintext+Overhead)
	b.SetBytes(benchPlaintext)
	defer cputime.Start().Report(b)
	for b.Loop() {
		var err error
		dst, _, err = k.Seal(dst[:0], p, pt)
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSealParallel(b *testing.B) {
	k := openT(b, filepath.Join(b.TempDir(), "keys"))
	ps := make([]Pseudonym, 1000)
	for i := range ps {
		ps[i] = k.Pseudonym(fmt.Sprint(i))
		k.Seal(nil, ps[i], nil)
	}
	if err := k.Sync(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchPlaintext)
	defer cputime.Start().Report(b)
	var goroutines atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		pt := make([]byte, benchPlaintext)
		dst := make([]byte, 0, benchPlaintext+Overhead)
		i := int(goroutines.Add(1)) * 7919 // goroutines apart, not in lockstep
		for pb.Next() {
			var err error
			dst, _, err = k.Seal(dst[:0], ps[i%len(ps)], pt)
			if err != nil {
				b.Fatal(err)
			}
			i += 13
		}
	})
}

// BenchmarkSealUncached: more keys in use than the cache holds, so every
// Seal expands its key (what a cache-less keyring would always do).
func BenchmarkSealUncached(b *testing.B) {
	k := openT(b, filepath.Join(b.TempDir(), "keys"))
	ps := make([]Pseudonym, 4*cacheSize)
	for i := range ps {
		ps[i] = k.Pseudonym(fmt.Sprint(i))
		if err := k.Restore(KeyRecord{Pseudonym: ps[i], Key: [32]byte{1, byte(i), byte(i >> 8)}}); err != nil {
			b.Fatal(err)
		}
	}
	if err := k.Sync(); err != nil {
		b.Fatal(err)
	}
	pt := make([]byte, benchPlaintext)
	dst := make([]byte, 0, benchPlaintext+Overhead)
	b.SetBytes(benchPlaintext)
	i := 0
	defer cputime.Start().Report(b)
	for b.Loop() {
		dst, _, _ = k.Seal(dst[:0], ps[i%len(ps)], pt)
		i++
	}
}

// BenchmarkSealNewKey: every Seal makes a key (random key, one pwrite).
func BenchmarkSealNewKey(b *testing.B) {
	k := openT(b, filepath.Join(b.TempDir(), "keys"))
	pt := make([]byte, benchPlaintext)
	dst := make([]byte, 0, benchPlaintext+Overhead)
	i := 0
	defer cputime.Start().Report(b)
	for b.Loop() {
		p := seqPseudonym(i)
		i++
		var err error
		dst, _, err = k.Seal(dst[:0], p, pt)
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	k, p := benchKeyring(b)
	sealed, _, err := k.Seal(nil, p, make([]byte, benchPlaintext))
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]byte, 0, benchPlaintext)
	b.SetBytes(benchPlaintext)
	defer cputime.Start().Report(b)
	for b.Loop() {
		if dst, err = k.Open(dst[:0], p, sealed); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPseudonym(b *testing.B) {
	k := openT(b, filepath.Join(b.TempDir(), "keys"))
	defer cputime.Start().Report(b)
	for b.Loop() {
		k.Pseudonym("u:2f1c9a7e-55b4-4c1e-9d0f-0b7a3d2e8c61")
	}
}

func BenchmarkSync(b *testing.B) {
	k := openT(b, filepath.Join(b.TempDir(), "keys"))
	i := 0
	for b.Loop() {
		k.Seal(nil, seqPseudonym(i), nil)
		i++
		if err := k.Sync(); err != nil {
			b.Fatal(err)
		}
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkMemory1M makes one million keys (as Seals of new identifiers)
// and reports the heap they take, then the same after reopening the file,
// and how long that Open took. b.N is not used.
func BenchmarkMemory1M(b *testing.B) {
	const n = 1_000_000
	path := filepath.Join(b.TempDir(), "keys")
	var perID, perIDOpen, openMS float64
	for b.Loop() {
		os.Remove(path)
		before := heapInUse()
		k, err := Open(path)
		if err != nil {
			b.Fatal(err)
		}
		pt := []byte("x")
		dst := make([]byte, 0, 64)
		for i := range n {
			if dst, _, err = k.Seal(dst[:0], seqPseudonym(i), pt); err != nil {
				b.Fatal(err)
			}
		}
		perID = float64(heapInUse()-before) / n
		if err := k.Close(); err != nil {
			b.Fatal(err)
		}
		before = heapInUse()
		start := time.Now()
		k, err = Open(path)
		if err != nil {
			b.Fatal(err)
		}
		openMS = float64(time.Since(start).Microseconds()) / 1000
		perIDOpen = float64(heapInUse()-before) / n
		if keys, _ := k.Len(); keys != n {
			b.Fatalf("%d keys", keys)
		}
		k.Close()
	}
	b.ReportMetric(perID, "heap-B/id")
	b.ReportMetric(perIDOpen, "heap-B/id-reopened")
	b.ReportMetric(openMS, "open-ms")
}
