package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nudge-dev/nudge/channel/webhook"
)

// From an event through the tracking API to a signed webhook at a local
// receiver, with the journey's stats read back over the admin API.
func TestJourneyEventToSignedWebhook(t *testing.T) {
	const secret = "test-webhook-secret"
	got := make(chan string, 4)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := webhook.Verify([]byte(secret), r.Header.Get("Nudge-Signature"), body, time.Now(), 5*time.Minute); err != nil {
			t.Errorf("signature: %v", err)
		}
		if r.Header.Get("Idempotency-Key") == "" {
			t.Error("no Idempotency-Key")
		}
		got <- string(body)
	}))
	defer recv.Close()

	dir := t.TempDir()
	journeys := filepath.Join(dir, "journeys")
	if err := os.MkdirAll(journeys, 0o700); err != nil {
		t.Fatal(err)
	}
	def := `id: hello
trigger:
  event: Signed Up
steps:
  - id: notify
    send:
      channel: webhook
      content:
        url: ` + recv.URL + `/hook
        body: '{"plan": {{ event.properties.plan | json }}, "name": {{ profile.traits.name | json }}}'
`
	if err := os.WriteFile(filepath.Join(journeys, "hello.yaml"), []byte(def), 0o600); err != nil {
		t.Fatal(err)
	}
	p := start(t, filepath.Join(dir, "data"), "--journeys", journeys, "--webhook-secret", secret)
	p.mustPost("/v1/batch", `{"batch":[
		{"type":"identify","userId":"w1","traits":{"name":"Ann"}},
		{"type":"track","userId":"w1","event":"Signed Up","properties":{"plan":"pro"}}]}`)
	select {
	case body := <-got:
		if body != `{"plan": "pro", "name": "Ann"}` {
			t.Fatalf("webhook body %q", body)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no webhook within 30 s\n%s", p.stderr)
	}
	code, body := p.admin(http.MethodGet, "/v1/journeys")
	if code != 200 || !strings.Contains(body, `"id":"hello"`) {
		t.Fatalf("GET /v1/journeys = %d %s", code, body)
	}
	code, body = p.admin(http.MethodGet, "/v1/journeys/hello/stats")
	var st struct {
		Versions []struct {
			Entered int64
			Steps   map[string]json.RawMessage
		}
	}
	if code != 200 || json.Unmarshal([]byte(body), &st) != nil || len(st.Versions) != 1 || st.Versions[0].Entered != 1 || st.Versions[0].Steps["notify"] == nil {
		t.Fatalf("GET /v1/journeys/hello/stats = %d %s", code, body)
	}
	if code, body := p.admin(http.MethodGet, "/v1/journeys/nope/stats"); code != 404 || !strings.Contains(body, "not_found") {
		t.Fatalf("stats of an unknown journey = %d %s", code, body)
	}
	// The send was timed from the event's acknowledgement.
	code, body = p.admin(http.MethodGet, "/metrics")
	if code != 200 || !strings.Contains(body, `nudge_time_to_trigger_seconds_count{channel="webhook"} 1`) {
		t.Fatalf("no time to trigger observed in /metrics:\n%s", body)
	}
}

func TestCheckNamesTheJourneyError(t *testing.T) {
	dir := t.TempDir()
	bad := "id: broken\ntrigger:\n  event: Signed Up\nsteps:\n  - id: w\n    wait:\n      duration: 3 hourz\n"
	if err := os.WriteFile(filepath.Join(dir, "broken.yaml"), []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runBinary("check", "--journeys", dir)
	if err == nil || !strings.Contains(out, "broken.yaml:7") || !strings.Contains(out, "duration") {
		t.Fatalf("check of a broken journey: %v\n%s", err, out)
	}
}

func runBinary(args ...string) (string, error) {
	out, err := exec.Command(binary, args...).CombinedOutput()
	return string(out), err
}

// A full run with the shipped journeys (welcome, cart, loyalty...) at debug
// level off, profile reads, a failing webhook and an erasure: the logs never
// name the customer's email, user id or name.
func TestLogsHoldNoPersonalData(t *testing.T) {
	p := start(t, t.TempDir(), "--log-level", "info", "--log-format", "json")
	const email, user, name = "private.person@example.org", "user-private-99", "Zebulon"
	p.mustPost("/v1/batch", `{"batch":[
		{"type":"identify","userId":"`+user+`","traits":{"email":"`+email+`","first_name":"`+name+`"}},
		{"type":"track","userId":"`+user+`","event":"Signed Up"},
		{"type":"track","userId":"`+user+`","event":"Product Added","properties":{"product_id":"p1","sku":"SKU-1","name":"Shoe","price":10}},
		{"type":"track","userId":"`+user+`","event":"Order Completed","properties":{"revenue":10}},
		{"type":"track","userId":"`+user+`","event":"Product Viewed","properties":{"category":"shoes","name":"Shoe"}},
		{"type":"track","userId":"`+user+`","event":"Product Viewed","properties":{"category":"shoes","name":"Shoe"}},
		{"type":"track","userId":"`+user+`","event":"Product Viewed","properties":{"category":"shoes","name":"Shoe"}}]}`)
	if d := p.profile(email); d.Computed.Counts["Signed Up"] != 1 {
		t.Fatalf("profile: %+v", d)
	}
	// The welcome email went through the log channel.
	eventually(t, 30*time.Second, "the welcome message logged", func() bool {
		return strings.Contains(p.stderr.String(), `"journey":"welcome"`)
	})
	p.admin(http.MethodDelete, "/v1/profiles/"+user)
	p.stop()
	for _, s := range []string{email, user, name} {
		if strings.Contains(p.stderr.String(), s) {
			t.Errorf("the log names %q:\n%s", s, p.stderr)
		}
	}
}
