package profile

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	"github.com/nudge-dev/nudge"
	"github.com/nudge-dev/nudge/bus"
	"github.com/nudge-dev/nudge/shred"
)

// Reactor is a consumer that runs inside the engine (journeys): it sees
// every applied event with the person's profile, and keeps its own state
// in extension keys through a Tx, which commit in the same atomic batch as
// the profile and the log position. A crash therefore replays the event
// to the reactor exactly when it replays it to the profile.
type Reactor interface {
	// React is called after e is applied to p.
	React(ctx context.Context, tx *Tx, p *Profile, e *nudge.Event) error
	// Merged is called when the profile with id from was merged into the
	// one with id to (or took a better id): state keyed by from moves.
	Merged(ctx context.Context, tx *Tx, from, to Ref) error
	// Erased is called when a person is erased: state of the profile goes.
	Erased(ctx context.Context, tx *Tx, er *Erasure) error
}

// Committer is implemented by reactors that want to know when what their
// transactions wrote is committed. A transaction writes into the batch of
// generation Tx.Gen; batches commit one at a time and in order, and
// Committed(gen) is called, under the engine's lock, once the batches
// through gen are in the store. (Later batches may hold writes already: a
// commit runs in the background while the next batch is written.) What it
// learns is visible to every read of the store that starts after it.
type Committer interface {
	Committed(gen uint64)
}

// SetReactor installs the reactor; call it before Run.
func (en *Engine) SetReactor(r Reactor) {
	en.mu.Lock()
	defer en.mu.Unlock()
	en.reactor = r
}

// Tx reads and writes extension keys within the engine's uncommitted
// batch: reads see the batch's writes, and those of a commit in flight.
// It is valid only during the call it was given to.
type Tx struct {
	en *Engine
	at LogRef // the event React was called with, zero outside React
}

// EventAt is where the log holds the event React was called with (zero
// outside React): a reactor keeps it instead of a copy of the event and
// reads the event back with Event when it needs it.
func (tx *Tx) EventAt() LogRef { return tx.at }

// Event reads the event at at from the log and opens its personal fields.
// The error wraps bus.ErrNotFound when the log no longer holds it (a
// retention limit), and shred.ErrShredded when its person was erased.
func (tx *Tx) Event(ctx context.Context, at LogRef) (*nudge.Event, error) {
	en := tx.en
	if en.log == nil {
		return nil, fmt.Errorf("event %d.%d: %w (the engine has no event log)", at.Seq, at.Index, bus.ErrNotFound)
	}
	// Events fetched together (timers of one batch firing) often share a
	// log message: the last few payloads are kept.
	if len(en.fetched) > 16 {
		clear(en.fetched)
	}
	e, err := en.eventAt(ctx, at, en.fetched)
	if err != nil {
		return nil, fmt.Errorf("event %d.%d: %w", at.Seq, at.Index, err)
	}
	if e.Subject != "" {
		if err := shred.OpenEvent(en.keys, &e); err != nil {
			return nil, fmt.Errorf("event %d.%d: %w", at.Seq, at.Index, err)
		}
	}
	return &e, nil
}

// Get returns the value of an extension key. The caller must not modify
// it.
func (tx *Tx) Get(ctx context.Context, key []byte) ([]byte, bool, error) {
	en := tx.en
	if v, ok := en.pendingExt(string(key)); ok {
		return v, v != nil, nil
	}
	// What is neither in the batch nor in flight is in the store, and the
	// cache holds the store's values: every commit that lands updates it
	// (under the lock this runs under).
	if v, ok := en.ext[string(key)]; ok {
		return v, v != nil, nil
	}
	v, ok, err := en.store.Ext(ctx, key)
	if err != nil {
		return nil, false, err
	}
	en.ext[string(key)] = v // nil when !ok
	return v, ok, nil
}

// pendingExt returns the uncommitted write of an extension key (nil: a
// delete): the batch's, else that of the commit in flight.
func (en *Engine) pendingExt(k string) ([]byte, bool) {
	if v, ok := en.batch.Ext[k]; ok {
		return v, true
	}
	if en.inflight != nil {
		v, ok := en.inflight.batch.Ext[k]
		return v, ok
	}
	return nil, false
}

