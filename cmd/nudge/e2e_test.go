package main

// Black-box tests: they build the real binary, start it on a free port with
// a data directory of their own, and talk HTTP to it.

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nudge-dev/nudge"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "nudge-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "nudge")
	out, err := exec.Command("go", "build", "-race", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build nudge: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running nudge.
type proc struct {
	t          *testing.T
	cmd        *exec.Cmd
	url        string
	writeKey   string
	adminToken string
	stderr     *syncBuffer
	exited     chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs nudge serve on a free port over dataDir and waits until it
// listens.
func start(t *testing.T, dataDir string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"serve", "--http", "127.0.0.1:0", "--data", dataDir}, args...)...)
	cmd.Env = append(os.Environ(), "NUDGE_CONFIG=")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, cmd: cmd, stderr: &syncBuffer{}, exited: make(chan error, 1)}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if k, ok := strings.CutPrefix(line, "development write key: "); ok {
				p.writeKey = strings.Fields(k)[0]
			}
			if k, ok := strings.CutPrefix(line, "development admin token: "); ok {
				p.adminToken = strings.Fields(k)[0]
			}
			if u, ok := strings.CutPrefix(line, "nudge listening on "); ok {
				p.url = u
				close(ready)
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	go func() { p.exited <- cmd.Wait() }()
	select {
	case <-ready:
	case err := <-p.exited:
		t.Fatalf("nudge exited before listening: %v\n%s", err, p.stderr)
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("nudge did not start in 60s\n%s", p.stderr)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop() {
	p.t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.exited:
		if err != nil {
			p.t.Fatalf("nudge exited with %v after SIGTERM\n%s", err, p.stderr)
		}
	case <-time.After(30 * time.Second):
		p.t.Fatalf("nudge did not stop within 30s of SIGTERM\n%s", p.stderr)
	}
}

func (p *proc) kill() {
	p.cmd.Process.Kill()
	<-p.exited
}

// post sends body to path with the write key as Basic user.
func (p *proc) post(path, body string) (int, string) {
	p.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, p.url+path, strings.NewReader(body))
	req.SetBasicAuth(p.writeKey, "")
	return do(p.t, req)
}

func do(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (p *proc) mustPost(path, body string) {
	p.t.Helper()
	if code, resp := p.post(path, body); code != 200 || resp != `{"success":true}` {
		p.t.Fatalf("POST %s = %d %s", path, code, resp)
	}
}

// events reads a customer's stored events back.
func (p *proc) events(user string, limit int) []nudge.Event {
	p.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/v1/events?user=%s&limit=%d", p.url, user, limit), nil)
	req.Header.Set("Authorization", "Bearer "+p.adminToken)
	code, body := do(p.t, req)
	if code != 200 {
		p.t.Fatalf("GET /v1/events = %d %s", code, body)
	}
	var out struct{ Events []nudge.Event }
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		p.t.Fatal(err)
	}
	return out.Events
}

func TestEveryCallIsStoredAndReadBack(t *testing.T) {
	p := start(t, t.TempDir())
	p.mustPost("/v1/identify", `{"userId":"u1","anonymousId":"a1","traits":{"email":"ann@example.com"},"messageId":"m1"}`)
	p.mustPost("/v1/track", `{"userId":"u1","event":"Product Viewed","properties":{"sku":"SHOE-42"},"messageId":"m2","timestamp":"2026-11-27T07:00:00Z"}`)
	p.mustPost("/v1/page", `{"userId":"u1","name":"Home","messageId":"m3"}`)
	p.mustPost("/v1/screen", `{"userId":"u1","name":"Cart","messageId":"m4"}`)
	p.mustPost("/v1/group", `{"userId":"u1","groupId":"g1","messageId":"m5"}`)
	p.mustPost("/v1/alias", `{"userId":"u1","previousId":"a1","messageId":"m6"}`)
	p.mustPost("/v1/batch", `{"batch":[{"type":"track","userId":"u1","event":"Order Completed","messageId":"m7"},{"type":"track","userId":"u2","event":"Signed Up","messageId":"m8"}]}`)

	got := p.events("u1", 100)
	var ids []string
	for _, e := range got {
		ids = append(ids, e.MessageID)
		if e.Source != "dev" || e.ReceivedAt.IsZero() {
			t.Errorf("event %s: source %q receivedAt %v, want the write key's source and a receive time", e.MessageID, e.Source, e.ReceivedAt)
		}
	}
	if want := "m1 m2 m3 m4 m5 m6 m7"; strings.Join(ids, " ") != want {
		t.Fatalf("u1's events = %v, want %s in order", ids, want)
	}
	if got[1].Event != "Product Viewed" || !got[1].Timestamp.Equal(time.Date(2026, 11, 27, 7, 0, 0, 0, time.UTC)) {
		t.Fatalf("track event = %+v", got[1])
	}
	if got := p.events("u2", 10); len(got) != 1 || got[0].Event != "Signed Up" {
		t.Fatalf("u2's events = %+v", got)
	}
	if got := p.events("u1", 2); len(got) != 2 || got[1].MessageID != "m7" {
		t.Fatalf("limit 2 = %+v, want the 2 most recent", got)
	}
}

