package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/nudge-dev/nudge/channel"
	"github.com/nudge-dev/nudge/channel/audience/google"
	"github.com/nudge-dev/nudge/channel/audience/meta"
	"github.com/nudge-dev/nudge/channel/cdp"
	"github.com/nudge-dev/nudge/channel/fcm"
	"github.com/nudge-dev/nudge/channel/logchan"
	"github.com/nudge-dev/nudge/channel/mailgun"
	"github.com/nudge-dev/nudge/channel/sendgrid"
	"github.com/nudge-dev/nudge/channel/slack"
	"github.com/nudge-dev/nudge/channel/smtp"
	"github.com/nudge-dev/nudge/channel/twilio"
	"github.com/nudge-dev/nudge/channel/webhook"
	"github.com/nudge-dev/nudge/engage"
	"github.com/nudge-dev/nudge/feedback"
	"github.com/nudge-dev/nudge/journey"
	"github.com/nudge-dev/nudge/shred"
)

// ChannelsConfig configures the channels journeys send through. A channel
// whose provider is not configured logs its messages instead (the log
// channel), so the shipped journeys run on a laptop. Base URLs default to
// the providers' own; tests point them at local servers.
type ChannelsConfig struct {
	// PublicURL is the base URL customers and providers reach nudge at:
	// signed links (unsubscribe, clicks, the open pixel) and Twilio's
	// status callbacks. Default: http://<--http>.
	PublicURL string `yaml:"public_url"`
	// LinkSecret signs links; empty: a development one in the data dir.
	LinkSecret string `yaml:"link_secret"`

	WebhookURL    string `yaml:"webhook_url"`
	WebhookSecret string `yaml:"webhook_secret"`

	EmailFrom    string `yaml:"email_from"`
	SMTPAddr     string `yaml:"smtp_addr"`
	SMTPUsername string `yaml:"smtp_username"`
	SMTPPassword string `yaml:"smtp_password"`
	SMTPStartTLS bool   `yaml:"smtp_starttls"`

	SendGridKey        string `yaml:"sendgrid_api_key"`
	SendGridURL        string `yaml:"sendgrid_url"`
	SendGridWebhookKey string `yaml:"sendgrid_webhook_key"`

	MailgunKey        string `yaml:"mailgun_api_key"`
	MailgunDomain     string `yaml:"mailgun_domain"`
	MailgunURL        string `yaml:"mailgun_url"`
	MailgunSigningKey string `yaml:"mailgun_signing_key"`

	TwilioSID   string `yaml:"twilio_account_sid"`
	TwilioToken string `yaml:"twilio_auth_token"`
	TwilioFrom  string `yaml:"twilio_from"`
	TwilioURL   string `yaml:"twilio_url"`

	FCMServiceAccount string `yaml:"fcm_service_account"` // a file
	FCMProject        string `yaml:"fcm_project"`
	FCMURL            string `yaml:"fcm_url"`
	FCMTokenURL       string `yaml:"fcm_token_url"`

	SlackWebhookURL string `yaml:"slack_webhook_url"`

	GoogleAdsURL         string `yaml:"google_ads_url"`
	GoogleAdsCustomer    string `yaml:"google_ads_customer_id"`
	GoogleAdsDevToken    string `yaml:"google_ads_developer_token"`
	GoogleAdsUserList    string `yaml:"google_ads_user_list"`
	GoogleAdsAccessToken string `yaml:"google_ads_access_token"`

	MetaURL      string `yaml:"meta_url"`
	MetaToken    string `yaml:"meta_access_token"`
	MetaAudience string `yaml:"meta_audience"`

	CDPURL      string `yaml:"cdp_url"`
	CDPWriteKey string `yaml:"cdp_write_key"`

	// FrequencyCaps are [CHANNEL=]MAX/DURATION (3/24h, email=1/4h).
	FrequencyCaps []string `yaml:"frequency_caps"`
	// ChannelRates are NAME=PER_SECOND rate limits (sms=10).
	ChannelRates []string `yaml:"channel_rates"`
}

