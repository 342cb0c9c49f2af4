package journey

import (
	"context"

	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/nudge-dev/nudge"
	"github.com/nudge-dev/nudge/channel"
	"maps"
	"slices"
	"strings"
)

// Stats are counted per journey version, in memory, and written to the
// extension key js/<journey>/<version> by every transaction that changed
// them: they commit with the runs they count, so a crash loses both or
// neither, and the replay counts once. NewRuntime loads them.

// StatsView is what a journey's stats say, per version (the admin API's
// GET /v1/journeys/{id}/stats).
type StatsView struct {
	Journey  string         `json:"journey"`
	Versions []VersionStats `json:"versions"` // by version
}

// VersionStats are the counters of one journey version.
type VersionStats struct {
	Version int `json:"version"`
	// Entered counts runs started; Active those not ended.
	Entered int64 `json:"entered"`
	Active  int64 `json:"active"`
	// Skipped counts triggers that started no run, by reason: "active"
	// (a run of the key is active), "reentry" (the re-entry rule), "limit"
	// (MaxActiveRuns).
	Skipped map[string]int64 `json:"skipped,omitempty"`
	// Steps counts, per step id, the runs that entered it and, for send
	// steps, what became of their messages.
	Steps map[string]StepStats `json:"steps,omitempty"`
	// Exits counts ended runs by reason: an exit step's reason ("exit"
	// when it names none), "completed", "holdout", "exit_on:<event>",
	// "merged", "unloaded".
	Exits map[string]int64 `json:"exits,omitempty"`
	// Conversions counts runs whose goal happened in the attribution
	// window.
	Conversions int64 `json:"conversions"`
	// Variants counts, per split variant ("holdout" included), the runs
	// that took it and those of them that converted.
	Variants map[string]VariantStats `json:"variants,omitempty"`
	// LateEvents counts events too late for the trigger's pattern;
	// Errors conditions and expressions that failed to evaluate (counted
	// as false) and templates that failed to render.
	LateEvents int64 `json:"late_events"`
	Errors     int64 `json:"errors"`
}

// StepStats counts one step.
type StepStats struct {
	Entered int64 `json:"entered"`
	// Send steps: messages queued for delivery, delivered, retried after
	// a retryable failure, failed for good (dead-lettered); and messages not sent because
	// the customer unsubscribed from the channel (marketing sends only).
	Queued     int64 `json:"queued,omitempty"`
	Sent       int64 `json:"sent,omitempty"`
	Retried    int64 `json:"retried,omitempty"`
	Failed     int64 `json:"failed,omitempty"`
	Suppressed int64 `json:"suppressed,omitempty"`
	// InDoubt counts messages that were maybe sent before a crash, on a
	// channel that does not drop repeats: not repeated, dead-lettered.
	InDoubt int64 `json:"in_doubt,omitempty"`
	// Marketing sends held back: over a frequency cap (not sent), in
	// quiet hours and skipped (Quiet), or put off until they end
	// (Deferred, also counted as queued).
	Capped   int64 `json:"capped,omitempty"`
	Quiet    int64 `json:"quiet,omitempty"`
	Deferred int64 `json:"deferred,omitempty"`
	// What came back (package feedback's events): deliveries, bounces
	// and complaints that providers reported, opens and clicks (unique
	// per message, and per message and link), and unsubscribes from the
	// message's link.
	Delivered    int64 `json:"delivered,omitempty"`
	Bounced      int64 `json:"bounced,omitempty"`
	Complained   int64 `json:"complained,omitempty"`
	Opened       int64 `json:"opened,omitempty"`
	Clicked      int64 `json:"clicked,omitempty"`
	Unsubscribed int64 `json:"unsubscribed,omitempty"`
}

