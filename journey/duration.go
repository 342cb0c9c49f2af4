package journey

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ParseDuration parses a duration in Go's syntax (time.ParseDuration:
// "48h", "1h30m", "90s") extended with d for days of 24 hours: "7d",
// "1d12h", "1.5d". A sign may lead; "0" is zero. Spaces are not allowed.
func ParseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, errors.New("empty duration")
	}
	if !strings.Contains(s, "d") {
		return time.ParseDuration(s)
	}
	neg := false
	rest := s
	switch rest[0] {
	case '-', '+':
		neg = rest[0] == '-'
		rest = rest[1:]
	}
	// Take the leading days, "<number>d", then hand the rest to Go.
	i := 0
	for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.') {
		i++
	}
	if i == 0 || i >= len(rest) || rest[i] != 'd' || strings.Contains(rest[i+1:], "d") {
		return 0, fmt.Errorf("%q is not a duration: days must come first, as in 7d or 1d12h", s)
	}
	days, err := strconv.ParseFloat(rest[:i], 64)
	if err != nil || days > float64(1<<63-1)/float64(24*time.Hour) {
		return 0, fmt.Errorf("%q is not a duration", s)
	}
	d := time.Duration(days * float64(24*time.Hour))
	if tail := rest[i+1:]; tail != "" {
		t, err := time.ParseDuration(tail)
		if err != nil || t < 0 || strings.HasPrefix(tail, "+") {
			return 0, fmt.Errorf("%q is not a duration", s)
		}
		if d > 1<<63-1-t {
			return 0, fmt.Errorf("%q is too long a duration", s)
		}
		d += t
	}
	if neg {
		d = -d
	}
	return d, nil
}

// FormatDuration formats d as ParseDuration reads it, with whole days as d:
// 7d, 1d12h, 30m.
func FormatDuration(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	sign := ""
	if d < 0 {
		sign, d = "-", -d
	}
	const day = 24 * time.Hour
	days := d / day
	rest := d % day
	switch {
	case days == 0:
		return sign + shortDuration(rest)
	case rest == 0:
		return fmt.Sprintf("%s%dd", sign, days)
	}
	return fmt.Sprintf("%s%dd%s", sign, days, shortDuration(rest))
}

// shortDuration is d.String() without zero units: 1h0m0s is 1h.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
