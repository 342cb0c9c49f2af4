package profile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nudge-dev/nudge"
)

var t0 = time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)

func raw(s string) json.RawMessage {
	if s == "" {
		return nil
	}
	return json.RawMessage(s)
}

func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

func track(id string, sec int, name, props string) *nudge.Event {
	return &nudge.Event{Type: nudge.Track, MessageID: id, Event: name, Properties: raw(props), Timestamp: at(sec)}
}

func identify(id string, sec int, traits string) *nudge.Event {
	return &nudge.Event{Type: nudge.Identify, MessageID: id, Traits: raw(traits), Timestamp: at(sec)}
}

func page(id string, sec int) *nudge.Event {
	return &nudge.Event{Type: nudge.Page, MessageID: id, Name: "Home", Timestamp: at(sec)}
}

func withContext(e *nudge.Event, ctx string) *nudge.Event {
	e.Context = raw(ctx)
	return e
}

func applyAll(events ...*nudge.Event) *State {
	s := new(State)
	for _, e := range events {
		s.Apply(e)
	}
	return s
}

func encode(t testing.TB, s *State) []byte {
	t.Helper()
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jsonOf(s *State) string {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return "error: " + err.Error()
	}
	return string(b)
}

// sameState fails unless got and want are the same State, as values and
// encoded.
func sameState(t testing.TB, what string, want, got *State) {
	t.Helper()
	if !reflect.DeepEqual(want, got) || !bytes.Equal(encode(t, want), encode(t, got)) {
		t.Fatalf("%s: states differ\nwant %s\n got %s", what, jsonOf(want), jsonOf(got))
	}
}

// permutations calls f with every order of n indexes (Heap's algorithm).
func permutations(n int, f func(p []int)) {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	c := make([]int, n)
	f(p)
	for i := 0; i < n; {
		if c[i] < i {
			if i%2 == 0 {
				p[0], p[i] = p[i], p[0]
			} else {
				p[c[i]], p[i] = p[i], p[c[i]]
			}
			f(p)
			c[i]++
			i = 0
		} else {
			c[i] = 0
			i++
		}
	}
}

// eachOrder calls f with every order of events and the State they make
// applied in that order. Orders that share a prefix share its State.
func eachOrder(events []*nudge.Event, f func(order []int, s *State)) {
	order := make([]int, 0, len(events))
	used := make([]bool, len(events))
	var walk func(s *State)
	walk = func(s *State) {
		if len(order) == len(events) {
			f(order, s)
			return
		}
		for i, e := range events {
			if used[i] {
				continue
			}
			c := s
			if len(order) < len(events)-1 {
				c = s.Clone()
			}
			c.Apply(e)
			used[i], order = true, append(order, i)
			walk(c)
			used[i], order = false, order[:len(order)-1]
			if c == s {
				return // the last event: one order only
			}
		}
	}
	walk(new(State))
}

// crossDevice is the seed's story: an anonymous visitor on a phone looks at
// and adds running shoes; on a desktop, logged in, the same person
// identifies, browses, adds and removes socks.
func crossDevice() (phone, desktop []*nudge.Event) {
	phone = []*nudge.Event{
		withContext(page("p1", 0), `{"timezone":"Europe/Paris","userAgent":"Mobile Safari"}`),
		track("p2", 60, "Product Viewed", `{"product_id":"shoe-1","sku":"RUN-42","name":"running shoes","price":89.9}`),
		track("p3", 120, "Product Added", `{"sku":"RUN-42","name":"running shoes","price":89.9,"quantity":1,"url":"https://shop.example/p/run-42","image_url":"https://shop.example/i/run-42.jpg"}`),
		withContext(track("p4", 200, "Product Viewed", `{"sku":"SOCK-1"}`), `{"consent":{"categoryPreferences":{"Advertising":false,"Analytics":true}}}`),
	}
	desktop = []*nudge.Event{
		withContext(identify("d1", 300, `{"email":"ann@example.com","name":"Ann","subscriptions":{"email":"subscribed"}}`), `{"timezone":"Europe/Berlin"}`),
		track("d2", 360, "Product Viewed", `{"product_id":"shoe-1","sku":"RUN-42"}`),
		track("d3", 90, "Product Added", `{"sku":"SOCK-1","name":"socks","price":"4.50","quantity":3}`),
		track("d4", 420, "Product Removed", `{"sku":"SOCK-1"}`),
	}
	return phone, desktop
}

func TestCrossDevice(t *testing.T) {
	phoneEvents, desktopEvents := crossDevice()
	phone, desktop := applyAll(phoneEvents...), applyAll(desktopEvents...)
	merged := phone.Clone()
	merged.Merge(desktop)

	items := merged.Cart.Items()
	if len(items) != 1 || items[0].ID != "RUN-42" || items[0].Name != "running shoes" || items[0].Price != 89.9 || items[0].Quantity != 1 ||
		string(items[0].Properties) != `{"url":"https://shop.example/p/run-42","image_url":"https://shop.example/i/run-42.jpg"}` {
		t.Errorf("cart items = %+v, want the running shoes", items)
	}
	wantCounts := map[string]int64{"page": 1, "Product Viewed": 3, "Product Added": 2, "identify": 1, "Product Removed": 1}
	if !reflect.DeepEqual(merged.Counts, wantCounts) {
		t.Errorf("counts = %v, want %v", merged.Counts, wantCounts)
	}
	if got := string(merged.Traits["email"].Value); got != `"ann@example.com"` {
		t.Errorf("email trait = %s", got)
	}
	if merged.Traits["email"].MessageID != "d1" || !merged.Traits["email"].At.Equal(at(300)) {
		t.Errorf("email trait set by %+v", merged.Traits["email"])
	}
	if merged.Timezone.Value != "Europe/Berlin" {
		t.Errorf("timezone = %+v, want the later Europe/Berlin", merged.Timezone)
	}
	if !merged.FirstSeen.Equal(at(0)) || !merged.LastSeen.Equal(at(420)) {
		t.Errorf("seen %v .. %v", merged.FirstSeen, merged.LastSeen)
	}
	if s := merged.Subscriptions["email"]; !s.Value || s.MessageID != "d1" {
		t.Errorf("email subscription = %+v", s)
	}
	if c := merged.Consent; len(c) != 2 || c["Advertising"].Value || !c["Analytics"].Value {
		t.Errorf("consent = %+v", c)
	}

	// The other way round, and every order of the eight events.
	other := desktop.Clone()
	other.Merge(phone)
	sameState(t, "desktop.Merge(phone)", merged, other)
	all := append(append([]*nudge.Event{}, phoneEvents...), desktopEvents...)
	want := encode(t, merged)
	perms := 0
	var buf []byte
	eachOrder(all, func(p []int, s *State) {
		perms++
		buf, _ = s.AppendBinary(buf[:0])
		if !bytes.Equal(buf, want) {
			t.Fatalf("order %v: state differs\nwant %s\n got %s", p, jsonOf(merged), jsonOf(s))
		}
		if perms%101 != 0 {
			return
		}
		sameState(t, fmt.Sprintf("order %v", p), merged, s)
		// Every split of this order into a prefix and a suffix, merged
		// either way.
		for cut := 0; cut <= len(p); cut++ {
			a, b := new(State), new(State)
			for _, i := range p[:cut] {
				a.Apply(all[i])
			}
			for _, i := range p[cut:] {
				b.Apply(all[i])
			}
			ab, ba := a.Clone(), b.Clone()
			ab.Merge(b)
			ba.Merge(a)
			sameState(t, fmt.Sprintf("order %v cut %d, a⊔b", p, cut), merged, ab)
			sameState(t, fmt.Sprintf("order %v cut %d, b⊔a", p, cut), merged, ba)
		}
	})
	if perms != 40320 {
		t.Fatalf("%d permutations", perms)
	}
	// Every split of the events into two sets, merged either way.
	for mask := range 1 << len(all) {
		a, b := new(State), new(State)
		for i, e := range all {
			if mask&(1<<i) != 0 {
				a.Apply(e)
			} else {
				b.Apply(e)
			}
		}
		ab, ba := a.Clone(), b.Clone()
		ab.Merge(b)
		ba.Merge(a)
		sameState(t, fmt.Sprintf("split %08b, a⊔b", mask), merged, ab)
		sameState(t, fmt.Sprintf("split %08b, b⊔a", mask), merged, ba)
	}
}

