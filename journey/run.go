package journey

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/nudge-dev/nudge"
	"github.com/nudge-dev/nudge/channel"
	"github.com/nudge-dev/nudge/profile"
	"github.com/nudge-dev/nudge/tracing"
)

// Bounds of what the runtime keeps per profile and journey.
const (
	// MaxActiveRuns bounds the active runs of one profile in one keyed
	// journey; a trigger past it is skipped (and counted, as "limit").
	MaxActiveRuns = 100
	// maxKeys bounds the remembered entries per key (for reentry); the
	// oldest inactive ones are forgotten first.
	maxKeys = 1000
	// maxHops bounds the steps one advance takes without waiting (the
	// validator refuses loops without a wait; this is a guard).
	maxHops = 1000
)

// Exit reasons the runtime sets itself (an exit step sets its own, "exit"
// when it names none).
const (
	ReasonCompleted = "completed" // went past the last step
	ReasonHoldout   = "holdout"   // a split's holdout
	ReasonMerged    = "merged"    // two profiles merged, each with a run for the key
	ReasonUnloaded  = "unloaded"  // the run's version is no longer loaded
	ReasonLoop      = "loop"      // too many steps without a wait
	ReasonExitOn    = "exit_on:"  // prefix: an exit_on rule, then the event it names
)

// stat returns the counters of a journey version, marking them changed.
func (t *txn) stat(j *Journey) *vstats {
	k := verKey{j.ID, j.Version}
	if t.stats == nil {
		t.stats = map[verKey]bool{}
	}
	t.stats[k] = true
	return t.rt.statsFor(k)
}

// cond evaluates a condition for a journey; a failure counts as false and
// as an error in the journey's stats.
func (t *txn) cond(j *Journey, c *Condition, v Vars) bool {
	if c == nil {
		return true
	}
	ok, err := c.Eval(v)
	if err != nil {
		t.rt.bump(t.stat(j), func(s *vstats) { s.Errors++ })
	}
	return ok
}

// trigger feeds an event to a journey's trigger.
func (t *txn) trigger(w *work, c *compiled, ev *evInfo, vars Vars) {
	j, e := c.j, ev.e
	tr := &j.Trigger
	state := func() *jstate {
		js := w.rec.journey(j.ID, true)
		if js.trig != c.fp {
			js.resetTrigger(c.fp)
		}
		return js
	}
	switch tr.Kind {
	case TriggerEvent:
		if tr.Event.Matches(e) && t.cond(j, tr.Event.If, vars) {
			t.start(w, state(), c, e, ev.t)
		}
	case TriggerPattern:
		t.pattern(w, c, ev, vars, state)
	case TriggerAbsence:
		a := &tr.Absence.Event
		if !a.Matches(e) || !t.cond(j, a.If, vars) {
			return
		}
		js := state()
		if js.abs == nil {
			js.abs = &absState{id: newID("absence", j.ID, w.ref.P.String())}
		}
		s := js.abs
		if ev.t > s.last {
			s.last, s.ev = ev.t, t.keep(ev)
		}
		if s.due == 0 && s.last != s.fired {
			s.due = s.last + nanos(tr.Absence.Duration+j.AllowedLateness)
		}
	case TriggerProfile:
		v := t.cond(j, tr.Profile, vars)
		js := w.rec.journey(j.ID, v)
		if js == nil {
			return
		}
		if js.trig != c.fp {
			js.resetTrigger(c.fp)
		}
		if v && !js.cond {
			t.start(w, js, c, e, ev.t)
		}
		js.cond = v
	}
}

