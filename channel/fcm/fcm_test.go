package fcm_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nudge-dev/nudge/channel"
	"github.com/nudge-dev/nudge/channel/channeltest"
	"github.com/nudge-dev/nudge/channel/fcm"
)

var now = time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)

const email = "nudge@proj-1.iam.gserviceaccount.com"

var testKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// serviceAccount returns a key file with testKey, whose tokens come from
// tokenURL.
func serviceAccount(t *testing.T, tokenURL string) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(testKey())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]string{
		"type": "service_account", "project_id": "proj-1", "private_key_id": "kid-1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": email, "token_uri": tokenURL,
	})
	return b
}

// tokenServer is an OAuth2 token endpoint for the JWT bearer grant: it
// verifies the assertion's RS256 signature with testKey's public key and
// its claims, and issues tok-1, tok-2...
func tokenServer(t *testing.T) (*httptest.Server, *atomic.Int32) {
	var issued atomic.Int32
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.Method != "POST" || r.Form.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
			t.Errorf("token request %s %v: %v", r.Method, r.Form, err)
			http.Error(w, `{"error":"invalid_request"}`, 400)
			return
		}
		if err := verify(r.Form.Get("assertion"), srv.URL); err != nil {
			t.Errorf("assertion: %v", err)
			http.Error(w, `{"error":"invalid_grant"}`, 400)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":"tok-%d","token_type":"Bearer","expires_in":3600}`, issued.Add(1))
	}))
	t.Cleanup(srv.Close)
	return srv, &issued
}

func verify(assertion, aud string) error {
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 {
		return errors.New("not a JWS")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return err
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&testKey().PublicKey, crypto.SHA256, sum[:], sig); err != nil {
		return fmt.Errorf("signature: %w", err)
	}
	var header struct{ Alg, Typ, Kid string }
	var claims struct {
		Iss, Scope, Aud string
		Iat, Exp        int64
	}
	for i, v := range []any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, v); err != nil {
			return err
		}
	}
	if header.Alg != "RS256" || header.Kid != "kid-1" {
		return fmt.Errorf("header %+v", header)
	}
	if claims.Iss != email || claims.Scope != fcm.Scope || claims.Aud != aud || claims.Exp <= claims.Iat {
		return fmt.Errorf("claims %+v", claims)
	}
	return nil
}

var ok = channeltest.Answer{Body: `{"name":"projects/proj-1/messages/0:1500415314455276%31bd1c9631bd1c96"}`}

// fcmFailure is FCM's answer to a send it refuses: the status code, the
// status and the error code, and a message that quotes the token.
func fcmFailure(code int, status, errorCode string) channeltest.Answer {
	return channeltest.Answer{Status: code, Body: fcmError(code, status, errorCode)}
}

func fcmError(code int, status, errorCode string) string {
	return fmt.Sprintf(`{"error":{"code":%d,"message":"The registration token dev-token-1 is bad","status":%q,"details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":%q}]}}`, code, status, errorCode)
}

