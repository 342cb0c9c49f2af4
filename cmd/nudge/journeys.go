package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/nudge-dev/nudge/examples"
	"github.com/nudge-dev/nudge/journey"
	"github.com/nudge-dev/nudge/journey/journeytest"
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
		if journeytest.IsTestFile(name) {
			continue
		}
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

// journeySources reads the files loadJourneys loads (journey tests
// excepted), for the journey store: a file whose text changed becomes a new
// version.
func journeySources(cfg Config) ([]journey.Source, error) {
	fsys, dir, display := fs.FS(examples.Journeys), "journeys", "examples/journeys"
	if cfg.Journeys != "" {
		fsys, dir, display = os.DirFS(cfg.Journeys), ".", cfg.Journeys
	}
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	var out []journey.Source
	for _, e := range entries {
		name := e.Name()
		ext := path.Ext(name)
		if e.IsDir() || strings.HasPrefix(name, ".") || (ext != ".yaml" && ext != ".yml") || journeytest.IsTestFile(name) {
			continue
		}
		data, err := fs.ReadFile(fsys, path.Join(dir, name))
		if err != nil {
			return nil, err
		}
		out = append(out, journey.Source{File: filepath.Join(display, name), Data: data})
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
