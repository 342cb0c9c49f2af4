// Package profile computes what nudge knows about one person from their
// events: a State that does not depend on the order the events arrive in,
// and that merges with another State when two profiles (say an anonymous
// phone visitor and a logged-in desktop user) turn out to be one person.
//
// # Convergence
//
// Events arrive late, out of order and from several devices, so every field
// of a State is a convergent replicated data type keyed on the event's own
// time (nudge.Event.Timestamp), never on arrival:
//
//   - registers (traits, consent, subscriptions, timezone, cart items) keep
//     the value of the latest event;
//   - counters (Counts, Orders, Revenue, Dropped) are sums;
//   - FirstSeen and LastSeen are a minimum and a maximum.
//
// Events are ordered by Timestamp, then by MessageID when two share an
// instant, then (only for the same event applied twice, or two events that
// share both a time and a messageId) by their content. The order is total,
// so for any events e1..en, any order of Apply calls, and any way of
// splitting the events among States that are then merged in any order and
// grouping, the result is the same State (reflect.DeepEqual, and the same
// MarshalBinary bytes):
//
//	s.Apply(e)  ≡  s.Merge(FromEvent(e))
//	a.Merge(b)  ≡  b.Merge(a)                   (as values)
//	(a⊔b)⊔c     ≡  a⊔(b⊔c)
//
// Merge is not idempotent: counters are sums, so a State merged twice, or an
// event applied twice, counts twice. Events must be deduplicated by
// messageId before they reach a State (nudge's ingest does so), and a State
// must be merged into another once.
//
// # Bounds
//
// A State holds at most MaxTraits traits, MaxCounts event names,
// MaxCartItems cart entries and MaxFlags consent categories and
// subscriptions; values are at most MaxValueBytes and keys MaxKeyBytes.
// The bounds are chosen so that they commute with Merge (what a bounded
// State keeps is what the unbounded one would keep), and what they drop is
// reported in State.Dropped.
//
// # Bad data
//
// Properties, traits and context that are missing, not objects, not valid
// JSON, or that hold fields of the wrong type are ignored, field by field;
// Apply never panics. A raw field that is not a valid JSON object is ignored
// as a whole. The strings a State keeps are valid UTF-8 (invalid bytes
// become U+FFFD, as encoding/json decodes them), so that its JSON encoding
// gives back the same State.
package profile

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nudge-dev/nudge"
)

// The bounds of a State.
const (
	// MaxTraits bounds the traits of a State. Past it the least recently
	// set traits (by event time) are forgotten and Dropped.Traits is set.
	MaxTraits = 200
	// MaxValueBytes bounds a trait's value and the other properties kept
	// with a cart item, as the event sent them (bytes of JSON). Larger ones
	// are dropped and counted in Dropped.Values.
	MaxValueBytes = 4 << 10
	// MaxKeyBytes bounds a trait name, a product id, sku and name, a
	// consent category, a subscription key and the timezone. Longer ones
	// are dropped (with the item, for an id) and counted in Dropped.Values;
	// the events of longer event names are counted in Dropped.Counts.
	MaxKeyBytes = 256
	// MaxCounts bounds the names in Counts. Past it the names kept are the
	// first MaxCounts in byte order; the events of the others are summed in
	// Dropped.Counts, so that the total stays exact.
	MaxCounts = 500
	// MaxCartItems bounds the cart's entries, removal markers included.
	// Past it the entries of the oldest operations are forgotten. A single
	// Cart Viewed listing more products keeps its first MaxCartItems and
	// counts the rest in Dropped.Values.
	MaxCartItems = 100
	// MaxFlags bounds Consent and Subscriptions, each. Past it the least
	// recently set keys are forgotten and Dropped.Consent or
	// Dropped.Subscriptions is set.
	MaxFlags = 100
)

// The track events of the specs that a State reads beyond counting them
// (Segment e-commerce spec v2, and subscription changes).
const (
	ProductAdded   = "Product Added"
	ProductRemoved = "Product Removed"
	CartViewed     = "Cart Viewed"
	OrderCompleted = "Order Completed"
	Subscribed     = "Subscribed"
	Unsubscribed   = "Unsubscribed"
)

// State is what nudge knows about one person, computed from their events.
// The zero value is an empty State, ready to use. A State is not safe for
// concurrent use.
//
// Its JSON encoding is meant for display (the admin API); MarshalBinary is
// the storage encoding, exact and several times faster.
type State struct {
	// Traits holds, per trait, the latest value by event time, from the
	// traits of identify calls and the context.traits of every call. In one
	// event, an identify's traits win over its context.traits.
	Traits map[string]Timed `json:"traits,omitempty"`
	// FirstSeen and LastSeen are the earliest and latest event times. Events
	// with a zero Timestamp move neither.
	FirstSeen time.Time `json:"firstSeen,omitzero"`
	LastSeen  time.Time `json:"lastSeen,omitzero"`
	// Counts holds the number of events per name: track events by their
	// event name ("track" when it is empty), other calls by their type
	// ("identify", "page"...).
	Counts map[string]int64 `json:"counts,omitempty"`
	// Orders counts the Order Completed events.
	Orders int64 `json:"orders"`
	// Revenue is the lifetime value: the sum over Order Completed events of
	// properties.revenue, else properties.total, else the sum of
	// properties.products price × quantity. Numbers and numeric strings are
	// read; currencies are not converted.
	Revenue Money `json:"revenue"`
	// Cart is the current cart.
	Cart Cart `json:"cart"`
	// Consent holds, per category, the latest consent by event time, from
	// context.consent.categoryPreferences (Segment consent spec).
	Consent map[string]TimedBool `json:"consent,omitempty"`
	// Subscriptions holds, per channel ("email", "sms", "push"...) or per
	// channel and group ("email:newsletter"), whether the person is
	// subscribed, latest by event time. Sources: Subscribed and
	// Unsubscribed track events (properties.channel, and the optional
	// properties.group); the subscriptions trait ({"email": true,
	// "sms": "unsubscribed"}: true, false, "subscribed", "unsubscribed"),
	// taken, as any trait, from an identify's traits, else from
	// context.traits. Within one event a track event's key wins over the
	// trait's. Channels are lower-cased; a track event without a channel is
	// ignored.
	Subscriptions map[string]TimedBool `json:"subscriptions,omitempty"`
	// Timezone is the latest timezone by event time: context.timezone, else
	// (in the same event) the trait "timezone". It is not validated.
	Timezone TimedString `json:"timezone,omitzero"`
	// Dropped reports what the bounds kept out.
	Dropped Dropped `json:"dropped,omitzero"`
}

