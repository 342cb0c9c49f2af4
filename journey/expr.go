package journey

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"github.com/google/cel-go/ext"
)

// Scope is the set of variables an expression may use.
type Scope int

// The scopes.
const (
	// ScopeEvent: event and profile. Trigger conditions and the run key.
	ScopeEvent Scope = iota
	// ScopeRun: event, profile and trigger. Conditions and expressions
	// evaluated inside a run: wait_for, exit_on, goal, branch, update.
	ScopeRun
)

// Condition is a compiled CEL expression whose value is a bool. It is safe
// for concurrent use.
type Condition struct {
	Source string
	Pos    Pos // where it is defined
	prg    cel.Program
}

// Eval evaluates the condition. An expression that fails (a missing key, a
// value of the wrong type) returns false and an error naming the
// condition's place; callers count it and treat the condition as false.
func (c *Condition) Eval(v Vars) (bool, error) {
	out, _, err := c.prg.Eval(v.activation())
	if err != nil {
		return false, &EvalError{Pos: c.Pos, Source: c.Source, Err: err}
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, &EvalError{Pos: c.Pos, Source: c.Source, Err: fmt.Errorf("the value is a %s, not a bool", out.Type().TypeName())}
	}
	return bool(b), nil
}

func (c *Condition) String() string { return c.Source }

// Expr is a compiled CEL expression of any type. It is safe for concurrent
// use.
type Expr struct {
	Source string
	Pos    Pos
	prg    cel.Program
}

// Eval evaluates the expression to a Go value: nil, bool, int64, uint64,
// float64, string, []byte, time.Time, time.Duration, []any or
// map[string]any (an event, profile or cart item becomes a map of its
// fields).
func (x *Expr) Eval(v Vars) (any, error) {
	out, _, err := x.prg.Eval(v.activation())
	if err == nil {
		var val any
		if val, err = toGo(out, 0); err == nil {
			return val, nil
		}
	}
	return nil, &EvalError{Pos: x.Pos, Source: x.Source, Err: err}
}

func (x *Expr) String() string { return x.Source }

// EvalError is an expression that failed to evaluate.
type EvalError struct {
	Pos    Pos
	Source string
	Err    error
}

func (e *EvalError) Error() string {
	if p := e.Pos.String(); p != "" {
		return p + ": " + e.Err.Error()
	}
	return e.Err.Error()
}

func (e *EvalError) Unwrap() error { return e.Err }

// NewCondition compiles a condition in the given scope. Errors are
// *ExprError values, joined.
func NewCondition(src string, scope Scope) (*Condition, error) {
	prg, err := compile(src, scope, true)
	if err != nil {
		return nil, err
	}
	return &Condition{Source: src, prg: prg}, nil
}

// NewExpr compiles an expression in the given scope. Errors are *ExprError
// values, joined.
func NewExpr(src string, scope Scope) (*Expr, error) {
	prg, err := compile(src, scope, false)
	if err != nil {
		return nil, err
	}
	return &Expr{Source: src, prg: prg}, nil
}

// ExprError is a compile error in an expression, at a line (from 1) and
// column (from 1) of its source.
type ExprError struct {
	Line, Column int
	Msg          string
}

func (e *ExprError) Error() string {
	if e.Line == 0 {
		return e.Msg
	}
	return fmt.Sprintf("%d:%d: %s", e.Line, e.Column, e.Msg)
}

// compile parses, checks and plans src.
func compile(src string, scope Scope, wantBool bool) (cel.Program, error) {
	envs, err := environments()
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(src) == "" {
		return nil, &ExprError{Msg: "the expression is empty"}
	}
	env := envs[scope]
	ast, iss := env.Compile(src)
	if iss.Err() != nil {
		var errs []error
		for _, e := range iss.Errors() {
			line, col := e.Location.Line(), e.Location.Column()+1
			if line <= 0 {
				line, col = 0, 0
			}
			msg := strings.TrimSuffix(e.Message, " (in container '')")
			errs = append(errs, &ExprError{Line: line, Column: col, Msg: celMessage(msg, scope)})
		}
		return nil, errors.Join(errs...)
	}
	if wantBool {
		switch t := ast.OutputType(); t.Kind() {
		case types.BoolKind, types.DynKind:
		default:
			return nil, &ExprError{Msg: fmt.Sprintf("a condition must be a bool, and this one's value is of type %s", t)}
		}
	}
	prg, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, &ExprError{Msg: err.Error()}
	}
	return prg, nil
}

// celMessage adds a hint to the CEL messages that puzzle authors most.
func celMessage(msg string, scope Scope) string {
	switch {
	case scope == ScopeEvent && strings.Contains(msg, "undeclared reference to 'trigger'"):
		return msg + " (trigger exists only inside a run: wait_for, exit_on, goal, branch, update)"
	case strings.HasPrefix(msg, "undefined field '"):
		name, _, _ := strings.Cut(strings.TrimPrefix(msg, "undefined field '"), "'")
		best, bestDist := "", 3
		for _, t := range []*objType{eventType, profileType, itemType} {
			for _, f := range t.names() {
				if d := editDistance(name, f); d < bestDist {
					best, bestDist = f, d
				}
			}
		}
		if best != "" {
			return msg + " (did you mean " + best + "?)"
		}
	case strings.Contains(msg, "no matching overload") && strings.Contains(msg, "(double, int)"):
		return msg + " (write the number as a double, e.g. 500.0)"
	case strings.Contains(msg, "no matching overload") && strings.Contains(msg, "(int, double)"):
		return msg + " (write the number as an int, e.g. 3)"
	}
	return msg
}

