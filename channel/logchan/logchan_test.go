package logchan_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/nudge-dev/nudge/channel"
	"github.com/nudge-dev/nudge/channel/logchan"
)

func TestLogsFieldsNotIdentifiers(t *testing.T) {
	var buf bytes.Buffer
	c := logchan.New("email", slog.New(slog.NewTextHandler(&buf, nil)))
	if c.Name() != "email" {
		t.Fatal(c.Name())
	}
	err := c.Send(context.Background(), &channel.Message{
		IdempotencyKey: "r.s", Journey: "welcome", Step: "s",
		Recipient: channel.Recipient{ProfileID: "pid", Identifiers: map[string]string{"email": "ann@example.com"}},
		Fields:    map[string]string{"subject": "Welcome, Ann!"},
	})
	if err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if !strings.Contains(out, "Welcome, Ann!") || !strings.Contains(out, "profile=pid") || strings.Contains(out, "ann@example.com") {
		t.Fatalf("log line %q", out)
	}
}
