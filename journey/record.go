package journey

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"slices"
	"time"

	"github.com/nudge-dev/nudge"
	"github.com/nudge-dev/nudge/profile"
	"github.com/nudge-dev/nudge/shred"
)

// The runtime keeps its state in the profile store's extension keys, which
// commit in the same atomic batch as the profiles and the log position:
//
//	jp/<profile id: 16 bytes>                  the profile's record (custRecord)
//	jt/<due: 8 bytes>/<timer id: 16 bytes>     a timer (timerValue)
//	jq/<due: 8 bytes>/<job id: 16 bytes>       a send job (job)
//	js/<journey id>/<version: 4 bytes>         the stats of a journey version
//
// Times in keys are Unix nanoseconds, big-endian, so that keys sort by due
// time. Numbers are big-endian; ids are binary.
const (
	prefixRecord = "jp/"
	prefixTimer  = "jt/"
	prefixJob    = "jq/"
	prefixStats  = "js/"
)

// runID names a run, and the other owners of timers (a pending
// not_followed_by window, an absence deadline).
type runID [16]byte

func (id runID) String() string { return hex.EncodeToString(id[:]) }
func (id runID) isZero() bool   { return id == runID{} }

// newID derives an id from its parts: ids are deterministic, so that the
// replay of an event after a crash makes the same run, with the same
// idempotency keys.
func newID(parts ...string) runID {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	for _, p := range parts {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(p)))])
		h.Write([]byte(p))
	}
	var id runID
	copy(id[:], h.Sum(nil))
	return id
}

func recordKey(p shred.Pseudonym) []byte {
	return append([]byte(prefixRecord), p[:]...)
}

func dueBytes(b []byte, due int64) []byte {
	return binary.BigEndian.AppendUint64(b, uint64(max(due, 0)))
}

func timerKey(due int64, id runID) []byte {
	b := make([]byte, 0, len(prefixTimer)+8+16)
	b = dueBytes(append(b, prefixTimer...), due)
	return append(b, id[:]...)
}

func parseDueKey(prefix string, k []byte) (due int64, id runID, ok bool) {
	if len(k) != len(prefix)+8+16 {
		return 0, id, false
	}
	due = int64(binary.BigEndian.Uint64(k[len(prefix):]))
	copy(id[:], k[len(prefix)+8:])
	return due, id, true
}

func jobKey(due int64, id runID) []byte {
	b := make([]byte, 0, len(prefixJob)+8+16)
	b = dueBytes(append(b, prefixJob...), due)
	return append(b, id[:]...)
}

// upTo returns the key just past every key of prefix due at or before due.
func upTo(prefix string, due int64) []byte {
	return dueBytes([]byte(prefix), due+1)
}

// endOf is the end of a prefix's key range.
func endOf(prefix string) []byte {
	b := []byte(prefix)
	b[len(b)-1]++
	return b
}

// The kinds of timer.
const (
	timerRun    byte = 1 // a run's wait or wait_for timeout
	timerNFB    byte = 2 // a not_followed_by window closing
	timerAbsent byte = 3 // an absence deadline
)

// timerRef is one armed timer of a record.
type timerRef struct {
	due     int64
	id      runID
	kind    byte
	journey string
}

// timerValue is what a timer key holds: the kind, the profile and the
// journey, so that firing finds the record and the owner (by the id in
// the key).
func timerValue(t timerRef, ref profile.Ref) []byte {
	var w wbuf
	w.byte(t.kind)
	w.uvarint(uint64(ref.Partition))
	w.b = append(w.b, ref.P[:]...)
	w.str(t.journey)
	return w.b
}

func parseTimerValue(v []byte) (kind byte, ref profile.Ref, journey string, err error) {
	r := newRbuf(v)
	kind = r.byte()
	ref.Partition = int(r.uvarint())
	ref.P = r.pseudonym()
	journey = r.str()
	return kind, ref, journey, r.corrupt()
}

// custRecord is what the runtime keeps about one profile: per journey, the
// trigger's state and the runs.
type custRecord struct {
	ref      profile.Ref
	journeys []*jstate // by id
}

