package journey

import (
	"slices"

	"github.com/nudge-dev/nudge/profile"
)

// The state machines of the pattern triggers, per profile and journey, over
// event time. They are plain data, encoded into the profile's record, and
// know nothing of the store: runtime.go feeds them events and starts runs
// from what they report.
//
// Lateness: each state keeps maxT, the latest event time it has seen from
// the profile. An event older than maxT minus the allowed lateness is too
// late and ignored. Entries older than maxT - lateness - within can take
// part in no future match and are pruned, so an event's message hash is
// remembered for as long as a duplicate of it could still count: a
// duplicate is either found by its hash or too late.

// Bounds of the pattern state of one profile in one journey.
const (
	maxMarks  = 256 // events remembered per group (count, sequence)
	maxGroups = 64  // group_by / correlate values
	maxPendA  = 64  // not_followed_by: first events remembered
	maxBMarks = 256 // not_followed_by: following events remembered
)

// mark is one event remembered by a count or sequence pattern.
type mark struct {
	t    int64  // event time, Unix nanoseconds
	h    uint64 // hash of the message id
	step uint8  // sequence: the index of the filter it matched
	used bool   // consumed by a match
	ev   []byte // sequence, last filter: the encoded event (a trigger event)
}

func cmpMark(a, b *mark) int {
	switch {
	case a.t < b.t:
		return -1
	case a.t > b.t:
		return 1
	case a.h < b.h:
		return -1
	case a.h > b.h:
		return 1
	}
	return int(a.step) - int(b.step)
}

type group struct {
	key   string
	marks []mark // by time, then hash
}

func (g *group) newest() int64 {
	if len(g.marks) == 0 {
		return 0
	}
	return g.marks[len(g.marks)-1].t
}

// groups finds or makes the group of key, evicting the group with the
// oldest events past maxGroups.
func findGroup(gs *[]*group, key string) *group {
	for _, g := range *gs {
		if g.key == key {
			return g
		}
	}
	if len(*gs) >= maxGroups {
		oldest := 0
		for i, g := range *gs {
			if g.newest() < (*gs)[oldest].newest() {
				oldest = i
			}
		}
		*gs = slices.Delete(*gs, oldest, oldest+1)
	}
	g := &group{key: key}
	*gs = append(*gs, g)
	return g
}

// prune drops the marks before cutoff, and the groups left empty.
func pruneGroups(gs *[]*group, cutoff int64) {
	*gs = slices.DeleteFunc(*gs, func(g *group) bool {
		i := 0
		for i < len(g.marks) && g.marks[i].t < cutoff {
			i++
		}
		if i > 0 {
			g.marks = slices.Delete(g.marks, 0, i)
		}
		return len(g.marks) == 0
	})
}

// insert adds m to g in order, dropping the oldest past maxMarks; it
// reports false for a duplicate (same hash and step).
func (g *group) insert(m mark) (int, bool) {
	for i := range g.marks {
		if g.marks[i].h == m.h && g.marks[i].step == m.step {
			return i, false
		}
	}
	i, _ := slices.BinarySearchFunc(g.marks, &m, func(x mark, y *mark) int { return cmpMark(&x, y) })
	g.marks = slices.Insert(g.marks, i, m)
	if len(g.marks) > maxMarks {
		g.marks = slices.Delete(g.marks, 0, 1)
		i--
	}
	return i, true
}

// countState is a count pattern's state: the events in the window, per
// group_by value.
type countState struct {
	maxT   int64
	groups []*group
}

// observeResult says what an event did to a pattern.
type observeResult uint8

const (
	observed  observeResult = iota // remembered, no match
	matched                        // the pattern completed
	tooLate                        // older than the allowed lateness
	duplicate                      // seen already
)

