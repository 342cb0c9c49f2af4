package profile

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"math"
	"slices"
	"strings"
	"time"
)

// Cart is a person's current cart, built from the events of the Segment
// e-commerce spec v2 so that it does not depend on their order:
//
//   - Product Added puts the product (keyed by product_id, else sku) in the
//     cart; Product Removed takes it out. Each item keeps only its latest
//     operation by event time: a later add replaces an earlier one (its
//     quantity is the latest event's, not a sum), and an add older than the
//     item's latest removal is ignored.
//   - Cart Viewed (properties.products: the whole cart at that time) and
//     Order Completed (which empties it) are barriers: every operation older
//     than the latest barrier is gone, and the products of a Cart Viewed
//     count as adds at its time. So a Product Added that arrives late, after
//     the Order Completed that followed it, does not come back, while an add
//     after the order stays.
//   - Removal needs the same key as the add: a product added with a
//     product_id is removed by that product_id, not by its sku.
//
// Events at the same instant are ordered by messageId (the same order
// everywhere, arbitrary in meaning): a Product Added and an Order Completed
// at the same time keep the product iff the add's messageId sorts after the
// order's; the same goes for an add and a removal. A Cart Viewed's own
// products are at its time and stay. Two operations at the same time and
// messageId (a product listed twice in one Cart Viewed, or events that
// reuse a messageId) are ordered by content: a removal wins, then the
// larger fields.
//
// The zero Cart is empty. It holds at most MaxCartItems entries, removal
// markers included: past it, the entries of the oldest operations are
// forgotten.
type Cart struct {
	entries    []cartEntry // sorted by ID, nil when empty
	cleared    version     // the latest barrier, when hasCleared
	hasCleared bool
}

// CartItem is a product in the cart.
type CartItem struct {
	ID        string  `json:"id"` // product_id, else sku
	ProductID string  `json:"productId,omitempty"`
	SKU       string  `json:"sku,omitempty"`
	Name      string  `json:"name,omitempty"`
	Price     float64 `json:"price"`    // 0 when not given
	Quantity  int64   `json:"quantity"` // integer part, 1 when not given or below 1
	// Properties holds the product's other properties (url, image_url,
	// category, brand...) as a compact JSON object, nil when none (or when
	// over MaxValueBytes).
	Properties json.RawMessage `json:"properties,omitempty"`
	AddedAt    time.Time       `json:"addedAt"`   // the adding event's time (Product Added or Cart Viewed)
	MessageID  string          `json:"messageId"` // the adding event
}

// cartEntry is the latest operation on one item: an add (the item) or a
// removal (removed, with only ID, and AddedAt and MessageID the removal's
// event).
type cartEntry struct {
	CartItem
	removed bool
}

func (e *cartEntry) version() version { return version{e.AddedAt, e.MessageID} }

// cmpEntry orders two operations on one item: by event, then a removal
// above an add, then by content.
func cmpEntry(a, b *cartEntry) int {
	if c := a.version().cmp(b.version()); c != 0 {
		return c
	}
	if c := boolCmp(a.removed, b.removed); c != 0 {
		return c
	}
	return cmp.Or(
		strings.Compare(a.ProductID, b.ProductID),
		strings.Compare(a.SKU, b.SKU),
		strings.Compare(a.Name, b.Name),
		cmp.Compare(math.Float64bits(a.Price), math.Float64bits(b.Price)),
		cmp.Compare(a.Quantity, b.Quantity),
		bytes.Compare(a.Properties, b.Properties),
	)
}

// Items returns the products in the cart, by the time they were added,
// then by ID. The slice is the caller's; Properties are shared with c.
func (c *Cart) Items() []CartItem {
	var items []CartItem
	for i := range c.entries {
		if !c.entries[i].removed {
			items = append(items, c.entries[i].CartItem)
		}
	}
	slices.SortFunc(items, func(a, b CartItem) int {
		return cmp.Or(a.AddedAt.Compare(b.AddedAt), strings.Compare(a.ID, b.ID))
	})
	return items
}

// Cleared returns the time and messageId of the latest Cart Viewed or Order
// Completed; ok is false when there was none.
func (c *Cart) Cleared() (at time.Time, messageID string, ok bool) {
	return c.cleared.at, c.cleared.by, c.hasCleared
}

// put records the operation e of the event v.
func (c *Cart) put(e cartEntry, v version) {
	e.AddedAt, e.MessageID = v.at, v.by
	c.putEntry(e)
}