func TestAuthentication(t *testing.T) {
	p := start(t, t.TempDir(), "--write-key", "web=wk_web", "--admin-token", "secret")
	p.writeKey = "wrong"
	if code, _ := p.post("/v1/track", `{"userId":"u1","event":"E","messageId":"x1"}`); code != 401 {
		t.Fatalf("wrong key: %d, want 401", code)
	}
	req, _ := http.NewRequest(http.MethodPost, p.url+"/v1/track", strings.NewReader(`{"userId":"u1","event":"E","messageId":"x2"}`))
	if code, _ := do(t, req); code != 401 {
		t.Fatalf("no key: %d, want 401", code)
	}
	// The browser SDK sends the key in the body, as text/plain.
	req, _ = http.NewRequest(http.MethodPost, p.url+"/v1/t", strings.NewReader(`{"writeKey":"wk_web","userId":"u1","event":"E","messageId":"x3"}`))
	req.Header.Set("Content-Type", "text/plain")
	if code, body := do(t, req); code != 200 {
		t.Fatalf("key in body: %d %s", code, body)
	}
	p.adminToken = "secret"
	got := p.events("u1", 10)
	if len(got) != 1 || got[0].MessageID != "x3" || got[0].Source != "web" {
		t.Fatalf("stored = %+v, want only x3 from source web", got)
	}
	req, _ = http.NewRequest(http.MethodGet, p.url+"/v1/events?user=u1", nil)
	req.Header.Set("Authorization", "Bearer nope")
	if code, _ := do(t, req); code != 401 {
		t.Fatalf("admin API with a wrong token: %d, want 401", code)
	}
}

func TestBadBatchKeepsNothing(t *testing.T) {
	p := start(t, t.TempDir())
	code, body := p.post("/v1/batch", `{"batch":[{"type":"track","userId":"u1","event":"E","messageId":"b1"},{"type":"track","event":"E","messageId":"b2"}]}`)
	if code != 400 || !strings.Contains(body, `"field":"batch[1]`) {
		t.Fatalf("batch with a bad event = %d %s, want 400 naming batch[1]", code, body)
	}
	if got := p.events("u1", 10); len(got) != 0 {
		t.Fatalf("a rejected batch left %d events", len(got))
	}
	code, body = p.post("/v1/batch", `{"batch":[`+strings.Repeat(`{"type":"track","userId":"u1","event":"E","properties":{"pad":"`+strings.Repeat("x", 1000)+`"}},`, 520)+`{}]}`)
	if code != 413 {
		t.Fatalf("a batch over 500 KB = %d %s, want 413", code, body)
	}
}

func TestGzipBody(t *testing.T) {
	p := start(t, t.TempDir())
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	io.WriteString(zw, `{"batch":[{"type":"track","userId":"gz","event":"Zipped","messageId":"z1"}]}`)
	zw.Close()
	req, _ := http.NewRequest(http.MethodPost, p.url+"/v1/batch", &buf)
	req.SetBasicAuth(p.writeKey, "")
	req.Header.Set("Content-Encoding", "gzip")
	if code, body := do(t, req); code != 200 {
		t.Fatalf("gzip body = %d %s", code, body)
	}
	req, _ = http.NewRequest(http.MethodPost, p.url+"/v1/batch", strings.NewReader("not gzip"))
	req.SetBasicAuth(p.writeKey, "")
	req.Header.Set("Content-Encoding", "gzip")
	if code, body := do(t, req); code != 400 || !strings.Contains(body, "gzip") {
		t.Fatalf("bad gzip = %d %s, want 400 naming gzip", code, body)
	}
	if got := p.events("gz", 10); len(got) != 1 {
		t.Fatalf("stored %d events, want 1", len(got))
	}
}

func TestDuplicatesDroppedAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	p := start(t, dir)
	send := func(p *proc) {
		p.mustPost("/v1/batch", `{"batch":[{"type":"track","userId":"d1","event":"E","messageId":"dup-1"},{"type":"track","userId":"d1","event":"E","messageId":"dup-2"},{"type":"track","userId":"d1","event":"E","messageId":"dup-1"}]}`)
	}
	send(p)
	send(p)
	if got := p.events("d1", 10); len(got) != 2 {
		t.Fatalf("before restart: %d events, want 2", len(got))
	}
	p.stop()
	p = start(t, dir)
	send(p)
	p.kill() // and once more after a crash, with no snapshot written since
	p = start(t, dir)
	send(p)
	if got := p.events("d1", 10); len(got) != 2 {
		t.Fatalf("after restarts: %d events, want 2", len(got))
	}
}

// TestCrashLosesNothing sends from many clients, kills nudge with SIGKILL
// the moment the last 200 arrives, restarts it, and finds exactly the
// acknowledged events, none twice.
func TestCrashLosesNothing(t *testing.T) {
	dir := t.TempDir()
	p := start(t, dir)
	const clients, requests, perBatch = 16, 40, 25
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := map[string]bool{}
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range requests {
				var items []string
				var ids []string
				for i := range perBatch {
					id := fmt.Sprintf("c%d-r%d-e%d", c, r, i)
					ids = append(ids, id)
					items = append(items, fmt.Sprintf(`{"type":"track","userId":"crash-%d","event":"E","messageId":%q}`, i, id))
				}
				code, _ := p.post("/v1/batch", `{"batch":[`+strings.Join(items, ",")+`]}`)
				if code != 200 {
					t.Errorf("POST = %d", code)
					return
				}
				mu.Lock()
				for _, id := range ids {
					acked[id] = true
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	p.kill()
	if t.Failed() {
		return
	}
	p = start(t, dir)
	seen := map[string]int{}
	for u := range perBatch { // clients*requests = 640 events a user, under the read limit
		for _, e := range p.events(fmt.Sprintf("crash-%d", u), 1000) {
			seen[e.MessageID]++
		}
	}
	for id := range acked {
		if seen[id] != 1 {
			t.Errorf("acknowledged event %s stored %d times", id, seen[id])
		}
	}
	if len(seen) != len(acked) {
		t.Errorf("stored %d distinct events, acknowledged %d", len(seen), len(acked))
	}
}

func TestGracefulShutdownForwardsEverything(t *testing.T) {
	dir := t.TempDir()
	p := start(t, dir)
	for i := range 50 {
		p.mustPost("/v1/track", fmt.Sprintf(`{"userId":"g1","event":"E","messageId":"g-%d"}`, i))
	}
	p.stop()
	if !strings.Contains(p.stderr.String(), "stopped") {
		t.Fatalf("no clean stop in the log:\n%s", p.stderr)
	}
	p = start(t, dir)
	if got := p.events("g1", 100); len(got) != 50 {
		t.Fatalf("after a graceful restart: %d events, want 50", len(got))
	}
}

func TestDataDirectoryIsLocked(t *testing.T) {
	dir := t.TempDir()
	start(t, dir)
	out, err := exec.Command(binary, "serve", "--http", "127.0.0.1:0", "--data", dir).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "in use by another nudge") {
		t.Fatalf("a second nudge on the same data directory: %v\n%s", err, out)
	}
}

func TestCheck(t *testing.T) {
	out, err := exec.Command(binary, "check", "--partitions", "0", "--durability", "maybe").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "partitions: 0") || !strings.Contains(string(out), `durability: "maybe"`) {
		t.Fatalf("check of a bad config: %v\n%s", err, out)
	}
	out, err = exec.Command(binary, "check").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "configuration ok") {
		t.Fatalf("check of the default config: %v\n%s", err, out)
	}
	// Provider settings that serve would refuse are refused by check, which
	// writes nothing.
	data := t.TempDir()
	for args, want := range map[string]string{
		"--channel-rate fax=3":                        `channel_rate: no channel is named "fax"`,
		"--smtp-addr 127.0.0.1:1 --email-from nobody": "smtp: From is not an email address",
		"--frequency-cap 0/1h":                        "frequency_cap",
	} {
		out, err = exec.Command(binary, append([]string{"check", "--data", data}, strings.Fields(args)...)...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), want) {
			t.Errorf("check %s: %v\n%s", args, err, out)
		}
	}
	out, err = exec.Command(binary, "check", "--data", data).CombinedOutput()
	if err != nil {
		t.Fatalf("check: %v\n%s", err, out)
	}
	if files, _ := os.ReadDir(data); len(files) != 0 {
		t.Errorf("check wrote %d files into the data directory (%s...)", len(files), files[0].Name())
	}
	out, err = exec.Command(binary, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "nudge ") {
		t.Fatalf("version: %v\n%s", err, out)
	}
}

