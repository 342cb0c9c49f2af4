package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// The dashboard in a real browser (headless Chromium), against the real
// binary: log in, see an event arrive in the debugger, open the customer's
// profile, a journey's diagram, the overview's charts and the dead-letter
// page, on a laptop and a phone. Full-page screenshots of each page go to
// $NUDGE_SCREENSHOTS, or a temporary directory; the test logs where.
func TestDashboardInABrowser(t *testing.T) {
	chrome := chromiumPath(t)
	shots := screenshotDir(t)

	p := start(t, t.TempDir())
	b := newBrowser(t, chrome, shots)
	url := p.url + "/"

	// The login form refuses a wrong token and shows the API's error.
	b.do("open the dashboard", 30*time.Second, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("#token")))
	b.do("log in with a wrong token", 10*time.Second,
		chromedp.SendKeys(chromedp.CSS("#token"), "not-the-token"), chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS(".login-status .error-box")))
	if msg := b.text(".login-status"); !strings.Contains(msg, "unauthorized") {
		t.Errorf("the login error says %q, want the API's code unauthorized", msg)
	}
	b.shot("login")
	b.login(p)

	// The event debugger shows events as they arrive. The first proves the
	// stream is subscribed; the second must show within a second.
	b.do("open the event debugger", 10*time.Second, chromedp.Navigate(url+"#/events"),
		chromedp.WaitVisible(chromedp.CSS(".stream-status.live")))
	p.mustPost("/v1/identify", `{"userId":"dash-ann","traits":{"name":"Ann Dashboard","email":"ann.dash@example.com","plan":"pro"},"messageId":"dash-1"}`)
	b.do("see the identify event", 10*time.Second, chromedp.WaitVisible(eventRow("identify")))
	posted := time.Now()
	p.mustPost("/v1/track", `{"userId":"dash-ann","event":"Signed Up","properties":{"plan":"pro"},"messageId":"dash-2"}`)
	b.do("see the track event within a second", time.Second, chromedp.WaitVisible(eventRow("Signed Up")))
	t.Logf("the debugger showed the event %v after the POST", time.Since(posted).Round(time.Millisecond))
	if first := b.text("#event-list li.event .ev-name"); first != "Signed Up" {
		t.Errorf("the newest event on top is %q, want Signed Up", first)
	}
	b.do("filter and expand", 10*time.Second,
		chromedp.SendKeys(chromedp.CSS("#event-filter"), "signed"),
		chromedp.Click(chromedp.CSS("#event-list li.event:not([hidden]) .event-row")),
		chromedp.WaitVisible(chromedp.CSS("#event-list li.event.open pre.json")))
	if n := b.eval(`document.querySelectorAll('#event-list li.event:not([hidden])').length`); n != "1" {
		t.Errorf("the filter 'signed' shows %s events, want 1", n)
	}
	if js := b.text("#event-list li.event.open pre.json"); !strings.Contains(js, `"messageId": "dash-2"`) {
		t.Errorf("the expanded event shows\n%s", js)
	}
	b.shot("event-debugger")

	// The profile, opened from the event.
	b.do("open the profile", 30*time.Second,
		chromedp.Click(chromedp.CSS("#event-list li.event.open .event-actions a")),
		chromedp.WaitVisible(chromedp.CSS("#kv-traits")),
		chromedp.WaitVisible(chromedp.CSS("#timeline li.event")))
	traits := b.text("#kv-traits")
	for _, want := range []string{"name", "Ann Dashboard", "ann.dash@example.com"} {
		if !strings.Contains(traits, want) {
			t.Errorf("the profile's traits %q lack %q", traits, want)
		}
	}
	if ids := b.text("#identities"); !strings.Contains(ids, "dash-ann") {
		t.Errorf("identities %q", ids)
	}
	b.shot("profile")
	b.do("open the erase dialog and cancel", 10*time.Second,
		chromedp.Click(chromedp.CSS("#erase")), chromedp.WaitVisible(chromedp.CSS("dialog[open] button.confirm")))
	b.shot("profile-erase-dialog")
	b.do("cancel", 10*time.Second, chromedp.Click(chromedp.CSS(`dialog[open] button[value="cancel"]`)),
		chromedp.WaitNotPresent(chromedp.CSS("dialog")))

	// The journeys, and the welcome journey the sign-up entered.
	b.do("open the journeys", 30*time.Second, chromedp.Navigate(url+"#/journeys"),
		chromedp.WaitVisible(chromedp.CSS(`#journey-list a[href="#/journeys/welcome"]`)))
	b.shot("journeys")
	if code, _ := p.admin(http.MethodGet, "/v1/journeys/welcome"); code == http.StatusNotFound {
		t.Log("GET /v1/journeys/{id} answers 404: the diagram lists the steps from the stats")
	}
	b.do("open the welcome journey's diagram", 30*time.Second,
		chromedp.Click(chromedp.CSS(`#journey-list a[href="#/journeys/welcome"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#journey-diagram g[data-step="trigger"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#journey-diagram g[data-step="welcome-email"]`)))
	if n := b.text(`#journey-diagram g[data-step="welcome-email"] .n-count`); n != "1" {
		t.Errorf("the welcome-email step shows %q runs, want 1", n)
	}
	b.shot("journey-welcome")

	// The overview draws its charts from /metrics.
	b.do("open the overview", 30*time.Second, chromedp.Navigate(url+"#/overview"),
		chromedp.WaitVisible(chromedp.CSS("#chart-throughput path.line")),
		chromedp.WaitVisible(chromedp.CSS("#chart-lag path.line")))
	// Events sent now show as a rate at the next scrape.
	var batch []string
	for i := range 20 {
		batch = append(batch, fmt.Sprintf(`{"type":"track","userId":"dash-load-%d","event":"Product Viewed","messageId":"load-%d"}`, i, i))
	}
	p.mustPost("/v1/batch", `{"batch":[`+strings.Join(batch, ",")+`]}`)
	b.do("see the throughput rise", 10*time.Second,
		b.until(`parseFloat(document.querySelector('#chart-throughput .legend b').textContent) > 0`))
	if got := b.text(".tiles"); !strings.Contains(got, "Events accepted22") {
		t.Errorf("tiles: %q, want 22 events accepted", got)
	}
	b.shot("overview")

	// Deliveries: the queue, then the dead letters.
	b.do("open the deliveries", 30*time.Second, chromedp.Navigate(url+"#/deliveries"),
		chromedp.WaitNotPresent(chromedp.CSS("#main .loading")),
		chromedp.WaitVisible(chromedp.CSS(".table-wrap:not([hidden]) > #queue-list, #queue-empty, #no-outbox")))
	b.shot("deliveries")
	code, body := p.admin(http.MethodGet, "/v1/dlq")
	b.do("open the dead letters", 30*time.Second, chromedp.Click(chromedp.CSS("#tab-dead")),
		chromedp.WaitNotPresent(chromedp.CSS("#main .loading")))
	if code == http.StatusNotFound {
		t.Log("GET /v1/dlq answers 404: no dead-letter queue on this server, redrive not tested")
		b.do("see that there is no queue", 10*time.Second, chromedp.WaitVisible(chromedp.CSS("#no-dlq")))
	} else {
		t.Logf("GET /v1/dlq = %d %.200s", code, body)
		sel := "#dlq-list tbody tr"
		if strings.Contains(body, `"items":[]`) {
			sel = "#dlq-empty"
		}
		b.do("see the dead letters", 10*time.Second, chromedp.WaitVisible(chromedp.CSS(sel)))
	}
	b.shot("dead-letters")

	// On a phone: the nav is a drawer behind a button.
	b.do("a phone's screen", 30*time.Second,
		chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(2)),
		chromedp.Navigate(url+"#/overview"), chromedp.WaitVisible(chromedp.CSS("#chart-throughput path.line")))
	b.shot("phone-overview")
	b.do("open the nav", 10*time.Second, chromedp.Click(chromedp.CSS("#nav-toggle")),
		chromedp.WaitVisible(chromedp.CSS("body.nav-open")), b.until(`document.getElementById('nav').getBoundingClientRect().left >= 0`))
	b.shot("phone-nav")
	b.do("the debugger on a phone", 10*time.Second, chromedp.Click(chromedp.CSS(`#nav a[data-page="events"]`)),
		chromedp.WaitVisible(chromedp.CSS(".stream-status.live")))
	b.do("a laptop's screen again", 10*time.Second, chromedp.EmulateViewport(1280, 900))

	// Erasing from the profile page erases.
	b.do("erase the profile", 30*time.Second, chromedp.Navigate(url+"#/profiles/dash-ann"),
		chromedp.WaitVisible(chromedp.CSS("#erase")), chromedp.Click(chromedp.CSS("#erase")),
		chromedp.Click(chromedp.CSS("dialog[open] button.confirm")),
		chromedp.WaitVisible(chromedp.CSS(".toast")), chromedp.WaitVisible(chromedp.CSS("#profile-search")))
	if code, body := p.admin(http.MethodGet, "/v1/profiles/dash-ann"); code != http.StatusNotFound {
		t.Errorf("after the Erase button, GET /v1/profiles/dash-ann = %d %s", code, body)
	}

	b.checkConsole()
}

