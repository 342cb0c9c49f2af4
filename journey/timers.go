package journey

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nudge-dev/nudge"
	"github.com/nudge-dev/nudge/bus"
	"github.com/nudge-dev/nudge/profile"
	"github.com/nudge-dev/nudge/shred"
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
//
// A catch-up (after a restart, or whenever more timers are due than the
// first transaction of a pass fires) fires the backlog, the timers due
// when it began, in due order, a batch per transaction. Reading the
// records is most of a firing's cost (a point read of the store each),
// so while a batch fires, the records of the batches after it are read
// outside the engine's lock, from the committed store (readAhead); a
// transaction takes a record read ahead only if no write touched it since
// the read (recordWrites), and reads it itself otherwise.
//
// A timer that falls due during a catch-up does not wait behind the whole
// backlog: each transaction of the catch-up also fires those that fell
// due since it began (the fresh lane), in due order among themselves,
// unless their owner has an earlier timer still armed, which they then
// wait for (the transaction after the backlog fires what the fresh lane
// left, in due order); while the reader is behind, transactions fire the
// fresh lane alone. Each customer's timers thus fire in due order,
// always; across customers, the fresh timers of a catch-up go before the
// rest of its backlog. Nothing depends on the order across customers:
// send jobs are due at their run's logical time, whichever fired first.

var errStop = errors.New("stop")

// FireDue fires every timer due at the clock's now, in due order (each
// customer's; see above for a catch-up's), and returns how many fired.
// Run calls it; tests and simulations driving a fake clock call it
// directly.
func (rt *Runtime) FireDue(ctx context.Context) (int, error) {
	_, n, err := rt.fireDue(ctx)
	return n, err
}

