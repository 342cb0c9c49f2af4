package profile

import (
	"context"
	"errors"
	"time"

	"github.com/nudge-dev/nudge/shred"
)

// Store keeps profiles, the identity graph, every person's event history
// and the consumer's log positions. Everything in it is keyed by log
// partition, the way the log is, so that later several nodes can each own
// some partitions of one shared store (PostgreSQL) without a new engine.
//
// It holds no personal data in the clear: identifiers appear as pseudonyms,
// and profile contents and events are sealed under their person's keys
// (package shred). The implementation: profile/pebblestore; the engine's
// tests run against it.
type Store interface {
	// Positions returns the n positions last committed with Batch.Positions
	// (zero for none). The engine keeps one per partition, the sequence of
	// the last message of that partition whose effects are committed, and
	// one more: the sequence through which the whole log is.
	Positions(ctx context.Context, n int) ([]uint64, error)
	// Link returns the profile an identifier belongs to.
	Link(ctx context.Context, id Ref) (profile Ref, ok bool, err error)
	// Profile returns a stored profile record.
	Profile(ctx context.Context, id Ref) (*Record, bool, error)
	// History returns up to limit events of the subjects, newest first,
	// older than before (all when before is zero).
	History(ctx context.Context, subjects []Ref, before Cursor, limit int) ([]Entry, error)
	// Ext returns the value of an extension key: state of another consumer
	// (journey runs, timers) that commits with the profiles.
	Ext(ctx context.Context, key []byte) ([]byte, bool, error)
	// ScanExt calls fn for the extension keys in [from, to), in key order.
	ScanExt(ctx context.Context, from, to []byte, fn func(key, value []byte) error) error
	// Commit applies a batch atomically: after a crash either all of it is
	// there or none of it. It does not modify b, which others may read
	// while it runs (the engine commits in the background).
	Commit(ctx context.Context, b *Batch) error
	Close() error
}

// Ref names an identifier or a profile: its pseudonym and the log
// partition of its plaintext.
type Ref struct {
	P         shred.Pseudonym
	Partition int
}

// Record is a profile as stored: the pseudonyms of its identities in the
// clear (the store indexes them), the rest sealed under the profile's key
// (the key of the identifier whose pseudonym is the profile id).
type Record struct {
	ID         Ref
	Identities []Ref
	Sealed     []byte
}

// Cursor is a position in a history: event time, then a hash of the
// message id.
type Cursor struct {
	Time time.Time
	Hash uint64
}

// IsZero reports whether c is the zero cursor (the newest end).
func (c Cursor) IsZero() bool { return c.Time.IsZero() && c.Hash == 0 }

// Entry is one event in a history, under the identifier it arrived with:
// where the log holds it. Histories point into the log rather than copy
// it: the log keeps every event already, and a copy per event was most of
// what the store wrote (decision 4 in docs/ARCHITECTURE.md).
type Entry struct {
	Subject Ref
	At      Cursor
	Log     LogRef
}

// LogRef is the place of one event in the log: the message and the
// event's index in its payload.
type LogRef struct {
	Seq   uint64
	Index uint32
}

// Batch is one atomic change of the store.
type Batch struct {
	Put       []*Record
	Delete    []Ref       // profile records to delete
	Link      map[Ref]Ref // identifier -> profile
	Unlink    []Ref
	Events    []Entry
	Forget    []Ref             // subjects whose whole history goes
	Positions []uint64          // see Store.Positions; zero entries are left as they are
	Ext       map[string][]byte // extension keys to set; a nil value deletes
	// Durable asks for the commit to reach stable storage before Commit
	// returns (fsync). Without it a commit survives a crash of nudge only
	// once the store has written it out, which the log's replay makes good
	// for everything derived from events; Durable is for the rest.
	Durable bool
}

// Reset empties b for reuse.
func (b *Batch) Reset() {
	clear(b.Put)
	b.Put = b.Put[:0]
	b.Delete = b.Delete[:0]
	b.Link = emptied(b.Link)
	b.Unlink = b.Unlink[:0]
	clear(b.Events)
	b.Events = b.Events[:0]
	b.Forget = b.Forget[:0]
	clear(b.Positions)
	b.Ext = emptied(b.Ext)
	b.Durable = false
}

// emptied returns m empty, for reuse: cleared when it is small, else a
// new map. A cleared map keeps its capacity, and ranging over it costs
// that capacity, not its length: 190 µs for 10 entries in a map that once
// held 100,000 (Go 1.26). A batch, its profiles and their deletions are
// ranged over at every commit, and a commit of a few urgent writes often
// follows one of a second's worth.
func emptied[M ~map[K]V, K comparable, V any](m M) M {
	if len(m) > 1024 {
		return make(M)
	}
	clear(m)
	return m
}

// Empty reports whether b changes nothing.
func (b *Batch) Empty() bool {
	if len(b.Put)+len(b.Delete)+len(b.Link)+len(b.Unlink)+len(b.Events)+len(b.Forget)+len(b.Ext) > 0 {
		return false
	}
	for _, p := range b.Positions {
		if p != 0 {
			return false
		}
	}
	return true
}

// ErrCorrupt is returned when the store holds what it cannot decode.
var ErrCorrupt = errors.New("profile store: corrupt entry")
