package metrics_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/nudge-dev/nudge"
	"github.com/nudge-dev/nudge/ingest"
	"github.com/nudge-dev/nudge/metrics"
	"github.com/nudge-dev/nudge/profile"
	"github.com/nudge-dev/nudge/wal"
)

var _ ingest.Metrics = (*metrics.Ingest)(nil)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// fakeLog answers LastSeq with seq, or err; block makes it wait for ctx.
type fakeLog struct {
	seq   atomic.Uint64
	err   error
	block bool
}

func (l *fakeLog) LastSeq(ctx context.Context) (uint64, error) {
	if l.block {
		<-ctx.Done()
		return 0, ctx.Err()
	}
	return l.seq.Load(), l.err
}

// scrape gets /metrics from m and parses it as Prometheus does.
func scrape(t *testing.T, m *metrics.Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("GET /metrics = %d %s", rec.Code, rec.Body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return families
}

// value is the value of the sample of family name whose labels include
// labels (name=value pairs); ok is false when there is none.
func value(families map[string]*dto.MetricFamily, name string, labels ...string) (v float64, ok bool) {
	f := families[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.Label {
				found = found || (l.GetName() == labels[i] && l.GetValue() == labels[i+1])
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func wantValue(t *testing.T, families map[string]*dto.MetricFamily, want float64, name string, labels ...string) {
	t.Helper()
	if v, ok := value(families, name, labels...); !ok || v != want {
		t.Errorf("%s%v = %v (found: %v), want %v", name, labels, v, ok, want)
	}
}

func TestEveryMetricIsServedAndWellNamed(t *testing.T) {
	m := metrics.New(quiet())
	m.Ingest.Ingested("web", nudge.Track, 3)
	m.Ingest.Ingested("web", nudge.Identify, 1)
	m.Ingest.Ingested("web", nudge.Track, 2)
	m.Ingest.Rejected("web", "invalid_json")
	m.Ingest.Rejected("", "unauthorized")
	m.Ingest.Duplicates("web", 4)
	m.Ingest.DroppedErased(2)
	m.Ingest.Served("batch", 3*time.Millisecond)
	m.Ingest.Served("batch", 2*time.Second)

	walStats := wal.Stats{Appends: 7, Bytes: 7000, Rounds: 5, Failed: 1}
	m.WAL(func() wal.Stats { return walStats })
	var fwdLag atomic.Uint64
	fwdLag.Store(1234)
	m.ForwardLag(fwdLag.Load)
	m.Profiles(func() profile.Stats {
		return profile.Stats{Events: 10, Dropped: 1, Profiles: 3, Merges: 2, Refused: 4, Erased: 5, Flushes: 6, AppliedSeq: 40}
	})
	log := &fakeLog{}
	log.seq.Store(52)
	m.Consumer(log, metrics.Consumer{Name: "profiles", Applied: func() uint64 { return 40 }})

	got := scrape(t, m)
	for _, tc := range []struct {
		want   float64
		name   string
		labels []string
	}{
		{5, "nudge_events_ingested_total", []string{"source", "web", "type", "track"}},
		{1, "nudge_events_ingested_total", []string{"source", "web", "type", "identify"}},
		{1, "nudge_events_rejected_total", []string{"source", "web", "reason", "invalid_json"}},
		{1, "nudge_events_rejected_total", []string{"source", "unknown", "reason", "unauthorized"}},
		{4, "nudge_events_duplicate_total", []string{"source", "web"}},
		{2, "nudge_events_dropped_erased_total", nil},
		{2, "nudge_ingest_request_seconds", []string{"endpoint", "batch"}},
		{7, "nudge_wal_appends_total", nil},
		{7000, "nudge_wal_written_bytes_total", nil},
		{5, "nudge_wal_rounds_total", nil},
		{1, "nudge_wal_failed_rounds_total", nil},
		{1234, "nudge_forward_lag_bytes", nil},
		{10, "nudge_profile_events_total", nil},
		{1, "nudge_profile_events_dropped_total", nil},
		{3, "nudge_profiles_created_total", nil},
		{2, "nudge_profile_merges_total", nil},
		{4, "nudge_profile_links_refused_total", nil},
		{5, "nudge_profile_erasures_total", nil},
		{6, "nudge_profile_flushes_total", nil},
		{40, "nudge_consumer_applied_sequence", []string{"consumer", "profiles"}},
		{12, "nudge_consumer_lag_messages", []string{"consumer", "profiles"}},
	} {
		wantValue(t, got, tc.want, tc.name, tc.labels...)
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total", "process_resident_memory_bytes"} {
		if got[name] == nil {
			t.Errorf("%s is missing: the Go and process collectors are not registered", name)
		}
	}
	// The 2 s request lands past the last bucket, 1 s, the 3 ms one in 5 ms.
	h := got["nudge_ingest_request_seconds"].Metric[0].Histogram
	for _, b := range h.Bucket {
		switch b.GetUpperBound() {
		case 0.002:
			if b.GetCumulativeCount() != 0 {
				t.Errorf("bucket 2 ms holds %d", b.GetCumulativeCount())
			}
		case 0.005, 1:
			if b.GetCumulativeCount() != 1 {
				t.Errorf("bucket %v holds %d, want 1", b.GetUpperBound(), b.GetCumulativeCount())
			}
		}
	}

	// Read at scrape time: a later scrape sees the new values.
	walStats.Appends = 9
	fwdLag.Store(0)
	log.seq.Store(60)
	got = scrape(t, m)
	wantValue(t, got, 9, "nudge_wal_appends_total")
	wantValue(t, got, 0, "nudge_forward_lag_bytes")
	wantValue(t, got, 20, "nudge_consumer_lag_messages", "consumer", "profiles")

	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(families).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "nudge_") {
			t.Errorf("%s: %s", p.Metric, p.Text)
		}
	}
}

// When the event log does not answer, the scrape still serves everything
// else.
func TestScrapeWithoutTheEventLog(t *testing.T) {
	m := metrics.New(quiet())
	m.Consumer(&fakeLog{err: errors.New("nats: timeout")}, metrics.Consumer{Name: "profiles", Applied: func() uint64 { return 3 }})
	got := scrape(t, m)
	if _, ok := value(got, "nudge_consumer_lag_messages", "consumer", "profiles"); ok {
		t.Error("a lag without an event log")
	}
	wantValue(t, got, 3, "nudge_consumer_applied_sequence", "consumer", "profiles")
	if got["go_goroutines"] == nil {
		t.Error("the rest of the scrape is missing")
	}
	// The failure is counted; a scrape shows the count of those before it.
	wantValue(t, scrape(t, m), 1, "promhttp_metric_handler_errors_total", "cause", "gathering")
}

// A second consumer registers beside the first, told apart by its label.
func TestConsumersSideBySide(t *testing.T) {
	m := metrics.New(quiet())
	log := &fakeLog{}
	log.seq.Store(10)
	m.Consumer(log, metrics.Consumer{Name: "profiles", Applied: func() uint64 { return 10 }})
	m.Consumer(log, metrics.Consumer{Name: "journeys", Applied: func() uint64 { return 4 }})
	got := scrape(t, m)
	wantValue(t, got, 0, "nudge_consumer_lag_messages", "consumer", "profiles")
	wantValue(t, got, 6, "nudge_consumer_lag_messages", "consumer", "journeys")
}