// feedbackCounters are the counters of the events package feedback makes:
// the step's, and the variant's (nil: none).
var feedbackCounters = map[string]struct {
	step    func(*StepStats) *int64
	variant func(*VariantStats) *int64
}{
	channel.Delivered.Event():    {func(s *StepStats) *int64 { return &s.Delivered }, func(v *VariantStats) *int64 { return &v.Delivered }},
	channel.Bounced.Event():      {func(s *StepStats) *int64 { return &s.Bounced }, func(v *VariantStats) *int64 { return &v.Bounced }},
	channel.Complained.Event():   {func(s *StepStats) *int64 { return &s.Complained }, nil},
	channel.Opened.Event():       {func(s *StepStats) *int64 { return &s.Opened }, func(v *VariantStats) *int64 { return &v.Opened }},
	channel.Clicked.Event():      {func(s *StepStats) *int64 { return &s.Clicked }, func(v *VariantStats) *int64 { return &v.Clicked }},
	channel.Unsubscribed.Event(): {func(s *StepStats) *int64 { return &s.Unsubscribed }, nil},
}

// countFeedback counts an event about a message of a journey's send step
// (its properties.message_key); it reports whether it did.
func (t *txn) countFeedback(e *nudge.Event) bool {
	counter, ok := feedbackCounters[e.Event]
	if !ok || e.Type != nudge.Track {
		return false
	}
	o, ok := channel.ParseMessageKey(propOf(e, "message_key"))
	if !ok {
		return false
	}
	if e.Event == channel.Unsubscribed.Event() && propOf(e, "reason") != "" {
		return false // a bounce or complaint's suppression, counted as such
	}
	t.rt.bump(t.stat(&Journey{ID: o.Journey, Version: o.Version}), func(s *vstats) {
		(*counter.step(s.step(o.Step)))++
		if o.Variant != "" && counter.variant != nil {
			(*counter.variant(s.variant(o.Variant)))++
		}
	})
	return true
}

// VariantStats counts one split variant: runs that took it, their
// conversions, and what became of the messages their send steps made (the
// same counters as StepStats', over the variant's steps).
type VariantStats struct {
	Entered   int64 `json:"entered"`
	Converted int64 `json:"converted"`
	Queued    int64 `json:"queued,omitempty"`
	Sent      int64 `json:"sent,omitempty"`
	Failed    int64 `json:"failed,omitempty"`
	Delivered int64 `json:"delivered,omitempty"`
	Bounced   int64 `json:"bounced,omitempty"`
	Opened    int64 `json:"opened,omitempty"`
	Clicked   int64 `json:"clicked,omitempty"`
}

// vstats is the stored and in-memory form.
type vstats struct {
	Entered     int64                    `json:"entered"`
	Skipped     map[string]int64         `json:"skipped,omitempty"`
	Steps       map[string]*StepStats    `json:"steps,omitempty"`
	Exits       map[string]int64         `json:"exits,omitempty"`
	Conversions int64                    `json:"conversions"`
	Variants    map[string]*VariantStats `json:"variants,omitempty"`
	Late        int64                    `json:"late"`
	Errors      int64                    `json:"errors"`
}

func (s *vstats) step(id string) *StepStats {
	if s.Steps == nil {
		s.Steps = map[string]*StepStats{}
	}
	st := s.Steps[id]
	if st == nil {
		st = &StepStats{}
		s.Steps[id] = st
	}
	return st
}

func (s *vstats) variant(name string) *VariantStats {
	if s.Variants == nil {
		s.Variants = map[string]*VariantStats{}
	}
	v := s.Variants[name]
	if v == nil {
		v = &VariantStats{}
		s.Variants[name] = v
	}
	return v
}

func statsKey(k verKey) []byte {
	b := append([]byte(prefixStats), k.id...)
	b = append(b, '/')
	return binary.BigEndian.AppendUint32(b, uint32(k.version))
}

// statsFor returns the counters of a version, made on first use.
func (rt *Runtime) statsFor(k verKey) *vstats {
	rt.statsMu.Lock()
	defer rt.statsMu.Unlock()
	s := rt.stats[k]
	if s == nil {
		s = &vstats{}
		rt.stats[k] = s
	}
	return s
}

// bump changes counters under the stats lock (Stats reads them from other
// goroutines).
func (rt *Runtime) bump(s *vstats, fn func(*vstats)) {
	rt.statsMu.Lock()
	fn(s)
	rt.statsMu.Unlock()
}

