package engage

import (
	"context"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nudge-dev/nudge/api"
	"github.com/nudge-dev/nudge/channel"
)

// Config configures a Handler. The zero value is ready to use.
type Config struct {
	// Logger logs the sink's errors (static messages, the journey and step,
	// never the profile or the subject); default: discard.
	Logger *slog.Logger
	// UnsubscribeMaxAge is how long after it was issued an unsubscribe
	// link is honoured; zero or negative: forever (the default, and what
	// the law expects).
	UnsubscribeMaxAge time.Duration
	// OpenMaxAge and ClickMaxAge are how long after they were issued open
	// and click links are honoured; zero means DefaultMaxAge (a year),
	// negative means forever.
	OpenMaxAge  time.Duration
	ClickMaxAge time.Duration
}

// errInvalidLink answers a link that fails verification.
var errInvalidLink = &api.Error{Status: http.StatusForbidden, Code: api.CodeInvalidLink, Message: "invalid or expired link"}

// maxUserAgent bounds Engagement.UserAgent.
const maxUserAgent = 512

// maxFormBody bounds what is read of an unsubscribe POST's body.
const maxFormBody = 64 << 10

type handler struct {
	s    *Signer
	sink Sink
	now  func() time.Time
	log  *slog.Logger
	age  map[byte]time.Duration
}

// Handler serves the links s signs, reporting each use to sink, with now
// as its clock:
//
//	GET  /e/u/{token}      the unsubscribe page: a question and a button (no report)
//	POST /e/u/{token}      unsubscribe (the button, or RFC 8058's one-click POST): 200 and a page
//	                       saying so; 503 and a page asking to try again when the sink fails
//	GET  /e/o/{token}.gif  report an open; a 1×1 transparent GIF, even when the sink fails
//	GET  /e/c/{token}      report a click; 302 to the target, even when the sink fails
//
// A token that fails verification (forged, changed, cut, of another kind,
// expired) is answered 403 with the JSON error code "invalid_link" and
// reports nothing. Other paths under /e/ are 404 not_found. HEAD requests
// are answered without a report. Mount it at the root of the base URL the
// signer was made with (or behind http.StripPrefix of that URL's path).
func Handler(s *Signer, sink Sink, now func() time.Time, cfg Config) http.Handler {
	h := &handler{s: s, sink: sink, now: now, log: cfg.Logger, age: map[byte]time.Duration{
		kindUnsubscribe: max(cfg.UnsubscribeMaxAge, 0),
		kindOpen:        orDefault(cfg.OpenMaxAge),
		kindClick:       orDefault(cfg.ClickMaxAge),
	}}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /e/u/{token}", h.unsubscribePage)
	mux.HandleFunc("POST /e/u/{token}", h.unsubscribe)
	mux.HandleFunc("GET /e/o/{file}", h.open)
	mux.HandleFunc("GET /e/c/{token}", h.click)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		api.WriteError(w, &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound, Message: "no such link"})
	})
	return mux
}

func orDefault(d time.Duration) time.Duration {
	switch {
	case d == 0:
		return DefaultMaxAge
	case d < 0:
		return 0
	}
	return d
}

// verify returns the claims of the request's token of kind, or answers
// the request and returns false.
func (h *handler) verify(w http.ResponseWriter, kind byte, tok string) (claims, bool) {
	c, err := h.s.parse(kind, tok, h.now(), h.age[kind])
	if err != nil {
		noStore(w)
		api.WriteError(w, errInvalidLink)
		return claims{}, false
	}
	return c, true
}

func (h *handler) engagement(r *http.Request, kind channel.FeedbackKind, c claims) Engagement {
	ua := r.UserAgent()
	if len(ua) > maxUserAgent {
		ua = ua[:maxUserAgent]
	}
	return Engagement{Kind: kind, Link: c.link, URL: c.target, At: h.now(), UserAgent: ua}
}

func (h *handler) report(ctx context.Context, e Engagement) error {
	err := h.sink.Engage(ctx, e)
	if err != nil {
		h.log.Error("engage: the sink failed to record an engagement",
			"kind", string(e.Kind), "journey", e.Link.Journey, "step", e.Link.Step, "err", err)
	}
	return err
}

