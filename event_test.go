package nudge

import (
	"encoding/binary"
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

func TestEncodeDecodeRoundTrip(t *testing.T) {
	in := []Event{
		sampleEvent(),
		{Type: Track, MessageID: "s", Source: "s", Event: "Order Completed", Subject: "psd", Sealed: []byte{0, 1, 2, 0xff, 0xfe},
			Timestamp: time.Unix(-5, 7).UTC(), ReceivedAt: time.Unix(1, 0).UTC()},
		{Type: Erase, MessageID: "e", Source: "nudge", Subject: "p1", Erased: []string{"p1", "p\"2"}},
		{Type: Alias, MessageID: "a", UserID: "u", PreviousID: "old", GroupID: "g", Name: "n", Category: "c", Channel: "server",
			Traits: json.RawMessage(`{}`), Integrations: json.RawMessage(`{"All":true}`), Metadata: json.RawMessage(`{"x":1}`),
			OriginalTimestamp: time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("", -5*3600))},
	}
	payload := EncodeEvents(nil, in)
	out, err := DecodeEvents(payload)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("decoded %d events, want %d", len(out), len(in))
	}
	for i := range in {
		a, b := in[i], out[i]
		for _, p := range [][2]*time.Time{{&a.Timestamp, &b.Timestamp}, {&a.OriginalTimestamp, &b.OriginalTimestamp}, {&a.SentAt, &b.SentAt}, {&a.ReceivedAt, &b.ReceivedAt}} {
			_, oa := p[0].Zone()
			_, ob := p[1].Zone()
			if !p[0].Equal(*p[1]) || oa != ob {
				t.Errorf("event %d: time %v came back as %v", i, *p[0], *p[1])
			}
			*p[0], *p[1] = time.Time{}, time.Time{}
		}
		if !reflect.DeepEqual(a, b) {
			t.Errorf("event %d changed in the round trip:\n%+v\n%+v", i, a, b)
		}
	}
	for cut := range len(payload) - 1 {
		if _, err := DecodeEvents(payload[:cut+1]); err == nil && cut+1 != len(payload) && !endsAnEvent(payload, cut+1) {
			t.Fatalf("a payload cut at %d decoded without error", cut+1)
		}
	}
}

// endsAnEvent reports whether n is the end of an event in payload.
func endsAnEvent(payload []byte, n int) bool {
	for off := 0; off < len(payload); {
		l, k := binary.Uvarint(payload[off:])
		off += k + int(l)
		if off == n {
			return true
		}
	}
	return false
}

// FuzzDecode feeds arbitrary bytes to the decoder: errors, never a panic,
// and what decodes re-encodes to an equal event.
func FuzzDecode(f *testing.F) {
	f.Add(EncodeEvents(nil, []Event{sampleEvent()}))
	f.Add([]byte{5, 1, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, payload []byte) {
		events, err := DecodeEvents(payload)
		if err != nil {
			return
		}
		again, err := DecodeEvents(EncodeEvents(nil, events))
		if err != nil || len(again) != len(events) {
			t.Fatalf("re-encoding %d events: %d, %v", len(events), len(again), err)
		}
		for i := range events {
			if !events[i].Timestamp.Equal(again[i].Timestamp) || events[i].MessageID != again[i].MessageID || string(events[i].Sealed) != string(again[i].Sealed) {
				t.Fatalf("event %d changed when re-encoded", i)
			}
		}
	})
}

func BenchmarkEncode(b *testing.B) {
	e := sampleEvent()
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendEncoded(buf[:0], &e)
	}
}

func BenchmarkDecode(b *testing.B) {
	e := sampleEvent()
	raw := e.appendBinary(nil)
	b.ReportAllocs()
	for b.Loop() {
		var d Event
		if err := d.Decode(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeJSON(b *testing.B) {
	e := sampleEvent()
	raw, _ := json.Marshal(&e)
	b.ReportAllocs()
	for b.Loop() {
		var d Event
		if err := json.Unmarshal(raw, &d); err != nil {
			b.Fatal(err)
		}
	}
}
