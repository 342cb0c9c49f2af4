package journey

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nudge-dev/nudge/channel"
	"github.com/nudge-dev/nudge/profile"
	"github.com/nudge-dev/nudge/shred"
)

// Send jobs (the outbox). A send step renders its message and writes it as
// a job, jq/<due>/<job id>, in the same transaction as the run's new state,
// and asks the engine to commit at once (Tx.Urgent). The dispatcher reads
// jobs from the store, so it only sees committed ones, delivers them
// through their channel, and records each outcome in an engine
// transaction that deletes the job (delivered, or failed for good) or
// moves it to its next attempt's due time. A crash after a delivery and
// before its outcome is recorded leaves the job in place: it is delivered
// again after the restart, with the same idempotency key.

// jobHeader is the part of a job in the clear: whose it is (an erasure
// deletes the person's jobs without opening them), and which step made it
// (its stats).
type jobHeader struct {
	ref      profile.Ref
	journey  string
	version  int
	step     string
	attempts int
	sealed   bool
	body     []byte
}

const jobV1 = 1

func (h *jobHeader) encode() []byte {
	var w wbuf
	w.byte(jobV1)
	w.uvarint(uint64(h.ref.Partition))
	w.b = append(w.b, h.ref.P[:]...)
	w.str(h.journey)
	w.varint(int64(h.version))
	w.str(h.step)
	w.uvarint(uint64(h.attempts))
	w.bool(h.sealed)
	w.bytes(h.body)
	return w.b
}

func parseJobHeader(v []byte) (*jobHeader, error) {
	r := rbuf{b: v}
	if r.byte() != jobV1 {
		return nil, errCorrupt
	}
	h := &jobHeader{}
	h.ref.Partition = int(r.uvarint())
	if len(r.b) < len(h.ref.P) {
		return nil, errCorrupt
	}
	copy(h.ref.P[:], r.b)
	r.b = r.b[len(h.ref.P):]
	h.journey, h.version, h.step = r.str(), int(r.varint()), r.str()
	h.attempts = int(r.uvarint())
	h.sealed = r.bool()
	h.body = r.bytes()
	if r.err == nil && len(r.b) != 0 {
		return nil, errCorrupt
	}
	return h, r.err
}

