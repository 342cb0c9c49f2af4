package jetstream

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nudge-dev/nudge/bus"
)

// Append publishes the batches asynchronously, in order, on the log's one
// connection (so the server stores each partition's batches in the order
// given) and waits for every acknowledgement. Each message carries the id
// "<partition>-<ProducerPos>", so a batch resent within DuplicateWindow is
// acknowledged without being stored again.
//
// At most 4096 publishes are in flight across all Append calls; an Append
// that would exceed that first waits for its own oldest acknowledgements.
// When ctx ends, Append stops publishing and returns ctx.Err(); what it
// published may or may not be stored.
//
// Publishing stops at the first error; batches already in flight may still be
// stored. If the server rejects a batch but stores a later one of the same
// partition (it does not in normal operation), resending puts the rejected
// batch after the later one.
func (l *Log) Append(ctx context.Context, batches []bus.Batch) error {
	for i := range batches {
		if p := batches[i].Partition; p < 0 || p >= l.cfg.Partitions {
			return fmt.Errorf("jetstream: append: batch %d: partition %d out of range [0,%d)", i, p, l.cfg.Partitions)
		}
	}
	if len(batches) == 0 {
		return ctx.Err()
	}

	type inflight struct {
		fut jetstream.PubAckFuture
		b   *bus.Batch
	}
	pending := make([]inflight, 0, min(len(batches), maxPendingAcks))
	head := 0
	var firstErr error
	setErr := func(err error) {
		if firstErr == nil {
			firstErr = err
		}
	}
	// waitOldest waits for the oldest of this call's acknowledgements and
	// frees its slot; false when ctx ended first.
	waitOldest := func() bool {
		f := pending[head]
		select {
		case <-f.fut.Ok():
		case err := <-f.fut.Err():
			setErr(fmt.Errorf("jetstream: append partition %d pos %d: %w", f.b.Partition, f.b.ProducerPos, err))
		case <-ctx.Done():
			return false
		}
		pending[head] = inflight{}
		head++
		<-l.pubSlots
		return true
	}

	idBuf := make([]byte, 0, 48)
publish:
	for i := range batches {
		if firstErr != nil {
			break
		}
		// Take a slot in the shared window; if none is free, wait for our own
		// acknowledgements first (they always come), else for anyone's.
		for acquired := false; !acquired; {
			select {
			case l.pubSlots <- struct{}{}:
				acquired = true
				continue
			default:
			}
			if head < len(pending) {
				if !waitOldest() {
					break publish
				}
				if firstErr != nil {
					break publish
				}
				continue
			}
			select {
			case l.pubSlots <- struct{}{}:
				acquired = true
			case <-ctx.Done():
				break publish
			}
		}
		if err := ctx.Err(); err != nil {
			<-l.pubSlots
			break
		}

		b := &batches[i]
		idBuf = strconv.AppendInt(idBuf[:0], int64(b.Partition), 10)
		idBuf = append(idBuf, '-')
		idBuf = strconv.AppendUint(idBuf, b.ProducerPos, 10)
		msg := &nats.Msg{
			Subject: l.subjects[b.Partition],
			Data:    b.Payload,
			Header: nats.Header{
				jetstream.MsgIDHeader: []string{string(idBuf)},
				ProducerPosHeader:     []string{strconv.FormatUint(b.ProducerPos, 10)},
			},
		}
		// No retries on "no responders": a retried batch could be stored
		// after a later batch of its partition. The caller resends instead.
		fut, err := l.js.PublishMsgAsync(msg, jetstream.WithRetryAttempts(0))
		if err != nil {
			<-l.pubSlots
			setErr(fmt.Errorf("jetstream: append partition %d pos %d: %w", b.Partition, b.ProducerPos, err))
			break
		}
		pending = append(pending, inflight{fut: fut, b: b})
	}

	for head < len(pending) {
		if !waitOldest() {
			break
		}
	}
	if head < len(pending) {
		// ctx ended: free the remaining slots as their acknowledgements (or
		// the publish timeouts) arrive.
		rest := pending[head:]
		go func() {
			for _, f := range rest {
				select {
				case <-f.fut.Ok():
				case <-f.fut.Err():
				}
				<-l.pubSlots
			}
		}()
	}
	if firstErr == nil && head < len(batches) {
		// ctx ended before every batch was acknowledged.
		firstErr = ctx.Err()
	}
	return firstErr
}

// LastProducerPos is the ProducerPos of the partition's last message, zero
// when it holds none.
func (l *Log) LastProducerPos(ctx context.Context, partition int) (uint64, error) {
	if partition < 0 || partition >= l.cfg.Partitions {
		return 0, fmt.Errorf("jetstream: partition %d out of range [0,%d)", partition, l.cfg.Partitions)
	}
	m, err := l.stream.GetLastMsgForSubject(ctx, l.subjects[partition])
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("jetstream: last message of partition %d: %w", partition, err)
	}
	return producerPos(m.Header), nil
}

// LastSeq is the sequence of the last message stored in the log (zero when
// none ever was): every message appended before the call has a Seq at or
// below it, every one appended after it a higher Seq. Not part of bus.Log
// (yet); cmd/nudge uses it as the dedup snapshot mark.
func (l *Log) LastSeq(ctx context.Context) (uint64, error) {
	info, err := l.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("jetstream: stream info: %w", err)
	}
	return info.State.LastSeq, nil
}

// Get returns the message with the given sequence.
func (l *Log) Get(ctx context.Context, seq uint64) (bus.Message, error) {
	m, err := l.stream.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return bus.Message{}, fmt.Errorf("jetstream: message %d: %w", seq, bus.ErrNotFound)
	}
	if err != nil {
		return bus.Message{}, fmt.Errorf("jetstream: message %d: %w", seq, err)
	}
	p, ok := l.partitionOf(m.Subject)
	if !ok {
		return bus.Message{}, fmt.Errorf("jetstream: message %d: subject %q is not a partition of this log", seq, m.Subject)
	}
	return bus.Message{Partition: p, Seq: m.Sequence, Time: m.Time, ProducerPos: producerPos(m.Header), Payload: m.Data}, nil
}
