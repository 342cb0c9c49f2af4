package journey

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/nudge-dev/nudge"
	"github.com/nudge-dev/nudge/channel"
	"github.com/nudge-dev/nudge/profile"
	"github.com/nudge-dev/nudge/shred"
)

// Engine is what the runtime needs of the profile engine (*profile.Engine):
// running a function with a Tx under the engine's lock, committed at once
// when the function calls Tx.Urgent. Timers fire and send outcomes are
// recorded through it.
type Engine interface {
	Do(ctx context.Context, fn func(tx *profile.Tx) error) error
}

// ExtReader reads committed extension keys (a profile.Store). The send
// dispatcher reads jobs through it, so that it only ever sends a job whose
// run state is durable.
type ExtReader interface {
	Ext(ctx context.Context, key []byte) ([]byte, bool, error)
	ScanExt(ctx context.Context, from, to []byte, fn func(key, value []byte) error) error
}

// TimeSource is the runtime's clock: Now, and a channel that receives
// after d. Engine code never reads the wall clock itself; tests pass a
// fake. (Clock, in this package, is a time of day.)
type TimeSource interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// WallClock is the system's clock.
type WallClock struct{}

// Now returns time.Now().
func (WallClock) Now() time.Time { return time.Now() }

// After returns time.After(d).
func (WallClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Config configures a Runtime.
type Config struct {
	// Engine and Store are the profile engine the runtime reacts inside,
	// and its store; both required.
	Engine Engine
	Store  ExtReader
	// Keys, when set, seals what the runtime keeps of a person (run state
	// with their events, rendered messages) under their profile's key, as
	// the profile store does, so that erasing them makes it unreadable.
	// nudge serve sets it; without it the state is stored in the clear.
	Keys *shred.Keyring
	// Clock defaults to WallClock; Logger to one that discards.
	Clock  TimeSource
	Logger *slog.Logger
	// Templates are the named templates send steps may use (template:
	// name): each a map of field name to Liquid text.
	Templates map[string]map[string]string
	// SendWorkers is how many sends each channel runs at once, unless
	// Lanes says otherwise (default 32); SendTimeout bounds one send
	// (default 10 s).
	SendWorkers int
	SendTimeout time.Duration
	// Caps are the frequency caps of marketing messages, across journeys.
	Caps []Cap
	// Links, when set, makes the signed links of marketing messages: the
	// one-click unsubscribe link, click tracking and the open pixel.
	Links Links
	// Lanes configures channels' concurrency, rate limits and circuit
	// breakers, by channel name.
	Lanes map[string]LaneConfig
	// MaxAttempts bounds the attempts of a send that fails with a
	// retryable error (default 12), and MaxAge its age (default 24 h):
	// past either it is dead-lettered. The waits between attempts double
	// from RetryMin (default 10 s) up to RetryMax (default 1 h), less up to
	// a half at random, and are at least what the channel's Retry-After
	// asked for: by default a message rides out a provider outage of about
	// two to three hours.
	MaxAttempts        int
	MaxAge             time.Duration
	RetryMin, RetryMax time.Duration
	// Batch is how many timers, or send jobs, one engine transaction
	// handles (default 1,000).
	Batch int
	// TimeToTrigger, when set, is told of every first send attempt that an
	// event caused: its channel and the time from the event's
	// acknowledgement to the attempt (the metrics histogram).
	TimeToTrigger func(channel string, d time.Duration)
	// TimerFired, when set, is told of every timer fired: how late it
	// fired (0 or more), from its due time to the commit of its firing.
	TimerFired func(lateness time.Duration)
	// Delivery, when set, is told of every send attempt: its channel, its
	// outcome ("sent", "retry" or "failed") and how long it took.
	Delivery func(channel, outcome string, d time.Duration)
}

func (c *Config) defaults() {
	if c.Clock == nil {
		c.Clock = WallClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.SendWorkers <= 0 {
		c.SendWorkers = 32
	}
	if c.MaxAge <= 0 {
		c.MaxAge = 24 * time.Hour
	}
	if c.SendTimeout <= 0 {
		c.SendTimeout = 10 * time.Second
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 12
	}
	if c.RetryMin <= 0 {
		c.RetryMin = 10 * time.Second
	}
	if c.RetryMax <= 0 {
		c.RetryMax = time.Hour
	}
	if c.Batch <= 0 {
		c.Batch = 1000
	}
}

// Links makes the signed links of a message (package engage, wired by
// nudge serve).
type Links interface {
	// UnsubscribeURL is the one-click unsubscribe link of a marketing
	// message, from the channel's group ("": the channel), before its
	// fields are rendered (templates show it as journey.unsubscribe_url).
	UnsubscribeURL(ref profile.Ref, m *channel.Message, group string) string
	// Track rewrites the message's rendered fields for engagement
	// tracking (an email's links and open pixel).
	Track(ref profile.Ref, m *channel.Message) error
}

// Runtime runs journeys: it is a profile.Reactor, so it sees every event
// applied to a profile, in the engine's transaction, and keeps its state
// (runs, pattern windows, timers, send jobs, stats) in extension keys that
// commit atomically with the profile and the log position. Run fires its
// durable timers and delivers its send jobs.
//
// Lifecycle: NewRuntime, then profile.Engine.SetReactor, then Run (with
// the engine's Run) until the context is done.
type Runtime struct {
	cfg      Config
	channels map[string]channel.Channel
	cat      atomic.Pointer[catalog]
	logger   *slog.Logger

	// Timers: only the next due time is in memory, and a floor: no timer
	// key sorts before it, so a scan starts there instead of walking the
	// tombstones of the timers already fired. Both change under the
	// engine's lock (in Tx calls).
	timerFloor keyFloor
	planned    atomic.Int64 // when the timer loop looks next (0: it is not waiting)
	// recWrites tells whether a record read outside the engine's lock is
	// still current (the timer loop reads ahead of its transactions).
	recWrites recordWrites

	// Send jobs, likewise: no committed job key sorts before jobFloor.
	// jobPending holds the lowest job key written into each batch not yet
	// committed, in generation order (guarded by the engine's lock): the
	// batch's commit lowers the floor to it and wakes the dispatcher
	// (Committed), so a scan needs no pass through the engine's lock.
	jobFloor   keyFloor
	jobPending []pendingJob
	// erasedJobs are claimed jobs that Erased deleted: their outcomes are
	// not recorded (guarded by the engine's lock).
	erasedJobs map[string]bool

	// The dispatcher (dispatch.go): a lane per channel; the jobs handed
	// out and not yet recorded (claimed), and those recorded since the
	// last scan began (finished), guarded by dispMu.
	lanes    map[string]*lane
	dispMu   sync.Mutex
	claimed  map[string]bool
	finished []string
	// deadLetters counts the dead-letter queue; timers the pending timers.
	deadLetters, timers atomic.Int64

	timerKick chan struct{}
	sendKick  chan struct{}
	deliverMu sync.Mutex // one delivery round at a time
	fireMu    sync.Mutex // one pass of fireDue at a time

	statsMu sync.Mutex
	stats   map[verKey]*vstats

	zones sync.Map // time zone name -> *time.Location (or nil: unknown)
}

var _ profile.Reactor = (*Runtime)(nil)

// NewRuntime returns a runtime for the journeys, which may hold several
// versions of one journey: new runs start on the highest, and runs on the
// others finish on theirs. Every send step must name one of channels, and
// every template must parse.
func NewRuntime(cfg Config, journeys []*Journey, channels []channel.Channel) (*Runtime, error) {
	if cfg.Engine == nil || cfg.Store == nil {
		return nil, errors.New("journey: the runtime needs the profile engine and its store")
	}
	cfg.defaults()
	rt := &Runtime{
		cfg: cfg, logger: cfg.Logger, channels: map[string]channel.Channel{},
		timerKick: make(chan struct{}, 1), sendKick: make(chan struct{}, 1),
		stats: map[verKey]*vstats{}, erasedJobs: map[string]bool{},
		lanes: map[string]*lane{}, claimed: map[string]bool{},
	}
	rt.recWrites.oldest.Store(math.MaxUint64)
	for _, ch := range channels {
		if _, dup := rt.channels[ch.Name()]; dup {
			return nil, fmt.Errorf("journey: two channels are named %q", ch.Name())
		}
		rt.channels[ch.Name()] = ch
		rt.lanes[ch.Name()] = newLane(ch, cfg.Lanes[ch.Name()], cfg.SendWorkers)
	}
	for name := range cfg.Lanes {
		if rt.channels[name] == nil {
			return nil, fmt.Errorf("journey: lane settings for %q, which is no channel", name)
		}
	}
	if err := rt.SetJourneys(journeys); err != nil {
		return nil, err
	}
	if err := rt.loadStats(context.Background()); err != nil {
		return nil, err
	}
	if err := rt.countDeadLetters(context.Background()); err != nil {
		return nil, err
	}
	if err := rt.countTimers(context.Background()); err != nil {
		return nil, err
	}
	return rt, nil
}

// SetJourneys replaces the journeys the runtime runs (a journey changed
// through the admin API). Runs on a version that is no longer given end,
// with the reason "unloaded", when they next wake.
func (rt *Runtime) SetJourneys(journeys []*Journey) error {
	names := make([]string, 0, len(rt.channels))
	for n := range rt.channels {
		names = append(names, n)
	}
	slices.Sort(names)
	cat, err := newCatalog(journeys, names, rt.cfg.Templates)
	if err != nil {
		return err
	}
	rt.cat.Store(cat)
	return nil
}

// Journeys returns the versions the runtime runs.
func (rt *Runtime) Journeys() []*Journey {
	cat := rt.cat.Load()
	out := make([]*Journey, 0, len(cat.byVer))
	for _, c := range cat.byVer {
		out = append(out, c.j)
	}
	slices.SortFunc(out, func(a, b *Journey) int {
		return cmp.Or(cmp.Compare(a.ID, b.ID), cmp.Compare(a.Version, b.Version))
	})
	return out
}

// txn is one call of the engine into the runtime (React, Merged, Erased,
// a timer firing): the Tx, the catalog and the clock, fixed for the call.
type txn struct {
	rt       *Runtime
	ctx      context.Context
	tx       *profile.Tx
	cat      *catalog
	now      int64
	stats    map[verKey]bool // changed in this call
	noted    int64           // the earliest timer armed in this call (0: none)
	lowTimer []byte          // the lowest timer key armed in this call
	jobs     bool            // a send job was written
	err      error           // the first error of a step (the call fails with it)
	event    *nudge.Event    // the event being reacted to; nil when a timer fired
	ahead    *readAhead      // records read ahead of the call (timers.go); nil: none
}

func (rt *Runtime) begin(ctx context.Context, tx *profile.Tx) *txn {
	return &txn{rt: rt, ctx: ctx, tx: tx, cat: rt.cat.Load(), now: unixNanos(rt.cfg.Clock.Now())}
}

// finish writes the stats the call changed and wakes the loops.
func (t *txn) finish() error {
	if err := t.writeStats(); err != nil {
		return err
	}
	if t.jobs {
		t.tx.Urgent() // Committed wakes the dispatcher
	}
	if t.noted != 0 {
		if p := t.rt.planned.Load(); p == 0 || t.noted < p {
			kick(t.rt.timerKick)
		}
	}
	return t.err
}

// pendingJob is the lowest job key written into the batch of generation gen.
type pendingJob struct {
	gen uint64
	key []byte
}

// Committed implements profile.Committer: the jobs and records written
// into the batches through gen are in the store now (recordWrites counts
// it).
func (rt *Runtime) Committed(gen uint64) {
	rt.recWrites.committed(gen)
	n := 0
	for n < len(rt.jobPending) && rt.jobPending[n].gen <= gen {
		rt.jobFloor.lower(rt.jobPending[n].key)
		n++
	}
	if n > 0 {
		rt.jobPending = slices.Delete(rt.jobPending, 0, n)
		kick(rt.sendKick)
	}
}

func kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// work is one profile's record, loaded in a call.
type work struct {
	t        *txn
	ref      profile.Ref
	p        *profile.Profile
	rec      *custRecord
	before   []dueID // the timers the stored record had
	existed  bool
	sealed   bool            // the stored body is sealed, under sealer's key
	sealer   shred.Pseudonym // the id the stored body was sealed under
	shredded bool            // the record is sealed under an erased key
	gone     bool            // the profile was looked for and is gone
	body     []byte          // the stored body, to skip writing an unchanged record
}

type dueID struct {
	due int64
	id  runID
}

func (t *txn) load(ref profile.Ref) (*work, error) {
	if w := t.ahead.take(t, ref); w != nil {
		return w, nil
	}
	v, ok, err := t.tx.Get(t.ctx, recordKey(ref.P))
	if err != nil {
		return nil, err
	}
	w, err := t.rt.decodeRecord(ref, v, ok)
	if w != nil {
		w.t = t
	}
	return w, err
}

// decodeRecord decodes a stored record (v, when ok) into a work without
// its txn; it needs no engine state, and runs outside the engine's lock
// when the timer loop reads ahead.
func (rt *Runtime) decodeRecord(ref profile.Ref, v []byte, ok bool) (*work, error) {
	w := &work{ref: ref, rec: &custRecord{ref: ref}}
	if !ok {
		return w, nil
	}
	w.existed = true
	r := newRbuf(v)
	version := r.byte()
	if version != recordV1 && version != recordV2 {
		return nil, fmt.Errorf("%w: record of %s", errCorrupt, ref.P)
	}
	r.uvarint()              // the partition when written; ref is current
	w.sealer = r.pseudonym() // the id the body was sealed under
	n := r.count()
	w.before = make([]dueID, 0, n)
	for range n {
		due := int64(r.u64())
		w.before = append(w.before, dueID{due, r.id()})
	}
	sealed := r.bool()
	body := r.bytes()
	if err := r.corrupt(); err != nil {
		return nil, fmt.Errorf("%w: record of %s", err, ref.P)
	}
	if sealed {
		if rt.cfg.Keys == nil {
			return nil, fmt.Errorf("journey: the record of %s is sealed and the runtime has no keyring", ref.P)
		}
		w.sealed = true
		var err error
		body, err = rt.cfg.Keys.Open(nil, w.sealer, body)
		if errors.Is(err, shred.ErrShredded) {
			w.shredded = true
			return w, nil
		}
		if err != nil {
			return nil, fmt.Errorf("journey: record of %s: %w", ref.P, err)
		}
	}
	w.body = body
	if err := decodeBody(w.rec, body, version); err != nil {
		return nil, fmt.Errorf("journey: record of %s: %w", ref.P, err)
	}
	return w, nil
}

// profile returns the record's profile, loading it when the call did not
// come with it (a timer fired) and a step needs it; nil when it is gone.
func (w *work) profile() *profile.Profile {
	if w.p == nil && !w.gone {
		p, err := w.t.tx.Profile(w.t.ctx, w.ref)
		if err != nil {
			w.t.fail(err)
		}
		w.p, w.gone = p, p == nil
	}
	return w.p
}

func (t *txn) fail(err error) {
	if t.err == nil {
		t.err = err
	}
}

// save writes the record back, with its timers: the timers it no longer
// has are deleted, the new ones set.
func (w *work) save() error {
	t := w.t
	after := w.rec.timers()
	if w.shredded {
		after = nil
	}
	for _, b := range w.before {
		if !slices.ContainsFunc(after, func(a timerRef) bool { return a.due == b.due && a.id == b.id }) {
			t.tx.Delete(timerKey(b.due, b.id))
			t.rt.timers.Add(-1)
		}
	}
	for _, a := range after {
		if !slices.Contains(w.before, dueID{a.due, a.id}) {
			k := timerKey(a.due, a.id)
			t.tx.Set(k, timerValue(a, w.ref))
			t.note(k, a.due)
			t.rt.timers.Add(1)
		}
	}
	if w.shredded || w.rec.empty() {
		if w.existed {
			t.tx.Delete(recordKey(w.ref.P))
			t.rt.recWrites.wrote(w.ref.P, t.tx.Gen())
		}
		return t.err
	}
	body := wbuf{b: make([]byte, 0, len(w.body)+256)}
	w.rec.appendBody(&body)
	// A version 1 body that encodes the same is left as it is: the two
	// versions differ only where patterns keep events.
	if w.existed && bytes.Equal(body.b, w.body) && len(after) == len(w.before) {
		return t.err
	}
	out := wbuf{b: make([]byte, 0, len(body.b)+64+24*len(after))}
	out.byte(recordV2)
	out.uvarint(uint64(w.ref.Partition))
	out.b = append(out.b, w.ref.P[:]...)
	out.count(len(after))
	for _, a := range after {
		out.u64(uint64(max(a.due, 0)))
		out.id(a.id)
	}
	if keys := t.rt.cfg.Keys; keys != nil {
		sealed, err := t.rt.seal(w.ref.P, body.b)
		if err != nil {
			return err
		}
		out.bool(true)
		out.bytes(sealed)
	} else {
		out.bool(false)
		out.bytes(body.b)
	}
	t.tx.Set(recordKey(w.ref.P), out.b)
	t.rt.recWrites.wrote(w.ref.P, t.tx.Gen())
	w.body, w.existed = body.b, true
	w.before = w.before[:0]
	for _, a := range after {
		w.before = append(w.before, dueID{a.due, a.id})
	}
	return t.err
}

// seal seals plain under a profile's key; a key made for it is synced at
// once, since what it seals is about to be committed.
func (rt *Runtime) seal(p shred.Pseudonym, plain []byte) ([]byte, error) {
	sealed, pending, err := rt.cfg.Keys.Seal(nil, p, plain)
	if err != nil {
		return nil, fmt.Errorf("journey: sealing state of %s: %w", p, err)
	}
	if pending != nil {
		if err := rt.cfg.Keys.Sync(); err != nil {
			return nil, err
		}
	}
	return sealed, nil
}

// note records that a timer is armed: the loop wakes earlier if it must,
// and the next scan starts no later than its key.
func (t *txn) note(key []byte, due int64) {
	t.rt.timerFloor.lower(key)
	if t.lowTimer == nil || bytes.Compare(key, t.lowTimer) < 0 {
		t.lowTimer = key
	}
	if t.noted == 0 || due < t.noted {
		t.noted = due
	}
}

// keyFloor is a key below which a key range holds nothing to do (nil: the
// start of the range).
type keyFloor struct {
	mu       sync.Mutex
	k        []byte
	scanning bool
	low      []byte // the lowest key lowered to since begin
}

func (f *keyFloor) get() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.k
}

// lower moves the floor down to k (a nil floor, the start, stays).
func (f *keyFloor) lower(k []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.k != nil && bytes.Compare(k, f.k) < 0 {
		f.k = k
	}
	if f.scanning && (f.low == nil || bytes.Compare(k, f.low) < 0) {
		f.low = k
	}
}

// raise sets the floor to k, or to what was lowered below it.
func (f *keyFloor) raise(k []byte, lowered ...[]byte) {
	for _, l := range lowered {
		if l != nil && bytes.Compare(l, k) < 0 {
			k = l
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.k = k
}

// begin starts a scan from the floor, which it returns; end raises the
// floor to the first key the scan saw, or to a key committed while it
// ran if that is lower (the scan's snapshot may have missed it).
func (f *keyFloor) begin() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scanning, f.low = true, nil
	return f.k
}

func (f *keyFloor) end(first []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.low != nil && bytes.Compare(f.low, first) < 0 {
		first = f.low
	}
	f.k, f.scanning, f.low = first, false, nil
}

// evInfo is an event with what the runtime derives from it, computed once.
type evInfo struct {
	e   *nudge.Event
	t   int64  // event time, Unix nanoseconds
	h   uint64 // hash of source and message id
	enc []byte
}

func newEvInfo(e *nudge.Event) *evInfo {
	return &evInfo{e: e, t: unixNanos(e.Timestamp), h: xxhash.Sum64String(e.Source + "\x00" + e.MessageID)}
}

func (v *evInfo) encoded() []byte {
	if v.enc == nil {
		v.enc = encodeEvent(v.e)
	}
	return v.enc
}

// prop returns a property as text: see propOf.
func (v *evInfo) prop(key string) string { return propOf(v.e, key) }

// propOf returns a property of an event as text: a string's value, other
// JSON as written (compact); "" when missing or null.
func propOf(e *nudge.Event, key string) string {
	if key == "" || e == nil {
		return ""
	}
	v, _, _ := lookupMember(e.Properties, key)
	return rawText(v)
}

func rawText(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	if raw[0] == '"' {
		if bytes.IndexByte(raw, '\\') < 0 {
			return string(raw[1 : len(raw)-1])
		}
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
	}
	if raw[0] != '{' && raw[0] != '[' {
		return string(raw)
	}
	var b bytes.Buffer
	if json.Compact(&b, raw) == nil {
		return b.String()
	}
	return string(raw)
}

// React implements profile.Reactor: the event goes to the profile's runs
// (goals, exit rules, waits for events), then to every journey's trigger.
func (rt *Runtime) React(ctx context.Context, tx *profile.Tx, p *profile.Profile, e *nudge.Event) error {
	t := rt.begin(ctx, tx)
	t.event = e
	counted := t.countFeedback(e)
	if len(t.cat.byVer) == 0 || !t.cat.interested(e) {
		if counted {
			return t.finish()
		}
		return nil
	}
	var w *work
	if firstEvent(&p.State) {
		// Records are made only by React for the profile (or moved to it
		// by a merge, which brings the merged profile's events with it):
		// a profile's first event has none to read.
		w = &work{t: t, ref: p.ID, rec: &custRecord{ref: p.ID}}
	} else {
		var err error
		if w, err = t.load(p.ID); err != nil {
			return err
		}
		if w.shredded {
			return w.save()
		}
	}
	w.p = p
	ev := newEvInfo(e)
	for _, js := range slices.Clone(w.rec.journeys) {
		t.eventToRuns(w, js, ev)
	}
	vars := NewVars(e, &p.State)
	for _, c := range t.cat.current {
		t.trigger(w, c, ev, vars)
	}
	t.pruneRecord(w)
	if err := w.save(); err != nil {
		return err
	}
	return t.finish()
}

// firstEvent reports whether the state holds one event only.
func firstEvent(s *profile.State) bool {
	n := s.Dropped.Counts
	for _, c := range s.Counts {
		if n += c; n > 1 {
			return false
		}
	}
	return n == 1
}

// Merged implements profile.Reactor: the runs and trigger state of the
// profile from move to the profile to. When both had an active run of a
// journey for the same key, from's ends with the reason "merged".
func (rt *Runtime) Merged(ctx context.Context, tx *profile.Tx, from, to profile.Ref) error {
	t := rt.begin(ctx, tx)
	fw, err := t.load(from)
	if err != nil || !fw.existed {
		return err
	}
	tw, err := t.load(to)
	if err != nil {
		return err
	}
	if !fw.shredded && !tw.shredded {
		t.mergeRecords(tw, fw.rec)
	}
	fw.rec.journeys = nil
	if err := fw.save(); err != nil {
		return err
	}
	if err := tw.save(); err != nil {
		return err
	}
	return t.finish()
}

// Erased implements profile.Reactor: the person's records, timers and
// pending send jobs go. (A send already handed to a channel cannot be
// called back.)
func (rt *Runtime) Erased(ctx context.Context, tx *profile.Tx, er *profile.Erasure) error {
	t := rt.begin(ctx, tx)
	gone := map[shred.Pseudonym]bool{er.Profile.P: true}
	for _, p := range er.Pseudonyms {
		gone[p] = true
	}
	for p := range gone {
		w, err := t.load(profile.Ref{P: p})
		if err != nil {
			return err
		}
		if !w.existed {
			continue
		}
		w.shredded = true
		if err := w.save(); err != nil {
			return err
		}
	}
	var jobs, letters [][]byte
	err := tx.Scan(ctx, []byte(prefixJob), endOf(prefixJob), func(k, v []byte) error {
		if h, err := parseJobHeader(v); err == nil && gone[h.ref.P] {
			jobs = append(jobs, slices.Clone(k))
		}
		return nil
	})
	if err != nil {
		return err
	}
	err = tx.Scan(ctx, []byte(prefixDead), endOf(prefixDead), func(k, v []byte) error {
		if dl, err := parseDeadLetter(v); err == nil && gone[dl.h.ref.P] {
			letters = append(letters, slices.Clone(k))
		}
		return nil
	})
	if err != nil {
		return err
	}
	rt.dispMu.Lock()
	for _, k := range jobs {
		tx.Delete(k)
		if rt.claimed[string(k)] {
			rt.erasedJobs[string(k)] = true
		}
	}
	rt.dispMu.Unlock()
	for _, k := range letters {
		tx.Delete(k)
		rt.deadLetters.Add(-1)
	}
	for p := range gone {
		tx.Delete(capsKey(p))
	}
	return t.finish()
}

// interested reports whether an event can matter to any journey: a
// trigger's filter, or a run's (goal, exit_on, wait_for), matches its type
// and name. Events that cannot matter cost no store read.
func (c *catalog) interested(e *nudge.Event) bool {
	if c.anyEvent {
		return true
	}
	for _, f := range c.filters {
		if f.Matches(e) {
			return true
		}
	}
	return false
}