// Timed is a trait's value and the event that set it.
type Timed struct {
	Value     json.RawMessage `json:"value"` // compact JSON; never modified in place
	At        time.Time       `json:"at"`    // the event's Timestamp, in UTC
	MessageID string          `json:"messageId"`
}

// TimedBool is a flag and the event that set it.
type TimedBool struct {
	Value     bool      `json:"value"`
	At        time.Time `json:"at"`
	MessageID string    `json:"messageId"`
}

// TimedString is a string and the event that set it.
type TimedString struct {
	Value     string    `json:"value"`
	At        time.Time `json:"at"`
	MessageID string    `json:"messageId"`
}

// Dropped reports what the bounds of a State kept out of it. Every field is
// itself order-independent: counts are sums over events, flags are set iff
// the events held more keys than the bound.
type Dropped struct {
	// Values counts what was dropped for its size or number, once per
	// event and value: trait values and item properties over MaxValueBytes,
	// keys over MaxKeyBytes, products of a Cart Viewed past MaxCartItems.
	Values int64 `json:"values,omitempty"`
	// Counts counts the events Counts holds under no name: their name was
	// past MaxCounts names, longer than MaxKeyBytes, or empty.
	Counts int64 `json:"counts,omitempty"`
	// Traits, Consent and Subscriptions are set when the events set more
	// than MaxTraits (MaxFlags) distinct keys, so that some are forgotten.
	Traits        bool `json:"traits,omitempty"`
	Consent       bool `json:"consent,omitempty"`
	Subscriptions bool `json:"subscriptions,omitempty"`
}

// version is an event's place in the order every register uses: its time,
// then its messageId.
type version struct {
	at time.Time
	by string
}

func (v version) cmp(w version) int {
	if c := v.at.Compare(w.at); c != 0 {
		return c
	}
	return strings.Compare(v.by, w.by)
}

func (t *Timed) version() version       { return version{t.At, t.MessageID} }
func (t *TimedBool) version() version   { return version{t.At, t.MessageID} }
func (t *TimedString) version() version { return version{t.At, t.MessageID} }

// cmpTimed orders two values of one trait: by event, then by value bytes.
func cmpTimed(a, b Timed) int {
	if c := a.version().cmp(b.version()); c != 0 {
		return c
	}
	return bytes.Compare(a.Value, b.Value)
}

func cmpTimedBool(a, b TimedBool) int {
	if c := a.version().cmp(b.version()); c != 0 {
		return c
	}
	return boolCmp(a.Value, b.Value)
}

func cmpTimedString(a, b TimedString) int {
	if c := a.version().cmp(b.version()); c != 0 {
		return c
	}
	return strings.Compare(a.Value, b.Value)
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case b:
		return -1
	}
	return 1
}

// FromEvent returns the State of a person of whom e is the only event.
func FromEvent(e *nudge.Event) *State {
	s := new(State)
	s.Apply(e)
	return s
}

// Apply folds one event into s. It is s.Merge(FromEvent(e)), without
// building the intermediate State. Apply keeps strings of e (messageId,
// event name) and copies what it keeps of its raw JSON fields.
func (s *State) Apply(e *nudge.Event) {
	if s == nil || e == nil {
		return
	}
	v := version{e.Timestamp.UTC(), validUTF8(e.MessageID)}
	if !v.at.IsZero() {
		s.seen(v.at, v.at)
	}
	name := e.Event
	if e.Type != nudge.Track || name == "" {
		name = string(e.Type)
	}
	s.count(validUTF8(name), 1)

	var ctx [3][]byte // traits, timezone, consent
	lookup(e.Context, contextKeys[:], ctx[:])
	var traits []byte
	if e.Type == nudge.Identify && validObject(e.Traits) {
		traits = e.Traits
	}
	ctxTraits := objectOrNil(ctx[0])
	var top []string // the keys of traits, which context.traits does not override
	if traits != nil && ctxTraits != nil {
		top = keysOf(traits)
	}
	var sp specialTraits
	s.putRawTraits(traits, v, nil, &sp)
	s.putRawTraits(ctxTraits, v, top, &sp)

	tz := ctx[1]
	if !s.putRawTimezone(tz, v) {
		s.putRawTimezone(sp.timezone, v)
	}
	if cons := objectOrNil(ctx[2]); cons != nil {
		var prefs [1][]byte
		lookup(cons, categoryPreferencesKey[:], prefs[:])
		s.putRawConsent(prefs[0], v)
	}

	var subs flagList
	if e.Type == nudge.Track {
		switch e.Event {
		case ProductAdded:
			if it, ok := itemOf(e.Properties, true, &s.Dropped); ok {
				s.Cart.put(cartEntry{CartItem: it}, v)
			}
		case ProductRemoved:
			if id, ok := removedID(e.Properties, &s.Dropped); ok {
				s.Cart.put(cartEntry{CartItem: CartItem{ID: id}, removed: true}, v)
			}
		case CartViewed:
			s.Cart.clear(v)
			var p [1][]byte
			lookup(e.Properties, productsKey[:], p[:])
			s.Cart.putSnapshot(p[0], v, &s.Dropped)
		case OrderCompleted:
			s.Orders++
			s.Revenue += revenueOf(e.Properties)
			s.Cart.clear(v)
		case Subscribed, Unsubscribed:
			var p [2][]byte
			lookup(e.Properties, channelKeys[:], p[:])
			if ch, ok := str(p[0]); ok && ch != "" {
				key := strings.ToLower(ch)
				if g, ok := str(p[1]); ok && g != "" {
					key += ":" + g
				}
				subs.add(key, e.Event == Subscribed, &s.Dropped)
			}
		}
	}
	subs.addFrom(sp.subscriptions, &s.Dropped)
	for _, f := range subs {
		s.Subscriptions = putFlag(s.Subscriptions, f.key, TimedBool{f.on, v.at, v.by})
	}
	s.bound()
}

