package ingest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nudge-dev/nudge"
	"github.com/nudge-dev/nudge/api"
	"github.com/nudge-dev/nudge/dedup"
	"github.com/nudge-dev/nudge/wal"
)

func newTestHandler(t *testing.T) (*Handler, *wal.WAL, *http.ServeMux) {
	t.Helper()
	w, err := wal.Open(t.TempDir(), wal.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	clock := func() time.Time { return time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC) }
	h := NewHandler(Config{Sources: map[string]string{"k": "web"}, Limits: DefaultLimits(), Partitions: 4, Keys: testKeys(t)},
		w, dedup.New(time.Hour, 0), clock, quiet())
	mux := http.NewServeMux()
	h.Register(mux)
	return h, w, mux
}

func post(mux *http.ServeMux, path, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.SetBasicAuth("k", "")
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	return rec
}

// A store that cannot take the events answers 503 with Retry-After, never
// a 200, and the SDK's retry is not taken for a duplicate.
func TestUnavailableStoreAnswers503(t *testing.T) {
	h, w, mux := newTestHandler(t)
	w.Close()
	rec := post(mux, "/v1/track", `{"userId":"u","event":"E","messageId":"m1"}`)
	if rec.Code != 503 || rec.Header().Get("Retry-After") == "" || !strings.Contains(rec.Body.String(), `"code":"unavailable"`) {
		t.Fatalf("closed WAL: %d %v %s", rec.Code, rec.Header(), rec.Body)
	}
	c, err := h.dedup.Claim(context.Background(), []dedup.Key{dedup.KeyOf("web", "m1")}, h.now())
	if err != nil || !c.Fresh()[0] {
		t.Fatalf("after a failed write the messageId is still claimed (%v)", err)
	}
}

func TestStoreErrorMapping(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
	}{
		{fmt.Errorf("append: %w", syscall.ENOSPC), 503},
		{wal.ErrClosed, 503},
		{fmt.Errorf("disk on fire"), 500},
	} {
		if got := storeError(tc.err); got.Status != tc.code {
			t.Errorf("storeError(%v) = %d, want %d", tc.err, got.Status, tc.code)
		}
	}
}

func TestDuplicateWithinAndAcrossRequests(t *testing.T) {
	_, w, mux := newTestHandler(t)
	body := `{"batch":[{"type":"track","userId":"u","event":"E","messageId":"m1"},{"type":"track","userId":"u","event":"E","messageId":"m1"}]}`
	for range 2 {
		if rec := post(mux, "/v1/batch", body); rec.Code != 200 {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
	}
	records := 0
	w.Read(0, func(_ uint64, rec []byte) error {
		records++
		n := 0
		eachEntry(rec, func(p int, payload []byte) {
			if p == keysEntry {
				return
			}
			evs, err := nudge.DecodeEvents(payload)
			if err != nil {
				t.Error(err)
			}
			n += len(evs)
		})
		if n != 1 {
			t.Errorf("a record holds %d events, want the one fresh event", n)
		}
		return nil
	})
	if records != 1 {
		t.Fatalf("%d WAL records, want 1: the second request was all duplicates", records)
	}
}

func TestOversizedBodyIs413(t *testing.T) {
	_, _, mux := newTestHandler(t)
	rec := post(mux, "/v1/track", `{"userId":"u","event":"E","properties":{"p":"`+strings.Repeat("x", 600<<10)+`"}}`)
	if rec.Code != 413 || !strings.Contains(rec.Body.String(), api.CodeBatchTooLarge) {
		t.Fatalf("600 KB body: %d %s", rec.Code, rec.Body)
	}
}
