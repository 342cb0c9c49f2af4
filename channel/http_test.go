package channel_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nudge-dev/nudge/channel"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
	for h, want := range map[string]time.Duration{
		"":       0,
		"30":     30 * time.Second,
		" 30 ":   30 * time.Second,
		"0":      0,
		"-5":     0,
		"100000": 24 * time.Hour,
		"soon":   0,
		"1.5":    0,
		now.Add(2 * time.Minute).Format(http.TimeFormat):  2 * time.Minute,
		now.Add(-time.Minute).Format(http.TimeFormat):     0,
		now.Add(48 * time.Hour).Format(http.TimeFormat):   24 * time.Hour,
		now.Add(90 * time.Second).Format(time.RFC850):     90 * time.Second,
		"99999999999999999999999999999999999999999999999": 0,
	} {
		if got := channel.ParseRetryAfter(h, now); got != want {
			t.Errorf("ParseRetryAfter(%q) = %v, want %v", h, got, want)
		}
	}
}

func TestHTTPError(t *testing.T) {
	now := time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
	cause := errors.New("provider: the API answered")
	for _, tc := range []struct {
		code       int
		retryAfter string
		permanent  bool
		after      time.Duration
	}{
		{code: 500},
		{code: 502, retryAfter: "7", after: 7 * time.Second},
		{code: 503, retryAfter: now.Add(time.Minute).Format(http.TimeFormat), after: time.Minute},
		{code: 408},
		{code: 425},
		{code: 429, retryAfter: "30", after: 30 * time.Second},
		{code: 400, retryAfter: "30", permanent: true},
		{code: 401, permanent: true},
		{code: 404, permanent: true},
		{code: 410, permanent: true},
		{code: 304, permanent: true},
	} {
		resp := &http.Response{StatusCode: tc.code, Header: http.Header{}}
		if tc.retryAfter != "" {
			resp.Header.Set("Retry-After", tc.retryAfter)
		}
		err := channel.HTTPError(resp, cause, now)
		if !errors.Is(err, cause) || channel.IsPermanent(err) != tc.permanent || channel.RetryAfter(err) != tc.after {
			t.Errorf("%d: %v (permanent %v, retry after %v)", tc.code, err, channel.IsPermanent(err), channel.RetryAfter(err))
		}
		if channel.RetryableStatus(tc.code) == tc.permanent {
			t.Errorf("RetryableStatus(%d) = %v", tc.code, !tc.permanent)
		}
	}
}

func TestDefaults(t *testing.T) {
	if c := channel.HTTPClient(nil); c == nil || c.Timeout != channel.DefaultTimeout {
		t.Errorf("default client %+v", c)
	}
	mine := &http.Client{}
	if channel.HTTPClient(mine) != mine {
		t.Error("HTTPClient replaced the given client")
	}
	if channel.Clock(nil) == nil {
		t.Error("no default clock")
	}
	fixed := time.Unix(1, 0)
	if got := channel.Clock(func() time.Time { return fixed })(); !got.Equal(fixed) {
		t.Errorf("Clock replaced the given clock: %v", got)
	}
	for s, want := range map[string]bool{
		"https://api.example": true, "http://localhost:8080/x": true,
		"ftp://x": false, "api.example": false, "/relative": false, "::": false, "https://": false,
	} {
		if _, ok := channel.HTTPURL(s); ok != want {
			t.Errorf("HTTPURL(%q) = %v", s, ok)
		}
	}
}

func TestBaseURL(t *testing.T) {
	for _, tc := range []struct{ base, want string }{
		{"", "https://api.example"},
		{"http://127.0.0.1:8080/", "http://127.0.0.1:8080"},
		{"https://eu.api.example/v1", "https://eu.api.example/v1"},
	} {
		if got, err := channel.BaseURL(tc.base, "https://api.example"); err != nil || got != tc.want {
			t.Errorf("BaseURL(%q) = %q, %v; want %q", tc.base, got, err, tc.want)
		}
	}
	if _, err := channel.BaseURL("ftp://x", "https://api.example"); err == nil || err.Error() != `BaseURL "ftp://x" is not an http or https URL` {
		t.Errorf("ftp: %v", err)
	}
}

type body struct {
	io.Reader
	closed bool
}

func (b *body) Close() error { b.closed = true; return nil }

func TestReadBody(t *testing.T) {
	b := &body{Reader: strings.NewReader("0123456789")}
	got, err := channel.ReadBody(&http.Response{Body: b}, 4)
	if err != nil || string(got) != "0123" || !b.closed {
		t.Errorf("read %q (%v), closed %v", got, err, b.closed)
	}
}

func TestDoKeepsTheURLOutOfErrors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens: the request gets no answer
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/services/T0/B0/s3cr3t?token=t0k3n", nil)
	resp, err := channel.Do(channel.HTTPClient(nil), req)
	if resp != nil || err == nil {
		t.Fatalf("%v, %v", resp, err)
	}
	if msg := err.Error(); strings.Contains(msg, "s3cr3t") || strings.Contains(msg, "t0k3n") || !strings.Contains(msg, "POST "+addr) {
		t.Errorf("error %q", msg)
	}
	var op *net.OpError
	if !errors.As(err, &op) {
		t.Errorf("the cause is lost: %#v", err)
	}
}
