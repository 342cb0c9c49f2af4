// Package fcm is a push channel that sends notifications to Android, iOS
// and web apps through Firebase Cloud Messaging's HTTP v1 API.
//
// # Fields
//
// A push send reads these fields of the message:
//
//   - token: the device's registration token, usually rendered from a
//     profile trait; required. It is personal data: the channel never
//     quotes it in an error.
//   - title, body: the notification's title and text.
//   - image: the URL of the notification's image.
//   - data_<key>: data for the app, sent as data[<key>].
//
// A message needs a title, a body or a data_ field. The data also holds
// nudge_key, the message's IdempotencyKey, so that an app can drop a
// notification it already showed: FCM itself takes no idempotency key.
//
// # Requests
//
// A send is one POST of {"message": {...}} to
// {BaseURL}/v1/projects/{project}/messages:send, with an OAuth2 access
// token that the channel gets for the service account (a signed JWT
// assertion sent to the account's token URL, scope firebase.messaging) and
// reuses until it expires. A 401 answer renews the token and tries once
// more.
//
// # Outcome
//
// 408, 425, 429 and 5xx answers and network errors are retryable (a
// Retry-After header is passed on); any other answer is permanent: 400
// INVALID_ARGUMENT, 403 SENDER_ID_MISMATCH, 404 UNREGISTERED, and a 401
// that a new token did not cure. An unregistered token is ErrUnregistered,
// so that the caller can forget it. A token endpoint that refuses the
// service account (a 4xx answer) is permanent too.
package fcm

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/jwt"

	"github.com/nudge-dev/nudge/channel"
)

// Scope is the OAuth2 scope of the access tokens the channel asks for.
const Scope = "https://www.googleapis.com/auth/firebase.messaging"

// ErrUnregistered is wrapped by the permanent error of a send to a
// registration token that FCM no longer knows: the app was uninstalled,
// or the token expired.
var ErrUnregistered = errors.New("fcm: the registration token is not registered")

// Config configures a push channel.
type Config struct {
	// Name is the channel's name in send steps; default "push".
	Name string
	// BaseURL is the API's address; default https://fcm.googleapis.com.
	// Tests point it at a local server.
	BaseURL string
	// ServiceAccount is the service account's JSON key file, as the
	// Firebase console downloads it; required. The channel reads its
	// client_email, private_key, private_key_id, project_id and token_uri.
	ServiceAccount []byte
	// ProjectID is the Firebase project; default: the key file's
	// project_id.
	ProjectID string
	// TokenURL is where access tokens come from; default: the key file's
	// token_uri, or https://oauth2.googleapis.com/token.
	TokenURL string
	// Client sends the requests, to FCM and to the token URL; default: a
	// client with a 10 s timeout.
	Client *http.Client
	// Now is the clock that Retry-After dates are read against; default
	// time.Now.
	Now func() time.Time
}

// Channel is a push channel.
type Channel struct {
	cfg      Config
	endpoint string
	jwt      *jwt.Config
	// tokenCtx carries cfg.Client to the token source; it is no request's
	// context.
	tokenCtx context.Context

	mu     sync.Mutex
	tokens oauth2.TokenSource
}

var _ channel.Channel = (*Channel)(nil)

type serviceAccount struct {
	ClientEmail  string `json:"client_email"`
	PrivateKey   string `json:"private_key"`
	PrivateKeyID string `json:"private_key_id"`
	ProjectID    string `json:"project_id"`
	TokenURI     string `json:"token_uri"`
}

// New returns a push channel.
func New(cfg Config) (*Channel, error) {
	if len(cfg.ServiceAccount) == 0 {
		return nil, errors.New("fcm: a ServiceAccount key file is required")
	}
	var sa serviceAccount
	if err := json.Unmarshal(cfg.ServiceAccount, &sa); err != nil {
		return nil, fmt.Errorf("fcm: the ServiceAccount key file is not JSON: %w", err)
	}
	if sa.ClientEmail == "" || sa.PrivateKey == "" {
		return nil, errors.New("fcm: the ServiceAccount key file has no client_email or private_key")
	}
	if err := checkKey([]byte(sa.PrivateKey)); err != nil {
		return nil, err
	}
	if cfg.ProjectID == "" {
		cfg.ProjectID = sa.ProjectID
	}
	if cfg.ProjectID == "" {
		return nil, errors.New("fcm: a ProjectID is required (the key file has no project_id)")
	}
	if cfg.TokenURL == "" {
		cfg.TokenURL = sa.TokenURI
	}
	if cfg.TokenURL == "" {
		cfg.TokenURL = "https://oauth2.googleapis.com/token"
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = "https://fcm.googleapis.com"
	}
	for name, u := range map[string]string{"BaseURL": cfg.BaseURL, "TokenURL": cfg.TokenURL} {
		if _, ok := channel.HTTPURL(u); !ok {
			return nil, fmt.Errorf("fcm: %s %q is not an http or https URL", name, u)
		}
	}
	if cfg.Name == "" {
		cfg.Name = "push"
	}
	cfg.Client = channel.HTTPClient(cfg.Client)
	cfg.Now = channel.Clock(cfg.Now)
	c := &Channel{
		cfg:      cfg,
		endpoint: strings.TrimSuffix(cfg.BaseURL, "/") + "/v1/projects/" + url.PathEscape(cfg.ProjectID) + "/messages:send",
		jwt: &jwt.Config{
			Email:        sa.ClientEmail,
			PrivateKey:   []byte(sa.PrivateKey),
			PrivateKeyID: sa.PrivateKeyID,
			Scopes:       []string{Scope},
			TokenURL:     cfg.TokenURL,
		},
		tokenCtx: context.WithValue(context.Background(), oauth2.HTTPClient, cfg.Client),
	}
	c.tokens = c.jwt.TokenSource(c.tokenCtx)
	return c, nil
}