func (rt *Runtime) encodeJob(ref profile.Ref, m *channel.Message, attempts int) ([]byte, error) {
	var w wbuf
	w.str(m.IdempotencyKey)
	w.str(m.Channel)
	w.str(m.Variant)
	w.str(m.Recipient.ProfileID)
	w.count(len(m.Recipient.Identifiers))
	for _, k := range sortedKeys(m.Recipient.Identifiers) {
		w.str(k)
		w.str(m.Recipient.Identifiers[k])
	}
	w.count(len(m.Fields))
	for _, k := range sortedKeys(m.Fields) {
		w.str(k)
		w.str(m.Fields[k])
	}
	w.bool(m.Transactional)
	w.time(m.CreatedAt)
	w.time(m.TriggeredAt)
	h := jobHeader{ref: ref, journey: m.Journey, version: m.Version, step: m.Step, attempts: attempts, body: w.b}
	if rt.cfg.Keys != nil {
		sealed, err := rt.seal(ref.P, w.b)
		if err != nil {
			return nil, err
		}
		h.sealed, h.body = true, sealed
	}
	return h.encode(), nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// decodeJob opens a job; shred.ErrShredded when its person was erased.
func (rt *Runtime) decodeJob(h *jobHeader) (*channel.Message, error) {
	body := h.body
	if h.sealed {
		if rt.cfg.Keys == nil {
			return nil, errors.New("journey: a send job is sealed and the runtime has no keyring")
		}
		var err error
		if body, err = rt.cfg.Keys.Open(nil, h.ref.P, body); err != nil {
			return nil, err
		}
	}
	r := rbuf{b: body}
	m := &channel.Message{
		Journey: h.journey, Version: h.version, Step: h.step,
		IdempotencyKey: r.str(), Channel: r.str(), Variant: r.str(),
	}
	m.Recipient.ProfileID = r.str()
	n := r.count()
	m.Recipient.Identifiers = make(map[string]string, n)
	for range n {
		k := r.str()
		m.Recipient.Identifiers[k] = r.str()
	}
	n = r.count()
	m.Fields = make(map[string]string, n)
	for range n {
		k := r.str()
		m.Fields[k] = r.str()
	}
	m.Transactional = r.bool()
	m.CreatedAt = r.time()
	m.TriggeredAt = r.time()
	if r.err != nil {
		return nil, fmt.Errorf("journey: send job: %w", r.err)
	}
	return m, nil
}

// Deliver sends the jobs due at the clock's now (one round: at most Batch
// of them, SendWorkers at a time) and records their outcomes; it returns
// how many it handled. Run calls it; tests driving a fake clock call it
// directly. Rounds never overlap.
func (rt *Runtime) Deliver(ctx context.Context) (int, error) {
	_, n, err := rt.deliver(ctx)
	return n, err
}

type delivery struct {
	key  []byte
	id   runID
	h    *jobHeader
	m    *channel.Message
	err  error
	drop bool // erased or unreadable: deleted, not counted as a send
}

func (rt *Runtime) deliver(ctx context.Context) (next int64, n int, err error) {
	rt.deliverMu.Lock()
	defer rt.deliverMu.Unlock()
	// The jobs a kick announced were written in an engine transaction that
	// commits before the engine's lock is released: passing through the
	// lock makes them visible in the store.
	// Jobs written from then on lower jobLow (under the same lock).
	err = rt.cfg.Engine.Do(ctx, func(*profile.Tx) error {
		rt.jobLow.reset()
		clear(rt.erasedJobs)
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	now := unixNanos(rt.cfg.Clock.Now())
	var items []*delivery
	more := false
	from := rt.jobFloor.get()
	if from == nil {
		from = []byte(prefixJob)
	}
	stop := upTo(prefixJob, now) // the first key not handled
	err = rt.cfg.Store.ScanExt(ctx, from, endOf(prefixJob), func(k, v []byte) error {
		due, id, ok := parseDueKey(prefixJob, k)
		if !ok {
			return nil
		}
		if due > now {
			next, stop = due, slices.Clone(k)
			return errStop
		}
		if len(items) == rt.cfg.Batch {
			more, stop = true, slices.Clone(k)
			return errStop
		}
		d := &delivery{key: slices.Clone(k), id: id}
		if d.h, d.err = parseJobHeader(slices.Clone(v)); d.err != nil {
			d.drop = true
		}
		items = append(items, d)
		return nil
	})
	if err != nil && err != errStop {
		return 0, 0, err
	}
	if len(items) == 0 {
		return next, 0, nil
	}

	sem := make(chan struct{}, rt.cfg.SendWorkers)
	var wg sync.WaitGroup
	for _, d := range items {
		if d.drop {
			rt.logger.Error("journey send job is corrupt; dropped", "err", d.err)
			continue
		}
		d.m, d.err = rt.decodeJob(d.h)
		if d.err != nil {
			if !errors.Is(d.err, shred.ErrShredded) {
				rt.logger.Error("journey send job cannot be read; dropped", "journey", d.h.journey, "step", d.h.step, "err", d.err)
			}
			d.drop = true
			continue
		}
		ch := rt.channels[d.m.Channel]
		if ch == nil {
			d.err = channel.Permanent(fmt.Errorf("journey: no channel is named %q", d.m.Channel))
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			sctx, cancel := context.WithTimeout(ctx, rt.cfg.SendTimeout)
			defer cancel()
			if !d.m.TriggeredAt.IsZero() && d.h.attempts == 0 && rt.cfg.TimeToTrigger != nil {
				rt.cfg.TimeToTrigger(d.m.Channel, rt.cfg.Clock.Now().Sub(d.m.TriggeredAt))
			}
			d.err = ch.Send(sctx, d.m)
		}()
	}
	wg.Wait()

	err = rt.cfg.Engine.Do(context.WithoutCancel(ctx), func(tx *profile.Tx) error {
		t := rt.begin(ctx, tx)
		var retried []byte // the lowest key of a job moved to a later attempt
		for _, d := range items {
			if rt.erasedJobs[string(d.key)] {
				continue // its person was erased meanwhile
			}
			tx.Delete(d.key)
			if d.drop {
				continue
			}
			st := t.stat(&Journey{ID: d.h.journey, Version: d.h.version})
			attempts := d.h.attempts + 1
			switch {
			case d.err == nil:
				rt.bump(st, func(s *vstats) { s.step(d.h.step).Sent++ })
			case !channel.IsPermanent(d.err) && attempts < rt.cfg.MaxAttempts:
				due := t.now + nanos(rt.backoff(attempts, channel.RetryAfter(d.err)))
				h := *d.h
				h.attempts = attempts
				k := jobKey(due, d.id)
				tx.Set(k, h.encode())
				if retried == nil || string(k) < string(retried) {
					retried = k
				}
				if next == 0 || due < next {
					next = due
				}
				rt.bump(st, func(s *vstats) { s.step(d.h.step).Retried++ })
			default:
				rt.logger.Warn("journey send failed", "journey", d.h.journey, "version", d.h.version, "step", d.h.step,
					"channel", d.m.Channel, "attempts", attempts, "err", d.err)
				rt.bump(st, func(s *vstats) { s.step(d.h.step).Failed++ })
			}
		}
		tx.Urgent()
		// Every job before stop is handled, but those written since the
		// scan began and those moved to a later attempt.
		rt.jobFloor.raise(stop, rt.jobLow.get(), retried)
		return t.finish()
	})
	if more {
		next = now
	}
	return next, len(items), err
}

// backoff is the wait before attempt n+1: RetryMin doubled per attempt,
// at most RetryMax, and at least what the channel asked for.
func (rt *Runtime) backoff(n int, asked time.Duration) time.Duration {
	d := rt.cfg.RetryMin
	for i := 1; i < n && d < rt.cfg.RetryMax; i++ {
		d *= 2
	}
	return min(max(d, asked), max(rt.cfg.RetryMax, asked))
}

// sendLoop delivers jobs as they are written and fall due.
func (rt *Runtime) sendLoop(ctx context.Context) error {
	for {
		next, _, err := rt.deliver(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		now := unixNanos(rt.cfg.Clock.Now())
		if next != 0 && next <= now {
			continue
		}
		var wake <-chan time.Time
		if next != 0 {
			wake = rt.cfg.Clock.After(time.Duration(next - now))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-rt.sendKick:
		case <-wake:
		}
	}
}