func newChannel(t *testing.T, base, tokenURL string) *fcm.Channel {
	t.Helper()
	c, err := fcm.New(fcm.Config{BaseURL: base, ServiceAccount: serviceAccount(t, tokenURL), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func msg(fields map[string]string) *channel.Message {
	return &channel.Message{IdempotencyKey: "run1.step1", Fields: fields, Recipient: channel.Recipient{ProfileID: "p1"}}
}

func TestSendReusesToken(t *testing.T) {
	tokens, issued := tokenServer(t)
	srv := channeltest.NewServer(t, ok)
	c := newChannel(t, srv.URL, tokens.URL)
	if c.Name() != "push" || c.Idempotent() {
		t.Fatalf("name %q, idempotent %v", c.Name(), c.Idempotent())
	}
	for _, tc := range []struct {
		fields map[string]string
		body   string
	}{
		{map[string]string{"token": " dev-token-1 ", "title": "Your cart", "body": "Still thinking?", "image": "https://x/i.png", "data_cart": "c9", "data_": "ignored", "other": "ignored"},
			`{"message":{"token":"dev-token-1","notification":{"title":"Your cart","body":"Still thinking?","image":"https://x/i.png"},"data":{"cart":"c9","nudge_key":"run1.step1"}}}`},
		{map[string]string{"token": "dev-token-2", "data_silent": "1"},
			`{"message":{"token":"dev-token-2","data":{"nudge_key":"run1.step1","silent":"1"}}}`},
		{map[string]string{"token": "dev-token-3", "body": "Hi"},
			`{"message":{"token":"dev-token-3","notification":{"body":"Hi"},"data":{"nudge_key":"run1.step1"}}}`},
	} {
		if err := c.Send(context.Background(), msg(tc.fields)); err != nil {
			t.Fatal(err)
		}
		r := srv.Last(t)
		r.Expect(t, "POST", "/v1/projects/proj-1/messages:send", map[string]string{"Authorization": "Bearer tok-1", "Content-Type": "application/json"})
		if string(r.Body) != tc.body {
			t.Errorf("body\n got %s\nwant %s", r.Body, tc.body)
		}
	}
	if n := issued.Load(); n != 1 {
		t.Errorf("%d token requests, want 1", n)
	}
	for name, fields := range map[string]map[string]string{
		"no token":   {"title": "x"},
		"no content": {"token": "dev-token-1", "image": "https://x/i.png"},
	} {
		err := c.Send(context.Background(), msg(fields))
		if !channel.IsPermanent(err) || strings.Contains(err.Error(), "dev-token") {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := c.Send(context.Background(), msg(map[string]string{"title": "x"})); !strings.Contains(err.Error(), "token field") {
		t.Errorf("the error does not name the field: %v", err)
	}
}

func TestUnauthorizedRenewsTokenOnce(t *testing.T) {
	tokens, issued := tokenServer(t)
	unauthorized := fcmFailure(401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR")
	srv := channeltest.NewServer(t, unauthorized, ok)
	c := newChannel(t, srv.URL, tokens.URL)
	if err := c.Send(context.Background(), msg(map[string]string{"token": "d", "title": "x"})); err != nil {
		t.Fatal(err)
	}
	if r := srv.Requests(); len(r) != 2 || r[0].Header.Get("Authorization") != "Bearer tok-1" || r[1].Header.Get("Authorization") != "Bearer tok-2" || issued.Load() != 2 {
		t.Errorf("requests %+v after %d token requests", r, issued.Load())
	}

	// A 401 that a new token does not cure is permanent.
	srv = channeltest.NewServer(t, unauthorized)
	c = newChannel(t, srv.URL, tokens.URL)
	err := c.Send(context.Background(), msg(map[string]string{"token": "d", "title": "x"}))
	if n := len(srv.Requests()); !channel.IsPermanent(err) || n != 2 || issued.Load() != 4 {
		t.Errorf("%v after %d sends and %d token requests", err, n, issued.Load())
	}
}

func TestOutcomes(t *testing.T) {
	tokens, _ := tokenServer(t)
	send := func(t *testing.T, url string) error {
		return newChannel(t, url, tokens.URL).Send(context.Background(), msg(map[string]string{"token": "dev-token-1", "title": "x"}))
	}
	channeltest.Outcomes{
		Now:  now,
		Send: send,
		Cases: []channeltest.Case{
			{Answer: fcmFailure(500, "INTERNAL", "INTERNAL"), Want: "500 (INTERNAL)"},
			{Answer: fcmFailure(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT"), Permanent: true, Want: "400 (INVALID_ARGUMENT)"},
			{Answer: fcmFailure(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH"), Permanent: true, Want: "403 (SENDER_ID_MISMATCH)"},
			{Answer: fcmFailure(404, "NOT_FOUND", "UNREGISTERED"), Permanent: true, Want: "not registered (404)"},
		},
		Private: []string{"dev-token"},
	}.Run(t)
	if err := send(t, channeltest.NewServer(t, fcmFailure(404, "NOT_FOUND", "UNREGISTERED")).URL); !errors.Is(err, fcm.ErrUnregistered) {
		t.Errorf("unregistered: %v, want ErrUnregistered", err)
	}

	// A token endpoint that refuses the service account is permanent; one
	// that cannot be reached is retryable.
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(400)
		io.WriteString(w, `{"error":"invalid_grant","error_description":"Invalid JWT Signature."}`)
	}))
	defer refusing.Close()
	srv := channeltest.NewServer(t, ok)
	err := newChannel(t, srv.URL, refusing.URL).Send(context.Background(), msg(map[string]string{"token": "d", "title": "x"}))
	if !channel.IsPermanent(err) || !strings.Contains(err.Error(), "invalid_grant") || len(srv.Requests()) != 0 {
		t.Errorf("refused service account: %v", err)
	}
	refusing.Close()
	err = newChannel(t, srv.URL, refusing.URL).Send(context.Background(), msg(map[string]string{"token": "d", "title": "x"}))
	if err == nil || channel.IsPermanent(err) {
		t.Errorf("token endpoint down: %v", err)
	}
}

func TestConfig(t *testing.T) {
	sa := serviceAccount(t, "https://oauth2.example/token")
	var noProject map[string]string
	json.Unmarshal(sa, &noProject)
	delete(noProject, "project_id")
	withoutProject, _ := json.Marshal(noProject)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(ec)
	ecKey, _ := json.Marshal(map[string]string{
		"client_email": email, "project_id": "p",
		"private_key": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
	})
	for name, cfg := range map[string]fcm.Config{
		"no service account": {},
		"not JSON":           {ServiceAccount: []byte("{")},
		"no client_email":    {ServiceAccount: []byte(`{"private_key":"x","project_id":"p"}`)},
		"bad private key":    {ServiceAccount: []byte(`{"client_email":"a","private_key":"x","project_id":"p"}`)},
		"no project":         {ServiceAccount: withoutProject},
		"bad base URL":       {ServiceAccount: sa, BaseURL: "fcm.googleapis.com"},
		"bad token URL":      {ServiceAccount: sa, TokenURL: "ftp://x"},
		"not an RSA key":     {ServiceAccount: ecKey},
	} {
		if _, err := fcm.New(cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := fcm.New(fcm.Config{ServiceAccount: withoutProject, ProjectID: "p"}); err != nil {
		t.Errorf("ProjectID given: %v", err)
	}
}
