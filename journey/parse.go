package journey

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"github.com/nudge-dev/nudge"
)

// Error is a problem in a journey definition, at its file, line and field.
type Error struct {
	Pos
	Msg string
}

func (e *Error) Error() string {
	if p := e.Pos.String(); p != "" {
		return p + ": " + e.Msg
	}
	return e.Msg
}

// MaxFileSize bounds the size of one journey definition.
const MaxFileSize = 1 << 20

// Loader parses journey definitions. The zero Loader is ready to use.
type Loader struct {
	// Channels are the channel names send steps may use; nil means
	// DefaultChannels.
	Channels []string
}

// Parse parses and validates one journey definition in YAML with the
// default channels: see Loader.Parse.
func Parse(filename string, data []byte) (*Journey, error) {
	return Loader{}.Parse(filename, data)
}

// LoadDir loads the journeys of a directory with the default channels: see
// Loader.LoadDir.
func LoadDir(dir string) ([]*Journey, error) {
	return Loader{}.LoadDir(dir)
}

// LoadFS is Loader.LoadFS with the default channels.
func LoadFS(fsys fs.FS, dir, display string) ([]*Journey, error) {
	return Loader{}.LoadFS(fsys, dir, display)
}

func (l Loader) channels() []string {
	if l.Channels == nil {
		return DefaultChannels
	}
	return l.Channels
}

// Parse parses one journey definition in YAML, compiles its expressions and
// validates it (Journey.Validate). filename is only used in errors. On
// failure it returns every problem of the document, each an *Error naming
// the file, the line and the field, joined with errors.Join in line order.
func (l Loader) Parse(filename string, data []byte) (*Journey, error) {
	if len(data) > MaxFileSize {
		return nil, &Error{Pos{File: filename}, fmt.Sprintf("the file is %d bytes, more than the %d a journey may have", len(data), MaxFileSize)}
	}
	d := &decoder{
		file:    filename,
		anchors: map[string]ast.Node{},
		lines:   map[string]int{},
		fails:   map[string]bool{},
	}
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, d.syntaxError(err)
	}
	var docs []*ast.DocumentNode
	for _, doc := range f.Docs {
		if doc != nil && doc.Body != nil {
			docs = append(docs, doc)
		}
	}
	switch {
	case len(docs) == 0:
		return nil, &Error{Pos{File: filename, Line: 1}, "the document is empty"}
	case len(docs) > 1:
		return nil, &Error{Pos{File: filename, Line: line(docs[1].Body)}, "a file holds one journey: found a second YAML document"}
	}
	root := docs[0].Body
	for _, n := range ast.Filter(ast.AnchorType, root) {
		a := n.(*ast.AnchorNode)
		if a.Name != nil {
			d.anchors[a.Name.GetToken().Value] = a.Value
		}
	}
	j := d.journey(d.value(root, "", 1))
	j.lines = d.lines
	errs := d.errs
	for _, e := range j.validate(l.channels()) {
		if !d.failedAt(e.Field) {
			errs = append(errs, e)
		}
	}
	if len(errs) > 0 {
		return nil, joinErrors(errs)
	}
	return j, nil
}

// IsJourneyFile reports whether a file of a journeys directory holds a
// journey: *.yaml and *.yml, except hidden files and *_test.yaml files,
// which are reserved for journey tests.
func IsJourneyFile(name string) bool {
	ext := path.Ext(name)
	base := strings.TrimSuffix(name, ext)
	return (ext == ".yaml" || ext == ".yml") && !strings.HasPrefix(name, ".") && !strings.HasSuffix(base, "_test")
}

// LoadDir parses the journeys of dir: every journey file in it
// (IsJourneyFile; not in its subdirectories), in name order. Journey ids
// must be unique across the files. It returns the journeys that loaded,
// and an error joining the problems of all the others.
func (l Loader) LoadDir(dir string) ([]*Journey, error) {
	return l.LoadFS(os.DirFS(dir), ".", dir)
}

// LoadFS is LoadDir over the directory dir of fsys; display is the
// directory's name in errors (and in the journeys' File).
func (l Loader) LoadFS(fsys fs.FS, dir, display string) ([]*Journey, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	var (
		js   []*Journey
		errs []error
		ids  = map[string]*Journey{}
	)
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !IsJourneyFile(name) {
			continue
		}
		data, err := fs.ReadFile(fsys, path.Join(dir, name))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		j, err := l.Parse(filepath.Join(display, name), data)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if prev, dup := ids[j.ID]; dup {
			errs = append(errs, &Error{j.pos("id"), fmt.Sprintf("%q is already the id of the journey in %s", j.ID, prev.File)})
			continue
		}
		ids[j.ID] = j
		js = append(js, j)
	}
	return js, errors.Join(errs...)
}

