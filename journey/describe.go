package journey

import (
	"fmt"
	"strings"
)

// DescribeTrigger returns a trigger as plain data for the admin API: its
// kind and the fields of that kind.
func DescribeTrigger(t *Trigger) map[string]any {
	out := map[string]any{"kind": string(t.Kind)}
	filter := func(f *EventFilter) map[string]any {
		m := map[string]any{}
		if f == nil {
			return m
		}
		if f.Type != "" {
			m["type"] = string(f.Type)
		}
		if f.Name != "" {
			m["event"] = f.Name
		}
		if f.If != nil {
			m["if"] = f.If.Source
		}
		return m
	}
	switch t.Kind {
	case TriggerEvent:
		for k, v := range filter(t.Event) {
			out[k] = v
		}
	case TriggerPattern:
		p := t.Pattern
		pm := map[string]any{"kind": string(p.Kind), "within": FormatDuration(p.Within)}
		switch p.Kind {
		case PatternCount:
			pm["count"], pm["event"] = p.Count, filter(p.Event)
			if p.GroupBy != "" {
				pm["group_by"] = p.GroupBy
			}
		case PatternSequence:
			var seq []any
			for _, f := range p.Sequence {
				seq = append(seq, filter(f))
			}
			pm["sequence"] = seq
		case PatternNotFollowedBy:
			pm["event"], pm["not_followed_by"] = filter(p.Event), filter(p.NotFollowedBy)
		}
		if p.Correlate != "" {
			pm["correlate"] = p.Correlate
		}
		out["pattern"] = pm
	case TriggerAbsence:
		out["absence"] = map[string]any{"event": filter(&t.Absence.Event), "for": FormatDuration(t.Absence.Duration)}
	case TriggerProfile:
		if t.Profile != nil {
			out["profile"] = t.Profile.Source
		}
	}
	return out
}

// StepLabel is a short human text of what a step does: "send email:
// welcome", "wait 30m", "wait for Order Completed (48h)".
func StepLabel(s *Step) string {
	switch s.Kind {
	case StepSend:
		what := s.Send.Template
		if what == "" {
			what = s.ID
			for _, k := range []string{"subject", "title"} {
				if v := s.Send.Content[k]; v != "" && !strings.Contains(v, "{") {
					what = v
					break
				}
			}
		}
		return fmt.Sprintf("send %s: %s", s.Send.Channel, what)
	case StepWait:
		switch w := s.Wait; w.Kind {
		case WaitLocalTime:
			return "wait until " + w.LocalTime.String() + " local time"
		case WaitTrait:
			return "wait until trait " + w.Trait
		default:
			return "wait " + FormatDuration(w.Duration)
		}
	case StepWaitFor:
		name := s.WaitFor.Event.Name
		if name == "" {
			name = string(s.WaitFor.Event.Type)
		}
		return fmt.Sprintf("wait for %s (%s)", name, FormatDuration(s.WaitFor.Timeout))
	case StepBranch:
		return "branch: " + s.Branch.If.Source
	case StepSplit:
		var parts []string
		for _, v := range s.Split.Variants {
			parts = append(parts, v.Name)
		}
		if s.Split.Holdout > 0 {
			parts = append(parts, fmt.Sprintf("holdout %g%%", s.Split.Holdout*100))
		}
		return "split: " + strings.Join(parts, ", ")
	case StepUpdate:
		var traits []string
		for _, a := range s.Update.Set {
			traits = append(traits, a.Trait)
		}
		return "update " + strings.Join(traits, ", ")
	case StepExit:
		return "exit: " + s.Exit.Reason
	}
	return string(s.Kind)
}