// observe adds an event of time t and message hash h to the group; it
// reports matched when the group then holds count unused events within
// `within` of each other, the new one among them, and marks them used.
func (s *countState) observe(count int, within, lateness int64, key string, t int64, h uint64) observeResult {
	if s.maxT != 0 && t < s.maxT-lateness {
		return tooLate
	}
	g := findGroup(&s.groups, key)
	idx, fresh := g.insert(mark{t: t, h: h})
	if !fresh {
		return duplicate
	}
	s.maxT = max(s.maxT, t)
	res := observed
	// Windows [start, start+within] that hold the new event: start is an
	// unused event at or before it, at most `within` earlier.
	for i := 0; i <= idx; i++ {
		st := g.marks[i]
		if st.used || st.t < t-within {
			continue
		}
		n := 0
		for j := i; j < len(g.marks) && g.marks[j].t <= st.t+within; j++ {
			if !g.marks[j].used {
				n++
			}
		}
		if n < count {
			continue
		}
		// Consume the new event and the count-1 earliest others.
		g.marks[idx].used = true
		need := count - 1
		for j := i; need > 0; j++ {
			if j != idx && !g.marks[j].used {
				g.marks[j].used = true
				need--
			}
		}
		res = matched
		break
	}
	pruneGroups(&s.groups, s.maxT-lateness-within)
	return res
}

func (s *countState) encode(w *wbuf) { encodeGroups(w, s.maxT, s.groups, false) }

func decodeCount(r *rbuf) *countState {
	s := &countState{}
	s.maxT, s.groups = decodeGroups(r, false)
	return s
}

func encodeGroups(w *wbuf, maxT int64, gs []*group, seq bool) {
	w.varint(maxT)
	w.count(len(gs))
	for _, g := range gs {
		w.str(g.key)
		w.count(len(g.marks))
		for _, m := range g.marks {
			w.varint(m.t)
			w.u64(m.h)
			w.bool(m.used)
			if seq {
				w.byte(m.step)
				w.bytes(m.ev)
			}
		}
	}
}

func decodeGroups(r *rbuf, seq bool) (int64, []*group) {
	maxT := r.varint()
	n := r.count()
	gs := make([]*group, 0, n)
	for range n {
		g := &group{key: r.str()}
		nm := r.count()
		g.marks = make([]mark, 0, nm)
		for range nm {
			m := mark{t: r.varint(), h: r.u64(), used: r.bool()}
			if seq {
				m.step = r.byte()
				m.ev = r.bytes()
			}
			g.marks = append(g.marks, m)
		}
		gs = append(gs, g)
	}
	return maxT, gs
}

// seqState is a sequence pattern's state: the events matching each of its
// filters, per correlate value.
type seqState struct {
	maxT   int64
	groups []*group
}

// observe adds an event that matches the filters at the indices steps (of
// n filters); ev is its encoding, kept when it matches the last filter
// (it may become the trigger event). On a match it returns the encoded
// last event of the sequence found, and marks the sequence's events used.
func (s *seqState) observe(n int, steps []int, within, lateness int64, key string, t int64, h uint64, ev []byte) (observeResult, []byte) {
	if s.maxT != 0 && t < s.maxT-lateness {
		return tooLate, nil
	}
	g := findGroup(&s.groups, key)
	fresh := false
	for _, st := range steps {
		m := mark{t: t, h: h, step: uint8(st)}
		if st == n-1 {
			m.ev = ev
		}
		if _, ok := g.insert(m); ok {
			fresh = true
		}
	}
	if !fresh {
		return duplicate, nil
	}
	s.maxT = max(s.maxT, t)
	res, last := observed, []byte(nil)
	chosen := make([]int, n)
	for i := range g.marks {
		a := &g.marks[i]
		if a.used || a.step != 0 {
			continue
		}
		chosen[0] = i
		ok := true
		cur := i
		for k := 1; k < n && ok; k++ {
			ok = false
			for j := cur + 1; j < len(g.marks); j++ {
				m := &g.marks[j]
				if m.t > a.t+within {
					break
				}
				if m.used || int(m.step) != k || usedHash(g, chosen[:k], m.h) {
					continue
				}
				chosen[k], cur, ok = j, j, true
				break
			}
		}
		if !ok {
			continue
		}
		for _, j := range chosen {
			g.marks[j].used = true
		}
		res, last = matched, g.marks[chosen[n-1]].ev
		break
	}
	pruneGroups(&s.groups, s.maxT-lateness-within)
	// An event to come is either late (at most lateness before maxT) or
	// after every mark: a last-step mark older than maxT - lateness can end
	// no sequence any more, and its encoded event goes.
	cutoff := s.maxT - lateness
	for _, g := range s.groups {
		g.marks = slices.DeleteFunc(g.marks, func(m mark) bool { return int(m.step) == n-1 && m.t < cutoff })
	}
	return res, last
}

