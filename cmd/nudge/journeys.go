package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"path/filepath"

	"github.com/nudge-dev/nudge/channel"
	"github.com/nudge-dev/nudge/channel/logchan"
	"github.com/nudge-dev/nudge/channel/webhook"
	"github.com/nudge-dev/nudge/examples"
	"github.com/nudge-dev/nudge/journey"
)

// loadJourneys loads the journeys of cfg.Journeys, or the shipped examples
// when it is empty. Every error names the file, the line and the field.
func loadJourneys(cfg Config) ([]*journey.Journey, error) {
	if cfg.Journeys != "" {
		js, err := journey.LoadDir(cfg.Journeys)
		if err != nil {
			return nil, fmt.Errorf("journeys in %s:\n%w", cfg.Journeys, err)
		}
		return js, nil
	}
	names, err := fs.Glob(examples.Journeys, "journeys/*.yaml")
	if err != nil {
		return nil, err
	}
	var js []*journey.Journey
	var errs []error
	for _, name := range names {
		data, err := fs.ReadFile(examples.Journeys, name)
		if err != nil {
			return nil, err
		}
		j, err := journey.Parse(path.Join("examples", name), data)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		js = append(js, j)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("shipped journeys:\n%w", err)
	}
	return js, nil
}

// channels builds the channels journeys send through: signed webhooks, and
// the log channel. Email, SMS, push, Slack, audiences and CDP sync log
// their messages until their providers land (issue 5).
func channels(cfg Config, logger *slog.Logger) ([]channel.Channel, error) {
	secret, err := readOrMakeSecret(filepath.Join(cfg.Data, webhookSecretFile))
	if cfg.WebhookSecret != "" {
		secret, err = cfg.WebhookSecret, nil
	}
	if err != nil {
		return nil, err
	}
	wh, err := webhook.New(webhook.Config{URL: cfg.WebhookURL, Secret: []byte(secret)})
	if err != nil {
		return nil, err
	}
	chans := []channel.Channel{wh}
	for _, name := range journey.DefaultChannels {
		if name != wh.Name() {
			chans = append(chans, logchan.New(name, logger))
		}
	}
	return chans, nil
}