// checkKey checks that key is a PEM RSA private key, as the JWT flow
// needs, so that a bad key file fails New rather than every send.
func checkKey(key []byte) error {
	block, _ := pem.Decode(key)
	if block == nil {
		return errors.New("fcm: the key file's private_key is not PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	}
	if _, ok := k.(*rsa.PrivateKey); err != nil || !ok {
		return errors.New("fcm: the key file's private_key is not an RSA private key")
	}
	return nil
}

// Name implements channel.Channel.
func (c *Channel) Name() string { return c.cfg.Name }

// Idempotent: FCM takes no idempotency key (see the package
// documentation for nudge_key).
func (c *Channel) Idempotent() bool { return false }

// Message is the message object of a send request.
type Message struct {
	Token        string            `json:"token"`
	Notification *Notification     `json:"notification,omitempty"`
	Data         map[string]string `json:"data"`
}

// Notification is the notification shown to the user.
type Notification struct {
	Title string `json:"title,omitempty"`
	Body  string `json:"body,omitempty"`
	Image string `json:"image,omitempty"`
}

// Send implements channel.Channel.
func (c *Channel) Send(ctx context.Context, m *channel.Message) error {
	msg := Message{Token: strings.TrimSpace(m.Fields["token"]), Data: map[string]string{}}
	if msg.Token == "" {
		return channel.Permanent(errors.New("fcm: the message has no token field"))
	}
	for k, v := range m.Fields {
		if key, ok := strings.CutPrefix(k, "data_"); ok && key != "" {
			msg.Data[key] = v
		}
	}
	n := Notification{Title: m.Fields["title"], Body: m.Fields["body"], Image: m.Fields["image"]}
	if n.Title == "" && n.Body == "" && len(msg.Data) == 0 {
		return channel.Permanent(errors.New("fcm: the message has no title, body or data_ field"))
	}
	if n != (Notification{}) {
		msg.Notification = &n
	}
	msg.Data["nudge_key"] = m.IdempotencyKey
	body, err := json.Marshal(map[string]Message{"message": msg})
	if err != nil {
		return channel.Permanent(fmt.Errorf("fcm: %w", err))
	}
	for renewed := false; ; renewed = true {
		tok, err := c.source().Token()
		if err != nil {
			return tokenError(err)
		}
		code, err := c.post(ctx, tok.AccessToken, body)
		if code == http.StatusUnauthorized && !renewed {
			c.renew(tok.AccessToken)
			continue
		}
		return err
	}
}

// post sends one request and returns the answer's status code and the
// send's outcome.
func (c *Channel) post(ctx context.Context, token string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		return 0, channel.Permanent(fmt.Errorf("fcm: %w", err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "nudge-fcm/1")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := channel.Do(c.cfg.Client, req)
	if err != nil {
		return 0, channel.Retryable(fmt.Errorf("fcm: %w", err), 0)
	}
	answer, _ := channel.ReadBody(resp, 64<<10)
	code := resp.StatusCode
	if code >= 200 && code < 300 {
		return code, nil
	}
	// The status and FCM's error code name the failure; the message may
	// quote the request, so it is left out.
	var e struct {
		Error struct {
			Status  string `json:"status"`
			Details []struct {
				ErrorCode string `json:"errorCode"`
			} `json:"details"`
		} `json:"error"`
	}
	_ = json.Unmarshal(answer, &e)
	reason := e.Error.Status
	for _, d := range e.Error.Details {
		if d.ErrorCode != "" {
			reason = d.ErrorCode
		}
	}
	err = fmt.Errorf("fcm: FCM answered %d", code)
	if reason != "" {
		err = fmt.Errorf("%w (%s)", err, reason)
	}
	if reason == "UNREGISTERED" {
		return code, channel.Permanent(fmt.Errorf("%w (%d)", ErrUnregistered, code))
	}
	return code, channel.HTTPError(resp, err, c.cfg.Now())
}

func (c *Channel) source() oauth2.TokenSource {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tokens
}

// renew drops the cached access token FCM refused, unless a concurrent
// send has already replaced it.
func (c *Channel) renew(refused string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, err := c.tokens.Token(); err == nil && t.AccessToken != refused {
		return
	}
	c.tokens = c.jwt.TokenSource(c.tokenCtx)
}

// tokenError classifies a failure to get an access token: a token
// endpoint that refuses the service account (a 4xx answer) is permanent,
// anything else retryable.
func tokenError(err error) error {
	re, ok := errors.AsType[*oauth2.RetrieveError](err)
	if !ok || re.Response == nil {
		return channel.Retryable(fmt.Errorf("fcm: getting an access token: %w", err), 0)
	}
	var answer struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(re.Body, &answer)
	code := re.Response.StatusCode
	err = fmt.Errorf("fcm: the token endpoint answered %d", code)
	if answer.Error != "" {
		err = fmt.Errorf("%w (%s)", err, answer.Error)
	}
	if code >= 400 && code < 500 && code != http.StatusRequestTimeout && code != http.StatusTooManyRequests {
		return channel.Permanent(err)
	}
	return channel.Retryable(err, 0)
}