var (
	contextKeys            = [...]string{"traits", "timezone", "consent"}
	categoryPreferencesKey = [...]string{"categoryPreferences"}
	productsKey            = [...]string{"products"}
	channelKeys            = [...]string{"channel", "group"}
)

// specialTraits are the traits a State also reads for other fields, from
// the first source that has them.
type specialTraits struct {
	timezone, subscriptions []byte
}

// seen widens FirstSeen and LastSeen to first and last.
func (s *State) seen(first, last time.Time) {
	if s.FirstSeen.IsZero() || first.Before(s.FirstSeen) {
		s.FirstSeen = first
	}
	if last.After(s.LastSeen) {
		s.LastSeen = last
	}
}

func (s *State) count(name string, n int64) {
	if name == "" || len(name) > MaxKeyBytes {
		s.Dropped.Counts += n
		return
	}
	c, ok := s.Counts[name]
	if !ok {
		if s.Counts == nil {
			s.Counts = make(map[string]int64)
		}
		name = strings.Clone(name)
	}
	s.Counts[name] = c + n
}

// putRawTraits puts the members of the JSON object obj (nil for none) as
// traits set by event v, except those named in skip, and notes the special
// traits in sp when no earlier source had them.
func (s *State) putRawTraits(obj []byte, v version, skip []string, sp *specialTraits) {
	m, ok := members(obj)
	if !ok {
		return
	}
	for k, val, ok := m.next(); ok; k, val, ok = m.next() {
		key := k.raw()
		if k.esc || !utf8.Valid(key) {
			u, ok := k.string()
			if !ok {
				continue
			}
			key = []byte(u)
		}
		if len(skip) > 0 && slices.Contains(skip, string(key)) {
			continue
		}
		if len(key) > MaxKeyBytes || len(val) > MaxValueBytes {
			s.Dropped.Values++
			continue
		}
		switch string(key) {
		case "timezone":
			if sp.timezone == nil {
				sp.timezone = val
			}
		case "subscriptions":
			if sp.subscriptions == nil {
				sp.subscriptions = val
			}
		}
		s.putRawTrait(key, val, v)
	}
}

// putRawTrait puts a trait from a raw value as Merge puts a Timed (the
// later event wins, then the larger value), copying the value only when it
// is kept and differs from the one held.
func (s *State) putRawTrait(key, val []byte, v version) {
	cur, ok := s.Traits[string(key)]
	if ok {
		c := v.cmp(cur.version())
		if c < 0 {
			return
		}
		if compactEqual(val, cur.Value) {
			if c == 0 {
				return
			}
			cur.At, cur.MessageID = v.at, v.by
			s.Traits[string(key)] = cur
			return
		}
		if c == 0 {
			nv := compactAppend(nil, val)
			if bytes.Compare(nv, cur.Value) > 0 {
				s.Traits[string(key)] = Timed{nv, v.at, v.by}
			}
			return
		}
	} else if s.Traits == nil {
		s.Traits = make(map[string]Timed)
	}
	s.Traits[string(key)] = Timed{compactAppend(make([]byte, 0, len(val)), val), v.at, v.by}
}

// putRawTimezone sets the timezone from a raw JSON string; it reports
// whether raw was a usable one.
func (s *State) putRawTimezone(raw []byte, v version) bool {
	var tz string
	ok := len(raw) >= 2 && raw[0] == '"' && bytes.IndexByte(raw, '\\') < 0 && string(raw[1:len(raw)-1]) == s.Timezone.Value
	if ok {
		tz = s.Timezone.Value // the timezone held, as most events have it: no new string
	} else {
		tz, ok = str(raw)
	}
	if !ok || tz == "" {
		return false
	}
	if len(tz) > MaxKeyBytes {
		s.Dropped.Values++
		return false
	}
	s.putTimezone(TimedString{tz, v.at, v.by})
	return true
}

func (s *State) putTimezone(t TimedString) {
	if t.Value != "" && (s.Timezone.Value == "" || cmpTimedString(t, s.Timezone) > 0) {
		s.Timezone = t
	}
}

// putRawConsent puts the members of categoryPreferences whose value is a
// boolean.
func (s *State) putRawConsent(obj []byte, v version) {
	m, ok := members(obj)
	if !ok {
		return
	}
	for k, val, ok := m.next(); ok; k, val, ok = m.next() {
		on, isBool := boolOf(val)
		if !isBool {
			continue
		}
		key, ok := k.string()
		if !ok || key == "" {
			continue
		}
		if len(key) > MaxKeyBytes {
			s.Dropped.Values++
			continue
		}
		s.Consent = putFlag(s.Consent, key, TimedBool{on, v.at, v.by})
	}
}

func putFlag(m map[string]TimedBool, key string, t TimedBool) map[string]TimedBool {
	cur, ok := m[key]
	if !ok {
		if m == nil {
			m = make(map[string]TimedBool)
		}
		m[key] = t
		return m
	}
	if cmpTimedBool(t, cur) > 0 {
		m[key] = t
	}
	return m
}

// flagList collects the subscriptions one event sets, the first source of
// a key winning.
type flagList []flagOp

type flagOp struct {
	key string
	on  bool
}

func (l *flagList) add(key string, on bool, d *Dropped) {
	if len(key) > MaxKeyBytes {
		d.Values++
		return
	}
	for _, f := range *l {
		if f.key == key {
			return
		}
	}
	*l = append(*l, flagOp{key, on})
}

