// Package journeytest runs journey tests: files named <journey>_test.yaml
// beside the journeys, each a list of cases ("given these events at these
// times, expect these sends, and no others"). A case runs the journey
// through the real runtime and profile engine, in a journey.Sandbox: a
// store in a temporary directory, a virtual clock, recording channels.
// nudge test and nudge check use it; the format is documented in
// docs/journeys.md ("Testing journeys").
package journeytest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"github.com/nudge-dev/nudge"
	"github.com/nudge-dev/nudge/journey"
)

// DefaultStart is when a case starts when neither it nor its file says: a
// Monday, 09:00 UTC.
var DefaultStart = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// DefaultUser is the user of a case's events when the case names none.
const DefaultUser = "user-1"

// DefaultTail is how long a case runs on after its last event or expected
// send, when it gives no until: long enough to see that nothing else is
// sent.
const DefaultTail = 30 * 24 * time.Hour

// File is a journey test file.
type File struct {
	Path string
	// Journey is the id of the journey under test; "" when the file does
	// not say: the journey of the file it is named after.
	Journey string
	Cases   []*Case
}

// Case is one test: events at times, and the sends they must cause.
type Case struct {
	Name  string
	Line  int
	Start time.Time
	// User is the userId of events and expectations that name none.
	User string
	// Traits, when set, are the user's traits before the first event (an
	// identify call at the start).
	Traits json.RawMessage
	Events []*Event
	// Expect lists every send of the case, in any order: a send not listed
	// fails the case.
	Expect []*Expect
	// Until is how long after Start the case runs; 0: DefaultTail after
	// the last event or expected send.
	Until time.Duration
	Stats *Stats
}

// Event is an event of a case, received at Start+At.
type Event struct {
	Line        int
	At          time.Duration
	User        string
	AnonymousID string
	Type        nudge.EventType
	Event, Name string
	Properties  json.RawMessage
	Traits      json.RawMessage
	Context     json.RawMessage
}

// Expect is a send a case expects.
type Expect struct {
	Line int
	// At is when the run decides to send, after Start; HasAt false: any time.
	At       time.Duration
	HasAt    bool
	Channel  string
	Step     string
	Template string
	User     string
	Variant  string
	// Fields are the rendered fields to check, by name; others are not
	// checked.
	Fields map[string]Match
	// fieldOrder is Fields' names in the file's order.
	fieldOrder []string
}

// Match checks a rendered field: exactly Equals, or containing each of
// Contains.
type Match struct {
	Equals   *string
	Contains []string
}

func (m Match) ok(s string) bool {
	if m.Equals != nil && s != *m.Equals {
		return false
	}
	for _, c := range m.Contains {
		if !strings.Contains(s, c) {
			return false
		}
	}
	return true
}

func (m Match) String() string {
	if m.Equals != nil {
		return fmt.Sprintf("= %q", *m.Equals)
	}
	var parts []string
	for _, c := range m.Contains {
		parts = append(parts, fmt.Sprintf("%q", c))
	}
	return "contains " + strings.Join(parts, " and ")
}

// Stats are counters of the journey a case checks at its end (of the
// version under test); nil fields are not checked.
type Stats struct {
	Line        int
	Entered     *int64
	Conversions *int64
	Exits       map[string]int64
}

// fileDecoder builds a File from the YAML syntax tree, recording every
// problem with its line and field.
type fileDecoder struct {
	path string
	errs []error
}

func (d *fileDecoder) errorf(n ast.Node, field, format string, args ...any) {
	d.errs = append(d.errs, &journey.Error{Pos: journey.Pos{File: d.path, Line: lineOf(n), Field: field}, Msg: fmt.Sprintf(format, args...)})
}

func lineOf(n ast.Node) int {
	if n == nil {
		return 0
	}
	if tk := n.GetToken(); tk != nil && tk.Position != nil {
		return tk.Position.Line
	}
	return 0
}

