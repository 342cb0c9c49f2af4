package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nudge-dev/nudge/channel/smtp/smtptest"
	"github.com/nudge-dev/nudge/journey"
)

// eventually polls cond until it holds or bound passes: for the I/O of
// real servers in other goroutines and processes, not for timers (those
// run on the virtual clock).
func eventually(t *testing.T, bound time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, bound)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// recordingServer keeps the requests a fake provider got.
type recordingServer struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []url.Values
}

func (s *recordingServer) got() []url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]url.Values(nil), s.reqs...)
}

// fakeTwilio answers the Messages API: a 500 on the first request, 201
// afterwards.
func fakeTwilio(t *testing.T) *recordingServer {
	s := &recordingServer{}
	var n atomic.Int32
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/2010-04-01/Accounts/AC1/Messages.json" {
			t.Errorf("twilio path %s", r.URL.Path)
		}
		if n.Add(1) == 1 {
			http.Error(w, `{"code":20500,"message":"internal"}`, http.StatusInternalServerError)
			return
		}
		r.ParseForm()
		s.mu.Lock()
		s.reqs = append(s.reqs, r.PostForm)
		s.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"sid":"SM%d","status":"queued"}`, n.Load())
	}))
	t.Cleanup(s.Close)
	return s
}

// fakeFCM serves an OAuth2 token endpoint and the FCM v1 send API; it
// returns the service account file to configure.
func fakeFCM(t *testing.T, dir string) (*recordingServer, string) {
	s := &recordingServer{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"access_token":"at-1","token_type":"Bearer","expires_in":3600}`)
	})
	mux.HandleFunc("POST /v1/projects/proj-1/messages:send", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer at-1" {
			http.Error(w, "unauthenticated", http.StatusUnauthorized)
			return
		}
		var body struct {
			Message struct {
				Token        string
				Notification struct{ Title, Body string }
			}
		}
		json.NewDecoder(r.Body).Decode(&body)
		s.mu.Lock()
		s.reqs = append(s.reqs, url.Values{"token": {body.Message.Token}, "title": {body.Message.Notification.Title}, "body": {body.Message.Notification.Body}})
		s.mu.Unlock()
		io.WriteString(w, `{"name":"projects/proj-1/messages/1"}`)
	})
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	sa, _ := json.Marshal(map[string]string{
		"type": "service_account", "project_id": "proj-1", "private_key_id": "kid-1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": "nudge@proj-1.iam.gserviceaccount.com", "token_uri": s.URL + "/token",
	})
	path := filepath.Join(dir, "fcm.json")
	if err := os.WriteFile(path, sa, 0o600); err != nil {
		t.Fatal(err)
	}
	return s, path
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// inProcess runs serve in this process on a virtual clock.
type inProcess struct {
	t     *testing.T
	url   string
	clock *journey.VirtualClock
}

func startInProcess(t *testing.T, cfg Config) *inProcess {
	t.Helper()
	clock := journey.NewVirtualClock(time.Now().UTC().Truncate(time.Second))
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, clock, pw, io.Discard) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		pw.Close()
	})
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "nudge listening on "); ok {
				listening <- u
			}
		}
	}()
	select {
	case u := <-listening:
		return &inProcess{t: t, url: u, clock: clock}
	case err := <-done:
		done <- err // for the cleanup
		t.Fatalf("serve: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("serve did not listen within 60s")
	}
	return nil
}

func (p *inProcess) track(user, event, props string) {
	p.t.Helper()
	body := fmt.Sprintf(`{"userId":%q,"event":%q,"properties":%s,"timestamp":%q}`, user, event, props, p.clock.Now().Format(time.RFC3339Nano))
	p.send("/v1/track", body)
}

func (p *inProcess) send(path, body string) {
	p.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, p.url+path, strings.NewReader(body))
	req.SetBasicAuth("wk", "")
	if code, resp := do(p.t, req); code != 200 {
		p.t.Fatalf("POST %s = %d %s", path, code, resp)
	}
}