// The deliveries page. A webhook that answers 503 with a Retry-After of
// an hour keeps its send queued: the Queued tab lists it and opens it with
// its message. A webhook that always answers 404 fails for good: the Dead
// letters tab lists the dead letter, shows it, redrives it (the receiver
// gets it again) and discards it.
func TestDashboardDeadLetters(t *testing.T) {
	chrome := chromiumPath(t)
	hits := make(chan struct{}, 16)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits <- struct{}{}
		http.NotFound(w, nil)
	}))
	defer recv.Close()
	busyHits := make(chan struct{}, 16)
	busy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		select {
		case busyHits <- struct{}{}:
		default:
		}
		w.Header().Set("Retry-After", "3600")
		http.Error(w, "busy", http.StatusServiceUnavailable)
	}))
	defer busy.Close()
	dir := t.TempDir()
	journeys := filepath.Join(dir, "journeys")
	hook := func(id, event, url string) string {
		return "id: " + id + "\ntrigger:\n  event: " + event + "\nsteps:\n  - id: notify\n    send:\n      channel: webhook\n      content:\n        url: " + url + "\n        body: '{\"order\": \"{{ event.properties.order }}\"}'\n"
	}
	if err := os.MkdirAll(journeys, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(journeys, "hook.yaml"), []byte(hook("hook", "Plan Changed", recv.URL+"/gone")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(journeys, "busy.yaml"), []byte(hook("busy-hook", "Order Placed", busy.URL+"/busy")), 0o600); err != nil {
		t.Fatal(err)
	}
	p := start(t, filepath.Join(dir, "data"), "--journeys", journeys)
	if code, _ := p.admin(http.MethodGet, "/v1/dlq"); code == http.StatusNotFound {
		t.Log("GET /v1/dlq answers 404: no dead-letter queue on this server, nothing to redrive")
		return
	}
	shots := screenshotDir(t)
	b := newBrowser(t, chrome, shots)
	b.do("open the dashboard", 30*time.Second, chromedp.Navigate(p.url+"/"), chromedp.WaitVisible(chromedp.CSS("#token")))
	b.login(p)

	// A send the provider asks to retry in an hour waits in the queue.
	p.mustPost("/v1/track", `{"userId":"queue-1","event":"Order Placed","properties":{"order":"A-1001"},"messageId":"queue-m1"}`)
	queued := waitQueued(t, p, busyHits)
	if code, body := p.admin(http.MethodGet, "/v1/deliveries?limit=0"); code != http.StatusBadRequest || !strings.Contains(body, "invalid_query") {
		t.Errorf("GET /v1/deliveries?limit=0 = %d %s, want 400 invalid_query", code, body)
	}
	if code, body := p.admin(http.MethodGet, "/v1/deliveries/00ff"); code != http.StatusNotFound || !strings.Contains(body, "not_found") {
		t.Errorf("GET /v1/deliveries/00ff = %d %s, want 404 not_found", code, body)
	}
	b.do("list the queued delivery", 30*time.Second, chromedp.Navigate(p.url+"/#/deliveries"),
		chromedp.WaitVisible(chromedp.CSS(`#queue-list a[href="#/deliveries/queued/`+queued+`"]`)))
	if row := b.text(`#queue-list tr[data-id="` + queued + `"]`); !strings.Contains(row, "busy-hook") || !strings.Contains(row, "webhook") || !strings.Contains(row, "in 1 h") {
		t.Errorf("the queued row reads %q, want the journey busy-hook, the webhook channel, due in 1 h", row)
	}
	b.shot("deliveries-queued")
	b.do("inspect the queued delivery", 30*time.Second,
		chromedp.Click(chromedp.CSS(`#queue-list a[href="#/deliveries/queued/`+queued+`"]`)),
		chromedp.WaitVisible(chromedp.CSS("#delivery-message")))
	if msg := b.text("#delivery-message"); !strings.Contains(msg, "A-1001") || !strings.Contains(msg, busy.URL+"/busy") {
		t.Errorf("the queued delivery's message reads %q, want the order A-1001 and the URL", msg)
	}
	if state := b.text("#delivery-state"); !strings.Contains(state, "attempts so far1") {
		t.Errorf("the queued delivery's state reads %q, want 1 attempt", state)
	}
	b.shot("delivery-queued")

	p.mustPost("/v1/track", `{"userId":"dlq-1","event":"Plan Changed","messageId":"dlq-m1"}`)
	first := waitDeadLetter(t, p, hits, "")
	b.do("list the dead letter", 30*time.Second, chromedp.Navigate(p.url+"/#/deliveries"),
		chromedp.Click(chromedp.CSS("#tab-dead")),
		chromedp.WaitVisible(chromedp.CSS("#dlq-list tbody tr")))
	b.shot("dead-letters-list")
	b.do("inspect it", 30*time.Second, chromedp.Click(chromedp.CSS(`#dlq-list a[href="#/deliveries/dead/`+first+`"]`)),
		chromedp.WaitVisible(chromedp.CSS("#redrive")))
	b.shot("dead-letter")
	b.do("redrive it", 30*time.Second, chromedp.Click(chromedp.CSS("#redrive")),
		chromedp.WaitVisible(`//div[contains(@class, "toast") and starts-with(text(), "Redriven")]`),
		chromedp.WaitVisible(chromedp.CSS(".table-wrap:not([hidden]) > #dlq-list, #dlq-empty")))
	// Sent again, it fails again: a new dead letter.
	id := waitDeadLetter(t, p, hits, first)
	waitNoDeadLetter(t, p, first)

	b.do("discard it", 30*time.Second, chromedp.Navigate(p.url+"/#/deliveries/dead"),
		chromedp.WaitVisible(chromedp.CSS(`#dlq-list a[href="#/deliveries/dead/`+id+`"]`)),
		chromedp.Click(`//a[@href="#/deliveries/dead/`+id+`"]/ancestor::tr//button[text()="Discard"]`),
		chromedp.Click(chromedp.CSS("dialog[open] button.confirm")),
		chromedp.WaitVisible(`//div[contains(@class, "toast") and text()="Discarded."]`),
		chromedp.WaitNotPresent(chromedp.CSS(`#dlq-list a[href="#/deliveries/dead/`+id+`"]`)))
	// The old link of a dead letter still opens it (or says it is gone).
	b.do("open a dead letter by its old link", 30*time.Second, chromedp.Navigate(p.url+"/#/deliveries/"+id),
		chromedp.WaitNotPresent(chromedp.CSS("#main .loading")), chromedp.WaitVisible(chromedp.CSS("#main .empty")))
	waitNoDeadLetter(t, p, id)
	b.checkConsole()
}

