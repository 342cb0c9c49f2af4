package journey

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cespare/xxhash/v2"
)

// catalog is the set of journey versions a runtime runs: immutable, swapped
// whole by SetJourneys.
type catalog struct {
	current []*compiled          // the highest version of each journey, by id
	byID    map[string]*compiled // the same, by id
	byVer   map[verKey]*compiled // every version
	// anyEvent: some current trigger wants every event of a profile
	// (absence without a filter, or a profile condition).
	anyEvent bool
	// filters are every filter of every version: triggers, goals, exit
	// rules, waits for events.
	filters []*EventFilter
}

type verKey struct {
	id      string
	version int
}

// compiled is one journey version ready to run.
type compiled struct {
	j   *Journey
	fp  uint64                         // fingerprint of the trigger
	tpl map[*Step]map[string]*Template // the fields of each send step
}

// version returns the journey version a run is on, or nil when it is no
// longer loaded.
func (c *catalog) version(id string, v int) *compiled { return c.byVer[verKey{id, v}] }

// newCatalog compiles journeys: every version given is kept for the runs on
// it, and the highest version of each id is the one new runs start on.
func newCatalog(journeys []*Journey, channels []string, named map[string]map[string]string) (*catalog, error) {
	cat := &catalog{byID: map[string]*compiled{}, byVer: map[verKey]*compiled{}}
	var errs []error
	for _, j := range journeys {
		if j == nil {
			continue
		}
		k := verKey{j.ID, j.Version}
		if cat.byVer[k] != nil {
			errs = append(errs, fmt.Errorf("journey %s version %d is given twice", j.ID, j.Version))
			continue
		}
		c, err := compileJourney(j, channels, named)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		cat.byVer[k] = c
		cat.filters = append(cat.filters, filtersOf(j)...)
		if cur := cat.byID[j.ID]; cur == nil || cur.j.Version < j.Version {
			cat.byID[j.ID] = c
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	for _, c := range cat.byID {
		cat.current = append(cat.current, c)
		t := c.j.Trigger
		if t.Kind == TriggerProfile || (t.Kind == TriggerAbsence && t.Absence.Event.Name == "" && t.Absence.Event.Type == "") {
			cat.anyEvent = true
		}
	}
	slices.SortFunc(cat.current, func(a, b *compiled) int { return cmp.Compare(a.j.ID, b.j.ID) })
	return cat, nil
}

func compileJourney(j *Journey, channels []string, named map[string]map[string]string) (*compiled, error) {
	if err := j.Validate(channels); err != nil {
		return nil, fmt.Errorf("journey %s: %w", j.ID, err)
	}
	c := &compiled{j: j, fp: fingerprint(&j.Trigger), tpl: map[*Step]map[string]*Template{}}
	var errs []error
	for _, s := range j.Steps {
		if s.Kind != StepSend {
			continue
		}
		at := s.Pos
		at.File = cmp.Or(at.File, j.File)
		fields := s.Send.Content
		if s.Send.Template != "" {
			var ok bool
			if fields, ok = named[s.Send.Template]; !ok {
				errs = append(errs, &Error{at, fmt.Sprintf("send.template: no template is named %q", s.Send.Template)})
				continue
			}
		}
		m := make(map[string]*Template, len(fields))
		for name, text := range fields {
			t, err := ParseTemplate(text)
			if err != nil {
				errs = append(errs, &Error{at, fmt.Sprintf("send.content.%s: %v", name, err)})
				continue
			}
			m[name] = t
		}
		c.tpl[s] = m
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("journey %s: %w", j.ID, errors.Join(errs...))
	}
	return c, nil
}

// fingerprint identifies what a trigger matches: the pattern state of a
// profile carries over to a new version with the same fingerprint, and is
// dropped when the trigger changed.
func fingerprint(t *Trigger) uint64 {
	var b strings.Builder
	filter := func(f *EventFilter) {
		if f == nil {
			b.WriteString("-;")
			return
		}
		fmt.Fprintf(&b, "%s|%s|", f.Type, f.Name)
		if f.If != nil {
			b.WriteString(f.If.Source)
		}
		b.WriteString(";")
	}
	b.WriteString(string(t.Kind) + ";")
	switch t.Kind {
	case TriggerEvent:
		filter(t.Event)
	case TriggerPattern:
		p := t.Pattern
		fmt.Fprintf(&b, "%s|%d|%d|%q|%q;", p.Kind, p.Count, p.Within, p.GroupBy, p.Correlate)
		filter(p.Event)
		filter(p.NotFollowedBy)
		for _, f := range p.Sequence {
			filter(f)
		}
	case TriggerAbsence:
		fmt.Fprintf(&b, "%d;", t.Absence.Duration)
		filter(&t.Absence.Event)
	case TriggerProfile:
		if t.Profile != nil {
			b.WriteString(t.Profile.Source)
		}
	}
	return xxhash.Sum64String(b.String())
}

// filtersOf lists the filters of a journey that select events.
func filtersOf(j *Journey) []*EventFilter {
	var fs []*EventFilter
	switch t := j.Trigger; t.Kind {
	case TriggerEvent:
		fs = append(fs, t.Event)
	case TriggerPattern:
		fs = append(fs, t.Pattern.Sequence...)
		for _, f := range []*EventFilter{t.Pattern.Event, t.Pattern.NotFollowedBy} {
			if f != nil {
				fs = append(fs, f)
			}
		}
	case TriggerAbsence:
		fs = append(fs, &t.Absence.Event)
	}
	for _, x := range j.ExitOn {
		fs = append(fs, &x.Event)
	}
	if j.Goal != nil {
		fs = append(fs, &j.Goal.Event)
	}
	for _, s := range j.Steps {
		if s.Kind == StepWaitFor {
			fs = append(fs, &s.WaitFor.Event)
		}
	}
	return fs
}