// addFrom adds the members of a subscriptions trait: {"email": true,
// "sms": "unsubscribed"}; a key's channel (before any ':') is lower-cased.
func (l *flagList) addFrom(obj []byte, d *Dropped) {
	m, ok := members(obj)
	if !ok {
		return
	}
	for k, val, ok := m.next(); ok; k, val, ok = m.next() {
		on, ok := subscribedOf(val)
		if !ok {
			continue
		}
		key, ok := k.string()
		if !ok || key == "" {
			continue
		}
		ch, group, grouped := strings.Cut(key, ":")
		if ch = strings.ToLower(ch); grouped {
			key = ch + ":" + group
		} else {
			key = ch
		}
		l.add(key, on, d)
	}
}

// subscribedOf reads a subscription state: true or "subscribed", false or
// "unsubscribed" (case-insensitive).
func subscribedOf(val []byte) (on, ok bool) {
	if b, ok := boolOf(val); ok {
		return b, true
	}
	s, ok := str(val)
	switch {
	case !ok:
		return false, false
	case strings.EqualFold(s, "subscribed"):
		return true, true
	case strings.EqualFold(s, "unsubscribed"):
		return false, true
	}
	return false, false
}

// revenueOf reads the revenue of an Order Completed event's properties.
func revenueOf(props []byte) Money {
	var f [3][]byte
	if !lookup(props, revenueKeys[:], f[:]) {
		return 0
	}
	if x, ok := num(f[0]); ok {
		return moneyOf(x)
	}
	if x, ok := num(f[1]); ok {
		return moneyOf(x)
	}
	a, ok := elements(f[2])
	if !ok {
		return 0
	}
	var sum float64
	var p [2][]byte
	for el, ok := a.next(); ok; el, ok = a.next() {
		p = [2][]byte{}
		if !lookup(el, priceKeys[:], p[:]) {
			continue
		}
		price, ok := num(p[0])
		if !ok {
			continue
		}
		sum += price * float64(quantityOf(p[1]))
	}
	return moneyOf(sum)
}

var (
	revenueKeys = [...]string{"revenue", "total", "products"}
	priceKeys   = [...]string{"price", "quantity"}
)

// quantityOf reads a quantity: its integer part, 1 when it is missing or
// below 1, at most 1e9.
func quantityOf(val []byte) int64 {
	q, ok := num(val)
	switch {
	case !ok || q < 1:
		return 1
	case q > 1e9:
		return 1e9
	}
	return int64(q)
}

// bound enforces the bounds of s. Every bound keeps the entries that rank
// first in an order that merging cannot change, so that bounding commutes
// with Merge.
func (s *State) bound() {
	if len(s.Traits) > MaxTraits {
		trim(s.Traits, MaxTraits, cmpTimed)
		s.Dropped.Traits = true
	}
	if len(s.Consent) > MaxFlags {
		trim(s.Consent, MaxFlags, cmpTimedBool)
		s.Dropped.Consent = true
	}
	if len(s.Subscriptions) > MaxFlags {
		trim(s.Subscriptions, MaxFlags, cmpTimedBool)
		s.Dropped.Subscriptions = true
	}
	if len(s.Counts) > MaxCounts {
		// Ranked by name only: a name's count is a sum over States, so it
		// must be kept by every State or by none.
		var out []string
		if len(s.Counts) == MaxCounts+1 { // as after Apply: one out, no sort
			last := ""
			for n := range s.Counts {
				last = max(last, n)
			}
			out = []string{last}
		} else {
			out = slices.Sorted(maps.Keys(s.Counts))[MaxCounts:]
		}
		for _, n := range out {
			s.Dropped.Counts += s.Counts[n]
			delete(s.Counts, n)
		}
	}
	s.Cart.bound()
}

// trim keeps the n entries of m with the latest values (ties broken by
// key). A register keeps its latest value under Merge, so an entry in the
// first n of a merged map is in the first n of the State that held its
// value: trimming before merging loses nothing trimming after would keep.
func trim[V any](m map[string]V, n int, cmp func(a, b V) int) {
	type kv struct {
		k string
		v V
	}
	rank := func(a, b kv) int { // first the latest value, then the smallest key
		if c := cmp(b.v, a.v); c != 0 {
			return c
		}
		return strings.Compare(a.k, b.k)
	}
	if len(m) == n+1 { // as after Apply: one out, no sort
		var last kv
		first := true
		for k, v := range m {
			if e := (kv{k, v}); first || rank(e, last) > 0 {
				last, first = e, false
			}
		}
		delete(m, last.k)
		return
	}
	all := make([]kv, 0, len(m))
	for k, v := range m {
		all = append(all, kv{k, v})
	}
	slices.SortFunc(all, rank)
	for _, e := range all[n:] {
		delete(m, e.k)
	}
}

// Merge folds o, the State of the same person computed from other events,
// into s: traits, consent, subscriptions, timezone and cart items keep the
// latest by event time, counters are summed, FirstSeen is the minimum and
// LastSeen the maximum. o is not modified, and s shares none of its maps
// or slices (raw JSON values are shared: neither modifies them in place).
// Merging a State twice counts its events twice.
func (s *State) Merge(o *State) {
	if s == nil || o == nil {
		return
	}
	if o == s {
		o = o.Clone()
	}
	for k, t := range o.Traits {
		if cur, ok := s.Traits[k]; ok && cmpTimed(t, cur) <= 0 {
			continue
		}
		if s.Traits == nil {
			s.Traits = make(map[string]Timed, len(o.Traits))
		}
		s.Traits[k] = t
	}
	if !o.FirstSeen.IsZero() {
		s.seen(o.FirstSeen, o.LastSeen)
	}
	for name, n := range o.Counts {
		s.count(name, n)
	}
	s.Orders += o.Orders
	s.Revenue += o.Revenue
	s.Cart.merge(&o.Cart)
	for k, t := range o.Consent {
		s.Consent = putFlag(s.Consent, k, t)
	}
	for k, t := range o.Subscriptions {
		s.Subscriptions = putFlag(s.Subscriptions, k, t)
	}
	s.putTimezone(o.Timezone)
	s.Dropped.Values += o.Dropped.Values
	s.Dropped.Counts += o.Dropped.Counts
	s.Dropped.Traits = s.Dropped.Traits || o.Dropped.Traits
	s.Dropped.Consent = s.Dropped.Consent || o.Dropped.Consent
	s.Dropped.Subscriptions = s.Dropped.Subscriptions || o.Dropped.Subscriptions
	s.bound()
}

