// Package journey holds nudge's journeys as code and runs them: the Go
// types of a journey definition, its YAML format (Parse, LoadDir), the
// rules a definition must follow (Journey.Validate), its conditions, CEL
// expressions compiled once at load (Condition, Expr, Vars), its Liquid
// templates (Template), and the Runtime, a profile.Reactor that runs the
// journeys inside the profile engine's transactions: triggers and pattern
// windows over event time, runs, durable timers, send jobs delivered
// through channels (package channel), stats.
//
// A definition is data: the runtime reads a *Journey and never needs to
// know the YAML it came from: defaults are filled in (a step's
// fall-through target, reentry, allowed lateness) and every expression is
// compiled. The format and what a run does are documented for authors in
// docs/journeys.md; the runtime's key layout is in record.go.
//
// A *Journey is immutable once returned by Parse and safe for concurrent
// use; its conditions may be evaluated from many goroutines, each with its
// own Vars.
package journey

import (
	"cmp"
	"fmt"
	"time"

	"github.com/nudge-dev/nudge"
)

// DefaultAllowedLateness is how late (in event time) an event may arrive and
// still count for patterns and waits, when a journey does not say.
const DefaultAllowedLateness = 5 * time.Minute

// DefaultChannels are the channel names a send step may use until the
// runtime registers its channels.
var DefaultChannels = []string{"webhook", "log", "email", "sms", "push", "slack", "google_ads", "meta_audience", "cdp"}

// Journey is one compiled journey definition.
type Journey struct {
	// ID names the journey in the API, in stats and in run state; it is
	// unique among the loaded journeys.
	ID          string
	Name        string
	Description string
	// Version is set by the journey store (each change is a new version);
	// 0 when the definition did not say. A run finishes on the version it
	// started on.
	Version int
	// File is where the definition was parsed from ("" when built in code).
	File string

	Trigger Trigger
	// Steps in the order of the definition; Steps[0] is where a run starts.
	Steps []*Step

	// ExitOn lists events that end a run at once, whatever step it is on.
	ExitOn  []*ExitRule
	Reentry Reentry
	// Key, when set, is evaluated on the trigger event: one active run per
	// customer and key value (one run per cart), and re-entry is counted per
	// key. Nil: one active run per customer.
	Key *Expr
	// Goal, when set, records a conversion for a run when its event happens
	// within Goal.Within after the run started.
	Goal *Goal
	// AllowedLateness is how late, in event time, an event may arrive and
	// still count for the trigger's pattern and for waits.
	AllowedLateness time.Duration
	// QuietHours, when set, keeps marketing sends out of a time of the
	// customer's day.
	QuietHours *QuietHours

	index map[string]int // step id to index in Steps
	lines map[string]int // field path to line, from the parser
}

// Step returns the step with the given id, or nil ("" is the end of a
// run, not a step).
func (j *Journey) Step(id string) *Step {
	if id == "" {
		return nil
	}
	if i, ok := j.index[id]; ok {
		return j.Steps[i]
	}
	for _, s := range j.Steps { // a Journey built in code has no index
		if s.ID == id {
			return s
		}
	}
	return nil
}

// Pos is where something is defined: the file, the line (0 when unknown)
// and the field path, such as steps[2].wait.duration.
type Pos struct {
	File  string
	Line  int
	Field string
}

// String formats p as file:line: field, leaving out what is unknown.
func (p Pos) String() string {
	s := p.File
	if p.Line > 0 {
		s += fmt.Sprintf(":%d", p.Line)
	}
	if p.Field != "" {
		if s != "" {
			s += ": "
		}
		s += p.Field
	}
	return s
}

// TriggerKind is what starts a run.
type TriggerKind string

// The trigger kinds.
const (
	// TriggerEvent starts a run on each event that matches a filter.
	TriggerEvent TriggerKind = "event"
	// TriggerPattern starts a run when a composite pattern over event time
	// completes.
	TriggerPattern TriggerKind = "pattern"
	// TriggerAbsence starts a run when a customer has sent no matching event
	// for a duration.
	TriggerAbsence TriggerKind = "absence"
	// TriggerProfile starts a run when a profile condition becomes true.
	TriggerProfile TriggerKind = "profile"
)