// fireDue fires what is due, a batch per transaction, and returns the due
// time of the next timer (0: none).
func (rt *Runtime) fireDue(ctx context.Context) (next int64, fired int, err error) {
	rt.fireMu.Lock()
	defer rt.fireMu.Unlock()
	begun := unixNanos(rt.cfg.Clock.Now())
	var (
		ahead      *readAhead // during a catch-up
		first      = true     // the pass's first transaction
		catchingUp bool       // the last transaction left backlog behind
		horizon    int64      // during a catch-up, the backlog is the timers due by it
		fresh      []byte     // the fresh lane's floor, during a catch-up (nil: not begun)
		dues       []int64
	)
	for {
		var patience <-chan time.Time
		if catchingUp {
			// The fresh lane does not wait long for the reader.
			patience = rt.cfg.Clock.After(aheadPatience)
		}
		backlog := ahead.next(patience)
		more := false
		dues = dues[:0]
		err := rt.cfg.Engine.Do(ctx, func(tx *profile.Tx) error {
			t := rt.begin(ctx, tx)
			t.ahead = ahead
			from := rt.timerFloor.get()
			if from == nil {
				from = []byte(prefixTimer)
			}
			var b rangeEnd
			switch {
			case !catchingUp:
				// Everything due, in due order; more than a batch (the
				// first transaction of a pass fires a short one, reading
				// the records itself) is a backlog: what was due when
				// this pass, or this transaction, began.
				limit := rt.cfg.Batch
				if first {
					limit = min(limit, aheadFirst)
				}
				var err error
				if b, err = t.fireRange(from, t.now, limit, false, &dues); err != nil {
					return err
				}
				if b.full {
					horizon = min(begun, t.now)
				}
			case backlog:
				var err error
				if b, err = t.fireRange(from, horizon, rt.cfg.Batch, false, &dues); err != nil {
					return err
				}
			default:
				b.full = true // the backlog waits for the reader
			}
			next, more = b.next, b.full
			if catchingUp && t.now > horizon {
				if fresh == nil {
					fresh = upTo(prefixTimer, horizon)
				}
				f, err := t.fireRange(fresh, t.now, rt.cfg.Batch, true, &dues)
				if err != nil {
					return err
				}
				fresh, more = f.stop, more || f.full
			}
			if catchingUp && !b.full {
				// The backlog is done; the next transaction fires, in due
				// order, what the fresh lane left (its timers whose owner
				// had an earlier one armed, and any armed behind it).
				more, fresh = true, nil
			}
			catchingUp = b.full
			if len(dues) > 0 {
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
			// Every timer before b.stop fired, but those the firings armed;
			// any armed from now on lowers the floor and wakes the loop
			// (note).
			if b.stop != nil {
				rt.timerFloor.raise(b.stop, t.lowTimer)
			}
			if !more {
				rt.planned.Store(next)
				t.noted = 0 // the loop is not waiting: no need to wake it
			}
			return t.finish()
		})
		if err != nil {
			ahead.stop()
			return next, fired, err
		}
		if catchingUp && ahead == nil {
			ahead = rt.readAhead(ctx, horizon)
		}
		fired += len(dues)
		if f := rt.cfg.TimerFired; f != nil && len(dues) > 0 {
			// How late each fired: until its firing was committed.
			now := unixNanos(rt.cfg.Clock.Now())
			for _, due := range dues {
				f(time.Duration(max(now-due, 0)))
			}
		}
		if !more {
			ahead.stop()
			return next, fired, nil
		}
		first, begun = false, unixNanos(rt.cfg.Clock.Now())
	}
}

// rangeEnd is where fireRange stopped.
type rangeEnd struct {
	stop []byte // the first key it did not look at
	full bool   // it stopped at the limit
	next int64  // the due time of the first timer after the range (0: none, or full)
}

// fireRange fires, in due order, up to limit timers from the key from on
// that are due at or before until, and appends their due times to fired.
// In the fresh lane it leaves the timers whose owner has an earlier timer
// armed.
func (t *txn) fireRange(from []byte, until int64, limit int, freshLane bool, fired *[]int64) (rangeEnd, error) {
	type item struct {
		key, val []byte
		due      int64
		id       runID
	}
	var items []item
	end := rangeEnd{stop: upTo(prefixTimer, until)}
	err := t.tx.Scan(t.ctx, from, endOf(prefixTimer), func(k, v []byte) error {
		due, id, ok := parseDueKey(prefixTimer, k)
		if !ok {
			return nil
		}
		if due > until {
			end.next, end.stop = due, slices.Clone(k)
			return errStop
		}
		if len(items) == limit {
			end.full, end.stop = true, slices.Clone(k)
			return errStop
		}
		items = append(items, item{slices.Clone(k), slices.Clone(v), due, id})
		return nil
	})
	if err != nil && err != errStop {
		return end, err
	}
	for _, it := range items {
		ok, err := t.fire(it.key, it.due, it.id, it.val, freshLane)
		if err != nil {
			return end, err
		}
		if ok {
			*fired = append(*fired, it.due)
		}
	}
	return end, nil
}

// fire fires one timer, in the transaction of t.
// In the fresh lane, a timer whose owner has an earlier timer armed is
// left (fired reports false).
func (t *txn) fire(key []byte, due int64, id runID, val []byte, freshLane bool) (fired bool, err error) {
	kind, ref, jid, err := parseTimerValue(val)
	if err != nil {
		t.tx.Delete(key)
		t.rt.logger.Error("journey timer is corrupt; dropped", "err", err)
		return true, nil
	}
	w, err := t.load(ref)
	if err != nil {
		return false, err
	}
	if freshLane && w.armedBefore(due, id) {
		return false, nil
	}
	t.tx.Delete(key)
	if !w.existed {
		return true, nil
	}
	if w.shredded {
		// The person was erased: their state goes.
		return true, w.save()
	}
	js := w.rec.journey(jid, false)
	if js == nil {
		return true, w.save()
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
		t.start(w, js, c, t.recall(a.ev, a.t), a.t+nanos(c.j.Trigger.Pattern.Within))
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
		t.start(w, js, c, t.recall(a.ev, a.last), a.last+d)
	}
	if w.gone {
		// The profile is gone (erased, without a keyring): so is its state.
		w.shredded = true
	}
	t.pruneRecord(w)
	return true, w.save()
}

// keep is how a pattern keeps the event React was called with: where the
// log holds it, or a copy when the engine does not say.
func (t *txn) keep(ev *evInfo) eventRef {
	if at := t.tx.EventAt(); at != (profile.LogRef{}) {
		return eventRef{at: at}
	}
	return eventRef{ev: ev.encoded()}
}

// recall is a kept event (of time at), read back from the log. When the log
// no longer holds it (a retention limit shorter than the pattern's window
// or silence) the run starts with an event that has only its time.
func (t *txn) recall(r eventRef, at int64) *nudge.Event {
	if r.at == (profile.LogRef{}) {
		return decodeEvent(r.ev)
	}
	e, err := t.tx.Event(t.ctx, r.at)
	switch {
	case errors.Is(err, bus.ErrNotFound) || errors.Is(err, shred.ErrShredded):
		return &nudge.Event{Timestamp: time.Unix(0, at).UTC()}
	case err != nil:
		t.fail(err)
		return new(nudge.Event)
	}
	return e
}

// armedBefore reports whether the record has a timer armed that sorts
// before the timer (due, id).
func (w *work) armedBefore(due int64, id runID) bool {
	due = max(due, 0)
	for _, b := range w.before {
		if b.due < due || (b.due == due && bytes.Compare(b.id[:], id[:]) < 0) {
			return true
		}
	}
	return false
}

// readAhead reads, outside the engine's lock, the records of the timers
// the next transactions of a catch-up will fire, from the committed
// store. A pass starts reading ahead once it finds a backlog. A reader
// takes the backlog's timers a window at a time (a batch, then
// aheadBatches batches, or more to make a window dense enough to walk)
// and reads their owners' records, on every core:
// walking the window's key range when they are dense in it (after a
// restart, most customers may have a timer overdue), else each on its
// own, a batch at a time in due order. A decoder decodes them a batch at
// a time, in the order the transactions fire them; the reader reads the
// next window meanwhile (at most two windows' records are held: some
// 40 MB with a million customers). A transaction takes a record read
// ahead (take) only if it is still current, and reads it itself
// otherwise; each is taken once.
type readAhead struct {
	rt     *Runtime
	in     chan aheadBatch // batches decoded (nil: none left)
	recs   map[shred.Pseudonym]aheadRecord
	held   []aheadBatch // the batches recs holds records of, oldest first
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// aheadBatch is the records of a batch of timers, decoded.
type aheadBatch struct {
	at   uint64 // the commits counted before the read (recordWrites)
	recs []*work
}

type aheadRecord struct {
	at uint64
	w  *work // decoded, without its txn
}

// rawBatch is the records of a batch of timers as read: each record
// once, in the first batch that has a timer of its owner.
type rawBatch struct {
	at   uint64
	recs []rawRecord
}

type rawRecord struct {
	ref  profile.Ref
	v    []byte
	ok   bool // the record exists
	read bool
}

const (
	// aheadBatches is the timers a window reads ahead, in batches; up to
	// aheadMaxBatches when the store holds many records for each wanted
	// (a larger window is denser, and walked).
	aheadBatches    = 16
	aheadMaxBatches = 64
	// aheadFirst bounds the timers the first transaction of a pass fires:
	// it reads their records itself (a pass that fires more is a catch-up,
	// and reads ahead).
	aheadFirst = 64
	// aheadHeld is how many batches' records a pass holds: a transaction
	// may take records of the batches before its own.
	aheadHeld = 4
	// aheadPatience is how long a transaction of a catch-up waits for
	// the reader before it fires only the fresh lane.
	aheadPatience = 5 * time.Millisecond
)

// readAhead starts reading the records of the timers due by until, from
// the floor on.
func (rt *Runtime) readAhead(ctx context.Context, until int64) *readAhead {
	from := rt.timerFloor.get()
	if from == nil {
		from = []byte(prefixTimer)
	}
	// Every read the reader makes is from after now: the writes before
	// may be forgotten.
	rt.recWrites.oldest.Store(rt.recWrites.commits.Load())
	ctx, cancel := context.WithCancel(ctx)
	a := &readAhead{rt: rt, in: make(chan aheadBatch, 1), recs: map[shred.Pseudonym]aheadRecord{}, cancel: cancel}
	raw := make(chan rawBatch, aheadMaxBatches) // the next window is read while this one fires
	a.wg.Go(func() {
		defer close(raw)
		rt.readWindows(ctx, slices.Clone(from), upTo(prefixTimer, until), raw)
	})
	a.wg.Go(func() {
		defer close(a.in)
		rt.decodeBatches(ctx, raw, a.in)
	})
	return a
}

func (rt *Runtime) readWindows(ctx context.Context, from, to []byte, out chan<- rawBatch) {
	size := rt.cfg.Batch
	for ctx.Err() == nil {
		at := rt.recWrites.commits.Load()
		var refs []profile.Ref // in due order
		var last []byte
		n := 0
		err := rt.cfg.Store.ScanExt(ctx, from, to, func(k, v []byte) error {
			if n == size {
				return errStop
			}
			n++
			last = append(last[:0], k...)
			_, ref, _, err := parseTimerValue(v)
			if err != nil {
				ref.Partition = -1 // fired as corrupt: no record to read
			}
			refs = append(refs, ref)
			return nil
		})
		if (err != nil && err != errStop) || n == 0 {
			return // the transactions read for themselves
		}
		records, ok := rt.readWindow(ctx, refs, at, out)
		if !ok || n < size {
			return
		}
		from = append(slices.Clone(last), 0) // the first key after last
		// Windows large enough to be walked, if the store's records are
		// not too many.
		size = aheadBatches * rt.cfg.Batch
		if want := int(1.5 * records / pointCost); want > size {
			size = min(want/rt.cfg.Batch+1, aheadMaxBatches) * rt.cfg.Batch
		}
	}
}

// readWindow reads the records of a window's timers (refs, in due order)
// into out, a batch at a time; false when ctx is done. It returns the
// records the store holds, as walkWindow estimates them (0: unknown).
func (rt *Runtime) readWindow(ctx context.Context, refs []profile.Ref, at uint64, out chan<- rawBatch) (records float64, ok bool) {
	// The owners, each in the first batch that has a timer of theirs.
	seen := make(map[shred.Pseudonym]bool, len(refs))
	var batches [][]rawRecord
	for len(refs) > 0 {
		n := min(len(refs), rt.cfg.Batch)
		var batch []rawRecord
		for _, r := range refs[:n] {
			if r.Partition >= 0 && !seen[r.P] {
				seen[r.P] = true
				batch = append(batch, rawRecord{ref: r})
			}
		}
		batches = append(batches, batch)
		refs = refs[n:]
	}
	send := func(b []rawRecord) bool {
		select {
		case out <- rawBatch{at, b}:
			return true
		case <-ctx.Done():
			return false
		}
	}
	walked, records := rt.walkWindow(ctx, batches, len(seen))
	for _, b := range batches {
		if !walked {
			rt.readPoints(ctx, b)
		}
		if !send(b) {
			return records, false
		}
	}
	return records, true
}

// Reading a window's records: walking a key range costs about a
// pointCost-th of a point read per record walked (less when the store's
// block cache holds little), so the window's range is walked when the
// records wanted are at least a pointCost-th of those in it, estimated
// from the span of the first walkProbe.
const (
	pointCost = 32
	walkProbe = 64
)

// walkWindow reads the records of the window's batches by walking their
// key range, when that is the cheaper way; it reports whether it did, and
// how many records the store holds, estimated from the probe (0: unknown).
func (rt *Runtime) walkWindow(ctx context.Context, batches [][]rawRecord, n int) (walked bool, records float64) {
	if n < walkProbe {
		return false, 0
	}
	recs := make([]*rawRecord, 0, n)
	for _, b := range batches {
		for i := range b {
			recs = append(recs, &b[i])
		}
	}
	slices.SortFunc(recs, func(a, b *rawRecord) int { return bytes.Compare(a.ref.P[:], b.ref.P[:]) })
	lo, hi := recordKey(recs[0].ref.P), append(recordKey(recs[n-1].ref.P), 0)
	probe, probed := 0, uint64(0)
	err := rt.cfg.Store.ScanExt(ctx, lo, hi, func(k, _ []byte) error {
		if probe++; probe == walkProbe {
			probed = keyPos(k)
			return errStop
		}
		return nil
	})
	if err != nil && err != errStop {
		return false, 0
	}
	if probe == walkProbe {
		// Records per unit of key space, times its size (2^64), and
		// times the window's span.
		density := float64(walkProbe) / max(float64(probed-keyPos(lo)), 1)
		records = density * (1 << 64)
		if density*float64(keyPos(hi)-keyPos(lo)) > float64(pointCost*n) {
			return false, records // sparse
		}
	}
	// A walk per core, over a share of the records.
	workers := min(runtime.GOMAXPROCS(0), 1+n/256)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		part := recs[w*n/workers : (w+1)*n/workers]
		wg.Go(func() { errs[w] = rt.walk(ctx, part) })
	}
	wg.Wait()
	return errors.Join(errs...) == nil, records
}

// walk reads recs (sorted by key) by walking their key range.
func (rt *Runtime) walk(ctx context.Context, recs []*rawRecord) error {
	if len(recs) == 0 {
		return nil
	}
	j, n := 0, len(recs)
	err := rt.cfg.Store.ScanExt(ctx, recordKey(recs[0].ref.P), append(recordKey(recs[n-1].ref.P), 0), func(k, v []byte) error {
		if j%64 == 0 {
			if err := yield(ctx); err != nil {
				return err
			}
		}
		p := k[len(prefixRecord):]
		for j < n && bytes.Compare(recs[j].ref.P[:], p) < 0 {
			recs[j].read = true // passed: no record
			j++
		}
		if j < n && bytes.Equal(recs[j].ref.P[:], p) {
			*recs[j] = rawRecord{ref: recs[j].ref, v: slices.Clone(v), ok: true, read: true}
			j++
		}
		if j == n {
			return errStop
		}
		return nil
	})
	if err != nil && err != errStop {
		return err
	}
	for ; j < n; j++ {
		recs[j].read = true // the walk passed them: no record
	}
	return nil
}

// yield lets the transactions run: the reader and the decoder use every
// core, and a goroutine that is not preempted runs for 10 ms. It returns
// ctx's error.
func yield(ctx context.Context) error {
	runtime.Gosched()
	return ctx.Err()
}

// keyPos places a record key in the key space (the first 8 bytes of its
// profile id).
func keyPos(k []byte) uint64 {
	if len(k) < len(prefixRecord)+8 {
		return 0
	}
	return binary.BigEndian.Uint64(k[len(prefixRecord):])
}

// readPoints reads a batch's records each on its own, on every core.
func (rt *Runtime) readPoints(ctx context.Context, b []rawRecord) {
	workers := min(runtime.GOMAXPROCS(0), 1+len(b)/64)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(b) && yield(ctx) == nil; i += workers {
				if v, ok, err := rt.cfg.Store.Ext(ctx, recordKey(b[i].ref.P)); err == nil {
					b[i].v, b[i].ok, b[i].read = v, ok, true
				}
			}
		})
	}
	wg.Wait()
}

