// Package tracing follows an event through nudge with OpenTelemetry: one
// trace from the request that brought it (joining the caller's trace when
// it sends a W3C traceparent header), through the journey step it caused,
// to the delivery. The trace context crosses the event log in the event
// itself (nudge.Event.TraceParent) and the outbox in the send job.
//
// Tracing is off unless the standard OpenTelemetry environment asks for
// it (Setup); off, spans cost a no-op call.
package tracing

import (
	"context"
	"os"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
)

// Tracer is nudge's tracer (the global provider's, which Setup sets).
var Tracer = otel.Tracer("github.com/nudge-dev/nudge")

var w3c = propagation.TraceContext{}

// FromHeader returns ctx with the remote span context of the request's
// traceparent header, if it carries a valid one.
func FromHeader(ctx context.Context, h propagation.TextMapCarrier) context.Context {
	return w3c.Extract(ctx, h)
}

// WithParent returns ctx with the remote span context of a traceparent
// value ("" leaves ctx as it is).
func WithParent(ctx context.Context, traceparent string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return w3c.Extract(ctx, propagation.MapCarrier{"traceparent": traceparent})
}

// Parent returns the traceparent value of the span in ctx, "" when it has
// no valid one.
func Parent(ctx context.Context) string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ""
	}
	c := propagation.MapCarrier{}
	w3c.Inject(ctx, c)
	return c["traceparent"]
}

// Enabled reports whether the environment asks for traces to be exported:
// OTEL_TRACES_EXPORTER=otlp, or an OTLP endpoint, unless
// OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none.
func Enabled(getenv func(string) string) bool {
	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") {
		return false
	}
	switch strings.ToLower(getenv("OTEL_TRACES_EXPORTER")) {
	case "none":
		return false
	case "otlp":
		return true
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// Setup exports traces over OTLP/HTTP when the environment asks for it
// (Enabled), configured by the standard OTEL_EXPORTER_OTLP_* and
// OTEL_SERVICE_NAME variables, and installs the W3C propagator. shutdown
// flushes the spans not exported yet; it is a no-op when tracing is off.
func Setup(ctx context.Context) (shutdown func(context.Context) error, err error) {
	otel.SetTextMapPropagator(w3c)
	if !Enabled(os.Getenv) {
		return func(context.Context) error { return nil }, nil
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, err
	}
	res := resource.Default() // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
	if os.Getenv("OTEL_SERVICE_NAME") == "" {
		if r, err := resource.Merge(res, resource.NewSchemaless(semconv.ServiceName("nudge"))); err == nil {
			res = r
		}
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	return tp.Shutdown, nil
}
