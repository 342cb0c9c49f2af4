package feedback

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/nudge-dev/nudge/api"
	"github.com/nudge-dev/nudge/channel"
	"github.com/nudge-dev/nudge/channel/mailgun"
	"github.com/nudge-dev/nudge/channel/sendgrid"
	"github.com/nudge-dev/nudge/channel/twilio"
	"github.com/nudge-dev/nudge/engage"
)

// Webhooks says how to check the providers' webhooks; a provider left
// unset has no route.
type Webhooks struct {
	// SendGrid checks the signed event webhook.
	SendGrid *sendgrid.Verifier
	// MailgunKey is Mailgun's webhook signing key; MailgunMaxAge bounds a
	// request's timestamp (default 5 minutes).
	MailgunKey    string
	MailgunMaxAge time.Duration
	// TwilioToken is the auth token that signs Twilio's requests, and
	// PublicURL the base URL Twilio is given for nudge (the route's path is
	// appended).
	TwilioToken string
	PublicURL   string
	// Now is the clock of timestamp checks.
	Now func() time.Time
}

// maxWebhookBody bounds a provider's webhook request (SendGrid posts
// batches of events of up to several megabytes).
const maxWebhookBody = 16 << 20

// The webhook routes.
const (
	SendGridPath = "/v1/webhooks/sendgrid"
	MailgunPath  = "/v1/webhooks/mailgun"
	TwilioPath   = "/v1/webhooks/twilio"
)

// Register adds to mux the routes of the signed links (/e/...) and of the
// providers' webhooks that wh configures.
func (l *Loop) Register(mux *http.ServeMux, wh Webhooks, links engage.Config) {
	if wh.Now == nil {
		wh.Now = time.Now
	}
	if l.cfg.Signer != nil {
		mux.Handle("/e/", engage.Handler(l.cfg.Signer, l, wh.Now, links))
	}
	if wh.SendGrid != nil {
		mux.Handle("POST "+SendGridPath, l.webhook("sendgrid", func(r *http.Request) ([]channel.Feedback, error) {
			return sendgrid.ParseEvents(r, wh.SendGrid)
		}))
	}
	if wh.MailgunKey != "" {
		age := wh.MailgunMaxAge
		if age <= 0 {
			age = 5 * time.Minute
		}
		mux.Handle("POST "+MailgunPath, l.webhook("mailgun", func(r *http.Request) ([]channel.Feedback, error) {
			return mailgun.ParseEvent(r, wh.MailgunKey, age, wh.Now())
		}))
	}
	if wh.TwilioToken != "" && wh.PublicURL != "" {
		public := strings.TrimRight(wh.PublicURL, "/") + TwilioPath
		mux.Handle("POST "+TwilioPath, l.webhook("twilio", func(r *http.Request) ([]channel.Feedback, error) {
			return twilio.ParseStatus(r, wh.TwilioToken, public)
		}))
	}
}

var errForged = &api.Error{Status: http.StatusForbidden, Code: api.CodeInvalidSignature,
	Message: "the webhook's signature does not verify: check the signing key configured for this provider"}

// webhook serves a provider's webhook: parse and check it, report it, and
// answer 200 once its events are stored (else 503, and the provider
// retries).
func (l *Loop) webhook(provider string, parse func(*http.Request) ([]channel.Feedback, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxWebhookBody)
		fbs, err := parse(r)
		if errors.Is(err, sendgrid.ErrSignature) || errors.Is(err, mailgun.ErrSignature) || errors.Is(err, twilio.ErrSignature) {
			l.log.Warn("provider webhook refused: bad signature", "provider", provider)
			api.WriteError(w, errForged)
			return
		}
		if err != nil {
			api.WriteError(w, &api.Error{Status: http.StatusBadRequest, Code: api.CodeBadBody, Message: err.Error()})
			return
		}
		if err := l.Report(r.Context(), fbs); err != nil {
			l.log.Error("provider feedback could not be stored", "provider", provider, "err", err)
			api.WriteError(w, api.ErrUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
}