// decodeBatches decodes the batches read, on every core.
func (rt *Runtime) decodeBatches(ctx context.Context, raw <-chan rawBatch, out chan<- aheadBatch) {
	for b := range raw {
		recs := make([]*work, len(b.recs))
		workers := min(runtime.GOMAXPROCS(0), 1+len(b.recs)/64)
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for i := w; i < len(b.recs); i += workers {
					r := &b.recs[i]
					if !r.read {
						continue
					}
					if i%16 == 0 {
						yield(ctx)
					}
					if x, err := rt.decodeRecord(r.ref, r.v, r.ok); err == nil {
						recs[i] = x
					}
				}
			})
		}
		wg.Wait()
		select {
		case out <- aheadBatch{b.at, recs}:
		case <-ctx.Done():
			return
		}
	}
}

// next takes the next batch the reader decoded. It waits for it until
// patience fires (nil: as long as it takes), and reports whether it came
// (or the reader is done).
func (a *readAhead) next(patience <-chan time.Time) bool {
	if a == nil || a.in == nil {
		return true
	}
	var batch aheadBatch
	select {
	case b, ok := <-a.in:
		if !ok {
			a.in = nil
			return true
		}
		batch = b
	case <-patience:
		return false
	}
	if len(a.held) == aheadHeld {
		// Left over from transactions that fired past them.
		for _, w := range a.held[0].recs {
			if w != nil && a.recs[w.ref.P].w == w {
				delete(a.recs, w.ref.P)
			}
		}
		a.held = a.held[1:]
	}
	a.held = append(a.held, batch)
	for _, w := range batch.recs {
		if w != nil {
			a.recs[w.ref.P] = aheadRecord{batch.at, w}
		}
	}
	// The reads still to be judged are from the oldest batch held on.
	a.rt.recWrites.oldest.Store(a.held[0].at)
	return true
}

