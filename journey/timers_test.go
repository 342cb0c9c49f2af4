package journey

import (
	"context"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/nudge-dev/nudge/profile"
	"github.com/nudge-dev/nudge/shred"
)

// stepClockEngine moves the clock on before each transaction: time passes
// while a catch-up fires.
type stepClockEngine struct {
	Engine
	clock *fakeClock
	steps []time.Duration // before the first, second... transaction; then the last
	n     int
}

func (e *stepClockEngine) Do(ctx context.Context, fn func(*profile.Tx) error) error {
	e.clock.Advance(e.steps[min(e.n, len(e.steps)-1)])
	e.n++
	return e.Engine.Do(ctx, fn)
}

// A timer that falls due while a catch-up fires its backlog fires with the
// backlog's next batch, not after all of it; unless its owner has an
// earlier timer still in the backlog, which fires first.
func TestTimersFallingDueDuringACatchUpDoNotWaitForTheBacklog(t *testing.T) {
	h := newHarness(t, journeyOf(t, `
id: later
trigger: {event: Ping}
steps:
  - {id: w, wait: {duration: 1h}}
  - {id: hit, send: {channel: email, content: {subject: hi, text: x}}}
`), journeyOf(t, `
id: again
trigger: {event: Pong}
steps:
  - {id: w, wait: {duration: 1h}}
  - {id: hit, send: {channel: sms, content: {text: x}}}
`))
	// The backlog: a to f, due 1h to 1h5s from now; x due at 1h20s, and
	// f's second timer at 1h22s.
	for i, u := range []string{"a", "b", "c", "d", "e", "f"} {
		h.send(h.ev(u, "Ping", "", time.Duration(i)*time.Second))
	}
	h.send(h.ev("x", "Ping", "", 20*time.Second), h.ev("f", "Pong", "", 22*time.Second))
	h.flush()
	h.Clock.Advance(time.Hour + 10*time.Second)
	h.Runtime.cfg.Batch = 2
	// The first transaction finds the backlog; 20 s pass before the second
	// (x and f's second timer fall due), and a second before each other.
	h.Runtime.cfg.Engine = &stepClockEngine{Engine: h.Engine, clock: h.Clock, steps: []time.Duration{0, 20 * time.Second, time.Second}}
	if n, err := h.Runtime.FireDue(context.Background()); err != nil || n != 8 {
		t.Fatalf("fired %d, %v", n, err)
	}
	h.Runtime.cfg.Engine = h.Engine
	h.settle()
	// A send's CreatedAt is its transaction's now: which one fired it.
	user := map[string]string{}
	for _, u := range []string{"a", "b", "c", "d", "e", "f", "x"} {
		user[h.find(u).ID.P.String()] = u
	}
	at := map[string]time.Time{}
	for _, ch := range []string{"email", "sms"} {
		for _, m := range h.sent(ch) {
			at[ch+":"+user[m.Recipient.ProfileID]] = m.CreatedAt
		}
	}
	if len(at) != 8 {
		t.Fatalf("sent %v", at)
	}
	if !at["email:x"].Before(at["email:e"]) {
		t.Errorf("x fired at %v, after the backlog's e at %v", at["email:x"], at["email:e"])
	}
	if !at["sms:f"].After(at["email:f"]) {
		t.Errorf("f's second timer fired at %v, before its first at %v", at["sms:f"], at["email:f"])
	}
	for _, u := range []string{"b", "c", "d", "e", "f"} {
		prev := string(rune(u[0] - 1))
		if at["email:"+u].Before(at["email:"+prev]) {
			t.Errorf("the backlog fired out of due order: %s at %v, %s at %v", prev, at["email:"+prev], u, at["email:"+u])
		}
	}
	if n := h.Runtime.TimersPending(); n != 0 {
		t.Fatalf("%d timers pending", n)
	}
}