// usedHash reports whether one of the chosen marks is the event h (an event
// matching two filters cannot play both parts).
func usedHash(g *group, chosen []int, h uint64) bool {
	for _, j := range chosen {
		if g.marks[j].h == h {
			return true
		}
	}
	return false
}

func (s *seqState) encode(w *wbuf) { encodeGroups(w, s.maxT, s.groups, true) }

func decodeSeq(r *rbuf) *seqState {
	s := &seqState{}
	s.maxT, s.groups = decodeGroups(r, true)
	return s
}

// nfbState is a not_followed_by pattern's state: the first events whose
// window is open (each with a timer at its end plus the allowed lateness),
// the first events already followed or fired (their hash, to recognise a
// duplicate), and recent following events, for first events that arrive
// after them.
type nfbState struct {
	maxT int64
	as   []*pendA
	done []bMark // corr unused
	bs   []bMark
}

type pendA struct {
	id   runID
	t    int64
	h    uint64
	corr string
	ev   eventRef // the first event: the trigger event
	due  int64    // its timer: t + within + lateness
}

type bMark struct {
	t    int64
	h    uint64
	corr string
}

// observeA remembers a first event; it returns the new pending entry, or
// nil when the event is too late, a duplicate, or already followed.
func (s *nfbState) observeA(id runID, within, lateness int64, corr string, t int64, h uint64, ev eventRef) (*pendA, observeResult) {
	if s.maxT != 0 && t < s.maxT-lateness {
		return nil, tooLate
	}
	for _, a := range s.as {
		if a.h == h {
			return nil, duplicate
		}
	}
	for _, d := range s.done {
		if d.h == h {
			return nil, duplicate
		}
	}
	s.maxT = max(s.maxT, t)
	defer s.prune(within, lateness)
	for _, b := range s.bs {
		if b.corr == corr && b.h != h && b.t >= t && b.t <= t+within {
			s.markDone(t, h)
			return nil, observed
		}
	}
	if len(s.as) >= maxPendA {
		s.as = slices.Delete(s.as, 0, 1) // the oldest window: its timer goes with it
	}
	a := &pendA{id: id, t: t, h: h, corr: corr, ev: ev, due: t + within + lateness}
	s.as = append(s.as, a)
	return a, observed
}

func (s *nfbState) markDone(t int64, h uint64) {
	if len(s.done) >= maxBMarks {
		s.done = slices.Delete(s.done, 0, 1)
	}
	s.done = append(s.done, bMark{t: t, h: h})
}

