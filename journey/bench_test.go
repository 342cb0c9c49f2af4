package journey

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/nudge-dev/nudge"
	"github.com/nudge-dev/nudge/bus"
	"github.com/nudge-dev/nudge/internal/cputime"
	"github.com/nudge-dev/nudge/profile"
)

// Pattern evaluation: the state machines of the pattern triggers, fed a
// stream of events of 1,000 customers (filter match included), with and
// without the round trip of each customer's state through its stored
// encoding. Events/s per core = 1e9 / cpu-ns/op (the machine is shared:
// cpu-ns/op is steadier than ns/op).
func BenchmarkPattern(b *testing.B) {
	const customers = 1000
	hi := journeyOf(b, `
id: hi
trigger:
  pattern: {count: 3, event: Product Viewed, within: 5m, group_by: category}
steps: [{id: s, exit: {}}]
`)
	cart := journeyOf(b, `
id: cart
trigger:
  pattern: {event: Checkout Started, not_followed_by: Order Completed, within: 1h, correlate: cart_id}
steps: [{id: s, exit: {}}]
`)
	seq := journeyOf(b, `
id: seq
trigger:
  pattern: {sequence: [Product Added, Checkout Started], within: 30m, correlate: cart_id}
steps: [{id: s, exit: {}}]
`)
	names := map[*Journey][]string{
		hi:   {"Product Viewed"},
		cart: {"Checkout Started", "Order Completed"},
		seq:  {"Product Added", "Checkout Started"},
	}
	for _, j := range []*Journey{hi, cart, seq} {
		for _, roundTrip := range []bool{false, true} {
			name := string(j.Trigger.Pattern.Kind)
			if roundTrip {
				name += "/stored"
			}
			b.Run(name, func(b *testing.B) {
				p := j.Trigger.Pattern
				within, late := nanos(p.Within), nanos(j.AllowedLateness)
				states := make([]*jstate, customers)
				stored := make([][]byte, customers)
				for i := range states {
					states[i] = &jstate{id: j.ID}
				}
				// Customer c's k-th event: 30 s after the previous one; the
				// names cycle through the pattern's, the category through
				// three, the cart changes every two events.
				props := make([][]byte, 6)
				for k := range props {
					props[k] = fmt.Appendf(nil, `{"category":"c%d","cart_id":"k%d","price":12.5}`, k%3, k/2%3)
				}
				counts := make([]int, customers)
				var fired int
				cpu := cputime.Start()
				b.ResetTimer()
				for i := range b.N {
					c := i % customers
					js := states[c]
					if roundTrip && stored[c] != nil {
						rec := &custRecord{}
						if err := decodeBody(rec, stored[c], recordV2); err != nil {
							b.Fatal(err)
						}
						js = rec.journeys[0]
					}
					k := counts[c]
					counts[c]++
					n := names[j][k%len(names[j])]
					e := &nudge.Event{Type: nudge.Track, Event: n, MessageID: fmt.Sprint("m", i), Source: "web",
						Timestamp: hT0.Add(time.Duration(k) * 30 * time.Second), Properties: props[k%len(props)]}
					ev := newEvInfo(e)
					switch p.Kind {
					case PatternCount:
						if p.Event.Matches(e) {
							if js.count == nil {
								js.count = &countState{}
							}
							if js.count.observe(p.Count, within, late, ev.prop(p.GroupBy), ev.t, ev.h) == matched {
								fired++
							}
						}
					case PatternSequence:
						var steps []int
						for k, f := range p.Sequence {
							if f.Matches(e) {
								steps = append(steps, k)
							}
						}
						if js.seq == nil {
							js.seq = &seqState{}
						}
						var enc []byte
						if len(steps) > 0 && steps[len(steps)-1] == len(p.Sequence)-1 {
							enc = ev.encoded()
						}
						if r, _ := js.seq.observe(len(p.Sequence), steps, within, late, ev.prop(p.Correlate), ev.t, ev.h, enc); r == matched {
							fired++
						}
					case PatternNotFollowedBy:
						if js.nfb == nil {
							js.nfb = &nfbState{}
						}
						corr := ev.prop(p.Correlate)
						if p.NotFollowedBy.Matches(e) {
							fired += js.nfb.observeB(within, late, corr, ev.t, ev.h) // windows closed
						}
						if p.Event.Matches(e) {
							js.nfb.observeA(newID("nfb", j.ID, e.MessageID), within, late, corr, ev.t, ev.h, eventRef{at: profile.LogRef{Seq: uint64(i + 1)}})
						}
					}
					if roundTrip {
						w := wbuf{b: make([]byte, 0, len(stored[c])+256)}
						(&custRecord{journeys: []*jstate{js}}).appendBody(&w)
						stored[c] = w.b
					}
				}
				b.StopTimer()
				cpu.Report(b)
				b.ReportMetric(float64(fired)/float64(b.N), "fired/op")
			})
		}
	}
}

