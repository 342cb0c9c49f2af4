package journey

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/nudge-dev/nudge/profile"
)

// Durable timers. A timer is an extension key jt/<due>/<id>, written in
// the same transaction as the record that owns it (a run's wait, a
// not_followed_by window, an absence deadline), so it exists exactly when
// the state that armed it does. Keys sort by due time: the next timers
// are one range scan, and millions pending cost disk, not memory. In
// memory the runtime keeps the time the loop will look next (planned) and
// a floor below which no timer is due (floor), so a scan does not walk
// the tombstones of the timers already fired.
//
// Firing runs in the engine's transaction (Engine.Do), in due order, a
// batch at a time: each timer is deleted and its owner's record is read,
// moved on and written back in that transaction, so a crash either
// commits the firing with all its effects or leaves the timer to fire
// again after the restart. A timer whose owner moved on (a wait_for that
// got its event, a cancelled window) was deleted with that change.

var errStop = errors.New("stop")

// FireDue fires every timer due at the clock's now, in due order, and
// returns how many fired. Run calls it; tests and simulations driving a
// fake clock call it directly.
func (rt *Runtime) FireDue(ctx context.Context) (int, error) {
	_, n, err := rt.fireDue(ctx)
	return n, err
}

// fireDue fires what is due, a batch per transaction, and returns the due
// time of the next timer (0: none).
func (rt *Runtime) fireDue(ctx context.Context) (next int64, fired int, err error) {
	for {
		more := false
		err := rt.cfg.Engine.Do(ctx, func(tx *profile.Tx) error {
			t := rt.begin(ctx, tx)
			type item struct {
				key, val []byte
				due      int64
				id       runID
			}
			var items []item
			next = 0
			from := rt.timerFloor.get()
			if from == nil {
				from = []byte(prefixTimer)
			}
			stop := upTo(prefixTimer, t.now) // the first key not fired
			err := tx.Scan(ctx, from, endOf(prefixTimer), func(k, v []byte) error {
				due, id, ok := parseDueKey(prefixTimer, k)
				if !ok {
					return nil
				}
				if due > t.now {
					next, stop = due, slices.Clone(k)
					return errStop
				}
				if len(items) == rt.cfg.Batch {
					more, stop = true, slices.Clone(k)
					return errStop
				}
				items = append(items, item{slices.Clone(k), slices.Clone(v), due, id})
				return nil
			})
			if err != nil && err != errStop {
				return err
			}
			for _, it := range items {
				if rt.cfg.TimerFired != nil {
					rt.cfg.TimerFired(time.Duration(t.now - it.due))
				}
				if err := t.fire(it.key, it.due, it.id, it.val); err != nil {
					return err
				}
			}
			fired += len(items)
			if len(items) > 0 {
				// Commit each batch: a crash then repeats at most one batch,
				// and the engine's uncommitted batch (which every Scan
				// walks) stays small during a long catch-up.
				tx.Urgent()
			}
			if t.noted != 0 && t.noted <= t.now {
				more = true // a firing armed a timer that is due already
			}
			if t.noted != 0 && (next == 0 || t.noted < next) {
				next = t.noted
			}
			// Every timer before stop fired, but those the firings armed;
			// any armed from now on lowers the floor and wakes the loop
			// (note).
			rt.timerFloor.raise(stop, t.lowTimer)
			if !more {
				rt.planned.Store(next)
				t.noted = 0 // the loop is not waiting: no need to wake it
			}
			return t.finish()
		})
		if err != nil || !more {
			return next, fired, err
		}
	}
}

// fire fires one timer, in the transaction of t.
func (t *txn) fire(key []byte, due int64, id runID, val []byte) error {
	t.tx.Delete(key)
	kind, ref, jid, err := parseTimerValue(val)
	if err != nil {
		t.rt.logger.Error("journey timer is corrupt; dropped", "err", err)
		return nil
	}
	w, err := t.load(ref)
	if err != nil {
		return err
	}
	if !w.existed {
		return nil
	}
	if w.shredded {
		// The person was erased: their state goes.
		return w.save()
	}
	js := w.rec.journey(jid, false)
	if js == nil {
		return w.save()
	}
	switch kind {
	case timerRun:
		r := js.run(id)
		if r == nil || r.ended || r.due != due {
			break
		}
		c := t.cat.version(js.id, r.version)
		if c == nil {
			t.end(w, js, nil, r, ReasonUnloaded)
			break
		}
		r.due = 0
		switch s := c.j.Step(r.step); {
		case s == nil:
			t.end(w, js, c.j, r, ReasonCompleted)
		case s.Kind == StepWait:
			t.advance(w, js, c, r, s.Next, due)
		case s.Kind == StepWaitFor:
			t.advance(w, js, c, r, s.WaitFor.OnTimeout, r.waitUntil)
		}
	case timerNFB:
		if js.nfb == nil {
			break
		}
		a := js.nfb.fire(id)
		if a == nil || a.due != due {
			break
		}
		c := t.cat.byID[js.id]
		if c == nil || c.fp != js.trig {
			break
		}
		t.start(w, js, c, decodeEvent(a.ev), a.t+nanos(c.j.Trigger.Pattern.Within))
	case timerAbsent:
		a := js.abs
		if a == nil || a.id != id || a.due != due {
			break
		}
		c := t.cat.byID[js.id]
		if c == nil || c.fp != js.trig {
			js.abs = nil
			break
		}
		d := nanos(c.j.Trigger.Absence.Duration)
		if want := a.last + d + nanos(c.j.AllowedLateness); want > due {
			a.due = want // an event moved the deadline since this was armed
			break
		}
		a.due, a.fired = 0, a.last
		t.start(w, js, c, decodeEvent(a.ev), a.last+d)
	}
	if w.gone {
		// The profile is gone (erased, without a keyring): so is its state.
		w.shredded = true
	}
	t.pruneRecord(w)
	return w.save()
}

// timerLoop fires timers as they fall due until ctx is done.
func (rt *Runtime) timerLoop(ctx context.Context) error {
	for {
		next, _, err := rt.fireDue(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		var wake <-chan time.Time
		if next != 0 {
			wake = rt.cfg.Clock.After(time.Duration(next - unixNanos(rt.cfg.Clock.Now())))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-rt.timerKick:
		case <-wake:
		}
	}
}

// Run fires timers and delivers send jobs until ctx is done; it returns
// nil then, or the error that stopped it (the engine failed). Start it
// after the engine's Run, with the same lifetime.
func (rt *Runtime) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, loop := range []func(context.Context) error{rt.timerLoop, rt.sendLoop} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if errs[i] = loop(ctx); errs[i] != nil {
				cancel()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