// A record read ahead of a transaction is taken only if nothing wrote it
// since: an event that changed it, committed or not, makes the
// transaction read it again.
func TestReadAheadTakesOnlyCurrentRecords(t *testing.T) {
	h := newHarness(t, journeyOf(t, `
id: cart
trigger: {event: Checkout Started}
steps:
  - id: w
    wait_for: {event: Order Completed, timeout: 1h}
`))
	ctx := context.Background()
	for _, u := range []string{"ann", "bob", "carl"} {
		h.send(h.ev(u, "Checkout Started", "", 0))
	}
	h.flush()
	rt := h.Runtime
	a := &readAhead{rt: rt, recs: map[shred.Pseudonym]aheadRecord{}}
	rt.recWrites.oldest.Store(rt.recWrites.commits.Load())
	refs := map[string]profile.Ref{}
	for _, u := range []string{"ann", "bob", "carl"} {
		ref := h.find(u).ID
		refs[u] = ref
		at := rt.recWrites.commits.Load()
		v, ok, err := rt.cfg.Store.Ext(ctx, recordKey(ref.P))
		if err != nil || !ok {
			t.Fatalf("record of %s: %v %v", u, ok, err)
		}
		w, err := rt.decodeRecord(ref, v, ok)
		if err != nil || len(w.before) != 1 {
			t.Fatalf("record of %s: %+v %v", u, w, err)
		}
		a.recs[ref.P] = aheadRecord{at, w}
	}
	read := map[string]*work{}
	for u, ref := range refs {
		read[u] = a.recs[ref.P].w
	}
	// ann's order ends her wait, committed; carl's too, not committed.
	h.send(h.ev("ann", "Order Completed", "", time.Minute))
	h.flush()
	h.send(h.ev("carl", "Order Completed", "", time.Minute))
	err := h.Engine.Do(ctx, func(tx *profile.Tx) error {
		tn := rt.begin(ctx, tx)
		tn.ahead = a
		for _, u := range []string{"ann", "bob", "carl"} {
			w, err := tn.load(refs[u])
			if err != nil {
				return err
			}
			if (w == read[u]) != (u == "bob") {
				t.Errorf("%s: took the record read ahead: %v", u, w == read[u])
			}
			if want := b2i(u == "bob"); len(w.before) != want || w.t != tn {
				t.Errorf("%s: %d timers, want %d", u, len(w.before), want)
			}
		}
		if len(a.recs) != 0 {
			t.Errorf("%d records left to take", len(a.recs))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func b2i(v bool) int {
	if v {
		return 1
	}
	return 0
}

// recordWrites judges a read by the generations of the batches written
// since, and forgets the writes from before the oldest read to judge.
func TestRecordWritesForgetsOldWrites(t *testing.T) {
	var rw recordWrites
	rw.oldest.Store(math.MaxUint64)
	p := func(i int) shred.Pseudonym { return shred.Pseudonym{byte(i), byte(i >> 8), byte(i >> 16)} }
	at := rw.commits.Load() // 0: no batch committed; batch 1 is open
	rw.wrote(p(1), 1)
	if rw.current(p(1), at) || !rw.current(p(2), at) {
		t.Fatal("a write in the open batch")
	}
	// Batch 1 commits in the background while batch 2 is written.
	rw.wrote(p(2), 2)
	rw.committed(1)
	if rw.current(p(1), at) || !rw.current(p(1), rw.commits.Load()) {
		t.Fatal("a committed write")
	}
	if rw.current(p(2), rw.commits.Load()) {
		t.Fatal("a write in the batch after the one committed")
	}
	rw.committed(2)
	if !rw.current(p(2), rw.commits.Load()) {
		t.Fatal("a write of the last batch committed")
	}
	// A read from before the writes of p(10) on is to be judged: they are
	// kept, the earlier ones go.
	for i := range 1000 {
		rw.wrote(p(1000+i), 3)
	}
	rw.committed(3)
	read := rw.commits.Load()
	rw.oldest.Store(read)
	for i := range 100 {
		rw.wrote(p(10+i), 4)
	}
	rw.committed(4)
	if _, ok := rw.last[p(1000)]; ok || len(rw.last) != 100 {
		t.Fatalf("remembers %d writes", len(rw.last))
	}
	if rw.current(p(10), read) || !rw.current(p(1000), read) || rw.current(p(1000), read-1) {
		t.Fatal("judged wrong after forgetting")
	}
	// No read to judge: all go.
	rw.oldest.Store(math.MaxUint64)
	for i := range 2000 {
		rw.wrote(p(5000+i), 5)
	}
	rw.committed(5)
	if now := rw.commits.Load(); len(rw.last) != 0 || rw.current(p(10), now-1) || !rw.current(p(10), now) {
		t.Fatalf("remembers %d writes", len(rw.last))
	}
}

// The reader reads a window's records walking their key range, or each on
// its own; either way it finds what a point read finds, including that a
// record is missing.
func TestReadAheadWalksOrReadsEachRecord(t *testing.T) {
	h := newHarness(t, journeyOf(t, `
id: later
trigger: {event: Ping}
steps:
  - {id: w, wait: {duration: 1h}}
`))
	ctx := context.Background()
	for i := range 300 {
		h.send(h.ev(fmt.Sprint("u", i), "Ping", "", 0))
	}
	h.flush()
	rt := h.Runtime
	var refs []profile.Ref
	for i := range 300 {
		if i%3 != 0 { // a window of a third of the records: walked
			refs = append(refs, h.find(fmt.Sprint("u", i)).ID)
		}
	}
	refs = append(refs, profile.Ref{P: shred.Pseudonym{0x80}}, profile.Ref{P: shred.Pseudonym{0xff, 0xff}}) // no records
	check := func(how string, batches [][]rawRecord) {
		t.Helper()
		n := 0
		for _, b := range batches {
			for _, r := range b {
				n++
				v, ok, err := rt.cfg.Store.Ext(ctx, recordKey(r.ref.P))
				if err != nil || !r.read || r.ok != ok || !slices.Equal(r.v, v) {
					t.Fatalf("%s: %s: read %v, ok %v, want ok %v (%v)", how, r.ref.P, r.read, r.ok, ok, err)
				}
			}
		}
		if n != len(refs) {
			t.Fatalf("%s: %d records, want %d", how, n, len(refs))
		}
	}
	window := func() (batches [][]rawRecord) {
		for b := range slices.Chunk(refs, 50) {
			var batch []rawRecord
			for _, r := range b {
				batch = append(batch, rawRecord{ref: r})
			}
			batches = append(batches, batch)
		}
		return batches
	}
	walked := window()
	if ok, records := rt.walkWindow(ctx, walked, len(refs)); !ok || records < 30 || records > 3000 {
		t.Fatalf("a dense window: walked %v, %.0f records estimated (300)", ok, records)
	}
	check("walked", walked)
	each := window()
	for _, b := range each {
		rt.readPoints(ctx, b)
	}
	check("each", each)
}
