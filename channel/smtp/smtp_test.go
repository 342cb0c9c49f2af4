package smtp_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nudge-dev/nudge/channel"
	"github.com/nudge-dev/nudge/channel/smtp"
	"github.com/nudge-dev/nudge/channel/smtp/smtptest"
)

var now = time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)

func msg(fields map[string]string) *channel.Message {
	return &channel.Message{
		IdempotencyKey: "run1.step1", Channel: "email", Journey: "welcome", Step: "step1",
		Recipient: channel.Recipient{ProfileID: "p1", Identifiers: map[string]string{"email": "ada@example.com"}},
		Fields:    fields, CreatedAt: now,
	}
}

func newChannel(t *testing.T, addr string) *smtp.Channel {
	t.Helper()
	c, err := smtp.New(smtp.Config{Addr: addr, From: "Nudge <news@shop.example>", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestMailpit(t *testing.T) {
	mp := smtptest.Start(t)
	c := newChannel(t, mp.Addr)
	m := msg(map[string]string{
		"subject":  "Grüße, Ada: your cart is waiting",
		"text":     "Hello Ada,\nyour cart misses you. A long line that quoted-printable has to wrap because it is longer than seventy-six characters.",
		"html":     "<p>Hello <b>Ada</b>, your cart misses you — ünïcode.</p>",
		"reply_to": "help@shop.example",
	})
	m.UnsubscribeURL = "https://nudge.example/u/abc?sig=1"
	if err := c.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	// An address in the to field, a sender in the from field, text only.
	if err := c.Send(context.Background(), msg(map[string]string{
		"to": "grace@example.com", "from": "promo@shop.example", "subject": "Plain", "text": "Just text",
	})); err != nil {
		t.Fatal(err)
	}

	got := mp.Messages(t)
	if len(got) != 2 {
		t.Fatalf("%d messages, want 2", len(got))
	}
	a, b := got[0], got[1]
	if a.Subject != "Grüße, Ada: your cart is waiting" || a.From != "news@shop.example" || len(a.To) != 1 || a.To[0] != "ada@example.com" {
		t.Errorf("message %+v", a)
	}
	if !strings.Contains(a.Text, "your cart misses you. A long line that quoted-printable has to wrap because it is longer than seventy-six characters.") {
		t.Errorf("text %q", a.Text)
	}
	if !strings.Contains(a.HTML, "<b>Ada</b>, your cart misses you — ünïcode.") {
		t.Errorf("html %q", a.HTML)
	}
	for k, want := range map[string]string{
		"List-Unsubscribe":      "<https://nudge.example/u/abc?sig=1>",
		"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
		"X-Nudge-Key":           "run1.step1",
		"Reply-To":              "<help@shop.example>",
		"Date":                  "Mon, 04 May 2026 12:00:00 +0000",
	} {
		if v := a.Headers[k]; len(v) != 1 || v[0] != want {
			t.Errorf("header %s: %q, want %q", k, v, want)
		}
	}
	if v := a.Headers["Subject"]; len(v) != 1 || !strings.HasPrefix(v[0], "=?utf-8?q?") {
		t.Errorf("Subject header %q is not RFC 2047 encoded", v)
	}
	if v := a.Headers["Message-Id"]; len(v) != 1 || !strings.HasSuffix(v[0], "@shop.example>") {
		t.Errorf("Message-ID %q", v)
	}
	if v := a.Headers["Content-Type"]; len(v) != 1 || !strings.HasPrefix(v[0], "multipart/alternative;") {
		t.Errorf("Content-Type %q", v)
	}

	if b.Subject != "Plain" || b.From != "promo@shop.example" || b.To[0] != "grace@example.com" || strings.TrimSpace(b.Text) != "Just text" || b.HTML != "" {
		t.Errorf("text-only message %+v", b)
	}
	if _, ok := b.Headers["List-Unsubscribe"]; ok {
		t.Error("List-Unsubscribe without an UnsubscribeURL")
	}
	if v := b.Headers["Content-Type"]; len(v) != 1 || !strings.HasPrefix(v[0], "text/plain") {
		t.Errorf("Content-Type %q", v)
	}
}

func TestRejectedRecipientIsPermanent(t *testing.T) {
	mp := smtptest.Start(t, "--smtp-allowed-recipients", "^ok@")
	c := newChannel(t, mp.Addr)
	err := c.Send(context.Background(), msg(map[string]string{"subject": "s", "text": "t"}))
	if err == nil || !channel.IsPermanent(err) {
		t.Fatalf("rejected recipient: %v", err)
	}
	if strings.Contains(err.Error(), "ada@") {
		t.Errorf("the error names the address: %v", err)
	}
	if err := c.Send(context.Background(), msg(map[string]string{"to": "ok@example.com", "subject": "s", "text": "t"})); err != nil {
		t.Fatalf("allowed recipient: %v", err)
	}
}

// fakeServer answers SMTP commands from a script and refuses RCPT TO with
// reply, to check how the channel classifies replies.
func fakeServer(t *testing.T, reply string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		buf := make([]byte, 4096)
		conn.Write([]byte("220 fake ESMTP\r\n"))
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			switch cmd := strings.ToUpper(string(buf[:n])); {
			case strings.HasPrefix(cmd, "EHLO"):
				conn.Write([]byte("250 fake\r\n"))
			case strings.HasPrefix(cmd, "RCPT"):
				conn.Write([]byte(reply + "\r\n"))
			case strings.HasPrefix(cmd, "QUIT"):
				conn.Write([]byte("221 bye\r\n"))
				return
			default:
				conn.Write([]byte("250 ok\r\n"))
			}
		}
	}()
	return l.Addr().String()
}

func TestReplies(t *testing.T) {
	for _, tc := range []struct {
		reply     string
		permanent bool
		want      string
	}{
		{"451 4.7.1 <ada@example.com> greylisted, try later", false, "451 4.7.1"},
		{"550 5.1.1 <ada@example.com>: mailbox unknown", true, "550 5.1.1"},
		{"552 mailbox full", true, "552"},
	} {
		c := newChannel(t, fakeServer(t, tc.reply))
		err := c.Send(context.Background(), msg(map[string]string{"subject": "s", "text": "t"}))
		if err == nil || channel.IsPermanent(err) != tc.permanent || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "ada@") {
			t.Errorf("%q: %v", tc.reply, err)
		}
	}
}

