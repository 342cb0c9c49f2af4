// Package metrics is what nudge tells about itself: Prometheus metrics
// (GET /metrics), liveness (GET /healthz) and readiness (GET /readyz).
//
// Metrics live in a registry of their own, made by New, never in the
// prometheus package's global one. A component gets only what it reports
// to: ingest gets an *Ingest, which implements ingest.Metrics, and never
// sees the prometheus library. Components that keep their own counters
// (the WAL, the forwarder, the profile consumer) are read at scrape time
// through CounterFunc and GaugeFunc collectors over their Stats methods,
// so their hot paths pay nothing for metrics.
//
// A later component adds its metrics the same way: a typed struct of its
// collectors, made by a constructor that registers them (like newIngest),
// held by a field of Metrics; or, for counters the component keeps itself,
// a method of Metrics that takes the function to read them with (like WAL).
//
// Naming follows the Prometheus conventions: every name starts with
// nudge_, counters end in _total, units are base units named in the
// suffix (_seconds, _bytes, _messages). Label values are bounded: source
// names from the configuration, event types, error codes, endpoints. Never
// a write key, a user id or anything a customer sends.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/nudge-dev/nudge/journey"
	"github.com/nudge-dev/nudge/profile"
	"github.com/nudge-dev/nudge/wal"
)

// Metrics is one server's registry and the collectors of its components.
type Metrics struct {
	Registry *prometheus.Registry
	// Ingest is what the tracking API reports to (ingest.Config.Metrics).
	Ingest *Ingest

	logger *slog.Logger
}

// New makes a registry with the Go runtime and process collectors and the
// tracking API's metrics. logger receives the errors of scrapes.
func New(logger *slog.Logger) *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return &Metrics{Registry: reg, Ingest: newIngest(reg), logger: logger}
}

// Handler serves the registry in the Prometheus text format. A collector
// that fails (the event log does not answer) leaves its metrics out of the
// scrape and is logged; the other metrics are still served.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(m.logger.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      m.Registry, // counts failed scrapes: promhttp_metric_handler_errors_total
		Timeout:       10 * time.Second,
	})
}

// statCounter is a counter read at every scrape from one field of a
// component's stats.
func statCounter[S any, N int64 | uint64](stats func() S, name, help string, field func(S) N) prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
		func() float64 { return float64(field(stats())) })
}

// WAL exports the write-ahead log's counters. stats (wal.WAL.Stats) is
// called at every scrape.
func (m *Metrics) WAL(stats func() wal.Stats) {
	counter := func(name, help string, v func(wal.Stats) uint64) prometheus.Collector {
		return statCounter(stats, name, help, v)
	}
	m.Registry.MustRegister(
		counter("nudge_wal_appends_total", "Records made durable in the write-ahead log: one per tracking request with new events.",
			func(s wal.Stats) uint64 { return s.Appends }),
		counter("nudge_wal_written_bytes_total", "Bytes written to the write-ahead log by successful group-commit rounds, record headers included.",
			func(s wal.Stats) uint64 { return s.Bytes }),
		counter("nudge_wal_rounds_total", "Successful group-commit rounds of the write-ahead log: one write and one fdatasync each (no fdatasync with --durability none).",
			func(s wal.Stats) uint64 { return s.Rounds }),
		counter("nudge_wal_failed_rounds_total", "Group-commit rounds of the write-ahead log that failed (disk full, I/O error); their requests were answered 503 or 500.",
			func(s wal.Stats) uint64 { return s.Failed }),
	)
}

// ForwardLag exports how far the forwarder is behind the write-ahead log.
// lag (ingest.Forwarder.Lag) is called at every scrape.
func (m *Metrics) ForwardLag(lag func() uint64) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "nudge_forward_lag_bytes",
		Help: "Bytes of acknowledged write-ahead log records not yet forwarded to the event log.",
	}, func() float64 { return float64(lag()) }))
}