// Set writes an extension key; value must not be nil.
func (tx *Tx) Set(key, value []byte) {
	tx.en.batch.Ext[string(key)] = slices.Clone(value)
}

// Delete removes an extension key.
func (tx *Tx) Delete(key []byte) {
	tx.en.batch.Ext[string(key)] = nil
}

// Scan calls fn for the extension keys in [from, to) in key order, the
// batch's writes included (to empty: to the end).
func (tx *Tx) Scan(ctx context.Context, from, to []byte, fn func(key, value []byte) error) error {
	in := func(k string) bool {
		return k >= string(from) && (len(to) == 0 || k < string(to))
	}
	var pending []string
	for k := range tx.en.batch.Ext {
		if in(k) {
			pending = append(pending, k)
		}
	}
	if c := tx.en.inflight; c != nil {
		for k := range c.batch.Ext {
			if _, dup := tx.en.batch.Ext[k]; !dup && in(k) {
				pending = append(pending, k)
			}
		}
	}
	slices.Sort(pending)
	emitPending := func(upTo []byte) error { // pending keys before upTo (all when nil)
		for len(pending) > 0 && (upTo == nil || pending[0] < string(upTo)) {
			k := pending[0]
			pending = pending[1:]
			if v, _ := tx.en.pendingExt(k); v != nil {
				if err := fn([]byte(k), v); err != nil {
					return err
				}
			}
		}
		return nil
	}
	err := tx.en.store.ScanExt(ctx, from, to, func(k, v []byte) error {
		if err := emitPending(k); err != nil {
			return err
		}
		if len(pending) > 0 && bytes.Equal([]byte(pending[0]), k) {
			pending = pending[1:] // the batch's write wins
			if w, _ := tx.en.pendingExt(string(k)); w != nil {
				return fn(k, w)
			}
			return nil
		}
		return fn(k, v)
	})
	if err != nil {
		return err
	}
	return emitPending(nil)
}

// Gen is the generation of the batch the transaction writes into (see
// Committer).
func (tx *Tx) Gen() uint64 { return tx.en.gen }

// Urgent asks for the batch to be committed as soon as it can be, instead
// of at the next flush: for state that others wait on (a send job for the
// delivery workers). Do commits it before it returns; the consumer (Run)
// commits it in the background, at once or, when a commit is in flight,
// as soon as that one ends, so that under load one commit carries the
// urgent writes of many messages.
func (tx *Tx) Urgent() { tx.en.urgent = true }

// Durable is Urgent, and the commit reaches stable storage before Do
// returns: for state that no event replay can rebuild (a send job marked
// in flight before its provider is called).
func (tx *Tx) Durable() {
	tx.en.urgent = true
	tx.en.batch.Durable = true
}

// Profile returns the profile with the given id, or nil.
func (tx *Tx) Profile(ctx context.Context, id Ref) (*Profile, error) {
	return tx.en.load(ctx, id, true)
}

// Touch marks a profile changed (after its State was updated through
// Profile), so that the batch writes it.
func (tx *Tx) Touch(p *Profile) { tx.en.dirty[p.ID.P] = p }

// Do runs fn with a Tx under the engine's lock, as if it were reacting to
// an event (timers that fire, changes from the admin API), and when fn
// called Urgent (or Durable) returns once what it wrote is committed. The
// commit runs without the lock, so the consumer applies the log meanwhile
// (the send workers record outcomes this way, and a durable commit waits
// for the disk).
func (en *Engine) Do(ctx context.Context, fn func(tx *Tx) error) error {
	en.mu.Lock()
	defer en.mu.Unlock()
	if en.err != nil {
		return en.err
	}
	if err := fn(&en.tx); err != nil {
		return err
	}
	if !en.urgent {
		return nil
	}
	gen := en.gen // the batch fn wrote into
	for en.committed < gen {
		if en.inflight == nil {
			en.urgent = false
			if err := en.commitLocked(ctx, true); err != nil {
				return err
			}
			if en.inflight == nil {
				return nil // the batch was empty
			}
		}
		done := en.inflight.done // the commit is reused once finished
		en.mu.Unlock()
		<-done
		en.mu.Lock()
		// Run may have finished it already (it is told by ended).
		if err := en.pollCommitLocked(); err != nil {
			return err
		}
	}
	return nil
}
