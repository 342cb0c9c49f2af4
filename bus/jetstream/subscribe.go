package jetstream

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nudge-dev/nudge/bus"
)

// ConsumerName is the durable consumer of group for one partition. A
// group's partitions are separate consumers so that they can later be spread
// over several nodes.
func ConsumerName(group string, partition int) string {
	return group + "-p" + strconv.Itoa(partition)
}

// Subscribe runs one durable pull consumer per partition ("<group>-p<N>",
// created on first use at the start of the partition) with explicit acks and
// at most one unacknowledged message, so the server never hands out a
// partition's next message before the previous one is done, even after a
// redelivery. Each partition has a goroutine that fetches; the handler calls
// are serialised by a mutex, so h is never called concurrently. A message is
// acknowledged (synchronously) once h returns nil; while h fails, the same
// message is retried with exponential backoff (100 ms doubling to 5 s).
//
// While a message is being handled Subscribe keeps telling the server so; when
// ctx ends it gives back the messages delivered but not handled, and the next
// Subscribe of the group gets them at once. If the process dies instead, or
// the log is closed (the server keeps no given-back state across a restart),
// or the server is older than 2.10 (it may hand a given-back message to the
// finished subscription's pull request), the partition's pending message is
// redelivered after the consumer's AckWait (10 s).
//
// Subscribe returns ctx.Err() once ctx ends, or an error when a consumer
// cannot be created or is deleted under it, or the connection is closed.
func (l *Log) Subscribe(ctx context.Context, group string, partitions []int, h bus.Handler) error {
	if group == "" || strings.ContainsAny(group, " \t\r\n.*>/\\") {
		return fmt.Errorf("jetstream: invalid group name %q", group)
	}
	parts, err := l.partitionSet(partitions)
	if err != nil {
		return err
	}
	consumers := make([]jetstream.Consumer, len(parts))
	for i, p := range parts {
		c, err := l.js.CreateOrUpdateConsumer(ctx, l.cfg.Stream, jetstream.ConsumerConfig{
			Durable:       ConsumerName(group, p),
			Description:   fmt.Sprintf("nudge group %s, partition %d", group, p),
			DeliverPolicy: jetstream.DeliverAllPolicy,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       l.ackWait,
			MaxDeliver:    -1,
			FilterSubject: l.subjects[p],
			MaxAckPending: 1,
			ReplayPolicy:  jetstream.ReplayInstantPolicy,
		})
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("jetstream: subscribe %s: consumer %s: %w", group, ConsumerName(group, p), err)
		}
		consumers[i] = c
	}

	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		handlerMu sync.Mutex
		wg        sync.WaitGroup
	)
	for i, p := range parts {
		wg.Go(func() {
			ps := &partitionSub{
				l: l, group: group, partition: p, cons: consumers[i],
				h: h, handlerMu: &handlerMu,
			}
			if err := ps.run(runCtx); err != nil {
				cancel(err)
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	return context.Cause(runCtx)
}

type partitionSub struct {
	l         *Log
	group     string
	partition int
	cons      jetstream.Consumer
	h         bus.Handler
	handlerMu *sync.Mutex
}

// run consumes the partition until ctx ends (nil) or a terminal error.
func (s *partitionSub) run(ctx context.Context) error {
	// One message in flight at a time (MaxAckPending 1): a small pull batch.
	it, err := s.cons.Messages(jetstream.PullMaxMessages(8))
	if err != nil {
		return fmt.Errorf("jetstream: subscribe %s partition %d: %w", s.group, s.partition, err)
	}
	defer it.Stop()

	var (
		lastDone uint64        // stream seq of the last message handled
		inHand   jetstream.Msg // delivered, not handled, when ctx ended
	)
	// On a stop, give back what was delivered but not handled, so that the
	// next subscriber gets it at once rather than after AckWait.
	defer func() {
		if ctx.Err() != nil {
			s.giveBack(it, inHand, lastDone)
		}
	}()
	errDelay := s.l.retryMin
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) ||
				errors.Is(err, jetstream.ErrConsumerDeleted) ||
				errors.Is(err, jetstream.ErrBadRequest) {
				return fmt.Errorf("jetstream: subscribe %s partition %d: %w", s.group, s.partition, err)
			}
			// Missing heartbeats, leadership changes...: the iterator
			// carries on by itself.
			s.l.log.Debug("subscribe: fetch", "group", s.group, "partition", s.partition, "err", err)
			if !sleep(ctx, errDelay) {
				return nil
			}
			errDelay = nextDelay(errDelay, s.l.retryMax)
			continue
		}
		errDelay = s.l.retryMin

		md, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("jetstream: subscribe %s partition %d: %w", s.group, s.partition, err)
		}
		seq := md.Sequence.Stream
		if seq <= lastDone {
			// Redelivered after we handled it (its ack was lost or came
			// after AckWait): acknowledge again and move on.
			s.ack(ctx, msg, seq)
			continue
		}
		m := bus.Message{
			Partition:   s.partition,
			Seq:         seq,
			Time:        md.Timestamp,
			ProducerPos: producerPos(msg.Headers()),
			Payload:     msg.Data(),
		}
		if !s.handle(ctx, msg, m) {
			inHand = msg
			return nil
		}
		lastDone = seq
		s.ack(ctx, msg, seq)
	}
}

