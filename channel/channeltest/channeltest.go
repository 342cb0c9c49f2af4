// Package channeltest helps test the channels that talk HTTP to a
// provider: Server, a local server that records the requests it gets and
// answers as told, and Outcomes, the shared test of how a channel
// classifies its provider's answers (channel.HTTPError), which every HTTP
// channel passes.
package channeltest

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nudge-dev/nudge/channel"
)

// Request is a request a Server received, with its body read.
type Request struct {
	Method   string
	Path     string
	RawQuery string
	Header   http.Header
	Body     []byte
}

// Expect fails t unless r has method, path and the given header values.
func (r Request) Expect(t testing.TB, method, path string, header map[string]string) {
	t.Helper()
	if r.Method != method || r.Path != path {
		t.Errorf("request %s %s, want %s %s", r.Method, r.Path, method, path)
	}
	for k, v := range header {
		if got := r.Header.Get(k); got != v {
			t.Errorf("%s %s: header %s is %q, want %q", r.Method, r.Path, k, got, v)
		}
	}
}

// Form parses the body as a form (application/x-www-form-urlencoded), and
// fails t when it is not one.
func (r Request) Form(t testing.TB) url.Values {
	t.Helper()
	v, err := url.ParseQuery(string(r.Body))
	if err != nil {
		t.Fatalf("body %q is not a form: %v", r.Body, err)
	}
	return v
}

// JSON decodes the body into v, and fails t when it is not JSON.
func (r Request) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("body %q: %v", r.Body, err)
	}
}

// BasicAuth returns the user name and password of the request's HTTP Basic
// authentication; ok is false without one.
func (r Request) BasicAuth() (user, pass string, ok bool) {
	return (&http.Request{Header: r.Header}).BasicAuth()
}

// BasicAuth returns the Authorization header of HTTP Basic authentication
// as user with pass, for Request.Expect.
func BasicAuth(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// Answer is how a Server answers a request.
type Answer struct {
	// Status is the status code; default 200.
	Status int
	Header map[string]string
	Body   string
}

// Server is a local HTTP server that records every request and answers it
// as told. It closes when the test that started it ends; Close it sooner
// to see how a channel takes a provider it cannot reach.
type Server struct {
	*httptest.Server

	mu       sync.Mutex
	requests []Request
}

// NewServer starts a Server that answers the requests with answers in
// turn, the last one repeating (with none, 200 and no body).
func NewServer(t testing.TB, answers ...Answer) *Server {
	var mu sync.Mutex
	next := 0
	return NewServerFunc(t, func(Request) Answer {
		mu.Lock()
		defer mu.Unlock()
		if len(answers) == 0 {
			return Answer{}
		}
		a := answers[min(next, len(answers)-1)]
		next++
		return a
	})
}

// NewServerFunc starts a Server whose answer to each request is answer's.
func NewServerFunc(t testing.TB, answer func(Request) Answer) *Server {
	s := &Server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("reading the request: %v", err)
		}
		req := Request{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: r.Header.Clone(), Body: b}
		s.mu.Lock()
		s.requests = append(s.requests, req)
		s.mu.Unlock()
		a := answer(req)
		for k, v := range a.Header {
			w.Header().Set(k, v)
		}
		if a.Status != 0 {
			w.WriteHeader(a.Status)
		}
		io.WriteString(w, a.Body)
	}))
	t.Cleanup(s.Close)
	return s
}

// Requests returns the requests the server received, oldest first. A
// request is recorded before it is answered: when a send returns, its
// requests are here.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Last returns the last request the server received, and fails t when
// there was none.
func (s *Server) Last(t testing.TB) Request {
	t.Helper()
	r := s.Requests()
	if len(r) == 0 {
		t.Fatal("the server received no request")
	}
	return r[len(r)-1]
}

// Case is an answer, and how a channel must take it.
type Case struct {
	// Name names the case's subtest; default: the answer's status.
	Name   string
	Answer Answer
	// Permanent and RetryAfter are what the send's error must say.
	Permanent  bool
	RetryAfter time.Duration
	// Want is a text the error must contain.
	Want string
}

// Outcomes is the test of how an HTTP channel takes its provider's
// answers. Run sends one message for each case, to a new Server that gives
// the case's answer; the standard cases, which every channel takes alike,
// come first:
//
//   - 500: retryable;
//   - 429 with Retry-After: 30: retryable after 30 s;
//   - 503 with Retry-After an HTTP date 2 minutes after Now: retryable
//     after 2 min;
//   - 400: permanent;
//
// each with an error that names the status. A send to a closed server must
// be retryable. No error may contain one of Private.
type Outcomes struct {
	// Now is the channel's clock, which Retry-After dates are read against.
	Now time.Time
	// Send sends a valid message through a channel whose provider is at
	// url (a Server's URL), and returns the outcome.
	Send func(t *testing.T, url string) error
	// Cases are the package's own, run after the standard ones.
	Cases []Case
	// Private are texts no error may quote: the message's personal data,
	// the channel's secrets.
	Private []string
}

// Run runs the cases, each in a subtest.
func (o Outcomes) Run(t *testing.T) {
	cases := []Case{
		{Answer: Answer{Status: 500}, Want: "500"},
		{Name: "429 Retry-After seconds", Answer: Answer{Status: 429, Header: map[string]string{"Retry-After": "30"}},
			RetryAfter: 30 * time.Second, Want: "429"},
		{Name: "503 Retry-After date", Answer: Answer{Status: 503, Header: map[string]string{"Retry-After": o.Now.Add(2 * time.Minute).Format(http.TimeFormat)}},
			RetryAfter: 2 * time.Minute, Want: "503"},
		{Answer: Answer{Status: 400}, Permanent: true, Want: "400"},
	}
	for _, c := range append(cases, o.Cases...) {
		name := c.Name
		if name == "" {
			name = strconv.Itoa(c.Answer.Status)
		}
		t.Run(name, func(t *testing.T) {
			srv := NewServer(t, c.Answer)
			c.Check(t, o.Send(t, srv.URL), o.Private...)
		})
	}
	t.Run("closed server", func(t *testing.T) {
		srv := NewServer(t)
		srv.Close()
		err := o.Send(t, srv.URL)
		if err == nil || channel.IsPermanent(err) {
			t.Fatalf("%v, want a retryable error", err)
		}
		checkPrivate(t, err, o.Private)
	})
}

// Check fails t unless err is what c says, and quotes none of private.
func (c Case) Check(t testing.TB, err error, private ...string) {
	t.Helper()
	if err == nil || channel.IsPermanent(err) != c.Permanent || channel.RetryAfter(err) != c.RetryAfter {
		t.Fatalf("%d answer: %v (permanent %v, retry after %v), want permanent %v, retry after %v",
			c.Answer.Status, err, channel.IsPermanent(err), channel.RetryAfter(err), c.Permanent, c.RetryAfter)
	}
	if !strings.Contains(err.Error(), c.Want) {
		t.Errorf("%d answer: error %q does not contain %q", c.Answer.Status, err, c.Want)
	}
	checkPrivate(t, err, private)
}

func checkPrivate(t testing.TB, err error, private []string) {
	t.Helper()
	for _, p := range private {
		if strings.Contains(err.Error(), p) {
			t.Errorf("error %q quotes %q", err, p)
		}
	}
}
