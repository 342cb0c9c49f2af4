package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/nudge-dev/nudge/journey/journeytest"
)

const testUsage = `Usage: nudge test [dir]

Runs the journey tests of dir (files named <journey>_test.yaml beside the
journeys; see docs/journeys.md, "Testing journeys"), or of the shipped
examples when no dir is given. Each case runs through the real runtime on a
virtual clock, sending nothing. Exit status 1 when a case fails.
`

// runTest runs nudge test.
func runTest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("nudge test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, testUsage) }
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return fmt.Errorf("nudge test takes one directory, not %d arguments", fs.NArg())
	}
	suite, err := journeytest.LoadFS(journeyFS(Config{Journeys: fs.Arg(0)}))
	if err != nil {
		return fmt.Errorf("journey tests:\n%w", err)
	}
	if len(suite.Files) == 0 {
		return errors.New("no journey tests (files named <journey>_test.yaml) in the directory")
	}
	sum, err := suite.Run(ctx, stdout)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d passed, %d failed\n", sum.Passed, sum.Failed)
	if sum.Failed > 0 {
		return fmt.Errorf("%d of %d journey test cases failed", sum.Failed, sum.Passed+sum.Failed)
	}
	return nil
}

// loadJourneyTests parses the journey tests beside the journeys of cfg (or
// of the shipped examples), for nudge check, and returns how many files
// there are. Errors name the file, the line and the field.
func loadJourneyTests(cfg Config) (int, error) {
	suite, err := journeytest.LoadFS(journeyFS(cfg))
	if err != nil {
		return 0, fmt.Errorf("journey tests:\n%w", err)
	}
	return len(suite.Files), nil
}