// joinErrors joins errs in line order (stable).
func joinErrors(errs []*Error) error {
	slices.SortStableFunc(errs, func(a, b *Error) int { return a.Line - b.Line })
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = e
	}
	return errors.Join(out...)
}

// decoder builds a Journey from the YAML syntax tree, recording every
// problem rather than stopping at the first.
type decoder struct {
	file    string
	errs    []*Error
	anchors map[string]ast.Node
	lines   map[string]int  // field path to line
	fails   map[string]bool // paths with an error
	budget  int             // nodes of literal values decoded so far
}

// val is a node of the tree with its field path and line. n is nil for a
// null or missing value; anchors, aliases and tags are resolved.
type val struct {
	n    ast.Node
	path string
	line int
}

func (d *decoder) errorf(v val, format string, args ...any) {
	d.errs = append(d.errs, &Error{Pos{d.file, v.line, v.path}, fmt.Sprintf(format, args...)})
	d.fails[v.path] = true
}

// failedAt reports whether the parser reported an error at path or at one
// of its parents, so that validation need not report it again.
func (d *decoder) failedAt(path string) bool {
	for p := path; ; p = parentPath(p) {
		if d.fails[p] {
			return true
		}
		if p == "" {
			return false
		}
	}
}

func (d *decoder) syntaxError(err error) error {
	var se *yaml.SyntaxError
	if errors.As(err, &se) && se.Token != nil {
		return &Error{Pos{File: d.file, Line: se.Token.Position.Line}, se.Message}
	}
	return &Error{Pos{File: d.file}, err.Error()}
}

func line(n ast.Node) int {
	if n == nil {
		return 0
	}
	if tk := n.GetToken(); tk != nil && tk.Position != nil {
		return tk.Position.Line
	}
	return 0
}