// Clone returns a copy of s that shares no maps or slices with it that
// Apply or Merge modify. Raw JSON values (Timed.Value, CartItem.Properties)
// are shared: a State never modifies them in place.
func (s *State) Clone() *State {
	if s == nil {
		return nil
	}
	c := *s
	c.Traits = maps.Clone(s.Traits)
	c.Counts = maps.Clone(s.Counts)
	c.Consent = maps.Clone(s.Consent)
	c.Subscriptions = maps.Clone(s.Subscriptions)
	c.Cart.entries = slices.Clone(s.Cart.entries)
	return &c
}

// Money is an amount in millionths of its currency unit: sums of Money are
// exact, so they do not depend on the order of the terms as float sums do.
// Its JSON form is a decimal number (89.9).
type Money int64

// maxMoney bounds one order's revenue, in units.
const maxMoney = 1e12

func moneyOf(f float64) Money {
	f = max(-maxMoney, min(maxMoney, f))
	return Money(math.Round(f * 1e6))
}

// Float64 returns m in units of its currency.
func (m Money) Float64() float64 { return float64(m) / 1e6 }

// String returns m as a decimal number: "89.9", "-0.000001", "0".
func (m Money) String() string { return string(m.append(nil)) }

func (m Money) append(b []byte) []byte {
	u := uint64(m)
	if m < 0 {
		b = append(b, '-')
		u = -u
	}
	b = strconv.AppendUint(b, u/1e6, 10)
	if frac := u % 1e6; frac != 0 {
		var d [7]byte
		d[0] = '.'
		for i := 6; i > 0; i-- {
			d[i] = byte('0' + frac%10)
			frac /= 10
		}
		n := 7
		for d[n-1] == '0' {
			n--
		}
		b = append(b, d[:n]...)
	}
	return b
}

// MarshalJSON encodes m as a JSON number.
func (m Money) MarshalJSON() ([]byte, error) { return m.append(nil), nil }

// UnmarshalJSON decodes a JSON number or numeric string; decimals with at
// most 6 fractional digits are read exactly.
func (m *Money) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	if v, ok := exactMoney(b); ok {
		*m = v
		return nil
	}
	f, ok := num(b)
	if !ok {
		return errors.New("profile: money is not a number: " + strconv.Quote(string(b)))
	}
	*m = moneyOf(f)
	return nil
}

// exactMoney parses -?d{1,13}(.d{1,6})? without rounding: 19 digits at
// most, which a uint64 holds.
func exactMoney(b []byte) (Money, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	ip, fp, _ := bytes.Cut(b, []byte{'.'})
	if len(ip) == 0 || len(ip) > 13 || len(fp) > 6 {
		return 0, false
	}
	var u uint64
	for i := range len(ip) + 6 {
		c := byte('0')
		switch {
		case i < len(ip):
			c = ip[i]
		case i-len(ip) < len(fp):
			c = fp[i-len(ip)]
		}
		if c < '0' || c > '9' {
			return 0, false
		}
		u = u*10 + uint64(c-'0')
	}
	switch {
	case !neg && u <= math.MaxInt64:
		return Money(u), true
	case neg && u <= math.MaxInt64+1:
		return Money(-u), true
	}
	return 0, false
}

// The storage encoding (MarshalBinary). All integers are varints; a string
// or bytes is its length and its bytes; a time is its Unix seconds and
// nanoseconds; an event (time and messageId) is written in full the first
// time (ref 0) and as a reference (its index + 1) afterwards, since many
// entries share one. Maps are written in key order, so that equal States
// encode to equal bytes.
//
//	format   byte (1)
//	first    time,  last time
//	orders   varint, revenue varint
//	dropped  values varint, counts varint, flags byte (1 traits, 2 consent, 4 subscriptions)
//	counts   n, n × (name string, count varint)
//	traits   n, n × (key string, event, value bytes)
//	consent  n, n × (key string, event, value byte)
//	subscr.  n, n × (key string, event, value byte)
//	timezone value string ("" for none), event when not ""
//	cart     cleared byte, event when 1; n, n × entry (cart.go)
const formatV1 = 1

// MarshalBinary encodes s for storage: see UnmarshalBinary.
func (s *State) MarshalBinary() ([]byte, error) {
	return s.AppendBinary(nil)
}

// AppendBinary appends the encoding of s to b.
func (s *State) AppendBinary(b []byte) ([]byte, error) {
	w := encoder{vers: make([]version, 0, 16)}
	return s.appendBinary(&w, b), nil
}