func (t *txn) pattern(w *work, c *compiled, ev *evInfo, vars Vars, state func() *jstate) {
	j, e, p := c.j, ev.e, c.j.Trigger.Pattern
	within, late := nanos(p.Within), nanos(j.AllowedLateness)
	lateStat := func() { t.rt.bump(t.stat(j), func(s *vstats) { s.Late++ }) }
	switch p.Kind {
	case PatternCount:
		if !p.Event.Matches(e) || !t.cond(j, p.Event.If, vars) {
			return
		}
		js := state()
		if js.count == nil {
			js.count = &countState{}
		}
		switch js.count.observe(p.Count, within, late, ev.prop(p.GroupBy), ev.t, ev.h) {
		case matched:
			t.start(w, js, c, e, ev.t)
		case tooLate:
			lateStat()
		}
	case PatternSequence:
		var steps []int
		for i, f := range p.Sequence {
			if f.Matches(e) && t.cond(j, f.If, vars) {
				steps = append(steps, i)
			}
		}
		if len(steps) == 0 {
			return
		}
		js := state()
		if js.seq == nil {
			js.seq = &seqState{}
		}
		var enc []byte
		if steps[len(steps)-1] == len(p.Sequence)-1 {
			enc = ev.encoded()
		}
		res, last := js.seq.observe(len(p.Sequence), steps, within, late, ev.prop(p.Correlate), ev.t, ev.h, enc)
		switch res {
		case matched:
			trig := decodeEvent(last) // the last event of the sequence found
			t.start(w, js, c, trig, unixNanos(trig.Timestamp))
		case tooLate:
			lateStat()
		}
	case PatternNotFollowedBy:
		isB := p.NotFollowedBy.Matches(e) && t.cond(j, p.NotFollowedBy.If, vars)
		isA := p.Event.Matches(e) && t.cond(j, p.Event.If, vars)
		if !isA && !isB {
			return
		}
		js := state()
		if js.nfb == nil {
			js.nfb = &nfbState{}
		}
		corr := ev.prop(p.Correlate)
		if isB {
			js.nfb.observeB(within, late, corr, ev.t, ev.h)
		}
		if isA {
			id := newID("not_followed_by", j.ID, w.ref.P.String(), e.Source, e.MessageID)
			if _, res := js.nfb.observeA(id, within, late, corr, ev.t, ev.h, t.keep(ev)); res == tooLate {
				lateStat()
			}
		}
		if js.nfb.empty() {
			js.nfb = nil
		}
	}
}

// start starts a run of the journey's current version for the trigger
// event, at logical time at, unless an active run of the key or the
// re-entry rule stands in the way.
func (t *txn) start(w *work, js *jstate, c *compiled, trig *nudge.Event, at int64) {
	j := c.j
	p := w.profile()
	if p == nil {
		return
	}
	key := ""
	if j.Key != nil {
		v, err := j.Key.Eval(NewVars(trig, &p.State))
		if err != nil {
			t.rt.bump(t.stat(j), func(s *vstats) { s.Errors++ })
		} else {
			key = keyText(v)
		}
	}
	skip := func(why string) {
		t.rt.bump(t.stat(j), func(s *vstats) { s.Skipped = inc(s.Skipped, why) })
	}
	ks := js.key(key, false)
	if ks != nil && !ks.active.isZero() {
		skip("active")
		return
	}
	if ks != nil && ks.entries > 0 {
		switch j.Reentry.Mode {
		case ReentryOnce:
			skip("reentry")
			return
		case ReentryAfter:
			if at < ks.lastEntered+nanos(j.Reentry.After) {
				skip("reentry")
				return
			}
		}
	}
	active := 0
	for _, r := range js.runs {
		if !r.ended {
			active++
		}
	}
	if active >= MaxActiveRuns {
		skip("limit")
		return
	}
	if ks == nil {
		ks = js.key(key, true)
	}
	r := &run{
		id:      newID("run", j.ID, w.ref.P.String(), key, trig.Source, trig.MessageID, strconv.FormatInt(ks.entries, 10)),
		version: j.Version, key: key, started: at, trigger: encodeEvent(trig), trig: trig,
	}
	if j.Goal != nil {
		r.goalUntil = at + nanos(j.Goal.Within)
	}
	ks.active, ks.entries, ks.lastEntered = r.id, ks.entries+1, at
	js.runs = append(js.runs, r)
	t.rt.bump(t.stat(j), func(s *vstats) { s.Entered++ })
	t.advance(w, js, c, r, j.Steps[0].ID, at)
}

