package journey

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/google/cel-go/common/types"
)

func TestLookupMember(t *testing.T) {
	for _, tc := range []struct {
		obj, key    string
		val         string
		found, isOK bool
	}{
		{`{"a":1,"b":"x"}`, "b", `"x"`, true, true},
		{` { "a" : 1 , "b" : [1, {"c": "}"}] } `, "b", `[1, {"c": "}"}]`, true, true},
		{`{"a":{"b":2}}`, "b", ``, false, true},
		{`{"a":1,"a":2}`, "a", `2`, true, true},
		{`{"a\u0062":3}`, "ab", `3`, true, true},
		{`{"q\"":"\"}"}`, `q"`, `"\"}"`, true, true},
		{`{"n":null,"t":true,"f":-1.5e3}`, "f", `-1.5e3`, true, true},
		{`{}`, "a", ``, false, true},
		{`[]`, "a", ``, false, false},
		{``, "a", ``, false, false},
		{`{"a":1`, "a", ``, false, false},
		{`{"a"`, "a", ``, false, false},
		{`{"`, "a", ``, false, false},
		{`{"a":}`, "a", ``, false, false},
		{`{"a":"x}`, "a", ``, false, false},
		{`{"a":[1,2}`, "a", ``, false, false},
		{`{"a":1 "b":2}`, "a", ``, false, false},
		{`{"a":1} x`, "a", ``, false, false},
		{`{a:1}`, "a", ``, false, false},
	} {
		val, found, ok := lookupMember([]byte(tc.obj), tc.key)
		if string(val) != tc.val || found != tc.found || ok != tc.isOK {
			t.Errorf("lookupMember(%s, %q) = %s, %v, %v; want %s, %v, %v", tc.obj, tc.key, val, found, ok, tc.val, tc.found, tc.isOK)
		}
	}
}

// FuzzLookupMember: on a valid object, every member found is the member
// encoding/json decodes; on anything, no panic.
func FuzzLookupMember(f *testing.F) {
	for _, s := range []string{`{"a":1,"b":{"c":[1,"]"]},"a":"x"}`, `{"\u00e9":true}`, `{"a":1`, `{}`, `[1]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var m map[string]any
		valid := json.Unmarshal([]byte(s), &m) == nil && m != nil
		for k, want := range m {
			raw, found, ok := lookupMember([]byte(s), k)
			var got any
			if !found || !ok || json.Unmarshal(raw, &got) != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: member %q = %s (found %v, ok %v), want %v", s, k, raw, found, ok, want)
			}
		}
		if _, _, ok := lookupMember([]byte(s), "zz"); valid && !ok {
			t.Fatalf("%s: valid object read as malformed", s)
		}
	})
}

func TestLazyMap(t *testing.T) {
	m := &lazyMap{raw: json.RawMessage(`{"a":1,"b":"x","c":[true]}`)}
	if v, found := m.Find(types.String("a")); !found || v != types.Double(1) {
		t.Errorf("a = %v, %v", v, found)
	}
	if v, found := m.Find(types.String("a")); !found || v != types.Double(1) || m.nread != 1 {
		t.Errorf("a again = %v, %v (%d reads)", v, found, m.nread)
	}
	for _, k := range []string{"b", "c", "d"} {
		m.Find(types.String(k))
	}
	if m.nread != 4 || len(m.more) != 2 || m.full != nil {
		t.Errorf("%d reads, %d spilled, full %v", m.nread, len(m.more), m.full)
	}
	if m.Contains(types.String("d")) != types.False || m.Contains(types.String("c")) != types.True {
		t.Error("Contains")
	}
	if !types.IsError(m.Get(types.String("d"))) {
		t.Error("Get of a missing key")
	}
	if m.Size() != types.Int(3) || m.isEmpty() {
		t.Errorf("size %v", m.Size())
	}
	if v, found := m.Find(types.String("b")); !found || v != types.String("x") {
		t.Errorf("b after the full decode = %v, %v", v, found)
	}
	for _, raw := range []string{``, `[1]`, `{"a":`, `"x"`} {
		bad := &lazyMap{raw: json.RawMessage(raw)}
		if _, found := bad.Find(types.String("a")); found || bad.Size() != types.IntZero || !bad.isEmpty() {
			t.Errorf("%q is not the empty map", raw)
		}
	}
}
