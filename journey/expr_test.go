package journey

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nudge-dev/nudge"
	"github.com/nudge-dev/nudge/internal/cputime"
)

func TestConditionCompileErrors(t *testing.T) {
	for _, tc := range []struct {
		src   string
		scope Scope
		want  string // the start of the error
	}{
		{`event.properties.price >`, ScopeEvent, `1:25: Syntax error: mismatched input '<EOF>'`},
		{`event.propertes.price > 1`, ScopeEvent, `1:6: undefined field 'propertes' (did you mean properties?)`},
		{`profile.order == 3`, ScopeEvent, `1:8: undefined field 'order' (did you mean orders?)`},
		{`profile.cart[0].prise > 1.0`, ScopeEvent, `1:16: undefined field 'prise' (did you mean price?)`},
		{`trigger.properties.cart_id == "x"`, ScopeEvent, `1:1: undeclared reference to 'trigger' (trigger exists only inside a run`},
		{`customer.plan == "pro"`, ScopeRun, `1:1: undeclared reference to 'customer'`},
		{`profile.revenue == 500`, ScopeEvent, `1:17: found no matching overload for '_==_' applied to '(double, int)' (write the number as a double, e.g. 500.0)`},
		{`profile.orders == 3.0`, ScopeEvent, `1:16: found no matching overload for '_==_' applied to '(int, double)' (write the number as an int, e.g. 3)`},
		{`profile.orders + 1`, ScopeEvent, `a condition must be a bool, and this one's value is of type int`},
		{`event.event`, ScopeEvent, `a condition must be a bool, and this one's value is of type string`},
		{`   `, ScopeEvent, `the expression is empty`},
	} {
		_, err := NewCondition(tc.src, tc.scope)
		if err == nil {
			t.Errorf("%s: compiled", tc.src)
			continue
		}
		if !strings.HasPrefix(err.Error(), tc.want) && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n got %v\nwant %s", tc.src, err, tc.want)
		}
		var xe *ExprError
		if !errors.As(err, &xe) {
			t.Errorf("%s: %T is not an *ExprError", tc.src, err)
		}
	}
}