// waitDeadLetter waits for the receiver to be called and the send to land
// in the dead-letter queue; it returns the id of an entry other than except.
func waitDeadLetter(t *testing.T, p *proc, hits <-chan struct{}, except string) string {
	t.Helper()
	select {
	case <-hits:
	case <-time.After(30 * time.Second):
		t.Fatalf("the webhook was not called within 30 s\n%s", p.stderr)
	}
	var id string
	eventually(t, 30*time.Second, "a dead letter", func() bool {
		_, body := p.admin(http.MethodGet, "/v1/dlq")
		var page struct{ Items []struct{ ID string } }
		if json.Unmarshal([]byte(body), &page) == nil {
			for _, it := range page.Items {
				if it.ID != except {
					id = it.ID
					return true
				}
			}
		}
		return false
	})
	return id
}

// waitQueued waits for the busy receiver to be called and its send to be
// listed, queued for its next attempt; it returns the delivery's id.
func waitQueued(t *testing.T, p *proc, hits <-chan struct{}) string {
	t.Helper()
	select {
	case <-hits:
	case <-time.After(30 * time.Second):
		t.Fatalf("the busy webhook was not called within 30 s\n%s", p.stderr)
	}
	var id string
	eventually(t, 30*time.Second, "a queued delivery", func() bool {
		_, body := p.admin(http.MethodGet, "/v1/deliveries")
		var page struct {
			Items []struct {
				ID       string
				Journey  string
				Attempts int
			}
		}
		if json.Unmarshal([]byte(body), &page) != nil {
			return false
		}
		for _, it := range page.Items {
			if it.Journey == "busy-hook" && it.Attempts == 1 {
				id = it.ID
				return true
			}
		}
		return false
	})
	if code, one := p.admin(http.MethodGet, "/v1/deliveries/"+id); code != http.StatusOK || !strings.Contains(one, `"message"`) {
		t.Fatalf("GET /v1/deliveries/%s = %d %s", id, code, one)
	}
	return id
}