// writeStats writes the counters the call changed into its transaction.
func (t *txn) writeStats() error {
	for k := range t.stats {
		t.rt.statsMu.Lock()
		b, err := json.Marshal(t.rt.stats[k])
		t.rt.statsMu.Unlock()
		if err != nil {
			return err
		}
		t.tx.Set(statsKey(k), b)
	}
	t.stats = nil
	return nil
}

func (rt *Runtime) loadStats(ctx context.Context) error {
	return rt.cfg.Store.ScanExt(ctx, []byte(prefixStats), endOf(prefixStats), func(k, v []byte) error {
		rest := k[len(prefixStats):]
		if len(rest) < 5 || rest[len(rest)-5] != '/' {
			return fmt.Errorf("%w: stats key %q", errCorrupt, k)
		}
		key := verKey{string(rest[:len(rest)-5]), int(binary.BigEndian.Uint32(rest[len(rest)-4:]))}
		s := &vstats{}
		if err := json.Unmarshal(v, s); err != nil {
			return fmt.Errorf("%w: stats of %s: %v", errCorrupt, key.id, err)
		}
		rt.stats[key] = s
		return nil
	})
}

// ErrUnknownJourney is returned for a journey the runtime neither runs nor
// has stats of.
var ErrUnknownJourney = errors.New("journey: no such journey")

// Stats returns the counters of every version of a journey.
func (rt *Runtime) Stats(journeyID string) (StatsView, error) {
	view := StatsView{Journey: journeyID, Versions: []VersionStats{}} // [] in JSON before any run
	cat := rt.cat.Load()
	rt.statsMu.Lock()
	defer rt.statsMu.Unlock()
	for k, s := range rt.stats {
		if k.id != journeyID {
			continue
		}
		v := VersionStats{
			Version: k.version, Entered: s.Entered, Conversions: s.Conversions, LateEvents: s.Late, Errors: s.Errors,
			Skipped: maps.Clone(s.Skipped), Exits: maps.Clone(s.Exits),
		}
		v.Active = s.Entered
		for _, n := range s.Exits {
			v.Active -= n
		}
		if len(s.Steps) > 0 {
			v.Steps = make(map[string]StepStats, len(s.Steps))
			for id, st := range s.Steps {
				v.Steps[id] = *st
			}
		}
		if len(s.Variants) > 0 {
			v.Variants = make(map[string]VariantStats, len(s.Variants))
			for n, vs := range s.Variants {
				v.Variants[n] = *vs
			}
		}
		view.Versions = append(view.Versions, v)
	}
	if len(view.Versions) == 0 && cat.byID[journeyID] == nil {
		return view, ErrUnknownJourney
	}
	slices.SortFunc(view.Versions, func(a, b VersionStats) int { return a.Version - b.Version })
	return view, nil
}

// Totals are a journey's counters over all its versions (the metrics).
type Totals struct {
	Journey     string
	Entered     int64
	Exits       map[string]int64 // by reason
	Conversions int64
}

// Totals returns every journey's counters, by journey id.
func (rt *Runtime) Totals() []Totals {
	rt.statsMu.Lock()
	defer rt.statsMu.Unlock()
	by := map[string]*Totals{}
	for k, s := range rt.stats {
		t := by[k.id]
		if t == nil {
			t = &Totals{Journey: k.id, Exits: map[string]int64{}}
			by[k.id] = t
		}
		t.Entered += s.Entered
		t.Conversions += s.Conversions
		for r, n := range s.Exits {
			t.Exits[r] += n
		}
	}
	out := make([]Totals, 0, len(by))
	for _, t := range by {
		out = append(out, *t)
	}
	slices.SortFunc(out, func(a, b Totals) int { return strings.Compare(a.Journey, b.Journey) })
	return out
}

// TimersPending is how many timers are armed: counted at start, then kept
// as runs arm and disarm them.
func (rt *Runtime) TimersPending() int64 { return rt.timers.Load() }

func (rt *Runtime) countTimers(ctx context.Context) error {
	var n int64
	err := rt.cfg.Store.ScanExt(ctx, []byte(prefixTimer), endOf(prefixTimer), func(_, _ []byte) error {
		n++
		return nil
	})
	rt.timers.Store(n)
	return err
}
