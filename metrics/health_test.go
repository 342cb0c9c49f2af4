package metrics_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/nudge-dev/nudge/metrics"
	"github.com/nudge-dev/nudge/wal"
)

type readyBody struct {
	Ready  bool
	Checks map[string]string
}

func ready(t *testing.T, h http.Handler) (int, readyBody) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	var b readyBody
	if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil {
		t.Fatalf("/readyz body %q: %v", rec.Body, err)
	}
	return rec.Code, b
}

func TestHealthz(t *testing.T) {
	rec := httptest.NewRecorder()
	metrics.Healthz.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if rec.Code != 200 || rec.Body.String() != "ok\n" {
		t.Fatalf("/healthz = %d %q", rec.Code, rec.Body)
	}
}

func TestReadiness(t *testing.T) {
	log := &fakeLog{}
	log.seq.Store(1200)
	var applied atomic.Uint64
	var walClosed atomic.Bool
	var fwdErr atomic.Pointer[error]
	var r metrics.Readiness
	r.Add("event_log", metrics.EventLogCheck(log))
	r.Add("wal", metrics.WALCheck(func() wal.Stats { return wal.Stats{Closed: walClosed.Load()} }))
	r.Add("forwarder", metrics.ForwarderCheck(func() error {
		if p := fwdErr.Load(); p != nil {
			return *p
		}
		return nil
	}))
	r.Add("profiles", metrics.CaughtUpCheck(log, metrics.Consumer{Name: "profiles", Applied: applied.Load}, 1000))

	code, b := ready(t, &r)
	want := map[string]string{"event_log": "ok", "wal": "ok", "forwarder": "ok", "profiles": "catching up: 1200 messages behind"}
	if code != 503 || b.Ready || !equal(b.Checks, want) {
		t.Fatalf("catching up: %d %+v, want 503 %v", code, b, want)
	}

	applied.Store(1000) // what the log held at start
	code, b = ready(t, &r)
	if code != 200 || !b.Ready || len(b.Checks) != 4 {
		t.Fatalf("caught up: %d %+v", code, b)
	}
	applied.Store(0) // caught up once is enough: lag is a metric, not readiness
	if code, b = ready(t, &r); code != 200 {
		t.Fatalf("after catching up once: %d %+v", code, b)
	}

	err := errors.New("nats: no responders")
	fwdErr.Store(&err)
	walClosed.Store(true)
	code, b = ready(t, &r)
	want = map[string]string{"event_log": "ok", "wal": "closed", "forwarder": "failing, retrying: nats: no responders", "profiles": "ok"}
	if code != 503 || b.Ready || !equal(b.Checks, want) {
		t.Fatalf("failing: %d %+v, want 503 %v", code, b, want)
	}
}

// An event log that does not answer fails the check within a second; the
// answer names it.
func TestReadinessEventLogTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := &fakeLog{block: true}
		var r metrics.Readiness
		r.Add("event_log", metrics.EventLogCheck(log))
		r.Add("profiles", metrics.CaughtUpCheck(log, metrics.Consumer{Name: "profiles", Applied: func() uint64 { return 0 }}, 5))
		r.Add("wal", func(context.Context) error { return nil })
		code, b := ready(t, &r)
		want := map[string]string{"event_log": "not answering within 1s", "profiles": "catching up: applied 0 of 5 messages", "wal": "ok"}
		if code != 503 || !equal(b.Checks, want) {
			t.Fatalf("%d %+v, want 503 %v", code, b, want)
		}
	})
}

func equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}