func (c *Cart) putEntry(e cartEntry) {
	if c.hasCleared && e.version().cmp(c.cleared) < 0 {
		return
	}
	i, found := slices.BinarySearchFunc(c.entries, e.ID, func(x cartEntry, id string) int {
		return strings.Compare(x.ID, id)
	})
	if !found {
		c.entries = slices.Insert(c.entries, i, e)
		return
	}
	if cmpEntry(&e, &c.entries[i]) > 0 {
		c.entries[i] = e
	}
}

// clear records a barrier at v, dropping the operations before it.
func (c *Cart) clear(v version) {
	if c.hasCleared && v.cmp(c.cleared) <= 0 {
		return
	}
	c.cleared, c.hasCleared = v, true
	c.entries = slices.DeleteFunc(c.entries, func(e cartEntry) bool {
		return e.version().cmp(v) < 0
	})
	if len(c.entries) == 0 {
		c.entries = nil
	}
}

// putSnapshot adds the products of a Cart Viewed at v, its first
// MaxCartItems.
func (c *Cart) putSnapshot(products []byte, v version, d *Dropped) {
	a, ok := elements(products)
	if !ok {
		return
	}
	n := 0
	for el, ok := a.next(); ok; el, ok = a.next() {
		it, ok := itemOf(el, true, d)
		if !ok {
			continue
		}
		if n++; n > MaxCartItems {
			d.Values++
			continue
		}
		c.put(cartEntry{CartItem: it}, v)
	}
}

func (c *Cart) merge(o *Cart) {
	if o.hasCleared {
		c.clear(o.cleared)
	}
	for _, e := range o.entries {
		c.putEntry(e)
	}
}

// bound keeps the MaxCartItems entries of the latest operations (see trim
// for why this commutes with merging; a barrier drops the oldest entries
// too, so the two agree).
func (c *Cart) bound() {
	if len(c.entries) <= MaxCartItems {
		return
	}
	rank := func(a, b cartEntry) int { // first the latest operation, then the smallest ID
		return cmp.Or(cmpEntry(&b, &a), strings.Compare(a.ID, b.ID))
	}
	if len(c.entries) == MaxCartItems+1 { // as after an add: one out, no sort
		last := 0
		for i := range c.entries {
			if rank(c.entries[i], c.entries[last]) > 0 {
				last = i
			}
		}
		c.entries = slices.Delete(c.entries, last, last+1)
		return
	}
	slices.SortFunc(c.entries, rank)
	clear(c.entries[MaxCartItems:])
	c.entries = c.entries[:MaxCartItems]
	slices.SortFunc(c.entries, func(a, b cartEntry) int { return strings.Compare(a.ID, b.ID) })
}

// itemOf reads a product object of the e-commerce spec (the properties of a
// Product Added, an element of a Cart Viewed's products). ok is false when
// it is not a well-formed object, or has no usable product_id or sku. With
// props, the members other than the ones CartItem has fields for are kept
// in Properties.
func itemOf(b []byte, props bool, d *Dropped) (CartItem, bool) {
	m, ok := members(b)
	if !ok {
		return CartItem{}, false
	}
	var pid, sku, name, price, qty []byte
	var ext []byte
	for k, val, ok := m.next(); ok; k, val, ok = m.next() {
		key := k.raw()
		if k.esc {
			u, _ := k.string()
			key = []byte(u)
		}
		switch string(key) {
		case "product_id":
			pid = val
		case "sku":
			sku = val
		case "name":
			name = val
		case "price":
			price = val
		case "quantity":
			qty = val
		default:
			if !props {
				continue
			}
			if ext == nil {
				ext = append(make([]byte, 0, len(b)), '{')
			} else {
				ext = append(ext, ',')
			}
			ext = append(append(ext, k.q...), ':')
			ext = compactAppend(ext, val)
		}
	}
	if m.bad {
		return CartItem{}, false
	}
	var it CartItem
	it.ProductID, _ = idOf(pid)
	it.SKU, _ = idOf(sku)
	it.ID = cmp.Or(it.ProductID, it.SKU)
	if it.ID == "" {
		return CartItem{}, false
	}
	if len(it.ProductID) > MaxKeyBytes || len(it.SKU) > MaxKeyBytes {
		d.Values++
		return CartItem{}, false
	}
	if it.Name, _ = str(name); len(it.Name) > MaxKeyBytes {
		d.Values++
		it.Name = ""
	}
	it.Price, _ = num(price)
	it.Quantity = quantityOf(qty)
	if ext != nil {
		if ext = append(ext, '}'); len(ext) > MaxValueBytes {
			d.Values++
		} else {
			it.Properties = ext
		}
	}
	return it, true
}