// Trigger is what starts a run: exactly the field of its Kind is set.
//
// Every trigger names one event as the run's trigger event (the `trigger`
// variable of later conditions, and the event a Key is evaluated on):
// the matching event; for a pattern, the event that completed it (the Nth
// event of a count, the last of a sequence, the first event A of
// not_followed_by); for absence, the last matching event before the
// silence; for a profile condition, the event whose change made it true.
type Trigger struct {
	Kind    TriggerKind
	Event   *EventFilter // TriggerEvent
	Pattern *Pattern     // TriggerPattern
	Absence *Absence     // TriggerAbsence
	// Profile is the condition of TriggerProfile. It is evaluated after
	// each event has been applied to the profile and starts a run when it
	// goes from false to true.
	Profile *Condition
}

// EventFilter selects events by type, name and condition. The zero
// EventFilter matches every event.
type EventFilter struct {
	// Type, when set, is the kind of call the event must be.
	Type nudge.EventType
	// Name, when set, is the event's name: the track event name, or the
	// page or screen name. A filter with a Name and no Type is for track
	// events.
	Name string
	// If, when set, must hold. The profile it sees includes the event.
	If *Condition
}

// Matches reports whether e has the filter's type and name (If is not
// evaluated: see Match).
func (f *EventFilter) Matches(e *nudge.Event) bool {
	if f.Name == "" {
		return f.Type == "" || e.Type == f.Type
	}
	switch t := cmp.Or(f.Type, nudge.Track); {
	case e.Type != t:
		return false
	case t == nudge.Track:
		return e.Event == f.Name
	case t == nudge.Page, t == nudge.Screen:
		return e.Name == f.Name
	}
	return false
}

// Match reports whether the event of v matches the filter, condition
// included. A condition that fails to evaluate does not match, and its
// error is returned.
func (f *EventFilter) Match(v Vars) (bool, error) {
	e := v.Event()
	if e == nil || !f.Matches(e) {
		return false, nil
	}
	if f.If == nil {
		return true, nil
	}
	return f.If.Eval(v)
}

// PatternKind is the shape of a composite pattern.
type PatternKind string

// The pattern kinds.
const (
	// PatternCount: Count events matching Event within Within, optionally
	// counted apart per value of the property GroupBy.
	PatternCount PatternKind = "count"
	// PatternSequence: events matching Sequence[0], then Sequence[1]...,
	// all within Within of the first, optionally sharing the value of the
	// property Correlate.
	PatternSequence PatternKind = "sequence"
	// PatternNotFollowedBy: an event matching Event, and no event matching
	// NotFollowedBy within Within after it (optionally one with the same
	// value of the property Correlate). It fires when the window closes.
	PatternNotFollowedBy PatternKind = "not_followed_by"
)

// Pattern is a composite trigger over event time.
type Pattern struct {
	Kind          PatternKind
	Count         int            // PatternCount: at least 2
	Event         *EventFilter   // PatternCount, PatternNotFollowedBy
	Sequence      []*EventFilter // PatternSequence: at least 2
	NotFollowedBy *EventFilter   // PatternNotFollowedBy
	Within        time.Duration
	GroupBy       string // PatternCount: a property key
	Correlate     string // PatternSequence, PatternNotFollowedBy: a property key
}

// Absence triggers when a customer sends no event matching Event for
// Duration. Every matching event moves the customer's deadline.
type Absence struct {
	Event    EventFilter // the zero filter: any event
	Duration time.Duration
}

// ExitRule ends a run when its event arrives, whatever step the run is on.
type ExitRule struct {
	Event EventFilter
	// Correlate, when set, is a property key: only an event with the same
	// value of it as the trigger event ends the run.
	Correlate string
}

// Goal is a journey's conversion: a matching event within Within after a
// run started.
type Goal struct {
	Event     EventFilter
	Correlate string
	Within    time.Duration
}

// ReentryMode says whether a customer who has been through a journey may
// enter it again.
type ReentryMode string

