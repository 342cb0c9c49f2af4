// Package bus defines nudge's event log: a durable, partitioned, replayable
// sequence of messages, each carrying a batch of encoded events of one
// partition. One customer's events always go to one partition, so they stay
// in order while different partitions are processed in parallel.
//
// The implementations live in sub-packages named for what they talk to
// (bus/jetstream: embedded or external NATS JetStream). Every implementation
// passes the shared suite in bus/bustest.
package bus

import (
	"context"
	"errors"
	"time"

	"github.com/cespare/xxhash/v2"
)

// Batch is what a producer appends: encoded events of one partition.
type Batch struct {
	Partition int
	// ProducerPos is the producer's own position for this batch, strictly
	// increasing per partition (ingest uses its write-ahead log position).
	// The log stores it with the message. A producer that resends after a
	// failed Append has the resent batches dropped if they were stored (within
	// the log's duplicate window, seconds); after a crash it asks
	// LastProducerPos and resends only what lies beyond.
	ProducerPos uint64
	Payload     []byte
}

// Message is one stored batch as a reader sees it.
type Message struct {
	Partition   int
	Seq         uint64    // position in the log: increasing, unique across partitions
	Time        time.Time // when the log stored it
	ProducerPos uint64
	Payload     []byte
}

// ReadOptions chooses what Read delivers.
type ReadOptions struct {
	// Partitions to read; nil or empty reads all of them.
	Partitions []int
	// FromSeq starts at the first message with Seq >= FromSeq.
	FromSeq uint64
	// FromTime, when FromSeq is zero and FromTime is set, starts at the first
	// message stored at or after FromTime. With neither, Read starts at the
	// beginning of the log.
	FromTime time.Time
	// Follow keeps reading new messages until ctx is done. Without it Read
	// returns nil once it has delivered every message stored when it began.
	Follow bool
}

// Handler processes one message. Handlers of one Read or Subscribe are never
// called concurrently.
type Handler func(ctx context.Context, m Message) error

// Log is a durable partitioned event log.
type Log interface {
	// Partitions is the fixed number of partitions, decided when the log was
	// created.
	Partitions() int

	// Append stores the batches and returns once the log has acknowledged
	// all of them. Batches of one partition are stored in the order given.
	// On error some batches may be stored; resending them all is safe (see
	// Batch.ProducerPos). The caller owns ctx.
	Append(ctx context.Context, batches []Batch) error

	// Sync makes every acknowledged batch survive a power cut. The embedded
	// log fsyncs its files; an external server answers for its own
	// durability (replication), so Sync returns nil there.
	Sync(ctx context.Context) error

	// LastProducerPos is the highest ProducerPos stored in the partition, or
	// zero when it holds none.
	LastProducerPos(ctx context.Context, partition int) (uint64, error)

	// LastSeq is the Seq of the last message stored, or zero for an empty log.
	LastSeq(ctx context.Context) (uint64, error)

	// Get returns the message with the given sequence, or an error wrapping
	// ErrNotFound.
	Get(ctx context.Context, seq uint64) (Message, error)

	// Read delivers messages in log order (so in order within each
	// partition) to h until h returns an error, ctx is done, or (without
	// Follow) the end is reached. It returns h's error, or ctx's error when
	// following.
	Read(ctx context.Context, opts ReadOptions, h Handler) error

	// Subscribe runs a durable consumer of the named group over the given
	// partitions (nil: all) until ctx is done, then returns ctx.Err(). The
	// group's position is kept by the log: a message is done once h returns
	// nil for it, and after a restart the group resumes after its last done
	// message. When h fails, the same message is retried, with backoff, and
	// the partition does not move on until it succeeds, so order is kept.
	Subscribe(ctx context.Context, group string, partitions []int, h Handler) error

	// Close releases the log; it does not wait for running Read or Subscribe
	// calls, whose contexts the caller cancels first.
	Close() error
}

// ErrNotFound is returned by Get for a sequence the log does not hold.
var ErrNotFound = errors.New("bus: no message at this sequence")

// PartitionOf maps a customer key to one of n partitions.
func PartitionOf(key string, n int) int {
	return int(xxhash.Sum64String(key) % uint64(n))
}
