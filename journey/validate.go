package journey

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	// Customers' time zones (waits until a local time, the timezone
	// fallback) must resolve on hosts without a zoneinfo database, such as
	// minimal containers.
	_ "time/tzdata"

	"github.com/nudge-dev/nudge"
)

// Validate checks the rules a journey must follow, for a journey built in
// code or changed after Parse (Parse validates already): an id; a complete
// trigger; at least one step; unique step ids; targets that exist; no step
// that no run can reach; no loop of steps without a wait or wait_for in it
// (a run would never stop); positive durations where a duration is
// required, a timeout on every wait_for; split weights positive and a
// holdout in [0, 1); and send steps on known channels. It returns every
// problem, each an *Error, joined.
func (j *Journey) Validate(channels []string) error {
	errs := j.validate(channels)
	if len(errs) == 0 {
		return nil
	}
	return joinErrors(errs)
}

// validator collects the problems of one journey.
type validator struct {
	j    *Journey
	errs []*Error
}

// pos returns the place of a field path: its line, or the nearest parent's
// that has one.
func (j *Journey) pos(path string) Pos {
	p := Pos{File: j.File, Field: path}
	for q := path; ; q = parentPath(q) {
		if l, ok := j.lines[q]; ok && l > 0 {
			p.Line = l
			break
		}
		if q == "" {
			break
		}
	}
	return p
}

func (v *validator) errorf(path, format string, args ...any) {
	v.errs = append(v.errs, &Error{v.j.pos(path), fmt.Sprintf(format, args...)})
}

func (j *Journey) validate(channels []string) []*Error {
	v := &validator{j: j}
	switch {
	case j.ID == "":
		v.errorf("id", "is required")
	case !validID(j.ID):
		v.errorf("id", "%q may hold only letters, digits, '-', '_' and '.', and at most 128 of them", j.ID)
	}
	if j.Version < 0 {
		v.errorf("version", "%d is negative", j.Version)
	}
	v.trigger(&j.Trigger)
	for i, r := range j.ExitOn {
		if r == nil {
			v.errorf(fmt.Sprintf("exit_on[%d]", i), "is empty")
			continue
		}
		v.filter(fmt.Sprintf("exit_on[%d]", i), &r.Event, true)
	}
	switch j.Reentry.Mode {
	case ReentryOnce, ReentryEveryTime:
		if j.Reentry.After != 0 {
			v.errorf("reentry", "a cooldown applies only to reentry after")
		}
	case ReentryAfter:
		v.positive("reentry.after", j.Reentry.After)
	default:
		v.errorf("reentry", "%q is not once, every_time or after", j.Reentry.Mode)
	}
	if g := j.Goal; g != nil {
		v.filter("goal", &g.Event, true)
		v.positive("goal.within", g.Within)
	}
	if j.AllowedLateness < 0 {
		v.errorf("allowed_lateness", "%s is negative", FormatDuration(j.AllowedLateness))
	}
	v.steps(channels)
	return v.errs
}

func validID(id string) bool {
	if len(id) > 128 {
		return false
	}
	for i, c := range id {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case (c == '-' || c == '_' || c == '.') && i > 0:
		default:
			return false
		}
	}
	return true
}

func (v *validator) positive(path string, d time.Duration) {
	switch {
	case d == 0:
		v.errorf(path, "is required (a duration such as 30m, 48h or 7d)")
	case d < 0:
		v.errorf(path, "%s is negative", FormatDuration(d))
	}
}

// filter checks a filter that must select some events by type or name.
func (v *validator) filter(path string, f *EventFilter, needEvent bool) {
	if needEvent && f.Name == "" && f.Type == "" {
		v.errorf(path+".event", "is required (or a type)")
	}
	switch {
	case f.Type != "" && !f.Type.Valid():
		v.errorf(path+".type", "%q is not an event type", f.Type)
	case f.Name != "" && f.Type != "" && f.Type != nudge.Track && f.Type != nudge.Page && f.Type != nudge.Screen:
		v.errorf(path+".event", "only track, page and screen events have a name, not %s events", f.Type)
	}
}

