// Package ingest is nudge's tracking API: the Segment-spec calls that the
// official Segment and RudderStack SDKs send, and CloudEvents over HTTP. It
// parses and validates a request, drops events already accepted, makes the
// rest durable in the write-ahead log and only then answers 200. The
// Forwarder moves what was accepted on to the event log.
package ingest

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/nudge-dev/nudge"
	"github.com/nudge-dev/nudge/api"
	"github.com/nudge-dev/nudge/dedup"
	"github.com/nudge-dev/nudge/shred"
	"github.com/nudge-dev/nudge/tracing"
	"github.com/nudge-dev/nudge/wal"
)

// Handler serves the tracking API.
type Handler struct {
	sources    map[string]string // write key -> source name
	limits     Limits
	partitions int
	dedup      *dedup.Index
	wal        *wal.WAL
	keys       *shred.Keyring
	metrics    Metrics
	now        func() time.Time
	logger     *slog.Logger
}

// Config configures a Handler.
type Config struct {
	// Sources maps each accepted write key to the name of its source.
	Sources    map[string]string
	Limits     Limits
	Partitions int // of the event log, to group events in the WAL record
	// Keys seals the personal fields of every event before it is stored.
	Keys *shred.Keyring
	// Metrics receives what the handler counts; nil counts nothing.
	Metrics Metrics
}

// Metrics is what the tracking API reports as it serves (package metrics
// implements it for Prometheus). The handler calls it on the request path,
// from many requests at once: every method must be safe for concurrent use,
// cheap, and never block.
type Metrics interface {
	// Ingested counts n events of one type accepted from source: answered
	// 200 and not duplicates (those of erased people included, see
	// DroppedErased).
	Ingested(source string, typ nudge.EventType, n int)
	// Rejected counts a request refused with an error code of package api.
	// source is "" when the request's write key is missing or unknown, or
	// when its body, which holds the key, could not be parsed.
	Rejected(source, code string)
	// Duplicates counts n events from source dropped as already accepted
	// (within the dedup window, or earlier in the same request).
	Duplicates(source string, n int)
	// DroppedErased counts n accepted events of erased people: answered 200
	// so that SDKs do not retry them, and never stored.
	DroppedErased(n int)
	// Served records how long a request to endpoint took, from its arrival
	// to its answer. endpoint is the call kind ("track", "batch"...; the
	// one-letter paths count as their full names) or "cloudevents".
	Served(endpoint string, d time.Duration)
}

type noMetrics struct{}

func (noMetrics) Ingested(string, nudge.EventType, int) {}
func (noMetrics) Rejected(string, string)               {}
func (noMetrics) Duplicates(string, int)                {}
func (noMetrics) DroppedErased(int)                     {}
func (noMetrics) Served(string, time.Duration)          {}

// NewHandler makes the tracking API over a WAL and a dedup index. now is the
// clock (receivedAt, dedup windows).
func NewHandler(cfg Config, w *wal.WAL, ix *dedup.Index, now func() time.Time, logger *slog.Logger) *Handler {
	m := cfg.Metrics
	if m == nil {
		m = noMetrics{}
	}
	return &Handler{
		sources: cfg.Sources, limits: cfg.Limits, partitions: cfg.Partitions,
		dedup: ix, wal: w, keys: cfg.Keys, metrics: m, now: now, logger: logger,
	}
}

// segmentPaths maps the URL paths SDKs post to onto call kinds. The browser
// SDK (analytics.js) uses the one-letter forms.
var segmentPaths = map[string]string{
	"track": "track", "identify": "identify", "page": "page", "screen": "screen",
	"group": "group", "alias": "alias", "batch": "batch", "import": "batch",
	"t": "track", "i": "identify", "p": "page", "s": "screen", "g": "group", "a": "alias", "b": "batch",
}

// Register adds the tracking API's routes to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	for path, kind := range segmentPaths {
		mux.Handle("POST /v1/"+path, h.cors(h.segment(kind)))
		mux.Handle("OPTIONS /v1/"+path, h.cors(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})))
	}
	mux.Handle("POST /v1/cloudevents", h.cloudEvents())
}

// cors lets browser SDKs on any origin post events: they authenticate with
// the write key, not with cookies.
func (h *Handler) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Origin") != "" {
			w.Header().Set("Access-Control-Allow-Origin", "*")
			w.Header().Set("Access-Control-Allow-Methods", "POST, OPTIONS")
			w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Content-Encoding")
			w.Header().Set("Access-Control-Max-Age", "86400")
		}
		next.ServeHTTP(w, r)
	})
}