// TestSegmentNodeSDK points the official Segment Node SDK at nudge.
func TestSegmentNodeSDK(t *testing.T) {
	sdk, err := filepath.Abs("testdata/segment-sdk")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(sdk, "node_modules", "@segment", "analytics-node")); err != nil {
		t.Fatalf("the Segment SDK is not installed: run npm ci in %s (.ci/run does): %v", sdk, err)
	}
	p := start(t, t.TempDir())
	cmd := exec.Command("node", "send.mjs")
	cmd.Dir = sdk
	cmd.Env = append(os.Environ(), "NUDGE_URL="+p.url, "NUDGE_WRITE_KEY="+p.writeKey, "SDK_USER=sdk-user")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("node send.mjs: %v\n%s", err, out)
	}
	got := p.events("sdk-user", 100)
	var kinds []string
	for _, e := range got {
		kinds = append(kinds, string(e.Type)+":"+e.Event)
		if e.MessageID == "" || e.Context == nil || !strings.Contains(string(e.Context), "@segment/analytics-node") {
			t.Errorf("event %+v lacks the SDK's messageId or context.library", e)
		}
	}
	// The SDK sends its batches concurrently, so only the order within a
	// batch is the SDK's order.
	want := []string{"alias:", "identify:", "page:", "track:Order Completed", "track:Product Added"}
	slices.Sort(kinds)
	if !slices.Equal(kinds, want) {
		t.Fatalf("stored %v, want %v", kinds, want)
	}
	for _, e := range got {
		if e.Event == "Order Completed" && !e.Timestamp.Equal(time.Date(2026, 11, 27, 7, 0, 0, 0, time.UTC)) {
			t.Errorf("the SDK's timestamp became %v", e.Timestamp)
		}
	}
}

func TestCloudEvents(t *testing.T) {
	p := start(t, t.TempDir())
	req, _ := http.NewRequest(http.MethodPost, p.url+"/v1/cloudevents", strings.NewReader(
		`{"specversion":"1.0","id":"ce-1","source":"/shop/orders","type":"Order Completed","subject":"ce-user","time":"2026-11-27T07:00:00Z","data":{"revenue":89.9}}`))
	req.SetBasicAuth(p.writeKey, "")
	req.Header.Set("Content-Type", "application/cloudevents+json")
	if code, body := do(t, req); code != 200 {
		t.Fatalf("structured CloudEvent = %d %s", code, body)
	}
	req, _ = http.NewRequest(http.MethodPost, p.url+"/v1/cloudevents", strings.NewReader(`{"sku":"SHOE-42"}`))
	req.SetBasicAuth(p.writeKey, "")
	for k, v := range map[string]string{"ce-specversion": "1.0", "ce-id": "ce-2", "ce-source": "/shop", "ce-type": "Product Added", "ce-subject": "ce-user", "Content-Type": "application/json"} {
		req.Header.Set(k, v)
	}
	if code, body := do(t, req); code != 200 {
		t.Fatalf("binary CloudEvent = %d %s", code, body)
	}
	req, _ = http.NewRequest(http.MethodPost, p.url+"/v1/cloudevents", strings.NewReader(
		`[{"specversion":"1.0","id":"ce-3","source":"/s","type":"A","subject":"ce-user"},{"specversion":"1.0","id":"ce-4","source":"/s","subject":"ce-user"}]`))
	req.SetBasicAuth(p.writeKey, "")
	req.Header.Set("Content-Type", "application/cloudevents-batch+json")
	if code, body := do(t, req); code != 400 || !strings.Contains(body, `"field":"[1].type"`) {
		t.Fatalf("batch with an event lacking type = %d %s, want 400 naming [1].type", code, body)
	}
	got := p.events("ce-user", 10)
	if len(got) != 2 || got[0].Event != "Order Completed" || got[1].Event != "Product Added" || !strings.Contains(string(got[1].Properties), "SHOE-42") {
		t.Fatalf("stored %+v, want the two valid CloudEvents as track events", got)
	}
}

