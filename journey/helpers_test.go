package journey

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nudge-dev/nudge"
	"github.com/nudge-dev/nudge/profile"
)

var t0 = time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)

var msgSeq int

// track returns a track event of user u1 at t0+offset.
func track(name, props string, offset time.Duration) *nudge.Event {
	msgSeq++
	e := &nudge.Event{
		Type: nudge.Track, Event: name, MessageID: fmt.Sprintf("m%d", msgSeq), UserID: "u1",
		Timestamp: t0.Add(offset), ReceivedAt: t0.Add(offset),
	}
	if props != "" {
		e.Properties = json.RawMessage(props)
	}
	return e
}

func identify(traits string, offset time.Duration) *nudge.Event {
	msgSeq++
	return &nudge.Event{
		Type: nudge.Identify, MessageID: fmt.Sprintf("m%d", msgSeq), UserID: "u1",
		Traits: json.RawMessage(traits), Timestamp: t0.Add(offset),
	}
}

// state applies events to a new profile state.
func state(events ...*nudge.Event) *profile.State {
	s := new(profile.State)
	for _, e := range events {
		s.Apply(e)
	}
	return s
}

// errorList splits a joined error into its messages.
func errorList(err error) []string {
	if err == nil {
		return nil
	}
	var out []string
	var walk func(error)
	walk = func(err error) {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		out = append(out, err.Error())
	}
	walk(err)
	return out
}

// mustParse parses a document that must be valid.
func mustParse(t *testing.T, doc string) *Journey {
	t.Helper()
	j, err := Parse("test.yaml", []byte(doc))
	if err != nil {
		t.Fatalf("Parse:\n%s", strings.Join(errorList(err), "\n"))
	}
	return j
}

// asErrors checks that every error of err is a *Error.
func asErrors(t *testing.T, err error) {
	t.Helper()
	var walk func(error)
	walk = func(err error) {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		var je *Error
		if !errors.As(err, &je) {
			t.Errorf("%T is not a *journey.Error: %v", err, err)
		}
	}
	walk(err)
}