// The re-entry modes.
const (
	// ReentryOnce: a customer (or key) enters once ever. The default.
	ReentryOnce ReentryMode = "once"
	// ReentryEveryTime: every trigger starts a run, unless one is active.
	ReentryEveryTime ReentryMode = "every_time"
	// ReentryAfter: a new run may start once After has passed since the
	// previous one started.
	ReentryAfter ReentryMode = "after"
)

// Reentry is a journey's re-entry rule. A customer never has two active
// runs of a journey for the same key, whatever the mode.
type Reentry struct {
	Mode  ReentryMode
	After time.Duration // ReentryAfter: the cooldown
}

// StepKind is what a step does.
type StepKind string

// The step kinds.
const (
	StepSend    StepKind = "send"
	StepWait    StepKind = "wait"
	StepWaitFor StepKind = "wait_for"
	StepBranch  StepKind = "branch"
	StepSplit   StepKind = "split"
	StepUpdate  StepKind = "update"
	StepExit    StepKind = "exit"
)

// Step is one step of a journey: exactly the field of its Kind is set.
//
// Targets (Next, and the targets of wait_for, branch and split) are step
// ids, or "" for the end of the run. The parser resolves an omitted target
// to the step that follows in the definition (or "" after the last step),
// so the runtime never needs to know the order of Steps.
type Step struct {
	ID   string
	Kind StepKind
	// Next is where a send, wait or update step goes on to.
	Next string

	Send    *Send
	Wait    *Wait
	WaitFor *WaitFor
	Branch  *Branch
	Split   *Split
	Update  *Update
	Exit    *Exit

	Pos Pos // the step's entry in the definition, e.g. steps[2]
}

// Targets returns the steps s may go on to, "" for the end of the run
// included, in a fixed order.
func (s *Step) Targets() []string {
	switch s.Kind {
	case StepSend, StepWait, StepUpdate:
		return []string{s.Next}
	case StepWaitFor:
		if s.WaitFor != nil {
			return []string{s.WaitFor.OnEvent, s.WaitFor.OnTimeout}
		}
	case StepBranch:
		if s.Branch != nil {
			return []string{s.Branch.Then, s.Branch.Else}
		}
	case StepSplit:
		if s.Split != nil {
			t := make([]string, len(s.Split.Variants))
			for i, v := range s.Split.Variants {
				t[i] = v.Next
			}
			return t
		}
	}
	return nil
}

// Send sends a message on a channel.
type Send struct {
	Channel string
	// Template names a stored template; or Content holds the message's
	// fields inline (subject, body, title, url...: which fields a channel
	// reads is the channel's contract). Their text is Liquid, over profile,
	// event, trigger and journey.
	Template string
	Content  map[string]string
	// Transactional messages (receipts, password resets) skip marketing
	// consent, frequency caps and quiet hours, and are retried after a
	// crash rather than dropped.
	Transactional bool
	// Group is the subscription group of a marketing message
	// ("newsletter"): a customer unsubscribed from the channel, or from
	// the channel's group, is not sent it, and its unsubscribe link
	// unsubscribes from the group ("": from the channel).
	Group string
	// Consent is the consent category (Segment's consent spec,
	// context.consent.categoryPreferences) a marketing message needs: a
	// customer whose latest preference for it is false is not sent it. No
	// preference at all is consent (default category DefaultConsent).
	Consent string
}

// DefaultConsent is the consent category of marketing messages.
const DefaultConsent = "marketing"

// QuietHours is a time of the customer's day when marketing messages are
// not sent: from From until To, in the profile's time zone (else Timezone,
// else UTC). It may span midnight (21:00 to 08:00).
type QuietHours struct {
	From, To Clock
	Action   QuietAction
	Timezone string
}

// QuietAction is what becomes of a send in quiet hours.
type QuietAction string

// The quiet-hours actions.
const (
	QuietDefer QuietAction = "defer" // sent when quiet hours end
	QuietSkip  QuietAction = "skip"  // not sent, counted
)

// minutes is c as minutes after midnight.
func (c Clock) minutes() int { return c.Hour*60 + c.Minute }

