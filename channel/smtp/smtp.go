// Package smtp is an email channel that hands each message to an SMTP
// server: a relay of the provider, or a local mail server.
//
// # Fields
//
// A send reads the fields of channel.Email: to (default: the recipient's
// "email" identifier), subject, text and/or html, from (default:
// Config.From) and reply_to. With both a text and an html body the
// message is multipart/alternative.
//
// Every message carries Message-ID, Date and X-Nudge-Key (the message's
// idempotency key) headers and, when the message has an UnsubscribeURL,
// List-Unsubscribe and List-Unsubscribe-Post: List-Unsubscribe=One-Click
// (RFC 8058).
//
// # Outcome
//
// SMTP has no idempotency key: the channel is not Idempotent. 4xx replies
// and network errors are retryable, 5xx replies permanent. Errors carry
// the reply's codes, not its text, which may quote an address.
package smtp

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/smtp"
	"net/textproto"
	"strings"
	"time"

	"github.com/nudge-dev/nudge/channel"
)

// Config configures an SMTP channel.
type Config struct {
	// Name is the channel's name in send steps; default "email".
	Name string
	// Addr is the server's host:port; required.
	Addr string
	// From is the sender of messages without a from field.
	From string
	// Username and Password, when Username is set, authenticate with AUTH
	// PLAIN, which needs StartTLS unless the server is on localhost.
	Username string
	Password string
	// StartTLS upgrades the connection with STARTTLS, and fails when the
	// server does not offer it.
	StartTLS bool
	// TLS configures STARTTLS; default: verify the certificate of Addr's
	// host.
	TLS *tls.Config
	// HelloName is the name the channel gives in EHLO; default "localhost".
	HelloName string
	// Now is the clock of the Date header; default time.Now.
	Now func() time.Time
}

// Channel is an SMTP email channel.
type Channel struct {
	cfg  Config
	host string
}

var _ channel.Channel = (*Channel)(nil)

// New returns an SMTP channel.
func New(cfg Config) (*Channel, error) {
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil || host == "" {
		return nil, fmt.Errorf("smtp: Addr %q is not host:port", cfg.Addr)
	}
	if err := channel.CheckFrom(cfg.From); err != nil {
		return nil, fmt.Errorf("smtp: %w", err)
	}
	if cfg.Username != "" && !cfg.StartTLS && !isLocalhost(host) {
		return nil, errors.New("smtp: authentication needs StartTLS, or a server on localhost")
	}
	if cfg.Name == "" {
		cfg.Name = "email"
	}
	if cfg.HelloName == "" {
		cfg.HelloName = "localhost"
	}
	cfg.Now = channel.Clock(cfg.Now)
	return &Channel{cfg: cfg, host: host}, nil
}

func isLocalhost(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && ip.IsLoopback()
}

// Name implements channel.Channel.
func (c *Channel) Name() string { return c.cfg.Name }

// Idempotent: SMTP servers do not drop repeated messages.
func (c *Channel) Idempotent() bool { return false }

// Send implements channel.Channel.
func (c *Channel) Send(ctx context.Context, m *channel.Message) error {
	from, to, body, err := c.compose(m)
	if err != nil {
		return channel.Permanent(err)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.cfg.Addr)
	if err != nil {
		return channel.Retryable(fmt.Errorf("smtp: %w", err), 0)
	}
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	client, err := smtp.NewClient(conn, c.host)
	if err != nil {
		conn.Close()
		return classify("greeting", err)
	}
	defer client.Close()
	if err := c.deliver(client, from, to, body); err != nil {
		if ctx.Err() != nil {
			return channel.Retryable(fmt.Errorf("smtp: %w", ctx.Err()), 0)
		}
		return err
	}
	return nil
}

