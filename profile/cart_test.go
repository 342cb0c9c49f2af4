package profile

import (
	"fmt"
	"strings"
	"testing"

	"github.com/nudge-dev/nudge"
)

func added(id string, sec int, props string) *nudge.Event { return track(id, sec, ProductAdded, props) }
func removed(id string, sec int, props string) *nudge.Event {
	return track(id, sec, ProductRemoved, props)
}
func viewed(id string, sec int, products string) *nudge.Event {
	return track(id, sec, CartViewed, `{"products":[`+products+`]}`)
}
func ordered(id string, sec int) *nudge.Event {
	return track(id, sec, OrderCompleted, `{"revenue":10}`)
}

// cartOf describes the cart: "ID×quantity" per item, in Items order.
func cartOf(c *Cart) string {
	var parts []string
	for _, it := range c.Items() {
		parts = append(parts, fmt.Sprintf("%s×%d", it.ID, it.Quantity))
	}
	return strings.Join(parts, " ")
}

func TestCart(t *testing.T) {
	for _, c := range []struct {
		name   string
		events []*nudge.Event // the events in time order; every order must give want
		want   string
	}{
		{"add", []*nudge.Event{added("m1", 1, `{"sku":"A"}`)}, "A×1"},
		{"add two", []*nudge.Event{added("m1", 1, `{"sku":"B","quantity":2}`), added("m2", 2, `{"product_id":"A","sku":"X"}`)}, "B×2 A×1"},
		{"add, remove", []*nudge.Event{added("m1", 1, `{"sku":"A"}`), removed("m2", 2, `{"sku":"A"}`)}, ""},
		{"add, remove, add again", []*nudge.Event{added("m1", 1, `{"sku":"A"}`), removed("m2", 2, `{"sku":"A"}`), added("m3", 3, `{"sku":"A","quantity":3}`)}, "A×3"},
		{"a later add replaces, it does not sum", []*nudge.Event{added("m1", 1, `{"sku":"A","quantity":2}`), added("m2", 2, `{"sku":"A","quantity":5}`)}, "A×5"},
		{"remove by another key than the add does not remove", []*nudge.Event{added("m1", 1, `{"product_id":"P","sku":"A"}`), removed("m2", 2, `{"sku":"A"}`)}, "P×1"},
		{"remove by product_id", []*nudge.Event{added("m1", 1, `{"product_id":"P","sku":"A"}`), removed("m2", 2, `{"product_id":"P","sku":"A"}`)}, ""},
		{"numeric product_id", []*nudge.Event{added("m1", 1, `{"product_id":42}`), added("m2", 2, `{"product_id":"7"}`), removed("m3", 3, `{"product_id":"42"}`)}, "7×1"},
		{"no id: ignored", []*nudge.Event{added("m1", 1, `{"name":"mystery","product_id":"","sku":null}`)}, ""},
		{"Cart Viewed replaces the cart", []*nudge.Event{
			added("m1", 1, `{"sku":"A"}`), added("m2", 2, `{"sku":"B"}`),
			viewed("m3", 3, `{"sku":"B","quantity":4},{"sku":"C"}`),
		}, "B×4 C×1"},
		{"an add after a Cart Viewed stays", []*nudge.Event{
			added("m1", 1, `{"sku":"A"}`), viewed("m2", 2, `{"sku":"C"}`), added("m3", 3, `{"sku":"D"}`),
		}, "C×1 D×1"},
		{"a removal before a Cart Viewed does not remove its item", []*nudge.Event{
			removed("m1", 1, `{"sku":"C"}`), viewed("m2", 2, `{"sku":"C"}`),
		}, "C×1"},
		{"a removal after a Cart Viewed removes", []*nudge.Event{viewed("m1", 1, `{"sku":"C"},{"sku":"D"}`), removed("m2", 2, `{"sku":"C"}`)}, "D×1"},
		{"an empty Cart Viewed empties", []*nudge.Event{added("m1", 1, `{"sku":"A"}`), viewed("m2", 2, ``)}, ""},
		{"Order Completed clears", []*nudge.Event{added("m1", 1, `{"sku":"A"}`), added("m2", 2, `{"sku":"B"}`), ordered("m3", 3)}, ""},
		{"an add after the order stays", []*nudge.Event{added("m1", 1, `{"sku":"A"}`), ordered("m2", 2), added("m3", 3, `{"sku":"B"}`)}, "B×1"},
		{"the latest barrier counts", []*nudge.Event{
			viewed("m1", 1, `{"sku":"A"}`), added("m2", 2, `{"sku":"B"}`), ordered("m3", 3), added("m4", 4, `{"sku":"C"}`), viewed("m5", 5, `{"sku":"D"}`), added("m6", 6, `{"sku":"E"}`),
		}, "D×1 E×1"},
		{"same instant: the add's messageId sorts after the order's, it stays", []*nudge.Event{ordered("m1", 1), added("m2", 1, `{"sku":"A"}`)}, "A×1"},
		{"same instant: the add's messageId sorts before the order's, it goes", []*nudge.Event{added("m1", 1, `{"sku":"A"}`), ordered("m2", 1)}, ""},
		{"same instant: add and remove, by messageId", []*nudge.Event{removed("m1", 1, `{"sku":"A"}`), added("m2", 1, `{"sku":"A"}`), added("m3", 1, `{"sku":"B"}`), removed("m4", 1, `{"sku":"B"}`)}, "A×1"},
		{"a product listed twice in one Cart Viewed", []*nudge.Event{viewed("m1", 1, `{"sku":"A","quantity":1},{"sku":"A","quantity":2}`)}, "A×2"},
		{"items by added time", []*nudge.Event{viewed("m1", 1, `{"sku":"Z"},{"sku":"Y"}`), added("m2", 2, `{"sku":"A"}`), added("m3", 3, `{"sku":"Y"}`)}, "Z×1 A×1 Y×1"},
		{"bad products are skipped", []*nudge.Event{viewed("m1", 1, `{"sku":"A"},null,"B",[{"sku":"C"}],{"sku":{"x":1}},{"sku":"D","price":"x","quantity":-4}`)}, "A×1 D×1"},
		{"properties not an object", []*nudge.Event{added("m1", 1, `["sku","A"]`), removed("m2", 2, `"A"`), track("m3", 3, CartViewed, `{"products":{"sku":"A"}}`)}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			permutations(len(c.events), func(p []int) {
				s := new(State)
				for _, i := range p {
					s.Apply(c.events[i])
				}
				if got := cartOf(&s.Cart); got != c.want {
					t.Fatalf("order %v: cart %q, want %q\n%s", p, got, c.want, jsonOf(s))
				}
			})
		})
	}
}

