// Package google is a channel that adds people to (or removes them from)
// a Google Ads Customer Match user list, through the Google Ads API's REST
// interface.
//
// # Fields
//
// It reads the action and audience fields and the recipient's email and
// phone identifiers, as package audience describes; audience is the user
// list id (the number at the end of "customers/{cid}/userLists/{id}").
//
// # Requests
//
// Each send runs one offline user data job, in three calls to
// {BaseURL}/{Version}/...:
//
//  1. customers/{cid}/offlineUserDataJobs:create, with a job of type
//     CUSTOMER_MATCH_USER_LIST for the list;
//  2. {job}:addOperations, with one create (add) or remove operation whose
//     user identifiers are the hashedEmail and hashedPhoneNumber (SHA-256
//     of the trimmed, lower-cased address and of the E.164 number);
//  3. {job}:run, which starts the job; Google processes it within hours.
//
// Every call carries an OAuth2 bearer token from Config.TokenSource, the
// developer-token header, and login-customer-id when Config.LoginCustomerID
// is set (access through a manager account).
//
// # Outcome
//
// 408, 425, 429 and 5xx answers and network errors are retryable (a
// Retry-After header is passed on); any other answer is permanent. A
// retried send starts a new job: adding a member twice, or removing one
// twice, leaves the list as once, but Google takes no idempotency key, so
// the channel does not claim to be idempotent.
package google

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/nudge-dev/nudge/channel"
	"github.com/nudge-dev/nudge/channel/audience"
)

// Config configures a Google Ads Customer Match channel.
type Config struct {
	// Name is the channel's name in send steps; default "google_ads".
	Name string
	// BaseURL is the API's address; default https://googleads.googleapis.com.
	// Tests point it at a local server.
	BaseURL string
	// Version is the API version in the path; default "v26".
	Version string
	// CustomerID is the Google Ads account that owns the lists, digits
	// with or without dashes; required.
	CustomerID string
	// LoginCustomerID is the manager account to act through, if any.
	LoginCustomerID string
	// DeveloperToken is the API developer token; required.
	DeveloperToken string
	// UserList is the list id for messages without an audience field.
	UserList string
	// TokenSource gives OAuth2 access tokens with the adwords scope;
	// required. It should cache tokens (oauth2.ReuseTokenSource).
	TokenSource oauth2.TokenSource
	// Client sends the requests; default: a client with a 10 s timeout.
	Client *http.Client
	// Now is the clock that Retry-After dates are read against; default
	// time.Now.
	Now func() time.Time
}

// Channel is a Google Ads Customer Match channel.
type Channel struct {
	cfg Config
}

var _ channel.Channel = (*Channel)(nil)

// New returns a Google Ads Customer Match channel.
func New(cfg Config) (*Channel, error) {
	cfg.CustomerID = customerID(cfg.CustomerID)
	cfg.LoginCustomerID = customerID(cfg.LoginCustomerID)
	switch {
	case cfg.CustomerID == "" || !digits(cfg.CustomerID):
		return nil, errors.New("google_ads: CustomerID must be a Google Ads customer id (digits)")
	case cfg.LoginCustomerID != "" && !digits(cfg.LoginCustomerID):
		return nil, errors.New("google_ads: LoginCustomerID must be a Google Ads customer id (digits)")
	case cfg.DeveloperToken == "":
		return nil, errors.New("google_ads: a DeveloperToken is required")
	case cfg.TokenSource == nil:
		return nil, errors.New("google_ads: a TokenSource is required")
	}
	if cfg.Name == "" {
		cfg.Name = "google_ads"
	}
	base, err := channel.BaseURL(cfg.BaseURL, "https://googleads.googleapis.com")
	if err != nil {
		return nil, fmt.Errorf("google_ads: %w", err)
	}
	cfg.BaseURL = base
	if cfg.Version == "" {
		cfg.Version = "v26"
	}
	cfg.Client = channel.HTTPClient(cfg.Client)
	cfg.Now = channel.Clock(cfg.Now)
	return &Channel{cfg: cfg}, nil
}

func customerID(s string) string { return strings.ReplaceAll(strings.TrimSpace(s), "-", "") }

func digits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Name implements channel.Channel.
func (c *Channel) Name() string { return c.cfg.Name }

// Idempotent: Google Ads takes no idempotency key (see the package
// documentation).
func (c *Channel) Idempotent() bool { return false }

