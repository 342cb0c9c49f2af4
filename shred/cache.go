package shred

import (
	"crypto/cipher"
	"crypto/rand"
	"slices"
	"sync"

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
	aad  [1 + len(Pseudonym{})]byte
}

// newSealer makes the sealer of a key: two small allocations; busy keys
// are cached all the same.
func newSealer(p Pseudonym, key *[32]byte) *sealer {
	aead, err := chacha20poly1305.NewX(key[:])
	if err != nil {
		panic(err) // only for a bad key size
	}
	s := &sealer{aead: aead}
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

// sealerCache keeps the sealers of recently used keys, up to a bound, with
// CLOCK (second chance) eviction. One per shard; the shard's lock must be
// held (read or write) around get and put, and the write lock around remove,
// so that a sealer is never put back after its key was shredded.
type sealerCache struct {
	mu   sync.Mutex
	max  int
	idx  map[Pseudonym]int
	ents []cacheEnt
	hand int
}

type cacheEnt struct {
	p   Pseudonym
	s   *sealer // nil: an empty place
	ref bool
}

func (c *sealerCache) get(p Pseudonym) *sealer {
	c.mu.Lock()
	defer c.mu.Unlock()
	i, ok := c.idx[p]
	if !ok {
		return nil
	}
	e := &c.ents[i]
	if !e.ref {
		e.ref = true // written only when clear: fewer stores to share between cores
	}
	return e.s
}

// put adds s for p and returns the sealer cached for p (s, or one that
// another goroutine put first).
func (c *sealerCache) put(p Pseudonym, s *sealer) *sealer {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.max <= 0 {
		return s
	}
	if i, ok := c.idx[p]; ok {
		return c.ents[i].s
	}
	if c.idx == nil {
		c.idx = make(map[Pseudonym]int, c.max)
	}
	if len(c.ents) < c.max {
		c.idx[p] = len(c.ents)
		c.ents = append(c.ents, cacheEnt{p: p, s: s})
		return s
	}
	for {
		e := &c.ents[c.hand]
		if e.ref && e.s != nil {
			e.ref = false
			c.hand = (c.hand + 1) % len(c.ents)
			continue
		}
		if e.s != nil {
			delete(c.idx, e.p)
		}
		*e = cacheEnt{p: p, s: s}
		c.idx[p] = c.hand
		c.hand = (c.hand + 1) % len(c.ents)
		return s
	}
}

func (c *sealerCache) remove(p Pseudonym) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i, ok := c.idx[p]; ok {
		delete(c.idx, p)
		c.ents[i] = cacheEnt{}
	}
}

func (c *sealerCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.idx, c.ents, c.hand = nil, nil, 0
}
