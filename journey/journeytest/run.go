package journeytest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/nudge-dev/nudge"
	"github.com/nudge-dev/nudge/channel"
	"github.com/nudge-dev/nudge/journey"
)

// Suite is a directory's journeys and their test files.
type Suite struct {
	Journeys []*journey.Journey
	Files    []*File
	// sibling maps a test file's path to the id of the journey of the file
	// it is named after.
	sibling map[string]string
}

// IsTestFile reports whether a file name is a journey test's
// (<name>_test.yaml or .yml).
func IsTestFile(name string) bool {
	ext := path.Ext(name)
	return (ext == ".yaml" || ext == ".yml") && strings.HasSuffix(strings.TrimSuffix(name, ext), "_test")
}

// LoadFS reads the journeys and the test files of the directory dir of
// fsys (not its subdirectories; hidden files skipped). display is the
// directory's name in errors. Every problem names the file, the line and
// the field; they are joined.
func LoadFS(fsys fs.FS, dir, display string) (*Suite, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	s := &Suite{sibling: map[string]string{}}
	var errs []error
	byBase := map[string]string{} // journey file base name -> id
	ids := map[string]string{}
	var tests []fs.DirEntry
	for _, e := range entries {
		name := e.Name()
		switch {
		case e.IsDir() || strings.HasPrefix(name, "."):
			continue
		case IsTestFile(name):
			tests = append(tests, e)
			continue
		case !journey.IsJourneyFile(name):
			continue
		}
		data, err := fs.ReadFile(fsys, path.Join(dir, name))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		j, err := journey.Parse(path.Join(display, name), data)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if prev, dup := ids[j.ID]; dup {
			errs = append(errs, fmt.Errorf("%s: id: %q is already the id of the journey in %s", j.File, j.ID, prev))
			continue
		}
		ids[j.ID] = j.File
		byBase[strings.TrimSuffix(name, path.Ext(name))] = j.ID
		s.Journeys = append(s.Journeys, j)
	}
	for _, e := range tests {
		name := e.Name()
		p := path.Join(display, name)
		data, err := fs.ReadFile(fsys, path.Join(dir, name))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		f, err := ParseFile(p, data)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		base := strings.TrimSuffix(strings.TrimSuffix(name, path.Ext(name)), "_test")
		id := cmp.Or(f.Journey, byBase[base])
		switch {
		case id == "":
			errs = append(errs, &journey.Error{Pos: journey.Pos{File: p, Line: 1, Field: "journey"},
				Msg: fmt.Sprintf("no journey file %s.yaml is beside the test: name the journey under test (journey: ID)", base)})
			continue
		case ids[id] == "":
			errs = append(errs, &journey.Error{Pos: journey.Pos{File: p, Line: 1, Field: "journey"},
				Msg: fmt.Sprintf("no journey of %s has the id %q", display, id)})
			continue
		}
		s.sibling[p] = id
		s.Files = append(s.Files, f)
	}
	return s, errors.Join(errs...)
}

// LoadDir is LoadFS over the operating system's directory dir.
func LoadDir(dir string) (*Suite, error) {
	return LoadFS(os.DirFS(dir), ".", dir)
}

// JourneyOf returns the journey a test file tests.
func (s *Suite) JourneyOf(f *File) *journey.Journey {
	id := cmp.Or(f.Journey, s.sibling[f.Path])
	for _, j := range s.Journeys {
		if j.ID == id {
			return j
		}
	}
	return nil
}

// Result is the outcome of one case.
type Result struct {
	File *File
	Case *Case
	// Failures say what went wrong, one a line; none: the case passed.
	Failures []string
	// Sent are the sends the case saw.
	Sent []*channel.Message
}

// Passed reports whether the case passed.
func (r *Result) Passed() bool { return len(r.Failures) == 0 }

// Summary counts the cases run.
type Summary struct {
	Passed, Failed int
}

// Run runs every case of every file, writing PASS or FAIL for each to w,
// with what differs for a failure. An error is a case that could not be
// run (the store failed), not a failed case.
func (s *Suite) Run(ctx context.Context, w io.Writer) (Summary, error) {
	var sum Summary
	for _, f := range s.Files {
		j := s.JourneyOf(f)
		for _, c := range f.Cases {
			r, err := RunCase(ctx, j, f, c)
			if err != nil {
				return sum, fmt.Errorf("%s:%d: %s: %w", f.Path, c.Line, c.Name, err)
			}
			if r.Passed() {
				sum.Passed++
				fmt.Fprintf(w, "PASS %s:%d: %s\n", f.Path, c.Line, c.Name)
				continue
			}
			sum.Failed++
			fmt.Fprintf(w, "FAIL %s:%d: %s\n", f.Path, c.Line, c.Name)
			for _, l := range r.Failures {
				fmt.Fprintf(w, "    %s\n", l)
			}
		}
	}
	return sum, nil
}

