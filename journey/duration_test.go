package journey

import (
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{in: "7d", want: 7 * 24 * time.Hour},
		{in: "48h", want: 48 * time.Hour},
		{in: "30m", want: 30 * time.Minute},
		{in: "1h30m", want: 90 * time.Minute},
		{in: "90s", want: 90 * time.Second},
		{in: "250ms", want: 250 * time.Millisecond},
		{in: "1d12h", want: 36 * time.Hour},
		{in: "1.5d", want: 36 * time.Hour},
		{in: "2d30m15s", want: 48*time.Hour + 30*time.Minute + 15*time.Second},
		{in: "0", want: 0},
		{in: "0d", want: 0},
		{in: "-1d", want: -24 * time.Hour},
		{in: "-2h", want: -2 * time.Hour},
		{in: "+3d", want: 72 * time.Hour},
		{in: "", bad: true},
		{in: "d", bad: true},
		{in: "7", bad: true},
		{in: "3 hourz", bad: true},
		{in: "7 d", bad: true},
		{in: "1h2d", bad: true},
		{in: "1d2d", bad: true},
		{in: "1d-2h", bad: true},
		{in: "1d+2h", bad: true},
		{in: "7days", bad: true},
		{in: "1e3d", bad: true},
		{in: "999999999d", bad: true},
		{in: "1w", bad: true},
	} {
		got, err := ParseDuration(tc.in)
		switch {
		case tc.bad && err == nil:
			t.Errorf("ParseDuration(%q) = %v, want an error", tc.in, got)
		case !tc.bad && err != nil:
			t.Errorf("ParseDuration(%q): %v", tc.in, err)
		case !tc.bad && got != tc.want:
			t.Errorf("ParseDuration(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	for _, tc := range []struct {
		in   time.Duration
		want string
	}{
		{0, "0s"},
		{7 * 24 * time.Hour, "7d"},
		{36 * time.Hour, "1d12h"},
		{30 * time.Minute, "30m"},
		{90 * time.Minute, "1h30m"},
		{-24 * time.Hour, "-1d"},
		{24*time.Hour + 90*time.Second, "1d1m30s"},
		{1500 * time.Millisecond, "1.5s"},
	} {
		got := FormatDuration(tc.in)
		if got != tc.want {
			t.Errorf("FormatDuration(%v) = %q, want %q", tc.in, got, tc.want)
		}
		back, err := ParseDuration(got)
		if err != nil || back != tc.in {
			t.Errorf("ParseDuration(FormatDuration(%v)) = %v, %v", tc.in, back, err)
		}
	}
}