// keyText is a key's value as text.
func keyText(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1e15 {
			return strconv.FormatInt(int64(x), 10)
		}
	}
	b, err := json.Marshal(jsonable(v))
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func inc(m map[string]int64, k string) map[string]int64 {
	if m == nil {
		m = map[string]int64{}
	}
	m[k]++
	return m
}

// eventToRuns feeds an event to a profile's runs in one journey: goals
// (also of ended runs, within their attribution window), exit rules, and
// waits for an event.
func (t *txn) eventToRuns(w *work, js *jstate, ev *evInfo) {
	e := ev.e
	for _, r := range slices.Clone(js.runs) {
		c := t.cat.version(js.id, r.version)
		if c == nil {
			if !r.ended {
				t.end(w, js, nil, r, ReasonUnloaded)
			}
			continue
		}
		j := c.j
		var vars Vars
		varsOnce := func() Vars {
			if vars == (Vars{}) {
				vars = NewVars(e, &w.p.State).WithTrigger(r.triggerEvent())
			}
			return vars
		}
		if g := j.Goal; g != nil && !r.converted && ev.t >= r.started && ev.t <= r.goalUntil &&
			g.Event.Matches(e) && e.MessageID != r.triggerEvent().MessageID &&
			t.correlated(g.Correlate, r, ev) && t.cond(j, g.Event.If, varsOnce()) {
			r.converted = true
			variant := r.variant
			t.rt.bump(t.stat(j), func(s *vstats) {
				s.Conversions++
				if variant != "" {
					s.variant(variant).Converted++
				}
			})
		}
		if r.ended {
			continue
		}
		trigT := unixNanos(r.triggerEvent().Timestamp)
		for _, x := range j.ExitOn {
			if x.Event.Matches(e) && ev.t >= trigT && t.correlated(x.Correlate, r, ev) && t.cond(j, x.Event.If, varsOnce()) {
				t.end(w, js, j, r, ReasonExitOn+filterName(&x.Event))
				break
			}
		}
		if r.ended {
			continue
		}
		s := j.Step(r.step)
		if s == nil || s.Kind != StepWaitFor || r.due == 0 {
			continue
		}
		wf := s.WaitFor
		if wf.Event.Matches(e) && ev.t >= r.waitFrom && ev.t <= r.waitUntil &&
			t.correlated(wf.Correlate, r, ev) && t.cond(j, wf.Event.If, varsOnce()) {
			r.due = 0
			r.latest, r.last = ev.encoded(), e
			t.advance(w, js, c, r, wf.OnEvent, max(ev.t, r.waitFrom))
		}
	}
}

// correlated reports whether the event has the run's trigger's value of
// the property key (true when key is "").
func (t *txn) correlated(key string, r *run, ev *evInfo) bool {
	return key == "" || ev.prop(key) == propOf(r.triggerEvent(), key)
}

func filterName(f *EventFilter) string {
	if f.Name != "" {
		return f.Name
	}
	return string(cmp.Or(f.Type, "any"))
}

