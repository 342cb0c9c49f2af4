package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nudge-dev/nudge"
)

// admin sends an admin request and returns the status and body.
func (p *proc) admin(method, path string) (int, string) {
	p.t.Helper()
	req, _ := http.NewRequest(method, p.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+p.adminToken)
	return do(p.t, req)
}

type profileDoc struct {
	ID         string
	Identities []struct{ Type, ID string }
	Traits     map[string]json.RawMessage
	Computed   struct {
		Counts  map[string]int64
		Revenue json.Number
		Cart    []struct{ SKU, Name string }
	}
	Events []struct{ MessageID, Event string }
}

// profile reads a profile once the consumer has caught up with what was
// acknowledged (a read answers after 5 s with what is applied, saying so in
// Nudge-Profiles-Behind, so a busy machine may need a few).
func (p *proc) profile(id string) profileDoc {
	p.t.Helper()
	var code int
	var body string
	for deadline := time.Now().Add(2 * time.Minute); ; {
		req, _ := http.NewRequest(http.MethodGet, p.url+"/v1/profiles/"+url.PathEscape(id), nil)
		req.Header.Set("Authorization", "Bearer "+p.adminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			p.t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		code, body = resp.StatusCode, string(b)
		if resp.Header.Get("Nudge-Profiles-Behind") == "" || time.Now().After(deadline) {
			break
		}
	}
	if code != 200 {
		p.t.Fatalf("GET /v1/profiles/%s = %d %s", id, code, body)
	}
	var d profileDoc
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		p.t.Fatal(err)
	}
	return d
}