// take returns the record of ref read ahead, for t, when it is current;
// nil otherwise.
func (a *readAhead) take(t *txn, ref profile.Ref) *work {
	if a == nil {
		return nil
	}
	r, ok := a.recs[ref.P]
	if !ok {
		return nil
	}
	delete(a.recs, ref.P)
	if !t.rt.recWrites.current(ref.P, r.at) {
		return nil
	}
	w := r.w
	w.t, w.ref, w.rec.ref = t, ref, ref
	if w.sealed && !w.shredded && t.rt.cfg.Keys.Shredded(w.sealer) {
		// Erased since the read.
		w.shredded, w.rec, w.body = true, &custRecord{ref: ref}, nil
	}
	return w
}

// stop stops the reader and the decoder, and waits for them.
func (a *readAhead) stop() {
	if a == nil {
		return
	}
	a.cancel()
	a.wg.Wait()
	a.rt.recWrites.oldest.Store(math.MaxUint64)
}

// recordWrites tells whether a record read from the committed store
// outside the engine's lock is what a transaction would read now: the
// runtime is the only writer of records, and keeps the generation of the
// last batch committed (Committed) in commits. A record read when commits
// was at is current unless a batch after at holds a write of it: last
// holds, for each record written, the generation of the batch its last
// write went into. It forgets writes older than the oldest read still to
// be judged, which the pass reading ahead keeps in oldest (fireDue passes
// run one at a time). Guarded by the engine's lock, but commits and
// oldest.
type recordWrites struct {
	commits atomic.Uint64
	oldest  atomic.Uint64 // math.MaxUint64: no read to judge
	since   uint64        // writes from before it are forgotten
	last    map[shred.Pseudonym]uint64
	limit   int // forget when last holds more
}

// wrote records a write of p's record into the batch of generation gen.
func (rw *recordWrites) wrote(p shred.Pseudonym, gen uint64) {
	if rw.last == nil {
		rw.last = map[shred.Pseudonym]uint64{}
	}
	rw.last[p] = gen
}

// committed records that the batches through gen are committed (under the
// engine's lock), and now and then forgets the writes no read needs
// judged against.
func (rw *recordWrites) committed(gen uint64) {
	rw.commits.Store(gen)
	if len(rw.last) <= max(rw.limit, 1024) {
		return
	}
	since := min(rw.oldest.Load(), gen)
	for p, w := range rw.last {
		if w <= since { // current for every read at since or after
			delete(rw.last, p)
		}
	}
	rw.since, rw.limit = since, 2*len(rw.last)
}

// current reports whether a record read from the store when commits was
// at is still current.
func (rw *recordWrites) current(p shred.Pseudonym, at uint64) bool {
	if at < rw.since {
		return false
	}
	w, ok := rw.last[p]
	return !ok || w <= at
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