// advance runs r from the step to, at logical time at, until it waits or
// ends.
func (t *txn) advance(w *work, js *jstate, c *compiled, r *run, to string, at int64) {
	j := c.j
	r.step = to
	for range maxHops {
		s := j.Step(r.step)
		if s == nil {
			t.end(w, js, j, r, ReasonCompleted)
			return
		}
		st := t.stat(j)
		t.rt.bump(st, func(v *vstats) { v.step(s.ID).Entered++ })
		switch s.Kind {
		case StepSend:
			t.send(w, c, r, s, at)
			r.step = s.Next
		case StepWait:
			until := t.waitUntil(w, s.Wait, at)
			if until <= at {
				r.step = s.Next
				continue
			}
			r.due = until
			return
		case StepWaitFor:
			r.waitFrom, r.waitUntil = at, at+nanos(s.WaitFor.Timeout)
			r.due = r.waitUntil + nanos(j.AllowedLateness)
			return
		case StepBranch:
			p := w.profile()
			if p == nil {
				return
			}
			vars := NewVars(r.latestEvent(), &p.State).WithTrigger(r.triggerEvent())
			if t.cond(j, s.Branch.If, vars) {
				r.step = s.Branch.Then
			} else {
				r.step = s.Branch.Else
			}
		case StepSplit:
			i := s.Split.Choose(splitU(j.ID, s.ID, w.ref.P.String()))
			if i < 0 {
				r.variant = ReasonHoldout
				t.rt.bump(st, func(v *vstats) { v.variant(ReasonHoldout).Entered++ })
				t.end(w, js, j, r, ReasonHoldout)
				return
			}
			v := s.Split.Variants[i]
			r.variant = v.Name
			t.rt.bump(st, func(s *vstats) { s.variant(v.Name).Entered++ })
			r.step = v.Next
		case StepUpdate:
			t.update(w, j, r, s, at)
			r.step = s.Next
		case StepExit:
			t.end(w, js, j, r, cmp.Or(s.Exit.Reason, "exit"))
			return
		}
	}
	t.end(w, js, j, r, ReasonLoop)
}

// splitU maps a journey's split step and a profile to a number in [0, 1)
// that does not change: the same customer lands in the same variant.
func splitU(journey, step, profileID string) float64 {
	h := xxhash.Sum64String(journey + "\x00" + step + "\x00" + profileID)
	return float64(h>>11) / (1 << 53)
}

// end ends a run. It stays in the record, ended, while its goal's
// attribution window is open.
func (t *txn) end(w *work, js *jstate, j *Journey, r *run, reason string) {
	r.ended, r.reason, r.step, r.due = true, reason, "", 0
	for _, ks := range js.keys {
		if ks.active == r.id {
			ks.active = runID{}
		}
	}
	if j == nil {
		j = &Journey{ID: js.id, Version: r.version}
	}
	t.rt.bump(t.stat(j), func(s *vstats) { s.Exits = inc(s.Exits, reason) })
}

// waitUntil is when a wait step that starts at at ends.
func (t *txn) waitUntil(w *work, wt *Wait, at int64) int64 {
	switch wt.Kind {
	case WaitDuration:
		return at + nanos(wt.Duration)
	case WaitLocalTime:
		loc := time.UTC
		if z := t.rt.zone(wt.Timezone); z != nil {
			loc = z
		}
		if p := w.profile(); p != nil {
			if z := t.rt.zone(p.State.Timezone.Value); z != nil {
				loc = z
			}
		}
		return unixNanos(wt.LocalTime.Next(fromNanos(at), loc))
	case WaitTrait:
		p := w.profile()
		if p == nil {
			return at
		}
		tr, ok := p.State.Traits[wt.Trait]
		if !ok {
			return at
		}
		until, ok := traitTime(tr.Value)
		if !ok {
			return at
		}
		return unixNanos(until.Add(wt.Offset))
	}
	return at
}

// zone loads a time zone once; nil for a name that is not one.
func (rt *Runtime) zone(name string) *time.Location {
	if name == "" {
		return nil
	}
	if l, ok := rt.zones.Load(name); ok {
		return l.(*time.Location)
	}
	l, err := time.LoadLocation(name)
	if err != nil {
		l = nil
	}
	rt.zones.Store(name, l)
	return l
}

// traitTime reads a time from a trait: an RFC 3339 string, or Unix seconds.
func traitTime(raw json.RawMessage) (time.Time, bool) {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return time.Time{}, false
	}
	switch x := v.(type) {
	case string:
		if t, err := time.Parse(time.RFC3339Nano, x); err == nil {
			return t, true
		}
		if s, err := strconv.ParseFloat(x, 64); err == nil {
			return time.Unix(0, int64(s*1e9)), true
		}
	case float64:
		return time.Unix(0, int64(x*1e9)), true
	}
	return time.Time{}, false
}