func (c *custRecord) journey(id string, create bool) *jstate {
	i, ok := slices.BinarySearchFunc(c.journeys, id, func(j *jstate, id string) int { return cmp.Compare(j.id, id) })
	if ok {
		return c.journeys[i]
	}
	if !create {
		return nil
	}
	js := &jstate{id: id}
	c.journeys = slices.Insert(c.journeys, i, js)
	return js
}

// timers lists the armed timers of the record, in a fixed order.
func (c *custRecord) timers() []timerRef {
	var out []timerRef
	for _, js := range c.journeys {
		for _, r := range js.runs {
			if r.due != 0 {
				out = append(out, timerRef{r.due, r.id, timerRun, js.id})
			}
		}
		if js.nfb != nil {
			for _, a := range js.nfb.as {
				out = append(out, timerRef{a.due, a.id, timerNFB, js.id})
			}
		}
		if js.abs != nil && js.abs.due != 0 {
			out = append(out, timerRef{js.abs.due, js.abs.id, timerAbsent, js.id})
		}
	}
	return out
}

func (c *custRecord) empty() bool { return len(c.journeys) == 0 }

// jstate is a profile's state in one journey.
type jstate struct {
	id string
	// trig is the fingerprint of the trigger the state below was built
	// for: a new version with another trigger starts afresh.
	trig  uint64
	count *countState
	seq   *seqState
	nfb   *nfbState
	abs   *absState
	// cond is the last value of a profile trigger's condition.
	cond bool
	keys []*keyState
	runs []*run
}

func (js *jstate) empty() bool {
	return js.count == nil && js.seq == nil && js.nfb == nil && js.abs == nil && !js.cond && len(js.keys) == 0 && len(js.runs) == 0
}

// resetTrigger drops the trigger's state (the trigger changed).
func (js *jstate) resetTrigger(fp uint64) {
	js.trig, js.count, js.seq, js.nfb, js.abs, js.cond = fp, nil, nil, nil, nil, false
}

func (js *jstate) key(k string, create bool) *keyState {
	for _, ks := range js.keys {
		if ks.key == k {
			return ks
		}
	}
	if !create {
		return nil
	}
	ks := &keyState{key: k}
	js.keys = append(js.keys, ks)
	return ks
}

func (js *jstate) run(id runID) *run {
	for _, r := range js.runs {
		if r.id == id {
			return r
		}
	}
	return nil
}

// keyState is the entries of a profile into a journey for one key value
// ("" without a key): how many, the last one, and the active run.
type keyState struct {
	key         string
	entries     int64
	lastEntered int64 // logical time, Unix nanoseconds
	active      runID // zero: none
}

// run is one pass of a profile through a journey version.
type run struct {
	id      runID
	version int
	key     string
	step    string // the step it is on (waiting in); "" once ended
	ended   bool
	reason  string // why it ended
	started int64  // logical time it started
	trigger []byte // the trigger event, encoded
	latest  []byte // the latest event (wait_for), encoded; nil: the trigger
	// due is the armed timer (0: none): the end of a wait, or the timeout
	// of a wait_for plus the allowed lateness.
	due int64
	// waitFrom and waitUntil bound, in event time, the events a wait_for
	// accepts; waitUntil is also the logical time of its timeout.
	waitFrom, waitUntil int64
	variant             string
	goalUntil           int64 // end of the attribution window (0: no goal)
	converted           bool
	visits              []visit // sends per step, for idempotency keys

	trig, last *nudge.Event // decoded on use
}

type visit struct {
	step string
	n    int64
}

func (r *run) visit(step string) int64 {
	for i := range r.visits {
		if r.visits[i].step == step {
			r.visits[i].n++
			return r.visits[i].n
		}
	}
	r.visits = append(r.visits, visit{step, 1})
	return 1
}

// triggerEvent and latestEvent decode the run's events.
func (r *run) triggerEvent() *nudge.Event {
	if r.trig == nil {
		r.trig = decodeEvent(r.trigger)
	}
	return r.trig
}

func (r *run) latestEvent() *nudge.Event {
	if r.latest == nil {
		return r.triggerEvent()
	}
	if r.last == nil {
		r.last = decodeEvent(r.latest)
	}
	return r.last
}

func decodeEvent(b []byte) *nudge.Event {
	e := new(nudge.Event)
	if len(b) > 0 {
		if n, k := binary.Uvarint(b); k > 0 && uint64(len(b)-k) == n {
			_ = e.Decode(b[k:])
		}
	}
	return e
}

