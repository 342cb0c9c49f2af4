package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// sink is a Segment-ish test server that checks and counts what it gets.
type sink struct {
	t        *testing.T
	key      string
	status   func(n int64) int // status for the n-th request (from 1); nil: 200
	requests atomic.Int64
	mu       sync.Mutex
	events   int
	ids      map[string]bool
	dups     int
	users    map[string]bool
	sizes    []int
	paths    map[string]int
}

func newSink(t *testing.T) (*sink, *httptest.Server) {
	s := &sink{t: t, key: "wk", ids: map[string]bool{}, users: map[string]bool{}, paths: map[string]int{}}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv
}

func (s *sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := s.requests.Add(1)
	if user, pass, ok := r.BasicAuth(); !ok || user != s.key || pass != "" {
		s.t.Errorf("auth: %q %q %v", user, pass, ok)
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			s.t.Error(err)
			return
		}
		body = zr
	}
	data, err := io.ReadAll(body)
	if err != nil {
		s.t.Error(err)
		return
	}
	var raw []json.RawMessage
	switch r.URL.Path {
	case "/v1/batch":
		var b struct{ Batch []json.RawMessage }
		if err := json.Unmarshal(data, &b); err != nil {
			s.t.Errorf("batch body is not JSON: %v", err)
		}
		raw = b.Batch
	case "/v1/track":
		raw = []json.RawMessage{data}
	}
	s.mu.Lock()
	s.paths[r.URL.Path]++
	for _, m := range raw {
		var e refEvent
		if err := json.Unmarshal(m, &e); err != nil || e.Type != "track" || e.Event == "" || e.UserID == "" || e.MessageID == "" {
			s.t.Errorf("bad event %s: %v", m, err)
		}
		if _, err := time.Parse(time.RFC3339Nano, e.Timestamp); err != nil {
			s.t.Errorf("timestamp %q: %v", e.Timestamp, err)
		}
		if s.ids[e.MessageID] {
			s.dups++
		}
		s.ids[e.MessageID] = true
		s.users[e.UserID] = true
		s.sizes = append(s.sizes, len(m))
		s.events++
	}
	s.mu.Unlock()
	code := 200
	if s.status != nil {
		code = s.status(n)
	}
	w.WriteHeader(code)
	io.WriteString(w, `{"success":true}`)
}

func testConfig(url string) loadConfig {
	return loadConfig{
		URL: url, WriteKey: "wk", Mode: "batch", Batch: 10, EventSize: 500, Users: 1000,
		Clients: 4, Requests: 40, Timeout: 5 * time.Second, Late: 2 * time.Millisecond,
	}
}

func checkSink(t *testing.T, s *sink, res *Result, wantRequests int64, eventSize int) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if got := s.requests.Load(); got != wantRequests || res.OKRequests != wantRequests || res.Requests != wantRequests {
		t.Errorf("server saw %d requests, result says %d ok of %d; want %d", got, res.OKRequests, res.Requests, wantRequests)
	}
	if int64(s.events) != res.Events || res.Events != wantRequests*int64(res.Batch) {
		t.Errorf("server saw %d events, result says %d; want %d", s.events, res.Events, wantRequests*int64(res.Batch))
	}
	if s.dups != 0 || len(s.ids) != s.events {
		t.Errorf("%d duplicate messageIds among %d events", s.dups, s.events)
	}
	for _, n := range s.sizes {
		if d := n - eventSize; d*10 > eventSize || -d*10 > eventSize {
			t.Errorf("event of %d bytes, want %d ±10%%", n, eventSize)
			break
		}
	}
	if res.Latency.P50 <= 0 || res.Latency.Max < res.Latency.P99 || res.Latency.P99 < res.Latency.P50 {
		t.Errorf("latency summary is off: %+v", res.Latency)
	}
	if res.EventsPerSec <= 0 || res.MeasureSec <= 0 {
		t.Errorf("rates: %v events/s over %v s", res.EventsPerSec, res.MeasureSec)
	}
}