func channelFlags(fs *flag.FlagSet, c *ChannelsConfig) {
	str := func(p *string, name, usage string) { fs.StringVar(p, name, *p, usage) }
	str(&c.PublicURL, "public-url", "base URL customers and providers reach nudge at (signed links, status callbacks); default http://<--http>")
	str(&c.LinkSecret, "link-secret", "secret that signs unsubscribe, click and open links (32+ bytes); empty: a development one kept in the data directory")
	str(&c.WebhookURL, "webhook-url", "URL of the webhook channel for messages that name none")
	str(&c.WebhookSecret, "webhook-secret", "secret that signs webhooks (HMAC-SHA256); empty: a development one kept in the data directory")
	str(&c.EmailFrom, "email-from", "sender of email (SMTP, SendGrid, Mailgun)")
	str(&c.SMTPAddr, "smtp-addr", "SMTP server host:port: the email channel sends through it")
	str(&c.SMTPUsername, "smtp-username", "SMTP user (PLAIN auth, over TLS or to localhost)")
	str(&c.SMTPPassword, "smtp-password", "SMTP password")
	fs.BoolVar(&c.SMTPStartTLS, "smtp-starttls", c.SMTPStartTLS, "require STARTTLS with the SMTP server")
	str(&c.SendGridKey, "sendgrid-api-key", "SendGrid API key: the email channel sends through SendGrid")
	str(&c.SendGridURL, "sendgrid-url", "SendGrid API base URL")
	str(&c.SendGridWebhookKey, "sendgrid-webhook-key", "public key of SendGrid's signed event webhook (enables POST /v1/webhooks/sendgrid)")
	str(&c.MailgunKey, "mailgun-api-key", "Mailgun API key: the email channel sends through Mailgun")
	str(&c.MailgunDomain, "mailgun-domain", "Mailgun sending domain")
	str(&c.MailgunURL, "mailgun-url", "Mailgun API base URL")
	str(&c.MailgunSigningKey, "mailgun-signing-key", "Mailgun webhook signing key (enables POST /v1/webhooks/mailgun)")
	str(&c.TwilioSID, "twilio-account-sid", "Twilio account SID: the sms channel sends through Twilio")
	str(&c.TwilioToken, "twilio-auth-token", "Twilio auth token (also checks POST /v1/webhooks/twilio)")
	str(&c.TwilioFrom, "twilio-from", "Twilio sender number")
	str(&c.TwilioURL, "twilio-url", "Twilio API base URL")
	str(&c.FCMServiceAccount, "fcm-service-account", "Firebase service account JSON file: the push channel sends through FCM")
	str(&c.FCMProject, "fcm-project", "Firebase project id (default: the service account's)")
	str(&c.FCMURL, "fcm-url", "FCM API base URL")
	str(&c.FCMTokenURL, "fcm-token-url", "OAuth2 token URL (default: the service account's token_uri)")
	str(&c.SlackWebhookURL, "slack-webhook-url", "Slack incoming webhook URL: the slack channel posts to it")
	str(&c.GoogleAdsURL, "google-ads-url", "Google Ads API base URL")
	str(&c.GoogleAdsCustomer, "google-ads-customer-id", "Google Ads customer id: enables the google_ads channel")
	str(&c.GoogleAdsDevToken, "google-ads-developer-token", "Google Ads developer token")
	str(&c.GoogleAdsUserList, "google-ads-user-list", "default Customer Match user list id")
	str(&c.GoogleAdsAccessToken, "google-ads-access-token", "OAuth2 access token of the Google Ads API")
	str(&c.MetaURL, "meta-url", "Meta Graph API base URL")
	str(&c.MetaToken, "meta-access-token", "Meta access token: enables the meta_audience channel")
	str(&c.MetaAudience, "meta-audience", "default Custom Audience id")
	str(&c.CDPURL, "cdp-url", "Segment-spec endpoint the cdp channel forwards to: enables it")
	str(&c.CDPWriteKey, "cdp-write-key", "write key of the cdp endpoint")
	fs.Var(&listFlag{list: &c.FrequencyCaps}, "frequency-cap", "a frequency cap of marketing messages across journeys, [CHANNEL=]MAX/DURATION (3/24h, email=1/4h); repeatable")
	fs.Var(&listFlag{list: &c.ChannelRates}, "channel-rate", "a channel's rate limit, NAME=SENDS_PER_SECOND (sms=10); repeatable")
}

