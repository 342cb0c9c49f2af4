package journey

import (
	"context"
	"errors"
	"time"

	"github.com/nudge-dev/nudge/channel"
	"github.com/nudge-dev/nudge/profile"
)

// The dead-letter queue: jobs that failed for good (a permanent error, or
// out of attempts or of age) and messages in doubt after a crash. Each is
// an extension key jf/<failed at: 8 bytes>/<job id: 16 bytes> holding the
// job as it was and why it failed, so the queue lists oldest first. An
// operator lists, inspects, redrives (the job is queued again, due now,
// with its attempts reset) or discards them through the admin API and
// `nudge dlq`. An erasure deletes the person's dead letters with their
// other state.

const prefixDead = "jf/"

// ErrNoDeadLetter is returned for an id the dead-letter queue does not hold.
var ErrNoDeadLetter = errors.New("journey: no such dead letter")

// DeadLetter is one entry of the dead-letter queue.
type DeadLetter struct {
	// ID names the entry in the admin API.
	ID       string    `json:"id"`
	Journey  string    `json:"journey"`
	Version  int       `json:"version"`
	Step     string    `json:"step"`
	Channel  string    `json:"channel"`
	Attempts int       `json:"attempts"`
	Error    string    `json:"error"`
	FailedAt time.Time `json:"failedAt"`
	// CreatedAt is when the run decided to send.
	CreatedAt     time.Time `json:"createdAt"`
	Transactional bool      `json:"transactional"`
	// Message is the message, in DeadLetterByID only; nil when its person
	// was erased.
	Message *channel.Message `json:"message,omitempty"`
}

type deadLetter struct {
	h      *jobHeader
	reason string
}

const deadV1 = 1

func deadKey(failedAt int64, id runID) []byte {
	b := make([]byte, 0, len(prefixDead)+8+16)
	b = dueBytes(append(b, prefixDead...), failedAt)
	return append(b, id[:]...)
}

func parseDeadLetter(v []byte) (*deadLetter, error) {
	r := newRbuf(v)
	if r.byte() != deadV1 {
		return nil, errCorrupt
	}
	dl := &deadLetter{reason: r.str()}
	hb := r.bytes()
	if err := r.corrupt(); err != nil {
		return nil, err
	}
	var err error
	dl.h, err = parseJobHeader(hb)
	return dl, err
}

// deadLetter moves d's job to the dead-letter queue.
func (rt *Runtime) deadLetter(tx *profile.Tx, now int64, d *delivery, reason string) {
	h := *d.h
	h.flags &^= jobInFlight
	var w wbuf
	w.byte(deadV1)
	w.str(reason)
	w.bytes(h.encode())
	tx.Set(deadKey(now, d.id), w.b)
	rt.deadLetters.Add(1)
}

// DeadLetterCount is the depth of the dead-letter queue.
func (rt *Runtime) DeadLetterCount() int64 { return rt.deadLetters.Load() }

func (rt *Runtime) countDeadLetters(ctx context.Context) error {
	var n int64
	err := rt.cfg.Store.ScanExt(ctx, []byte(prefixDead), endOf(prefixDead), func(_, _ []byte) error {
		n++
		return nil
	})
	rt.deadLetters.Store(n)
	return err
}

func (rt *Runtime) viewDeadLetter(k []byte, dl *deadLetter) DeadLetter {
	failed, _, _ := parseDueKey(prefixDead, k)
	return DeadLetter{
		ID: idOfKey(prefixDead, k), Journey: dl.h.journey, Version: dl.h.version,
		Step: dl.h.step, Channel: dl.h.channel, Attempts: dl.h.attempts, Error: dl.reason,
		FailedAt: fromNanos(failed), CreatedAt: fromNanos(dl.h.created),
		Transactional: dl.h.has(jobTransactional),
	}
}

// DeadLetters lists up to limit entries, oldest first, from the one after
// the id after ("": from the start); next is the id to pass to list on
// ("" at the end).
func (rt *Runtime) DeadLetters(ctx context.Context, after string, limit int) ([]DeadLetter, string, error) {
	return page(ctx, rt.cfg.Store, prefixDead, after, limit, ErrNoDeadLetter, func(k, v []byte) (DeadLetter, error) {
		dl, err := parseDeadLetter(v)
		if err != nil {
			return DeadLetter{}, err
		}
		return rt.viewDeadLetter(k, dl), nil
	})
}

// DeadLetterByID returns one entry with its message.
func (rt *Runtime) DeadLetterByID(ctx context.Context, id string) (*DeadLetter, error) {
	return entry(ctx, rt.cfg.Store, prefixDead, id, ErrNoDeadLetter, func(k, v []byte) (*DeadLetter, error) {
		dl, err := parseDeadLetter(v)
		if err != nil {
			return nil, err
		}
		view := rt.viewDeadLetter(k, dl)
		if m, err := rt.decodeJob(dl.h); err == nil {
			view.Message = m
		}
		return &view, nil
	})
}

// Redrive queues a dead letter's job again, due now, with its attempts and
// its age reset.
func (rt *Runtime) Redrive(ctx context.Context, id string) error {
	return rt.takeDeadLetter(ctx, id, func(t *txn, dl *deadLetter, jid runID) {
		h := *dl.h
		h.attempts, h.created = 0, t.now
		rt.setJob(t.tx, jobKey(t.now, jid), &h)
		t.jobs = true
	})
}

// Discard deletes a dead letter.
func (rt *Runtime) Discard(ctx context.Context, id string) error {
	return rt.takeDeadLetter(ctx, id, func(*txn, *deadLetter, runID) {})
}

func (rt *Runtime) takeDeadLetter(ctx context.Context, id string, then func(*txn, *deadLetter, runID)) error {
	k, ok := keyOfID(prefixDead, id)
	if !ok {
		return ErrNoDeadLetter
	}
	return rt.cfg.Engine.Do(ctx, func(tx *profile.Tx) error {
		v, ok, err := tx.Get(ctx, k)
		if err != nil {
			return err
		}
		if !ok {
			return ErrNoDeadLetter
		}
		dl, err := parseDeadLetter(v)
		if err != nil {
			return err
		}
		t := rt.begin(ctx, tx)
		tx.Delete(k)
		tx.Durable() // an operator's decision, and the admin API reads the store right after
		rt.deadLetters.Add(-1)
		var jid runID
		copy(jid[:], k[len(prefixDead)+8:])
		then(t, dl, jid)
		return t.finish()
	})
}