// observeB closes the open windows the following event falls in, and
// remembers it for first events still to come.
func (s *nfbState) observeB(within, lateness int64, corr string, t int64, h uint64) (closed int) {
	s.as = slices.DeleteFunc(s.as, func(a *pendA) bool {
		if a.corr == corr && a.h != h && t >= a.t && t <= a.t+within {
			s.markDone(a.t, a.h)
			closed++
			return true
		}
		return false
	})
	if s.maxT != 0 && t < s.maxT-lateness-within {
		return closed // no first event to come can be followed by it
	}
	for _, b := range s.bs {
		if b.h == h {
			return closed
		}
	}
	s.maxT = max(s.maxT, t)
	if len(s.bs) >= maxBMarks {
		s.bs = slices.Delete(s.bs, 0, 1)
	}
	i, _ := slices.BinarySearchFunc(s.bs, t, func(b bMark, t int64) int { return cmpInt(b.t, t) })
	s.bs = slices.Insert(s.bs, i, bMark{t, h, corr})
	s.prune(within, lateness)
	return closed
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// fire takes the pending window id out (its timer fired), keeping its hash.
func (s *nfbState) fire(id runID) *pendA {
	for i, a := range s.as {
		if a.id == id {
			s.as = slices.Delete(s.as, i, i+1)
			s.markDone(a.t, a.h)
			return a
		}
	}
	return nil
}

func (s *nfbState) prune(within, lateness int64) {
	cutoff := s.maxT - lateness - within
	s.done = slices.DeleteFunc(s.done, func(d bMark) bool { return d.t < cutoff })
	i := 0
	for i < len(s.bs) && s.bs[i].t < cutoff {
		i++
	}
	s.bs = slices.Delete(s.bs, 0, i)
}

func (s *nfbState) empty() bool { return len(s.as) == 0 && len(s.bs) == 0 && len(s.done) == 0 }

func (s *nfbState) encode(w *wbuf) {
	w.varint(s.maxT)
	w.count(len(s.as))
	for _, a := range s.as {
		w.id(a.id)
		w.varint(a.t)
		w.u64(a.h)
		w.str(a.corr)
		a.ev.encode(w)
		w.varint(a.due)
	}
	w.count(len(s.done))
	for _, d := range s.done {
		w.varint(d.t)
		w.u64(d.h)
	}
	w.count(len(s.bs))
	for _, b := range s.bs {
		w.varint(b.t)
		w.u64(b.h)
		w.str(b.corr)
	}
}

func decodeNFB(r *rbuf, version byte) *nfbState {
	s := &nfbState{maxT: r.varint()}
	n := r.count()
	s.as = make([]*pendA, 0, n)
	as := make([]pendA, n)
	for i := range n {
		as[i] = pendA{id: r.id(), t: r.varint(), h: r.u64(), corr: r.str(), ev: decodeEventRef(r, version), due: r.varint()}
		s.as = append(s.as, &as[i])
	}
	n = r.count()
	s.done = make([]bMark, 0, n)
	for range n {
		s.done = append(s.done, bMark{t: r.varint(), h: r.u64()})
	}
	n = r.count()
	s.bs = make([]bMark, 0, n)
	for range n {
		s.bs = append(s.bs, bMark{t: r.varint(), h: r.u64(), corr: r.str()})
	}
	return s
}

// absState is an absence trigger's state: the latest matching event and
// the one timer armed for the profile. The timer is not moved by each
// event: when it fires it finds the deadline moved and re-arms itself, so
// an active customer costs one record write per event and one timer write
// per `duration`.
type absState struct {
	id    runID
	last  int64    // the latest matching event's time
	ev    eventRef // that event: the trigger event
	due   int64    // the armed timer, 0 for none
	fired int64    // the `last` a run was started for (the silence is reported once)
}

// eventRef is an event a pattern keeps as a possible trigger event: where
// the log holds it, or a copy when the log did not say (records written
// before version 2). A record is rewritten with every event of its
// customer, and a kept event is read back only when its run starts: a copy
// made a record with the shipped journeys about 1 KB instead of 100 bytes,
// and the store's writes, flushes and compactions grew with it (a quarter
// of the CPU an event).
type eventRef struct {
	at profile.LogRef
	ev []byte
}

func (e eventRef) encode(w *wbuf) {
	w.uvarint(e.at.Seq)
	w.uvarint(uint64(e.at.Index))
	w.bytes(e.ev)
}

func decodeEventRef(r *rbuf, version byte) eventRef {
	var e eventRef
	if version >= recordV2 {
		e.at = profile.LogRef{Seq: r.uvarint(), Index: uint32(r.uvarint())}
	}
	e.ev = r.bytes()
	return e
}
