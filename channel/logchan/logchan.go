// Package logchan is a channel for development: it writes each message to
// a slog logger instead of delivering it.
//
// At Info level it logs what was sent to whom without personal data: the
// journey, step and the profile id (a pseudonym), and the names and sizes
// of the rendered fields. Their text, which may hold personal data (a first
// name, the items of a cart), is logged only at Debug level
// (--log-level debug), for development.
package logchan

import (
	"context"
	"log/slog"
	"slices"

	"github.com/nudge-dev/nudge/channel"
)

// Channel writes messages to a logger.
type Channel struct {
	name   string
	logger *slog.Logger
}

var _ channel.Channel = (*Channel)(nil)

// New returns a log channel with the given name: "log", or the name of a
// channel not configured yet ("email" during development).
func New(name string, logger *slog.Logger) *Channel {
	return &Channel{name: name, logger: logger}
}

// Name implements channel.Channel.
func (c *Channel) Name() string { return c.name }

// Send implements channel.Channel: it logs m and never fails.
func (c *Channel) Send(ctx context.Context, m *channel.Message) error {
	names := make([]string, 0, len(m.Fields))
	for k := range m.Fields {
		names = append(names, k)
	}
	slices.Sort(names)
	sizes := make([]any, 0, len(names))
	fields := make([]any, 0, len(names))
	for _, k := range names {
		sizes = append(sizes, slog.Int(k, len(m.Fields[k])))
		fields = append(fields, slog.String(k, m.Fields[k]))
	}
	c.logger.LogAttrs(ctx, slog.LevelInfo, "message",
		slog.String("channel", c.name),
		slog.String("journey", m.Journey),
		slog.Int("version", m.Version),
		slog.String("step", m.Step),
		slog.String("variant", m.Variant),
		slog.String("profile", m.Recipient.ProfileID),
		slog.String("idempotency_key", m.IdempotencyKey),
		slog.Bool("transactional", m.Transactional),
		slog.Group("field_bytes", sizes...),
	)
	c.logger.LogAttrs(ctx, slog.LevelDebug, "message text",
		slog.String("idempotency_key", m.IdempotencyKey),
		slog.Group("fields", fields...),
	)
	return nil
}
