package journey

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/nudge-dev/nudge"
)

// codeJourney is a valid journey built in code, as the admin API or a test
// might build one.
func codeJourney() *Journey {
	return &Journey{
		ID:      "code",
		Trigger: Trigger{Kind: TriggerEvent, Event: &EventFilter{Type: nudge.Track, Name: "Signed Up"}},
		Reentry: Reentry{Mode: ReentryOnce},
		Steps: []*Step{
			{ID: "hello", Kind: StepSend, Send: &Send{Channel: "log", Content: map[string]string{"body": "hi"}}, Next: "wait"},
			{ID: "wait", Kind: StepWaitFor, WaitFor: &WaitFor{Event: EventFilter{Type: nudge.Track, Name: "Order Completed"}, Timeout: time.Hour, OnEvent: "", OnTimeout: "hello"}},
		},
	}
}

func TestValidateCode(t *testing.T) {
	j := codeJourney()
	if err := j.Validate(DefaultChannels); err != nil {
		t.Fatal(err)
	}
	if j.Step("wait") == nil {
		t.Error("Step without an index")
	}
	for _, tc := range []struct {
		name   string
		change func(j *Journey)
		want   []string
	}{
		{"no channel", func(j *Journey) {}, []string{`steps[0].send.channel: unknown channel "log" (known: email)`}},
		{"no id", func(j *Journey) { j.ID = "" }, []string{`id: is required`, `steps[0].send.channel: unknown channel`}},
		{"bad kind", func(j *Journey) { j.Steps[0].Kind = "jump" }, []string{`steps[0]: "jump" is not a step kind`, `steps[1]: step "wait" is unreachable`}},
		{"kind without its field", func(j *Journey) { j.Steps[1].WaitFor = nil }, []string{`steps[0].send.channel`, `steps[1].wait_for: is required for a wait_for step`}},
		{"no timeout", func(j *Journey) { j.Steps[1].WaitFor.Timeout = 0 }, []string{`steps[0].send.channel`, `steps[1].wait_for.timeout: is required`}},
		{"negative timeout", func(j *Journey) { j.Steps[1].WaitFor.Timeout = -time.Minute }, []string{`steps[0].send.channel`, `steps[1].wait_for.timeout: -1m is negative`}},
		{"a loop through a wait_for is fine", func(j *Journey) { j.Steps[1].WaitFor.OnEvent = "hello" }, []string{`steps[0].send.channel`}},
		{"trigger without its field", func(j *Journey) { j.Trigger.Event = nil }, []string{`trigger: an event trigger needs its event`, `steps[0].send.channel`}},
		{"reentry", func(j *Journey) { j.Reentry = Reentry{Mode: ReentryOnce, After: time.Hour} }, []string{`reentry: a cooldown applies only to reentry after`, `steps[0].send.channel`}},
		{"reentry mode", func(j *Journey) { j.Reentry = Reentry{} }, []string{`reentry: "" is not once, every_time or after`, `steps[0].send.channel`}},
		{"split", func(j *Journey) {
			j.Steps[0] = &Step{ID: "hello", Kind: StepSplit, Split: &Split{Holdout: math.NaN(), Variants: []Variant{{Name: "a", Weight: math.Inf(1), Next: "wait"}}}}
		}, []string{`steps[0].split.holdout: NaN is not in [0, 1)`, `steps[0].split.variants[0].weight: +Inf is not a positive weight`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := codeJourney()
			tc.change(j)
			got := errorList(j.Validate([]string{"email"}))
			if len(got) != len(tc.want) {
				t.Fatalf("got %d errors, want %d:\n%s", len(got), len(tc.want), strings.Join(got, "\n"))
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("error %d = %q, want %q...", i, got[i], w)
				}
			}
		})
	}
}

func TestSplitChoose(t *testing.T) {
	s := &Split{Holdout: 0.1, Variants: []Variant{{Name: "a", Weight: 3}, {Name: "b", Weight: 1}}}
	counts := map[int]int{}
	const n = 100_000
	for i := range n {
		counts[s.Choose((float64(i)+0.5)/n)]++
	}
	for k, want := range map[int]float64{-1: 0.1, 0: 0.675, 1: 0.225} {
		if got := float64(counts[k]) / n; math.Abs(got-want) > 0.001 {
			t.Errorf("share of %d = %.4f, want %.4f", k, got, want)
		}
	}
	if s.Choose(0) != -1 || s.Choose(0.0999) != -1 || s.Choose(0.1) != 0 || s.Choose(math.Nextafter(1, 0)) != 1 {
		t.Error("edges")
	}
	if (&Split{}).Choose(0.5) != -1 {
		t.Error("no variants")
	}
	if (&Split{Variants: []Variant{{Weight: 1}}}).Choose(0) != 0 {
		t.Error("no holdout")
	}
}

func TestClockNext(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string, loc *time.Location) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		c    Clock
		now  time.Time
		loc  *time.Location
		want time.Time
	}{
		{Clock{9, 0}, at("2025-03-01 08:00", time.UTC), time.UTC, at("2025-03-01 09:00", time.UTC)},
		{Clock{9, 0}, at("2025-03-01 09:00", time.UTC), time.UTC, at("2025-03-02 09:00", time.UTC)},
		{Clock{9, 0}, at("2025-03-01 10:00", time.UTC), time.UTC, at("2025-03-02 09:00", time.UTC)},
		{Clock{9, 0}, at("2025-03-01 08:30", time.UTC), paris, at("2025-03-02 09:00", paris)}, // 09:30 in Paris
		{Clock{9, 0}, at("2025-03-29 12:00", paris), paris, at("2025-03-30 09:00", paris)},    // over the switch to summer time
		{Clock{2, 30}, at("2025-03-29 12:00", paris), paris, at("2025-03-30 03:30", paris)},   // 02:30 does not exist that night
		{Clock{23, 59}, at("2025-12-31 23:59", time.UTC), time.UTC, at("2026-01-01 23:59", time.UTC)},
	} {
		if got := tc.c.Next(tc.now, tc.loc); !got.Equal(tc.want) {
			t.Errorf("%s after %v in %v = %v, want %v", tc.c, tc.now, tc.loc, got, tc.want)
		}
	}
}

func TestPosString(t *testing.T) {
	for _, tc := range []struct {
		p    Pos
		want string
	}{
		{Pos{"a.yaml", 3, "steps[0]"}, "a.yaml:3: steps[0]"},
		{Pos{"a.yaml", 0, "id"}, "a.yaml: id"},
		{Pos{"", 0, "id"}, "id"},
		{Pos{"a.yaml", 3, ""}, "a.yaml:3"},
		{Pos{}, ""},
	} {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("%#v = %q, want %q", tc.p, got, tc.want)
		}
	}
}
