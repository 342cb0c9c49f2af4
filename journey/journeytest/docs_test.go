package journeytest

import (
	"context"
	"os"
	"strings"
	"testing"
)

// TestDocExample runs the test file shown in docs/journeys.md against the
// shipped journey it tests.
func TestDocExample(t *testing.T) {
	data, err := os.ReadFile("../../docs/journeys.md")
	if err != nil {
		t.Fatal(err)
	}
	const marker = "```yaml\n# abandoned-cart_test.yaml\n"
	i := strings.Index(string(data), marker)
	if i < 0 {
		t.Fatal("docs/journeys.md shows no test file")
	}
	text := string(data[i+len("```yaml\n"):])
	text = text[:strings.Index(text, "```")]
	f, err := ParseFile("docs/journeys.md", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	suite, err := LoadDir("../../examples/journeys")
	if err != nil {
		t.Fatal(err)
	}
	suite.Files = []*File{f}
	var out strings.Builder
	sum, err := suite.Run(context.Background(), &out)
	if err != nil || sum.Failed != 0 || sum.Passed != 1 {
		t.Fatalf("%+v %v\n%s", sum, err, out.String())
	}
}