// send renders a send step and writes its job; the dispatcher delivers it
// once the transaction is committed.
// The job is due at the run's logical time (at the latest now), so that
// jobs made while catching up on overdue timers go out in the timers' order.
func (t *txn) send(w *work, c *compiled, r *run, s *Step, at int64) {
	j, snd := c.j, s.Send
	p := w.profile()
	if p == nil {
		return
	}
	due := min(at, t.now)
	if !snd.Transactional {
		if unsubscribed(&p.State, snd.Channel, snd.Group) || refused(&p.State, snd.Consent) {
			t.rt.bump(t.stat(j), func(v *vstats) { v.step(s.ID).Suppressed++ })
			return
		}
		if q := j.QuietHours; q != nil {
			loc := time.UTC
			if z := t.rt.zone(q.Timezone); z != nil {
				loc = z
			}
			if z := t.rt.zone(p.State.Timezone.Value); z != nil {
				loc = z
			}
			if end, quiet := q.End(fromNanos(t.now), loc); quiet {
				if q.Action == QuietSkip {
					t.rt.bump(t.stat(j), func(v *vstats) { v.step(s.ID).Quiet++ })
					return
				}
				due = unixNanos(end)
				t.rt.bump(t.stat(j), func(v *vstats) { v.step(s.ID).Deferred++ })
			}
		}
		capped, err := t.capped(w.ref, snd.Channel, due)
		if err != nil {
			t.fail(err)
			return
		}
		if capped {
			t.rt.bump(t.stat(j), func(v *vstats) { v.step(s.ID).Capped++ })
			return
		}
	}
	key := channel.MessageKey(channel.Origin{Journey: j.ID, Version: j.Version, Variant: r.variant, Step: s.ID}, r.id.String(), r.visit(s.ID))
	ids := map[string]string{}
	for _, id := range p.Identities {
		if _, ok := ids[id.Kind]; !ok {
			ids[id.Kind] = id.Value
		}
	}
	m := &channel.Message{
		IdempotencyKey: key, Channel: snd.Channel, Journey: j.ID, Version: j.Version, Step: s.ID,
		Variant: r.variant, Recipient: channel.Recipient{ProfileID: w.ref.P.String(), Identifiers: ids},
		Transactional: snd.Transactional, CreatedAt: fromNanos(t.now),
	}
	links := t.rt.cfg.Links
	if links != nil && !snd.Transactional {
		m.UnsubscribeURL = links.UnsubscribeURL(w.ref, m, snd.Group)
	}
	vars := TemplateVars{Profile: p, Event: r.latestEvent(), Trigger: r.triggerEvent(),
		Journey: journeyDrop{j: j, r: r, step: s.ID, unsubscribe: m.UnsubscribeURL}}
	m.Fields = make(map[string]string, len(c.tpl[s]))
	for name, tpl := range c.tpl[s] {
		out, err := tpl.Render(vars)
		if err != nil {
			t.rt.logger.Warn("journey template failed to render", "journey", j.ID, "step", s.ID, "field", name, "err", err)
			t.rt.bump(t.stat(j), func(v *vstats) { v.step(s.ID).Failed++; v.Errors++ })
			return
		}
		m.Fields[name] = out
	}
	if links != nil {
		if err := links.Track(w.ref, m); err != nil {
			t.rt.logger.Warn("journey message links could not be made", "journey", j.ID, "step", s.ID, "err", err)
		}
	}
	if t.event != nil && due <= t.now {
		// Time to trigger is nudge's own delay: not for a send put off
		// until quiet hours end.
		m.TriggeredAt = t.event.ReceivedAt
	}
	h, err := t.rt.newJob(w.ref, m)
	if err != nil {
		t.fail(err)
		return
	}
	if due > t.now {
		h.flags |= jobRecheck
	}
	if t.event != nil && t.event.TraceParent != "" {
		// The event's trace goes on through this step to the delivery.
		_, span := tracing.Tracer.Start(tracing.WithParent(t.ctx, t.event.TraceParent), "nudge.journey.send",
			trace.WithAttributes(attribute.String("journey", j.ID), attribute.Int("version", j.Version),
				attribute.String("step", s.ID), attribute.String("channel", snd.Channel)))
		h.trace = tracing.Parent(trace.ContextWithSpan(t.ctx, span))
		span.End()
	}
	t.rt.setJob(t.tx, jobKey(due, newID("job", key)), h)
	t.jobs = true
	t.rt.bump(t.stat(j), func(v *vstats) {
		v.step(s.ID).Queued++
		if r.variant != "" {
			v.variant(r.variant).Queued++
		}
	})
}