// validate reports what is wrong with the channel settings.
func (c *ChannelsConfig) validate() []error {
	var errs []error
	if _, err := c.caps(); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.lanes(); err != nil {
		errs = append(errs, err)
	}
	n := 0
	for _, set := range []bool{c.SMTPAddr != "", c.SendGridKey != "", c.MailgunKey != ""} {
		if set {
			n++
		}
	}
	if n > 1 {
		errs = append(errs, errors.New("email: set one of smtp_addr, sendgrid_api_key and mailgun_api_key"))
	}
	if (c.SendGridKey != "" || c.MailgunKey != "") && c.EmailFrom == "" {
		errs = append(errs, errors.New("email_from: SendGrid and Mailgun need a sender"))
	}
	if c.MailgunKey != "" && c.MailgunDomain == "" {
		errs = append(errs, errors.New("mailgun_domain: required with mailgun_api_key"))
	}
	if c.TwilioSID != "" && (c.TwilioToken == "" || c.TwilioFrom == "") {
		errs = append(errs, errors.New("twilio_account_sid: needs twilio_auth_token and twilio_from"))
	}
	return errs
}

func (c *ChannelsConfig) caps() ([]journey.Cap, error) {
	var caps []journey.Cap
	for _, s := range c.FrequencyCaps {
		cp, err := journey.ParseCap(s)
		if err != nil {
			return nil, fmt.Errorf("frequency_cap: %w", err)
		}
		caps = append(caps, cp)
	}
	return caps, nil
}

func (c *ChannelsConfig) lanes() (map[string]journey.LaneConfig, error) {
	lanes := map[string]journey.LaneConfig{}
	for _, s := range c.ChannelRates {
		name, r, ok := strings.Cut(s, "=")
		rate, err := strconv.ParseFloat(r, 64)
		if !ok || name == "" || err != nil || rate <= 0 {
			return nil, fmt.Errorf("channel_rate %q: want NAME=SENDS_PER_SECOND, such as sms=10", s)
		}
		lanes[name] = journey.LaneConfig{Rate: rate}
	}
	return lanes, nil
}

// checkChannels builds the channels as serve would, without writing
// anything (nudge check): provider settings that would stop serve fail
// here. It returns how many channels there are.
func checkChannels(cfg Config) (int, error) {
	if cfg.Channels.WebhookSecret == "" {
		cfg.Channels.WebhookSecret = "nudge-check" // serve keeps a development one in the data directory
	}
	chans, err := channels(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return 0, fmt.Errorf("channels: %w", err)
	}
	lanes, _ := cfg.Channels.lanes()
	for name := range lanes {
		if !slices.ContainsFunc(chans, func(c channel.Channel) bool { return c.Name() == name }) {
			return 0, fmt.Errorf("channel_rate: no channel is named %q", name)
		}
	}
	return len(chans), nil
}

