package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nudge-dev/nudge"
)

// Ingest holds the tracking API's metrics; it implements ingest.Metrics.
type Ingest struct {
	ingested   *prometheus.CounterVec
	rejected   *prometheus.CounterVec
	duplicates *prometheus.CounterVec
	erased     prometheus.Counter
	latency    *prometheus.HistogramVec
}

// UnknownSource is the source label of requests refused before their
// write key was known: a missing or wrong key, or a body (holding the key)
// that does not parse.
const UnknownSource = "unknown"

// ingestBuckets span a request's latency from a group commit on a quiet
// disk (0.5 ms) to a request stuck behind a saturated one (1 s).
var ingestBuckets = []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1}

func newIngest(reg prometheus.Registerer) *Ingest {
	m := &Ingest{
		ingested: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nudge_events_ingested_total",
			Help: "Events accepted by the tracking API (answered 200, duplicates excluded), by source and call type. Events of erased people are included and also counted by nudge_events_dropped_erased_total.",
		}, []string{"source", "type"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nudge_events_rejected_total",
			Help: `Tracking requests refused, by source ("unknown" before the write key is known) and error code (the "code" of the error body). A refused request keeps none of its events and counts once, whatever its size.`,
		}, []string{"source", "reason"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nudge_events_duplicate_total",
			Help: "Events dropped because their messageId was already accepted from the source within the dedup window (or earlier in the same request).",
		}, []string{"source"}),
		erased: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nudge_events_dropped_erased_total",
			Help: "Events accepted but never stored because their person is erased.",
		}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nudge_ingest_request_seconds",
			Help:    "Time from a tracking request's arrival to its answer, by endpoint (the call kind, or cloudevents); refused requests included.",
			Buckets: ingestBuckets,
		}, []string{"endpoint"}),
	}
	reg.MustRegister(m.ingested, m.rejected, m.duplicates, m.erased, m.latency)
	return m
}

// Ingested counts n accepted events of one type.
func (m *Ingest) Ingested(source string, typ nudge.EventType, n int) {
	m.ingested.WithLabelValues(source, string(typ)).Add(float64(n))
}

// Rejected counts a refused request.
func (m *Ingest) Rejected(source, code string) {
	if source == "" {
		source = UnknownSource
	}
	m.rejected.WithLabelValues(source, code).Inc()
}

// Duplicates counts n events dropped as duplicates.
func (m *Ingest) Duplicates(source string, n int) {
	m.duplicates.WithLabelValues(source).Add(float64(n))
}

// DroppedErased counts n events of erased people.
func (m *Ingest) DroppedErased(n int) { m.erased.Add(float64(n)) }

// Served records a request's latency.
func (m *Ingest) Served(endpoint string, d time.Duration) {
	m.latency.WithLabelValues(endpoint).Observe(d.Seconds())
}