// The seed's cross-device story over HTTP: a phone browses anonymously and
// puts running shoes in the cart, leaves an email; the desktop logs in
// with it. Sent in both orders, one profile holds both devices.
func TestCrossDeviceProfileOverHTTP(t *testing.T) {
	phone := []string{
		`{"type":"track","anonymousId":"phone-1","event":"Product Viewed","properties":{"product_id":"shoe-1"},"messageId":"p1","timestamp":"2026-11-27T09:00:00Z"}`,
		`{"type":"track","anonymousId":"phone-1","event":"Product Added","properties":{"product_id":"shoe-1","sku":"RUN-42","name":"Running shoes","price":89.9},"messageId":"p2","timestamp":"2026-11-27T09:01:00Z"}`,
		`{"type":"identify","anonymousId":"phone-1","traits":{"email":"Ann@Example.com"},"messageId":"p3","timestamp":"2026-11-27T09:02:00Z"}`,
	}
	desktop := []string{
		`{"type":"identify","userId":"user-42","anonymousId":"desk-1","traits":{"email":"ann@example.com","name":"Ann"},"messageId":"d1","timestamp":"2026-11-27T10:00:00Z"}`,
		`{"type":"track","userId":"user-42","event":"Product Viewed","properties":{"product_id":"sock-7"},"messageId":"d2","timestamp":"2026-11-27T10:01:00Z"}`,
	}
	for name, batches := range map[string][][]string{"phone first": {phone, desktop}, "desktop first": {desktop, phone}} {
		t.Run(name, func(t *testing.T) {
			p := start(t, t.TempDir())
			for _, b := range batches {
				p.mustPost("/v1/batch", `{"batch":[`+strings.Join(b, ",")+`]}`)
			}
			for _, id := range []string{"phone-1", "desk-1", "user-42", "ANN@example.com"} {
				d := p.profile(id)
				if len(d.Identities) != 4 || len(d.Computed.Cart) != 1 || d.Computed.Cart[0].SKU != "RUN-42" {
					t.Fatalf("by %s: identities %v, cart %+v", id, d.Identities, d.Computed.Cart)
				}
				if d.Computed.Counts["Product Viewed"] != 2 || len(d.Events) != 5 {
					t.Fatalf("by %s: counts %v, %d recent events, want both devices' 5", id, d.Computed.Counts, len(d.Events))
				}
			}
			// Caught up (the reads above), a read that does not wait
			// answers the same, and says it is not behind.
			req, _ := http.NewRequest(http.MethodGet, p.url+"/v1/profiles/user-42?wait=0", nil)
			req.Header.Set("Authorization", "Bearer "+p.adminToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var d profileDoc
			err = json.NewDecoder(resp.Body).Decode(&d)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 || resp.Header.Get("Nudge-Profiles-Behind") != "" || len(d.Events) != 5 {
				t.Fatalf("wait=0: %d, behind %q, %d events, %v", resp.StatusCode, resp.Header.Get("Nudge-Profiles-Behind"), len(d.Events), err)
			}
			code, body := p.admin(http.MethodGet, "/v1/profiles/user-42/events?limit=2")
			var page struct {
				Events []struct{ MessageID string }
				Next   string
			}
			if code != 200 || json.Unmarshal([]byte(body), &page) != nil || len(page.Events) != 2 || page.Events[0].MessageID != "d2" || page.Next == "" {
				t.Fatalf("first page: %d %s", code, body)
			}
			code, body = p.admin(http.MethodGet, "/v1/profiles/user-42/events?limit=10&before="+page.Next)
			page.Next = ""
			if code != 200 || json.Unmarshal([]byte(body), &page) != nil || len(page.Events) != 3 || page.Next != "" {
				t.Fatalf("second page: %d %s", code, body)
			}
		})
	}
}

func TestProfileAPIErrors(t *testing.T) {
	p := start(t, t.TempDir())
	for _, tc := range []struct {
		method, path, token string
		code                int
		want                string
	}{
		{"GET", "/v1/profiles/nobody", p.adminToken, 404, `"code":"not_found"`},
		{"DELETE", "/v1/profiles/nobody", p.adminToken, 404, `no profile has the identifier \"nobody\"`},
		{"GET", "/v1/profiles/nobody/export", p.adminToken, 404, `"code":"not_found"`},
		{"GET", "/v1/profiles/u/events?limit=0", p.adminToken, 400, `"field":"limit"`},
		{"GET", "/v1/profiles/u/events?before=yesterday", p.adminToken, 400, `"field":"before"`},
		{"GET", "/v1/profiles/u?wait=soon", p.adminToken, 400, `"field":"wait"`},
		{"GET", "/v1/profiles/u/events?wait=-1s", p.adminToken, 400, `wait must be a duration from 0 to 10s`},
		{"GET", "/v1/profiles/u/export?wait=1m", p.adminToken, 400, `"field":"wait"`},
		{"GET", "/v1/profiles/nobody?wait=0", p.adminToken, 404, `"code":"not_found"`},
		{"GET", "/v1/profiles/u", "wrong", 401, `"code":"unauthorized"`},
		{"DELETE", "/v1/profiles/u", "", 401, `"code":"unauthorized"`},
	} {
		req, _ := http.NewRequest(tc.method, p.url+tc.path, nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		code, body := do(t, req)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s %s = %d %s, want %d with %s", tc.method, tc.path, code, body, tc.code, tc.want)
		}
	}
}

// scanDir reports the files under dir that hold any of the needles, in
// any letter case.
func scanDir(t *testing.T, dir string, needles ...string) []string {
	t.Helper()
	var hits []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		low := bytes.ToLower(b)
		for _, n := range needles {
			if bytes.Contains(low, bytes.ToLower([]byte(n))) {
				hits = append(hits, fmt.Sprintf("%s holds %q", path, n))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hits
}

// Erasure: the profile, its links and its events are gone from the API;
// no file of the data directory (the WAL, the embedded event log, the
// profile store, the keyring) holds the email or the user id; and a later
// event with the same email brings nobody back.
func TestEraseLeavesNoTrace(t *testing.T) {
	dir := t.TempDir()
	p := start(t, dir)
	const email, user = "erase.me@example.org", "user-erase-7781"
	p.mustPost("/v1/batch", `{"batch":[
		{"type":"identify","userId":"`+user+`","anonymousId":"anon-erase","traits":{"email":"`+email+`","name":"Eve"}},
		{"type":"track","userId":"`+user+`","event":"Order Completed","properties":{"revenue":12.5,"email":"`+email+`"}},
		{"type":"track","userId":"keep-me","event":"Signed Up","traits":{"email":"keep@example.org"}}]}`)
	d := p.profile(email)
	if d.Computed.Counts["Order Completed"] != 1 {
		t.Fatalf("before erasure: %+v", d)
	}
	code, body := p.admin(http.MethodGet, "/v1/profiles/"+user+"/export")
	if code != 200 || !strings.Contains(body, email) || !strings.Contains(body, "Order Completed") {
		t.Fatalf("export: %d %s", code, body)
	}
	// At rest, personal fields are sealed from the start.
	if hits := scanDir(t, dir, email, user); len(hits) > 0 {
		t.Fatalf("personal data in the clear before erasure:\n%s", strings.Join(hits, "\n"))
	}

	code, body = p.admin(http.MethodDelete, "/v1/profiles/"+email)
	if code != 200 || !strings.Contains(body, `"erased":true`) {
		t.Fatalf("DELETE: %d %s", code, body)
	}
	for _, id := range []string{email, user, "anon-erase", d.ID} {
		if code, _ := p.admin(http.MethodGet, "/v1/profiles/"+id); code != 404 {
			t.Errorf("GET /v1/profiles/%s after erasure = %d, want 404", id, code)
		}
	}
	// The log keeps the erasure record itself (pseudonyms only), nothing else.
	for _, e := range p.events(user, 100) {
		if e.Type != nudge.Erase {
			t.Errorf("the event log still gives an event of the erased user: %+v", e)
		}
	}
	// A later event with the same email, from a new device, is dropped.
	p.mustPost("/v1/track", `{"anonymousId":"new-phone","event":"Page Viewed","context":{"traits":{"email":"`+email+`"}}}`)
	p.mustPost("/v1/track", `{"userId":"`+user+`","event":"Came Back"}`)
	for _, id := range []string{"new-phone", email, user} {
		if code, _ := p.admin(http.MethodGet, "/v1/profiles/"+id); code != 404 {
			t.Errorf("GET /v1/profiles/%s after a later event = %d, want 404", id, code)
		}
	}
	if d := p.profile("keep@example.org"); d.Computed.Counts["Signed Up"] != 1 {
		t.Errorf("another customer was touched: %+v", d)
	}
	p.stop()
	if hits := scanDir(t, dir, email, user); len(hits) > 0 {
		t.Fatalf("after erasure:\n%s", strings.Join(hits, "\n"))
	}
	// And after a restart (the log replayed into the profiles) still nothing.
	p = start(t, dir)
	if code, _ := p.admin(http.MethodGet, "/v1/profiles/"+email); code != 404 {
		t.Fatalf("after a restart the erased profile is back: %d", code)
	}
}

// kill -9 in the middle of a stream: every acknowledged event is counted
// once; requests cut off by the kill are retried after the restart, as an
// SDK does, and the dedup index keeps a stored one from counting twice.
func TestProfileCountersExactAfterKill(t *testing.T) {
	dir := t.TempDir()
	p := start(t, dir)
	const clients, requests, perBatch, users = 8, 60, 20, 10
	var mu sync.Mutex
	var failed []string // bodies of requests without an answer
	sent := 0
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range requests {
				var items []string
				for i := range perBatch {
					items = append(items, fmt.Sprintf(`{"type":"track","userId":"kill-%d","event":"Product Viewed","messageId":"k-%d-%d-%d"}`, i%users, c, r, i))
				}
				body := `{"batch":[` + strings.Join(items, ",") + `]}`
				req, _ := http.NewRequest(http.MethodPost, p.url+"/v1/batch", strings.NewReader(body))
				req.SetBasicAuth(p.writeKey, "")
				resp, err := http.DefaultClient.Do(req)
				mu.Lock()
				sent++
				if err != nil || resp.StatusCode != 200 {
					failed = append(failed, body)
				}
				if sent == clients*requests/2 {
					p.cmd.Process.Kill() // mid-stream
				}
				mu.Unlock()
				if resp != nil {
					resp.Body.Close()
				}
			}
		}()
	}
	wg.Wait()
	<-p.exited
	if len(failed) == 0 {
		t.Fatal("the kill cut no request off; the test proves nothing")
	}
	p = start(t, dir)
	for _, body := range failed {
		p.mustPost("/v1/batch", body)
	}
	want := int64(clients * requests * perBatch / users)
	for u := range users {
		if n := p.profile(fmt.Sprintf("kill-%d", u)).Computed.Counts["Product Viewed"]; n != want {
			t.Errorf("kill-%d counted %d views, want %d", u, n, want)
		}
	}
}