// TimeToTrigger registers the time-to-trigger histogram and returns the
// function that observes it (journey.Config.TimeToTrigger): from the
// acknowledgement of the event that made a journey send to the first send
// attempt, by channel.
func (m *Metrics) TimeToTrigger() func(channel string, d time.Duration) {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "nudge_time_to_trigger_seconds",
		Help:    "From the acknowledgement of the event that made a journey send to the send attempt, by channel.",
		Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"channel"})
	m.Registry.MustRegister(h)
	return func(channel string, d time.Duration) { h.WithLabelValues(channel).Observe(d.Seconds()) }
}

// ProfileDelay registers the histogram of how far behind real time the
// profile consumer applies the log and returns the function that observes
// it (profile.Config.Delay).
func (m *Metrics) ProfileDelay() func(time.Duration) {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "nudge_profile_apply_delay_seconds",
		Help:    "From the receipt of a log message's last event to the profile consumer applying the message: how far behind real time profiles and journeys are.",
		Buckets: []float64{.001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
	})
	m.Registry.MustRegister(h)
	return func(d time.Duration) { h.Observe(d.Seconds()) }
}

// Deliveries returns the hook the journey runtime reports send attempts to
// (journey.Config.Delivery): by channel and outcome ("sent", "retry",
// "failed"), with the attempt's duration.
func (m *Metrics) Deliveries() func(channel, outcome string, d time.Duration) {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "nudge_deliveries_seconds",
		Help:    "Send attempts by channel and outcome (sent, retry, failed), and how long the provider took.",
		Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"channel", "outcome"})
	m.Registry.MustRegister(h)
	return func(channel, outcome string, d time.Duration) {
		h.WithLabelValues(channel, outcome).Observe(d.Seconds())
	}
}

// Journeys exports the journeys' counters (entries, exits by reason,
// conversions, per journey) and the pending timers; both are read at every
// scrape.
func (m *Metrics) Journeys(totals func() []journey.Totals, pending func() int64) {
	m.Registry.MustRegister(journeyCollector{totals},
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "nudge_timers_pending", Help: "Durable timers armed (waits, pattern windows, absence deadlines)."},
			func() float64 { return float64(pending()) }))
}

// TimerLateness returns the hook the journey runtime reports timer
// firings to (journey.Config.TimerFired): how late each fired.
func (m *Metrics) TimerLateness() func(lateness time.Duration) {
	late := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "nudge_timer_lateness_seconds",
		Help:    "How late timers fired after their due time (downtime shows as a long tail).",
		Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, 1, 10, 60, 600},
	})
	m.Registry.MustRegister(late)
	return func(d time.Duration) { late.Observe(d.Seconds()) }
}

var (
	journeyEntries     = prometheus.NewDesc("nudge_journey_entries_total", "Runs started, per journey.", []string{"journey"}, nil)
	journeyExits       = prometheus.NewDesc("nudge_journey_exits_total", "Runs ended, per journey and reason.", []string{"journey", "reason"}, nil)
	journeyConversions = prometheus.NewDesc("nudge_journey_conversions_total", "Goal events within the attribution window, per journey.", []string{"journey"}, nil)
)

// journeyCollector reads the journeys' counters at scrape time.
type journeyCollector struct{ totals func() []journey.Totals }

func (c journeyCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- journeyEntries
	ch <- journeyExits
	ch <- journeyConversions
}

func (c journeyCollector) Collect(ch chan<- prometheus.Metric) {
	for _, t := range c.totals() {
		ch <- prometheus.MustNewConstMetric(journeyEntries, prometheus.CounterValue, float64(t.Entered), t.Journey)
		ch <- prometheus.MustNewConstMetric(journeyConversions, prometheus.CounterValue, float64(t.Conversions), t.Journey)
		for reason, n := range t.Exits {
			ch <- prometheus.MustNewConstMetric(journeyExits, prometheus.CounterValue, float64(n), t.Journey, reason)
		}
	}
}

