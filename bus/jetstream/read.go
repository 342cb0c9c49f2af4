package jetstream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nudge-dev/nudge/bus"
)

// Read delivers messages through an ordered consumer, which the server
// deletes when Read returns (or, failing that, after it is idle for a while).
//
// Without Follow, Read first takes the stream's last sequence and stops after
// the last message at or below it: when a message's sequence reaches it, or
// when the consumer reports that no matching message is pending.
func (l *Log) Read(ctx context.Context, opts bus.ReadOptions, h bus.Handler) error {
	parts, err := l.partitionSet(opts.Partitions)
	if err != nil {
		return err
	}

	occ := jetstream.OrderedConsumerConfig{
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		InactiveThreshold: time.Minute,
	}
	switch {
	case opts.FromSeq > 0:
		occ.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		occ.OptStartSeq = opts.FromSeq
	case !opts.FromTime.IsZero():
		t := opts.FromTime
		occ.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		occ.OptStartTime = &t
	}
	// want filters client-side, where the server cannot (several filter
	// subjects need 2.10).
	var want []bool
	switch {
	case len(parts) == l.cfg.Partitions:
		// No filter: the stream holds only partition subjects.
	case len(parts) == 1:
		occ.FilterSubjects = []string{l.subjects[parts[0]]}
	case l.multiFilter:
		for _, p := range parts {
			occ.FilterSubjects = append(occ.FilterSubjects, l.subjects[p])
		}
	default:
		want = make([]bool, l.cfg.Partitions)
		for _, p := range parts {
			want[p] = true
		}
	}

	var end uint64
	if !opts.Follow {
		info, err := l.stream.Info(ctx)
		if err != nil {
			return fmt.Errorf("jetstream: read: stream info: %w", err)
		}
		end = info.State.LastSeq
		if info.State.Msgs == 0 || opts.FromSeq > end {
			return nil
		}
	}

	cons, err := l.js.OrderedConsumer(ctx, l.cfg.Stream, occ)
	if err != nil {
		return fmt.Errorf("jetstream: read: create consumer: %w", err)
	}
	defer l.deleteOrdered(cons)
	if !opts.Follow {
		if ci := cons.CachedInfo(); ci != nil && ci.NumPending == 0 {
			return nil
		}
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("jetstream: read: %w", err)
	}
	defer it.Stop()

	for {
		msg, err := l.nextRead(ctx, it, opts.Follow)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !opts.Follow && errors.Is(err, context.DeadlineExceeded) {
				// Idle: done if nothing matching is left to deliver.
				ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
				ci, ierr := cons.Info(ictx)
				cancel()
				if ierr == nil && ci.NumPending == 0 {
					return nil
				}
				continue
			}
			return fmt.Errorf("jetstream: read: %w", err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("jetstream: read: %w", err)
		}
		seq := md.Sequence.Stream
		if !opts.Follow && seq > end {
			return nil
		}
		if p, ok := l.partitionOf(msg.Subject()); ok && (want == nil || want[p]) {
			m := bus.Message{
				Partition:   p,
				Seq:         seq,
				Time:        md.Timestamp,
				ProducerPos: producerPos(msg.Headers()),
				Payload:     msg.Data(),
			}
			if err := h(ctx, m); err != nil {
				return err
			}
		}
		if !opts.Follow && (seq >= end || md.NumPending == 0) {
			return nil
		}
	}
}

// nextRead waits for the next message: until ctx ends when following, else
// for at most readIdle (then it returns context.DeadlineExceeded with ctx
// still live).
func (l *Log) nextRead(ctx context.Context, it jetstream.MessagesContext, follow bool) (jetstream.Msg, error) {
	if follow {
		return it.Next(jetstream.NextContext(ctx))
	}
	nctx, cancel := context.WithTimeout(ctx, readIdle)
	defer cancel()
	return it.Next(jetstream.NextContext(nctx))
}

// deleteOrdered deletes the ordered consumer's current server-side consumer
// rather than leaving it to expire.
func (l *Log) deleteOrdered(cons jetstream.Consumer) {
	ci := cons.CachedInfo()
	if ci == nil || l.nc.IsClosed() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := l.js.DeleteConsumer(ctx, l.cfg.Stream, ci.Name)
	if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) && !errors.Is(err, nats.ErrConnectionClosed) {
		l.log.Debug("delete read consumer", "consumer", ci.Name, "err", err)
	}
}
