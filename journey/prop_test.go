package journey

import (
	"encoding/json"
	"testing"

	"github.com/nudge-dev/nudge"
)

func TestPropOf(t *testing.T) {
	for _, raw := range []string{
		`{"cart_id":"c1","total":90}`,
		` { "a" : { "cart_id" : "no" } , "cart_id" : 42.5 } `,
		`{"cart_\u0069d":"esc","b":[1,{"x":"}"},"]"]}`,
		`{"b":"\"cart_id\":1","cart_id":null}`,
		`{"cart_id":"first","cart_id":"last"}`,
		`{}`, `[]`, `"x"`, ``, `{"cart_id":}`, `{"a":1,}`, `{"a" 1}`, `{"cart_id":tru`,
	} {
		got := propOf(&nudge.Event{Properties: []byte(raw)}, "cart_id")
		var m map[string]json.RawMessage
		want := ""
		if json.Unmarshal([]byte(raw), &m) == nil {
			want = rawText(m["cart_id"])
		}
		if got != want {
			t.Errorf("%s: %q, want %q", raw, got, want)
		}
	}
}

// FuzzPropOf compares propOf with encoding/json on valid objects.
func FuzzPropOf(f *testing.F) {
	f.Add([]byte(`{"cart_id":"c1","x":{"cart_id":2}}`), "cart_id")
	f.Add([]byte(`{"a\"b":[1,2,{"c":"d"}],"e":true}`), "e")
	f.Fuzz(func(t *testing.T, raw []byte, key string) {
		var m map[string]json.RawMessage
		if json.Unmarshal(raw, &m) != nil || m == nil {
			return
		}
		if key == "" {
			return
		}
		if got, want := propOf(&nudge.Event{Properties: raw}, key), rawText(m[key]); got != want {
			t.Fatalf("%s [%q]: %q, want %q", raw, key, got, want)
		}
	})
}
