package ingest

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/nudge-dev/nudge"
	"github.com/nudge-dev/nudge/bus"
	"github.com/nudge-dev/nudge/shred"
	"github.com/nudge-dev/nudge/wal"
)

// Forwarder moves acknowledged events from the write-ahead log to the event
// log. It tails the WAL from disk (so a slow event log never holds ingest
// back while the disk has room), publishes one batch per partition per
// round, and after every SyncBytes forwarded makes the event log durable
// (bus.Log.Sync) and deletes the WAL segments it no longer needs.
//
// Each batch carries the WAL position of its last record as its
// ProducerPos. After a crash, Recover asks the event log for the last
// position stored in each partition and Run resends exactly the records
// after it: nothing acknowledged is lost, nothing is stored twice.
type Forwarder struct {
	wal    *wal.WAL
	log    bus.Log
	keys   *shred.Keyring
	logger *slog.Logger

	// MaxRoundBytes bounds the events one round holds in memory, and
	// MaxBatchBytes one published message (NATS refuses messages over its
	// max_payload, 1 MiB by default).
	MaxRoundBytes int
	MaxBatchBytes int
	// SyncBytes is how much is forwarded between two Syncs of the event log.
	SyncBytes int

	stored []uint64 // per partition: the last WAL position the event log holds
	free   [][]byte // batch buffers to reuse: the log keeps none after Append

	syncMu   sync.Mutex    // one sync at a time: the sync loop, Drain and PublishErasure
	syncKick chan struct{} // a round asks the sync loop for a sync

	mu        sync.Mutex
	pos       uint64        // the next WAL position to forward
	moved     chan struct{} // closed when pos moves
	unsynced  int
	syncedPos uint64
	failing   error // the last round of Run failed with it; nil once one succeeds
	syncErr   error // the last sync of the sync loop failed with it; nil once one succeeds
}

// NewForwarder makes a forwarder; call Recover before Run. The keyring gets
// back the keys that records carry (after a crash, the keyring file may lack
// them) and is synced before the WAL drops them.
func NewForwarder(w *wal.WAL, log bus.Log, keys *shred.Keyring, logger *slog.Logger) *Forwarder {
	return &Forwarder{
		wal: w, log: log, keys: keys, logger: logger,
		MaxRoundBytes: 8 << 20,
		MaxBatchBytes: 900 << 10,
		SyncBytes:     4 << 20,
		moved:         make(chan struct{}),
		syncKick:      make(chan struct{}, 1),
	}
}

// Recover learns what the event log already holds. Run then resends what
// the WAL holds beyond it.
func (f *Forwarder) Recover(ctx context.Context) error {
	f.stored = make([]uint64, f.log.Partitions())
	for p := range f.stored {
		pos, err := f.log.LastProducerPos(ctx, p)
		if err != nil {
			return fmt.Errorf("forwarder recovery, partition %d: %w", p, err)
		}
		f.stored[p] = pos
	}
	return nil
}

