package journey

import (
	"encoding/json"
	"reflect"
	"time"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"github.com/google/cel-go/interpreter"

	"github.com/nudge-dev/nudge"
	"github.com/nudge-dev/nudge/profile"
)

// Vars are the variables an expression sees:
//
//   - event: the event being matched (for a trigger, the incoming event;
//     for branch and update steps, the latest event of the run: the trigger
//     event, or the event a wait_for received);
//   - profile: the customer's profile, after the event was applied;
//   - trigger: the event that started the run (only inside a run).
//
// Build them with NewVars. A Vars decodes what an expression reads (an
// event's properties, the profile's traits...) on first use and keeps it,
// so one Vars, and its copies, can serve every expression evaluated for the
// same event: build a new one when the event or the profile changes. A Vars
// and its copies are not safe for concurrent use. The zero Vars has no
// variables.
type Vars struct {
	a *activation
}

// NewVars returns the variables of an event and a profile state. s may be
// nil for a customer without a profile.
func NewVars(e *nudge.Event, s *profile.State) Vars {
	if s == nil {
		s = new(profile.State)
	}
	b := &varsBlock{}
	b.prof.s = s
	b.activation.profile = &b.prof
	if e != nil {
		b.ev.e = e
		b.activation.event = &b.ev
	}
	return Vars{&b.activation}
}

// varsBlock holds what NewVars builds in one allocation.
type varsBlock struct {
	activation
	ev   eventObj
	prof profileObj
}

// WithTrigger returns a copy of v whose trigger is t, sharing what v has
// decoded.
func (v Vars) WithTrigger(t *nudge.Event) Vars {
	b := &struct {
		activation
		ev eventObj
	}{}
	if v.a != nil {
		b.activation = *v.a
	}
	b.activation.trigger = nil
	switch {
	case t == nil:
	case b.activation.event != nil && b.activation.event.e == t:
		b.activation.trigger = b.activation.event
	default:
		b.ev.e = t
		b.activation.trigger = &b.ev
	}
	return Vars{&b.activation}
}

// Event returns the event of v, or nil.
func (v Vars) Event() *nudge.Event {
	if v.a == nil || v.a.event == nil {
		return nil
	}
	return v.a.event.e
}

func (v Vars) activation() interpreter.Activation {
	if v.a == nil {
		return noVars
	}
	return v.a
}

var noVars = &activation{}

// activation resolves the variables of an expression to the objects below;
// the CEL type provider (provider) reads their fields without reflection.
type activation struct {
	event, trigger *eventObj
	profile        *profileObj
}

func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case "event":
		if a.event != nil {
			return a.event, true
		}
	case "trigger":
		if a.trigger != nil {
			return a.trigger, true
		}
	case "profile":
		if a.profile != nil {
			return a.profile, true
		}
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }

// eventObj is an event as a CEL object, its raw JSON fields read on first
// use.
type eventObj struct {
	e                  *nudge.Event
	props, traits, ctx *lazyMap
}

func (o *eventObj) properties() *lazyMap { return rawField(&o.props, o.e.Properties) }
func (o *eventObj) traitsMap() *lazyMap  { return rawField(&o.traits, o.e.Traits) }
func (o *eventObj) context() *lazyMap    { return rawField(&o.ctx, o.e.Context) }

func rawField(m **lazyMap, raw json.RawMessage) *lazyMap {
	if *m == nil {
		*m = &lazyMap{raw: raw}
	}
	return *m
}

var emptyObject = map[string]any{} // never modified

// decodeObject decodes a raw JSON object; anything else is the empty
// object. Numbers are float64, as JSON's are.
func decodeObject(raw json.RawMessage) map[string]any {
	if len(raw) == 0 {
		return emptyObject
	}
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil || m == nil {
		return emptyObject
	}
	return m
}

// profileObj is a profile state as a CEL object, built on first use.
type profileObj struct {
	s      *profile.State
	traits *lazyMap
	counts countsMap
	cart   ref.Val
	flags  [2]map[string]bool // consent, subscriptions
	built  uint8
}

func (o *profileObj) traitsMap() *lazyMap {
	if o.traits == nil {
		o.traits = &lazyMap{traits: o.s.Traits, isTraits: true}
	}
	return o.traits
}

func (o *profileObj) countsVal() ref.Val {
	if o.built&2 == 0 {
		o.built |= 2
		o.counts.m = o.s.Counts
	}
	return &o.counts
}

func (o *profileObj) cartVal() ref.Val {
	if o.built&4 == 0 {
		o.built |= 4
		items := o.s.Cart.Items()
		vals := make([]ref.Val, len(items))
		objs := make([]itemObj, len(items))
		for i := range items {
			objs[i].it = items[i]
			vals[i] = objVal{itemType, &objs[i]}
		}
		o.cart = types.NewRefValList(celAdapter, vals)
	}
	return o.cart
}

func (o *profileObj) flagMap(i int) map[string]bool {
	if o.built&(8<<i) == 0 {
		o.built |= 8 << i
		src := o.s.Consent
		if i == 1 {
			src = o.s.Subscriptions
		}
		m := make(map[string]bool, len(src))
		for k, f := range src {
			m[k] = f.Value
		}
		o.flags[i] = m
	}
	return o.flags[i]
}