func TestRunClosedLoopBatch(t *testing.T) {
	s, srv := newSink(t)
	cfg := testConfig(srv.URL)
	cfg.PID = os.Getpid()
	res, err := runLoad(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkSink(t, s, res, 40, 500)
	if s.paths["/v1/batch"] != 40 {
		t.Errorf("paths %v", s.paths)
	}
	if len(s.users) < 100 {
		t.Errorf("only %d distinct userIds in 400 events over 1000 users", len(s.users))
	}
	if res.Target == nil || res.Target.PID != cfg.PID || res.Target.RSSMaxMB <= 0 || res.Target.Error != "" {
		t.Errorf("target stats: %+v", res.Target)
	}
}

func TestRunTrackGzip(t *testing.T) {
	s, srv := newSink(t)
	cfg := testConfig(srv.URL)
	cfg.Mode, cfg.Batch, cfg.EventSize, cfg.Gzip, cfg.Requests = "track", 1, 2000, true, 30
	res, err := runLoad(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkSink(t, s, res, 30, 2000)
	if s.paths["/v1/track"] != 30 {
		t.Errorf("paths %v", s.paths)
	}
}

func TestRunOpenLoop(t *testing.T) {
	s, srv := newSink(t)
	cfg := testConfig(srv.URL)
	cfg.Rate, cfg.Requests, cfg.Clients, cfg.Warmup = 1000, 50, 16, 20*time.Millisecond
	start := time.Now()
	res, err := runLoad(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	// 20 warmup requests, then 50 measured ones, on a 1 ms timetable.
	if el := time.Since(start); el < 60*time.Millisecond {
		t.Errorf("70 requests at 1000/s took %v: not on the timetable", el)
	}
	if got := s.requests.Load(); got != 70 {
		t.Errorf("server saw %d requests, want 20 warmup + 50", got)
	}
	if res.OKRequests != 50 || res.Events != 500 || res.StartLag == nil {
		t.Errorf("result: %d ok, %d events, start lag %v", res.OKRequests, res.Events, res.StartLag)
	}
	if s.dups != 0 {
		t.Errorf("%d duplicate messageIds", s.dups)
	}
}

func TestRunDurationAndErrors(t *testing.T) {
	s, srv := newSink(t)
	s.status = func(n int64) int {
		if n%4 == 0 {
			return 503
		}
		return 200
	}
	cfg := testConfig(srv.URL)
	cfg.Requests, cfg.Duration = 0, 150*time.Millisecond
	res, err := runLoad(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	total := s.requests.Load()
	if res.Requests != total || res.Errors["503"] != total/4 || res.OKRequests != total-total/4 {
		t.Errorf("server saw %d requests; result: %d requests, %d ok, errors %v", total, res.Requests, res.OKRequests, res.Errors)
	}
	if res.Events != res.OKRequests*10 {
		t.Errorf("%d events for %d ok requests of 10", res.Events, res.OKRequests)
	}
	if res.MeasureSec < 0.15 || res.MeasureSec > 1 {
		t.Errorf("measured %v s for a 150ms run", res.MeasureSec)
	}
}

func TestRunAgainstReference(t *testing.T) {
	_, srv, _ := newTestRefStarted(t)
	cfg := testConfig(srv.URL)
	res, err := runLoad(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.OKRequests != 40 || len(res.Errors) != 0 {
		t.Fatalf("against the reference: %d ok, errors %v (%s)", res.OKRequests, res.Errors, res.FirstError)
	}
	cfg.Gzip = true
	if res, err = runLoad(context.Background(), cfg); err != nil || res.OKRequests != 40 || len(res.Errors) != 0 {
		t.Fatalf("gzipped, against the reference: %v, %d ok, errors %v (%s)", err, res.OKRequests, res.Errors, res.FirstError)
	}
}

func TestRunNoServer(t *testing.T) {
	_, srv := newSink(t)
	srv.Close()
	cfg := testConfig(srv.URL)
	cfg.Requests = 8
	res, err := runLoad(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors["transport"] != 8 || res.OKRequests != 0 || res.FirstError == "" {
		t.Errorf("errors %v, %d ok, first error %q", res.Errors, res.OKRequests, res.FirstError)
	}
}

func newTestRefStarted(t *testing.T) (*refServer, *httptest.Server, string) {
	s, srv, path := newTestRef(t, "wk")
	s.start()
	return s, srv, path
}

func TestRunMainJSON(t *testing.T) {
	_, srv := newSink(t)
	var out, errOut bytes.Buffer
	err := runMain(context.Background(), []string{"--url", srv.URL, "--write-key", "wk", "--requests", "5", "--clients", "2",
		"--warmup", "0s", "--batch", "3", "--json"}, &out, &errOut)
	if err != nil {
		t.Fatal(err)
	}
	var res Result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("--json output %q: %v", out.String(), err)
	}
	if res.OKRequests != 5 || res.Events != 15 || res.Batch != 3 {
		t.Errorf("JSON result: %+v", res)
	}
	if !strings.Contains(errOut.String(), "events/s") {
		t.Errorf("text report missing from stderr: %q", errOut.String())
	}
}

func TestEventsFlag(t *testing.T) {
	parse := func(args ...string) (loadConfig, error) {
		var c loadConfig
		fs := flag.NewFlagSet("run", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		c.register(fs)
		if err := fs.Parse(args); err != nil {
			return c, err
		}
		return c, c.finish(fs)
	}
	c, err := parse("--events", "Trigger Probe,Order Completed", "--batch", "3")
	if err != nil {
		t.Fatal(err)
	}
	var b struct{ Batch []struct{ Event string } }
	if err := json.Unmarshal(newBodyTemplate("run1", false, c.Batch, 500, 10, c.Events).body, &b); err != nil {
		t.Fatal(err)
	}
	if len(b.Batch) != 3 || b.Batch[0].Event != "Trigger Probe" || b.Batch[1].Event != "Order Completed" || b.Batch[2].Event != "Trigger Probe" {
		t.Errorf("events %+v", b.Batch)
	}
	if _, err := parse("--events", `Bad "name"`); err == nil || !strings.Contains(err.Error(), `Bad \"name\"`) {
		t.Errorf("a quoted name: %v", err)
	}
}

func TestBodyTemplate(t *testing.T) {
	for _, size := range []int{100, 400, 500, 4096} {
		tm := newBodyTemplate("run1", false, 7, size, 100000, shopEvents)
		var b struct{ Batch []json.RawMessage }
		if err := json.Unmarshal(tm.body, &b); err != nil || len(b.Batch) != 7 {
			t.Fatalf("size %d: %v, %d events", size, err, len(b.Batch))
		}
		for i, e := range b.Batch {
			// Sizes below the unpadded event (about 320 bytes) get the unpadded event.
			if len(e) != tm.eventLen[i] || size >= 400 && len(e) != size || size < 400 && len(e) > 340 {
				t.Errorf("size %d: event %d is %d bytes", size, i, len(e))
			}
		}
	}
	var ctr atomic.Uint64
	tm := newBodyTemplate("run1", true, 1, 500, 7, shopEvents)
	m := newBodyMaker(tm, &ctr, 1, false)
	now := time.Date(2026, 11, 27, 7, 0, 0, 123e6, time.UTC)
	body := m.next(now)
	var e refEvent
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatal(err)
	}
	if e.MessageID != "run1-0000000000000000" || e.Timestamp != "2026-11-27T07:00:00.123000Z" || len(e.UserID) != 2 || e.UserID[0] != 'u' {
		t.Errorf("event %+v", e)
	}
	json.Unmarshal(m.next(now), &e)
	if e.MessageID != "run1-0000000000000001" {
		t.Errorf("second messageId %q", e.MessageID)
	}
}

func TestPutDigits(t *testing.T) {
	b := []byte("xxxxx")
	putDigits(b, 42)
	if string(b) != "00042" {
		t.Errorf("%s", b)
	}
	putDigits(b[:2], 123)
	if string(b[:2]) != "23" {
		t.Errorf("%s", b[:2])
	}
}
