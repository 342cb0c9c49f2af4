package main

// Black-box tests of GET /metrics, /healthz and /readyz: the metrics are
// parsed with Prometheus's own text-format parser, and counters must move
// by exactly what the test sent.

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape reads /metrics, without credentials, as a Prometheus server does.
func (p *proc) scrape() scraped {
	p.t.Helper()
	resp, err := http.Get(p.url + "/metrics")
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		p.t.Fatalf("GET /metrics = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		p.t.Fatalf("GET /metrics does not parse: %v", err)
	}
	return families
}

type scraped map[string]*dto.MetricFamily

// get is the value of the sample of name whose labels include labels
// (name, value pairs): a counter's or gauge's value, a histogram's count.
// A labelled counter never incremented has no sample yet: 0.
func (s scraped) get(name string, labels ...string) float64 {
	f := s[name]
	if f == nil {
		return 0
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
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return 0
}

// readyz returns /readyz's status and its checks.
func (p *proc) readyz() (int, map[string]string) {
	p.t.Helper()
	code, body := do(p.t, mustRequest(p.t, http.MethodGet, p.url+"/readyz"))
	var b struct {
		Ready  bool
		Checks map[string]string
	}
	if err := json.Unmarshal([]byte(body), &b); err != nil || b.Ready != (code == 200) {
		p.t.Fatalf("GET /readyz = %d %s (%v)", code, body, err)
	}
	return code, b.Checks
}

// waitReadyz polls /readyz until it answers want, for at most a minute.
func (p *proc) waitReadyz(want int) map[string]string {
	p.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		code, checks := p.readyz()
		if code == want {
			return checks
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("/readyz still %d %v after a minute, want %d\n%s", code, checks, want, p.stderr)
		}
		select {
		case err := <-p.exited:
			p.t.Fatalf("nudge exited: %v\n%s", err, p.stderr)
		case <-time.After(50 * time.Millisecond): // the next poll
		}
	}
}