// The whole path of an event through the engine and the runtime, with
// the high-intent pattern loaded: the profile engine's own work included,
// over Pebble. Compare with the engine alone.
func BenchmarkReact(b *testing.B) {
	for _, withJourney := range []bool{false, true} {
		name := "engine-only"
		if withJourney {
			name = "high-intent"
		}
		b.Run(name, func(b *testing.B) {
			var js []*Journey
			if withJourney {
				js = append(js, journeyOf(b, `
id: hi
reentry: every_time
trigger:
  pattern: {count: 3, event: Product Viewed, within: 5m, group_by: category}
steps: [{id: s, exit: {}}]
`))
			}
			h := newHarness(b, js...)
			const users = 1000
			batch := make([]nudge.Event, 0, 1000)
			parts := make([]int, 0, 1000)
			cpu := cputime.Start()
			b.ResetTimer()
			for i := range b.N {
				e := h.ev(fmt.Sprint("u", i%users), "Product Viewed", fmt.Sprintf(`{"category":"c%d"}`, i%7), time.Duration(i)*time.Millisecond)
				batch = append(batch, e)
				if len(batch) == cap(batch) || i == b.N-1 {
					b.StopTimer() // sealing is ingest's work
					for k := range batch {
						parts = append(parts, bus.PartitionOf(batch[k].CustomerKey(), hParts))
						if _, err := sealFor(h, &batch[k]); err != nil {
							b.Fatal(err)
						}
					}
					b.StartTimer()
					h.apply(parts, batch)
					batch, parts = batch[:0], parts[:0]
				}
			}
			h.flush()
			b.StopTimer()
			cpu.Report(b)
		})
	}
}

// Timer catch-up: b.N runs waiting in a 48-hour wait, all overdue after a
// restart; FireDue fires them, in due order, through engine transactions.
// The step after the wait is an exit (the timer machinery alone) or a send
// (the send job written too).
func BenchmarkTimerCatchUp(b *testing.B) {
	for _, next := range []string{"exit: {}", "send: {channel: log, content: {body: \"hi {{ profile.traits.name }}\"}}"} {
		name := "then-exit"
		if next[0] == 's' {
			name = "then-send"
		}
		b.Run(name, func(b *testing.B) {
			h := newHarness(b, journeyOf(b, `
id: w
trigger: {event: Ping}
steps:
  - id: wait
    wait: {duration: 48h}
  - id: after
    `+next+`
`))
			batch := make([]nudge.Event, 0, 2000)
			for i := range b.N {
				batch = append(batch, h.ev(fmt.Sprint("u", i), "Ping", "", time.Duration(i)*time.Microsecond))
				if len(batch) == cap(batch) || i == b.N-1 {
					h.send(batch...)
					batch = batch[:0]
				}
			}
			h.flush()
			h.Clock.Advance(72 * time.Hour)
			if os.Getenv("WARM") == "" {
				h.crash() // a restart: nothing in memory
			}
			cpu := cputime.Start()
			start := time.Now()
			b.ResetTimer()
			n, err := h.Runtime.FireDue(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			h.flush()
			b.StopTimer()
			cpu.Report(b)
			if n != b.N {
				b.Fatalf("fired %d of %d", n, b.N)
			}
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "timers/s")
		})
	}
}