func TestConditionEval(t *testing.T) {
	ordered := state(
		identify(`{"first_name":"Ada","plan":"pro","age":36,"trial_ends_at":"2025-03-10T00:00:00Z"}`, -48*time.Hour),
		track("Order Completed", `{"revenue":320.5}`, -24*time.Hour),
		track("Order Completed", `{"revenue":250}`, -12*time.Hour),
		track("Product Added", `{"product_id":"p1","sku":"S-1","name":"Trail shoe","price":120,"quantity":2,"category":"shoes"}`, -time.Hour),
		track("Product Added", `{"product_id":"p2","name":"Socks","price":9.5}`, -time.Hour+time.Minute),
		&nudge.Event{Type: nudge.Track, Event: "Subscribed", MessageID: "sub1", UserID: "u1",
			Properties: json.RawMessage(`{"channel":"sms"}`),
			Context:    json.RawMessage(`{"timezone":"Europe/Paris","consent":{"categoryPreferences":{"marketing":true,"ads":false}}}`),
			Timestamp:  t0.Add(-30 * time.Minute)},
	)
	fresh := state(identify(`{"first_name":"Bo"}`, -time.Hour))
	viewed := track("Product Viewed", `{"price":79.9,"category":"shoes","tags":["sale","new"],"quantity":2}`, 0)
	page := &nudge.Event{Type: nudge.Page, Name: "Pricing", MessageID: "p1", AnonymousID: "a1", Timestamp: t0,
		Context: json.RawMessage(`{"page":{"path":"/pricing"},"locale":"fr-FR"}`)}
	checkout := track("Checkout Started", `{"cart_id":"c1","total":129.5}`, -2*time.Hour)
	orderSame := track("Order Completed", `{"cart_id":"c1"}`, 0)
	orderOther := track("Order Completed", `{"cart_id":"c2"}`, 0)

	for _, tc := range []struct {
		src     string
		scope   Scope
		vars    Vars
		want    bool
		wantErr string
	}{
		// The benchmark's condition, on both profiles.
		{src: `event.properties.price > 50 && profile.counts["Order Completed"] == 0`, vars: NewVars(viewed, fresh), want: true},
		{src: `event.properties.price > 50 && profile.counts["Order Completed"] == 0`, vars: NewVars(viewed, ordered), want: false},
		// Events.
		{src: `event.type == "track" && event.event == "Product Viewed"`, vars: NewVars(viewed, nil), want: true},
		{src: `event.properties.category == "shoes" && event.properties.quantity == 2`, vars: NewVars(viewed, nil), want: true},
		{src: `"sale" in event.properties.tags`, vars: NewVars(viewed, nil), want: true},
		{src: `has(event.properties.price) && !has(event.properties.discount)`, vars: NewVars(viewed, nil), want: true},
		{src: `event.properties.?discount.orValue(0) == 0`, vars: NewVars(viewed, nil), want: true},
		{src: `event.timestamp == timestamp("2025-03-01T10:00:00Z")`, vars: NewVars(viewed, nil), want: true},
		{src: `event.timestamp.getHours("Europe/Paris") == 11`, vars: NewVars(viewed, nil), want: true},
		{src: `event.userId == "u1" && event.anonymousId == ""`, vars: NewVars(viewed, nil), want: true},
		{src: `event.type == "page" && event.name == "Pricing" && event.context.page.path == "/pricing"`, vars: NewVars(page, nil), want: true},
		{src: `event.context.locale.startsWith("fr")`, vars: NewVars(page, nil), want: true},
		{src: `event.properties.size() == 0 && event.traits.size() == 0`, vars: NewVars(page, nil), want: true},
		{src: `event.properties.discount > 0`, vars: NewVars(viewed, nil), wantErr: "no such key: discount"},
		{src: `event.properties.category > 1`, vars: NewVars(viewed, nil), wantErr: "no such overload"},
		{src: `event.properties.price > 1`, vars: Vars{}, wantErr: "no such attribute"},
		// Profiles.
		{src: `profile.orders == 2 && profile.counts["Order Completed"] == 2`, vars: NewVars(viewed, ordered), want: true},
		{src: `profile.revenue > 500`, vars: NewVars(viewed, ordered), want: true},
		{src: `profile.revenue == 570.5`, vars: NewVars(viewed, ordered), want: true},
		{src: `profile.revenue > 500`, vars: NewVars(viewed, fresh), want: false},
		{src: `profile.counts["Never Happened"] == 0 && !("Never Happened" in profile.counts)`, vars: NewVars(viewed, ordered), want: true},
		{src: `profile.traits.first_name == "Ada" && profile.traits.age >= 18`, vars: NewVars(viewed, ordered), want: true},
		{src: `timestamp(profile.traits.trial_ends_at) - event.timestamp < duration("240h")`, vars: NewVars(viewed, ordered), want: true},
		{src: `profile.cart.size() == 2`, vars: NewVars(viewed, ordered), want: true},
		{src: `profile.cart[0].product_id == "p1" && profile.cart[0].sku == "S-1" && profile.cart[0].name == "Trail shoe"`, vars: NewVars(viewed, ordered), want: true},
		{src: `profile.cart[0].price == 120.0 && profile.cart[0].quantity == 2 && profile.cart[1].quantity == 1`, vars: NewVars(viewed, ordered), want: true},
		{src: `profile.cart[0].properties.category == "shoes"`, vars: NewVars(viewed, ordered), want: true},
		{src: `profile.cart.exists(i, i.price * double(i.quantity) > 200.0)`, vars: NewVars(viewed, ordered), want: true},
		{src: `profile.cart.map(i, i.name).join(", ") == "Trail shoe, Socks"`, vars: NewVars(viewed, ordered), want: true},
		{src: `profile.cart.exists(i, i.name == "Socks")`, vars: NewVars(viewed, ordered), want: true},
		{src: `profile.cart.size() == 0`, vars: NewVars(viewed, fresh), want: true},
		{src: `profile.timezone == "Europe/Paris"`, vars: NewVars(viewed, ordered), want: true},
		{src: `profile.consent.marketing && !profile.consent.ads`, vars: NewVars(viewed, ordered), want: true},
		{src: `profile.subscriptions.sms`, vars: NewVars(viewed, ordered), want: true},
		{src: `profile.?subscriptions.email.orValue(false)`, vars: NewVars(viewed, ordered), want: false},
		{src: `profile.first_seen < profile.last_seen && profile.last_seen == timestamp("2025-03-01T09:30:00Z")`, vars: NewVars(viewed, ordered), want: true},
		{src: `profile.orders == 0 && profile.cart.size() == 0 && profile.traits.size() == 0`, vars: NewVars(viewed, nil), want: true},
		{src: `has(profile.traits.plan) && !has(profile.traits.nope)`, vars: NewVars(viewed, ordered), want: true},
		// Inside a run.
		{src: `event.properties.cart_id == trigger.properties.cart_id`, scope: ScopeRun, vars: NewVars(orderSame, ordered).WithTrigger(checkout), want: true},
		{src: `event.properties.cart_id == trigger.properties.cart_id`, scope: ScopeRun, vars: NewVars(orderOther, ordered).WithTrigger(checkout), want: false},
		{src: `trigger.properties.total > 100 && trigger.event == "Checkout Started"`, scope: ScopeRun, vars: NewVars(orderSame, ordered).WithTrigger(checkout), want: true},
		{src: `event.timestamp - trigger.timestamp == duration("2h")`, scope: ScopeRun, vars: NewVars(orderSame, nil).WithTrigger(checkout), want: true},
		{src: `trigger == event`, scope: ScopeRun, vars: NewVars(checkout, nil).WithTrigger(checkout), want: true},
		{src: `trigger == event`, scope: ScopeRun, vars: NewVars(orderSame, nil).WithTrigger(checkout), want: false},
		{src: `trigger.event == "x"`, scope: ScopeRun, vars: NewVars(orderSame, nil), wantErr: "no such attribute"},
		// Extensions: strings, math, lists.
		{src: `event.properties.category.upperAscii() == "SHOES"`, vars: NewVars(viewed, nil), want: true},
		{src: `math.greatest(event.properties.price, 100.0) == 100.0`, vars: NewVars(viewed, nil), want: true},
		{src: `true`, vars: Vars{}, want: true},
		{src: `nudge.Event{type: "track"}.type == "track"`, vars: NewVars(viewed, nil), wantErr: "nudge.Event cannot be built"},
		{src: `event.properties.price`, vars: NewVars(viewed, nil), wantErr: "not a bool"},
	} {
		c, err := NewCondition(tc.src, tc.scope)
		if err != nil {
			t.Errorf("%s: %v", tc.src, err)
			continue
		}
		got, err := c.Eval(tc.vars)
		switch {
		case tc.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || got {
				t.Errorf("%s = %v, %v; want false and an error with %q", tc.src, got, err, tc.wantErr)
			}
			var ee *EvalError
			if !errors.As(err, &ee) {
				t.Errorf("%s: %T is not an *EvalError", tc.src, err)
			}
		case err != nil:
			t.Errorf("%s: %v", tc.src, err)
		case got != tc.want:
			t.Errorf("%s = %v, want %v", tc.src, got, tc.want)
		}
	}
}