func (t *objType) names() []string {
	names := make([]string, 0, len(t.fields))
	for n := range t.fields {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// environments are the CEL environments of the scopes, built once: a
// cel.Env is immutable and safe for concurrent use.
var environments = sync.OnceValues(func() ([2]*cel.Env, error) {
	base, err := cel.NewEnv(
		cel.CustomTypeAdapter(celAdapter),
		cel.CustomTypeProvider(provider{registry}),
		cel.Variable("event", eventType.t),
		cel.Variable("profile", profileType.t),
		cel.CrossTypeNumericComparisons(true),
		cel.DefaultUTCTimeZone(true),
		cel.OptionalTypes(),
		ext.Strings(),
		ext.Math(),
		ext.Lists(),
		ext.Sets(),
	)
	if err != nil {
		return [2]*cel.Env{}, err
	}
	run, err := base.Extend(cel.Variable("trigger", eventType.t))
	return [2]*cel.Env{ScopeEvent: base, ScopeRun: run}, err
})

// registry holds CEL's standard types; celAdapter turns Go values into CEL
// values, the objects of this package included. Neither changes after
// package initialisation.
var (
	registry                 = newRegistry()
	celAdapter types.Adapter = adapter{registry}
)

func newRegistry() *types.Registry {
	r, err := types.NewRegistry()
	if err != nil {
		panic(err) // only bad protobuf types, and there are none
	}
	return r
}

type adapter struct{ base types.Adapter }

func (a adapter) NativeToValue(v any) ref.Val {
	switch o := v.(type) {
	case *eventObj:
		return objVal{eventType, o}
	case *profileObj:
		return objVal{profileType, o}
	case *itemObj:
		return objVal{itemType, o}
	}
	return a.base.NativeToValue(v)
}

// provider declares the object types of this package to the type checker
// and the planner, over the standard registry (which CEL libraries
// register their types in, when the environments are built).
type provider struct{ *types.Registry }

func objTypeOf(name string) *objType {
	switch name {
	case eventType.t.TypeName():
		return eventType
	case profileType.t.TypeName():
		return profileType
	case itemType.t.TypeName():
		return itemType
	}
	return nil
}

func (p provider) FindStructType(name string) (*types.Type, bool) {
	if t := objTypeOf(name); t != nil {
		return types.NewTypeTypeWithParam(t.t), true
	}
	return p.Registry.FindStructType(name)
}

func (p provider) FindStructFieldNames(name string) ([]string, bool) {
	if t := objTypeOf(name); t != nil {
		return t.names(), true
	}
	return p.Registry.FindStructFieldNames(name)
}

func (p provider) FindStructFieldType(name, field string) (*types.FieldType, bool) {
	if t := objTypeOf(name); t != nil {
		f, ok := t.fields[field]
		return f, ok
	}
	return p.Registry.FindStructFieldType(name, field)
}

func (p provider) NewValue(name string, fields map[string]ref.Val) ref.Val {
	if objTypeOf(name) != nil {
		return types.NewErr("a %s cannot be built in an expression", name)
	}
	return p.Registry.NewValue(name, fields)
}

func errConvert(from string, to reflect.Type) error {
	return fmt.Errorf("type conversion error from '%s' to '%v'", from, to)
}

// toGo converts a CEL value to plain Go values.
func toGo(v ref.Val, depth int) (any, error) {
	if depth > 64 {
		return nil, errors.New("the value is nested too deeply")
	}
	switch x := v.(type) {
	case types.Null:
		return nil, nil
	case types.Bool:
		return bool(x), nil
	case types.Int:
		return int64(x), nil
	case types.Uint:
		return uint64(x), nil
	case types.Double:
		return float64(x), nil
	case types.String:
		return string(x), nil
	case types.Bytes:
		return []byte(x), nil
	case types.Timestamp:
		return x.Time, nil
	case types.Duration:
		return x.Duration, nil
	case *types.Err:
		return nil, x
	case *types.Optional:
		if !x.HasValue() {
			return nil, nil
		}
		return toGo(x.GetValue(), depth+1)
	case objVal:
		m := make(map[string]any, len(x.t.fields))
		for name, f := range x.t.fields {
			fv, _ := f.GetFrom(x.obj)
			g, err := toGo(celAdapter.NativeToValue(fv), depth+1)
			if err != nil {
				return nil, err
			}
			m[name] = g
		}
		return m, nil
	case traits.Lister:
		n := int(x.Size().(types.Int))
		out := make([]any, 0, n)
		for it := x.Iterator(); it.HasNext() == types.True; {
			g, err := toGo(it.Next(), depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, g)
		}
		return out, nil
	case traits.Mapper:
		out := make(map[string]any, int(x.Size().(types.Int)))
		for it := x.Iterator(); it.HasNext() == types.True; {
			k := it.Next()
			g, err := toGo(x.Get(k), depth+1)
			if err != nil {
				return nil, err
			}
			ks, ok := k.(types.String)
			if !ok {
				kg, _ := toGo(k, depth+1)
				out[fmt.Sprint(kg)] = g
				continue
			}
			out[string(ks)] = g
		}
		return out, nil
	}
	return nil, fmt.Errorf("a value of type %s cannot be used here", v.Type().TypeName())
}
