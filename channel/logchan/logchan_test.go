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

func TestLogsNoPersonalDataAtInfo(t *testing.T) {
	msg := &channel.Message{
		IdempotencyKey: "r.s", Journey: "welcome", Step: "s",
		Recipient: channel.Recipient{ProfileID: "pid", Identifiers: map[string]string{"email": "ann@example.com"}},
		Fields:    map[string]string{"subject": "Welcome, Ann!"},
	}
	for _, tc := range []struct {
		level    slog.Level
		wantText bool
	}{{slog.LevelInfo, false}, {slog.LevelDebug, true}} {
		var buf bytes.Buffer
		c := logchan.New("email", slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: tc.level})))
		if c.Name() != "email" {
			t.Fatal(c.Name())
		}
		if err := c.Send(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
		out := buf.String()
		if strings.Contains(out, "Welcome, Ann!") != tc.wantText || !strings.Contains(out, "profile=pid") ||
			!strings.Contains(out, "field_bytes.subject=13") || strings.Contains(out, "ann@example.com") {
			t.Fatalf("at level %v: log %q", tc.level, out)
		}
	}
}