// waitNoDeadLetter waits until GET /v1/dlq/{id} answers 404: the browser
// sends the redrive or discard on its own time.
func waitNoDeadLetter(t *testing.T, p *proc, id string) {
	t.Helper()
	eventually(t, 10*time.Second, "GET /v1/dlq/"+id+" answering 404", func() bool {
		code, _ := p.admin(http.MethodGet, "/v1/dlq/"+id)
		return code == http.StatusNotFound
	})
}

func screenshotDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("NUDGE_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

// login logs in with the admin token, on the login form.
func (b *browser) login(p *proc) {
	b.t.Helper()
	b.do("log in", 10*time.Second,
		chromedp.Evaluate[chromedp.Void](`document.getElementById('token').value = ''`),
		chromedp.SendKeys(chromedp.CSS("#token"), p.adminToken), chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS(`#nav a[data-page="overview"].active`)))
}

// chromiumPath finds the browser. CI installs it; a missing one fails.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("NUDGE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium for the dashboard's browser test: apt-get install chromium (or set NUDGE_CHROMIUM to a Chrome binary)")
	return ""
}

// browser is a headless Chromium tab, the errors its page reported, and
// where its screenshots go.
type browser struct {
	t     *testing.T
	ctx   context.Context
	shots string

	mu       sync.Mutex
	problems []string
}