// ParseFile parses a journey test file. Every problem is a *journey.Error
// naming the file, the line and the field, joined.
func ParseFile(path string, data []byte) (*File, error) {
	d := &fileDecoder{path: path}
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		msg := strings.TrimSpace(yaml.FormatError(err, false, false))
		ln, col := 0, 0
		if _, err := fmt.Sscanf(msg, "[%d:%d]", &ln, &col); err == nil {
			msg = strings.TrimSpace(msg[strings.IndexByte(msg, ']')+1:])
		}
		return nil, &journey.Error{Pos: journey.Pos{File: path, Line: ln}, Msg: "YAML: " + msg}
	}
	var root ast.Node
	for _, doc := range f.Docs {
		if doc != nil && doc.Body != nil {
			if root != nil {
				return nil, &journey.Error{Pos: journey.Pos{File: path, Line: lineOf(doc.Body)}, Msg: "a test file holds one YAML document"}
			}
			root = doc.Body
		}
	}
	if root == nil {
		return nil, &journey.Error{Pos: journey.Pos{File: path, Line: 1}, Msg: "the file is empty: it needs cases"}
	}
	out := &File{Path: path}
	start := DefaultStart
	top := d.fields(root, "", "journey", "start", "cases")
	if n, ok := top["journey"]; ok {
		out.Journey = d.str(n, "journey")
	}
	if n, ok := top["start"]; ok {
		start = d.time(n, "start")
	}
	n, ok := top["cases"]
	if !ok && top != nil {
		d.errorf(root, "cases", "is required: a list of cases")
	}
	if ok {
		items := d.list(n, "cases")
		if len(items) == 0 {
			d.errorf(n, "cases", "is empty")
		}
		for i, item := range items {
			out.Cases = append(out.Cases, d.testCase(item, fmt.Sprintf("cases[%d]", i), start))
		}
	}
	if len(d.errs) > 0 {
		slices.SortStableFunc(d.errs, func(a, b error) int {
			var x, y *journey.Error
			errors.As(a, &x)
			errors.As(b, &y)
			return x.Line - y.Line
		})
		return nil, errors.Join(d.errs...)
	}
	return out, nil
}

var caseFields = []string{"name", "start", "user", "traits", "events", "expect", "until", "stats"}

func (d *fileDecoder) testCase(n ast.Node, path string, start time.Time) *Case {
	c := &Case{Line: lineOf(n), Start: start, User: DefaultUser}
	m := d.fields(n, path, caseFields...)
	if v, ok := m["name"]; ok {
		c.Name = d.str(v, path+".name")
	} else if m != nil {
		d.errorf(n, path+".name", "is required: say what the case checks")
	}
	if v, ok := m["start"]; ok {
		c.Start = d.time(v, path+".start")
	}
	if v, ok := m["user"]; ok {
		c.User = d.str(v, path+".user")
	}
	if v, ok := m["traits"]; ok {
		c.Traits = d.object(v, path+".traits")
	}
	if v, ok := m["events"]; ok {
		for i, item := range d.list(v, path+".events") {
			c.Events = append(c.Events, d.event(item, fmt.Sprintf("%s.events[%d]", path, i), c.Start))
		}
	}
	if v, ok := m["expect"]; ok {
		for i, item := range d.list(v, path+".expect") {
			c.Expect = append(c.Expect, d.expect(item, fmt.Sprintf("%s.expect[%d]", path, i), c.Start))
		}
	}
	if v, ok := m["until"]; ok {
		c.Until = d.at(v, path+".until", c.Start)
	}
	if v, ok := m["stats"]; ok {
		c.Stats = d.stats(v, path+".stats")
	}
	if m != nil && len(c.Events) == 0 && c.Traits == nil {
		d.errorf(n, path+".events", "is required: the events the case sends")
	}
	return c
}

var eventFields = []string{"at", "user", "anonymous_id", "type", "event", "name", "properties", "traits", "context"}

