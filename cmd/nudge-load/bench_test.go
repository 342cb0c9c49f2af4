package main

import (
	"encoding/json"
	"testing"
)

// The reference's CPU per event is mostly encoding/json: these show how much
// (go test -bench . ./cmd/nudge-load/).

func BenchmarkRefDecodeBatch(b *testing.B) {
	tm := newBodyTemplate("abcd1234", false, 100, 500, 100000, shopEvents)
	b.SetBytes(int64(len(tm.body)))
	for b.Loop() {
		var req struct{ Batch []refEvent }
		if err := json.Unmarshal(tm.body, &req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkJSONValidBatch(b *testing.B) {
	tm := newBodyTemplate("abcd1234", false, 100, 500, 100000, shopEvents)
	b.SetBytes(int64(len(tm.body)))
	for b.Loop() {
		json.Valid(tm.body)
	}
}
