package journey

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/nudge-dev/nudge"
)

// 100,000 customers in one journey at once: all enter, all get the
// welcome, all time out together 48 hours later and get the incentive.
// Under the race detector (ten times slower) it runs 20,000, so that
// test.sh stays within its time; `go test ./journey/` runs them all.
func TestHundredThousandCustomers(t *testing.T) {
	n := int64(100_000)
	if raceEnabled {
		n = 20_000
	}
	if v := os.Getenv("NUDGE_SCALE_N"); v != "" {
		n, _ = strconv.ParseInt(v, 10, 64)
	}
	h := newHarness(t, journeyOf(t, welcomeDoc))
	start := time.Now()
	batch := make([]nudge.Event, 0, 2000)
	for i := range n {
		batch = append(batch, h.ev(fmt.Sprint("c", i), "Signed Up", "", 0))
		if len(batch) == cap(batch) {
			h.send(batch...)
			batch = batch[:0]
		}
	}
	entered := time.Since(start)
	h.settle()
	delivered := time.Since(start)
	if got := int64(len(h.sent("email"))); got != n {
		t.Fatalf("%d welcomes, want %d", got, n)
	}
	h.advance(48*time.Hour + 5*time.Minute)
	if got := int64(len(h.sent("email"))); got != n {
		t.Fatalf("%d incentives, want %d", got, n)
	}
	s := h.stats("welcome")
	if s.Entered != n || s.Exits["completed"] != n || s.Steps["incentive"].Sent != n || s.Active != 0 {
		t.Fatalf("stats %+v", s)
	}
	if h.countKeys(prefixTimer)+h.countKeys(prefixJob) != 0 {
		t.Fatal("timers or jobs left")
	}
	t.Logf("%d customers: entered in %v, welcomed by %v, all done in %v", n, entered.Round(time.Millisecond),
		delivered.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}