func encodeEvent(e *nudge.Event) []byte {
	if e == nil {
		return nil
	}
	return nudge.AppendEncoded(nil, e)
}

// The encoding of a record: a version byte, the profile's partition and
// id, then the armed timers in the clear (due and id: an erasure deletes
// them after the key that seals the rest is gone), then a flag and the
// body, sealed under the profile's key when the runtime has a keyring.
// Version 2 keeps the events the patterns may start runs with as log
// references (eventRef); version 1 records (written before) still decode.
const (
	recordV1 = 1
	recordV2 = 2
)

func (c *custRecord) appendBody(w *wbuf) {
	w.count(len(c.journeys))
	for _, js := range c.journeys {
		w.str(js.id)
		w.u64(js.trig)
		w.bool(js.cond)
		var flags byte
		for i, present := range []bool{js.count != nil, js.seq != nil, js.nfb != nil, js.abs != nil} {
			if present {
				flags |= 1 << i
			}
		}
		w.byte(flags)
		if js.count != nil {
			js.count.encode(w)
		}
		if js.seq != nil {
			js.seq.encode(w)
		}
		if js.nfb != nil {
			js.nfb.encode(w)
		}
		if js.abs != nil {
			a := js.abs
			w.id(a.id)
			w.varint(a.last)
			a.ev.encode(w)
			w.varint(a.due)
			w.varint(a.fired)
		}
		w.count(len(js.keys))
		for _, ks := range js.keys {
			w.str(ks.key)
			w.varint(ks.entries)
			w.varint(ks.lastEntered)
			w.id(ks.active)
		}
		w.count(len(js.runs))
		for _, r := range js.runs {
			r.encode(w)
		}
	}
}

func (r *run) encode(w *wbuf) {
	w.id(r.id)
	w.varint(int64(r.version))
	w.str(r.key)
	w.str(r.step)
	w.bool(r.ended)
	w.str(r.reason)
	w.varint(r.started)
	w.bytes(r.trigger)
	w.bytes(r.latest)
	w.varint(r.due)
	w.varint(r.waitFrom)
	w.varint(r.waitUntil)
	w.str(r.variant)
	w.varint(r.goalUntil)
	w.bool(r.converted)
	w.count(len(r.visits))
	for _, v := range r.visits {
		w.str(v.step)
		w.varint(v.n)
	}
}

func decodeBody(c *custRecord, b []byte, version byte) error {
	r := newRbuf(b)
	n := r.count()
	c.journeys = make([]*jstate, 0, n)
	for range n {
		js := &jstate{id: r.str(), trig: r.u64(), cond: r.bool()}
		flags := r.byte()
		if flags&1 != 0 {
			js.count = decodeCount(r)
		}
		if flags&2 != 0 {
			js.seq = decodeSeq(r)
		}
		if flags&4 != 0 {
			js.nfb = decodeNFB(r, version)
		}
		if flags&8 != 0 {
			js.abs = &absState{id: r.id(), last: r.varint(), ev: decodeEventRef(r, version), due: r.varint(), fired: r.varint()}
		}
		nk := r.count()
		for range nk {
			js.keys = append(js.keys, &keyState{key: r.str(), entries: r.varint(), lastEntered: r.varint(), active: r.id()})
		}
		nr := r.count()
		js.runs = make([]*run, 0, nr)
		for range nr {
			js.runs = append(js.runs, decodeRun(r))
		}
		c.journeys = append(c.journeys, js)
		if err := r.corrupt(); err != nil {
			return err
		}
	}
	return r.done()
}

func decodeRun(r *rbuf) *run {
	x := &run{
		id: r.id(), version: int(r.varint()), key: r.str(), step: r.str(), ended: r.bool(), reason: r.str(),
		started: r.varint(), trigger: r.bytes(), latest: r.bytes(), due: r.varint(), waitFrom: r.varint(),
		waitUntil: r.varint(), variant: r.str(), goalUntil: r.varint(), converted: r.bool(),
	}
	nv := r.count()
	for range nv {
		x.visits = append(x.visits, visit{r.str(), r.varint()})
	}
	return x
}

// nanos is a duration in nanoseconds, for arithmetic on Unix nanoseconds.
func nanos(d time.Duration) int64 { return int64(d) }
