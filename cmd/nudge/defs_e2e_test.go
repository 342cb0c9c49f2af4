package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func (p *proc) adminPut(path, body string) (int, string) {
	p.t.Helper()
	req, _ := http.NewRequest(http.MethodPut, p.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+p.adminToken)
	return do(p.t, req)
}

const apiJourney = `name: Hello
trigger:
  event: Signed Up
steps:
  - id: hello
    send:
      channel: log
      content:
        subject: Hello
  - id: pause
    wait:
      duration: 1h
`

// Journeys through the admin API: each change a new version, kept across
// a restart; a delete stops new runs.
func TestJourneysThroughTheAdminAPI(t *testing.T) {
	data := t.TempDir()
	p := start(t, data)
	check := func(code int, body string, wantCode int, want ...string) {
		t.Helper()
		if code != wantCode {
			t.Fatalf("answer %d %s, want %d", code, body, wantCode)
		}
		for _, w := range want {
			if !strings.Contains(body, w) {
				t.Fatalf("answer %d %s lacks %s", code, body, w)
			}
		}
	}
	code, body := p.adminPut("/v1/journeys/hello", apiJourney)
	check(code, body, 201, `"version":1`)
	code, body = p.adminPut("/v1/journeys/hello", apiJourney)
	check(code, body, 200, `"version":1`)
	code, body = p.adminPut("/v1/journeys/hello", strings.Replace(apiJourney, "1h", "2h", 1))
	check(code, body, 200, `"version":2`)
	code, body = p.admin(http.MethodGet, "/v1/journeys/hello")
	check(code, body, 200, `"version":2`, `"versions":[1,2]`, `"trigger":{"event":"Signed Up","kind":"event"`,
		`{"id":"hello","type":"send","next":["pause"],"label":"send log: Hello"}`, `"label":"wait 2h"`, `"source":"id: \"hello\"\nname: Hello`)
	// Errors name the line and the field.
	code, body = p.adminPut("/v1/journeys/hello", strings.Replace(apiJourney, "duration: 1h", "duration: 1 hourz", 1))
	check(code, body, 400, `"code":"invalid_journey"`, `"field":"steps[1].wait.duration"`, `line 12: steps[1].wait.duration`)
	code, body = p.adminPut("/v1/journeys/hello", "id: other\n"+apiJourney)
	check(code, body, 400, `"field":"id"`, `line 1: id: is \"other\"`)
	// The shipped journeys are versions too.
	code, body = p.admin(http.MethodGet, "/v1/journeys/welcome")
	check(code, body, 200, `"version":1`, `"label":"wait for Order Completed (2d)"`)
	code, _ = p.admin(http.MethodDelete, "/v1/journeys/welcome")
	check(code, "", 204)
	code, body = p.admin(http.MethodDelete, "/v1/journeys/welcome")
	check(code, body, 404, "not_found")
	code, body = p.admin(http.MethodGet, "/v1/journeys/welcome")
	check(code, body, 404, "not_found")
	p.stop()

	p = start(t, data)
	code, body = p.admin(http.MethodGet, "/v1/journeys/hello")
	check(code, body, 200, `"version":2`, `"versions":[1,2]`)
	code, body = p.admin(http.MethodGet, "/v1/journeys/welcome")
	check(code, body, 404, "not_found")
	code, body = p.admin(http.MethodGet, "/v1/journeys")
	check(code, body, 200, `"id":"hello","name":"Hello","version":2`)
	p.stop()
}

// A journey file edited between two starts is a new version.
func TestEditedJourneyFileIsANewVersion(t *testing.T) {
	dir := t.TempDir()
	jdir := filepath.Join(dir, "journeys")
	os.MkdirAll(jdir, 0o700)
	file := filepath.Join(jdir, "hello.yaml")
	os.WriteFile(file, []byte("id: hello\n"+apiJourney), 0o600)
	p := start(t, filepath.Join(dir, "data"), "--journeys", jdir)
	code, body := p.admin(http.MethodGet, "/v1/journeys/hello")
	if code != 200 || !strings.Contains(body, `"version":1`) {
		t.Fatalf("GET = %d %s", code, body)
	}
	p.stop()
	os.WriteFile(file, []byte("id: hello\n"+strings.Replace(apiJourney, "1h", "3h", 1)), 0o600)
	p = start(t, filepath.Join(dir, "data"), "--journeys", jdir)
	code, body = p.admin(http.MethodGet, "/v1/journeys/hello")
	if code != 200 || !strings.Contains(body, `"versions":[1,2]`) || !strings.Contains(body, "wait 3h") {
		t.Fatalf("GET after the edit = %d %s", code, body)
	}
	p.stop()
}

