package channel

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// What the channels that talk HTTP to a provider share: their config
// defaults, the bounded reading of an answer, and one classification of
// answers, so that every provider means the same by retryable:
//
//   - a 2xx answer is a delivery;
//   - 408, 425, 429 and 5xx answers are retryable (HTTPError), after the
//     wait the answer's Retry-After header asks for (ParseRetryAfter);
//   - any other answer is permanent;
//   - a request that got no answer (a network failure, a timeout) is
//     retryable.
//
// The error of an answer is written by the provider's package, from the
// status and the provider's own codes: never from the provider's message,
// which may quote an address, a number or a token.

// DefaultTimeout bounds each request of a channel whose config names no
// HTTP client (HTTPClient).
const DefaultTimeout = 10 * time.Second

// maxRetryAfter caps the wait a Retry-After header may ask for.
const maxRetryAfter = 24 * time.Hour

// HTTPClient returns c, or when c is nil a new client with DefaultTimeout:
// the default of an HTTP channel's Config.Client. Its transport keeps up to
// MaxIdleConnsPerHost connections to a provider open between sends: the
// delivery lanes send many at once to one host, and Go's default of 2 idle
// connections per host made most sends dial anew (measured: 8% of nudge's
// CPU at 2,000 webhooks/s went to dialling).
func HTTPClient(c *http.Client) *http.Client {
	if c == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConns = 0 // no global bound; the per-host one holds
		t.MaxIdleConnsPerHost = MaxIdleConnsPerHost
		return &http.Client{Timeout: DefaultTimeout, Transport: t}
	}
	return c
}

// Do sends req with c. A request that got no answer returns an error that
// names the method, the host and the cause, never the whole URL: Go's
// *url.Error quotes it, and a webhook's path or a query may hold a secret
// (a Slack incoming-webhook URL is one), while these errors end up in logs,
// dead letters and the dashboard.
func Do(c *http.Client, req *http.Request) (*http.Response, error) {
	resp, err := c.Do(req)
	if ue, ok := errors.AsType[*url.Error](err); ok {
		err = fmt.Errorf("%s %s: %w", req.Method, req.URL.Host, ue.Err)
	}
	return resp, err
}

// MaxIdleConnsPerHost is how many idle connections a channel's default
// client keeps to one provider host: as many as a lane's default workers.
const MaxIdleConnsPerHost = 64

// Clock returns now, or time.Now when now is nil: the default of a
// channel's Config.Now.
func Clock(now func() time.Time) func() time.Time {
	if now == nil {
		return time.Now
	}
	return now
}

// HTTPURL parses s and reports whether it is an http or https URL with a
// host, as a channel's BaseURL must be.
func HTTPURL(s string) (*url.URL, bool) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, false
	}
	return u, true
}

// BaseURL returns base, or def when base is empty, without a trailing
// slash: the default and the check of an HTTP channel's Config.BaseURL.
// It fails for anything but an http or https URL with a host.
func BaseURL(base, def string) (string, error) {
	if base == "" {
		base = def
	}
	if _, ok := HTTPURL(base); !ok {
		return "", fmt.Errorf("BaseURL %q is not an http or https URL", base)
	}
	return strings.TrimSuffix(base, "/"), nil
}

// ReadBody reads at most limit bytes of resp's body and closes it. The
// bound keeps a broken or hostile server from filling memory; reading
// what remains of a short body lets the client reuse the connection.
func ReadBody(resp *http.Response, limit int64) ([]byte, error) {
	defer resp.Body.Close()
	return io.ReadAll(io.LimitReader(resp.Body, limit))
}

// RetryableStatus reports whether an HTTP answer with status code may pass
// if the request is sent again: 408 Request Timeout, 425 Too Early, 429
// Too Many Requests and every 5xx.
func RetryableStatus(code int) bool {
	return code == http.StatusRequestTimeout || code == http.StatusTooEarly ||
		code == http.StatusTooManyRequests || code >= 500
}

// HTTPError classifies err, the provider's description of resp, an answer
// that is not 2xx: retryable after the answer's Retry-After (read against
// now) when RetryableStatus says so, permanent otherwise.
func HTTPError(resp *http.Response, err error, now time.Time) error {
	if RetryableStatus(resp.StatusCode) {
		return Retryable(err, ParseRetryAfter(resp.Header.Get("Retry-After"), now))
	}
	return Permanent(err)
}

// ParseRetryAfter returns the wait an HTTP Retry-After header asks for: a
// number of seconds, or an HTTP date, read against now. It is 0 for an
// empty or malformed header, a negative number and a date in the past, and
// at most 24 hours.
func ParseRetryAfter(header string, now time.Time) time.Duration {
	header = strings.TrimSpace(header)
	if s, err := strconv.Atoi(header); err == nil {
		return time.Duration(min(max(s, 0), int(maxRetryAfter/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(header); err == nil && t.After(now) {
		return min(t.Sub(now), maxRetryAfter)
	}
	return 0
}