func TestInvalid(t *testing.T) {
	// Nothing listens on the address: a network error is retryable.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	c := newChannel(t, addr)
	if err := c.Send(context.Background(), msg(map[string]string{"subject": "s", "text": "t"})); err == nil || channel.IsPermanent(err) {
		t.Errorf("closed server: %v", err)
	}

	// The fields are read by channel.ReadEmail (tested there); a message
	// it refuses is a permanent error that names the channel.
	if err := c.Send(context.Background(), msg(map[string]string{"text": "t"})); !channel.IsPermanent(err) || !strings.HasPrefix(err.Error(), "smtp: ") || !strings.Contains(err.Error(), "subject") {
		t.Errorf("no subject: %v", err)
	}
	for name, cfg := range map[string]smtp.Config{
		"no addr":           {},
		"addr without port": {Addr: "mail.example"},
		"bad from":          {Addr: "mail.example:25", From: "nobody"},
		"auth in the clear": {Addr: "mail.example:25", Username: "u", Password: "p"},
	} {
		if _, err := smtp.New(cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := smtp.New(smtp.Config{Addr: "127.0.0.1:25", Username: "u", Password: "p"}); err != nil {
		t.Errorf("auth on localhost: %v", err)
	}
	c, _ = smtp.New(smtp.Config{Addr: "mail.example:587", Username: "u", StartTLS: true})
	if c.Name() != "email" || channel.IsIdempotent(c) {
		t.Errorf("name %q, idempotent %v", c.Name(), channel.IsIdempotent(c))
	}
}

func TestAuthAndStartTLS(t *testing.T) {
	mp := smtptest.Start(t, "--smtp-auth-file", writeFile(t, "nudge:s3cret\n"), "--smtp-auth-allow-insecure")
	m := msg(map[string]string{"subject": "s", "text": "t"})
	for _, tc := range []struct {
		cfg       smtp.Config
		ok        bool
		permanent bool
	}{
		{cfg: smtp.Config{Username: "nudge", Password: "s3cret"}, ok: true},
		{cfg: smtp.Config{Username: "nudge", Password: "wrong"}, permanent: true},
		// The server does not offer STARTTLS: the channel does not send in the clear.
		{cfg: smtp.Config{StartTLS: true}},
	} {
		tc.cfg.Addr, tc.cfg.From = mp.Addr, "news@shop.example"
		c, err := smtp.New(tc.cfg)
		if err != nil {
			t.Fatal(err)
		}
		err = c.Send(context.Background(), m)
		if (err == nil) != tc.ok || channel.IsPermanent(err) != tc.permanent {
			t.Errorf("%+v: %v (permanent %v)", tc.cfg, err, channel.IsPermanent(err))
		}
	}
	if n := len(mp.Messages(t)); n != 1 {
		t.Errorf("%d messages, want 1", n)
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "auth")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