// gen makes random events of every kind the State reads, on few distinct
// times and few keys so that they collide.
type gen struct {
	r    *rand.Rand
	n    int
	past []*nudge.Event
}

func (g *gen) pick(xs ...string) string { return xs[g.r.IntN(len(xs))] }

func (g *gen) value() string {
	switch g.r.IntN(7) {
	case 0:
		return strconv.Itoa(g.r.IntN(100))
	case 1:
		return g.pick("true", "false", "null")
	case 2:
		return `{ "a" : [1, 2 ,"x y"], "b":{"c":null} }` // compacted when kept
	case 3:
		return `"` + g.pick("pro", "free", `a\"b`, `\u00e9`, "two words") + `"`
	}
	return `"v` + strconv.Itoa(g.r.IntN(4)) + `"`
}

func (g *gen) traits() string {
	var parts []string
	for range g.r.IntN(5) {
		k := g.pick("email", "name", "plan", "age", "timezone", "subscriptions", "tz\\u0021")
		v := g.value()
		switch k {
		case "timezone":
			v = `"` + g.pick("Europe/Paris", "America/New_York", "Asia/Tokyo") + `"`
		case "subscriptions":
			v = fmt.Sprintf(`{"%s":%s,"%s":%s}`, g.pick("email", "SMS", "push", "email:news"), g.pick("true", "false", `"subscribed"`, `"unsubscribed"`, `"maybe"`),
				g.pick("email", "sms"), g.pick("true", "false"))
		}
		parts = append(parts, fmt.Sprintf("%q:%s", k, v))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func (g *gen) context() string {
	var parts []string
	if g.r.IntN(2) == 0 {
		parts = append(parts, `"traits":`+g.traits())
	}
	if g.r.IntN(3) == 0 {
		parts = append(parts, `"timezone":"`+g.pick("Europe/Paris", "America/New_York", "Asia/Tokyo")+`"`)
	}
	if g.r.IntN(3) == 0 {
		parts = append(parts, fmt.Sprintf(`"consent":{"categoryPreferences":{"Advertising":%s,"%s":%s}}`,
			g.pick("true", "false"), g.pick("Analytics", "Functional"), g.pick("true", "false", `"yes"`)))
	}
	if g.r.IntN(4) == 0 {
		parts = append(parts, `"library":{"name":"analytics.js","version":"5.2.0"},"ip":"10.0.0.1"`)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func (g *gen) product() string {
	id := g.pick("A", "B", "C", "D")
	key := g.pick(`"product_id":"`+id+`"`, `"sku":"`+id+`"`, `"product_id":"`+id+`","sku":"S-`+id+`"`)
	return fmt.Sprintf(`{%s,"name":"%s","price":%s,"quantity":%d,"url":"/p/%s"}`, key, g.pick("shoe", "sock", "hat"),
		g.pick("10", "9.99", `"4.50"`, "0.1"), g.r.IntN(3), id)
}

func (g *gen) products() string {
	var ps []string
	for range g.r.IntN(4) {
		ps = append(ps, g.product())
	}
	return "[" + strings.Join(ps, ",") + "]"
}

func (g *gen) event() *nudge.Event {
	g.n++
	// messageIds are unique, in an order unrelated to time; but some events
	// share the time and messageId of an earlier one, as if a buggy client
	// reused them: content breaks the tie.
	e := &nudge.Event{MessageID: string(rune('a'+g.r.IntN(26))) + strconv.Itoa(g.n), Timestamp: at(g.r.IntN(8)), Type: nudge.Track}
	if len(g.past) > 0 && g.r.IntN(8) == 0 {
		p := g.past[g.r.IntN(len(g.past))]
		e.MessageID, e.Timestamp = p.MessageID, p.Timestamp
	}
	g.past = append(g.past, e)
	switch g.r.IntN(14) {
	case 0, 1:
		e.Type, e.Traits = nudge.Identify, raw(g.traits())
	case 2:
		e.Type = nudge.Page
	case 3:
		e.Type, e.Traits = nudge.Group, raw(`{"plan":"enterprise"}`) // group traits are not the person's
	case 4, 5:
		e.Event, e.Properties = ProductAdded, raw(g.product())
	case 6:
		e.Event, e.Properties = ProductRemoved, raw(fmt.Sprintf(`{"%s":"%s"}`, g.pick("product_id", "sku"), g.pick("A", "B", "C", "D")))
	case 7:
		e.Event, e.Properties = CartViewed, raw(`{"products":`+g.products()+`}`)
	case 8:
		e.Event = OrderCompleted
		e.Properties = raw(g.pick(`{"revenue":12.34}`, `{"revenue":"0.1"}`, `{"total":0.2}`, `{"products":`+g.products()+`}`, `[]`))
	case 9:
		e.Event = g.pick(Subscribed, Unsubscribed)
		e.Properties = raw(fmt.Sprintf(`{"channel":"%s"%s}`, g.pick("email", "SMS", "push"), g.pick("", `,"group":"news"`)))
	case 10:
		e.Event = g.pick("Product Viewed", "Email Opened", "")
	default:
		e.Event, e.Properties = "Product Viewed", raw(g.product())
	}
	if g.r.IntN(2) == 0 {
		e.Context = raw(g.context())
	}
	return e
}

// mergeRandomly splits events among 1-4 States, applies each part in a
// random order and merges the parts in a random order and grouping.
func mergeRandomly(r *rand.Rand, events []*nudge.Event) *State {
	parts := make([]*State, 1+r.IntN(4))
	for i := range parts {
		parts[i] = new(State)
	}
	for _, i := range r.Perm(len(events)) {
		p := parts[r.IntN(len(parts))]
		if r.IntN(2) == 0 {
			p.Apply(events[i])
		} else {
			p.Merge(FromEvent(events[i]))
		}
	}
	for len(parts) > 1 {
		i := r.IntN(len(parts) - 1)
		a, b := parts[i], parts[i+1]
		if r.IntN(2) == 0 {
			a, b = b, a
		}
		a.Merge(b)
		parts = append(parts[:i], parts[i+1:]...)
		parts[i] = a
	}
	return parts[0]
}

func TestConvergesRandomly(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	rounds := 1500
	if testing.Short() {
		rounds = 150
	}
	for round := range rounds {
		g := &gen{r: r}
		events := make([]*nudge.Event, 1+r.IntN(20))
		for i := range events {
			events[i] = g.event()
		}
		want := applyAll(events...)
		for try := range 3 {
			got := mergeRandomly(r, events)
			sameState(t, fmt.Sprintf("round %d try %d", round, try), want, got)
		}
		// Apply ≡ Merge(FromEvent), step by step.
		a, b := new(State), new(State)
		for i, e := range events {
			a.Apply(e)
			b.Merge(FromEvent(e))
			if !bytes.Equal(encode(t, a), encode(t, b)) {
				sameState(t, fmt.Sprintf("round %d event %d: Apply vs Merge(FromEvent)", round, i), a, b)
			}
		}
		sameState(t, fmt.Sprintf("round %d: Apply vs Merge(FromEvent)", round), a, b)
		checkRoundTrip(t, want)
	}
}

// checkRoundTrip checks the encodings and Clone of s.
func checkRoundTrip(t *testing.T, s *State) {
	t.Helper()
	var d State
	if err := d.UnmarshalBinary(encode(t, s)); err != nil {
		t.Fatal(err)
	}
	sameState(t, "binary round trip", s, &d)
	sameState(t, "clone", s, s.Clone())
	j, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var fromJSON State
	if err := json.Unmarshal(j, &fromJSON); err != nil {
		t.Fatalf("%v in %s", err, j)
	}
	j2, err := json.Marshal(&fromJSON)
	if err != nil || !bytes.Equal(j, j2) {
		t.Fatalf("JSON round trip: %v\n%s\n%s", err, j, j2)
	}
	// encoding/json escapes <, > and & (and U+2028, U+2029) in raw values
	// and replaces invalid UTF-8: values that have none come back as they
	// were, and the State with them.
	escaped := false
	for _, esc := range []string{`\u003c`, `\u003e`, `\u0026`, `\u2028`, `\u2029`, `\ufffd`} {
		escaped = escaped || bytes.Contains(j, []byte(esc))
	}
	if !escaped && utf8.Valid(j) {
		sameState(t, "JSON round trip", s, &fromJSON)
	}
}

func TestApplyIsMergeOfFromEvent(t *testing.T) {
	phone, desktop := crossDevice()
	base := applyAll(phone...)
	for i, e := range desktop {
		a, b := base.Clone(), base.Clone()
		a.Apply(e)
		b.Merge(FromEvent(e))
		sameState(t, fmt.Sprintf("event %d", i), a, b)
	}
}

func TestMergeSelf(t *testing.T) {
	s := applyAll(track("m1", 0, "Order Completed", `{"revenue":10}`))
	s.Merge(s)
	if s.Counts[OrderCompleted] != 2 || s.Orders != 2 || s.Revenue != 20e6 {
		t.Fatalf("self-merge: %s", jsonOf(s))
	}
}

func TestRevenue(t *testing.T) {
	for _, c := range []struct {
		name, props string
		want        Money
	}{
		{"revenue", `{"revenue":89.9,"total":100}`, 89_900000},
		{"revenue as a string", `{"revenue":" 89.90 ","total":100}`, 89_900000},
		{"total", `{"total":42.5,"shipping":5}`, 42_500000},
		{"total as a string", `{"total":"42.5"}`, 42_500000},
		{"products", `{"products":[{"price":10,"quantity":2},{"price":"0.5"},{"price":1.25,"quantity":"3"},{"name":"no price"},7]}`, 24_250000},
		{"revenue not a number falls back to total", `{"revenue":"n/a","total":3}`, 3_000000},
		{"revenue null falls back to products", `{"revenue":null,"products":[{"price":2}]}`, 2_000000},
		{"nothing", `{"currency":"EUR"}`, 0},
		{"negative", `{"revenue":-5}`, -5_000000},
		{"properties not an object", `["revenue",1]`, 0},
		{"malformed properties", `{"revenue":1,`, 0},
		{"absurd", `{"revenue":1e300}`, 1e12 * 1e6},
		{"NaN string", `{"revenue":"NaN","total":"Inf"}`, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := applyAll(track("m1", 0, OrderCompleted, c.props))
			if s.Revenue != c.want || s.Orders != 1 {
				t.Errorf("revenue %v, orders %d; want %v, 1", s.Revenue, s.Orders, c.want)
			}
		})
	}
}

func TestRevenueSumIsExact(t *testing.T) {
	// 0.1 + 0.2 + 0.3 depends on the order of the terms in float64; in
	// Money it does not.
	events := []*nudge.Event{
		track("a", 0, OrderCompleted, `{"revenue":0.1}`),
		track("b", 1, OrderCompleted, `{"revenue":0.2}`),
		track("c", 2, OrderCompleted, `{"revenue":0.3}`),
	}
	want := applyAll(events...)
	permutations(3, func(p []int) {
		if got := applyAll(events[p[0]], events[p[1]], events[p[2]]); got.Revenue != want.Revenue || got.Revenue != 600000 {
			t.Fatalf("order %v: revenue %v", p, got.Revenue)
		}
	})
	if b, _ := json.Marshal(want.Revenue); string(b) != "0.6" {
		t.Errorf("JSON %s", b)
	}
}

func TestMoney(t *testing.T) {
	for _, c := range []struct {
		m    Money
		text string
	}{
		{0, "0"}, {89_900000, "89.9"}, {-1, "-0.000001"}, {1_000001, "1.000001"}, {-123_450000, "-123.45"},
		{Money(-1 << 63), "-9223372036854.775808"}, {Money(1<<63 - 1), "9223372036854.775807"},
	} {
		if got := c.m.String(); got != c.text {
			t.Errorf("%d: %q, want %q", int64(c.m), got, c.text)
		}
		var back Money
		if err := json.Unmarshal([]byte(c.text), &back); err != nil || back != c.m {
			t.Errorf("%q: back %d, %v", c.text, int64(back), err)
		}
	}
	var m Money
	for text, want := range map[string]Money{`"12.5"`: 12_500000, `1e2`: 100_000000, `0.0000004`: 0, `0.0000005`: 1} {
		if err := json.Unmarshal([]byte(text), &m); err != nil || m != want {
			t.Errorf("%s: %d, %v; want %d", text, int64(m), err, int64(want))
		}
	}
	for _, text := range []string{`"ten"`, `1.2.3`, `-`, `"1e999"`, `1e999`, `{}`} {
		if err := m.UnmarshalJSON([]byte(text)); err == nil {
			t.Errorf("%s: no error", text)
		}
	}
	if err := json.Unmarshal([]byte(`99999999999999`), &m); err != nil || m != 1e12*1e6 {
		t.Errorf("beyond exact: %d, %v; want the bound", int64(m), err)
	}
}

func TestTraits(t *testing.T) {
	s := applyAll(
		withContext(identify("m2", 20, `{"plan":"pro","email":"new@example.com"}`), `{"traits":{"plan":"trial","age":30}}`),
		identify("m1", 10, `{"plan":"trial","email":"old@example.com","name":"Ann"}`),
		withContext(track("m3", 30, "Product Viewed", ""), `{"traits":{"age":31}}`),
		withContext(page("m4", 5), `{"traits":{"name":"Anne"}}`),
		&nudge.Event{Type: nudge.Group, MessageID: "m5", GroupID: "g", Traits: raw(`{"plan":"enterprise"}`), Timestamp: at(40)},
		identify("m6", 50, `{"bio": {  "long" : "text with spaces" } }`),
	)
	want := map[string]string{
		"plan":  `"pro"`, // an identify's traits beat its context.traits; group traits are not the person's
		"email": `"new@example.com"`,
		"age":   "31",
		"name":  `"Ann"`,
		"bio":   `{"long":"text with spaces"}`, // compacted
	}
	if len(s.Traits) != len(want) {
		t.Errorf("traits %s", jsonOf(s))
	}
	for k, v := range want {
		if got := string(s.Traits[k].Value); got != v {
			t.Errorf("trait %s = %s, want %s", k, got, v)
		}
	}
}

func TestSubscriptions(t *testing.T) {
	for _, c := range []struct {
		name   string
		events []*nudge.Event
		want   map[string]bool
	}{
		{"identify traits", []*nudge.Event{identify("m1", 0, `{"subscriptions":{"email":true,"SMS":"unsubscribed","push":"Subscribed","fax":"maybe","web":1}}`)},
			map[string]bool{"email": true, "sms": false, "push": true}},
		{"context traits", []*nudge.Event{withContext(page("m1", 0), `{"traits":{"subscriptions":{"email":false}}}`)},
			map[string]bool{"email": false}},
		{"track events", []*nudge.Event{
			track("m1", 0, Unsubscribed, `{"channel":"Email","group":"newsletter"}`),
			track("m2", 0, Subscribed, `{"channel":"sms"}`),
			track("m3", 0, Subscribed, `{"group":"no channel"}`),
			track("m4", 0, Subscribed, `"not an object"`),
		}, map[string]bool{"email:newsletter": false, "sms": true}},
		{"latest by time", []*nudge.Event{
			track("m2", 20, Subscribed, `{"channel":"email"}`),
			identify("m1", 10, `{"subscriptions":{"email":false}}`),
			withContext(page("m3", 5), `{"traits":{"subscriptions":{"email":false}}}`),
		}, map[string]bool{"email": true}},
		{"in one event the track event wins over traits", []*nudge.Event{
			withContext(track("m1", 0, Unsubscribed, `{"channel":"email"}`), `{"traits":{"subscriptions":{"email":true,"sms":true}}}`),
		}, map[string]bool{"email": false, "sms": true}},
		{"in one event identify traits win over context traits", []*nudge.Event{
			withContext(identify("m1", 0, `{"subscriptions":{"email":false}}`), `{"traits":{"subscriptions":{"email":true,"sms":true}}}`),
		}, map[string]bool{"email": false}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := applyAll(c.events...)
			got := map[string]bool{}
			for k, v := range s.Subscriptions {
				got[k] = v.Value
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("subscriptions %v, want %v", got, c.want)
			}
		})
	}
}

func TestConsent(t *testing.T) {
	s := applyAll(
		withContext(page("m1", 10), `{"consent":{"categoryPreferences":{"Advertising":true,"Analytics":true,"Weird":"yes"}}}`),
		withContext(page("m2", 20), `{"consent":{"categoryPreferences":{"Advertising":false}}}`),
		withContext(page("m3", 5), `{"consent":{"categoryPreferences":{"Analytics":false,"Functional":true}}}`),
		withContext(page("m4", 30), `{"consent":"all"}`),
		withContext(page("m5", 30), `{"consent":{"categoryPreferences":[true]}}`),
	)
	got := map[string]bool{}
	for k, v := range s.Consent {
		got[k] = v.Value
	}
	if want := map[string]bool{"Advertising": false, "Analytics": true, "Functional": true}; !reflect.DeepEqual(got, want) {
		t.Errorf("consent %v, want %v", got, want)
	}
	if c := s.Consent["Advertising"]; c.MessageID != "m2" || !c.At.Equal(at(20)) {
		t.Errorf("Advertising set by %+v", c)
	}
}

func TestTimezone(t *testing.T) {
	for _, c := range []struct {
		name   string
		events []*nudge.Event
		want   string
	}{
		{"context", []*nudge.Event{withContext(page("m1", 0), `{"timezone":"Europe/Paris"}`)}, "Europe/Paris"},
		{"trait", []*nudge.Event{identify("m1", 0, `{"timezone":"Asia/Tokyo"}`)}, "Asia/Tokyo"},
		{"context trait", []*nudge.Event{withContext(page("m1", 0), `{"traits":{"timezone":"Asia/Tokyo"}}`)}, "Asia/Tokyo"},
		{"later trait beats earlier context", []*nudge.Event{
			identify("m2", 20, `{"timezone":"Asia/Tokyo"}`),
			withContext(page("m1", 10), `{"timezone":"Europe/Paris"}`),
		}, "Asia/Tokyo"},
		{"later context beats earlier trait", []*nudge.Event{
			withContext(page("m2", 20), `{"timezone":"Europe/Paris"}`),
			identify("m1", 10, `{"timezone":"Asia/Tokyo"}`),
		}, "Europe/Paris"},
		{"in one event context beats trait", []*nudge.Event{
			withContext(identify("m1", 0, `{"timezone":"Asia/Tokyo"}`), `{"timezone":"Europe/Paris"}`),
		}, "Europe/Paris"},
		{"a bad context timezone falls back to the trait", []*nudge.Event{
			withContext(identify("m1", 0, `{"timezone":"Asia/Tokyo"}`), `{"timezone":""}`),
		}, "Asia/Tokyo"},
		{"same instant: larger messageId wins", []*nudge.Event{
			withContext(page("m2", 0), `{"timezone":"Europe/Paris"}`),
			withContext(page("m1", 0), `{"timezone":"Asia/Tokyo"}`),
		}, "Europe/Paris"},
		{"not a string", []*nudge.Event{withContext(page("m1", 0), `{"timezone":7}`)}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			permutations(len(c.events), func(p []int) {
				s := new(State)
				for _, i := range p {
					s.Apply(c.events[i])
				}
				if s.Timezone.Value != c.want {
					t.Errorf("order %v: timezone %+v, want %q", p, s.Timezone, c.want)
				}
			})
		})
	}
}

func TestCounts(t *testing.T) {
	s := applyAll(
		track("m1", 0, "Product Viewed", ""), track("m2", 1, "Product Viewed", ""), track("m3", 2, "", ""),
		page("m4", 3), identify("m5", 4, ""), &nudge.Event{Type: nudge.Screen, MessageID: "m6", Timestamp: at(5)},
		&nudge.Event{MessageID: "m7", Timestamp: at(6)},
		track("m8", 7, strings.Repeat("x", MaxKeyBytes+1), ""),
	)
	want := map[string]int64{"Product Viewed": 2, "track": 1, "page": 1, "identify": 1, "screen": 1}
	if !reflect.DeepEqual(s.Counts, want) || s.Dropped.Counts != 2 {
		t.Errorf("counts %v dropped %d, want %v and 2", s.Counts, s.Dropped.Counts, want)
	}
	if !s.FirstSeen.Equal(at(0)) || !s.LastSeen.Equal(at(7)) {
		t.Errorf("seen %v..%v", s.FirstSeen, s.LastSeen)
	}
	s.Apply(&nudge.Event{Type: nudge.Page, MessageID: "z"}) // no time: counted, not seen
	if !s.FirstSeen.Equal(at(0)) || s.Counts["page"] != 2 {
		t.Errorf("an event without a time moved FirstSeen to %v", s.FirstSeen)
	}
	other := time.FixedZone("CET", 3600)
	s.Apply(&nudge.Event{Type: nudge.Page, MessageID: "z2", Timestamp: at(-10).In(other)})
	if s.FirstSeen != at(-10) || s.FirstSeen.Location() != time.UTC {
		t.Errorf("first seen %v, want %v in UTC", s.FirstSeen, at(-10))
	}
}

func TestBadData(t *testing.T) {
	bad := []string{"", "null", "[]", `"text"`, "12", "true", "{", `{"a":}`, `{"a":1,}`, `{"a" 1}`, `{"a":1}x`, "{\"a\":\"\x01\"}", `{"a":"\q"}`, `{"a":"\u12"}`,
		`{"a":01}`, `{"a":-}`, `{"a":1.}`, `{"a":tru}`, strings.Repeat("[", 10000), `{"traits":[],"timezone":{},"consent":{"categoryPreferences":"x"}}`,
		`{"products":{"a":1},"revenue":{},"channel":5,"product_id":{},"sku":[]}`, `{"products":[null,1,"x",[],{}]}`, "\xff\xfe", `{"a":"\ud800"}`}
	names := []string{"Product Viewed", ProductAdded, ProductRemoved, CartViewed, OrderCompleted, Subscribed, Unsubscribed}
	for _, b := range bad {
		for _, typ := range []nudge.EventType{nudge.Track, nudge.Identify, nudge.Page} {
			for _, name := range names {
				e := &nudge.Event{Type: typ, MessageID: "m", Event: name, Timestamp: t0, Properties: raw(b), Traits: raw(b), Context: raw(b)}
				s := FromEvent(e)
				if n := s.Counts[cmpOr(name, typ)]; n != 1 {
					t.Errorf("%q %s %s: counted %d times", b, typ, name, n)
				}
				if (len(s.Traits) > 0 && !(typ == nudge.Identify && validObject([]byte(b)))) || len(s.Cart.entries) > 0 || s.Timezone.Value != "" || len(s.Consent) > 0 || len(s.Subscriptions) > 0 || s.Revenue != 0 {
					t.Errorf("%q %s %s: read %s", b, typ, name, jsonOf(s))
				}
				checkRoundTrip(t, s)
			}
		}
	}
}

func TestInvalidUTF8(t *testing.T) {
	// Ingest refuses invalid UTF-8; a State made of it anyway keeps only
	// valid strings, so that its JSON gives it back.
	s := applyAll(
		withContext(identify("m\xff1", 0, "{\"na\xffme\":\"x\xfey\"}"), "{\"timezone\":\"Europe/\xff\",\"consent\":{\"categoryPreferences\":{\"A\xff\":true}}}"),
		track("m2", 1, "Clicked \xff", ""),
		track("m3", 2, ProductAdded, "{\"sku\":\"S\xff\",\"name\":\"n\xff\"}"),
		track("m4", 3, Subscribed, "{\"channel\":\"e\xffmail\",\"group\":\"g\xff\"}"),
	)
	for _, str := range []string{s.Timezone.Value, s.Timezone.MessageID, s.Cart.Items()[0].ID, s.Cart.Items()[0].Name} {
		if !utf8.ValidString(str) {
			t.Errorf("%q kept", str)
		}
	}
	for _, m := range []map[string]bool{keySet(s.Traits), keySet(s.Counts), keySet(s.Consent), keySet(s.Subscriptions)} {
		for k := range m {
			if !utf8.ValidString(k) {
				t.Errorf("key %q kept", k)
			}
		}
	}
	checkRoundTrip(t, s)
}

func keySet[V any](m map[string]V) map[string]bool {
	keys := map[string]bool{}
	for k := range m {
		keys[k] = true
	}
	return keys
}

func cmpOr(name string, typ nudge.EventType) string {
	if typ == nudge.Track {
		return name
	}
	return string(typ)
}

func TestBounds(t *testing.T) {
	// More traits, names, consent keys and cart items than the bounds, in
	// events spread over time, on few instants so that ties are broken by
	// messageId: any order and any split gives the same State.
	var events []*nudge.Event
	for i := range 260 {
		id := fmt.Sprintf("m%03d", (i*37)%260)
		events = append(events,
			identify(id+"t", i%50, fmt.Sprintf(`{"trait%03d":%d,"common":%d}`, i, i, i%7)),
			track(id+"c", i%40, fmt.Sprintf("Event %03d", i), ""),
			track(id+"d", i%40, fmt.Sprintf("Also %03d", i), ""),
			withContext(track(id+"p", i%30, ProductAdded, fmt.Sprintf(`{"sku":"SKU-%03d"}`, i)), fmt.Sprintf(`{"consent":{"categoryPreferences":{"cat%03d":true}}}`, i)),
		)
		if i%3 == 0 {
			events = append(events, track(id+"r", i%30+1, ProductRemoved, fmt.Sprintf(`{"sku":"SKU-%03d"}`, i)))
		}
	}
	want := applyAll(events...)
	if len(want.Traits) != MaxTraits || !want.Dropped.Traits {
		t.Errorf("%d traits, dropped %v", len(want.Traits), want.Dropped.Traits)
	}
	if len(want.Consent) != MaxFlags || !want.Dropped.Consent {
		t.Errorf("%d consent keys, dropped %v", len(want.Consent), want.Dropped.Consent)
	}
	var total int64
	for _, n := range want.Counts {
		total += n
	}
	if len(want.Counts) != MaxCounts || total+want.Dropped.Counts != int64(len(events)) {
		t.Errorf("%d names, %d counted + %d dropped, want %d", len(want.Counts), total, want.Dropped.Counts, len(events))
	}
	if len(want.Cart.entries) != MaxCartItems {
		t.Errorf("%d cart entries", len(want.Cart.entries))
	}
	r := rand.New(rand.NewPCG(3, 4))
	for try := range 20 {
		sameState(t, fmt.Sprintf("try %d", try), want, mergeRandomly(r, events))
	}

	// Values and keys too big.
	s := applyAll(
		identify("m1", 0, fmt.Sprintf(`{"big":"%s","ok":"%s","%s":1}`, strings.Repeat("x", MaxValueBytes), strings.Repeat("x", MaxValueBytes-2), strings.Repeat("k", MaxKeyBytes+1))),
		track("m2", 1, ProductAdded, fmt.Sprintf(`{"sku":"%s"}`, strings.Repeat("s", MaxKeyBytes+1))),
		track("m3", 2, ProductAdded, fmt.Sprintf(`{"sku":"S","description":"%s"}`, strings.Repeat("d", MaxValueBytes))),
		withContext(page("m4", 3), fmt.Sprintf(`{"timezone":"%s"}`, strings.Repeat("z", MaxKeyBytes+1))),
	)
	if _, ok := s.Traits["big"]; ok || len(s.Traits) != 1 || s.Dropped.Values != 5 {
		t.Errorf("traits %v, dropped %d values, want only ok and 5", len(s.Traits), s.Dropped.Values)
	}
	if items := s.Cart.Items(); len(items) != 1 || items[0].ID != "S" || items[0].Properties != nil {
		t.Errorf("items %+v, want S without properties", items)
	}

	// A Cart Viewed listing more than MaxCartItems products keeps the first.
	var ps []string
	for i := range MaxCartItems + 5 {
		ps = append(ps, fmt.Sprintf(`{"product_id":"P%03d"}`, i))
	}
	s = applyAll(track("m1", 0, CartViewed, `{"products":[`+strings.Join(ps, ",")+`]}`))
	if items := s.Cart.Items(); len(items) != MaxCartItems || items[MaxCartItems-1].ID != fmt.Sprintf("P%03d", MaxCartItems-1) || s.Dropped.Values != 5 {
		t.Errorf("%d items, dropped %d", len(items), s.Dropped.Values)
	}
}

func TestEncoding(t *testing.T) {
	s := typicalState()
	checkRoundTrip(t, s)
	b := encode(t, s)
	for i := range len(b) {
		var d State
		if err := d.UnmarshalBinary(b[:i]); err == nil {
			t.Fatalf("no error for %d of %d bytes", i, len(b))
		}
	}
	var d State
	if err := d.UnmarshalBinary(append(b, 0)); err == nil {
		t.Fatal("no error for a trailing byte")
	}
	if err := d.UnmarshalBinary([]byte{9, 1, 2}); err != ErrFormat {
		t.Fatalf("unknown format: %v", err)
	}
	// The decoded State does not keep the input.
	if err := d.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	clear(b)
	sameState(t, "after clearing the input", s, &d)

	var empty State
	checkRoundTrip(t, &empty)
	j, _ := json.Marshal(&empty)
	if string(j) != `{"orders":0,"revenue":0,"cart":{"items":[]}}` {
		t.Errorf("empty state JSON %s", j)
	}
}

func TestJSONShape(t *testing.T) {
	s := applyAll(
		withContext(identify("m1", 0, `{"email":"ann@example.com"}`), `{"timezone":"Europe/Paris","consent":{"categoryPreferences":{"Advertising":true}}}`),
		track("m2", 1, ProductAdded, `{"product_id":"P1","sku":"RUN-42","name":"running shoes","price":89.9,"image_url":"/i.jpg"}`),
		track("m3", 2, ProductRemoved, `{"product_id":"P2"}`),
		track("m4", 3, Unsubscribed, `{"channel":"sms"}`),
		track("m0", -1, OrderCompleted, `{"revenue":"10.5"}`),
	)
	got, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "traits": {
    "email": {
      "value": "ann@example.com",
      "at": "2026-11-27T09:00:00Z",
      "messageId": "m1"
    }
  },
  "firstSeen": "2026-11-27T08:59:59Z",
  "lastSeen": "2026-11-27T09:00:03Z",
  "counts": {
    "Order Completed": 1,
    "Product Added": 1,
    "Product Removed": 1,
    "Unsubscribed": 1,
    "identify": 1
  },
  "orders": 1,
  "revenue": 10.5,
  "cart": {
    "items": [
      {
        "id": "P1",
        "productId": "P1",
        "sku": "RUN-42",
        "name": "running shoes",
        "price": 89.9,
        "quantity": 1,
        "properties": {
          "image_url": "/i.jpg"
        },
        "addedAt": "2026-11-27T09:00:01Z",
        "messageId": "m2"
      }
    ],
    "removed": [
      {
        "id": "P2",
        "at": "2026-11-27T09:00:02Z",
        "messageId": "m3"
      }
    ],
    "cleared": {
      "at": "2026-11-27T08:59:59Z",
      "messageId": "m0"
    }
  },
  "consent": {
    "Advertising": {
      "value": true,
      "at": "2026-11-27T09:00:00Z",
      "messageId": "m1"
    }
  },
  "subscriptions": {
    "sms": {
      "value": false,
      "at": "2026-11-27T09:00:03Z",
      "messageId": "m4"
    }
  },
  "timezone": {
    "value": "Europe/Paris",
    "at": "2026-11-27T09:00:00Z",
    "messageId": "m1"
  }
}`
	if string(got) != want {
		t.Errorf("JSON:\n%s\nwant:\n%s", got, want)
	}
}

func TestClone(t *testing.T) {
	s := typicalState()
	c := s.Clone()
	c.Apply(withContext(identify("z", 100, `{"email":"other@example.com","new":1}`), `{"consent":{"categoryPreferences":{"Ads":true}}}`))
	c.Apply(track("z2", 101, OrderCompleted, `{"revenue":1}`))
	c.Apply(track("z3", 102, Unsubscribed, `{"channel":"email"}`))
	sameState(t, "original after changing the clone", typicalState(), s)
}

// typicalState is a profile with ~20 traits, 10 event names and a 3-item
// cart.
func typicalState() *State {
	var events []*nudge.Event
	var traits []string
	for i := range 18 {
		traits = append(traits, fmt.Sprintf(`"trait_%02d":"value number %d"`, i, i))
	}
	events = append(events, withContext(identify("f5c1e7a2-6f3b-4a8e-9d0c-1b2a3c4d5e6f", 0, `{"email":"ann@example.com","name":"Ann Example",`+strings.Join(traits, ",")+`}`),
		`{"timezone":"Europe/Paris","consent":{"categoryPreferences":{"Advertising":true,"Analytics":true}}}`))
	names := []string{"Product Viewed", "Products Searched", "Product List Viewed", "Checkout Started", "Email Opened", "Email Clicked", "Promotion Viewed"}
	for i := range 60 {
		events = append(events, track(fmt.Sprintf("6f3b%04d-1b2a-4a8e-9d0c-f5c1e7a2c4d5", i), 10+i, names[i%len(names)], ""))
	}
	for i, sku := range []string{"RUN-42", "SOCK-1", "HAT-7"} {
		events = append(events, track(fmt.Sprintf("9d0c%04d-1b2a-4a8e-9d0c-f5c1e7a2c4d5", i), 100+i, ProductAdded,
			fmt.Sprintf(`{"product_id":"p-%d","sku":"%s","name":"product %d","price":%d.99,"quantity":1,"category":"Shoes","url":"https://shop.example/p/%s","image_url":"https://shop.example/i/%s.jpg"}`, i, sku, i, 10*i+9, sku, sku)))
	}
	events = append(events, page("a1", 200), track("a2", 201, Subscribed, `{"channel":"email"}`))
	return applyAll(events...)
}

// FuzzApply feeds arbitrary bytes as properties, traits and context of
// events of every kind: Apply must not panic, Merge must stay commutative
// and equal to Apply, and the State must encode.
func FuzzApply(f *testing.F) {
	f.Add(uint8(0), `{"product_id":"A","price":"1.5","quantity":2,"url":"/a"}`, `{"email":"a@b.c","timezone":"Europe/Paris"}`,
		`{"traits":{"subscriptions":{"email":"unsubscribed"}},"timezone":"Asia/Tokyo","consent":{"categoryPreferences":{"Ads":true}}}`)
	f.Add(uint8(2), `{"products":[{"sku":"B"},{"product_id":7,"price":2}]}`, `[]`, `{"traits":{"a":{"b":[1,2,{"c":null}]}}}`)
	f.Add(uint8(3), `{"revenue":"12.30","total":1,"products":[{"price":1e308,"quantity":1e308}]}`, `null`, `"x"`)
	f.Add(uint8(5), `{"channel":"EMAIL","group":"news"}`, `{"subscriptions":{"sms":true}}`, `{"consent":{"categoryPreferences":{"a":"b"}}}`)
	f.Add(uint8(7), `{"a":"\u00e9\ud83d\ude00","b":"\\\"\/\b\f\n\r\t"}`, `{ "k" : [ 1 , 2 ] }`, `{"traits":{"k":[1,2]}}`)
	f.Add(uint8(5), "{\"channel\":\"0\",\"group\":\"\xda\"}", "0", "0") // invalid UTF-8 in a key: JSON would change it
	f.Add(uint8(7), "{\"\xff\":\"\xfe\"}", "{\"\xff\":\"\xfe\",\"timezone\":\"\xfd\"}", "{\"traits\":{\"\xff\":1}}")
	names := []string{ProductAdded, ProductRemoved, CartViewed, OrderCompleted, Subscribed, Unsubscribed, "Product Viewed", "identify", "page"}
	f.Fuzz(func(t *testing.T, kind uint8, props, traits, ctx string) {
		mk := func(id string, sec int) *nudge.Event {
			e := &nudge.Event{Type: nudge.Track, MessageID: id, Timestamp: at(sec), Properties: raw(props), Traits: raw(traits), Context: raw(ctx)}
			switch name := names[int(kind)%len(names)]; name {
			case "identify":
				e.Type = nudge.Identify
			case "page":
				e.Type = nudge.Page
			default:
				e.Event = name
			}
			return e
		}
		base := typicalState()
		a, b := base.Clone(), base.Clone()
		e1, e2 := mk("f1", int(kind>>4)*30), mk("f2", 150)
		a.Apply(e1)
		b.Merge(FromEvent(e1))
		sameState(t, "Apply vs Merge(FromEvent)", a, b)

		other := applyAll(e2, withContext(track("f3", 151, ProductAdded, `{"sku":"RUN-42","quantity":5}`), ctx))
		ab, ba := a.Clone(), other.Clone()
		ab.Merge(other)
		ba.Merge(a)
		sameState(t, "a⊔b vs b⊔a", ab, ba)
		checkRoundTrip(t, ab)
	})
}

// cpuPerOp starts measuring the CPU time of the benchmark's thread; the
// function it returns reports it per op as cpu-ns/op. On a loaded machine
// ns/op counts the time spent waiting for a CPU, cpu-ns/op does not (nor
// the GC's background work). Linux only: elsewhere it reports nothing.
func cpuPerOp(b *testing.B) (stop func()) {
	runtime.LockOSThread()
	start, ok := threadCPU()
	return func() {
		end, ok2 := threadCPU()
		runtime.UnlockOSThread()
		if ok && ok2 && b.N > 0 {
			b.ReportMetric(float64(end-start)/float64(b.N), "cpu-ns/op")
		}
	}
}

// threadCPU returns the time the current thread has run, in ns.
func threadCPU() (int64, bool) {
	data, err := os.ReadFile("/proc/thread-self/schedstat")
	if err != nil {
		return 0, false
	}
	f, _, _ := strings.Cut(string(data), " ")
	ns, err := strconv.ParseInt(f, 10, 64)
	return ns, err == nil
}

// The raw fields of BenchmarkApply's typical track event: a Product Viewed
// with ~330 bytes of properties and an analytics.js context.
var (
	benchContext = raw(`{"library":{"name":"analytics.js","version":"5.2.0"},"page":{"path":"/p/run-42","referrer":"https://www.google.com/","title":"Running shoes","url":"https://shop.example/p/run-42"},"userAgent":"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1","locale":"fr-FR","timezone":"Europe/Paris","ip":"203.0.113.7"}`)
	benchProps   = `{"product_id":"507f1f77bcf86cd799439011","sku":"RUN-42","category":"Shoes","name":"Trail running shoes","brand":"Acme","variant":"blue","price":89.9,"quantity":1,"currency":"EUR","position":3,"url":"https://shop.example/p/run-42","image_url":"https://shop.example/i/run-42.jpg"}`
)

// BenchmarkBaselineJSONValid measures json.Valid on the context and
// properties of BenchmarkApply's typical event: a reference for Apply on a
// noisy machine (Apply reads the context, not these properties).
func BenchmarkBaselineJSONValid(b *testing.B) {
	b.SetBytes(int64(len(benchContext) + len(benchProps)))
	defer cpuPerOp(b)()
	for b.Loop() {
		if !json.Valid(benchContext) || !json.Valid([]byte(benchProps)) {
			b.Fatal("invalid")
		}
	}
}

func BenchmarkApply(b *testing.B) {
	ctx, props := benchContext, benchProps
	rudderCtx := raw(`{"traits":{"email":"ann@example.com","name":"Ann Example","plan":"pro","age":31,"city":"Paris"},` + string(ctx[1:]))
	for _, c := range []struct {
		name string
		e    *nudge.Event
	}{
		{"ProductViewed", withContext(track("m", 0, "Product Viewed", props), string(ctx))},
		{"ProductAdded", withContext(track("m", 0, ProductAdded, props), string(ctx))},
		{"ProductViewed+contextTraits", withContext(track("m", 0, "Product Viewed", props), string(rudderCtx))},
		{"OrderCompleted", withContext(track("m", 0, OrderCompleted, `{"order_id":"o1","total":99.8,"revenue":89.9,"currency":"EUR","products":[`+props+`]}`), string(ctx))},
		{"Identify", withContext(identify("m", 0, `{"email":"ann@example.com","name":"Ann Example","plan":"pro","age":31,"city":"Paris","subscriptions":{"email":true}}`), string(ctx))},
	} {
		b.Run(c.name, func(b *testing.B) {
			s := typicalState()
			events := make([]nudge.Event, 64)
			for i := range events {
				events[i] = *c.e
				events[i].MessageID = fmt.Sprintf("4a8e%04d-9d0c-1b2a-f5c1e7a2c4d5", i)
				events[i].Timestamp = at(1000 + i)
			}
			b.SetBytes(int64(len(c.e.Properties) + len(c.e.Context) + len(c.e.Traits)))
			b.ReportAllocs()
			defer cpuPerOp(b)()
			i := 0
			for b.Loop() {
				s.Apply(&events[i%len(events)])
				i++
			}
		})
	}
}

func BenchmarkMarshal(b *testing.B) {
	s := typicalState()
	b.Run("binary", func(b *testing.B) {
		buf, _ := s.MarshalBinary()
		b.SetBytes(int64(len(buf)))
		b.ReportAllocs()
		defer cpuPerOp(b)()
		for b.Loop() {
			buf, _ = s.AppendBinary(buf[:0])
		}
	})
	b.Run("json", func(b *testing.B) {
		j, _ := json.Marshal(s)
		b.SetBytes(int64(len(j)))
		b.ReportAllocs()
		defer cpuPerOp(b)()
		for b.Loop() {
			json.Marshal(s)
		}
	})
}

func BenchmarkUnmarshal(b *testing.B) {
	s := typicalState()
	b.Run("binary", func(b *testing.B) {
		buf, _ := s.MarshalBinary()
		b.SetBytes(int64(len(buf)))
		b.ReportAllocs()
		defer cpuPerOp(b)()
		for b.Loop() {
			var d State
			if err := d.UnmarshalBinary(buf); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json", func(b *testing.B) {
		j, _ := json.Marshal(s)
		b.SetBytes(int64(len(j)))
		b.ReportAllocs()
		defer cpuPerOp(b)()
		for b.Loop() {
			var d State
			if err := json.Unmarshal(j, &d); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkMerge(b *testing.B) {
	s := typicalState()
	phone, _ := crossDevice()
	o := applyAll(phone...)
	b.ReportAllocs()
	defer cpuPerOp(b)()
	for b.Loop() {
		c := s.Clone()
		c.Merge(o)
	}
}