// countsMap is profile.counts: an event name never seen counts 0 rather
// than being a missing key (but "name" in profile.counts is false).
type countsMap struct {
	m   map[string]int64
	all traits.Mapper
}

var _ traits.Mapper = (*countsMap)(nil)

func (c *countsMap) full() traits.Mapper {
	if c.all == nil {
		c.all = types.NewDynamicMap(celAdapter, c.m)
	}
	return c.all
}

func (c *countsMap) Find(key ref.Val) (ref.Val, bool) {
	k, ok := key.(types.String)
	if !ok {
		return types.MaybeNoSuchOverloadErr(key), false
	}
	return types.Int(c.m[string(k)]), true
}

func (c *countsMap) Get(key ref.Val) ref.Val {
	v, _ := c.Find(key)
	return v
}

func (c *countsMap) Contains(key ref.Val) ref.Val {
	k, ok := key.(types.String)
	if !ok {
		return types.MaybeNoSuchOverloadErr(key)
	}
	_, found := c.m[string(k)]
	return types.Bool(found)
}

func (c *countsMap) Iterator() traits.Iterator                   { return c.full().Iterator() }
func (c *countsMap) Size() ref.Val                               { return types.Int(len(c.m)) }
func (c *countsMap) Equal(o ref.Val) ref.Val                     { return c.full().Equal(o) }
func (c *countsMap) Type() ref.Type                              { return types.MapType }
func (c *countsMap) Value() any                                  { return c.m }
func (c *countsMap) ConvertToType(t ref.Type) ref.Val            { return c.full().ConvertToType(t) }
func (c *countsMap) ConvertToNative(t reflect.Type) (any, error) { return c.full().ConvertToNative(t) }

// itemObj is a cart item as a CEL object.
type itemObj struct {
	it    profile.CartItem
	props *lazyMap
}

func (o *itemObj) properties() *lazyMap { return rawField(&o.props, o.it.Properties) }

// objVal is a CEL value of one of the object types of this package.
type objVal struct {
	t   *objType
	obj any // *eventObj, *profileObj or *itemObj
}

var (
	_ ref.Val                = objVal{}
	_ traits.Indexer         = objVal{}
	_ traits.FieldTester     = objVal{}
	_ interpreter.Activation = (*activation)(nil)
)

func (o objVal) Type() ref.Type { return o.t.t }
func (o objVal) Value() any     { return o.obj }

func (o objVal) ConvertToNative(t reflect.Type) (any, error) {
	if reflect.TypeOf(o.obj) == t {
		return o.obj, nil
	}
	return nil, errConvert(o.t.t.TypeName(), t)
}

func (o objVal) ConvertToType(t ref.Type) ref.Val {
	switch {
	case t == types.TypeType:
		return o.t.t
	case t.TypeName() == o.t.t.TypeName():
		return o
	}
	return types.NewErr("type conversion error from '%s' to '%s'", o.t.t.TypeName(), t.TypeName())
}

func (o objVal) Equal(other ref.Val) ref.Val {
	x, ok := other.(objVal)
	if !ok || x.t != o.t {
		return types.False
	}
	if a, ok := o.obj.(*eventObj); ok {
		b := x.obj.(*eventObj)
		return types.Bool(a == b || a.e == b.e || a.e.MessageID != "" && a.e.MessageID == b.e.MessageID)
	}
	return types.Bool(o.obj == x.obj)
}

func (o objVal) Get(field ref.Val) ref.Val {
	name, ok := field.(types.String)
	if !ok {
		return types.MaybeNoSuchOverloadErr(field)
	}
	f, ok := o.t.fields[string(name)]
	if !ok {
		return types.NewErr("no such field: %s", name)
	}
	v, _ := f.GetFrom(o.obj)
	return celAdapter.NativeToValue(v)
}

func (o objVal) IsSet(field ref.Val) ref.Val {
	name, ok := field.(types.String)
	if !ok {
		return types.MaybeNoSuchOverloadErr(field)
	}
	f, ok := o.t.fields[string(name)]
	if !ok {
		return types.NewErr("no such field: %s", name)
	}
	return types.Bool(f.IsSet(o.obj))
}

// timeField and the like build the field accessors of the object types.

func stringField(get func(obj any) string) *types.FieldType {
	return &types.FieldType{
		Type:    types.StringType,
		IsSet:   func(obj any) bool { return get(obj) != "" },
		GetFrom: func(obj any) (any, error) { return get(obj), nil },
	}
}

func timeField(get func(obj any) time.Time) *types.FieldType {
	return &types.FieldType{
		Type:    types.TimestampType,
		IsSet:   func(obj any) bool { return !get(obj).IsZero() },
		GetFrom: func(obj any) (any, error) { return types.Timestamp{Time: get(obj)}, nil },
	}
}