// End returns when the quiet hours that hold t end, in loc; ok is false
// when t is outside them.
func (q *QuietHours) End(t time.Time, loc *time.Location) (end time.Time, ok bool) {
	lt := t.In(loc)
	now, from, to := lt.Hour()*60+lt.Minute(), q.From.minutes(), q.To.minutes()
	in := from < to && now >= from && now < to || from > to && (now >= from || now < to)
	if !in {
		return time.Time{}, false
	}
	return q.To.Next(t, loc), true
}

// WaitKind is what a wait step waits until.
type WaitKind string

// The wait kinds.
const (
	WaitDuration  WaitKind = "duration"
	WaitLocalTime WaitKind = "until_local_time"
	WaitTrait     WaitKind = "until_trait"
)

// Wait pauses a run.
type Wait struct {
	Kind WaitKind
	// Duration, for WaitDuration.
	Duration time.Duration
	// LocalTime, for WaitLocalTime: the next time the customer's clock
	// shows it (never now), in the profile's timezone, else Timezone.
	LocalTime Clock
	Timezone  string // an IANA zone name; UTC when empty
	// Trait, for WaitTrait: a trait holding a timestamp (RFC 3339, or Unix
	// seconds); the wait ends at that time plus Offset (which may be
	// negative). A missing or past time ends the wait at once.
	Trait  string
	Offset time.Duration
}

// Clock is a time of day.
type Clock struct {
	Hour, Minute int
}

func (c Clock) String() string { return fmt.Sprintf("%02d:%02d", c.Hour, c.Minute) }

// Next returns the first instant strictly after t at which the clock in loc
// shows c.
func (c Clock) Next(t time.Time, loc *time.Location) time.Time {
	lt := t.In(loc)
	next := time.Date(lt.Year(), lt.Month(), lt.Day(), c.Hour, c.Minute, 0, 0, loc)
	for !next.After(t) {
		lt = lt.AddDate(0, 0, 1)
		next = time.Date(lt.Year(), lt.Month(), lt.Day(), c.Hour, c.Minute, 0, 0, loc)
	}
	return next
}

// WaitFor waits for an event, or for a timeout, whichever comes first.
type WaitFor struct {
	Event EventFilter
	// Correlate, when set, is a property key: only an event with the same
	// value of it as the trigger event counts.
	Correlate string
	Timeout   time.Duration
	OnEvent   string // target when the event arrives
	OnTimeout string // target when the timeout passes first
}

// Branch goes to Then when If holds, else to Else. A condition that fails
// to evaluate counts as false.
type Branch struct {
	If   *Condition
	Then string
	Else string
}

// Split sends each customer down one weighted variant, or (with
// probability Holdout) out of the journey as a control group. The choice is
// deterministic per customer: see Choose.
type Split struct {
	Variants []Variant
	Holdout  float64 // in [0, 1)
}

// Variant is one arm of a split.
type Variant struct {
	Name   string
	Weight float64 // positive; relative to the other variants'
	Next   string
}

// Choose maps u, a number in [0, 1) that is stable per customer (such as a
// hash of the journey id, the step id and the customer), to a variant's
// index, or -1 for the holdout. The first Holdout of the range is the
// holdout; the rest is shared among the variants by weight.
func (s *Split) Choose(u float64) int {
	if u < s.Holdout || len(s.Variants) == 0 {
		return -1
	}
	var total float64
	for _, v := range s.Variants {
		total += v.Weight
	}
	x := (u - s.Holdout) / (1 - s.Holdout) * total
	for i, v := range s.Variants {
		if x < v.Weight {
			return i
		}
		x -= v.Weight
	}
	return len(s.Variants) - 1
}

// Update sets profile traits.
type Update struct {
	Set []Assignment // in the order of the definition
}

// Assignment sets one trait to a literal (a YAML scalar, list or map, as
// JSON would decode it) or to the value of an expression.
type Assignment struct {
	Trait string
	Value any   // when Expr is nil
	Expr  *Expr // evaluated when the step runs
}

// Exit ends the run.
type Exit struct {
	Reason string // counted in the journey's stats; "" is "exit"
}
