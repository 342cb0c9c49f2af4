package shred

import (
	"crypto/cipher"
	"crypto/rand"
	"slices"
	"sync/atomic"

	"golang.org/x/crypto/chacha20poly1305"
)

// Sealed value format (version 2):
//
//	version byte (2) | nonce (24, random) | XChaCha20-Poly1305 ciphertext | tag (16)
//
// XChaCha20-Poly1305, not AES-GCM: a key seals one person's events, and
// an AES-GCM instance costs about 1 µs and 1.3 KB of garbage to set up (its
// tables), which nearly every seal and open paid once the people active at
// a time outnumbered the cache; a ChaCha20-Poly1305 instance is the key
// itself. Its 24-byte nonces are safe to draw at random.
//
// The additional authenticated data is the version byte followed by the
// pseudonym, so a value opens only under the identifier it was sealed for.
const (
	sealVersion = 2
	nonceSize   = chacha20poly1305.NonceSizeX
	tagSize     = 16
	// Overhead is how much longer a sealed value is than its plaintext.
	Overhead = 1 + nonceSize + tagSize
)

var zeroNonce [nonceSize]byte

// sealer is the AEAD of one key with its additional data. It is immutable
// and safe for concurrent use.
type sealer struct {
	aead cipher.AEAD
	p    Pseudonym
	aad  [1 + len(Pseudonym{})]byte
}

// newSealer makes the sealer of a key: two small allocations; busy keys
// are cached all the same.
func newSealer(p Pseudonym, key *[32]byte) *sealer {
	aead, err := chacha20poly1305.NewX(key[:])
	if err != nil {
		panic(err) // only for a bad key size
	}
	s := &sealer{aead: aead, p: p}
	s.aad[0] = sealVersion
	copy(s.aad[1:], p[:])
	return s
}

func (s *sealer) seal(dst, plaintext []byte) []byte {
	n := len(dst)
	dst = slices.Grow(dst, Overhead+len(plaintext))
	dst = append(dst, sealVersion)
	dst = append(dst, zeroNonce[:]...)
	nonce := dst[n+1 : n+1+nonceSize]
	rand.Read(nonce) // never fails: since Go 1.24 it crashes the program instead
	return s.aead.Seal(dst, nonce, plaintext, s.aad[:])
}

// sealerCache keeps the sealers of recently used keys in a direct-mapped
// table: a key's place is its index in the shard (entry), modulo the
// table's size, and a newer key that maps there replaces it. No map and no
// lock: with more people active than the table holds, nearly every seal
// misses, and the CLOCK cache this replaced spent more on its map's
// inserts and deletes than on making the sealer (BenchmarkSealUncached:
// 2.1-2.2 µs of CPU a seal then, 1.3-1.6 now). get and put need the
// shard's lock held (read or write), remove and reset the write lock, so
// that a sealer is never put back after its key was shredded.
type sealerCache struct {
	slots []atomic.Pointer[sealer]
}

func newSealerCache(n int) sealerCache {
	return sealerCache{slots: make([]atomic.Pointer[sealer], n)}
}

func (c *sealerCache) get(p Pseudonym, i uint32) *sealer {
	if len(c.slots) == 0 {
		return nil
	}
	if s := c.slots[i%uint32(len(c.slots))].Load(); s != nil && s.p == p {
		return s
	}
	return nil
}

// put caches s, the sealer of p at index i, and returns it.
func (c *sealerCache) put(p Pseudonym, i uint32, s *sealer) *sealer {
	if len(c.slots) > 0 {
		c.slots[i%uint32(len(c.slots))].Store(s)
	}
	return s
}

func (c *sealerCache) remove(p Pseudonym, i uint32) {
	if len(c.slots) == 0 {
		return
	}
	slot := &c.slots[i%uint32(len(c.slots))]
	if s := slot.Load(); s != nil && s.p == p {
		slot.Store(nil)
	}
}

func (c *sealerCache) reset() {
	c.slots = nil
}
