package main

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"sync/atomic"
)

const (
	partitions   = 16
	historyValue = 450
	profileValue = 1200
	poolSize     = 64 << 20
)

// mix is splitmix64: a cheap bijective scramble used to derive identifiers.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// customer derives the stable identifiers of customer i.
func partitionOf(i uint64) uint16 { return uint16(mix(i^0x5a5a) % partitions) }

func put128(b []byte, i, salt uint64) {
	binary.BigEndian.PutUint64(b, mix(i^salt))
	binary.BigEndian.PutUint64(b[8:], mix(mix(i^salt)))
}

// historyPrefix is partition u16 + pseudonym 16 B.
func historyPrefix(i uint64) []byte {
	k := make([]byte, 18)
	binary.BigEndian.PutUint16(k, partitionOf(i))
	put128(k[2:], i, 0x1d)
	return k
}

// profileKey is partition u16 + profile id 16 B.
func profileKey(i uint64) []byte {
	k := make([]byte, 18)
	binary.BigEndian.PutUint16(k, partitionOf(i))
	put128(k[2:], i, 0x7f)
	return k
}

// generator builds the batches of a uniform or Zipf customer stream. Values
// are slices of a pool of random bytes, so they are incompressible like the
// encrypted payloads they stand for.
type generator struct {
	n       uint64
	rng     *rand.Rand
	zipf    *rand.Zipf
	pool    []byte
	seq     uint64 // events generated so far
	offsets [partitions]uint64
	t0      uint64

	// marker, when set, is called for each batch and may return extra events
	// of customer 0 with recognisable values (the erasure experiment).
	marker  func(batchNo int) (events int, tag string)
	batchNo int

	written []atomic.Uint64 // bitmap of customers whose profile is committed
}

func newGenerator(n uint64, dist string, seed uint64) *generator {
	rng := rand.New(rand.NewPCG(seed, seed^0xabcdef))
	g := &generator{
		n:       n,
		rng:     rng,
		pool:    make([]byte, poolSize),
		t0:      uint64(1_767_225_600) * 1e9, // 2026-01-01, event time in ns
		written: make([]atomic.Uint64, n/64+1),
	}
	src := rand.NewChaCha8([32]byte{byte(seed)})
	_, _ = src.Read(g.pool)
	if dist == "zipf" {
		// Customer 0 is reserved for the erasure marker, so draw 1..n-1.
		g.zipf = rand.NewZipf(rng, 1.1, 16, n-2)
	}
	return g
}

func (g *generator) pick() uint64 {
	if g.zipf != nil {
		// Scramble so that the hot customers are spread over the key space.
		return 1 + mix(g.zipf.Uint64())%(g.n-1)
	}
	return 1 + g.rng.Uint64N(g.n-1)
}

func (g *generator) randomValue(n int) []byte {
	off := g.rng.IntN(len(g.pool) - n)
	return g.pool[off : off+n]
}

func (g *generator) markedValue(n int, tag string) []byte {
	v := make([]byte, n)
	copy(v, g.randomValue(n))
	copy(v, tag)
	return v
}