func (d *fileDecoder) event(n ast.Node, path string, start time.Time) *Event {
	e := &Event{Line: lineOf(n), Type: nudge.Track}
	m := d.fields(n, path, eventFields...)
	if m == nil {
		return e
	}
	if v, ok := m["at"]; ok {
		e.At = d.at(v, path+".at", start)
	} else {
		d.errorf(n, path+".at", "is required: when the event is received (+30m after the case's start, or a time)")
	}
	if v, ok := m["user"]; ok {
		e.User = d.str(v, path+".user")
	}
	if v, ok := m["anonymous_id"]; ok {
		e.AnonymousID = d.str(v, path+".anonymous_id")
	}
	if v, ok := m["type"]; ok {
		switch t := nudge.EventType(d.str(v, path+".type")); t {
		case nudge.Track, nudge.Identify, nudge.Page, nudge.Screen:
			e.Type = t
		default:
			d.errorf(v, path+".type", "is %q: track, identify, page or screen", t)
		}
	} else if _, ok := m["event"]; !ok {
		if _, ok := m["traits"]; ok {
			e.Type = nudge.Identify
		}
	}
	if v, ok := m["event"]; ok {
		e.Event = d.str(v, path+".event")
	}
	if v, ok := m["name"]; ok {
		e.Name = d.str(v, path+".name")
	}
	for k, dst := range map[string]*json.RawMessage{"properties": &e.Properties, "traits": &e.Traits, "context": &e.Context} {
		if v, ok := m[k]; ok {
			*dst = d.object(v, path+"."+k)
		}
	}
	if e.Type == nudge.Track && e.Event == "" {
		d.errorf(n, path+".event", "is required: the name of the track event (or give a type)")
	}
	return e
}

var expectFields = []string{"at", "channel", "step", "template", "user", "variant", "fields"}

func (d *fileDecoder) expect(n ast.Node, path string, start time.Time) *Expect {
	x := &Expect{Line: lineOf(n), Fields: map[string]Match{}}
	m := d.fields(n, path, expectFields...)
	if m == nil {
		return x
	}
	if v, ok := m["at"]; ok {
		x.At, x.HasAt = d.at(v, path+".at", start), true
	}
	if v, ok := m["channel"]; ok {
		x.Channel = d.str(v, path+".channel")
	} else {
		d.errorf(n, path+".channel", "is required: the channel of the send")
	}
	for k, dst := range map[string]*string{"step": &x.Step, "template": &x.Template, "user": &x.User, "variant": &x.Variant} {
		if v, ok := m[k]; ok {
			*dst = d.str(v, path+"."+k)
		}
	}
	if v, ok := m["fields"]; ok {
		mv, ok := v.(*ast.MappingNode)
		if !ok {
			d.errorf(v, path+".fields", "must be a map of field name to text (or to {contains: text})")
			return x
		}
		for _, kv := range mv.Values {
			name := kv.Key.String()
			fp := path + ".fields." + name
			x.fieldOrder = append(x.fieldOrder, name)
			switch val := kv.Value.(type) {
			case *ast.MappingNode, *ast.MappingValueNode:
				fm := d.fields(val, fp, "contains", "equals")
				var mt Match
				if c, ok := fm["contains"]; ok {
					if seq, ok := c.(*ast.SequenceNode); ok {
						for i, s := range seq.Values {
							mt.Contains = append(mt.Contains, d.str(s, fmt.Sprintf("%s.contains[%d]", fp, i)))
						}
					} else {
						mt.Contains = []string{d.str(c, fp+".contains")}
					}
				}
				if eq, ok := fm["equals"]; ok {
					s := d.str(eq, fp+".equals")
					mt.Equals = &s
				}
				if mt.Equals == nil && mt.Contains == nil && fm != nil {
					d.errorf(val, fp, "needs contains or equals")
				}
				x.Fields[name] = mt
			default:
				s := d.str(val, fp)
				x.Fields[name] = Match{Equals: &s}
			}
		}
	}
	return x
}