func (v *validator) trigger(t *Trigger) {
	const path = "trigger"
	switch t.Kind {
	case TriggerEvent:
		if t.Event == nil {
			v.errorf(path, "an event trigger needs its event")
			return
		}
		v.filter(path, t.Event, true)
	case TriggerPattern:
		if t.Pattern == nil {
			v.errorf(path+".pattern", "is required")
			return
		}
		v.pattern(path+".pattern", t.Pattern)
	case TriggerAbsence:
		if t.Absence == nil {
			v.errorf(path+".absence", "is required")
			return
		}
		v.filter(path+".absence", &t.Absence.Event, false)
		v.positive(path+".absence.duration", t.Absence.Duration)
	case TriggerProfile:
		if t.Profile == nil {
			v.errorf(path+".profile", "is required: a condition such as profile.revenue > 500")
		}
	case "":
		v.errorf(path, "is required: an event, a pattern, an absence or a profile condition")
	default:
		v.errorf(path, "%q is not a trigger kind", t.Kind)
	}
}

func (v *validator) pattern(path string, p *Pattern) {
	v.positive(path+".within", p.Within)
	switch p.Kind {
	case PatternCount:
		if p.Count < 2 {
			v.errorf(path+".count", "%d is below 2 (for one event, use an event trigger)", p.Count)
		}
		if p.Event == nil {
			v.errorf(path+".event", "is required")
		} else {
			v.filter(path, p.Event, true)
		}
	case PatternSequence:
		if len(p.Sequence) < 2 {
			v.errorf(path+".sequence", "needs at least two events")
		}
		for i, f := range p.Sequence {
			if f == nil {
				f = &EventFilter{}
			}
			v.filter(fmt.Sprintf("%s.sequence[%d]", path, i), f, true)
		}
	case PatternNotFollowedBy:
		if p.Event == nil || p.NotFollowedBy == nil {
			v.errorf(path, "not_followed_by needs its event and the event that must not follow")
			return
		}
		v.filter(path, p.Event, true)
		v.filter(path+".not_followed_by", p.NotFollowedBy, true)
	case "":
		v.errorf(path, "needs one of count, sequence or not_followed_by")
	default:
		v.errorf(path, "%q is not a pattern kind", p.Kind)
	}
	if p.GroupBy != "" && p.Kind != PatternCount {
		v.errorf(path+".group_by", "applies only to a count pattern")
	}
	if p.Correlate != "" && p.Kind == PatternCount {
		v.errorf(path+".correlate", "does not apply to a count pattern (use group_by)")
	}
}

func (v *validator) steps(channels []string) {
	j := v.j
	if len(j.Steps) == 0 {
		v.errorf("steps", "a journey needs at least one step")
		return
	}
	for i, s := range j.Steps {
		if s == nil {
			v.errorf(fmt.Sprintf("steps[%d]", i), "is empty")
			return
		}
	}
	ids := make(map[string]int, len(j.Steps))
	idsOK := true // every step has its own, valid id
	for i, s := range j.Steps {
		path := fmt.Sprintf("steps[%d]", i)
		first, dup := ids[s.ID]
		switch {
		case s.ID == "":
			v.errorf(path+".id", "is required")
		case dup:
			v.errorf(path+".id", "%q is already the id of steps[%d]", s.ID, first)
		case !validID(s.ID):
			v.errorf(path+".id", "%q may hold only letters, digits, '-', '_' and '.', and at most 128 of them", s.ID)
		}
		idsOK = idsOK && s.ID != "" && !dup && validID(s.ID)
		if s.ID != "" && !dup {
			ids[s.ID] = i
		}
		v.step(path, s, channels)
	}
	// Targets.
	for i, s := range j.Steps {
		for _, t := range targetsOf(i, s) {
			if t.id == "" {
				continue
			}
			if _, ok := ids[t.id]; !ok {
				v.errorf(t.path, "no step has the id %q%s", t.id, suggestID(t.id, ids))
			}
		}
	}
	if idsOK { // else which step a target means is unclear
		v.graph(ids)
	}
}

// target is an edge of the step graph, with the field that names it.
type target struct {
	id, path string
}