func mustRequest(t *testing.T, method, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestHealthzAndReadyz(t *testing.T) {
	p := start(t, t.TempDir())
	if code, body := do(t, mustRequest(t, http.MethodGet, p.url+"/healthz")); code != 200 || body != "ok\n" {
		t.Fatalf("GET /healthz = %d %q", code, body)
	}
	checks := p.waitReadyz(200)
	for _, name := range []string{"event_log", "wal", "forwarder", "profiles"} {
		if checks[name] != "ok" {
			t.Errorf("ready, but check %s = %q", name, checks[name])
		}
	}
}

// TestProfilerOnItsOwnAddress: --debug-addr serves Go's profiler there,
// and never on the API's address.
func TestProfilerOnItsOwnAddress(t *testing.T) {
	debug := freePort(t)
	p := start(t, t.TempDir(), "--debug-addr", debug)
	code, body := do(t, mustRequest(t, http.MethodGet, "http://"+debug+"/debug/pprof/goroutine?debug=1"))
	if code != 200 || !strings.Contains(body, "profile.(*Engine).Run") {
		t.Fatalf("GET goroutine profile on --debug-addr = %d, without the profile consumer's goroutine:\n%.300s", code, body)
	}
	if code, _ := do(t, mustRequest(t, http.MethodGet, p.url+"/debug/pprof/goroutine?debug=1")); code == 200 {
		t.Fatal("the profiler answers on the API's address too")
	}
}

// TestMetricsCountEvents sends good events, a duplicate, bad requests and an
// event of an erased person, and finds each counted exactly once.
func TestMetricsCountEvents(t *testing.T) {
	p := start(t, t.TempDir())
	p.waitReadyz(200)
	before := p.scrape()
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "nudge_wal_appends_total",
		"nudge_forward_lag_bytes", "nudge_profile_events_total", "nudge_consumer_lag_messages"} {
		if before[name] == nil {
			t.Errorf("%s is missing from /metrics", name)
		}
	}

	p.mustPost("/v1/batch", `{"batch":[
		{"type":"identify","userId":"metrics-1","traits":{"email":"m1@example.com"},"messageId":"mm-1"},
		{"type":"track","userId":"metrics-1","event":"Product Viewed","messageId":"mm-2"},
		{"type":"track","userId":"metrics-1","event":"Product Added","messageId":"mm-3"},
		{"type":"track","userId":"metrics-1","event":"Order Completed","messageId":"mm-4"}]}`)
	p.mustPost("/v1/track", `{"userId":"metrics-1","event":"Product Viewed","messageId":"mm-2"}`) // a duplicate
	if code, body := p.post("/v1/track", `{"event":"No One","messageId":"mm-5"}`); code != 400 || !strings.Contains(body, "missing_identity") {
		t.Fatalf("an event without identity = %d %s", code, body)
	}
	req, _ := http.NewRequest(http.MethodPost, p.url+"/v1/t", strings.NewReader(`{"userId":"metrics-1","event":"E"}`))
	req.SetBasicAuth("not-a-key", "")
	if code, _ := do(t, req); code != 401 {
		t.Fatalf("a wrong write key = %d", code)
	}
	// Reading the profile waits until the consumer applied everything.
	if d := p.profile("metrics-1"); d.ID == "" {
		t.Fatalf("profile = %+v", d)
	}

	after := p.scrape()
	for _, tc := range []struct {
		delta  float64
		name   string
		labels []string
	}{
		{3, "nudge_events_ingested_total", []string{"source", "dev", "type", "track"}},
		{1, "nudge_events_ingested_total", []string{"source", "dev", "type", "identify"}},
		{1, "nudge_events_duplicate_total", []string{"source", "dev"}},
		{1, "nudge_events_rejected_total", []string{"source", "dev", "reason", "missing_identity"}},
		{1, "nudge_events_rejected_total", []string{"source", "unknown", "reason", "unauthorized"}},
		{0, "nudge_events_dropped_erased_total", nil},
		{1, "nudge_ingest_request_seconds", []string{"endpoint", "batch"}},
		{3, "nudge_ingest_request_seconds", []string{"endpoint", "track"}}, // /v1/t counts as track
		{1, "nudge_wal_appends_total", nil},                                // the duplicate stored nothing
		{1, "nudge_wal_rounds_total", nil},
		{0, "nudge_wal_failed_rounds_total", nil},
		{4, "nudge_profile_events_total", nil},
		{1, "nudge_profiles_created_total", nil},
		{1, "nudge_profile_apply_delay_seconds", nil}, // one log message: the batch, one partition
	} {
		if got := after.get(tc.name, tc.labels...) - before.get(tc.name, tc.labels...); got != tc.delta {
			t.Errorf("%s%v moved by %v, want %v", tc.name, tc.labels, got, tc.delta)
		}
	}
	if n := after.get("nudge_wal_written_bytes_total") - before.get("nudge_wal_written_bytes_total"); n < 100 {
		t.Errorf("the WAL wrote %v bytes for four events", n)
	}
	if lag := after.get("nudge_forward_lag_bytes"); lag != 0 {
		t.Errorf("forward lag %v bytes once the profile read waited for everything", lag)
	}
	if lag := after.get("nudge_consumer_lag_messages", "consumer", "profiles"); lag != 0 {
		t.Errorf("profile consumer lag %v messages once caught up", lag)
	}
	if seq := after.get("nudge_consumer_applied_sequence", "consumer", "profiles"); seq < 1 {
		t.Errorf("applied sequence %v", seq)
	}

	// Once the person is erased, their events are accepted and dropped.
	if code, body := p.admin(http.MethodDelete, "/v1/profiles/metrics-1"); code != 200 {
		t.Fatalf("erase: %d %s", code, body)
	}
	p.mustPost("/v1/track", `{"userId":"metrics-1","event":"Came Back","messageId":"mm-6"}`)
	last := p.scrape()
	for _, tc := range []struct {
		delta  float64
		name   string
		labels []string
	}{
		{1, "nudge_events_dropped_erased_total", nil},
		{1, "nudge_events_ingested_total", []string{"source", "dev", "type", "track"}},
		{1, "nudge_profile_erasures_total", nil},
	} {
		if got := last.get(tc.name, tc.labels...) - after.get(tc.name, tc.labels...); got != tc.delta {
			t.Errorf("after erasure: %s%v moved by %v, want %v", tc.name, tc.labels, got, tc.delta)
		}
	}
}

// TestReadyzFollowsTheEventLog runs nudge on an external JetStream server,
// stops that server and starts it again: /readyz names the event log while
// it is down, ingest keeps answering 200 into the WAL, and nudge is ready
// again, with nothing left to forward, once the server is back. (The
// forwarder's check fails only when its append times out, after 30 s; the
// unit tests cover it.)
func TestReadyzFollowsTheEventLog(t *testing.T) {
	storeDir := t.TempDir()
	ns := startNATS(t, -1, storeDir)
	port := ns.Addr().(*net.TCPAddr).Port
	p := start(t, t.TempDir(), "--nats", ns.ClientURL())
	p.waitReadyz(200)

	ns.Shutdown()
	ns.WaitForShutdown()
	p.mustPost("/v1/track", `{"userId":"r1","event":"While Down","messageId":"rd-1"}`)
	checks := p.waitReadyz(503)
	if checks["event_log"] == "ok" || checks["wal"] != "ok" {
		t.Errorf("with the event log down: %v", checks)
	}
	if lag := p.scrape().get("nudge_forward_lag_bytes"); lag == 0 {
		t.Error("nothing waits to be forwarded while the event log is down")
	}

	startNATS(t, port, storeDir)
	p.waitReadyz(200)
	if got := p.events("r1", 10); len(got) != 1 {
		t.Fatalf("after the event log came back: %d events, want 1", len(got))
	}
	if lag := p.scrape().get("nudge_forward_lag_bytes"); lag != 0 {
		t.Errorf("forward lag %v bytes once the event was read back", lag)
	}
	p.stop()
}

// startNATS runs a JetStream server in the test process on port (-1: a
// free one), storing in dir; it is shut down when the test ends.
func startNATS(t *testing.T, port int, dir string) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: dir, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		t.Fatalf("NATS server on port %d did not start", port)
	}
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return ns
}
