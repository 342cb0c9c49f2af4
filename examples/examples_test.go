package examples_test

import (
	"context"
	"io/fs"
	"path"
	"strings"
	"testing"

	"github.com/nudge-dev/nudge/examples"
	"github.com/nudge-dev/nudge/journey/journeytest"
)

// TestShippedJourneyTests runs the tests of every shipped journey
// (journeys/*_test.yaml), as nudge test does, and checks that every
// journey has some.
func TestShippedJourneyTests(t *testing.T) {
	suite, err := journeytest.LoadDir("journeys")
	if err != nil {
		t.Fatal(err)
	}
	tested := map[string]bool{}
	for _, f := range suite.Files {
		tested[suite.JourneyOf(f).ID] = true
	}
	for _, j := range suite.Journeys {
		if !tested[j.ID] {
			t.Errorf("the journey %s (%s) has no tests", j.ID, j.File)
		}
	}
	var out strings.Builder
	sum, err := suite.Run(context.Background(), &out)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Failed > 0 || sum.Passed == 0 {
		t.Fatalf("%d passed, %d failed:\n%s", sum.Passed, sum.Failed, out.String())
	}
	t.Logf("%d cases passed", sum.Passed)
}

// The embedded copy, which nudge test runs without a directory, holds the
// same tests.
func TestEmbeddedJourneyTests(t *testing.T) {
	names, _ := fs.Glob(examples.Journeys, "journeys/*_test.yaml")
	if len(names) < 5 {
		t.Fatalf("embedded test files: %v", names)
	}
	suite, err := journeytest.LoadFS(examples.Journeys, "journeys", "examples/journeys")
	if err != nil || len(suite.Files) != len(names) {
		t.Fatalf("LoadFS: %v, %d files", err, len(suite.Files))
	}
	for _, f := range suite.Files {
		if path.Dir(f.Path) != "examples/journeys" {
			t.Fatalf("path %s", f.Path)
		}
	}
}