func targetsOf(i int, s *Step) []target {
	path := fmt.Sprintf("steps[%d]", i)
	switch s.Kind {
	case StepSend, StepWait, StepUpdate:
		return []target{{s.Next, path + ".next"}}
	case StepWaitFor:
		if s.WaitFor != nil {
			return []target{{s.WaitFor.OnEvent, path + ".wait_for.on_event"}, {s.WaitFor.OnTimeout, path + ".wait_for.on_timeout"}}
		}
	case StepBranch:
		if s.Branch != nil {
			return []target{{s.Branch.Then, path + ".branch.then"}, {s.Branch.Else, path + ".branch.else"}}
		}
	case StepSplit:
		if s.Split != nil {
			out := make([]target, len(s.Split.Variants))
			for k, vr := range s.Split.Variants {
				out[k] = target{vr.Next, fmt.Sprintf("%s.split.variants[%d].next", path, k)}
			}
			return out
		}
	}
	return nil
}

func suggestID(id string, ids map[string]int) string {
	best, bestDist := "", 3
	for k := range ids {
		if d := editDistance(id, k); d < bestDist || d == bestDist && k < best {
			best, bestDist = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func (v *validator) step(path string, s *Step, channels []string) {
	missing := func(kind StepKind, set bool) bool {
		if !set {
			v.errorf(path+"."+string(kind), "is required for a %s step", kind)
		}
		return !set
	}
	switch s.Kind {
	case StepSend:
		if missing(s.Kind, s.Send != nil) {
			return
		}
		p := path + ".send"
		switch {
		case s.Send.Channel == "":
			v.errorf(p+".channel", "is required (one of %s)", strings.Join(channels, ", "))
		case !slices.Contains(channels, s.Send.Channel):
			v.errorf(p+".channel", "unknown channel %q (known: %s)", s.Send.Channel, strings.Join(channels, ", "))
		}
		switch {
		case s.Send.Template == "" && len(s.Send.Content) == 0:
			v.errorf(p, "needs a template name or inline content")
		case s.Send.Template != "" && len(s.Send.Content) > 0:
			v.errorf(p, "has both a template and inline content: choose one")
		}
		for k := range s.Send.Content {
			if k == "" {
				v.errorf(p+".content", "a field name is empty")
			}
		}
	case StepWait:
		if missing(s.Kind, s.Wait != nil) {
			return
		}
		v.wait(path+".wait", s.Wait)
	case StepWaitFor:
		if missing(s.Kind, s.WaitFor != nil) {
			return
		}
		p := path + ".wait_for"
		v.filter(p, &s.WaitFor.Event, true)
		if s.WaitFor.Timeout == 0 {
			v.errorf(p+".timeout", "is required: a run must not wait forever")
		} else {
			v.positive(p+".timeout", s.WaitFor.Timeout)
		}
	case StepBranch:
		if missing(s.Kind, s.Branch != nil) {
			return
		}
		if s.Branch.If == nil {
			v.errorf(path+".branch.if", "is required")
		}
		if s.Branch.Then == "" {
			v.errorf(path+".branch.then", "is required")
		}
	case StepSplit:
		if missing(s.Kind, s.Split != nil) {
			return
		}
		v.split(path+".split", s.Split)
	case StepUpdate:
		if missing(s.Kind, s.Update != nil) {
			return
		}
		if len(s.Update.Set) == 0 {
			v.errorf(path+".update.set", "is required: the traits to set")
		}
		seen := map[string]bool{}
		for _, a := range s.Update.Set {
			switch {
			case a.Trait == "":
				v.errorf(path+".update.set", "a trait name is empty")
			case seen[a.Trait]:
				v.errorf(path+".update.set."+a.Trait, "is set twice")
			}
			seen[a.Trait] = true
		}
	case StepExit:
		if missing(s.Kind, s.Exit != nil) {
			return
		}
	case "":
		v.errorf(path, "needs one of %s", strings.Join(stepKinds, ", "))
	default:
		v.errorf(path, "%q is not a step kind", s.Kind)
	}
}

func (v *validator) wait(path string, w *Wait) {
	switch w.Kind {
	case WaitDuration:
		v.positive(path+".duration", w.Duration)
	case WaitLocalTime:
		if w.LocalTime.Hour < 0 || w.LocalTime.Hour > 23 || w.LocalTime.Minute < 0 || w.LocalTime.Minute > 59 {
			v.errorf(path+".until_local_time", "%s is not a time of day", w.LocalTime)
		}
		if w.Timezone != "" {
			if _, err := time.LoadLocation(w.Timezone); err != nil {
				v.errorf(path+".timezone", "%q is not a time zone (an IANA name such as Europe/Paris)", w.Timezone)
			}
		}
	case WaitTrait:
		if w.Trait == "" {
			v.errorf(path+".until_trait", "is required: the trait that holds the time")
		}
	case "":
		v.errorf(path, "needs one of duration, until_local_time or until_trait")
	default:
		v.errorf(path, "%q is not a kind of wait", w.Kind)
	}
}

func (v *validator) split(path string, s *Split) {
	if len(s.Variants) == 0 {
		v.errorf(path+".variants", "is required: at least one variant")
	}
	if math.IsNaN(s.Holdout) || s.Holdout < 0 || s.Holdout >= 1 {
		v.errorf(path+".holdout", "%v is not in [0, 1): the share of customers held out, such as 0.1", s.Holdout)
	}
	names := map[string]bool{}
	for k, vr := range s.Variants {
		p := fmt.Sprintf("%s.variants[%d]", path, k)
		switch {
		case vr.Name == "":
			v.errorf(p+".name", "is required")
		case names[vr.Name]:
			v.errorf(p+".name", "%q is already the name of another variant", vr.Name)
		}
		names[vr.Name] = true
		if !(vr.Weight > 0) || math.IsInf(vr.Weight, 1) {
			v.errorf(p+".weight", "%v is not a positive weight", vr.Weight)
		}
	}
}

// graph checks that every step is reachable from the first and that no
// loop lacks a pause.
func (v *validator) graph(ids map[string]int) {
	j := v.j
	edges := make([][]int, len(j.Steps))
	for i, s := range j.Steps {
		for _, t := range targetsOf(i, s) {
			if k, ok := ids[t.id]; ok && t.id != "" {
				edges[i] = append(edges[i], k)
			}
		}
	}
	seen := make([]bool, len(j.Steps))
	queue := []int{0}
	seen[0] = true
	for len(queue) > 0 {
		i := queue[0]
		queue = queue[1:]
		for _, k := range edges[i] {
			if !seen[k] {
				seen[k] = true
				queue = append(queue, k)
			}
		}
	}
	for i, ok := range seen {
		if !ok {
			v.errorf(fmt.Sprintf("steps[%d]", i), "step %q is unreachable: the first step and the targets lead elsewhere", j.Steps[i].ID)
		}
	}

	// Loops through steps that do not pause: depth-first search over them,
	// a loop being an edge back to a step on the stack.
	pauses := func(i int) bool {
		s := j.Steps[i]
		return s.Kind == StepWaitFor || s.Kind == StepWait && s.Wait != nil && s.Wait.Kind != WaitTrait
	}
	const (
		white = iota
		grey
		black
	)
	color := make([]int, len(j.Steps))
	var stack []int
	reported := map[string]bool{}
	var visit func(i int)
	visit = func(i int) {
		color[i] = grey
		stack = append(stack, i)
		for _, k := range edges[i] {
			if pauses(k) {
				continue
			}
			switch color[k] {
			case white:
				visit(k)
			case grey:
				at := slices.Index(stack, k)
				loop := slices.Clone(stack[at:])
				key := loopKey(loop)
				if reported[key] {
					continue
				}
				reported[key] = true
				names := make([]string, 0, len(loop)+1)
				for _, x := range loop {
					names = append(names, fmt.Sprintf("%q", j.Steps[x].ID))
				}
				names = append(names, fmt.Sprintf("%q", j.Steps[k].ID))
				v.errorf(fmt.Sprintf("steps[%d]", k), "the steps %s loop without a wait or wait_for: a run would never stop",
					strings.Join(names, " → "))
			}
		}
		stack = stack[:len(stack)-1]
		color[i] = black
	}
	for i := range j.Steps {
		if color[i] == white && !pauses(i) {
			visit(i)
		}
	}
}

func loopKey(loop []int) string {
	s := slices.Clone(loop)
	slices.Sort(s)
	return fmt.Sprint(s)
}