// Run forwards until ctx is done. It retries a failing event log with
// backoff; it returns only ctx's error or a malformed WAL record.
func (f *Forwarder) Run(ctx context.Context) error {
	// Syncs run beside the rounds: a sync (syncfs of the log's store, the
	// keyring, the WAL's truncation) takes tens of milliseconds, and rounds
	// waiting for it held every event's way to the consumers up that long
	// (time to trigger p99 85 ms at 10,000 events/s).
	var syncs sync.WaitGroup
	defer syncs.Wait()
	syncs.Go(func() { f.syncLoop(ctx) })
	backoff := newBackoff()
	for {
		end, changed := f.wal.Committed()
		if f.position() < end {
			// A round runs to its end even when ctx ends meanwhile: an append
			// cut short could store batches the forwarder never hears of,
			// and the next round, cut differently, would store them again.
			due, err := f.round(context.WithoutCancel(ctx))
			if due {
				select {
				case f.syncKick <- struct{}{}:
				default: // one is asked for already
				}
			}
			if err != nil {
				if errors.Is(err, errBadRecord) {
					return err
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
				f.logger.Warn("forwarding to the event log failed; retrying", "err", err)
				f.setFailing(err)
				if err := backoff.wait(ctx); err != nil {
					return err
				}
				// Part of the failed round may have been stored: ask the log,
				// so the retry (whose batches may be cut differently) resends
				// only what is missing.
				if err := f.Recover(ctx); err != nil {
					f.logger.Warn("asking the event log what it holds failed", "err", err)
				}
				continue
			}
			backoff.reset()
			f.setFailing(nil)
			continue
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Drain forwards everything committed to the WAL so far and syncs the event
// log: on shutdown, after intake has stopped.
func (f *Forwarder) Drain(ctx context.Context) error {
	// Ask the log what it holds: the last round of Run may have failed
	// after storing part of its batches.
	if f.stored != nil {
		if err := f.Recover(ctx); err != nil {
			return err
		}
	}
	for {
		end, _ := f.wal.Committed()
		if f.position() >= end {
			return f.sync(ctx)
		}
		due, err := f.round(ctx)
		if err != nil {
			return err
		}
		if due {
			if err := f.sync(ctx); err != nil {
				return err
			}
		}
	}
}

// WaitForwarded returns once every WAL record before pos is in the event
// log, so a reader can see what was acknowledged before it asked.
func (f *Forwarder) WaitForwarded(ctx context.Context, pos uint64) error {
	for {
		f.mu.Lock()
		cur, moved := f.pos, f.moved
		f.mu.Unlock()
		if cur >= pos {
			return nil
		}
		select {
		case <-moved:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Committed is the WAL position just past the last acknowledged record.
func (f *Forwarder) Committed() uint64 {
	end, _ := f.wal.Committed()
	return end
}

// Lag is how many bytes of acknowledged WAL records are not yet in the
// event log.
func (f *Forwarder) Lag() uint64 {
	pos := f.position() // first: it never passes the committed end
	end, _ := f.wal.Committed()
	return end - min(pos, end)
}

// Err is the error of Run's last round when it failed (Run is retrying),
// nil once a round succeeds.
func (f *Forwarder) Err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return errors.Join(f.failing, f.syncErr)
}

func (f *Forwarder) setFailing(err error) {
	f.mu.Lock()
	f.failing = err
	f.mu.Unlock()
}

func (f *Forwarder) position() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pos
}

var errRoundFull = errors.New("round full")

// round reads what the WAL holds past pos, up to MaxRoundBytes, and
// publishes it as batches of at most MaxBatchBytes per partition; due says
// that a sync is due.
func (f *Forwarder) round(ctx context.Context) (due bool, err error) {
	type pending struct {
		payload []byte
		last    uint64
	}
	open := make(map[int]*pending)
	var batches []bus.Batch
	total := 0
	closeBatch := func(p int) {
		b := open[p]
		batches = append(batches, bus.Batch{Partition: p, ProducerPos: b.last, Payload: b.payload})
		delete(open, p)
	}
	defer func() {
		for _, b := range batches {
			f.free = append(f.free, b.Payload[:0])
		}
	}()
	var badRecord error
	next, err := f.wal.Read(f.position(), func(pos uint64, rec []byte) error {
		if total > 0 && total+len(rec) > f.MaxRoundBytes {
			return errRoundFull
		}
		total += len(rec)
		var keyErr error
		err := eachEntry(rec, func(p int, payload []byte) {
			if p == keysEntry {
				if err := eachKey(payload, f.keys.Restore); err != nil && keyErr == nil {
					keyErr = err
				}
				return
			}
			if p >= len(f.stored) || pos <= f.stored[p] {
				return // already in the event log (or from another partition count)
			}
			b := open[p]
			if b != nil && len(b.payload)+len(payload) > f.MaxBatchBytes {
				closeBatch(p)
				b = nil
			}
			if b == nil {
				b = &pending{payload: f.buffer()}
				open[p] = b
			}
			b.payload = append(b.payload, payload...)
			b.last = pos
		})
		badRecord = cmp.Or(err, keyErr)
		return badRecord
	})
	if badRecord != nil {
		return false, badRecord
	}
	if err != nil && !errors.Is(err, errRoundFull) {
		return false, fmt.Errorf("read write-ahead log: %w", err)
	}
	for p := range f.log.Partitions() {
		if open[p] != nil {
			closeBatch(p)
		}
	}
	if len(batches) > 0 {
		if err := f.log.Append(ctx, batches); err != nil {
			return false, fmt.Errorf("append to event log: %w", err)
		}
		for _, b := range batches {
			f.stored[b.Partition] = b.ProducerPos
		}
	}
	f.mu.Lock()
	f.pos = next
	close(f.moved)
	f.moved = make(chan struct{})
	f.unsynced += total
	due = f.unsynced >= f.SyncBytes
	f.mu.Unlock()
	return due, nil
}

// syncLoop syncs when a round asks, until ctx is done. A failed sync is
// logged, marks the forwarder failing and is tried again at the next ask
// (the WAL keeps what is not synced).
func (f *Forwarder) syncLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.syncKick:
		}
		err := f.sync(context.WithoutCancel(ctx))
		if err != nil {
			f.logger.Warn("syncing the event log failed; retrying at the next round", "err", err)
		}
		f.mu.Lock()
		f.syncErr = err
		f.mu.Unlock()
	}
}

func (f *Forwarder) buffer() []byte {
	if n := len(f.free); n > 0 {
		b := f.free[n-1]
		f.free = f.free[:n-1]
		return b
	}
	return make([]byte, 0, f.MaxBatchBytes)
}

// sync makes the event log durable up to the current position, then lets
// the WAL drop what lies before it.
func (f *Forwarder) sync(ctx context.Context) error {
	f.syncMu.Lock()
	defer f.syncMu.Unlock()
	pos := f.position()
	if pos == f.syncedPos {
		return nil
	}
	if err := f.log.Sync(ctx); err != nil {
		return fmt.Errorf("sync event log: %w", err)
	}
	f.mu.Lock()
	f.unsynced = 0
	f.syncedPos = pos
	f.mu.Unlock()
	if err := f.keys.Sync(); err != nil {
		return fmt.Errorf("sync keyring: %w", err)
	}
	if err := f.wal.TruncateBefore(pos); err != nil {
		return fmt.Errorf("truncate write-ahead log: %w", err)
	}
	return nil
}

// PublishErasure stores an erasure event (profile.Engine.Erase has shredded
// the person's keys) in a new WAL segment, forwards it to the event log
// and syncs, which deletes every WAL segment before it: copies of the
// person's keys that records carried go with them.
func (f *Forwarder) PublishErasure(ctx context.Context, e nudge.Event, partition int) error {
	rec := binary.BigEndian.AppendUint16(nil, uint16(partition))
	rec = binary.BigEndian.AppendUint32(rec, 0)
	rec = nudge.AppendEncoded(rec, &e)
	binary.BigEndian.PutUint32(rec[2:], uint32(len(rec)-entryHeader))
	pos, err := f.wal.AppendInNewSegment(ctx, rec)
	if err != nil {
		return fmt.Errorf("store erasure: %w", err)
	}
	if err := f.WaitForwarded(ctx, pos+1); err != nil {
		return fmt.Errorf("forward erasure: %w", err)
	}
	return f.sync(ctx)
}