// next builds a batch of size events and returns it with the customers it
// touched (sorted, distinct).
func (g *generator) next(size int) (*batch, []uint64) {
	custs := make([]uint64, 0, size)
	tags := make([]string, 0, size)
	for range size {
		custs = append(custs, g.pick())
		tags = append(tags, "")
	}
	if g.marker != nil {
		if k, tag := g.marker(g.batchNo); k > 0 {
			for j := range k {
				custs = append(custs, 0)
				tags = append(tags, tag+"h"+string(rune('a'+j%26))+"|")
			}
		}
	}
	g.batchNo++

	b := &batch{history: make([]kv, 0, len(custs))}
	for j, c := range custs {
		k := make([]byte, 34)
		binary.BigEndian.PutUint16(k, partitionOf(c))
		put128(k[2:], c, 0x1d)
		binary.BigEndian.PutUint64(k[18:], g.t0+g.seq*100_000) // 10,000 events/s of event time
		binary.BigEndian.PutUint64(k[26:], mix(g.seq^0xe4e4))
		var v []byte
		if tags[j] != "" {
			v = g.markedValue(historyValue, tags[j])
		} else {
			v = g.randomValue(historyValue)
		}
		b.history = append(b.history, kv{k, v})
		g.offsets[partitionOf(c)]++
		g.seq++
	}

	// One upsert per distinct customer, with the marker if it is customer 0
	// carrying a tag in this batch.
	profileTag := ""
	for j, c := range custs {
		if c == 0 && tags[j] != "" {
			profileTag = tags[j][:len(tags[j])-3] + "p|"
		}
	}
	slices.Sort(custs)
	custs = slices.Compact(custs)
	b.profiles = make([]kv, 0, len(custs))
	for _, c := range custs {
		var v []byte
		if c == 0 && profileTag != "" {
			v = g.markedValue(profileValue, profileTag)
		} else {
			v = g.randomValue(profileValue)
		}
		b.profiles = append(b.profiles, kv{profileKey(c), v})
	}
	for p := range partitions {
		k := binary.BigEndian.AppendUint16(nil, uint16(p))
		v := binary.BigEndian.AppendUint64(nil, g.offsets[p])
		v = binary.BigEndian.AppendUint64(v, g.seq)
		b.positions = append(b.positions, kv{k, v})
	}
	cmp := func(a, b kv) int { return bytes.Compare(a.k, b.k) }
	slices.SortFunc(b.history, cmp)
	slices.SortFunc(b.profiles, cmp)
	return b, custs
}

// markWritten records that the customers' profiles are committed, so readers
// look up profiles that exist.
func (g *generator) markWritten(custs []uint64) {
	for _, c := range custs {
		g.written[c/64].Or(1 << (c % 64))
	}
}

func (g *generator) isWritten(c uint64) bool {
	return g.written[c/64].Load()&(1<<(c%64)) != 0
}

// preload calls apply with the bulk load that precedes the timed phase, in
// batches of chunk keys in key order: one profile for every customer, then
// history entries of uniformly drawn customers, older than any event of the
// timed phase. Keys are sorted as fixed-size arrays to keep the peak memory
// small.
func (g *generator) preload(history, chunk int, apply func(*batch) error) error {
	profiles := make([][18]byte, 0, g.n)
	for c := uint64(1); c < g.n; c++ {
		profiles = append(profiles, [18]byte(profileKey(c)))
	}
	slices.SortFunc(profiles, func(a, b [18]byte) int { return bytes.Compare(a[:], b[:]) })
	for i := 0; i < len(profiles); i += chunk {
		b := &batch{}
		for j := i; j < min(i+chunk, len(profiles)); j++ {
			b.profiles = append(b.profiles, kv{profiles[j][:], g.randomValue(profileValue)})
		}
		if err := apply(b); err != nil {
			return err
		}
	}
	profiles = nil

	hist := make([][34]byte, history)
	for i := range hist {
		c := g.pick()
		k := hist[i][:]
		binary.BigEndian.PutUint16(k, partitionOf(c))
		put128(k[2:], c, 0x1d)
		binary.BigEndian.PutUint64(k[18:], g.t0-uint64(history-i)*100_000)
		binary.BigEndian.PutUint64(k[26:], mix(uint64(i)^0x9e9e))
	}
	slices.SortFunc(hist, func(a, b [34]byte) int { return bytes.Compare(a[:], b[:]) })
	for i := 0; i < len(hist); i += chunk {
		b := &batch{}
		for j := i; j < min(i+chunk, len(hist)); j++ {
			b.history = append(b.history, kv{hist[j][:], g.randomValue(historyValue)})
		}
		if err := apply(b); err != nil {
			return err
		}
	}
	return nil
}

// markAll records every customer as written (after the preload).
func (g *generator) markAll() {
	for i := range g.written {
		g.written[i].Store(^uint64(0))
	}
}