func (d *fileDecoder) stats(n ast.Node, path string) *Stats {
	s := &Stats{Line: lineOf(n)}
	m := d.fields(n, path, "entered", "conversions", "exits")
	for k, dst := range map[string]**int64{"entered": &s.Entered, "conversions": &s.Conversions} {
		if v, ok := m[k]; ok {
			var x int64
			if err := yaml.NodeToValue(v, &x); err != nil {
				d.errorf(v, path+"."+k, "must be a whole number")
			}
			*dst = &x
		}
	}
	if v, ok := m["exits"]; ok {
		if err := yaml.NodeToValue(v, &s.Exits); err != nil {
			d.errorf(v, path+".exits", "must be a map of exit reason to count")
		}
	}
	return s
}

// fields returns the values of a mapping by key, reporting unknown keys;
// nil (and a problem) when n is not a mapping.
func (d *fileDecoder) fields(n ast.Node, path string, known ...string) map[string]ast.Node {
	var values []*ast.MappingValueNode
	switch m := n.(type) {
	case *ast.MappingNode:
		values = m.Values
	case *ast.MappingValueNode:
		values = []*ast.MappingValueNode{m}
	default:
		d.errorf(n, path, "must be a map with the keys %s", strings.Join(known, ", "))
		return nil
	}
	out := map[string]ast.Node{}
	for _, kv := range values {
		k := kv.Key.String()
		if !slices.Contains(known, k) {
			d.errorf(kv, joinField(path, k), "is not a known key here (known: %s)", strings.Join(known, ", "))
			continue
		}
		if _, dup := out[k]; dup {
			d.errorf(kv, joinField(path, k), "is given twice")
			continue
		}
		out[k] = kv.Value
	}
	return out
}

func joinField(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func (d *fileDecoder) list(n ast.Node, path string) []ast.Node {
	seq, ok := n.(*ast.SequenceNode)
	if !ok {
		d.errorf(n, path, "must be a list")
		return nil
	}
	return seq.Values
}

func (d *fileDecoder) str(n ast.Node, path string) string {
	switch v := n.(type) {
	case *ast.StringNode:
		return v.Value
	case *ast.LiteralNode:
		return v.Value.Value
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode:
		return v.GetToken().Value
	case *ast.NullNode:
		return ""
	}
	d.errorf(n, path, "must be text")
	return ""
}

// object decodes a map as JSON.
func (d *fileDecoder) object(n ast.Node, path string) json.RawMessage {
	var v map[string]any
	if err := yaml.NodeToValue(n, &v); err != nil || v == nil {
		d.errorf(n, path, "must be a map")
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		d.errorf(n, path, "cannot be JSON: %v", err)
		return nil
	}
	return b
}

func (d *fileDecoder) time(n ast.Node, path string) time.Time {
	s := d.str(n, path)
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		d.errorf(n, path, "%q is not a time in RFC 3339 (2026-03-02T09:00:00Z)", s)
		return DefaultStart
	}
	return t
}

// at reads a time of a case: +30m (after the start), or RFC 3339; it
// returns the offset from start.
func (d *fileDecoder) at(n ast.Node, path string, start time.Time) time.Duration {
	s := d.str(n, path)
	if strings.HasPrefix(s, "+") || s == "0" {
		off, err := journey.ParseDuration(s)
		if err != nil || off < 0 {
			d.errorf(n, path, "%q is not an offset such as +30m, +1d2h", s)
		}
		return off
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		d.errorf(n, path, "%q is neither an offset such as +30m nor a time in RFC 3339", s)
		return 0
	}
	if t.Before(start) {
		d.errorf(n, path, "%s is before the case's start, %s", s, start.Format(time.RFC3339))
		return 0
	}
	return t.Sub(start)
}