func TestEventsTail(t *testing.T) {
	dir := t.TempDir()
	p := start(t, dir, "--shutdown-timeout", "60s")
	tail := exec.Command(binary, "events", "tail", "--url", p.url, "--data", dir, "--user", "tail-user")
	out, err := tail.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	tail.Stderr = os.Stderr
	if err := tail.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { tail.Process.Kill(); tail.Wait() }()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	// The stream starts when tail connects; send until the first line shows.
	deadline := time.After(20 * time.Second)
	for i := 0; ; i++ {
		p.mustPost("/v1/track", fmt.Sprintf(`{"userId":"tail-user","event":"Tick %d"}`, i))
		p.mustPost("/v1/track", `{"userId":"someone-else","event":"Noise"}`)
		select {
		case line := <-lines:
			var e nudge.Event
			if err := json.Unmarshal([]byte(line), &e); err != nil || e.UserID != "tail-user" || !strings.HasPrefix(e.Event, "Tick ") {
				t.Fatalf("tail printed %q (%v)", line, err)
			}
			// An open stream must not hold up a graceful shutdown.
			p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case err := <-p.exited:
				if err != nil {
					t.Fatalf("nudge exited with %v with a stream open\n%s", err, p.stderr)
				}
			case <-time.After(15 * time.Second):
				t.Fatalf("nudge took over 15s to stop with a stream open (shutdown timeout 60s)\n%s", p.stderr)
			}
			return
		case <-deadline:
			t.Fatal("nudge events tail printed nothing in 20s")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestExternalNATS runs nudge on the NATS JetStream server at
// 127.0.0.1:4222 instead of the embedded one, through the same code path.
func TestExternalNATS(t *testing.T) {
	url := os.Getenv("NUDGE_NATS_URL")
	if url == "" {
		url = "nats://127.0.0.1:4222"
	}
	stream := fmt.Sprintf("NUDGE_E2E_%d", time.Now().UnixNano())
	dir := t.TempDir()
	p := start(t, dir, "--nats", url, "--nats-stream", stream)
	t.Cleanup(func() { deleteStream(t, url, stream) })
	for i := range 20 {
		p.mustPost("/v1/track", fmt.Sprintf(`{"userId":"ext","event":"E","messageId":"ext-%d"}`, i))
	}
	p.kill()
	if _, err := os.Stat(filepath.Join(dir, jetstreamDir)); err == nil {
		t.Fatal("an embedded store was created although --nats was given")
	}
	p = start(t, dir, "--nats", url, "--nats-stream", stream)
	p.mustPost("/v1/track", `{"userId":"ext","event":"E","messageId":"ext-0"}`) // a duplicate
	if got := p.events("ext", 100); len(got) != 20 {
		t.Fatalf("external log holds %d events, want 20", len(got))
	}
}

func TestSecondSignalExitsAtOnce(t *testing.T) {
	p := start(t, t.TempDir(), "--shutdown-timeout", "1h")
	// Hold a request open, so the graceful shutdown waits for it (the server
	// tracks the connection from its accept).
	conn, err := net.Dial("tcp", strings.TrimPrefix(p.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"userId\":")
	p.cmd.Process.Signal(syscall.SIGTERM)
	// Signals of one kind do not queue: wait until the first was handled.
	for !strings.Contains(p.stderr.String(), "shutting down") {
		select {
		case err := <-p.exited:
			t.Fatalf("nudge exited (%v) on the first signal with a request open\n%s", err, p.stderr)
		case <-time.After(10 * time.Millisecond):
		}
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.exited:
		if err == nil {
			t.Fatal("exit status 0 after a second signal, want non-zero")
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("a second SIGTERM did not end nudge at once\n%s", p.stderr)
	}
}