// refused reports whether the profile's latest preference for the consent
// category (matched without regard to case) is false.
func refused(s *profile.State, category string) bool {
	for k, f := range s.Consent {
		if !f.Value && strings.EqualFold(k, category) {
			return true
		}
	}
	return false
}

// unsubscribed reports whether the profile unsubscribed from the channel,
// or from the channel's group.
func unsubscribed(s *profile.State, ch, group string) bool {
	if f, ok := s.Subscriptions[ch]; ok && !f.Value {
		return true
	}
	if group != "" {
		if f, ok := s.Subscriptions[ch+":"+group]; ok && !f.Value {
			return true
		}
	}
	return false
}

// update sets the step's traits on the profile. The values are put into
// the profile's state as if an event of the run's logical time had set
// them: a trait set by a later event wins, as it would over any event.
func (t *txn) update(w *work, j *Journey, r *run, s *Step, at int64) {
	p := w.profile()
	if p == nil {
		return
	}
	vars := NewVars(r.latestEvent(), &p.State).WithTrigger(r.triggerEvent())
	st := profile.State{Traits: map[string]profile.Timed{}}
	for _, a := range s.Update.Set {
		v := a.Value
		if a.Expr != nil {
			var err error
			if v, err = a.Expr.Eval(vars); err != nil {
				t.rt.bump(t.stat(j), func(s *vstats) { s.Errors++ })
				continue
			}
		}
		raw, err := json.Marshal(jsonable(v))
		if err != nil {
			t.rt.bump(t.stat(j), func(s *vstats) { s.Errors++ })
			continue
		}
		st.Traits[a.Trait] = profile.Timed{Value: raw, At: fromNanos(at), MessageID: "journey:" + r.id.String() + ":" + s.ID}
	}
	if len(st.Traits) > 0 {
		p.State.Merge(&st)
		t.tx.Touch(p)
	}
}

// jsonable makes an expression's value encodable: times as RFC 3339,
// durations as Go durations, byte strings as text.
func jsonable(v any) any {
	switch x := v.(type) {
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case time.Duration:
		return x.String()
	case []byte:
		return string(x)
	case []any:
		out := make([]any, len(x))
		for i := range x {
			out[i] = jsonable(x[i])
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonable(e)
		}
		return out
	}
	return v
}

// pruneRecord forgets what can no longer matter: ended runs whose goal
// window has closed, keys that no longer hold back a re-entry, journeys
// no longer loaded with nothing running.
func (t *txn) pruneRecord(w *work) {
	for _, js := range w.rec.journeys {
		c := t.cat.byID[js.id]
		js.runs = slices.DeleteFunc(js.runs, func(r *run) bool {
			if !r.ended {
				return false
			}
			if r.converted || r.goalUntil == 0 {
				return true
			}
			late := int64(0)
			if v := t.cat.version(js.id, r.version); v != nil {
				late = nanos(v.j.AllowedLateness)
			}
			return r.goalUntil+late < t.now
		})
		if c == nil {
			js.resetTrigger(0)
			js.keys = slices.DeleteFunc(js.keys, func(k *keyState) bool { return k.active.isZero() })
			continue
		}
		j := c.j
		js.keys = slices.DeleteFunc(js.keys, func(k *keyState) bool {
			if !k.active.isZero() {
				return false
			}
			switch j.Reentry.Mode {
			case ReentryEveryTime:
				return true
			case ReentryAfter:
				return k.lastEntered+nanos(j.Reentry.After) < t.now-nanos(j.AllowedLateness)
			}
			return false
		})
		if len(js.keys) > maxKeys {
			slices.SortStableFunc(js.keys, func(a, b *keyState) int {
				if a.active.isZero() != b.active.isZero() {
					if a.active.isZero() {
						return -1
					}
					return 1
				}
				return cmp.Compare(a.lastEntered, b.lastEntered)
			})
			js.keys = slices.Delete(js.keys, 0, len(js.keys)-maxKeys)
		}
		if (js.count != nil && len(js.count.groups) == 0) || (js.count != nil && j.Trigger.Kind != TriggerPattern) {
			js.count = nil
		}
		if js.seq != nil && len(js.seq.groups) == 0 {
			js.seq = nil
		}
	}
	w.rec.journeys = slices.DeleteFunc(w.rec.journeys, (*jstate).empty)
}