// RunCase runs one case of f against j, in a sandbox in a temporary
// directory removed afterwards.
func RunCase(ctx context.Context, j *journey.Journey, f *File, c *Case) (*Result, error) {
	dir, err := os.MkdirTemp("", "nudge-test-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	sb, err := journey.NewSandbox(journey.SandboxConfig{Dir: dir, Start: c.Start, Journeys: []*journey.Journey{j}})
	if err != nil {
		return nil, err
	}
	defer sb.Close()

	events := slices.Clone(c.Events)
	slices.SortStableFunc(events, func(a, b *Event) int { return cmp.Compare(a.At, b.At) })
	n := 0
	mk := func(user string) nudge.Event {
		n++
		now := sb.Clock.Now()
		return nudge.Event{MessageID: fmt.Sprintf("test-%d", n), Source: "test", UserID: user, Timestamp: now, ReceivedAt: now}
	}
	if c.Traits != nil {
		e := mk(c.User)
		e.Type, e.Traits = nudge.Identify, c.Traits
		if err := sb.Send(e); err != nil {
			return nil, err
		}
	}
	end := time.Duration(0)
	for _, ev := range events {
		if err := sb.RunUntil(c.Start.Add(ev.At)); err != nil {
			return nil, err
		}
		user := cmp.Or(ev.User, c.User)
		if ev.AnonymousID != "" && ev.User == "" {
			user = ""
		}
		e := mk(user)
		e.AnonymousID = ev.AnonymousID
		e.Type, e.Event, e.Name = ev.Type, ev.Event, ev.Name
		e.Properties, e.Traits, e.Context = ev.Properties, ev.Traits, ev.Context
		if err := sb.Send(e); err != nil {
			return nil, err
		}
		end = max(end, ev.At)
	}
	for _, x := range c.Expect {
		end = max(end, x.At)
	}
	until := c.Until
	if until == 0 {
		until = end + DefaultTail
	}
	if err := sb.RunUntil(c.Start.Add(until)); err != nil {
		return nil, err
	}
	r := &Result{File: f, Case: c, Sent: sb.Sent()}
	r.Failures = compare(j, c, r.Sent)
	if c.Stats != nil {
		r.Failures = append(r.Failures, checkStats(sb.Runtime, j, c.Stats)...)
	}
	return r, nil
}

// compare matches the expectations with the sends, and describes what
// differs: expectations not met, sends not expected.
func compare(j *journey.Journey, c *Case, sent []*channel.Message) []string {
	used := make([]bool, len(sent))
	var missing []*Expect
	for _, x := range c.Expect {
		found := false
		for i, m := range sent {
			if !used[i] && len(x.mismatch(j, c, m)) == 0 {
				used[i], found = true, true
				break
			}
		}
		if !found {
			missing = append(missing, x)
		}
	}
	var extra []*channel.Message
	for i, m := range sent {
		if !used[i] {
			extra = append(extra, m)
		}
	}
	if len(missing) == 0 && len(extra) == 0 {
		return nil
	}
	var out []string
	for _, x := range missing {
		out = append(out, fmt.Sprintf("- expected, not sent (line %d): %s", x.Line, x.describe(c)))
		// The closest send: same channel (and step, when given).
		for _, m := range extra {
			if m.Channel == x.Channel && (x.Step == "" || m.Step == x.Step) {
				for _, why := range x.mismatch(j, c, m) {
					out = append(out, "      the "+describeSend(c, m, nil)+" differs: "+why)
				}
				break
			}
		}
	}
	for _, m := range extra {
		out = append(out, "+ sent, not expected: "+describeSend(c, m, fieldNames(c.Expect, m)))
	}
	out = append(out, "  every send of the case:")
	if len(sent) == 0 {
		out = append(out, "    (none)")
	}
	for _, m := range sent {
		out = append(out, "    "+describeSend(c, m, fieldNames(c.Expect, m)))
	}
	return out
}

// fieldNames are the fields worth showing of a send: those the
// expectations of its channel check.
func fieldNames(xs []*Expect, m *channel.Message) []string {
	var names []string
	for _, x := range xs {
		if x.Channel == m.Channel {
			for _, n := range x.fieldOrder {
				if !slices.Contains(names, n) {
					names = append(names, n)
				}
			}
		}
	}
	return names
}

func offset(c *Case, t time.Time) string {
	d := t.Sub(c.Start)
	if d < 0 {
		return "-" + journey.FormatDuration(-d)
	}
	return "+" + journey.FormatDuration(d)
}

func describeSend(c *Case, m *channel.Message, fields []string) string {
	s := fmt.Sprintf("at %s %s step %s to %s", offset(c, m.CreatedAt), m.Channel, m.Step, m.Recipient.Identifiers["userId"])
	if m.Variant != "" {
		s += " variant " + m.Variant
	}
	for _, f := range fields {
		if v, ok := m.Fields[f]; ok {
			s += fmt.Sprintf(" %s=%q", f, v)
		}
	}
	return s
}

func (x *Expect) describe(c *Case) string {
	s := "at any time"
	if x.HasAt {
		s = "at +" + journey.FormatDuration(x.At)
	}
	s += " " + x.Channel
	if x.Step != "" {
		s += " step " + x.Step
	}
	if x.Template != "" {
		s += " template " + x.Template
	}
	s += " to " + cmp.Or(x.User, c.User)
	if x.Variant != "" {
		s += " variant " + x.Variant
	}
	for _, n := range x.fieldOrder {
		s += " " + n + " " + x.Fields[n].String()
	}
	return s
}

// mismatch says how m differs from x (nothing: it matches).
func (x *Expect) mismatch(j *journey.Journey, c *Case, m *channel.Message) []string {
	var why []string
	if x.HasAt && !m.CreatedAt.Equal(c.Start.Add(x.At)) {
		why = append(why, fmt.Sprintf("sent at %s, expected at +%s", offset(c, m.CreatedAt), journey.FormatDuration(x.At)))
	}
	if m.Channel != x.Channel {
		why = append(why, fmt.Sprintf("channel %s, expected %s", m.Channel, x.Channel))
	}
	if x.Step != "" && m.Step != x.Step {
		why = append(why, fmt.Sprintf("step %s, expected %s", m.Step, x.Step))
	}
	if x.Template != "" {
		tpl := ""
		if s := j.Step(m.Step); s != nil && s.Send != nil {
			tpl = s.Send.Template
		}
		if tpl != x.Template {
			why = append(why, fmt.Sprintf("template %q, expected %q", tpl, x.Template))
		}
	}
	if u := cmp.Or(x.User, c.User); m.Recipient.Identifiers["userId"] != u {
		why = append(why, fmt.Sprintf("to %q, expected %q", m.Recipient.Identifiers["userId"], u))
	}
	if x.Variant != "" && m.Variant != x.Variant {
		why = append(why, fmt.Sprintf("variant %q, expected %q", m.Variant, x.Variant))
	}
	for _, n := range x.fieldOrder {
		got, ok := m.Fields[n]
		switch {
		case !ok:
			why = append(why, fmt.Sprintf("has no field %s", n))
		case !x.Fields[n].ok(got):
			why = append(why, fmt.Sprintf("%s is %q, expected %s", n, got, x.Fields[n]))
		}
	}
	return why
}

func checkStats(rt *journey.Runtime, j *journey.Journey, want *Stats) []string {
	view, err := rt.Stats(j.ID)
	var got journey.VersionStats
	if err == nil {
		for _, v := range view.Versions {
			if v.Version == j.Version {
				got = v
			}
		}
	}
	var out []string
	if want.Entered != nil && got.Entered != *want.Entered {
		out = append(out, fmt.Sprintf("stats (line %d): entered %d, expected %d", want.Line, got.Entered, *want.Entered))
	}
	if want.Conversions != nil && got.Conversions != *want.Conversions {
		out = append(out, fmt.Sprintf("stats (line %d): conversions %d, expected %d", want.Line, got.Conversions, *want.Conversions))
	}
	for _, reason := range slices.Sorted(maps.Keys(want.Exits)) {
		if got.Exits[reason] != want.Exits[reason] {
			out = append(out, fmt.Sprintf("stats (line %d): exits %s %d, expected %d (exits: %v)", want.Line, reason, got.Exits[reason], want.Exits[reason], got.Exits))
		}
	}
	return out
}
