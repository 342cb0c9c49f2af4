package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"github.com/nudge-dev/nudge/examples"
	"github.com/nudge-dev/nudge/journey"
)

// journeyFS is where the journeys are: cfg.Journeys, or the shipped
// examples when it is empty; display names the directory in errors.
func journeyFS(cfg Config) (fsys fs.FS, dir, display string) {
	if cfg.Journeys != "" {
		return os.DirFS(cfg.Journeys), ".", cfg.Journeys
	}
	return examples.Journeys, "journeys", "examples/journeys"
}

// loadJourneys loads the journeys of cfg.Journeys, or the shipped examples
// when it is empty. Every error names the file, the line and the field.
func loadJourneys(cfg Config) ([]*journey.Journey, error) {
	fsys, dir, display := journeyFS(cfg)
	js, err := journey.LoadFS(fsys, dir, display)
	if err != nil {
		return nil, fmt.Errorf("journeys in %s:\n%w", display, err)
	}
	return js, nil
}

// journeySources reads the files loadJourneys loads, for the journey
// store: a file whose text changed becomes a new version.
func journeySources(cfg Config) ([]journey.Source, error) {
	fsys, dir, display := journeyFS(cfg)
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	var out []journey.Source
	for _, e := range entries {
		if e.IsDir() || !journey.IsJourneyFile(e.Name()) {
			continue
		}
		data, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, journey.Source{File: filepath.Join(display, e.Name()), Data: data})
	}
	return out, nil
}

// openDefinitions opens the journey store of the runtime's store, with the
// journeys of the files as loadJourneys found them.
func openDefinitions(ctx context.Context, cfg Config, rt *journey.Runtime) (*journey.Definitions, error) {
	srcs, err := journeySources(cfg)
	if err != nil {
		return nil, err
	}
	defs, err := journey.OpenDefinitions(ctx, rt, srcs)
	if err != nil {
		return nil, fmt.Errorf("journey store: %w", err)
	}
	return defs, nil
}
