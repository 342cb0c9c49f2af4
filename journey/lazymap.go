package journey

import (
	"encoding/json"
	"reflect"
	"strconv"
	"unicode/utf8"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"

	"github.com/nudge-dev/nudge/profile"
)

// lazyMap is a map of JSON values as a CEL map that decodes only the
// members an expression reads: a condition such as
// event.properties.price > 50 decodes the price, not the whole object.
// Everything but a lookup by key (size, iteration, equality, conversion)
// decodes the whole map once.
//
// Its source is a raw JSON object (anything that is not a JSON object is
// the empty map), or a profile's traits. The raw fields of events are valid
// JSON (ingest checks them); a lookup checks the object's structure and
// the value it decodes, not the rest.
type lazyMap struct {
	raw      json.RawMessage
	traits   map[string]profile.Timed
	isTraits bool
	bad      bool // raw is not a JSON object
	full     traits.Mapper
	read     [2]member // the first members looked up, found or not
	more     []member  // and the others
	nread    int
}

type member struct {
	key   string
	val   ref.Val
	found bool
}

var _ traits.Mapper = (*lazyMap)(nil)

// find returns the JSON of the member key.
func (m *lazyMap) find(key string) (json.RawMessage, bool) {
	if m.isTraits {
		t, ok := m.traits[key]
		return t.Value, ok
	}
	if m.bad {
		return nil, false
	}
	val, found, ok := lookupMember(m.raw, key)
	if !ok {
		m.bad = true
		return nil, false
	}
	return val, found
}

// decode decodes every member.
func (m *lazyMap) decode() map[string]any {
	if !m.isTraits {
		if m.bad {
			return emptyObject
		}
		return decodeObject(m.raw)
	}
	out := make(map[string]any, len(m.traits))
	for k, t := range m.traits {
		var v any
		if json.Unmarshal(t.Value, &v) == nil {
			out[k] = v
		}
	}
	return out
}

func (m *lazyMap) all() traits.Mapper {
	if m.full == nil {
		m.full = types.NewStringInterfaceMap(celAdapter, m.decode())
	}
	return m.full
}

func (m *lazyMap) Find(key ref.Val) (ref.Val, bool) {
	k, ok := key.(types.String)
	if !ok || m.full != nil {
		return m.all().Find(key)
	}
	for i := 0; i < m.nread; i++ {
		var r *member
		if i < len(m.read) {
			r = &m.read[i]
		} else {
			r = &m.more[i-len(m.read)]
		}
		if r.key == string(k) {
			return r.val, r.found
		}
	}
	r := member{key: string(k)}
	if raw, found := m.find(r.key); found {
		r.val, r.found = jsonValue(raw)
	}
	if m.nread < len(m.read) {
		m.read[m.nread] = r
	} else {
		m.more = append(m.more, r)
	}
	m.nread++
	return r.val, r.found
}

// jsonValue decodes one JSON value as a CEL value.
func jsonValue(raw json.RawMessage) (ref.Val, bool) {
	if len(raw) > 0 && (raw[0] == '-' || '0' <= raw[0] && raw[0] <= '9') {
		if f, err := strconv.ParseFloat(string(raw), 64); err == nil {
			return types.Double(f), true
		}
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return nil, false
	}
	return celAdapter.NativeToValue(v), true
}

func (m *lazyMap) Get(key ref.Val) ref.Val {
	v, found := m.Find(key)
	if !found {
		return types.ValOrErr(v, "no such key: %v", key)
	}
	return v
}

func (m *lazyMap) Contains(key ref.Val) ref.Val {
	_, found := m.Find(key)
	return types.Bool(found)
}

func (m *lazyMap) Iterator() traits.Iterator                   { return m.all().Iterator() }
func (m *lazyMap) Size() ref.Val                               { return m.all().Size() }
func (m *lazyMap) Equal(o ref.Val) ref.Val                     { return m.all().Equal(o) }
func (m *lazyMap) Type() ref.Type                              { return types.MapType }
func (m *lazyMap) Value() any                                  { return m.all().Value() }
func (m *lazyMap) ConvertToType(t ref.Type) ref.Val            { return m.all().ConvertToType(t) }
func (m *lazyMap) ConvertToNative(t reflect.Type) (any, error) { return m.all().ConvertToNative(t) }

// isEmpty reports whether the map has no member.
func (m *lazyMap) isEmpty() bool {
	if m.isTraits {
		return len(m.traits) == 0
	}
	return m.all().Size() == types.IntZero
}

// A small reader of JSON objects: it finds a member without decoding the
// others.

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the end of the string that starts at b[i] == '"'
// (-1 when it does not end), and whether it holds escapes.
func skipString(b []byte, i int) (int, bool) {
	esc := false
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			esc = true
			i++
		case '"':
			return i + 1, esc
		}
	}
	return -1, esc
}

// skipValue returns the end of the value that starts at b[i], or -1.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		end, _ := skipString(b, i)
		return end
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				end, _ := skipString(b, i)
				if end < 0 {
					return -1
				}
				i = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return -1
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
		j++
	}
	if j == i {
		return -1
	}
	return j
}

// lookupMember returns the value of the member named key of the JSON
// object obj, the last one when the name repeats (as encoding/json decodes
// it), and whether it found it; ok is false when obj is not an object.
func lookupMember(obj []byte, key string) (val json.RawMessage, found, ok bool) {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return nil, false, false
	}
	if i = skipSpace(obj, i+1); i < len(obj) && obj[i] == '}' {
		return nil, false, skipSpace(obj, i+1) == len(obj)
	}
	for {
		if i >= len(obj) || obj[i] != '"' {
			return nil, false, false
		}
		end, esc := skipString(obj, i)
		if end < 0 {
			return nil, false, false
		}
		name := obj[i+1 : end-1]
		match := string(name) == key
		if esc || !utf8.Valid(name) { // decode it as encoding/json does
			var s string
			match = json.Unmarshal(obj[i:end], &s) == nil && s == key
		}
		if i = skipSpace(obj, end); i >= len(obj) || obj[i] != ':' {
			return nil, false, false
		}
		i = skipSpace(obj, i+1)
		vend := skipValue(obj, i)
		if vend < 0 {
			return nil, false, false
		}
		if match {
			val, found = obj[i:vend:vend], true
		}
		if i = skipSpace(obj, vend); i >= len(obj) {
			return nil, false, false
		}
		switch obj[i] {
		case ',':
			i = skipSpace(obj, i+1)
		case '}':
			if skipSpace(obj, i+1) != len(obj) {
				return nil, false, false
			}
			return val, found, true
		default:
			return nil, false, false
		}
	}
}