// TestCartLateEvents is the cart's reason to be a CRDT: events that
// happened before an order, arriving after it, do not resurrect items.
func TestCartLateEvents(t *testing.T) {
	s := new(State)
	s.Apply(added("m3", 30, `{"sku":"B"}`))
	s.Apply(ordered("m2", 20))
	s.Apply(added("m1", 10, `{"sku":"A"}`))  // late: before the order
	s.Apply(removed("m0", 5, `{"sku":"B"}`)) // late: before B's add
	if got := cartOf(&s.Cart); got != "B×1" {
		t.Fatalf("cart %q, want B×1", got)
	}
	if len(s.Cart.entries) != 1 {
		t.Errorf("entries older than the order are kept: %+v", s.Cart.entries)
	}
	when, by, ok := s.Cart.Cleared()
	if !ok || by != "m2" || !when.Equal(at(20)) {
		t.Errorf("cleared %v %q %v", when, by, ok)
	}
}

func TestCartItemFields(t *testing.T) {
	s := applyAll(added("m1", 1, `{ "product_id" : "P1", "sku":"RUN-42", "name":"running shoes", "price":"89.90", "quantity":2.7,
		"category" : "Shoes", "url":"https://shop.example/p", "image_url":"https://shop.example/i.jpg", "variant":{"color": "blue"} }`))
	items := s.Cart.Items()
	if len(items) != 1 {
		t.Fatalf("items %+v", items)
	}
	it := items[0]
	if it.ID != "P1" || it.ProductID != "P1" || it.SKU != "RUN-42" || it.Name != "running shoes" || it.Price != 89.9 || it.Quantity != 2 ||
		!it.AddedAt.Equal(at(1)) || it.MessageID != "m1" {
		t.Errorf("item %+v", it)
	}
	if want := `{"category":"Shoes","url":"https://shop.example/p","image_url":"https://shop.example/i.jpg","variant":{"color":"blue"}}`; string(it.Properties) != want {
		t.Errorf("properties %s, want %s", it.Properties, want)
	}
}
