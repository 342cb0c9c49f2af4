package nudge

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

func sampleEvent() Event {
	ts := time.Date(2026, 11, 27, 7, 0, 0, 123456789, time.FixedZone("", 3600))
	return Event{
		Type: Track, MessageID: "m-1", Source: "web", UserID: "u\"1\\\n", AnonymousID: "a\u2028b\x01",
		Event: "Product <Added> & more", Properties: json.RawMessage("{\n  \"sku\": \"SHOE-42\"\n}"),
		Context:   json.RawMessage(`{"library":{"name":"analytics-node"}}`),
		Timestamp: ts, SentAt: ts.Add(time.Second), ReceivedAt: ts.Add(2 * time.Second).UTC(),
	}
}

// asMap decodes JSON into generic values, so two encodings compare by
// meaning, not by bytes (encoding/json escapes HTML characters; we do not).
func asMap(t testing.TB, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("invalid JSON %q: %v", b, err)
	}
	return m
}

func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	sealed := Event{Type: Track, MessageID: "s", Source: "s", Event: "Order Completed", Subject: "psd", Sealed: []byte{0, 1, 2, 0xff, 0xfe}}
	erase := Event{Type: Erase, MessageID: "e", Source: "nudge", Subject: "p1", Erased: []string{"p1", "p\"2"}}
	for _, e := range []Event{sampleEvent(), {Type: Identify, MessageID: "x", Source: "s", AnonymousID: "a"}, sealed, erase} {
		want, err := json.Marshal(&e)
		if err != nil {
			t.Fatal(err)
		}
		if got := e.AppendJSON(nil); !reflect.DeepEqual(asMap(t, got), asMap(t, want)) {
			t.Errorf("AppendJSON:\n%s\nencoding/json:\n%s", got, want)
		}
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	in := []Event{sampleEvent(), {Type: Track, Subject: "x", Sealed: []byte("\x00sealed\xff")}, {Type: Page, MessageID: "p", Source: "s", UserID: "u", Name: "Home", Timestamp: time.Unix(0, 0).UTC(), ReceivedAt: time.Unix(1, 0).UTC()}}
	payload := EncodeEvents(nil, in)
	out, err := DecodeEvents(payload)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("decoded %d events, want %d", len(out), len(in))
	}
	for i := range in {
		a, _ := json.Marshal(&in[i])
		b, _ := json.Marshal(&out[i])
		if !reflect.DeepEqual(asMap(t, a), asMap(t, b)) || !out[i].Timestamp.Equal(in[i].Timestamp) {
			t.Errorf("event %d changed in the round trip:\n%s\n%s", i, a, b)
		}
	}
	if _, err := DecodeEvents(payload[:len(payload)-3]); err == nil {
		t.Fatal("a truncated payload decoded without error")
	}
}

func FuzzAppendJSON(f *testing.F) {
	f.Add("u1", "Product Added", "\x00\xff\u2028\"\\<")
	f.Fuzz(func(t *testing.T, user, name, anon string) {
		e := Event{Type: Track, MessageID: "m", Source: "s", UserID: user, Event: name, AnonymousID: anon}
		want, _ := json.Marshal(&e)
		if got := e.AppendJSON(nil); !reflect.DeepEqual(asMap(t, got), asMap(t, want)) {
			t.Fatalf("AppendJSON:\n%q\nencoding/json:\n%q", got, want)
		}
	})
}

func BenchmarkAppendJSON(b *testing.B) {
	e := sampleEvent()
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = e.AppendJSON(buf[:0])
	}
}

func BenchmarkMarshalJSON(b *testing.B) {
	e := sampleEvent()
	b.ReportAllocs()
	for b.Loop() {
		json.Marshal(&e)
	}
}
