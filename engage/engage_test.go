package engage

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"image/gif"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/nudge-dev/nudge/channel"
)

const base = "https://nudge.example.com"

var (
	key1 = bytes.Repeat([]byte{0x11}, 32)
	key2 = bytes.Repeat([]byte{0x22}, 32)
	t0   = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
)

func testLink() Link {
	return Link{
		ProfileID: "p_7f3a9c", Subject: []byte{0x00, 0xff, 's', 'e', 'a', 'l', 'e', 'd'},
		Key: "run-42/step-email-1", Journey: "welcome", Version: 3, Step: "email-1",
		Channel: "email", Group: "newsletter",
	}
}

func newSigner(t testing.TB, key []byte, old ...[]byte) *Signer {
	t.Helper()
	s, err := NewSigner(key, base, old...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// recorder is a Sink that keeps what it is told, and fails with err.
type recorder struct {
	mu  sync.Mutex
	got []Engagement
	err error
}

func (r *recorder) Engage(_ context.Context, e Engagement) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, e)
	return r.err
}

func (r *recorder) all() []Engagement {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Engagement(nil), r.got...)
}

func serve(h http.Handler, method, target string, body string, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func path(t testing.TB, u string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(u, base+"/e/") {
		t.Fatalf("link %q is not under %s/e/", u, base)
	}
	return p.Path
}

func tokenOf(u string) string {
	tok := u[strings.LastIndexByte(u, '/')+1:]
	return strings.TrimSuffix(tok, ".gif")
}

func TestNewSigner(t *testing.T) {
	for _, tc := range []struct {
		key  []byte
		base string
		want string
	}{
		{make([]byte, 31), base, "at least 32"},
		{nil, base, "at least 32"},
		{key1, "nudge.example.com", "absolute http or https"},
		{key1, "/e", "absolute http or https"},
		{key1, "ftp://nudge.example.com", "absolute http or https"},
		{key1, "https://user:pw@nudge.example.com", "absolute http or https"},
		{key1, "https://nudge.example.com/?a=1", "query or a fragment"},
		{key1, "https://nudge.example.com/#x", "query or a fragment"},
		{key1, "::", "absolute http or https"},
	} {
		_, err := NewSigner(tc.key, tc.base)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewSigner(%d-byte key, %q) = %v, want an error saying %q", len(tc.key), tc.base, err, tc.want)
		}
	}
	if _, err := NewSigner(key1, base, []byte("short")); err == nil {
		t.Error("NewSigner took a short old key")
	}
	s, err := NewSigner(key1, "http://localhost:8080/nudge/")
	if err != nil {
		t.Fatal(err)
	}
	if u := s.UnsubscribeURL(testLink(), t0); !strings.HasPrefix(u, "http://localhost:8080/nudge/e/u/") {
		t.Errorf("UnsubscribeURL = %q, want it under the base path without a double slash", u)
	}
}

func TestUnsubscribeRoundTrip(t *testing.T) {
	s := newSigner(t, key1)
	l := testLink()
	u := s.UnsubscribeURL(l, t0)
	if u != s.UnsubscribeURL(l, t0) {
		t.Error("the same link and time signed twice differ")
	}
	now := t0.Add(time.Hour)
	multi := func() (string, string) {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		mw.WriteField("List-Unsubscribe", "One-Click")
		mw.Close()
		return b.String(), mw.FormDataContentType()
	}
	mbody, mtype := multi()
	for _, tc := range []struct{ name, body, ctype string }{
		{"one-click urlencoded (RFC 8058)", "List-Unsubscribe=One-Click", "application/x-www-form-urlencoded"},
		{"one-click multipart (RFC 8058)", mbody, mtype},
		{"empty body", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := &recorder{}
			h := Handler(s, sink, func() time.Time { return now }, Config{})
			w := serve(h, http.MethodPost, path(t, u), tc.body, map[string]string{"Content-Type": tc.ctype, "User-Agent": "Gmail-one-click"})
			if w.Code != http.StatusOK {
				t.Fatalf("POST = %d %s, want 200", w.Code, w.Body)
			}
			if !strings.Contains(w.Body.String(), "You are unsubscribed") || !strings.Contains(w.Body.String(), "newsletter") {
				t.Errorf("page = %s, want it to say you are unsubscribed from newsletter", w.Body)
			}
			if got := w.Header().Get("Location"); got != "" {
				t.Errorf("one-click POST redirected to %q", got)
			}
			want := []Engagement{{Kind: Unsubscribed, Link: l, At: now, UserAgent: "Gmail-one-click"}}
			if got := sink.all(); !reflect.DeepEqual(got, want) {
				t.Errorf("sink got %+v, want %+v", got, want)
			}
		})
	}
}