func newBrowser(t *testing.T, chrome, shots string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() { cancel(); cancelAlloc() })
	b := &browser{t: t, ctx: ctx, shots: shots}
	// The first action starts the browser, which lives as long as the
	// context of that action: ctx, not one with a timeout.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900)); err != nil {
		t.Fatalf("start Chromium (%s): %v", chrome, err)
	}
	err := chromedp.Listen(ctx, func(ev any) {
		var problem string
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			problem = "exception: " + ev.ExceptionDetails.Text
			if ev.ExceptionDetails.Exception != nil {
				problem += " " + ev.ExceptionDetails.Exception.Description
			}
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError {
				var args []string
				for _, a := range ev.Args {
					args = append(args, a.Description+string(a.Value))
				}
				problem = "console.error: " + strings.Join(args, " ")
			}
		case *log.EventEntryAdded:
			// Failed requests are expected (a 404 tells a feature is
			// missing); anything else the browser logs as an error is not.
			if ev.Entry.Level == log.EntryLevelError && ev.Entry.Source != log.EntrySourceNetwork {
				problem = fmt.Sprintf("browser log (%s): %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL)
			}
		}
		if problem != "" {
			b.mu.Lock()
			b.problems = append(b.problems, problem)
			b.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// do runs actions within timeout, failing the test with the page's state.
func (b *browser) do(what string, timeout time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.shot("failed")
		b.checkConsole()
		b.t.Fatalf("%s: %v\npage: %s", what, err, b.eval(`document.getElementById('main').innerText.slice(0, 2000)`))
	}
}

func (b *browser) text(css string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS(css)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", css, err)
	}
	return strings.TrimSpace(s)
}

// until waits for a JavaScript expression to be true.
func (b *browser) until(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Poll[bool](expr)(ctx, t)
		return err
	})
}

// eval returns what a JavaScript expression gives, as text.
func (b *browser) eval(expr string) string {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[any](expr))
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return fmt.Sprint(v)
}

// shot saves a full-page screenshot as name.png.
func (b *browser) shot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	img, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(b.shots, name+".png"), img, 0o644); err != nil {
		b.t.Error(err)
	}
}

// checkConsole fails the test for any script error the page reported.
func (b *browser) checkConsole() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		b.t.Errorf("the dashboard reported %s", p)
	}
	b.problems = nil
}

// eventRow selects the debugger's row of an event by its title.
func eventRow(title string) string {
	return fmt.Sprintf(`//ol[@id="event-list"]/li[contains(concat(" ", @class, " "), " event ")]//span[contains(@class, "ev-name") and text()=%q]`, title)
}