// value resolves n and records the line of path.
func (d *decoder) value(n ast.Node, path string, ln int) val {
	if l := line(n); l > 0 && ln == 0 {
		ln = l
	}
	v := val{path: path, line: ln}
	for depth := 0; n != nil && depth < 32; depth++ {
		switch x := n.(type) {
		case *ast.AnchorNode:
			n = x.Value
			continue
		case *ast.TagNode:
			n = x.Value
			continue
		case *ast.AliasNode:
			name := ""
			if x.Value != nil {
				name = x.Value.GetToken().Value
			}
			target, ok := d.anchors[name]
			if !ok {
				d.errorf(v, "unknown alias *%s", name)
				return v
			}
			n = target
			continue
		case *ast.NullNode:
			n = nil
		}
		break
	}
	v.n = n
	if _, seen := d.lines[path]; !seen {
		d.lines[path] = ln
	}
	return v
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

func describe(n ast.Node) string {
	switch n.(type) {
	case nil:
		return "empty"
	case ast.MapNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.IntegerNode, *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return "a number"
	case *ast.BoolNode:
		return "a boolean"
	}
	return "a string"
}

// object is a mapping whose keys are field names.
type object struct {
	d      *decoder
	v      val
	fields map[string]val
}

// object reads v as a mapping of the known fields, reporting the others.
// A null v is an empty object.
func (d *decoder) object(v val, known ...string) *object {
	o := &object{d: d, v: v, fields: map[string]val{}}
	if v.n == nil {
		return o
	}
	m, ok := v.n.(ast.MapNode)
	if !ok {
		d.errorf(v, "must be a mapping, not %s", describe(v.n))
		return o
	}
	for it := m.MapRange(); it.Next(); {
		kv := it.KeyValue()
		name, kl, ok := d.key(kv, v.path)
		if !ok {
			continue
		}
		path := joinPath(v.path, name)
		if !slices.Contains(known, name) {
			d.errorf(val{path: path, line: kl}, "unknown field%s", suggest(name, known))
			continue
		}
		o.fields[name] = d.value(kv.Value, path, kl)
	}
	return o
}

// key returns the name and line of a mapping's key, reporting a key that
// is not a name.
func (d *decoder) key(kv *ast.MappingValueNode, parent string) (string, int, bool) {
	kl := line(kv.Key)
	if _, merge := kv.Key.(*ast.MergeKeyNode); merge {
		d.errorf(val{path: parent, line: kl}, "merge keys (<<) are not supported")
		return "", kl, false
	}
	switch k := d.value(kv.Key, parent, kl).n.(type) {
	case *ast.StringNode:
		return k.Value, kl, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode:
		return k.GetToken().Value, kl, true
	default:
		d.errorf(val{path: parent, line: kl}, "a key must be a name, not %s", describe(k))
		return "", kl, false
	}
}

// suggest names the known field closest to name, or lists them all.
func suggest(name string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if dist := editDistance(name, k); dist < bestDist {
			best, bestDist = k, dist
		}
	}
	if best != "" {
		return fmt.Sprintf(" (did you mean %s?)", best)
	}
	visible := slices.DeleteFunc(slices.Clone(known), func(k string) bool { return k == "frequency" })
	return " (fields: " + strings.Join(visible, ", ") + ")"
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func (o *object) has(k string) bool {
	_, ok := o.fields[k]
	return ok
}

func (o *object) get(k string) (val, bool) {
	v, ok := o.fields[k]
	return v, ok
}

// present lists which of keys o has, in the order of keys.
func (o *object) present(keys ...string) []string {
	var out []string
	for _, k := range keys {
		if o.has(k) {
			out = append(out, k)
		}
	}
	return out
}

func (o *object) str(k string) string {
	if v, ok := o.fields[k]; ok {
		s, _ := o.d.str(v)
		return s
	}
	return ""
}

func (o *object) duration(k string) time.Duration {
	if v, ok := o.fields[k]; ok {
		dur, _ := o.d.duration(v)
		return dur
	}
	return 0
}

// at returns the val of a field o does not have, for reporting it.
func (o *object) at(k string) val {
	return val{path: joinPath(o.v.path, k), line: o.v.line}
}

func (d *decoder) str(v val) (string, bool) {
	switch n := v.n.(type) {
	case nil:
		d.errorf(v, "must not be empty")
	case *ast.StringNode:
		return n.Value, true
	case *ast.LiteralNode:
		return n.Value.Value, true
	case *ast.IntegerNode, *ast.FloatNode:
		return n.GetToken().Value, true
	default:
		d.errorf(v, "must be a string, not %s", describe(v.n))
	}
	return "", false
}

func (d *decoder) boolean(v val) bool {
	if b, ok := v.n.(*ast.BoolNode); ok {
		return b.Value
	}
	d.errorf(v, "must be true or false, not %s", describe(v.n))
	return false
}

func (d *decoder) integer(v val) (int, bool) {
	if n, ok := v.n.(*ast.IntegerNode); ok {
		switch i := n.Value.(type) {
		case int64:
			if i >= math.MinInt32 && i <= math.MaxInt32 {
				return int(i), true
			}
		case uint64:
			if i <= math.MaxInt32 {
				return int(i), true
			}
		}
		d.errorf(v, "%s is out of range", n.GetToken().Value)
		return 0, false
	}
	d.errorf(v, "must be a whole number, not %s", describe(v.n))
	return 0, false
}

func (d *decoder) number(v val) (float64, bool) {
	switch n := v.n.(type) {
	case *ast.IntegerNode:
		switch x := n.Value.(type) {
		case int64:
			return float64(x), true
		case uint64:
			return float64(x), true
		}
	case *ast.FloatNode:
		return n.Value, true
	}
	d.errorf(v, "must be a number, not %s", describe(v.n))
	return 0, false
}

func (d *decoder) duration(v val) (time.Duration, bool) {
	switch n := v.n.(type) {
	case *ast.StringNode:
		dur, err := ParseDuration(n.Value)
		if err != nil {
			d.errorf(v, "%q is not a duration (such as 30m, 48h or 7d)", n.Value)
			return 0, false
		}
		return dur, true
	case *ast.IntegerNode:
		if n.GetToken().Value == "0" {
			return 0, true
		}
		d.errorf(v, "%s is not a duration: it needs a unit (30m, 48h, 7d)", n.GetToken().Value)
	default:
		d.errorf(v, "must be a duration (such as 30m, 48h or 7d), not %s", describe(v.n))
	}
	return 0, false
}

// list reads v as a list; a single item stands for a list of one when one
// is true.
func (d *decoder) list(v val, one bool) []val {
	switch n := v.n.(type) {
	case nil:
		return nil
	case *ast.SequenceNode:
		out := make([]val, 0, len(n.Values))
		for i, item := range n.Values {
			out = append(out, d.value(item, fmt.Sprintf("%s[%d]", v.path, i), line(item)))
		}
		return out
	}
	if one {
		return []val{v}
	}
	d.errorf(v, "must be a list, not %s", describe(v.n))
	return nil
}

// condition compiles a condition. A boolean literal is a condition too.
func (d *decoder) condition(v val, scope Scope) *Condition {
	src, ok := "", false
	if b, isBool := v.n.(*ast.BoolNode); isBool {
		src, ok = strconv.FormatBool(b.Value), true
	} else {
		src, ok = d.str(v)
	}
	if !ok {
		return nil
	}
	prg, err := compile(src, scope, true)
	if err != nil {
		d.exprErrors(v, err)
		return nil
	}
	return &Condition{Source: src, Pos: Pos{d.file, v.line, v.path}, prg: prg}
}

func (d *decoder) expr(v val, scope Scope) *Expr {
	src, ok := d.str(v)
	if !ok {
		return nil
	}
	prg, err := compile(src, scope, false)
	if err != nil {
		d.exprErrors(v, err)
		return nil
	}
	return &Expr{Source: src, Pos: Pos{d.file, v.line, v.path}, prg: prg}
}

// exprErrors reports the compile errors of the expression at v, at their
// lines in the file.
func (d *decoder) exprErrors(v val, err error) {
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	_, block := v.n.(*ast.LiteralNode)
	for _, e := range list {
		var xe *ExprError
		if !errors.As(e, &xe) {
			d.errorf(v, "%s", e)
			continue
		}
		at := v
		msg := xe.Msg
		if xe.Line > 0 {
			if block {
				at.line = v.line + xe.Line // a block's text starts below its key
			} else {
				at.line = v.line + xe.Line - 1
			}
			msg = fmt.Sprintf("column %d: %s", xe.Column, msg)
		}
		d.errorf(at, "%s", msg)
	}
}

// literal decodes a YAML value as JSON would: nil, bool, int64, float64,
// string, []any, map[string]any.
func (d *decoder) literal(v val, depth int) any {
	d.budget++
	if depth > 32 || d.budget > 10_000 {
		d.errorf(v, "the value is too large or too deeply nested")
		return nil
	}
	switch n := v.n.(type) {
	case nil:
		return nil
	case *ast.BoolNode:
		return n.Value
	case *ast.IntegerNode:
		switch x := n.Value.(type) {
		case int64:
			return x
		case uint64:
			if x <= math.MaxInt64 {
				return int64(x)
			}
			return float64(x)
		}
	case *ast.FloatNode:
		return n.Value
	case *ast.InfinityNode, *ast.NanNode:
		d.errorf(v, "must be a finite number")
		return nil
	case *ast.StringNode:
		return n.Value
	case *ast.LiteralNode:
		return n.Value.Value
	case *ast.SequenceNode:
		out := make([]any, 0, len(n.Values))
		for _, item := range d.list(v, false) {
			out = append(out, d.literal(item, depth+1))
		}
		return out
	case ast.MapNode:
		out := map[string]any{}
		for it := n.MapRange(); it.Next(); {
			kv := it.KeyValue()
			k, kl, ok := d.key(kv, v.path)
			if !ok {
				continue
			}
			out[k] = d.literal(d.value(kv.Value, joinPath(v.path, k), kl), depth+1)
		}
		return out
	}
	d.errorf(v, "unsupported value")
	return nil
}

// The parts of a journey.

var journeyFields = []string{
	"id", "name", "description", "version", "trigger", "steps", "exit_on",
	"reentry", "key", "goal", "allowed_lateness", "quiet_hours", "frequency",
}

func (d *decoder) journey(root val) *Journey {
	d.lines[""] = root.line
	o := d.object(root, journeyFields...)
	j := &Journey{
		File:            d.file,
		ID:              o.str("id"),
		Name:            o.str("name"),
		Description:     o.str("description"),
		AllowedLateness: DefaultAllowedLateness,
		Reentry:         Reentry{Mode: ReentryOnce},
	}
	if v, ok := o.get("version"); ok {
		j.Version, _ = d.integer(v)
	}
	if v, ok := o.get("frequency"); ok {
		d.errorf(v, "frequency caps hold across all journeys: set them with --frequency-cap, not in a journey")
	}
	if v, ok := o.get("quiet_hours"); ok {
		j.QuietHours = d.quietHours(v)
	}
	if v, ok := o.get("trigger"); ok {
		j.Trigger = d.trigger(v)
	}
	if v, ok := o.get("steps"); ok {
		j.Steps = d.steps(v)
	}
	if v, ok := o.get("exit_on"); ok {
		for _, item := range d.list(v, true) {
			f, correlate := d.matchValue(item, ScopeRun, true)
			j.ExitOn = append(j.ExitOn, &ExitRule{Event: f, Correlate: correlate})
		}
	}
	if v, ok := o.get("reentry"); ok {
		j.Reentry = d.reentry(v)
	}
	if v, ok := o.get("key"); ok {
		j.Key = d.expr(v, ScopeEvent)
	}
	if v, ok := o.get("goal"); ok {
		g := d.object(v, "event", "type", "if", "correlate", "within")
		j.Goal = &Goal{Event: d.filter(g, ScopeRun), Correlate: g.str("correlate"), Within: g.duration("within")}
	}
	if v, ok := o.get("allowed_lateness"); ok {
		j.AllowedLateness, _ = d.duration(v)
	}
	j.index = make(map[string]int, len(j.Steps))
	for i, s := range j.Steps {
		if _, dup := j.index[s.ID]; !dup && s.ID != "" {
			j.index[s.ID] = i
		}
	}
	return j
}

// filter reads the event, type and if fields of o.
func (d *decoder) filter(o *object, scope Scope) EventFilter {
	var f EventFilter
	if v, ok := o.get("type"); ok {
		if s, ok := d.str(v); ok {
			f.Type = nudge.EventType(s)
			if !f.Type.Valid() {
				d.errorf(v, "%q is not an event type (track, identify, page, screen, group, alias)", s)
			}
		}
	}
	if v, ok := o.get("event"); ok {
		if s, ok := d.str(v); ok {
			f.Name = s
			switch f.Type {
			case "":
				f.Type = nudge.Track
			case nudge.Track, nudge.Page, nudge.Screen:
			default:
				d.errorf(v, "only track, page and screen events have a name, not %s events", f.Type)
			}
		}
	}
	if v, ok := o.get("if"); ok {
		f.If = d.condition(v, scope)
	}
	return f
}

// matchValue reads an event filter that is either an event name or a
// mapping of event, type, if (and correlate, when allowed).
func (d *decoder) matchValue(v val, scope Scope, correlate bool) (EventFilter, string) {
	if _, isMap := v.n.(ast.MapNode); !isMap && v.n != nil {
		name, ok := d.str(v)
		if !ok {
			return EventFilter{}, ""
		}
		return EventFilter{Type: nudge.Track, Name: name}, ""
	}
	fields := []string{"event", "type", "if"}
	if correlate {
		fields = append(fields, "correlate")
	}
	o := d.object(v, fields...)
	return d.filter(o, scope), o.str("correlate")
}

func (d *decoder) trigger(v val) Trigger {
	o := d.object(v, "event", "type", "if", "pattern", "absence", "profile")
	var t Trigger
	var kinds []string
	if len(o.present("event", "type", "if")) > 0 {
		kinds = append(kinds, "event")
	}
	kinds = append(kinds, o.present("pattern", "absence", "profile")...)
	if len(kinds) > 1 {
		d.errorf(v, "has both %s and %s: a journey has one trigger", kinds[0], kinds[1])
	}
	if len(kinds) == 0 {
		return t
	}
	switch kinds[0] {
	case "event":
		f := d.filter(o, ScopeEvent)
		t.Kind, t.Event = TriggerEvent, &f
	case "pattern":
		pv, _ := o.get("pattern")
		t.Kind, t.Pattern = TriggerPattern, d.pattern(pv)
	case "absence":
		av, _ := o.get("absence")
		a := d.object(av, "duration", "event", "type", "if")
		t.Kind, t.Absence = TriggerAbsence, &Absence{Event: d.filter(a, ScopeEvent), Duration: a.duration("duration")}
	case "profile":
		pv, _ := o.get("profile")
		t.Kind, t.Profile = TriggerProfile, d.condition(pv, ScopeEvent)
	}
	return t
}

func (d *decoder) pattern(v val) *Pattern {
	o := d.object(v, "count", "event", "type", "if", "within", "group_by", "sequence", "not_followed_by", "correlate")
	p := &Pattern{Within: o.duration("within"), GroupBy: o.str("group_by"), Correlate: o.str("correlate")}
	kinds := o.present("count", "sequence", "not_followed_by")
	if len(kinds) > 1 {
		d.errorf(v, "has both %s and %s: a pattern is one of count, sequence or not_followed_by", kinds[0], kinds[1])
	}
	if len(kinds) == 0 {
		return p
	}
	p.Kind = PatternKind(kinds[0])
	notFor := func(kind string, fields ...string) {
		for _, k := range o.present(fields...) {
			fv, _ := o.get(k)
			d.errorf(fv, "does not apply to a %s pattern", kind)
		}
	}
	switch p.Kind {
	case PatternCount:
		cv, _ := o.get("count")
		p.Count, _ = d.integer(cv)
		f := d.filter(o, ScopeEvent)
		p.Event = &f
		notFor("count", "correlate")
	case PatternSequence:
		sv, _ := o.get("sequence")
		for _, item := range d.list(sv, false) {
			f, _ := d.matchValue(item, ScopeEvent, false)
			p.Sequence = append(p.Sequence, &f)
		}
		notFor("sequence", "event", "type", "if", "group_by")
	case PatternNotFollowedBy:
		f := d.filter(o, ScopeEvent)
		p.Event = &f
		nv, _ := o.get("not_followed_by")
		b, _ := d.matchValue(nv, ScopeEvent, false)
		p.NotFollowedBy = &b
		notFor("not_followed_by", "group_by")
	}
	return p
}

func (d *decoder) reentry(v val) Reentry {
	if _, isMap := v.n.(ast.MapNode); isMap {
		o := d.object(v, "after")
		return Reentry{Mode: ReentryAfter, After: o.duration("after")}
	}
	s, ok := d.str(v)
	if !ok {
		return Reentry{Mode: ReentryOnce}
	}
	switch m := ReentryMode(s); m {
	case ReentryOnce, ReentryEveryTime:
		return Reentry{Mode: m}
	}
	d.errorf(v, "%q is not once, every_time or {after: <duration>}", s)
	return Reentry{Mode: ReentryOnce}
}

var stepKinds = []string{"send", "wait", "wait_for", "branch", "split", "update", "exit"}

func (d *decoder) steps(v val) []*Step {
	items := d.list(v, false)
	steps := make([]*Step, 0, len(items))
	explicit := make([]map[string]bool, 0, len(items)) // targets given in the file
	for _, item := range items {
		s, given := d.step(item)
		steps = append(steps, s)
		explicit = append(explicit, given)
	}
	// An omitted target falls through to the next step in the list.
	for i, s := range steps {
		follow := ""
		if i+1 < len(steps) {
			follow = steps[i+1].ID
		}
		fill := func(name string, t *string) {
			if !explicit[i][name] {
				*t = follow
			}
		}
		switch {
		case s.Kind == StepSend || s.Kind == StepWait || s.Kind == StepUpdate:
			fill("next", &s.Next)
		case s.WaitFor != nil:
			fill("on_event", &s.WaitFor.OnEvent)
			fill("on_timeout", &s.WaitFor.OnTimeout)
		case s.Branch != nil:
			fill("else", &s.Branch.Else)
		case s.Split != nil:
			for k := range s.Split.Variants {
				fill(fmt.Sprintf("next%d", k), &s.Split.Variants[k].Next)
			}
		}
	}
	return steps
}

// step reads one step, and which of its targets the file gave.
func (d *decoder) step(v val) (*Step, map[string]bool) {
	o := d.object(v, append([]string{"id", "next"}, stepKinds...)...)
	s := &Step{ID: o.str("id"), Pos: Pos{d.file, v.line, v.path}}
	given := map[string]bool{}
	target := func(o *object, k string, key string, t *string) {
		if tv, ok := o.get(k); ok {
			*t, _ = d.str(tv)
			given[key] = true
		}
	}
	kinds := o.present(stepKinds...)
	if len(kinds) > 1 {
		d.errorf(v, "has both %s and %s: a step does one thing", kinds[0], kinds[1])
	}
	if len(kinds) == 0 {
		return s, given
	}
	s.Kind = StepKind(kinds[0])
	kv, _ := o.get(kinds[0])
	switch s.Kind {
	case StepSend:
		so := d.object(kv, "channel", "template", "content", "transactional", "group", "consent")
		s.Send = &Send{Channel: so.str("channel"), Template: so.str("template"), Group: so.str("group"),
			Consent: cmp.Or(so.str("consent"), DefaultConsent)}
		if cv, ok := so.get("content"); ok {
			s.Send.Content = d.texts(cv)
		}
		if tv, ok := so.get("transactional"); ok {
			s.Send.Transactional = d.boolean(tv)
		}
	case StepWait:
		s.Wait = d.wait(kv)
	case StepWaitFor:
		wo := d.object(kv, "event", "type", "if", "correlate", "timeout", "on_event", "on_timeout")
		s.WaitFor = &WaitFor{Event: d.filter(wo, ScopeRun), Correlate: wo.str("correlate"), Timeout: wo.duration("timeout")}
		target(wo, "on_event", "on_event", &s.WaitFor.OnEvent)
		target(wo, "on_timeout", "on_timeout", &s.WaitFor.OnTimeout)
	case StepBranch:
		bo := d.object(kv, "if", "then", "else")
		s.Branch = &Branch{}
		if cv, ok := bo.get("if"); ok {
			s.Branch.If = d.condition(cv, ScopeRun)
		}
		target(bo, "then", "then", &s.Branch.Then)
		target(bo, "else", "else", &s.Branch.Else)
	case StepSplit:
		so := d.object(kv, "variants", "holdout")
		s.Split = &Split{}
		if hv, ok := so.get("holdout"); ok {
			s.Split.Holdout, _ = d.number(hv)
		}
		if vv, ok := so.get("variants"); ok {
			for k, item := range d.list(vv, false) {
				vo := d.object(item, "name", "weight", "next")
				variant := Variant{Name: vo.str("name")}
				if wv, ok := vo.get("weight"); ok {
					variant.Weight, _ = d.number(wv)
				}
				target(vo, "next", fmt.Sprintf("next%d", k), &variant.Next)
				s.Split.Variants = append(s.Split.Variants, variant)
			}
		}
	case StepUpdate:
		uo := d.object(kv, "set")
		s.Update = &Update{}
		if sv, ok := uo.get("set"); ok {
			s.Update.Set = d.assignments(sv)
		}
	case StepExit:
		eo := d.object(kv, "reason")
		s.Exit = &Exit{Reason: eo.str("reason")}
	}
	if nv, ok := o.get("next"); ok {
		switch s.Kind {
		case StepSend, StepWait, StepUpdate:
			target(o, "next", "next", &s.Next)
		default:
			d.errorf(nv, "a %s step has no next: %s", s.Kind, ownTargets(s.Kind))
		}
	}
	return s, given
}

func ownTargets(k StepKind) string {
	switch k {
	case StepWaitFor:
		return "it goes on to on_event or on_timeout"
	case StepBranch:
		return "it goes on to then or else"
	case StepSplit:
		return "each variant names its next step"
	}
	return "it ends the run"
}

func (d *decoder) wait(v val) *Wait {
	o := d.object(v, "duration", "until_local_time", "timezone", "until_trait", "offset")
	w := &Wait{}
	kinds := o.present("duration", "until_local_time", "until_trait")
	if len(kinds) > 1 {
		d.errorf(v, "has both %s and %s: a wait waits for one thing", kinds[0], kinds[1])
	}
	if len(kinds) > 0 {
		w.Kind = WaitKind(kinds[0])
	}
	w.Duration = o.duration("duration")
	if tv, ok := o.get("until_local_time"); ok {
		if s, ok := d.str(tv); ok {
			c, err := parseClock(s)
			if err != nil {
				d.errorf(tv, "%s", err)
			}
			w.LocalTime = c
		}
	}
	w.Timezone = o.str("timezone")
	w.Trait = o.str("until_trait")
	w.Offset = o.duration("offset")
	if w.Kind != WaitLocalTime {
		if tv, ok := o.get("timezone"); ok {
			d.errorf(tv, "applies only to until_local_time")
		}
	}
	if w.Kind != WaitTrait {
		if ov, ok := o.get("offset"); ok {
			d.errorf(ov, "applies only to until_trait")
		}
	}
	return w
}

func (d *decoder) quietHours(v val) *QuietHours {
	o := d.object(v, "from", "to", "action", "timezone")
	q := &QuietHours{Action: QuietDefer, Timezone: o.str("timezone")}
	for _, f := range []struct {
		name string
		c    *Clock
	}{{"from", &q.From}, {"to", &q.To}} {
		tv, ok := o.get(f.name)
		if !ok {
			d.errorf(v, "needs %s (HH:MM, the customer's local time)", f.name)
			continue
		}
		if s, ok := d.str(tv); ok {
			c, err := parseClock(s)
			if err != nil {
				d.errorf(tv, "%s", err)
			}
			*f.c = c
		}
	}
	if q.From == q.To {
		d.errorf(v, "from and to are the same time: quiet hours would never end")
	}
	if av, ok := o.get("action"); ok {
		if s, ok := d.str(av); ok {
			switch QuietAction(s) {
			case QuietDefer, QuietSkip:
				q.Action = QuietAction(s)
			default:
				d.errorf(av, "%q is not defer or skip", s)
			}
		}
	}
	if tv, ok := o.get("timezone"); ok && q.Timezone != "" {
		if _, err := time.LoadLocation(q.Timezone); err != nil {
			d.errorf(tv, "%q is not a time zone (an IANA name such as Europe/Berlin)", q.Timezone)
		}
	}
	return q
}

// parseClock parses a time of day, HH:MM.
func parseClock(s string) (Clock, error) {
	h, m, ok := strings.Cut(s, ":")
	hour, err1 := strconv.Atoi(h)
	minute, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || len(m) != 2 || len(h) < 1 || len(h) > 2 ||
		hour < 0 || hour > 23 || minute < 0 || minute > 59 {
		return Clock{}, fmt.Errorf("%q is not a time of day (HH:MM, such as 09:00)", s)
	}
	return Clock{hour, minute}, nil
}

// texts reads a mapping of names to strings.
func (d *decoder) texts(v val) map[string]string {
	m, ok := v.n.(ast.MapNode)
	if !ok {
		if v.n != nil {
			d.errorf(v, "must be a mapping of field names to text, not %s", describe(v.n))
		}
		return nil
	}
	out := map[string]string{}
	for it := m.MapRange(); it.Next(); {
		kv := it.KeyValue()
		name, kl, ok := d.key(kv, v.path)
		if !ok {
			continue
		}
		tv := d.value(kv.Value, joinPath(v.path, name), kl)
		if text, ok := d.str(tv); ok {
			out[name] = text
			d.template(tv, text)
		}
	}
	return out
}

// template reports a Liquid text that does not parse, at its line.
func (d *decoder) template(v val, text string) {
	_, err := ParseTemplate(text)
	var te *TemplateError
	if !errors.As(err, &te) {
		return
	}
	at := v
	if te.Line > 1 {
		if _, block := v.n.(*ast.LiteralNode); block {
			at.line = v.line + te.Line // a block's text starts below its key
		} else {
			at.line = v.line + te.Line - 1
		}
	}
	d.errorf(at, "the template does not parse: %s", te.Msg)
}

// assignments reads trait: value pairs; a value {expr: ...} is an
// expression.
func (d *decoder) assignments(v val) []Assignment {
	m, ok := v.n.(ast.MapNode)
	if !ok {
		if v.n != nil {
			d.errorf(v, "must be a mapping of trait names to values, not %s", describe(v.n))
		}
		return nil
	}
	var out []Assignment
	for it := m.MapRange(); it.Next(); {
		kv := it.KeyValue()
		name, kl, ok := d.key(kv, v.path)
		if !ok {
			continue
		}
		fv := d.value(kv.Value, joinPath(v.path, name), kl)
		a := Assignment{Trait: name}
		if isExpr(fv.n) {
			xo := d.object(fv, "expr")
			xv, _ := xo.get("expr")
			a.Expr = d.expr(xv, ScopeRun)
		} else {
			a.Value = d.literal(fv, 0)
		}
		out = append(out, a)
	}
	return out
}

// isExpr reports whether n is a mapping of the single key expr.
func isExpr(n ast.Node) bool {
	m, ok := n.(ast.MapNode)
	if !ok {
		return false
	}
	it := m.MapRange()
	if !it.Next() {
		return false
	}
	k, ok := it.Key().(*ast.StringNode)
	return ok && k.Value == "expr" && !it.Next()
}