// channels builds the channels journeys send through: each provider that
// is configured, else the log channel under the same name.
func channels(cfg Config, logger *slog.Logger) ([]channel.Channel, error) {
	c := cfg.Channels
	secret := c.WebhookSecret
	if secret == "" {
		var err error
		if secret, err = readOrMakeSecret(filepath.Join(cfg.Data, webhookSecretFile)); err != nil {
			return nil, err
		}
	}
	var chans []channel.Channel
	add := func(ch channel.Channel, err error) error {
		if err != nil {
			return err
		}
		chans = append(chans, ch)
		return nil
	}
	errs := []error{add(webhook.New(webhook.Config{URL: c.WebhookURL, Secret: []byte(secret)}))}
	switch {
	case c.SMTPAddr != "":
		errs = append(errs, add(smtp.New(smtp.Config{Addr: c.SMTPAddr, From: c.EmailFrom, Username: c.SMTPUsername,
			Password: c.SMTPPassword, StartTLS: c.SMTPStartTLS})))
	case c.SendGridKey != "":
		errs = append(errs, add(sendgrid.New(sendgrid.Config{BaseURL: c.SendGridURL, APIKey: c.SendGridKey, From: c.EmailFrom})))
	case c.MailgunKey != "":
		errs = append(errs, add(mailgun.New(mailgun.Config{BaseURL: c.MailgunURL, APIKey: c.MailgunKey,
			Domain: c.MailgunDomain, From: c.EmailFrom})))
	}
	if c.TwilioSID != "" {
		callback := ""
		if c.TwilioToken != "" {
			callback = strings.TrimRight(cfg.publicURL(), "/") + "/v1/webhooks/twilio"
		}
		errs = append(errs, add(twilio.New(twilio.Config{BaseURL: c.TwilioURL, AccountSID: c.TwilioSID, AuthToken: c.TwilioToken,
			From: c.TwilioFrom, StatusCallbackURL: callback})))
	}
	if c.FCMServiceAccount != "" {
		sa, err := os.ReadFile(c.FCMServiceAccount)
		if err != nil {
			return nil, fmt.Errorf("fcm_service_account: %w", err)
		}
		errs = append(errs, add(fcm.New(fcm.Config{BaseURL: c.FCMURL, ServiceAccount: sa, ProjectID: c.FCMProject, TokenURL: c.FCMTokenURL})))
	}
	if c.SlackWebhookURL != "" {
		errs = append(errs, add(slack.New(slack.Config{URL: c.SlackWebhookURL})))
	}
	if c.GoogleAdsCustomer != "" {
		errs = append(errs, add(google.New(google.Config{BaseURL: c.GoogleAdsURL, CustomerID: c.GoogleAdsCustomer,
			DeveloperToken: c.GoogleAdsDevToken, UserList: c.GoogleAdsUserList,
			TokenSource: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: c.GoogleAdsAccessToken})})))
	}
	if c.MetaToken != "" {
		errs = append(errs, add(meta.New(meta.Config{BaseURL: c.MetaURL, AccessToken: c.MetaToken, Audience: c.MetaAudience})))
	}
	if c.CDPURL != "" {
		errs = append(errs, add(cdp.New(cdp.Config{BaseURL: c.CDPURL, WriteKey: c.CDPWriteKey})))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, ch := range chans {
		have[ch.Name()] = true
	}
	for _, name := range journey.DefaultChannels {
		if !have[name] {
			chans = append(chans, logchan.New(name, logger))
		}
	}
	return chans, nil
}

const linkSecretFile = "link-secret"

// newFeedback makes the loop from messages back to events: signed links
// and the providers' webhooks.
func newFeedback(cfg Config, events feedback.Publisher, profiles feedback.Finder, keys *shred.Keyring, now func() time.Time, logger *slog.Logger) (*feedback.Loop, feedback.Webhooks, error) {
	c := cfg.Channels
	secret := c.LinkSecret
	if secret == "" {
		var err error
		// Two random texts: the signer takes at least 32 bytes.
		if secret, err = readOrMake(filepath.Join(cfg.Data, linkSecretFile), 2); err != nil {
			return nil, feedback.Webhooks{}, err
		}
	}
	signer, err := engage.NewSigner([]byte(secret), cfg.publicURL())
	if err != nil {
		return nil, feedback.Webhooks{}, fmt.Errorf("link_secret: %w", err)
	}
	wh := feedback.Webhooks{MailgunKey: c.MailgunSigningKey, TwilioToken: c.TwilioToken, PublicURL: cfg.publicURL(), Now: now}
	if c.SendGridWebhookKey != "" {
		if wh.SendGrid, err = sendgrid.NewVerifier(c.SendGridWebhookKey); err != nil {
			return nil, wh, fmt.Errorf("sendgrid_webhook_key: %w", err)
		}
	}
	return feedback.New(feedback.Config{Events: events, Profiles: profiles, Keys: keys, Signer: signer, Logger: logger}), wh, nil
}
