// Package smtptest runs a real SMTP server for tests: mailpit, which
// keeps every message it receives and serves them over an HTTP API.
//
// Start builds mailpit once with `go install` into the user's cache
// directory (nudge-test-bin), so the first run needs the Go module proxy
// and takes a minute; later runs reuse the binary.
package smtptest

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"
)

// Version is the mailpit version Start runs.
const Version = "v1.33.1"

// Server is a running mailpit.
type Server struct {
	// Addr is the SMTP server's host:port.
	Addr string
	// APIURL is the base URL of mailpit's HTTP API and web UI.
	APIURL string
}

// Message is a message as mailpit parsed it.
type Message struct {
	ID      string
	Subject string
	From    string
	To      []string
	Text    string
	HTML    string
	// Headers are the message's headers, by canonical name.
	Headers map[string][]string
}

// Start runs a mailpit on free local ports until the test ends; flags are
// passed on (such as "--smtp-allowed-recipients", "^ok@"). It fails the
// test when mailpit cannot be built or does not start.
func Start(t testing.TB, flags ...string) *Server {
	t.Helper()
	bin := install(t)
	dir := t.TempDir()
	s := &Server{Addr: freeAddr(t)}
	web := freeAddr(t)
	s.APIURL = "http://" + web
	args := append([]string{
		"--smtp", s.Addr, "--listen", web, "--database", filepath.Join(dir, "mp.db"),
		"--smtp-disable-rdns", "--disable-version-check",
	}, flags...)
	logs, err := os.Create(filepath.Join(dir, "mailpit.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("smtptest: starting mailpit: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})

	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(30 * time.Second)
	for !s.ready() {
		select {
		case err := <-exited:
			b, _ := os.ReadFile(logs.Name())
			t.Fatalf("smtptest: mailpit exited (%v):\n%s", err, b)
		case <-timeout:
			b, _ := os.ReadFile(logs.Name())
			t.Fatalf("smtptest: mailpit not ready after 30s:\n%s", b)
		case <-tick.C:
		}
	}
	return s
}

// ready reports whether both the SMTP server and the API answer.
func (s *Server) ready() bool {
	c, err := net.DialTimeout("tcp", s.Addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	resp, err := http.Get(s.APIURL + "/api/v1/messages")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// install returns the path of the mailpit binary, building it first if
// the cache has none.
func install(t testing.TB) string {
	t.Helper()
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "nudge-test-bin", "mailpit-"+Version)
	bin := filepath.Join(dir, "mailpit")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("smtptest: %v", err)
	}
	// Build into a directory of our own and rename: tests of several
	// packages may be installing at the same time.
	tmp, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		t.Fatalf("smtptest: %v", err)
	}
	defer os.RemoveAll(tmp)
	cmd := exec.Command("go", "install", "github.com/axllent/mailpit@"+Version)
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("smtptest: go install mailpit %s: %v\n%s", Version, err, out)
	}
	if err := os.Rename(filepath.Join(tmp, "mailpit"), bin); err != nil {
		t.Fatalf("smtptest: %v", err)
	}
	return bin
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// Messages returns the messages mailpit has received, oldest first.
func (s *Server) Messages(t testing.TB) []Message {
	t.Helper()
	var list struct {
		Messages []struct{ ID string }
	}
	s.get(t, "/api/v1/messages", &list)
	var msgs []Message
	for _, m := range slices.Backward(list.Messages) {
		var full struct {
			ID, Subject, Text, HTML string
			From                    struct{ Address string }
			To                      []struct{ Address string }
		}
		s.get(t, "/api/v1/message/"+m.ID, &full)
		msg := Message{ID: full.ID, Subject: full.Subject, From: full.From.Address, Text: full.Text, HTML: full.HTML}
		for _, a := range full.To {
			msg.To = append(msg.To, a.Address)
		}
		s.get(t, "/api/v1/message/"+m.ID+"/headers", &msg.Headers)
		msgs = append(msgs, msg)
	}
	return msgs
}

func (s *Server) get(t testing.TB, path string, v any) {
	t.Helper()
	resp, err := http.Get(s.APIURL + path)
	if err != nil {
		t.Fatalf("smtptest: GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("smtptest: GET %s: %s", path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("smtptest: GET %s: decoding: %v", path, err)
	}
}