// removedID reads the key of the item a Product Removed takes out.
func removedID(props []byte, d *Dropped) (string, bool) {
	var f [2][]byte
	lookup(props, idKeys[:], f[:])
	pid, _ := idOf(f[0])
	sku, _ := idOf(f[1])
	if len(pid) > MaxKeyBytes || len(sku) > MaxKeyBytes {
		d.Values++
		return "", false
	}
	id := cmp.Or(pid, sku)
	return id, id != ""
}

var idKeys = [...]string{"product_id", "sku"}

// idOf reads an identifier: a non-empty string, or a number as written.
func idOf(v []byte) (string, bool) {
	if len(v) > 0 && (v[0] == '-' || '0' <= v[0] && v[0] <= '9') {
		return string(v), true
	}
	s, ok := str(v)
	return s, ok && s != ""
}

// cartJSON is the JSON form of a Cart: the items in it, the removal
// markers that still matter, and the latest barrier.
type cartJSON struct {
	Items   []CartItem     `json:"items"`
	Removed []cartRemoval  `json:"removed,omitempty"`
	Cleared *cartClearance `json:"cleared,omitempty"`
}

type cartRemoval struct {
	ID        string    `json:"id"`
	At        time.Time `json:"at"`
	MessageID string    `json:"messageId"`
}

type cartClearance struct {
	At        time.Time `json:"at"`
	MessageID string    `json:"messageId"`
}

// MarshalJSON encodes c as {"items": [...], "removed": [...], "cleared":
// {"at": ..., "messageId": ...}}: items as Items returns them, removal
// markers by ID, cleared only when the cart was.
func (c Cart) MarshalJSON() ([]byte, error) {
	j := cartJSON{Items: c.Items()}
	if j.Items == nil {
		j.Items = []CartItem{}
	}
	for _, e := range c.entries {
		if e.removed {
			j.Removed = append(j.Removed, cartRemoval{e.ID, e.AddedAt, e.MessageID})
		}
	}
	if c.hasCleared {
		j.Cleared = &cartClearance{c.cleared.at, c.cleared.by}
	}
	return json.Marshal(j)
}

// UnmarshalJSON decodes what MarshalJSON encodes.
func (c *Cart) UnmarshalJSON(b []byte) error {
	var j cartJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*c = Cart{}
	if j.Cleared != nil {
		c.clear(version{j.Cleared.At.UTC(), j.Cleared.MessageID})
	}
	for _, it := range j.Items {
		it.AddedAt = it.AddedAt.UTC()
		if len(it.Properties) == 0 {
			it.Properties = nil
		}
		c.putEntry(cartEntry{CartItem: it})
	}
	for _, r := range j.Removed {
		c.putEntry(cartEntry{CartItem: CartItem{ID: r.ID, AddedAt: r.At.UTC(), MessageID: r.MessageID}, removed: true})
	}
	return nil
}

// encode writes c (the cart part of the format described at formatV1): a
// cleared byte and its event; the number of entries; per entry its ID, its
// event and a removed byte, and for an add the product id, sku, name, price
// (8 bytes, IEEE 754), quantity and properties.
func (c *Cart) encode(w *encoder) {
	w.bool(c.hasCleared)
	if c.hasCleared {
		w.version(c.cleared)
	}
	w.uvarint(uint64(len(c.entries)))
	for i := range c.entries {
		e := &c.entries[i]
		w.str(e.ID)
		w.version(e.version())
		w.bool(e.removed)
		if e.removed {
			continue
		}
		w.str(e.ProductID)
		w.str(e.SKU)
		w.str(e.Name)
		w.b = binary.LittleEndian.AppendUint64(w.b, math.Float64bits(e.Price))
		w.varint(e.Quantity)
		w.bytes(e.Properties)
	}
}

func (c *Cart) decode(r *decoder) {
	*c = Cart{}
	if r.byte() != 0 {
		c.cleared, c.hasCleared = r.version(), true
	}
	n := r.count(3)
	if n == 0 {
		return
	}
	c.entries = make([]cartEntry, n)
	for i := range c.entries {
		e := &c.entries[i]
		e.ID = r.str()
		v := r.version()
		e.AddedAt, e.MessageID = v.at, v.by
		e.removed = r.byte() != 0
		if i > 0 && c.entries[i-1].ID >= e.ID {
			r.bad = true // not sorted: not ours
		}
		if r.bad {
			return
		}
		if e.removed {
			continue
		}
		e.ProductID = r.str()
		e.SKU = r.str()
		e.Name = r.str()
		if len(r.b)-r.i < 8 {
			r.bad = true
			return
		}
		e.Price = math.Float64frombits(binary.LittleEndian.Uint64(r.b[r.i:]))
		r.i += 8
		e.Quantity = r.varint()
		e.Properties = r.bytes()
	}
}