// advance moves the virtual clock: timers due by then fire.
func (p *inProcess) advance(d time.Duration) { p.clock.Advance(d) }

// The shipped abandoned-cart journey end to end through real providers'
// wire formats: the SMS (Twilio, which fails once and is retried: one
// message), the push (FCM with its OAuth2 token) and the email (a real
// SMTP server) each name the cart's item; the email's one-click
// unsubscribe stops the next email, and a forged link is refused.
func TestAbandonedCartThroughProviders(t *testing.T) {
	dir := t.TempDir()
	mail := smtptest.Start(t)
	twilio := fakeTwilio(t)
	fcm, saFile := fakeFCM(t, dir)
	addr := freePort(t)
	cfg := defaultConfig()
	cfg.HTTP, cfg.Data = addr, filepath.Join(dir, "data")
	cfg.WriteKeys, cfg.AdminToken = []string{"test=wk"}, "adm"
	cfg.Channels = ChannelsConfig{
		SMTPAddr: mail.Addr, EmailFrom: "shop@example.com",
		TwilioSID: "AC1", TwilioToken: "tw-token", TwilioFrom: "+15550000000", TwilioURL: twilio.URL,
		FCMServiceAccount: saFile, FCMURL: fcm.URL,
	}
	p := startInProcess(t, cfg)
	p.send("/v1/identify", `{"userId":"ann","traits":{"email":"ann@example.com","phone":"+15551234567","first_name":"Ann","push_token":"fcm-ann"}}`)
	p.track("ann", "Product Added", `{"cart_id":"c1","product_id":"p1","sku":"SHOE-42","name":"Trail Runner","price":99,"quantity":1}`)
	p.track("ann", "Checkout Started", `{"cart_id":"c1"}`)

	// An hour with no order (and the allowed lateness): the SMS, after
	// Twilio's 500 and a retry.
	p.advance(time.Hour + 6*time.Minute)
	eventually(t, 10*time.Second, "the SMS", func() bool {
		p.advance(time.Second) // the retry's backoff
		return len(twilio.got()) == 1
	})
	sms := twilio.got()[0]
	if sms.Get("To") != "+15551234567" || !strings.Contains(sms.Get("Body"), "Trail Runner") {
		t.Fatalf("sms %v", sms)
	}
	// 30 minutes later, the cart still full: the push.
	p.advance(30 * time.Minute)
	eventually(t, 10*time.Second, "the push", func() bool { return len(fcm.got()) == 1 })
	if push := fcm.got()[0]; push.Get("token") != "fcm-ann" || !strings.Contains(push.Get("body"), "1 × Trail Runner") {
		t.Fatalf("push %v", push)
	}
	// A day after the SMS: the email, naming the SKU.
	p.advance(23*time.Hour + 30*time.Minute)
	var msgs []smtptest.Message
	eventually(t, 10*time.Second, "the email", func() bool { msgs = mail.Messages(t); return len(msgs) == 1 })
	m := msgs[0]
	if m.Subject != "Still thinking it over?" || !strings.Contains(m.Text, "SKU SHOE-42") || !strings.Contains(m.HTML, "SKU SHOE-42") {
		t.Fatalf("email %q\n%s\n%s", m.Subject, m.Text, m.HTML)
	}
	if !strings.Contains(m.HTML, "/e/o/") || !strings.Contains(m.HTML, "/e/c/") || strings.Contains(m.HTML, `href="https://shop.example.com/cart"`) {
		t.Fatalf("email links not tracked:\n%s", m.HTML)
	}
	unsub := strings.Trim(strings.Join(m.Headers["List-Unsubscribe"], ""), "<>")
	if !strings.HasPrefix(unsub, "http://"+addr+"/e/u/") || strings.Join(m.Headers["List-Unsubscribe-Post"], "") != "List-Unsubscribe=One-Click" {
		t.Fatalf("unsubscribe headers %v", m.Headers)
	}
	// A forged link is refused; the real one-click POST unsubscribes.
	forged := unsub[:len(unsub)-3] + "abc"
	if resp, err := http.Post(forged, "application/x-www-form-urlencoded", strings.NewReader("List-Unsubscribe=One-Click")); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("forged unsubscribe: %v %v", resp, err)
	}
	resp, err := http.Post(unsub, "application/x-www-form-urlencoded", strings.NewReader("List-Unsubscribe=One-Click"))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("unsubscribe: %v %v", resp, err)
	}

	// A second abandoned cart: SMS and push again, no email.
	p.track("ann", "Product Added", `{"cart_id":"c2","product_id":"p2","sku":"SOCK-7","name":"Sock","price":5,"quantity":3}`)
	p.track("ann", "Checkout Started", `{"cart_id":"c2"}`)
	p.advance(time.Hour + 6*time.Minute)
	eventually(t, 10*time.Second, "the second SMS", func() bool { return len(twilio.got()) == 2 })
	p.advance(30 * time.Minute)
	eventually(t, 10*time.Second, "the second push", func() bool { return len(fcm.got()) == 2 })
	p.advance(23*time.Hour + 30*time.Minute)
	req, _ := http.NewRequest(http.MethodGet, p.url+"/v1/journeys/abandoned-cart/stats", nil)
	req.Header.Set("Authorization", "Bearer adm")
	var st struct {
		Versions []struct {
			Steps map[string]journey.StepStats
		}
	}
	eventually(t, 10*time.Second, "the second email suppressed", func() bool {
		_, body := do(t, req)
		json.Unmarshal([]byte(body), &st)
		return len(st.Versions) == 1 && st.Versions[0].Steps["email-reminder"].Suppressed == 1
	})
	steps := st.Versions[0].Steps
	if steps["email-reminder"].Sent != 1 || steps["sms-discount"].Sent != 2 || steps["sms-discount"].Retried != 1 ||
		steps["email-reminder"].Opened != 0 || steps["email-reminder"].Unsubscribed != 1 {
		t.Fatalf("stats %+v", steps)
	}
	if msgs := mail.Messages(t); len(msgs) != 1 {
		t.Fatalf("%d emails after the unsubscribe", len(msgs))
	}
}