func (h *handler) unsubscribePage(w http.ResponseWriter, r *http.Request) {
	c, ok := h.verify(w, kindUnsubscribe, r.PathValue("token"))
	if !ok {
		return
	}
	page(w, http.StatusOK, pageData{Group: groupName(c.link.Group), Ask: true})
}

func (h *handler) unsubscribe(w http.ResponseWriter, r *http.Request) {
	c, ok := h.verify(w, kindUnsubscribe, r.PathValue("token"))
	if !ok {
		return
	}
	// The body is List-Unsubscribe=One-Click (RFC 8058, urlencoded or
	// multipart) or the page's form, which says the same; the signed token
	// alone says who and what, so the body is read (to keep the
	// connection) but not required.
	_, _ = io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, maxFormBody))
	data := pageData{Group: groupName(c.link.Group)}
	if err := h.report(r.Context(), h.engagement(r, Unsubscribed, c)); err != nil {
		w.Header().Set("Retry-After", "5")
		data.Failed, data.Ask = true, true
		page(w, http.StatusServiceUnavailable, data)
		return
	}
	data.Done = true
	page(w, http.StatusOK, data)
}

func (h *handler) open(w http.ResponseWriter, r *http.Request) {
	tok, ok := strings.CutSuffix(r.PathValue("file"), ".gif")
	if !ok {
		tok = "" // fails verification like any bad token
	}
	c, ok := h.verify(w, kindOpen, tok)
	if !ok {
		return
	}
	if r.Method == http.MethodGet {
		_ = h.report(r.Context(), h.engagement(r, Opened, c)) // best effort: logged
	}
	noStore(w)
	w.Header().Set("Content-Type", "image/gif")
	w.Header().Set("Content-Length", "43")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(pixelGIF)
	}
}

func (h *handler) click(w http.ResponseWriter, r *http.Request) {
	c, ok := h.verify(w, kindClick, r.PathValue("token"))
	if !ok {
		return
	}
	u, err := url.Parse(c.target)
	if err != nil { // checked when signed and when verified
		noStore(w)
		api.WriteError(w, errInvalidLink)
		return
	}
	if r.Method == http.MethodGet {
		_ = h.report(r.Context(), h.engagement(r, Clicked, c)) // logged; the person still gets there
	}
	noStore(w)
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Location", u.String())
	w.WriteHeader(http.StatusFound)
}

func noStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
}

func groupName(g string) string {
	if g == "" {
		return "marketing messages"
	}
	return g
}

// pixelGIF is a 1×1 transparent GIF89a: a two-colour global table and a
// graphic control extension that makes index 0 transparent.
var pixelGIF = []byte{
	'G', 'I', 'F', '8', '9', 'a', 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00,
	0x00, 0x00, 0x00, 0xff, 0xff, 0xff,
	0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00,
	0x2c, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00,
	0x02, 0x02, 0x44, 0x01, 0x00,
	0x3b,
}

type pageData struct {
	Group  string
	Ask    bool // show the button
	Done   bool // unsubscribed
	Failed bool // the sink failed: try again
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{{if .Done}}You are unsubscribed{{else}}Unsubscribe{{end}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:32em;margin:4em auto;padding:0 1em;color:#222}button{font-size:1em;padding:.5em 1.2em}</style>
</head><body>
{{- if .Done}}
<h1>You are unsubscribed</h1>
<p>You are unsubscribed from {{.Group}}.</p>
{{- else}}
{{- if .Failed}}
<h1>Please try again</h1>
<p>We could not unsubscribe you just now. Please try again in a moment.</p>
{{- else}}
<h1>Unsubscribe from {{.Group}}?</h1>
{{- end}}
<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click"><button type="submit">Unsubscribe</button></form>
{{- end}}
</body></html>
`))

func page(w http.ResponseWriter, status int, d pageData) {
	noStore(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("X-Robots-Tag", "noindex")
	w.WriteHeader(status)
	_ = pageTmpl.Execute(w, d)
}