// TestEvalErrorPos: a condition from a file names its place when it fails.
func TestEvalErrorPos(t *testing.T) {
	j := mustParse(t, `id: x
trigger:
  event: Product Viewed
  if: event.properties.price > 10
steps:
  - {id: hi, send: {channel: log, content: {body: hi}}}
`)
	_, err := j.Trigger.Event.Match(NewVars(track("Product Viewed", `{}`, 0), nil))
	if err == nil || err.Error() != "test.yaml:4: trigger.if: no such key: price" {
		t.Errorf("err = %v", err)
	}
}

func TestEventFilter(t *testing.T) {
	c, err := NewCondition(`event.properties.total > 10`, ScopeEvent)
	if err != nil {
		t.Fatal(err)
	}
	page := &nudge.Event{Type: nudge.Page, Name: "Pricing"}
	screen := &nudge.Event{Type: nudge.Screen, Name: "Pricing"}
	ident := &nudge.Event{Type: nudge.Identify}
	big := track("Order Completed", `{"total":20}`, 0)
	small := track("Order Completed", `{"total":5}`, 0)
	for _, tc := range []struct {
		name string
		f    EventFilter
		e    *nudge.Event
		want bool
	}{
		{"any", EventFilter{}, ident, true},
		{"by name", EventFilter{Type: nudge.Track, Name: "Order Completed"}, big, true},
		{"other name", EventFilter{Type: nudge.Track, Name: "Signed Up"}, big, false},
		{"name without type", EventFilter{Name: "Order Completed"}, big, true},
		{"page name", EventFilter{Type: nudge.Page, Name: "Pricing"}, page, true},
		{"page is not screen", EventFilter{Type: nudge.Page, Name: "Pricing"}, screen, false},
		{"by type", EventFilter{Type: nudge.Identify}, ident, true},
		{"a track name does not match identify", EventFilter{Name: "Order Completed"}, ident, false},
		{"a name without type is a track name", EventFilter{Name: "Pricing"}, page, false},
		{"screen", EventFilter{Type: nudge.Screen, Name: "Pricing"}, screen, true},
		{"any page", EventFilter{Type: nudge.Page}, page, true},
		{"any page is not a screen", EventFilter{Type: nudge.Page}, screen, false},
		{"condition holds", EventFilter{Name: "Order Completed", If: c}, big, true},
		{"condition fails", EventFilter{Name: "Order Completed", If: c}, small, false},
	} {
		got, err := tc.f.Match(NewVars(tc.e, nil))
		if err != nil || got != tc.want {
			t.Errorf("%s: Match = %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
	if ok, err := (&EventFilter{}).Match(Vars{}); ok || err != nil {
		t.Errorf("no event: %v, %v", ok, err)
	}
}

func TestExprEval(t *testing.T) {
	s := state(
		identify(`{"tags":["a","b"],"address":{"city":"Lyon"}}`, 0),
		track("Product Added", `{"product_id":"p1","name":"Shoe","price":80,"quantity":1}`, 0),
	)
	e := track("Checkout Started", `{"cart_id":"c9","n":3}`, time.Hour)
	for _, tc := range []struct {
		src  string
		want any
	}{
		{`event.properties.cart_id`, "c9"},
		{`event.properties.n`, 3.0},
		{`int(event.properties.n) * 2`, int64(6)},
		{`uint(1)`, uint64(1)},
		{`event.properties.n > 1`, true},
		{`null`, nil},
		{`b"hi"`, []byte("hi")},
		{`event.timestamp`, t0.Add(time.Hour)},
		{`duration("90m")`, 90 * time.Minute},
		{`profile.traits.tags`, []any{"a", "b"}},
		{`profile.traits.address`, map[string]any{"city": "Lyon"}},
		{`{1: "one"}`, map[string]any{"1": "one"}},
		{`event.properties.?missing`, nil},
		{`event.properties.?cart_id`, "c9"},
		{`profile.cart.map(i, i.name)`, []any{"Shoe"}},
		{`profile.counts`, map[string]any{"identify": int64(1), "Product Added": int64(1)}},
		{`string(event.timestamp)`, "2025-03-01T11:00:00Z"},
	} {
		x, err := NewExpr(tc.src, ScopeEvent)
		if err != nil {
			t.Errorf("%s: %v", tc.src, err)
			continue
		}
		got, err := x.Eval(NewVars(e, s))
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s = %#v, %v; want %#v", tc.src, got, err, tc.want)
		}
	}

	// Objects become maps of their fields.
	x, _ := NewExpr(`profile.cart[0]`, ScopeEvent)
	got, err := x.Eval(NewVars(e, s))
	item, ok := got.(map[string]any)
	if err != nil || !ok || item["name"] != "Shoe" || item["price"] != 80.0 || item["quantity"] != int64(1) {
		t.Errorf("cart item = %#v, %v", got, err)
	}
	x, _ = NewExpr(`event`, ScopeEvent)
	got, err = x.Eval(NewVars(e, s))
	ev, ok := got.(map[string]any)
	if err != nil || !ok || ev["event"] != "Checkout Started" || !reflect.DeepEqual(ev["properties"], map[string]any{"cart_id": "c9", "n": 3.0}) {
		t.Errorf("event = %#v, %v", got, err)
	}
	x, _ = NewExpr(`event.properties.nope`, ScopeEvent)
	if _, err := x.Eval(NewVars(e, s)); err == nil {
		t.Error("no error for a missing key")
	}
}

// TestVarsDecodeOnce: copies of a Vars share what it decoded; a new Vars
// sees the profile as it is now.
func TestVarsDecodeOnce(t *testing.T) {
	s := state(track("Order Completed", `{"revenue":10}`, 0))
	e := track("Order Completed", `{"revenue":10}`, time.Hour)
	v := NewVars(e, s)
	c, _ := NewCondition(`profile.counts["Order Completed"] == 1`, ScopeRun)
	if ok, err := c.Eval(v.WithTrigger(e)); !ok || err != nil {
		t.Fatalf("%v %v", ok, err)
	}
	if v.Event() != e || (Vars{}).Event() != nil {
		t.Error("Event()")
	}
	if v.a.profile.built&2 == 0 {
		t.Error("WithTrigger did not share the decoded profile")
	}
	s.Apply(e)
	if ok, _ := c.Eval(NewVars(e, s)); ok {
		t.Error("a new Vars does not see the changed profile")
	}
}

// TestConditionConcurrent evaluates one condition from several goroutines,
// each with its own Vars over a shared event and profile (run with -race).
func TestConditionConcurrent(t *testing.T) {
	c, err := NewCondition(`event.properties.price > 50 && profile.cart.size() == 1`, ScopeEvent)
	if err != nil {
		t.Fatal(err)
	}
	s := state(track("Product Added", `{"product_id":"p1","price":80}`, 0))
	done := make(chan error)
	for range 4 {
		e := track("Product Viewed", `{"price":79.9}`, 0)
		go func() {
			for range 200 {
				if ok, err := c.Eval(NewVars(e, s)); !ok || err != nil {
					done <- errors.Join(err, errors.New("false"))
					return
				}
			}
			done <- nil
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// BenchmarkCondition measures the typical trigger condition: Eval alone
// (the event and profile already decoded, as when several journeys look at
// one event), and with building the Vars (decoding the event's properties
// and the profile's counts).
func BenchmarkCondition(b *testing.B) {
	s := state(
		identify(`{"first_name":"Ada","plan":"pro"}`, -time.Hour),
		track("Product Added", `{"product_id":"p1","name":"Trail shoe","price":120,"quantity":1}`, -time.Minute),
	)
	e := track("Product Viewed", `{"product_id":"p2","name":"Running shoe","price":79.9,"category":"shoes","brand":"Acme","url":"https://shop.example.com/p2"}`, 0)
	c, err := NewCondition(`event.properties.price > 50 && profile.counts["Order Completed"] == 0`, ScopeEvent)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("eval", func(b *testing.B) {
		v := NewVars(e, s)
		b.ReportAllocs()
		cpu := cputime.Start()
		for b.Loop() {
			if ok, err := c.Eval(v); !ok || err != nil {
				b.Fatal(ok, err)
			}
		}
		cpu.Report(b)
	})
	b.Run("vars+eval", func(b *testing.B) {
		b.ReportAllocs()
		cpu := cputime.Start()
		for b.Loop() {
			if ok, err := c.Eval(NewVars(e, s)); !ok || err != nil {
				b.Fatal(ok, err)
			}
		}
		cpu.Report(b)
	})
}