// killingSMTP is an SMTP server that takes messages and, on the first,
// kills nudge before it answers: the provider has the message, nudge never
// learns it.
func killingSMTP(t *testing.T, kill func()) (addr string, messages *atomic.Int32) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	messages = &atomic.Int32{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				fmt.Fprint(c, "220 test ESMTP\r\n")
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					switch cmd := strings.ToUpper(strings.TrimSpace(line)); {
					case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
						fmt.Fprint(c, "250 test\r\n")
					case cmd == "DATA":
						fmt.Fprint(c, "354 go on\r\n")
						for {
							l, err := r.ReadString('\n')
							if err != nil {
								return
							}
							if l == ".\r\n" {
								break
							}
						}
						if messages.Add(1) == 1 {
							kill()
						}
						fmt.Fprint(c, "250 queued\r\n")
					case cmd == "QUIT":
						fmt.Fprint(c, "221 bye\r\n")
						return
					default:
						fmt.Fprint(c, "250 ok\r\n")
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), messages
}

func writeJourney(t *testing.T, dir, doc string) string {
	t.Helper()
	js := filepath.Join(dir, "journeys")
	if err := os.MkdirAll(js, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(js, "j.yaml"), []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return js
}

// kill -9 after the provider took a message and before nudge recorded it.
// A signed webhook is sent again with the same Idempotency-Key, so the
// receiver drops it; an email (SMTP takes no key) is not sent again: it is
// dead-lettered as in doubt.
func TestKillBetweenProviderAnswerAndRecord(t *testing.T) {
	t.Run("webhook: resent with the same key", func(t *testing.T) {
		var running atomic.Pointer[proc]
		var mu sync.Mutex
		var keys []string
		recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			keys = append(keys, r.Header.Get("Idempotency-Key"))
			first := len(keys) == 1
			mu.Unlock()
			if first {
				running.Load().cmd.Process.Kill()
			}
		}))
		defer recv.Close()
		dir := t.TempDir()
		js := writeJourney(t, dir, `id: hook
trigger: {event: Signed Up}
steps:
  - id: notify
    send: {channel: webhook, content: {url: "`+recv.URL+`/hook", body: '{"ok": true}'}}
`)
		data := filepath.Join(dir, "data")
		p := start(t, data, "--journeys", js)
		running.Store(p)
		p.mustPost("/v1/track", `{"userId":"k1","event":"Signed Up"}`)
		select {
		case <-p.exited:
		case <-time.After(30 * time.Second):
			t.Fatalf("nudge was not killed\n%s", p.stderr)
		}
		p = start(t, data, "--journeys", js)
		running.Store(p)
		eventually(t, 30*time.Second, "the resend", func() bool { mu.Lock(); defer mu.Unlock(); return len(keys) == 2 })
		// The receiver has the resend before nudge records its answer.
		var code int
		var body string
		eventually(t, 30*time.Second, "the resend recorded as sent", func() bool {
			code, body = p.admin(http.MethodGet, "/v1/journeys/hook/stats")
			return code != 200 || strings.Contains(body, `"sent":`)
		})
		mu.Lock()
		defer mu.Unlock()
		if keys[0] == "" || keys[0] != keys[1] {
			t.Fatalf("keys %q", keys)
		}
		if code != 200 || !strings.Contains(body, `"sent":1`) {
			t.Fatalf("stats %d %s", code, body)
		}
	})
	t.Run("email: not sent again, in doubt", func(t *testing.T) {
		var running atomic.Pointer[proc]
		addr, messages := killingSMTP(t, func() { running.Load().cmd.Process.Kill() })
		dir := t.TempDir()
		js := writeJourney(t, dir, `id: hello
trigger: {event: Signed Up}
steps:
  - id: welcome
    send: {channel: email, content: {subject: Welcome, text: hello}}
`)
		data := filepath.Join(dir, "data")
		args := []string{"--journeys", js, "--smtp-addr", addr, "--email-from", "shop@example.com"}
		p := start(t, data, args...)
		running.Store(p)
		p.mustPost("/v1/identify", `{"userId":"k2","traits":{"email":"k2@example.com"}}`)
		p.mustPost("/v1/track", `{"userId":"k2","event":"Signed Up"}`)
		select {
		case <-p.exited:
		case <-time.After(30 * time.Second):
			t.Fatalf("nudge was not killed\n%s", p.stderr)
		}
		p = start(t, data, args...)
		running.Store(p)
		var body string
		defer func() {
			if t.Failed() {
				t.Logf("dlq: %s\nmessages %d\n%s", body, messages.Load(), p.stderr)
			}
		}()
		eventually(t, 30*time.Second, "the in-doubt dead letter", func() bool {
			_, body = p.admin(http.MethodGet, "/v1/dlq")
			return strings.Contains(body, `"error":"in doubt`)
		})
		if n := messages.Load(); n != 1 {
			t.Fatalf("the SMTP server got %d messages", n)
		}
		if code, stats := p.admin(http.MethodGet, "/v1/journeys/hello/stats"); code != 200 || !strings.Contains(stats, `"in_doubt":1`) || strings.Contains(stats, `"sent"`) {
			t.Fatalf("stats %d %s", code, stats)
		}
		// The operator sees it, and may send it after all.
		var page struct{ Items []struct{ ID string } }
		json.Unmarshal([]byte(body), &page)
		if code, _ := p.admin(http.MethodPost, "/v1/dlq/"+page.Items[0].ID+"/redrive"); code != http.StatusAccepted {
			t.Fatalf("redrive: %d", code)
		}
		eventually(t, 30*time.Second, "the redriven email", func() bool { return messages.Load() == 2 })
	})
}