// DeadLetters exports the depth of the dead-letter queue; depth is called
// at every scrape.
func (m *Metrics) DeadLetters(depth func() int64) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "nudge_dead_letters", Help: "Messages in the dead-letter queue (failed for good, or in doubt after a crash).",
	}, func() float64 { return float64(depth()) }))
}

// Profiles exports the profile consumer's counters. stats
// (profile.Engine.Stats) is called at every scrape; the counters start
// from zero when nudge starts. Its lag is exported by Consumer.
func (m *Metrics) Profiles(stats func() profile.Stats) {
	counter := func(name, help string, v func(profile.Stats) int64) prometheus.Collector {
		return statCounter(stats, name, help, v)
	}
	m.Registry.MustRegister(
		counter("nudge_profile_events_total", "Events the profile consumer applied to profiles.",
			func(s profile.Stats) int64 { return s.Events }),
		counter("nudge_profile_events_dropped_total", "Events the profile consumer dropped because their person is erased.",
			func(s profile.Stats) int64 { return s.Dropped }),
		counter("nudge_profiles_created_total", "Profiles created.",
			func(s profile.Stats) int64 { return s.Profiles }),
		counter("nudge_profile_merges_total", "Profiles merged into another (one person seen under two identifiers).",
			func(s profile.Stats) int64 { return s.Merges }),
		counter("nudge_profile_links_refused_total", "Identifier links and profile merges refused by the per-profile caps.",
			func(s profile.Stats) int64 { return s.Refused }),
		counter("nudge_profile_erasures_total", "People erased.",
			func(s profile.Stats) int64 { return s.Erased }),
		counter("nudge_profile_flushes_total", "Commits of applied events to the profile store.",
			func(s profile.Stats) int64 { return s.Flushes }),
	)
}

// EventLog is the part of bus.Log that lag and readiness ask.
type EventLog interface {
	// LastSeq is the sequence of the last message stored in the log.
	LastSeq(ctx context.Context) (uint64, error)
}

// A Consumer is a consumer of the event log, as metrics and readiness see
// it.
type Consumer struct {
	Name string // its label value: "profiles"
	// Applied is the sequence of the last log message it has applied. It
	// must be cheap: scrapes and readiness checks call it.
	Applied func() uint64
}

// LagTimeout bounds how long a scrape or a readiness check waits for the
// event log.
const LagTimeout = time.Second

// Consumer exports a log consumer's position and its lag behind log. The
// lag asks the log for its last sequence at scrape time, waiting at most
// LagTimeout; when the log does not answer, the lag is left out of the
// scrape and the error logged.
func (m *Metrics) Consumer(log EventLog, c Consumer) {
	labels := prometheus.Labels{"consumer": c.Name}
	m.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "nudge_consumer_applied_sequence",
			Help:        "Sequence of the last event log message the consumer applied.",
			ConstLabels: labels,
		}, func() float64 { return float64(c.Applied()) }),
		&lagCollector{log: log, c: c, desc: prometheus.NewDesc("nudge_consumer_lag_messages",
			"Event log messages stored but not yet applied by the consumer (each message is a batch of events of one partition).",
			nil, labels)},
	)
}

// lagCollector reports a consumer's lag, read at scrape time.
type lagCollector struct {
	log  EventLog
	c    Consumer
	desc *prometheus.Desc
}

func (l *lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- l.desc }

func (l *lagCollector) Collect(ch chan<- prometheus.Metric) {
	lag, err := consumerLag(l.log, l.c)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(l.desc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(l.desc, prometheus.GaugeValue, float64(lag))
}

// consumerLag is how many messages the log holds past what c applied.
func consumerLag(log EventLog, c Consumer) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), LagTimeout)
	defer cancel()
	last, err := log.LastSeq(ctx)
	if err != nil {
		return 0, err
	}
	return last - min(c.Applied(), last), nil
}
