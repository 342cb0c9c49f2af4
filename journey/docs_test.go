package journey

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestDocExamples parses every yaml block of docs/journeys.md, so that the
// reference never shows a journey that does not load. A block that is only
// steps, or only some fields, is completed into a journey first.
func TestDocExamples(t *testing.T) {
	data, err := os.ReadFile("../docs/journeys.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	topKey := regexp.MustCompile(`^([a-z_]+):`)
	n := 0
	for i := 0; i < len(lines); i++ {
		if strings.TrimSpace(lines[i]) != "```yaml" {
			continue
		}
		start := i + 1
		var block []string
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			block = append(block, lines[i])
		}
		text := strings.Join(block, "\n") + "\n"
		if len(block) > 0 && strings.HasPrefix(block[0], "#") && strings.Contains(block[0], "_test.yaml") {
			continue // a journey test: journeytest's TestDocExample parses it
		}
		n++
		var doc string
		if strings.HasPrefix(text, "- ") {
			doc = "id: doc\ntrigger: {event: Signed Up}\nsteps:\n" + indent(text)
		} else {
			keys := map[string]bool{}
			for _, l := range block {
				if m := topKey.FindStringSubmatch(l); m != nil {
					keys[m[1]] = true
				}
			}
			if !keys["id"] {
				doc += "id: doc\n"
			}
			if !keys["trigger"] {
				doc += "trigger: {event: Signed Up}\n"
			}
			doc += text
			if !keys["steps"] {
				doc += "steps:\n  - {id: doc-step, send: {channel: log, content: {body: hi}}}\n"
			}
		}
		if _, err := Parse(fmt.Sprintf("docs/journeys.md block at line %d", start), []byte(doc)); err != nil {
			t.Errorf("%v\n%s", err, doc)
		}
	}
	if n < 20 {
		t.Errorf("found %d yaml blocks", n)
	}
}

func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(s, "\n") {
		if strings.TrimSpace(l) != "" {
			b.WriteString("  ")
		}
		b.WriteString(l)
	}
	return b.String()
}
