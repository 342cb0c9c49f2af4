package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

func newTestRef(t *testing.T, key string) (*refServer, *httptest.Server, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ref.ndjson")
	s, err := newRefServer(path, key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.f.Close() })
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv, path
}

func post(t *testing.T, url, path, key, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+path, strings.NewReader(body))
	if err != nil {
		t.Error(err)
		return 0, ""
	}
	if key != "" {
		req.SetBasicAuth(key, "")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func batchBody(ids ...string) string {
	var evs []string
	for _, id := range ids {
		evs = append(evs, `{"type":"track","event":"Product Viewed","userId":"u1","messageId":"`+id+`","timestamp":"2026-11-27T07:00:00.000Z","properties":{"a":1},"context":{"ip":"10.0.0.1"}}`)
	}
	return `{"batch":[` + strings.Join(evs, ",") + `]}`
}

// TestRefGroupCommit checks, through the sync seam and without sleeping, that
// the reference answers only after the fdatasync of the round holding the
// request, that the data is in the file before that sync, and that requests
// queued during a sync share the next one.
func TestRefGroupCommit(t *testing.T) {
	s, srv, path := newTestRef(t, "")
	var syncs atomic.Int64
	entered := make(chan int64)
	release := make(chan struct{})
	var sizeAtSync []int64
	s.sync = func() error {
		fi, err := s.f.Stat()
		if err != nil {
			return err
		}
		sizeAtSync = append(sizeAtSync, fi.Size()) // only the commit loop appends
		entered <- syncs.Add(1)
		<-release
		return fdatasync(s.f)
	}
	queued := make(chan struct{}, 16)
	s.queued = func() { queued <- struct{}{} }
	s.start()

	type answer struct {
		code int
		body string
	}
	answers := make(chan answer, 16)
	send := func(id string) {
		code, body := post(t, srv.URL, "/v1/batch", "k", batchBody(id))
		answers <- answer{code, body}
	}
	noAnswer := func(when string) {
		t.Helper()
		select {
		case a := <-answers:
			t.Fatalf("%s: got an answer (%d) before the round's sync returned", when, a.code)
		default:
		}
	}

	go send("a")
	<-queued
	if n := <-entered; n != 1 {
		t.Fatalf("first sync is call %d", n)
	}
	noAnswer("during sync 1")
	for _, id := range []string{"b1", "b2", "b3", "b4", "b5"} {
		go send(id)
	}
	for range 5 {
		<-queued // all five wait for the next round while sync 1 is blocked
	}
	noAnswer("during sync 1, with more queued")
	release <- struct{}{}
	if a := <-answers; a.code != 200 || a.body != `{"success":true}` {
		t.Fatalf("after sync 1: %d %q", a.code, a.body)
	}
	if n := <-entered; n != 2 {
		t.Fatalf("second sync is call %d", n)
	}
	noAnswer("during sync 2")
	release <- struct{}{}
	for range 5 {
		if a := <-answers; a.code != 200 {
			t.Fatalf("after sync 2: %d %q", a.code, a.body)
		}
	}
	if n := syncs.Load(); n != 2 {
		t.Fatalf("%d syncs for 2 rounds", n)
	}

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if sizeAtSync[0] != int64(len(batchBody("a"))+1) || sizeAtSync[1] != int64(len(data)) {
		t.Fatalf("file sizes at sync %v, final %d: data not written before its sync", sizeAtSync, len(data))
	}
	var lines int
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		var b struct{ Batch []refEvent }
		if err := json.Unmarshal(sc.Bytes(), &b); err != nil || len(b.Batch) != 1 {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		lines++
	}
	if lines != 6 {
		t.Fatalf("%d lines in the file, want 6", lines)
	}
}

func TestRefSyncErrorIs500(t *testing.T) {
	s, srv, _ := newTestRef(t, "")
	s.sync = func() error { return errors.New("disk on fire") }
	s.start()
	if code, _ := post(t, srv.URL, "/v1/batch", "k", batchBody("x")); code != 500 {
		t.Fatalf("got %d, want 500", code)
	}
}

func TestRefRequests(t *testing.T) {
	s, srv, path := newTestRef(t, "key")
	s.start()
	track := `{"type":"track","event":"E","anonymousId":"a1","messageId":"m1","timestamp":"2026-11-27T07:00:00.000Z"}`
	for _, c := range []struct {
		name, path, key, body string
		want                  int
	}{
		{"batch", "/v1/batch", "key", batchBody("1", "2", "3"), 200},
		{"track", "/v1/track", "key", track, 200},
		{"no auth", "/v1/batch", "", batchBody("1"), 401},
		{"wrong key", "/v1/batch", "other", batchBody("1"), 401},
		{"bad json", "/v1/batch", "key", `{"batch":[{`, 400},
		{"empty batch", "/v1/batch", "key", `{"batch":[]}`, 400},
		{"no messageId", "/v1/track", "key", `{"type":"track","userId":"u"}`, 400},
		{"no user", "/v1/track", "key", `{"type":"track","messageId":"m"}`, 400},
		{"unknown path", "/v1/identify", "key", track, 404},
	} {
		if code, body := post(t, srv.URL, c.path, c.key, c.body); code != c.want {
			t.Errorf("%s: got %d %q, want %d", c.name, code, body, c.want)
		}
	}
	data, _ := os.ReadFile(path)
	if want := batchBody("1", "2", "3") + "\n" + track + "\n"; string(data) != want {
		t.Errorf("file holds %q, want %q", data, want)
	}
	if s.rounds.Load() != 2 || s.writes.Load() != 2 {
		t.Errorf("rounds %d writes %d, want 2 and 2", s.rounds.Load(), s.writes.Load())
	}
}