// parseFunc parses a request body; bodyKey is a write key the body carries
// (Segment's writeKey field), or "".
type parseFunc func(r *http.Request, body []byte, now time.Time) (events []nudge.Event, bodyKey string, err error)

func (h *Handler) segment(kind string) http.Handler {
	return h.endpoint(kind, func(_ *http.Request, body []byte, now time.Time) ([]nudge.Event, string, error) {
		return ParseSegment(kind, body, now, h.limits)
	})
}

func (h *Handler) cloudEvents() http.Handler {
	return h.endpoint("cloudevents", func(r *http.Request, body []byte, now time.Time) ([]nudge.Event, string, error) {
		events, err := ParseCloudEvents(r.Header, body, now, h.limits)
		return events, "", err
	})
}

// endpoint is the flow every tracking route shares: authenticate (the Basic
// user first; without one, the key in the body), read and parse the body,
// then accept the events. name labels the route in the metrics.
func (h *Handler) endpoint(name string, parse parseFunc) http.Handler {
	spanName := "nudge.ingest " + name
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := h.now()
		defer func() { h.metrics.Served(name, h.now().Sub(now)) }()
		ctx, span := tracing.Tracer.Start(tracing.FromHeader(r.Context(), propagation.HeaderCarrier(r.Header)),
			spanName, trace.WithSpanKind(trace.SpanKindServer))
		defer span.End()
		r = r.WithContext(ctx)
		source, basic := h.basicSource(r)
		if basic && source == "" {
			h.reject(w, "", errUnauthorized)
			return
		}
		body, apiErr := h.readBody(r)
		if apiErr != nil {
			h.reject(w, source, apiErr)
			return
		}
		defer releaseBody(body)
		events, bodyKey, err := parse(r, body, now)
		if err != nil {
			h.reject(w, source, asAPIError(err))
			return
		}
		if !basic {
			if source = h.sources[bodyKey]; source == "" || bodyKey == "" {
				h.reject(w, "", errUnauthorized)
				return
			}
		}
		h.accept(w, r.Context(), source, events, now)
	})
}

// reject answers with the error and counts it.
func (h *Handler) reject(w http.ResponseWriter, source string, e *api.Error) {
	h.metrics.Rejected(source, e.Code)
	writeError(w, e)
}