func (c *Channel) deliver(client *smtp.Client, from, to string, body []byte) error {
	if err := client.Hello(c.cfg.HelloName); err != nil {
		return classify("EHLO", err)
	}
	if c.cfg.StartTLS {
		if ok, _ := client.Extension("STARTTLS"); !ok {
			return channel.Retryable(errors.New("smtp: the server does not offer STARTTLS"), 0)
		}
		tc := c.cfg.TLS.Clone()
		if tc == nil {
			tc = &tls.Config{}
		}
		if tc.ServerName == "" {
			tc.ServerName = c.host
		}
		if err := client.StartTLS(tc); err != nil {
			return classify("STARTTLS", err)
		}
	}
	if c.cfg.Username != "" {
		if err := client.Auth(smtp.PlainAuth("", c.cfg.Username, c.cfg.Password, c.host)); err != nil {
			return classify("AUTH", err)
		}
	}
	if err := client.Mail(from); err != nil {
		return classify("MAIL FROM", err)
	}
	if err := client.Rcpt(to); err != nil {
		return classify("RCPT TO", err)
	}
	w, err := client.Data()
	if err != nil {
		return classify("DATA", err)
	}
	if _, err := w.Write(body); err != nil {
		return classify("DATA", err)
	}
	if err := w.Close(); err != nil {
		return classify("DATA", err)
	}
	// The server took the message; a failed QUIT changes nothing.
	_ = client.Quit()
	return nil
}

// classify turns the error of an SMTP command into a channel error: 5xx
// replies are permanent, 4xx replies and network errors retryable. The
// reply's text is left out: servers quote addresses in it.
func classify(cmd string, err error) error {
	var te *textproto.Error
	if !errors.As(err, &te) {
		return channel.Retryable(fmt.Errorf("smtp: %s: %w", cmd, err), 0)
	}
	code := fmt.Sprint(te.Code)
	if f := strings.Fields(te.Msg); len(f) > 0 && isEnhancedStatus(f[0]) {
		code += " " + f[0]
	}
	err = fmt.Errorf("smtp: the server answered %s with %s", cmd, code)
	if te.Code >= 500 {
		return channel.Permanent(err)
	}
	return channel.Retryable(err, 0)
}

// isEnhancedStatus reports whether s is an RFC 3463 status code (5.1.1).
func isEnhancedStatus(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts {
		if p == "" || strings.Trim(p, "0123456789") != "" {
			return false
		}
	}
	return true
}

// compose returns the envelope sender and recipient and the message text.
func (c *Channel) compose(m *channel.Message) (from, to string, msg []byte, err error) {
	e, err := channel.ReadEmail(m, c.cfg.From)
	if err != nil {
		return "", "", nil, fmt.Errorf("smtp: %w", err)
	}
	text, html := e.Text, e.HTML

	var b bytes.Buffer
	header := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	header("Message-ID", messageID(e.From.Address))
	header("Date", c.cfg.Now().Format(time.RFC1123Z))
	header("From", e.From.String())
	header("To", e.To.String())
	if e.ReplyTo != nil {
		header("Reply-To", e.ReplyTo.String())
	}
	header("Subject", mime.QEncoding.Encode("utf-8", oneLine(e.Subject)))
	if u := e.ListUnsubscribe(); u != "" {
		header("List-Unsubscribe", u)
		header("List-Unsubscribe-Post", channel.OneClick)
	}
	header("X-Nudge-Key", oneLine(m.IdempotencyKey))
	header("MIME-Version", "1.0")

	if text == "" || html == "" {
		typ, body := "text/plain", text
		if html != "" {
			typ, body = "text/html", html
		}
		header("Content-Type", typ+"; charset=utf-8")
		header("Content-Transfer-Encoding", "quoted-printable")
		b.WriteString("\r\n")
		writeQP(&b, body)
		return e.From.Address, e.To.Address, b.Bytes(), nil
	}
	mw := multipart.NewWriter(&b)
	header("Content-Type", "multipart/alternative; boundary="+mw.Boundary())
	b.WriteString("\r\n")
	for _, p := range []struct{ typ, body string }{{"text/plain", text}, {"text/html", html}} {
		pw, _ := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {p.typ + "; charset=utf-8"},
			"Content-Transfer-Encoding": {"quoted-printable"},
		})
		writeQP(pw, p.body)
	}
	mw.Close()
	return e.From.Address, e.To.Address, b.Bytes(), nil
}

func writeQP(w io.Writer, s string) {
	qp := quotedprintable.NewWriter(w)
	qp.Write([]byte(s))
	qp.Close()
}

// oneLine folds line breaks into spaces, so that a value cannot add headers.
func oneLine(s string) string {
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == '\r' || r == '\n' }), " ")
}

// messageID returns a new Message-ID in the domain of the sender.
func messageID(from string) string {
	var r [16]byte
	rand.Read(r[:])
	domain := "nudge.invalid"
	if _, d, ok := strings.Cut(from, "@"); ok && d != "" {
		domain = d
	}
	return "<" + hex.EncodeToString(r[:]) + "@" + domain + ">"
}