func TestUnsubscribeGETDoesNotUnsubscribe(t *testing.T) {
	s := newSigner(t, key1)
	for _, group := range []string{"newsletter", ""} {
		l := testLink()
		l.Group = group
		sink := &recorder{}
		h := Handler(s, sink, func() time.Time { return t0 }, Config{})
		for _, m := range []string{http.MethodGet, http.MethodHead} {
			w := serve(h, m, path(t, s.UnsubscribeURL(l, t0)), "", nil)
			if w.Code != http.StatusOK {
				t.Fatalf("%s = %d, want 200", m, w.Code)
			}
			if m == http.MethodHead {
				continue
			}
			body := w.Body.String()
			want := "Unsubscribe from " + groupName(group) + "?"
			if !strings.Contains(body, want) || !strings.Contains(body, `<form method="post">`) || !strings.Contains(body, `name="List-Unsubscribe" value="One-Click"`) {
				t.Errorf("page = %s, want %q and a POST form", body, want)
			}
			if w.Header().Get("Cache-Control") != "no-store" {
				t.Error("the page is cacheable")
			}
		}
		if got := sink.all(); len(got) != 0 {
			t.Errorf("GET reported %+v", got)
		}
	}
}

func TestUnsubscribeSinkFailure(t *testing.T) {
	s := newSigner(t, key1)
	sink := &recorder{err: errors.New("store down")}
	var logs bytes.Buffer
	h := Handler(s, sink, func() time.Time { return t0 }, Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	w := serve(h, http.MethodPost, path(t, s.UnsubscribeURL(testLink(), t0)), "List-Unsubscribe=One-Click",
		map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("POST with a failing sink = %d, want 503", w.Code)
	}
	if b := w.Body.String(); !strings.Contains(b, "try again") || strings.Contains(b, "You are unsubscribed") {
		t.Errorf("page = %s, want it to ask to try again", b)
	}
	if w.Header().Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	if !strings.Contains(logs.String(), "store down") || strings.Contains(logs.String(), "p_7f3a9c") {
		t.Errorf("log = %q, want the error and no profile id", logs.String())
	}
}

func TestOpenRoundTrip(t *testing.T) {
	s := newSigner(t, key1)
	l := testLink()
	u := s.PixelURL(l, t0)
	if !strings.HasSuffix(u, ".gif") {
		t.Errorf("PixelURL = %q, want a .gif", u)
	}
	for _, failing := range []bool{false, true} {
		sink := &recorder{}
		if failing {
			sink.err = errors.New("store down")
		}
		h := Handler(s, sink, func() time.Time { return t0.Add(time.Minute) }, Config{})
		w := serve(h, http.MethodGet, path(t, u), "", map[string]string{"User-Agent": "Mozilla/5.0"})
		if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "image/gif" || w.Header().Get("Cache-Control") != "no-store" {
			t.Fatalf("GET pixel (sink failing: %v) = %d %v, want 200 image/gif no-store", failing, w.Code, w.Header())
		}
		img, err := gif.Decode(bytes.NewReader(w.Body.Bytes()))
		if err != nil {
			t.Fatalf("the pixel is not a GIF: %v", err)
		}
		if b := img.Bounds(); b.Dx() != 1 || b.Dy() != 1 {
			t.Errorf("the pixel is %v, want 1×1", b)
		}
		if _, _, _, a := img.At(0, 0).RGBA(); a != 0 {
			t.Errorf("the pixel's alpha is %d, want transparent", a)
		}
		want := []Engagement{{Kind: Opened, Link: l, At: t0.Add(time.Minute), UserAgent: "Mozilla/5.0"}}
		if got := sink.all(); !reflect.DeepEqual(got, want) {
			t.Errorf("sink got %+v, want %+v", got, want)
		}
	}
	// HEAD answers without a report.
	sink := &recorder{}
	h := Handler(s, sink, func() time.Time { return t0 }, Config{})
	if w := serve(h, http.MethodHead, path(t, u), "", nil); w.Code != http.StatusOK || len(sink.all()) != 0 {
		t.Errorf("HEAD pixel = %d, reported %v", w.Code, sink.all())
	}
	// Without .gif it is not a pixel link.
	if w := serve(h, http.MethodGet, strings.TrimSuffix(path(t, u), ".gif"), "", nil); w.Code != http.StatusForbidden || len(sink.all()) != 0 {
		t.Errorf("GET pixel without .gif = %d, reported %v", w.Code, sink.all())
	}
}

func TestClickRoundTrip(t *testing.T) {
	s := newSigner(t, key1)
	l := testLink()
	target := "https://shop.example.com/cart?utm_source=nudge&utm_campaign=welcome&x=%C3%A9#top"
	u, err := s.ClickURL(l, target, t0)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(u, "shop.example.com") {
		t.Errorf("ClickURL = %q shows the target in the clear outside the token", u)
	}
	for _, failing := range []bool{false, true} {
		sink := &recorder{}
		if failing {
			sink.err = errors.New("store down")
		}
		var logs bytes.Buffer
		h := Handler(s, sink, func() time.Time { return t0 }, Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		w := serve(h, http.MethodGet, path(t, u), "", nil)
		if w.Code != http.StatusFound || w.Header().Get("Location") != target {
			t.Fatalf("GET click (sink failing: %v) = %d to %q, want 302 to %q", failing, w.Code, w.Header().Get("Location"), target)
		}
		want := []Engagement{{Kind: Clicked, Link: l, URL: target, At: t0}}
		if got := sink.all(); !reflect.DeepEqual(got, want) {
			t.Errorf("sink got %+v, want %+v", got, want)
		}
		if failing != strings.Contains(logs.String(), "store down") {
			t.Errorf("sink failing: %v, log: %q", failing, logs.String())
		}
	}
}

func TestClickURLRejectsNonHTTPTargets(t *testing.T) {
	s := newSigner(t, key1)
	for _, target := range []string{
		"javascript:alert(1)", "mailto:a@example.com", "tel:+15550100", "/relative", "#top",
		"ftp://example.com/f", "data:text/html,hi", "http:///nohost", "https://exa mple.com", "",
		"https://example.com/" + strings.Repeat("a", maxTargetLen),
	} {
		if u, err := s.ClickURL(testLink(), target, t0); err == nil {
			t.Errorf("ClickURL(%q) = %q, want an error", target, u)
		}
	}
}

// tokens returns a token of each kind, with the handler path for it.
func tokens(t testing.TB, s *Signer) map[byte]string {
	click, err := s.ClickURL(testLink(), "https://shop.example.com/", t0)
	if err != nil {
		t.Fatal(err)
	}
	return map[byte]string{
		kindUnsubscribe: tokenOf(s.UnsubscribeURL(testLink(), t0)),
		kindOpen:        tokenOf(s.PixelURL(testLink(), t0)),
		kindClick:       tokenOf(click),
	}
}

func TestEveryByteIsSigned(t *testing.T) {
	s := newSigner(t, key1)
	for kind, tok := range tokens(t, s) {
		if _, err := s.parse(kind, tok, t0, 0); err != nil {
			t.Fatalf("kind %c: the untouched token fails: %v", kind, err)
		}
		raw, err := b64.DecodeString(tok)
		if err != nil {
			t.Fatal(err)
		}
		// Every bit of every decoded byte.
		for i := range raw {
			for bit := range 8 {
				b := bytes.Clone(raw)
				b[i] ^= 1 << bit
				if _, err := s.parse(kind, b64.EncodeToString(b), t0, 0); err == nil {
					t.Errorf("kind %c: flipping bit %d of byte %d is accepted", kind, bit, i)
				}
			}
		}
		// Every character of the encoded token, to every other one.
		others := b64Alphabet + "=.+/%~ \n\r\x00é"
		for i := range tok {
			for _, c := range others {
				if string(c) == tok[i:i+1] {
					continue
				}
				bad := tok[:i] + string(c) + tok[i+1:]
				if _, err := s.parse(kind, bad, t0, 0); err == nil {
					t.Errorf("kind %c: character %d changed to %q is accepted", kind, i, c)
				}
			}
		}
		// Cut, or lengthened.
		for n := range len(tok) {
			if _, err := s.parse(kind, tok[:n], t0, 0); err == nil {
				t.Errorf("kind %c: the first %d characters are accepted", kind, n)
			}
		}
		for _, extra := range []string{"A", "AA", "AAA", "AAAA", "\n"} {
			if _, err := s.parse(kind, tok+extra, t0, 0); err == nil {
				t.Errorf("kind %c: the token + %q is accepted", kind, extra)
			}
		}
	}
}

func TestOtherKeyRejected(t *testing.T) {
	forger := newSigner(t, key2)
	s := newSigner(t, key1)
	for kind, tok := range tokens(t, forger) {
		if _, err := s.parse(kind, tok, t0, 0); err == nil {
			t.Errorf("kind %c: a token signed with another key is accepted", kind)
		}
	}
	// After a rotation the old key still verifies; it does not sign.
	rotated := newSigner(t, key2, key1)
	for kind, tok := range tokens(t, s) {
		if _, err := rotated.parse(kind, tok, t0, 0); err != nil {
			t.Errorf("kind %c: a token signed with the old key is refused after the rotation: %v", kind, err)
		}
	}
	if rotated.UnsubscribeURL(testLink(), t0) != forger.UnsubscribeURL(testLink(), t0) {
		t.Error("the rotated signer does not sign with its new key")
	}
}

func TestBadLinksAnswerAndReportNothing(t *testing.T) {
	s := newSigner(t, key1)
	toks := tokens(t, newSigner(t, key1))
	forged := tokens(t, newSigner(t, key2))
	paths := map[byte]func(tok string) string{
		kindUnsubscribe: func(tok string) string { return "/e/u/" + tok },
		kindOpen:        func(tok string) string { return "/e/o/" + tok + ".gif" },
		kindClick:       func(tok string) string { return "/e/c/" + tok },
	}
	methods := map[byte][]string{
		kindUnsubscribe: {http.MethodGet, http.MethodPost},
		kindOpen:        {http.MethodGet},
		kindClick:       {http.MethodGet},
	}
	sink := &recorder{}
	h := Handler(s, sink, func() time.Time { return t0 }, Config{})
	check := func(name, method, p string) {
		t.Helper()
		w := serve(h, method, p, "List-Unsubscribe=One-Click", map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
		if w.Code != http.StatusForbidden {
			t.Errorf("%s: %s %s = %d, want 403", name, method, p, w.Code)
			return
		}
		var body struct {
			Error struct{ Code, Message string }
		}
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error.Code != "invalid_link" || body.Error.Message != "invalid or expired link" {
			t.Errorf("%s: body = %s (%v), want the invalid_link error", name, w.Body, err)
		}
	}
	for at, p := range paths {
		for _, m := range methods[at] {
			for kind, tok := range toks {
				if kind != at {
					check("wrong kind", m, p(tok))
				}
			}
			check("forged", m, p(forged[at]))
			check("truncated", m, p(toks[at][:len(toks[at])-1]))
			check("garbage", m, p("AAAA"))
			tampered := []byte(toks[at])
			tampered[len(tampered)/2] ^= 'A' ^ 'B'
			if tampered[len(tampered)/2] == toks[at][len(tampered)/2] {
				t.Fatal("no change")
			}
			check("tampered", m, p(string(tampered)))
		}
	}
	if got := sink.all(); len(got) != 0 {
		t.Errorf("bad links reported %+v", got)
	}
	if w := serve(h, http.MethodGet, "/e/x/abc", "", nil); w.Code != http.StatusNotFound {
		t.Errorf("unknown path = %d, want 404", w.Code)
	}
}

func TestExpiry(t *testing.T) {
	s := newSigner(t, key1)
	toks := tokens(t, s)
	year := DefaultMaxAge
	for _, tc := range []struct {
		name string
		cfg  Config
		kind byte
		age  time.Duration
		ok   bool
	}{
		{"unsubscribe, 10 years", Config{}, kindUnsubscribe, 10 * year, true},
		{"unsubscribe, custom 30 days, 29 days", Config{UnsubscribeMaxAge: 30 * 24 * time.Hour}, kindUnsubscribe, 29 * 24 * time.Hour, true},
		{"unsubscribe, custom 30 days, 31 days", Config{UnsubscribeMaxAge: 30 * 24 * time.Hour}, kindUnsubscribe, 31 * 24 * time.Hour, false},
		{"open, just under a year", Config{}, kindOpen, year, true},
		{"open, over a year", Config{}, kindOpen, year + time.Second, false},
		{"click, just under a year", Config{}, kindClick, year, true},
		{"click, over a year", Config{}, kindClick, year + time.Second, false},
		{"click, custom hour, 59 min", Config{ClickMaxAge: time.Hour}, kindClick, 59 * time.Minute, true},
		{"click, custom hour, 61 min", Config{ClickMaxAge: time.Hour}, kindClick, 61 * time.Minute, false},
		{"click, forever, 10 years", Config{ClickMaxAge: -1}, kindClick, 10 * year, true},
		{"open, forever, 10 years", Config{OpenMaxAge: -1}, kindOpen, 10 * year, true},
		{"open, issued in the future (clock skew)", Config{}, kindOpen, -time.Minute, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := &recorder{}
			now := t0.Add(tc.age)
			h := Handler(s, sink, func() time.Time { return now }, Config(tc.cfg))
			var w *httptest.ResponseRecorder
			switch tc.kind {
			case kindUnsubscribe:
				w = serve(h, http.MethodPost, "/e/u/"+toks[tc.kind], "", nil)
			case kindOpen:
				w = serve(h, http.MethodGet, "/e/o/"+toks[tc.kind]+".gif", "", nil)
			case kindClick:
				w = serve(h, http.MethodGet, "/e/c/"+toks[tc.kind], "", nil)
			}
			if ok := w.Code < 400; ok != tc.ok {
				t.Errorf("status %d, want accepted: %v", w.Code, tc.ok)
			}
			if n := len(sink.all()); (n == 1) != tc.ok {
				t.Errorf("%d reports, want accepted: %v", n, tc.ok)
			}
		})
	}
}

const email = `<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html xmlns="http://www.w3.org/1999/xhtml">
<head>
<meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
<title>Welcome to Shop</title>
<link href="https://fonts.example.com/css?family=Inter" rel="stylesheet">
<style type="text/css">
  a { color: #0066cc; } /* <a href="https://in.style.example.com/">no</a> */
  @media only screen and (max-width:600px) { .col { width: 100% !important; } }
</style>
</head>
<body style="margin:0;padding:0;" bgcolor="#f4f4f4">
<!-- preheader: <a href="https://in.comment.example.com/">not a link</a> -->
<!--[if mso]><v:roundrect href="https://mso.example.com/" style="height:40px"></v:roundrect><![endif]-->
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0">
  <tr><td class="col" align="center">
    <A HREF="https://shop.example.com/welcome?utm_source=nudge&amp;utm_medium=email" target="_blank" style="color:#fff;">Shop now</A>
    <a class='btn' href='https://shop.example.com/cart?a=1&amp;b=2' >Your cart</a>
    <a href=https://shop.example.com/unquoted title=x>Unquoted</a>
    <a href="  http://blog.example.com/post/1  ">Spaces</a>
    <a href="mailto:help@shop.example.com?subject=Hi&amp;body=x">Email us</a>
    <a href="tel:+15550100">Call us</a>
    <a href="#top">Top</a>
    <a href="/relative/path">Relative</a>
    <a name="anchor">No href</a>
    <a href="javascript:void(0)">JS</a>
    <img src="https://cdn.example.com/logo.png" alt="Shop &amp; Co" width="120" height="40" border="0" style="display:block" />
    <p>Prices &amp; terms: <b>5&nbsp;%</b> off &lt;today&gt;. Déjà vu ☕</p>
  </td></tr>
  <tr><td><a href="UNSUB" style="color:#999">Unsubscribe</a></td></tr>
</table>
<script type="application/ld+json">{"url": "https://in.script.example.com/", "html": "<a href=\"https://x.example.com/\">"}</script>
</body>
</html>
`

func TestRewriteHTML(t *testing.T) {
	s := newSigner(t, key1)
	l := testLink()
	unsub := s.UnsubscribeURL(l, t0)
	doc := strings.Replace(email, "UNSUB", unsub, 1)
	got, err := s.RewriteHTML(doc, l, t0)
	if err != nil {
		t.Fatal(err)
	}

	clickOf := func(target string) string {
		u, err := s.ClickURL(l, target, t0)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	pixel := `<img src="` + s.PixelURL(l, t0) + `" width="1" height="1" alt="" style="display:none">`
	// The expected document: the same bytes, with exactly these replaced.
	want := doc
	for _, r := range []struct{ from, to string }{
		{`HREF="https://shop.example.com/welcome?utm_source=nudge&amp;utm_medium=email"`, `HREF="` + clickOf("https://shop.example.com/welcome?utm_source=nudge&utm_medium=email") + `"`},
		{`href='https://shop.example.com/cart?a=1&amp;b=2'`, `href="` + clickOf("https://shop.example.com/cart?a=1&b=2") + `"`},
		{`href=https://shop.example.com/unquoted title`, `href="` + clickOf("https://shop.example.com/unquoted") + `" title`},
		{`href="  http://blog.example.com/post/1  "`, `href="` + clickOf("http://blog.example.com/post/1") + `"`},
		{"</body>", pixel + "</body>"},
	} {
		if strings.Count(want, r.from) != 1 {
			t.Fatalf("%q is not in the test document once", r.from)
		}
		want = strings.Replace(want, r.from, r.to, 1)
	}
	if got != want {
		t.Errorf("RewriteHTML:\n got: %s\nwant: %s", got, want)
	}

	// The result is still read the same by an HTML parser, and the links
	// it holds verify as clicks to the unescaped targets.
	z := html.NewTokenizer(strings.NewReader(got))
	var clicks []string
	for tt := z.Next(); tt != html.ErrorToken; tt = z.Next() {
		tok := z.Token()
		if tok.Data != "a" {
			continue
		}
		for _, a := range tok.Attr {
			if a.Key == "href" && strings.HasPrefix(a.Val, base+"/e/c/") {
				c, err := s.parse(kindClick, tokenOf(a.Val), t0, 0)
				if err != nil {
					t.Fatal(err)
				}
				clicks = append(clicks, c.target)
			}
		}
	}
	wantClicks := []string{
		"https://shop.example.com/welcome?utm_source=nudge&utm_medium=email",
		"https://shop.example.com/cart?a=1&b=2",
		"https://shop.example.com/unquoted",
		"http://blog.example.com/post/1",
	}
	if !reflect.DeepEqual(clicks, wantClicks) {
		t.Errorf("click targets = %q, want %q", clicks, wantClicks)
	}

	// Rewriting again changes nothing: own links and the pixel are kept.
	again, err := s.RewriteHTML(got, l, t0)
	if err != nil {
		t.Fatal(err)
	}
	if again != got {
		t.Errorf("a second rewrite changed the document:\n%s", again)
	}
}

func TestRewriteHTMLWithoutBody(t *testing.T) {
	s := newSigner(t, key1)
	pixel := `<img src="` + s.PixelURL(testLink(), t0) + `" width="1" height="1" alt="" style="display:none">`
	for _, doc := range []string{"", "Hi <b>there</b>", "<p>x</p><!-- </body> -->", "<p>unclosed <a href=\"https://x.example.com/"} {
		got, err := s.RewriteHTML(doc, testLink(), t0)
		if err != nil {
			t.Fatal(err)
		}
		if got != doc+pixel {
			t.Errorf("RewriteHTML(%q) = %q, want the document and the pixel at the end", doc, got)
		}
	}
	// Only the first </body> gets the pixel.
	got, _ := s.RewriteHTML("<body>a</body><body>b</body>", testLink(), t0)
	if strings.Count(got, "/e/o/") != 1 || !strings.HasPrefix(got, "<body>a<img ") {
		t.Errorf("two bodies: %q", got)
	}
}

// TestScanAttrsMatchesTokenizer checks the attribute scanner against the
// tokenizer on tags built to trip it.
func TestScanAttrsMatchesTokenizer(t *testing.T) {
	for _, tag := range []string{
		`<a href="x">`, `<a href='x'>`, `<a href=x>`, `<a href = "x" >`, `<a HREF="x" href="y">`,
		`<a =href="x" href="y">`, `<a / href="x"/>`, `<a href=x/>`, `<a href>`, `<a href=>`, `<a b c=d href=e>`,
		"<a\thref\n=\r\"x\"\f>", `<a data-x="a>b" href="y">`, `<a title='He said "hi"' href=y>`, `<a/href=x>`,
		`<a href="x"title="t">`, `<a   >`, `<a href=">">`,
	} {
		checkScan(t, tag)
	}
}

func checkScan(t *testing.T, doc string) {
	t.Helper()
	z := html.NewTokenizer(strings.NewReader(doc))
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			return
		}
		if tt != html.StartTagToken && tt != html.SelfClosingTagToken {
			continue
		}
		raw := bytes.Clone(z.Raw())
		z.TagName()
		spans := scanAttrs(raw)
		var keys, vals []string
		for more := true; more; {
			k, v, m := z.TagAttr()
			more = m
			if k == nil {
				break
			}
			keys, vals = append(keys, string(k)), append(vals, string(v))
		}
		if len(spans) != len(keys) {
			t.Errorf("%q: scanner found %d attributes, tokenizer %d (%q)", raw, len(spans), len(keys), keys)
			continue
		}
		for i, sp := range spans {
			k := asciiLower(raw[sp.key[0]:sp.key[1]])
			v := string(raw[sp.val[0]:sp.val[1]])
			if k != keys[i] {
				t.Errorf("%q: attribute %d is %q, tokenizer says %q", raw, i, k, keys[i])
			}
			if !strings.ContainsAny(v, "&\r\x00") && v != vals[i] {
				t.Errorf("%q: value %d is %q, tokenizer says %q", raw, i, v, vals[i])
			}
		}
	}
}

func FuzzScanAttrs(f *testing.F) {
	f.Add(`<a href="x" b='c' d=e f>`)
	f.Add(`<a =x href = y/>`)
	f.Add(email)
	f.Fuzz(func(t *testing.T, doc string) {
		checkScan(t, doc)
	})
}

// FuzzRewriteHTML: never fails on any input, keeps every byte of a
// document without http(s) links, and adds exactly one pixel.
func FuzzRewriteHTML(f *testing.F) {
	s := newSigner(f, key1)
	f.Add(email)
	f.Add(`<a href="https://x.example.com/?a=1&amp;b">x</a></body>`)
	f.Add("<a href='mailto:x'>")
	f.Fuzz(func(t *testing.T, doc string) {
		got, err := s.RewriteHTML(doc, testLink(), t0)
		if err != nil {
			t.Fatalf("RewriteHTML(%q): %v", doc, err)
		}
		pixel := `<img src="` + s.PixelURL(testLink(), t0) + `" width="1" height="1" alt="" style="display:none">`
		if strings.Contains(doc, base) {
			return
		}
		if n := strings.Count(got, pixel); n != 1 {
			t.Fatalf("RewriteHTML(%q) has %d pixels", doc, n)
		}
		if !strings.Contains(strings.ToLower(doc), "http") && strings.Replace(got, pixel, "", 1) != doc {
			t.Fatalf("RewriteHTML(%q) = %q: bytes changed", doc, got)
		}
	})
}

// FuzzParseToken: parse never panics, and accepts only what carries the
// right MAC, which the signer would make from the claims again, byte for
// byte.
func FuzzParseToken(f *testing.F) {
	s := newSigner(f, key1)
	for _, tok := range tokens(f, s) {
		f.Add(tok)
		f.Add(tok[:len(tok)-1])
	}
	for _, tok := range tokens(f, newSigner(f, key2)) {
		f.Add(tok)
	}
	f.Add("")
	f.Add("AAAA")
	f.Add(strings.Repeat("A", 60))
	derived := deriveKey(key1)
	f.Fuzz(func(t *testing.T, tok string) {
		for _, kind := range []byte{kindUnsubscribe, kindOpen, kindClick, 0, 'x'} {
			c, err := s.parse(kind, tok, t0, 0)
			if err != nil {
				if err != errInvalid {
					t.Fatalf("parse error %v is not errInvalid", err)
				}
				continue
			}
			raw, err := b64.DecodeString(tok)
			if err != nil || len(raw) < macSize {
				t.Fatalf("accepted %q, which does not decode", tok)
			}
			h := hmac.New(sha256.New, derived)
			h.Write(raw[:len(raw)-macSize])
			if !hmac.Equal(h.Sum(nil), raw[len(raw)-macSize:]) {
				t.Fatalf("accepted %q without a valid MAC", tok)
			}
			if again := s.sign(kind, c.link, c.target, c.issuedAt); again != tok {
				t.Fatalf("accepted %q, which re-signs as %q", tok, again)
			}
		}
	})
}

func TestKindsAreFeedbackKinds(t *testing.T) {
	if !Unsubscribed.Suppresses() || Opened.Suppresses() || Clicked.Suppresses() {
		t.Error("only an unsubscribe suppresses")
	}
	if Unsubscribed != channel.Unsubscribed || string(Opened) != "opened" || string(Clicked) != "clicked" {
		t.Error("kinds are not the channel feedback kinds")
	}
}

func TestRebuildAnchor(t *testing.T) {
	got := string(rebuildAnchor([]byte(`<A Class='btn' HREF="https://x.example.com/" title="a &amp; &quot;b&quot;" data-x>`), `"https://nudge.example.com/e/c/T"`))
	want := `<a class="btn" href="https://nudge.example.com/e/c/T" title="a &amp; &#34;b&#34;" data-x="">`
	if got != want {
		t.Errorf("rebuildAnchor = %s, want %s", got, want)
	}
	if got := string(rebuildAnchor([]byte(`<a href="x"/>`), `"v"`)); got != `<a href="v"/>` {
		t.Errorf("rebuildAnchor of a self-closing tag = %s", got)
	}
}

func TestHandlerDetails(t *testing.T) {
	s := newSigner(t, key1)
	var got []Engagement
	sink := SinkFunc(func(_ context.Context, e Engagement) error { got = append(got, e); return nil })
	h := Handler(s, sink, func() time.Time { return t0 }, Config{})
	click, err := s.ClickURL(testLink(), "https://shop.example.com/", t0)
	if err != nil {
		t.Fatal(err)
	}
	// HEAD (a link checker) is answered without a report.
	if w := serve(h, http.MethodHead, path(t, click), "", nil); w.Code != http.StatusFound || len(got) != 0 {
		t.Errorf("HEAD click = %d, reported %v", w.Code, got)
	}
	// A long User-Agent is cut.
	serve(h, http.MethodGet, path(t, click), "", map[string]string{"User-Agent": strings.Repeat("u", 2000)})
	if len(got) != 1 || len(got[0].UserAgent) != maxUserAgent {
		t.Errorf("reported %d engagements, user agent of %d bytes", len(got), len(got[0].UserAgent))
	}
	// Other methods and paths report nothing.
	for _, r := range [][2]string{{http.MethodPut, path(t, s.UnsubscribeURL(testLink(), t0))}, {http.MethodPost, path(t, click)}, {http.MethodGet, "/e/u/"}, {http.MethodGet, "/"}} {
		if w := serve(h, r[0], r[1], "", nil); w.Code < 400 {
			t.Errorf("%s %s = %d", r[0], r[1], w.Code)
		}
	}
	if len(got) != 1 {
		t.Errorf("reported %v", got)
	}
}
