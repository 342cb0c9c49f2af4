//go:build unix

package cputime

import "testing"

func TestElapsedCountsWork(t *testing.T) {
	c := Start()
	x := 0
	for i := range 50_000_000 {
		x ^= i * i
	}
	if c.Elapsed() <= 0 {
		t.Errorf("no CPU time measured over a busy loop (%d)", x)
	}
}
