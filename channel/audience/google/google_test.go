package google_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/nudge-dev/nudge/channel"
	"github.com/nudge-dev/nudge/channel/audience/google"
	"github.com/nudge-dev/nudge/channel/channeltest"
)

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// server is a fake Google Ads API: it answers each call with the
// documented shapes, or with fail on the call whose path ends with failOn.
func server(t *testing.T, failOn string, fail channeltest.Answer) *channeltest.Server {
	return channeltest.NewServerFunc(t, func(r channeltest.Request) channeltest.Answer {
		switch {
		case failOn != "" && strings.HasSuffix(r.Path, failOn):
			return fail
		case strings.HasSuffix(r.Path, "/offlineUserDataJobs:create"):
			return channeltest.Answer{Body: `{"resourceName":"customers/1234567890/offlineUserDataJobs/555"}`}
		case strings.HasSuffix(r.Path, ":addOperations"):
			return channeltest.Answer{Body: `{}`}
		case strings.HasSuffix(r.Path, ":run"):
			return channeltest.Answer{Body: `{"name":"customers/1234567890/operations/abc"}`}
		}
		return channeltest.Answer{Status: http.StatusNotFound}
	})
}

var now = time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)

func newChannel(t *testing.T, url string) *google.Channel {
	t.Helper()
	c, err := google.New(google.Config{
		BaseURL: url, CustomerID: "123-456-7890", LoginCustomerID: "111-222-3333",
		DeveloperToken: "devtok", UserList: "42",
		TokenSource: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "acc"}),
		Now:         func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func msg(fields map[string]string) *channel.Message {
	return &channel.Message{
		IdempotencyKey: "run1.step1", Fields: fields,
		Recipient: channel.Recipient{ProfileID: "p1", Identifiers: map[string]string{
			"email": "  Foo.Bar@Example.COM ", "phone": "+1 (555) 123-4567",
		}},
	}
}

func TestAddAndRemove(t *testing.T) {
	srv := server(t, "", channeltest.Answer{})
	c := newChannel(t, srv.URL)
	if c.Name() != "google_ads" || c.Idempotent() {
		t.Fatalf("name %q, idempotent %v", c.Name(), c.Idempotent())
	}
	if err := c.Send(context.Background(), msg(nil)); err != nil {
		t.Fatal(err)
	}
	if err := c.Send(context.Background(), msg(map[string]string{"action": "remove", "audience": "77"})); err != nil {
		t.Fatal(err)
	}
	calls := srv.Requests()
	if len(calls) != 6 {
		t.Fatalf("%d calls, want 6: %+v", len(calls), calls)
	}
	paths := []string{
		"/v26/customers/1234567890/offlineUserDataJobs:create",
		"/v26/customers/1234567890/offlineUserDataJobs/555:addOperations",
		"/v26/customers/1234567890/offlineUserDataJobs/555:run",
	}
	for i, c := range calls {
		c.Expect(t, "POST", paths[i%3], map[string]string{
			"Authorization": "Bearer acc", "developer-token": "devtok", "login-customer-id": "1112223333", "Content-Type": "application/json",
		})
	}
	js := func(r channeltest.Request) string {
		var v map[string]any
		r.JSON(t, &v)
		b, _ := json.Marshal(v)
		return string(b)
	}
	ids := `[{"hashedEmail":"` + sha("foo.bar@example.com") + `"},{"hashedPhoneNumber":"` + sha("+15551234567") + `"}]`
	for i, want := range []string{
		`{"job":{"customerMatchUserListMetadata":{"userList":"customers/1234567890/userLists/42"},"type":"CUSTOMER_MATCH_USER_LIST"}}`,
		`{"operations":[{"create":{"userIdentifiers":` + ids + `}}]}`,
		`{}`,
		`{"job":{"customerMatchUserListMetadata":{"userList":"customers/1234567890/userLists/77"},"type":"CUSTOMER_MATCH_USER_LIST"}}`,
		`{"operations":[{"remove":{"userIdentifiers":` + ids + `}}]}`,
		`{}`,
	} {
		if got := js(calls[i]); got != want {
			t.Errorf("call %d body\n got %s\nwant %s", i, got, want)
		}
	}
}

func TestOutcomes(t *testing.T) {
	const invalid = `{"error":{"code":400,"message":"bad request for foo@example.com","status":"INVALID_ARGUMENT"}}`
	channeltest.Outcomes{
		Now: now,
		Send: func(t *testing.T, url string) error {
			return newChannel(t, url).Send(context.Background(), msg(nil))
		},
		Cases: []channeltest.Case{
			{Answer: channeltest.Answer{Status: 400, Body: invalid}, Permanent: true, Want: "create: the API answered 400 (INVALID_ARGUMENT)"},
		},
		Private: []string{"@", "devtok"},
	}.Run(t)

	// A failure of a later call is taken alike, and names the call.
	for _, tc := range []struct {
		failOn string
		channeltest.Case
	}{
		{":addOperations", channeltest.Case{Answer: channeltest.Answer{Status: 503, Header: map[string]string{"Retry-After": now.Add(time.Minute).Format(http.TimeFormat)}},
			RetryAfter: time.Minute, Want: "addOperations"}},
		{":run", channeltest.Case{Answer: channeltest.Answer{Status: 429, Header: map[string]string{"Retry-After": "30"}}, RetryAfter: 30 * time.Second, Want: "run"}},
		{":addOperations", channeltest.Case{Answer: channeltest.Answer{Status: 403, Body: invalid}, Permanent: true, Want: "addOperations"}},
	} {
		srv := server(t, tc.failOn, tc.Answer)
		tc.Check(t, newChannel(t, srv.URL).Send(context.Background(), msg(nil)), "@")
	}

	srv := server(t, "", channeltest.Answer{})
	m := msg(nil)
	m.Recipient.Identifiers = map[string]string{"userId": "u1"}
	if err := newChannel(t, srv.URL).Send(context.Background(), m); !channel.IsPermanent(err) || len(srv.Requests()) != 0 {
		t.Errorf("no email or phone: %v after %d calls", err, len(srv.Requests()))
	}
}

func TestConfig(t *testing.T) {
	ts := oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "acc"})
	for name, cfg := range map[string]google.Config{
		"no customer":        {DeveloperToken: "d", TokenSource: ts},
		"bad customer":       {CustomerID: "abc", DeveloperToken: "d", TokenSource: ts},
		"bad login customer": {CustomerID: "1", LoginCustomerID: "x", DeveloperToken: "d", TokenSource: ts},
		"no developer token": {CustomerID: "1", TokenSource: ts},
		"no token source":    {CustomerID: "1", DeveloperToken: "d"},
		"bad base URL":       {CustomerID: "1", DeveloperToken: "d", TokenSource: ts, BaseURL: "ftp://x"},
	} {
		if _, err := google.New(cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