// appendBinary is AppendBinary with w's buffers, which a caller that
// encodes many States reuses.
func (s *State) appendBinary(w *encoder, b []byte) []byte {
	w.b = append(slices.Grow(b, s.sizeHint()), formatV1)
	clear(w.vers)
	w.vers, w.idx = w.vers[:0], nil
	w.time(s.FirstSeen)
	w.time(s.LastSeen)
	w.varint(s.Orders)
	w.varint(int64(s.Revenue))
	w.varint(s.Dropped.Values)
	w.varint(s.Dropped.Counts)
	var flags byte
	if s.Dropped.Traits {
		flags |= 1
	}
	if s.Dropped.Consent {
		flags |= 2
	}
	if s.Dropped.Subscriptions {
		flags |= 4
	}
	w.b = append(w.b, flags)
	nkeys := max(len(s.Counts), len(s.Traits), len(s.Consent), len(s.Subscriptions))
	keys := slices.Grow(w.keys[:0], nkeys)
	w.uvarint(uint64(len(s.Counts)))
	for _, k := range sortedKeys(keys, s.Counts) {
		w.str(k)
		w.varint(s.Counts[k])
	}
	w.uvarint(uint64(len(s.Traits)))
	for _, k := range sortedKeys(keys, s.Traits) {
		t := s.Traits[k]
		w.str(k)
		w.version(t.version())
		w.bytes(t.Value)
	}
	for _, m := range [...]map[string]TimedBool{s.Consent, s.Subscriptions} {
		w.uvarint(uint64(len(m)))
		for _, k := range sortedKeys(keys, m) {
			t := m[k]
			w.str(k)
			w.version(t.version())
			w.bool(t.Value)
		}
	}
	clear(keys[:nkeys])
	w.keys = keys
	w.str(s.Timezone.Value)
	if s.Timezone.Value != "" {
		w.version(s.Timezone.version())
	}
	s.Cart.encode(w)
	b, w.b = w.b, nil
	return b
}

// sortedKeys returns the keys of m, sorted, in buf's array.
func sortedKeys[V any](buf []string, m map[string]V) []string {
	buf = buf[:0]
	for k := range m {
		buf = append(buf, k)
	}
	slices.Sort(buf)
	return buf
}

// sizeHint is about the length of the encoding of s.
func (s *State) sizeHint() int {
	n := 64 + 24*len(s.Counts) + 32*(len(s.Consent)+len(s.Subscriptions)) + 64*len(s.Cart.entries)
	for k, t := range s.Traits {
		n += len(k) + len(t.Value) + 4
	}
	for i := range s.Cart.entries {
		n += len(s.Cart.entries[i].Properties)
	}
	return n + 8*48 // about 8 distinct events
}

// ErrFormat is returned by UnmarshalBinary for data MarshalBinary did not
// write.
var ErrFormat = errors.New("profile: not an encoded State")

// UnmarshalBinary replaces s with the State data encodes. s does not keep
// data.
func (s *State) UnmarshalBinary(data []byte) error {
	if len(data) == 0 || data[0] != formatV1 {
		return ErrFormat
	}
	var vers [16]version
	r := decoder{b: data, i: 1, s: string(data), slab: bytes.Clone(data), vers: vers[:0]}
	var n State
	n.FirstSeen = r.time()
	n.LastSeen = r.time()
	n.Orders = r.varint()
	n.Revenue = Money(r.varint())
	n.Dropped.Values = r.varint()
	n.Dropped.Counts = r.varint()
	flags := r.byte()
	n.Dropped.Traits, n.Dropped.Consent, n.Dropped.Subscriptions = flags&1 != 0, flags&2 != 0, flags&4 != 0
	if c := r.count(2); c > 0 {
		n.Counts = make(map[string]int64, c)
		for range c {
			k := r.str()
			n.Counts[k] = r.varint()
		}
	}
	if c := r.count(3); c > 0 {
		n.Traits = make(map[string]Timed, c)
		for range c {
			k := r.str()
			v := r.version()
			n.Traits[k] = Timed{r.bytes(), v.at, v.by}
		}
	}
	for _, m := range [...]*map[string]TimedBool{&n.Consent, &n.Subscriptions} {
		if c := r.count(3); c > 0 {
			*m = make(map[string]TimedBool, c)
			for range c {
				k := r.str()
				v := r.version()
				(*m)[k] = TimedBool{r.byte() != 0, v.at, v.by}
			}
		}
	}
	if tz := r.str(); tz != "" {
		v := r.version()
		n.Timezone = TimedString{tz, v.at, v.by}
	}
	n.Cart.decode(&r)
	if r.bad || r.i != len(r.b) {
		return ErrFormat
	}
	*s = n
	return nil
}

type encoder struct {
	b    []byte
	vers []version
	idx  map[version]int // over vers, once it is long
	keys []string        // a map's keys, sorted (a buffer)
}

func (w *encoder) uvarint(x uint64) { w.b = binary.AppendUvarint(w.b, x) }
func (w *encoder) varint(x int64)   { w.b = binary.AppendVarint(w.b, x) }

func (w *encoder) str(s string) {
	w.uvarint(uint64(len(s)))
	w.b = append(w.b, s...)
}

func (w *encoder) bytes(b []byte) {
	w.uvarint(uint64(len(b)))
	w.b = append(w.b, b...)
}

func (w *encoder) bool(v bool) {
	if v {
		w.b = append(w.b, 1)
	} else {
		w.b = append(w.b, 0)
	}
}

func (w *encoder) time(t time.Time) {
	w.varint(t.Unix())
	w.uvarint(uint64(t.Nanosecond()))
}

func (w *encoder) version(v version) {
	i := -1
	if w.idx != nil {
		if j, ok := w.idx[v]; ok {
			i = j
		}
	} else {
		for j := range w.vers {
			if w.vers[j].by == v.by && w.vers[j].at.Equal(v.at) {
				i = j
				break
			}
		}
	}
	if i >= 0 {
		w.uvarint(uint64(i) + 1)
		return
	}
	w.uvarint(0)
	w.time(v.at)
	w.str(v.by)
	w.vers = append(w.vers, v)
	switch {
	case w.idx != nil:
		w.idx[v] = len(w.vers) - 1
	case len(w.vers) > 32:
		w.idx = make(map[version]int, 2*len(w.vers))
		for j, u := range w.vers {
			w.idx[u] = j
		}
	}
}

// decoder reads what encoder wrote. Strings are substrings of s and byte
// values subslices of slab, two copies of the input, so that decoding a
// State takes few allocations.
type decoder struct {
	b    []byte
	i    int
	bad  bool
	s    string
	slab []byte
	vers []version
}

func (r *decoder) uvarint() uint64 {
	x, n := binary.Uvarint(r.b[r.i:])
	if n <= 0 {
		r.bad = true
		r.i = len(r.b)
		return 0
	}
	r.i += n
	return x
}

