package journeytest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const greet = `id: greet
trigger:
  event: Signed Up
steps:
  - id: hello
    send:
      channel: email
      content:
        subject: "Hello, {{ profile.traits.first_name | default: 'you' }}"
  - id: pause
    wait:
      duration: 1h
  - id: again
    send:
      channel: sms
      content:
        body: Still there?
`

func suiteOf(t *testing.T, tests string) *Suite {
	t.Helper()
	dir := t.TempDir()
	for name, text := range map[string]string{"greet.yaml": greet, "greet_test.yaml": tests} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func run(t *testing.T, tests string) (Summary, string) {
	t.Helper()
	var out strings.Builder
	sum, err := suiteOf(t, tests).Run(context.Background(), &out)
	if err != nil {
		t.Fatal(err)
	}
	return sum, out.String()
}

func TestPass(t *testing.T) {
	sum, out := run(t, `
cases:
  - name: both messages
    traits: {first_name: Ann}
    events:
      - {at: +10m, event: Signed Up}
    expect:
      - {at: +10m, channel: email, step: hello, fields: {subject: "Hello, Ann"}}
      - {at: +1h10m, channel: sms, fields: {body: {contains: [Still, there]}}}
    stats: {entered: 1, exits: {completed: 1}}
  - name: absolute times, and another user
    start: 2026-05-01T12:00:00Z
    events:
      - {at: "2026-05-01T12:30:00Z", event: Signed Up, user: bob}
    expect:
      - {at: +30m, channel: email, user: bob}
      - {channel: sms, user: bob}
`)
	if sum.Passed != 2 || sum.Failed != 0 {
		t.Fatalf("%+v\n%s", sum, out)
	}
}

// A broken expectation fails, and the report shows expected and sent.
func TestFailShowsTheDifference(t *testing.T) {
	sum, out := run(t, `
cases:
  - name: wrong subject, wrong time, a send not expected
    traits: {first_name: Ann}
    events:
      - {at: +0s, event: Signed Up}
    expect:
      - {at: +0s, channel: email, step: hello, fields: {subject: "Hello, Bob"}}
      - {at: +2h, channel: sms}
  - name: nothing expected
    events:
      - {at: +0s, event: Signed Up}
    expect: []
`)
	if sum.Failed != 2 || sum.Passed != 0 {
		t.Fatalf("%+v\n%s", sum, out)
	}
	for _, want := range []string{
		"FAIL ",
		`- expected, not sent (line 8): at +0s email step hello to user-1 subject = "Hello, Bob"`,
		`subject is "Hello, Ann", expected = "Hello, Bob"`,
		"- expected, not sent (line 9): at +2h sms",
		"sent at +1h, expected at +2h",
		`+ sent, not expected: at +0s email step hello to user-1 subject="Hello, Ann"`,
		"+ sent, not expected: at +1h sms step again",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the report lacks %q:\n%s", want, out)
		}
	}
}

func TestStatsFail(t *testing.T) {
	sum, out := run(t, `
cases:
  - name: stats
    events: [{at: +0s, event: Signed Up}]
    expect: [{channel: email}, {channel: sms}]
    stats: {entered: 2, exits: {completed: 0}}
`)
	if sum.Failed != 1 || !strings.Contains(out, "entered 1, expected 2") || !strings.Contains(out, "exits completed 1, expected 0") {
		t.Fatalf("%+v\n%s", sum, out)
	}
}

func TestParseErrorsNameLineAndField(t *testing.T) {
	for _, c := range []struct{ doc, want string }{
		{"cases:\n  - name: x\n    events:\n      - {at: soon, event: A}\n", `t_test.yaml:4: cases[0].events[0].at: "soon" is neither an offset`},
		{"cases:\n  - name: x\n    events:\n      - {at: +1m}\n", "t_test.yaml:4: cases[0].events[0].event: is required"},
		{"cases:\n  - name: x\n    events: [{at: +1m, event: A}]\n    expect:\n      - {step: s}\n", "t_test.yaml:5: cases[0].expect[0].channel: is required"},
		{"cases:\n  - name: x\n    evnts: []\n", "t_test.yaml:3: cases[0].evnts: is not a known key"},
		{"cases:\n  - name: x\n    events: [{at: +1m, event: A}]\n    expect:\n      - channel: email\n        fields: {body: {contain: x}}\n", "t_test.yaml:6: cases[0].expect[0].fields.body.contain: is not a known key"},
		{"cases: [\n", "t_test.yaml:"},
		{"journey: x\n", "t_test.yaml:1: cases: is required"},
	} {
		_, err := ParseFile("t_test.yaml", []byte(c.doc))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseFile(%q) = %v, want %q", c.doc, err, c.want)
		}
	}
}

func TestNoJourney(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "lonely_test.yaml"), []byte("cases:\n  - {name: x, events: [{at: +0s, event: A}]}\n"), 0o600)
	if _, err := LoadDir(dir); err == nil || !strings.Contains(err.Error(), "lonely_test.yaml:1: journey: no journey file lonely.yaml") {
		t.Fatalf("LoadDir = %v", err)
	}
}