func objectField(get func(obj any) *lazyMap) *types.FieldType {
	return &types.FieldType{
		Type:    types.NewMapType(types.StringType, types.DynType),
		IsSet:   func(obj any) bool { return !get(obj).isEmpty() },
		GetFrom: func(obj any) (any, error) { return get(obj), nil },
	}
}

func flagsField(i int) *types.FieldType {
	get := func(obj any) map[string]bool { return obj.(*profileObj).flagMap(i) }
	return &types.FieldType{
		Type:    types.NewMapType(types.StringType, types.BoolType),
		IsSet:   func(obj any) bool { return len(get(obj)) > 0 },
		GetFrom: func(obj any) (any, error) { return get(obj), nil },
	}
}

func ev(obj any) *nudge.Event      { return obj.(*eventObj).e }
func pr(obj any) *profile.State    { return obj.(*profileObj).s }
func it(obj any) *profile.CartItem { return &obj.(*itemObj).it }

// The object types of expressions: their CEL names and fields.
var (
	eventType = newObjType("nudge.Event", map[string]*types.FieldType{
		"type":        stringField(func(o any) string { return string(ev(o).Type) }),
		"event":       stringField(func(o any) string { return ev(o).Event }),
		"name":        stringField(func(o any) string { return ev(o).Name }),
		"category":    stringField(func(o any) string { return ev(o).Category }),
		"messageId":   stringField(func(o any) string { return ev(o).MessageID }),
		"userId":      stringField(func(o any) string { return ev(o).UserID }),
		"anonymousId": stringField(func(o any) string { return ev(o).AnonymousID }),
		"groupId":     stringField(func(o any) string { return ev(o).GroupID }),
		"source":      stringField(func(o any) string { return ev(o).Source }),
		"channel":     stringField(func(o any) string { return ev(o).Channel }),
		"properties":  objectField(func(o any) *lazyMap { return o.(*eventObj).properties() }),
		"traits":      objectField(func(o any) *lazyMap { return o.(*eventObj).traitsMap() }),
		"context":     objectField(func(o any) *lazyMap { return o.(*eventObj).context() }),
		"timestamp":   timeField(func(o any) time.Time { return ev(o).Timestamp }),
		"receivedAt":  timeField(func(o any) time.Time { return ev(o).ReceivedAt }),
	})
	itemType = newObjType("nudge.CartItem", map[string]*types.FieldType{
		"id":         stringField(func(o any) string { return it(o).ID }),
		"product_id": stringField(func(o any) string { return it(o).ProductID }),
		"sku":        stringField(func(o any) string { return it(o).SKU }),
		"name":       stringField(func(o any) string { return it(o).Name }),
		"price": {
			Type:    types.DoubleType,
			IsSet:   func(o any) bool { return it(o).Price != 0 },
			GetFrom: func(o any) (any, error) { return types.Double(it(o).Price), nil },
		},
		"quantity": {
			Type:    types.IntType,
			IsSet:   func(o any) bool { return it(o).Quantity != 0 },
			GetFrom: func(o any) (any, error) { return types.Int(it(o).Quantity), nil },
		},
		"properties": objectField(func(o any) *lazyMap { return o.(*itemObj).properties() }),
		"added_at":   timeField(func(o any) time.Time { return it(o).AddedAt }),
	})
	profileType = newObjType("nudge.Profile", map[string]*types.FieldType{
		"traits": objectField(func(o any) *lazyMap { return o.(*profileObj).traitsMap() }),
		"counts": {
			Type:    types.NewMapType(types.StringType, types.IntType),
			IsSet:   func(o any) bool { return len(pr(o).Counts) > 0 },
			GetFrom: func(o any) (any, error) { return o.(*profileObj).countsVal(), nil },
		},
		"orders": {
			Type:    types.IntType,
			IsSet:   func(o any) bool { return pr(o).Orders != 0 },
			GetFrom: func(o any) (any, error) { return types.Int(pr(o).Orders), nil },
		},
		"revenue": {
			Type:    types.DoubleType,
			IsSet:   func(o any) bool { return pr(o).Revenue != 0 },
			GetFrom: func(o any) (any, error) { return types.Double(pr(o).Revenue.Float64()), nil },
		},
		"cart": {
			Type:    types.NewListType(types.NewObjectType("nudge.CartItem")),
			IsSet:   func(o any) bool { return len(pr(o).Cart.Items()) > 0 },
			GetFrom: func(o any) (any, error) { return o.(*profileObj).cartVal(), nil },
		},
		"first_seen":    timeField(func(o any) time.Time { return pr(o).FirstSeen }),
		"last_seen":     timeField(func(o any) time.Time { return pr(o).LastSeen }),
		"timezone":      stringField(func(o any) string { return pr(o).Timezone.Value }),
		"consent":       flagsField(0),
		"subscriptions": flagsField(1),
	})
)

// objType is one of the object types of expressions.
type objType struct {
	t      *types.Type
	fields map[string]*types.FieldType
}

func newObjType(name string, fields map[string]*types.FieldType) *objType {
	return &objType{types.NewObjectType(name, traits.IndexerType, traits.FieldTesterType), fields}
}