const simJourney = `id: greet
trigger:
  event: Signed Up
goal:
  event: Order Completed
  within: 1d
steps:
  - id: hello
    send:
      channel: log
      content:
        subject: Hello
  - id: wait-order
    wait_for:
      event: Order Completed
      timeout: 1h
      on_timeout: reminder
  - id: bought
    exit:
      reason: purchased
  - id: reminder
    send:
      channel: email
      content:
        subject: Still there?
`

// nudge simulate replays what a nudge recorded through a journey, on a
// virtual clock, and counts.
func TestSimulate(t *testing.T) {
	dir := t.TempDir()
	jdir, data := filepath.Join(dir, "journeys"), filepath.Join(dir, "data")
	os.MkdirAll(jdir, 0o700)
	os.WriteFile(filepath.Join(jdir, "greet.yaml"), []byte(simJourney), 0o600)
	from := time.Now().Add(-time.Minute).UTC()
	p := start(t, data, "--journeys", jdir)
	p.mustPost("/v1/batch", `{"batch":[
		{"type":"track","userId":"s1","event":"Signed Up"},
		{"type":"track","userId":"s2","event":"Signed Up"},
		{"type":"track","userId":"s3","event":"Signed Up"},
		{"type":"track","userId":"s2","event":"Order Completed"},
		{"type":"track","userId":"s4","event":"Page Viewed"}]}`)
	p.stop()
	to := time.Now().Add(3 * time.Hour).UTC()

	out, err := runBinary("simulate", "--data", data, "--journeys", jdir, "--journey", "greet",
		"--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339), "--json")
	if err != nil {
		t.Fatalf("simulate: %v\n%s", err, out)
	}
	var rep simReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if rep.Events != 5 || rep.Entered != 3 || rep.Sends["hello"] != 3 || rep.Sends["reminder"] != 2 ||
		rep.Exits["purchased"] != 1 || rep.Exits["completed"] != 2 || rep.Conversions != 1 || rep.Active != 0 {
		t.Fatalf("report %+v", rep)
	}
	// The text table; and a window before the events replays nothing.
	out, err = runBinary("simulate", "--data", data, "--journeys", jdir, "--journey", "greet",
		"--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339))
	if err != nil || !strings.Contains(out, "5 replayed") || !strings.Contains(out, "reminder  2") {
		t.Fatalf("simulate: %v\n%s", err, out)
	}
	out, err = runBinary("simulate", "--data", data, "--journeys", jdir, "--journey", "greet",
		"--from", from.Add(-48*time.Hour).Format(time.RFC3339), "--to", from.Add(-24*time.Hour).Format(time.RFC3339), "--json")
	if err != nil || !strings.Contains(out, `"events": 0`) {
		t.Fatalf("simulate of an empty window: %v\n%s", err, out)
	}
	// Errors name the flag.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--journey", "nope", "--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339)}, `--journey: no journey has the id "nope"`},
		{[]string{"--journey", "greet", "--from", "yesterday", "--to", to.Format(time.RFC3339)}, "--from"},
		{[]string{"--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339)}, "--journey is required"},
	} {
		out, err := runBinary(append([]string{"simulate", "--data", data, "--journeys", jdir}, c.args...)...)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("simulate %v: %v\n%s", c.args, err, out)
		}
	}
}

// nudge test runs the shipped journeys' tests, and fails on a broken one.
func TestNudgeTest(t *testing.T) {
	out, err := runBinary("test")
	if err != nil || !strings.Contains(out, "0 failed") {
		t.Fatalf("nudge test: %v\n%s", err, out)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "greet.yaml"), []byte(simJourney), 0o600)
	os.WriteFile(filepath.Join(dir, "greet_test.yaml"), []byte(`cases:
  - name: a wrong expectation
    events: [{at: +0s, event: Signed Up}]
    expect: [{at: +0s, channel: log, step: hello}]
`), 0o600)
	out, err = runBinary("test", dir)
	if err == nil || !strings.Contains(out, "FAIL "+dir+"/greet_test.yaml:2: a wrong expectation") || !strings.Contains(out, "+ sent, not expected: at +1h5m email step reminder") {
		t.Fatalf("nudge test of a failing case: %v\n%s", err, out)
	}
	out, err = runBinary("check", "--journeys", dir)
	if err != nil || !strings.Contains(out, "1 journey test files ok") {
		t.Fatalf("check: %v\n%s", err, out)
	}
	os.WriteFile(filepath.Join(dir, "greet_test.yaml"), []byte("cases:\n  - name: x\n    events: [{at: soon, event: A}]\n"), 0o600)
	out, err = runBinary("check", "--journeys", dir)
	if err == nil || !strings.Contains(out, "greet_test.yaml:3: cases[0].events[0].at") {
		t.Fatalf("check of a broken test file: %v\n%s", err, out)
	}
}