func (r *decoder) varint() int64 {
	x, n := binary.Varint(r.b[r.i:])
	if n <= 0 {
		r.bad = true
		r.i = len(r.b)
		return 0
	}
	r.i += n
	return x
}

func (r *decoder) byte() byte {
	if r.i >= len(r.b) {
		r.bad = true
		return 0
	}
	r.i++
	return r.b[r.i-1]
}

// count reads a number of entries of at least min bytes each.
func (r *decoder) count(min int) int {
	n := r.uvarint()
	if n > uint64((len(r.b)-r.i)/min) {
		r.bad = true
		r.i = len(r.b)
		return 0
	}
	return int(n)
}

func (r *decoder) span() (int, int) {
	n := r.uvarint()
	if n > uint64(len(r.b)-r.i) {
		r.bad = true
		r.i = len(r.b)
		return 0, 0
	}
	r.i += int(n)
	return r.i - int(n), r.i
}

func (r *decoder) str() string {
	a, b := r.span()
	return r.s[a:b]
}

func (r *decoder) bytes() []byte {
	a, b := r.span()
	if a == b {
		return nil
	}
	return r.slab[a:b:b]
}

func (r *decoder) time() time.Time {
	sec := r.varint()
	ns := r.uvarint()
	if ns >= 1e9 {
		r.bad = true
		return time.Time{}
	}
	return time.Unix(sec, int64(ns)).UTC()
}

func (r *decoder) version() version {
	ref := r.uvarint()
	if ref > 0 {
		if ref > uint64(len(r.vers)) {
			r.bad = true
			return version{}
		}
		return r.vers[ref-1]
	}
	v := version{r.time(), r.str()}
	r.vers = append(r.vers, v)
	return v
}

// A small JSON reader for the raw fields of events: it finds the members a
// State reads and skips the rest without decoding them, checking the
// grammar of what it skips (not UTF-8), so that a malformed object is
// ignored as a whole.

const maxDepth = 128

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// skipValue returns the end of the JSON value at b[i:], or -1.
func skipValue(b []byte, i, depth int) int {
	if i >= len(b) {
		return -1
	}
	switch c := b[i]; c {
	case '"':
		end, _ := skipString(b, i)
		return end
	case '{', '[':
		if depth >= maxDepth {
			return -1
		}
		closer := byte('}')
		if c == '[' {
			closer = ']'
		}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == closer {
			return i + 1
		}
		for {
			if c == '{' {
				if i >= len(b) || b[i] != '"' {
					return -1
				}
				if i, _ = skipString(b, i); i < 0 {
					return -1
				}
				if i = skipSpace(b, i); i >= len(b) || b[i] != ':' {
					return -1
				}
				i = skipSpace(b, i+1)
			}
			if i = skipValue(b, i, depth+1); i < 0 {
				return -1
			}
			if i = skipSpace(b, i); i >= len(b) {
				return -1
			}
			if b[i] == closer {
				return i + 1
			}
			if b[i] != ',' {
				return -1
			}
			i = skipSpace(b, i+1)
		}
	case 't':
		return skipLiteral(b, i, "true")
	case 'f':
		return skipLiteral(b, i, "false")
	case 'n':
		return skipLiteral(b, i, "null")
	}
	return skipNumber(b, i)
}

func skipLiteral(b []byte, i int, lit string) int {
	if len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit {
		return i + len(lit)
	}
	return -1
}

// skipString returns the end of the JSON string at b[i] == '"' and whether
// it holds escapes, or -1.
func skipString(b []byte, i int) (int, bool) {
	esc := false
	for i++; ; i++ {
		for len(b)-i >= 8 && !special8(binary.LittleEndian.Uint64(b[i:])) {
			i += 8
		}
		if i >= len(b) {
			return -1, esc
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, esc
		case c == '\\':
			esc = true
			if i+1 >= len(b) {
				return -1, esc
			}
			i++
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(b)-i <= 4 {
					return -1, esc
				}
				for _, h := range b[i+1 : i+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return -1, esc
					}
				}
				i += 4
			default:
				return -1, esc
			}
		case c < 0x20:
			return -1, esc
		}
	}
}

// special8 reports whether one of the 8 bytes of x (a string's body) is a
// quote, a backslash or a control character: SWAR tests for a zero byte in
// x^'"' and x^'\\', and for a byte below 0x20 in x.
func special8(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	q := x ^ (ones * '"')
	e := x ^ (ones * '\\')
	return ((q-ones)&^q|(e-ones)&^e|(x-ones*0x20)&^x)&highs != 0
}

// skipNumber returns the end of -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
// at b[i:], or -1.
func skipNumber(b []byte, i int) int {
	digits := func(i int) int {
		j := i
		for j < len(b) && '0' <= b[j] && b[j] <= '9' {
			j++
		}
		if j == i {
			return -1
		}
		return j
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	default:
		if i = digits(i); i < 0 {
			return -1
		}
	}
	if i < len(b) && b[i] == '.' {
		if i = digits(i + 1); i < 0 {
			return -1
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i = digits(i); i < 0 {
			return -1
		}
	}
	return i
}

// validObject reports whether b is one JSON object (and whitespace).
func validObject(b []byte) bool {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i = skipValue(b, i, 0)
	return i >= 0 && skipSpace(b, i) == len(b)
}

// objectOrNil returns b when it is a JSON value that is an object. b must
// be a value checked by the reader (a member found by lookup).
func objectOrNil(b []byte) []byte {
	if len(b) == 0 || b[0] != '{' {
		return nil
	}
	return b
}

// rawKey is an object key as it is in the JSON, quotes included.
type rawKey struct {
	q   []byte
	esc bool // q holds escapes
}

// raw returns the key without its quotes, escapes not decoded.
func (k rawKey) raw() []byte { return k.q[1 : len(k.q)-1] }

// is reports whether the key is name.
func (k rawKey) is(name string) bool {
	if !k.esc {
		return string(k.raw()) == name
	}
	s, ok := k.string()
	return ok && s == name
}

// string returns the key unquoted.
func (k rawKey) string() (string, bool) {
	return unquote(k.q)
}

// memberIter iterates the members of a JSON object.
type memberIter struct {
	b    []byte
	i    int
	n    int
	done bool
	bad  bool // the object was malformed: iteration stopped early
}

// members starts iterating the JSON object b; ok is false when b does not
// start with one.
func members(b []byte) (m memberIter, ok bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return memberIter{done: true}, false
	}
	return memberIter{b: b, i: i + 1}, true
}

