package ingest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nudge-dev/nudge"
	"github.com/nudge-dev/nudge/dedup"
	"github.com/nudge-dev/nudge/wal"
)

// fakeMetrics records what the handler reports, as "kind source label=n".
type fakeMetrics struct {
	mu     sync.Mutex
	counts map[string]int
	served []string
}

var _ Metrics = (*fakeMetrics)(nil)

func (m *fakeMetrics) add(key string, n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.counts == nil {
		m.counts = map[string]int{}
	}
	m.counts[key] += n
}

func (m *fakeMetrics) Ingested(source string, typ nudge.EventType, n int) {
	m.add("ingested "+source+" "+string(typ), n)
}
func (m *fakeMetrics) Rejected(source, code string) { m.add("rejected "+source+" "+code, 1) }
func (m *fakeMetrics) Duplicates(source string, n int) {
	m.add("duplicates "+source, n)
}
func (m *fakeMetrics) DroppedErased(n int) { m.add("erased", n) }
func (m *fakeMetrics) Served(endpoint string, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.served = append(m.served, fmt.Sprintf("%s %s", endpoint, d))
}

// The handler reports every request once, with what became of its events.
func TestHandlerMetrics(t *testing.T) {
	w, err := wal.Open(t.TempDir(), wal.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	// Every call of the clock moves it by a millisecond: a request takes 1 ms.
	clock := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	now := func() time.Time { clock = clock.Add(time.Millisecond); return clock }
	keys := testKeys(t)
	var m fakeMetrics
	h := NewHandler(Config{Sources: map[string]string{"k": "web"}, Limits: DefaultLimits(), Partitions: 4, Keys: keys, Metrics: &m},
		w, dedup.New(time.Hour, 0), now, quiet())
	mux := http.NewServeMux()
	h.Register(mux)
	if err := keys.Shred(keys.Pseudonym("gone")); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		path, body string
		code       int
	}{
		{"/v1/batch", `{"batch":[
			{"type":"track","userId":"u","event":"E","messageId":"m1"},
			{"type":"track","userId":"u","event":"E","messageId":"m2"},
			{"type":"identify","userId":"u","messageId":"m3"},
			{"type":"track","userId":"u","event":"E","messageId":"m4"},
			{"type":"track","userId":"u","event":"E","messageId":"m1"}]}`, 200},
		{"/v1/t", `{"userId":"u","event":"E","messageId":"m1"}`, 200},
		{"/v1/track", `{"userId":"gone","event":"E","messageId":"m5"}`, 200},
		{"/v1/track", `{"userId":"u","event":"E"`, 400},
	} {
		if rec := post(mux, tc.path, tc.body); rec.Code != tc.code {
			t.Fatalf("POST %s = %d %s, want %d", tc.path, rec.Code, rec.Body, tc.code)
		}
	}
	// No write key in the body: the source is unknown.
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/track", strings.NewReader(`{"userId":"u","event":"E"}`)))
	if rec.Code != 401 {
		t.Fatalf("no key: %d", rec.Code)
	}
	rec = httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/v1/cloudevents", strings.NewReader(`{"specversion":"1.0","id":"c1","source":"/shop","type":"Order Completed","subject":"u"}`))
	req.Header.Set("Content-Type", "application/cloudevents+json")
	req.SetBasicAuth("k", "")
	mux.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("cloudevent: %d %s", rec.Code, rec.Body)
	}

	want := map[string]int{
		"ingested web track":        5, // m1 m2 m4, m5 (erased), c1
		"ingested web identify":     1,
		"duplicates web":            2, // m1 in the batch, m1 again
		"erased":                    1,
		"rejected web invalid_json": 1,
		"rejected  unauthorized":    1,
	}
	if fmt.Sprint(m.counts) != fmt.Sprint(want) {
		t.Errorf("counts = %v\nwant     %v", m.counts, want)
	}
	wantServed := []string{"batch 1ms", "track 1ms", "track 1ms", "track 1ms", "track 1ms", "cloudevents 1ms"}
	if !slices.Equal(m.served, wantServed) {
		t.Errorf("served = %q, want %q", m.served, wantServed)
	}
}

// A handler without metrics counts nothing and works all the same.
func TestHandlerWithoutMetrics(t *testing.T) {
	_, _, mux := newTestHandler(t)
	if rec := post(mux, "/v1/track", `{"userId":"u","event":"E"}`); rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
}

func TestForwarderLagAndErr(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const parts = 2
		w, log := openWAL(t, parts, wal.Options{NoSync: true})
		f := NewForwarder(w, log, testKeys(t), quiet())
		f.Recover(context.Background())
		appendEvents(t, w, parts, "x1", "x2")
		end, _ := w.Committed()
		if lag := f.Lag(); lag != end || lag == 0 {
			t.Fatalf("lag before forwarding = %d, want the whole WAL, %d bytes", lag, end)
		}

		log.mu.Lock()
		log.fail = 1
		log.mu.Unlock()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- f.Run(ctx) }()
		synctest.Wait() // the first round failed; Run waits out its backoff
		if err := f.Err(); err == nil || f.Lag() != end {
			t.Fatalf("after a failed round: Err %v, lag %d", err, f.Lag())
		}
		if err := f.WaitForwarded(ctx, end); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if err := f.Err(); err != nil || f.Lag() != 0 {
			t.Fatalf("once forwarded: Err %v, lag %d", err, f.Lag())
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v", err)
		}
	})
}