// mergeRecords folds the record of a profile merged into w's profile.
func (t *txn) mergeRecords(w *work, from *custRecord) {
	for _, f := range from.journeys {
		to := w.rec.journey(f.id, false)
		if to == nil {
			js := w.rec.journey(f.id, true)
			*js = *f
			continue
		}
		if f.trig == to.trig {
			mergeGroups := func(dst *[]*group, src []*group) {
				for _, g := range src {
					d := findGroup(dst, g.key)
					for _, m := range g.marks {
						d.insert(m)
					}
				}
			}
			switch {
			case f.count != nil && to.count == nil:
				to.count = f.count
			case f.count != nil:
				to.count.maxT = max(to.count.maxT, f.count.maxT)
				mergeGroups(&to.count.groups, f.count.groups)
			}
			switch {
			case f.seq != nil && to.seq == nil:
				to.seq = f.seq
			case f.seq != nil:
				to.seq.maxT = max(to.seq.maxT, f.seq.maxT)
				mergeGroups(&to.seq.groups, f.seq.groups)
			}
			switch {
			case f.nfb != nil && to.nfb == nil:
				to.nfb = f.nfb
			case f.nfb != nil:
				to.nfb.maxT = max(to.nfb.maxT, f.nfb.maxT)
				for _, a := range f.nfb.as {
					if !slices.ContainsFunc(to.nfb.as, func(b *pendA) bool { return b.h == a.h }) {
						to.nfb.as = append(to.nfb.as, a)
					}
				}
				to.nfb.done = append(to.nfb.done, f.nfb.done...)
				for _, b := range f.nfb.bs {
					if !slices.ContainsFunc(to.nfb.bs, func(x bMark) bool { return x.h == b.h }) {
						to.nfb.bs = append(to.nfb.bs, b)
					}
				}
				slices.SortFunc(to.nfb.bs, func(a, b bMark) int { return cmp.Compare(a.t, b.t) })
			}
			switch {
			case f.abs != nil && to.abs == nil:
				to.abs = f.abs
			case f.abs != nil:
				a, b := to.abs, f.abs
				if b.last > a.last {
					a.last, a.ev = b.last, b.ev
				}
				a.fired = max(a.fired, b.fired)
				if c := t.cat.byID[f.id]; c != nil && c.j.Trigger.Absence != nil && a.last != a.fired {
					a.due = a.last + nanos(c.j.Trigger.Absence.Duration+c.j.AllowedLateness)
				}
			}
			to.cond = to.cond || f.cond
		}
		for _, fk := range f.keys {
			tk := to.key(fk.key, false)
			if tk == nil {
				to.keys = append(to.keys, fk)
				continue
			}
			tk.entries += fk.entries
			tk.lastEntered = max(tk.lastEntered, fk.lastEntered)
			switch {
			case fk.active.isZero():
			case tk.active.isZero():
				tk.active = fk.active
			default:
				if r := f.run(fk.active); r != nil {
					var j *Journey
					if c := t.cat.version(f.id, r.version); c != nil {
						j = c.j
					}
					t.end(w, f, j, r, ReasonMerged)
				}
			}
		}
		to.runs = append(to.runs, f.runs...)
	}
}