// accept stores the events not seen before and answers 200 once they are
// durable. A duplicate of an event being stored by another request waits
// for that request's outcome.
func (h *Handler) accept(w http.ResponseWriter, ctx context.Context, source string, events []nudge.Event, now time.Time) {
	if err := h.store(ctx, source, events, now); err != nil {
		writeError(w, err) // counted by store
		return
	}
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"success":true}`)
}

// Publish stores events that nudge makes itself (provider feedback,
// engagement with messages) as if source had sent them: deduplicated by
// messageId, sealed, durable when it returns.
func (h *Handler) Publish(ctx context.Context, source string, events []nudge.Event) error {
	now := h.now()
	for i := range events {
		events[i].ReceivedAt = now
		if events[i].Timestamp.IsZero() {
			events[i].Timestamp = now
		}
	}
	if err := h.store(ctx, source, events, now); err != nil {
		return fmt.Errorf("ingest: publish: %s", err.Message)
	}
	return nil
}

// store keeps the events not seen before, durably, and counts them. Each
// event carries the trace context of ctx's span.
func (h *Handler) store(ctx context.Context, source string, events []nudge.Event, now time.Time) *api.Error {
	tp := tracing.Parent(ctx)
	keys := make([]dedup.Key, len(events))
	for i := range events {
		events[i].Source = source
		events[i].TraceParent = tp
		keys[i] = dedup.KeyOf(source, events[i].MessageID)
	}
	claim, err := h.dedup.Claim(ctx, keys, now)
	if err != nil {
		h.metrics.Rejected(source, errUnavailable.Code)
		return errUnavailable
	}
	fresh := events[:0]
	for i, ok := range claim.Fresh() {
		if ok {
			fresh = append(fresh, events[i])
		}
	}
	dropped := 0
	if len(fresh) > 0 {
		if dropped, err = h.write(ctx, fresh); err != nil {
			h.dedup.Release(claim)
			h.logger.Error("write-ahead append failed", "err", err)
			e := storeError(err)
			h.metrics.Rejected(source, e.Code)
			return e
		}
	}
	h.dedup.Commit(claim, now)
	h.count(source, fresh, len(events)-len(fresh), dropped)
	return nil
}

// count reports an accepted request's events: the fresh ones by type (a
// run of events of one type is counted at once), the duplicates, and the
// fresh ones dropped because their person is erased.
func (h *Handler) count(source string, fresh []nudge.Event, duplicates, dropped int) {
	for i := 0; i < len(fresh); {
		j := i + 1
		for j < len(fresh) && fresh[j].Type == fresh[i].Type {
			j++
		}
		h.metrics.Ingested(source, fresh[i].Type, j-i)
		i = j
	}
	if duplicates > 0 {
		h.metrics.Duplicates(source, duplicates)
	}
	if dropped > 0 {
		h.metrics.DroppedErased(dropped)
	}
}

// write seals and stores the events. Events of erased people are dropped:
// accepted, so that SDKs do not retry them, and never stored; dropped
// counts them.
func (h *Handler) write(ctx context.Context, events []nudge.Event) (dropped int, err error) {
	rec, dropped, err := encodeRecord(events, h.partitions, h.keys)
	if err != nil {
		return 0, err
	}
	if dropped == len(events) {
		return dropped, nil
	}
	_, err = h.wal.Append(ctx, rec)
	return dropped, err
}

// basicSource returns the source of the write key in the Basic auth header;
// basic reports whether the header was there at all.
func (h *Handler) basicSource(r *http.Request) (source string, basic bool) {
	user, _, ok := r.BasicAuth()
	if !ok {
		return "", false
	}
	return h.sources[user], true
}

// readBody reads the request body, gunzipping it when the client says so,
// and refuses bodies over the batch limit.
func (h *Handler) readBody(r *http.Request) ([]byte, *api.Error) {
	limit := int64(h.limits.MaxBatchBytes)
	var rd io.Reader = http.MaxBytesReader(nil, r.Body, limit+1)
	gzipped := strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip")
	if gzipped {
		gz, err := gzip.NewReader(rd)
		if err != nil {
			return nil, errBadGzip
		}
		defer gz.Close()
		rd = gz
	}
	body, err := readAll(rd, limit+1, r.ContentLength)
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig) || int64(len(body)) > limit:
		return nil, errBatchTooLarge(h.limits.MaxBatchBytes)
	case err != nil && gzipped:
		return nil, errBadGzip
	case err != nil:
		return nil, &api.Error{Status: http.StatusBadRequest, Code: api.CodeBadBody, Message: "could not read the request body: " + err.Error()}
	}
	return body, nil
}

// Request bodies are read into pooled buffers: the parsers copy out what
// they keep, so a body's buffer is free again once its request is answered.
var bodies = sync.Pool{New: func() any { return new([]byte) }}

// readAll reads up to limit bytes of r into a pooled buffer, sized from the
// Content-Length when the client sent one.
func readAll(r io.Reader, limit, contentLength int64) ([]byte, error) {
	buf := *bodies.Get().(*[]byte)
	if want := int(min(max(contentLength, 512), limit)); cap(buf) < want {
		buf = make([]byte, 0, want)
	}
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil || int64(len(buf)) >= limit {
			return buf, err
		}
	}
}

func releaseBody(b []byte) {
	if cap(b) <= 1<<20 {
		b = b[:0]
		bodies.Put(&b)
	}
}

// storeError maps a failed write-ahead append onto the answer: a full disk or
// a closing server is temporary, so the SDK should retry later.
func storeError(err error) *api.Error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, wal.ErrClosed) || errors.Is(err, context.Canceled) {
		return errUnavailable
	}
	return &api.Error{Status: http.StatusInternalServerError, Code: api.CodeInternal, Message: "the event could not be stored"}
}

func asAPIError(err error) *api.Error {
	var e *api.Error
	if errors.As(err, &e) {
		return e
	}
	return &api.Error{Status: http.StatusBadRequest, Code: api.CodeInvalidJSON, Message: err.Error()}
}

// writeError answers with the error; a 401 names the scheme to use.
func writeError(w http.ResponseWriter, e *api.Error) {
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="nudge"`)
	}
	api.WriteError(w, e)
}