func (m *memberIter) fail() (rawKey, []byte, bool) {
	m.done, m.bad = true, true
	return rawKey{}, nil, false
}

func (m *memberIter) next() (rawKey, []byte, bool) {
	if m.done {
		return rawKey{}, nil, false
	}
	b := m.b
	i := skipSpace(b, m.i)
	if i >= len(b) {
		return m.fail()
	}
	if b[i] == '}' {
		m.done = true
		if skipSpace(b, i+1) != len(b) {
			m.bad = true
		}
		return rawKey{}, nil, false
	}
	if m.n > 0 {
		if b[i] != ',' {
			return m.fail()
		}
		i = skipSpace(b, i+1)
	}
	if i >= len(b) || b[i] != '"' {
		return m.fail()
	}
	end, esc := skipString(b, i)
	if end < 0 {
		return m.fail()
	}
	k := rawKey{b[i:end:end], esc}
	i = skipSpace(b, end)
	if i >= len(b) || b[i] != ':' {
		return m.fail()
	}
	i = skipSpace(b, i+1)
	vend := skipValue(b, i, 1)
	if vend < 0 {
		return m.fail()
	}
	m.i, m.n = vend, m.n+1
	return k, b[i:vend], true
}

// elemIter iterates the elements of a JSON array.
type elemIter struct {
	b    []byte
	i, n int
	done bool
}

// elements starts iterating the JSON array b, a value checked by the
// reader; ok is false when b is not an array.
func elements(b []byte) (a elemIter, ok bool) {
	if len(b) == 0 || b[0] != '[' {
		return elemIter{done: true}, false
	}
	return elemIter{b: b, i: 1}, true
}

func (a *elemIter) next() ([]byte, bool) {
	if a.done {
		return nil, false
	}
	b := a.b
	i := skipSpace(b, a.i)
	if i < len(b) && b[i] == ']' {
		a.done = true
		return nil, false
	}
	if a.n > 0 {
		if i >= len(b) || b[i] != ',' {
			a.done = true
			return nil, false
		}
		i = skipSpace(b, i+1)
	}
	end := skipValue(b, i, 1)
	if end < 0 {
		a.done = true
		return nil, false
	}
	a.i, a.n = end, a.n+1
	return b[i:end], true
}

// lookup finds the members named keys of the JSON object obj, the last of
// a repeated name winning, into out (nil for a missing one). It reports
// false, leaving out all nil, when obj is not a well-formed object.
func lookup(obj []byte, keys []string, out [][]byte) bool {
	m, ok := members(obj)
	if !ok {
		return false
	}
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		for i, name := range keys {
			if k.is(name) {
				out[i] = v
				break
			}
		}
	}
	if m.bad {
		clear(out)
		return false
	}
	return true
}

// keysOf returns the unquoted keys of the well-formed JSON object obj.
func keysOf(obj []byte) []string {
	var keys []string
	m, _ := members(obj)
	for k, _, ok := m.next(); ok; k, _, ok = m.next() {
		if s, ok := k.string(); ok {
			keys = append(keys, s)
		}
	}
	return keys
}

// unquote decodes the JSON string q (with its quotes) into valid UTF-8.
func unquote(q []byte) (string, bool) {
	if bytes.IndexByte(q, '\\') < 0 {
		return validUTF8(string(q[1 : len(q)-1])), true
	}
	var s string
	if json.Unmarshal(q, &s) != nil { // replaces invalid UTF-8 itself
		return "", false
	}
	return s, true
}

// validUTF8 returns s with each run of invalid UTF-8 replaced by U+FFFD.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// str reads a JSON string value (nil and other types: ok false).
func str(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != '"' {
		return "", false
	}
	return unquote(v)
}

func boolOf(v []byte) (b, ok bool) {
	switch string(v) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return false, false
}

// num reads a number: a JSON number, or a string holding one (spaces
// around it allowed). Numbers beyond float64 are refused.
func num(v []byte) (float64, bool) {
	if len(v) == 0 {
		return 0, false
	}
	if v[0] == '"' {
		s, ok := str(v)
		if !ok {
			return 0, false
		}
		s = strings.TrimSpace(s)
		if s == "" || skipNumber([]byte(s), 0) != len(s) {
			return 0, false
		}
		v = []byte(s)
	} else if skipNumber(v, 0) != len(v) {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil {
		return 0, false
	}
	if f == 0 {
		f = 0 // no negative zero
	}
	return f, true
}

// compactAppend appends the well-formed JSON value v to dst without the
// whitespace outside its strings.
func compactAppend(dst, v []byte) []byte {
	in := false
	start := 0
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case in && c == '\\':
			i++
		case c == '"':
			in = !in
		case !in && isSpace(c):
			dst = append(dst, v[start:i]...)
			start = i + 1
		}
	}
	return append(dst, v[start:]...)
}

// compactEqual reports whether compactAppend(nil, v) would equal c.
func compactEqual(v, c []byte) bool {
	in := false
	j := 0
	for i := 0; i < len(v); i++ {
		ch := v[i]
		if !in && isSpace(ch) {
			continue
		}
		if j >= len(c) || c[j] != ch {
			return false
		}
		j++
		switch {
		case in && ch == '\\':
			i++
			if i >= len(v) || j >= len(c) || c[j] != v[i] {
				return false
			}
			j++
		case ch == '"':
			in = !in
		}
	}
	return j == len(c)
}