// UserIdentifier is one hashed identifier of a member; one field is set.
type UserIdentifier struct {
	HashedEmail       string `json:"hashedEmail,omitempty"`
	HashedPhoneNumber string `json:"hashedPhoneNumber,omitempty"`
}

type userData struct {
	UserIdentifiers []UserIdentifier `json:"userIdentifiers"`
}

type operation struct {
	Create *userData `json:"create,omitempty"`
	Remove *userData `json:"remove,omitempty"`
}

// Send implements channel.Channel.
func (c *Channel) Send(ctx context.Context, m *channel.Message) error {
	r, err := audience.Parse(m, c.cfg.UserList)
	if err != nil {
		return err
	}
	var job struct {
		ResourceName string `json:"resourceName"`
	}
	create := map[string]any{"job": map[string]any{
		"type": "CUSTOMER_MATCH_USER_LIST",
		"customerMatchUserListMetadata": map[string]string{
			"userList": "customers/" + c.cfg.CustomerID + "/userLists/" + r.Audience,
		},
	}}
	if err := c.call(ctx, "customers/"+c.cfg.CustomerID+"/offlineUserDataJobs:create", create, &job); err != nil {
		return err
	}
	if !strings.HasPrefix(job.ResourceName, "customers/"+c.cfg.CustomerID+"/offlineUserDataJobs/") {
		return channel.Retryable(errors.New("google_ads: the job was created without a resource name"), 0)
	}
	data := &userData{}
	if r.Email != "" {
		data.UserIdentifiers = append(data.UserIdentifiers, UserIdentifier{HashedEmail: audience.Hash(r.Email)})
	}
	if r.Phone != "" {
		data.UserIdentifiers = append(data.UserIdentifiers, UserIdentifier{HashedPhoneNumber: audience.Hash(r.Phone)})
	}
	op := operation{Create: data}
	if r.Action == audience.Remove {
		op = operation{Remove: data}
	}
	if err := c.call(ctx, job.ResourceName+":addOperations", map[string]any{"operations": []operation{op}}, nil); err != nil {
		return err
	}
	return c.call(ctx, job.ResourceName+":run", struct{}{}, nil)
}

// call POSTs body as JSON to {BaseURL}/{Version}/{path} and decodes the
// answer into out, when out is not nil.
func (c *Channel) call(ctx context.Context, path string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return channel.Permanent(fmt.Errorf("google_ads: %w", err))
	}
	tok, err := c.cfg.TokenSource.Token()
	if err != nil {
		return channel.Retryable(fmt.Errorf("google_ads: getting an access token: %w", err), 0)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.BaseURL+"/"+c.cfg.Version+"/"+path, bytes.NewReader(b))
	if err != nil {
		return channel.Permanent(fmt.Errorf("google_ads: %w", err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "nudge-google-ads/1")
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	req.Header.Set("developer-token", c.cfg.DeveloperToken)
	if c.cfg.LoginCustomerID != "" {
		req.Header.Set("login-customer-id", c.cfg.LoginCustomerID)
	}
	op := path[strings.LastIndexByte(path, ':')+1:]
	resp, err := channel.Do(c.cfg.Client, req)
	if err != nil {
		return channel.Retryable(fmt.Errorf("google_ads: %s: %w", op, err), 0)
	}
	answer, err := channel.ReadBody(resp, 1<<20)
	if err != nil {
		return channel.Retryable(fmt.Errorf("google_ads: %s: reading the answer: %w", op, err), 0)
	}
	if code := resp.StatusCode; code < 200 || code > 299 {
		// The status ("INVALID_ARGUMENT", "PERMISSION_DENIED") names the
		// failure; the message may quote the request, so it is left out.
		var e struct {
			Error struct {
				Status string `json:"status"`
			} `json:"error"`
		}
		_ = json.Unmarshal(answer, &e)
		err := fmt.Errorf("google_ads: %s: the API answered %d", op, code)
		if e.Error.Status != "" {
			err = fmt.Errorf("%w (%s)", err, e.Error.Status)
		}
		return channel.HTTPError(resp, err, c.cfg.Now())
	}
	if out != nil {
		if err := json.Unmarshal(answer, out); err != nil {
			return channel.Retryable(fmt.Errorf("google_ads: %s: the answer is not JSON: %w", op, err), 0)
		}
	}
	return nil
}