// giveBack stops the iterator, letting what is already on its way arrive,
// and then negatively acknowledges every message not yet handled. Only then:
// a message given back while the pull request is still open would come right
// back to it.
func (s *partitionSub) giveBack(it jetstream.MessagesContext, inHand jetstream.Msg, lastDone uint64) {
	if s.l.nc.IsClosed() {
		return
	}
	it.Drain()
	var back []jetstream.Msg
	if inHand != nil {
		back = append(back, inHand)
	}
	for {
		msg, err := it.Next(jetstream.NextMaxWait(time.Second))
		if err != nil {
			break
		}
		if md, err := msg.Metadata(); err == nil && md.Sequence.Stream <= lastDone {
			_ = msg.Ack()
		} else {
			back = append(back, msg)
		}
	}
	for _, msg := range back {
		_ = msg.Nak()
	}
}

// keepAlive tells the server, every AckWait/3 until stopped, that msg is
// still being worked on, so that a slow or retried handler does not get it
// redelivered.
func keepAlive(msg jetstream.Msg, ackWait time.Duration) (stop func()) {
	var (
		mu      sync.Mutex
		stopped bool
		t       *time.Timer
	)
	every := ackWait / 3
	mu.Lock()
	t = time.AfterFunc(every, func() {
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			_ = msg.InProgress()
			t.Reset(every)
		}
	})
	mu.Unlock()
	return func() {
		mu.Lock()
		stopped = true
		t.Stop()
		mu.Unlock()
	}
}

// handle calls h until it succeeds (true) or ctx ends (false).
func (s *partitionSub) handle(ctx context.Context, msg jetstream.Msg, m bus.Message) bool {
	defer keepAlive(msg, s.l.ackWait)()
	delay := s.l.retryMin
	for attempt := 1; ; attempt++ {
		s.handlerMu.Lock()
		if ctx.Err() != nil {
			s.handlerMu.Unlock()
			return false
		}
		err := s.h(ctx, m)
		s.handlerMu.Unlock()
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		s.l.log.Warn("subscribe: handler failed, retrying",
			"group", s.group, "partition", s.partition, "seq", m.Seq,
			"attempt", attempt, "retry_in", delay, "err", err)
		if !sleep(ctx, delay) {
			return false
		}
		delay = nextDelay(delay, s.l.retryMax)
	}
}

// ack acknowledges synchronously, so that a restart resumes after the
// message. It retries while ctx lives; the first attempt is made even when
// ctx has just ended (the handler has succeeded). If the ack is lost anyway,
// the server redelivers the message after AckWait or on resume, and run skips
// it.
func (s *partitionSub) ack(ctx context.Context, msg jetstream.Msg, seq uint64) {
	delay := s.l.retryMin
	for {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		err := msg.DoubleAck(actx)
		cancel()
		if err == nil || errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
			return
		}
		if ctx.Err() != nil {
			return
		}
		s.l.log.Warn("subscribe: ack failed, retrying",
			"group", s.group, "partition", s.partition, "seq", seq, "err", err)
		if !sleep(ctx, delay) {
			return
		}
		delay = nextDelay(delay, s.l.retryMax)
	}
}

func nextDelay(d, max time.Duration) time.Duration {
	d *= 2
	if d > max || d <= 0 {
		return max
	}
	return d
}

// sleep waits for d; false if ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
