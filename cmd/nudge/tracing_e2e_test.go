package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// One trace from the request that brings an event, through the journey
// step it triggers, to the delivery; the caller's traceparent is its root.
func TestTraceSpansIngestToDelivery(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp)))
	got := make(chan struct{}, 1)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		got <- struct{}{}
	}))
	defer recv.Close()
	dir := t.TempDir()
	js := filepath.Join(dir, "journeys")
	os.MkdirAll(js, 0o700)
	os.WriteFile(filepath.Join(js, "hook.yaml"), []byte(`id: hook
trigger: {event: Signed Up}
steps:
  - id: notify
    send: {channel: webhook, content: {url: "`+recv.URL+`", body: '{}'}}
`), 0o600)
	cfg := defaultConfig()
	cfg.HTTP, cfg.Data, cfg.Journeys = freePort(t), filepath.Join(dir, "data"), js
	cfg.WriteKeys, cfg.AdminToken = []string{"test=wk"}, "adm"
	p := startInProcess(t, cfg)

	const traceID, callerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	req, _ := http.NewRequest(http.MethodPost, p.url+"/v1/track", strings.NewReader(`{"userId":"tr1","event":"Signed Up"}`))
	req.SetBasicAuth("wk", "")
	req.Header.Set("traceparent", "00-"+traceID+"-"+callerSpan+"-01")
	if code, body := do(t, req); code != 200 {
		t.Fatalf("track: %d %s", code, body)
	}
	select {
	case <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("no webhook")
	}
	byName := map[string]tracetest.SpanStub{}
	eventually(t, 10*time.Second, "the delivery span", func() bool {
		for _, s := range exp.GetSpans() {
			if s.SpanContext.TraceID().String() == traceID {
				byName[strings.Fields(s.Name)[0]] = s
			}
		}
		return len(byName) == 3
	})
	ingest, step, deliver := byName["nudge.ingest"], byName["nudge.journey.send"], byName["nudge.deliver"]
	if ingest.Parent.SpanID().String() != callerSpan {
		t.Fatalf("ingest span's parent %s, want the caller's %s", ingest.Parent.SpanID(), callerSpan)
	}
	if step.Parent.SpanID() != ingest.SpanContext.SpanID() || deliver.Parent.SpanID() != step.SpanContext.SpanID() {
		t.Fatalf("spans not chained: ingest %s, step %s (parent %s), deliver (parent %s)",
			ingest.SpanContext.SpanID(), step.SpanContext.SpanID(), step.Parent.SpanID(), deliver.Parent.SpanID())
	}
	attrs := map[string]string{}
	for _, a := range deliver.Attributes {
		attrs[string(a.Key)] = a.Value.Emit()
	}
	if attrs["journey"] != "hook" || attrs["step"] != "notify" || attrs["channel"] != "webhook" {
		t.Fatalf("deliver attributes %v", attrs)
	}
}
