package journey

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"

	"github.com/nudge-dev/nudge/channel"
	"github.com/nudge-dev/nudge/profile"
	"github.com/nudge-dev/nudge/shred"
	"github.com/nudge-dev/nudge/tracing"
)

// The dispatcher. One goroutine scans the due jobs in key order and hands
// each to its channel's lane; a lane is that channel's workers, its rate
// limit and its circuit breaker, so a provider that is slow, down or
// throttled holds up only its own lane: the scanner never waits for a
// send, and a full lane's jobs stay in the store until it has room. One
// recorder goroutine writes outcomes (and in-flight marks) as they come,
// many per engine transaction.
//
// Jobs handed out and not yet recorded are claimed (in memory), so a scan
// skips them; a job whose outcome is recorded is unclaimed at the start of
// the next scan, whose snapshot already holds the outcome.

// LaneConfig bounds the deliveries of one channel.
type LaneConfig struct {
	// Workers is how many sends the channel runs at once (default
	// Config.SendWorkers).
	Workers int
	// Rate, when positive, is the most sends a second, with bursts of Burst
	// (default: Rate rounded up).
	Rate  float64
	Burst int
	// BreakerFailures consecutive retryable failures open the channel's
	// circuit (default 5): its jobs are then put off by BreakerOpen
	// (default 30 s) without an attempt, and one probe is let through after
	// that. The breaker keeps wall-clock time (not Config.Clock).
	BreakerFailures int
	BreakerOpen     time.Duration
}

func (c LaneConfig) withDefaults(workers int) LaneConfig {
	if c.Workers <= 0 {
		c.Workers = workers
	}
	if c.Rate > 0 && c.Burst <= 0 {
		c.Burst = max(1, int(c.Rate+0.999))
	}
	if c.BreakerFailures <= 0 {
		c.BreakerFailures = 5
	}
	if c.BreakerOpen <= 0 {
		c.BreakerOpen = 30 * time.Second
	}
	return c
}

type lane struct {
	ch      channel.Channel
	cfg     LaneConfig
	idem    bool
	limiter *rate.Limiter // nil: no limit
	breaker *gobreaker.TwoStepCircuitBreaker[struct{}]
	queue   chan *delivery // Run's workers take from it
}

func newLane(ch channel.Channel, cfg LaneConfig, workers int) *lane {
	cfg = cfg.withDefaults(workers)
	l := &lane{ch: ch, cfg: cfg, idem: channel.IsIdempotent(ch)}
	if cfg.Rate > 0 {
		l.limiter = rate.NewLimiter(rate.Limit(cfg.Rate), cfg.Burst)
	}
	l.breaker = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:    ch.Name(),
		Timeout: cfg.BreakerOpen,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.ConsecutiveFailures >= uint32(cfg.BreakerFailures)
		},
		// A refusal (a bad address) says nothing of the provider's health.
		IsSuccessful: func(err error) bool { return err == nil || channel.IsPermanent(err) },
		IsExcluded:   func(err error) bool { return errors.Is(err, context.Canceled) },
	})
	return l
}

// delivery is one job on its way: scanned, attempted, recorded.
type delivery struct {
	key  []byte
	id   runID
	h    *jobHeader
	m    *channel.Message
	lane *lane
	err  error
	// what to record
	drop       bool  // erased or unreadable: deleted, not counted
	leave      bool  // not handled now (its profile could not be read): scanned again
	suppressed bool  // the customer unsubscribed or refused consent meanwhile
	deferTo    int64 // not attempted (its circuit is open): due again then
	inDoubt    bool  // found in flight after a restart: not repeated
	attempted  bool
	// marked is closed once an in-flight mark is recorded (Run only)
	marked chan error
}

// route opens a scanned job and decides what to do with it: it reports
// whether the job goes to its lane. It runs on the scanner.
func (rt *Runtime) route(d *delivery, now int64) bool {
	if d.drop {
		rt.logger.Error("journey send job is corrupt; dropped", "err", d.err)
		return false
	}
	if d.h.has(jobInFlight) && !d.h.has(jobTransactional) {
		// Maybe sent before a crash, to a provider that does not drop
		// repeats: not repeated.
		d.inDoubt = true
		return false
	}
	var err error
	if d.m, err = rt.decodeJob(d.h); err != nil {
		if !errors.Is(err, shred.ErrShredded) {
			rt.logger.Error("journey send job cannot be read; dropped", "journey", d.h.journey, "step", d.h.step, "err", err)
		}
		d.drop = true
		return false
	}
	if d.lane = rt.lanes[d.h.channel]; d.lane == nil {
		d.err = channel.Permanent(fmt.Errorf("journey: no channel is named %q", d.h.channel))
		return false
	}
	if d.lane.breaker.State() == gobreaker.StateOpen {
		d.deferTo = now + nanos(d.lane.cfg.BreakerOpen)
		return false
	}
	return true
}

// recheck checks the customer's wishes again for a job put off by quiet
// hours; it reports whether the job is still to be attempted. It reads the
// profile in an engine transaction, so it runs on the lane's worker, not
// on the scanner.
func (rt *Runtime) recheck(ctx context.Context, d *delivery) bool {
	if !d.h.has(jobRecheck) || d.h.has(jobTransactional) {
		return true
	}
	var err error
	if d.suppressed, err = rt.unwanted(ctx, d.h); err != nil {
		rt.logger.Warn("journey send job: the profile could not be read; tried again later", "err", err)
		d.leave = true
	}
	return err == nil && !d.suppressed
}

// unwanted reports whether a job put off by quiet hours is no longer
// wanted: since its step ran, the customer unsubscribed from its channel or
// group, or refused its consent category.
func (rt *Runtime) unwanted(ctx context.Context, h *jobHeader) (bool, error) {
	c := rt.cat.Load().version(h.journey, h.version)
	if c == nil {
		return false, nil
	}
	s := c.j.Step(h.step)
	if s == nil || s.Send == nil {
		return false, nil
	}
	var no bool
	err := rt.cfg.Engine.Do(ctx, func(tx *profile.Tx) error {
		p, err := tx.Profile(ctx, h.ref)
		if err != nil || p == nil {
			return err
		}
		no = unsubscribed(&p.State, s.Send.Channel, s.Send.Group) || refused(&p.State, s.Send.Consent)
		return nil
	})
	return no, err
}

// needsMark reports whether d is to be marked in flight before its attempt.
func (d *delivery) needsMark() bool {
	return !d.lane.idem && !d.h.has(jobInFlight)
}

// attempt sends d through its lane, within the lane's rate and circuit.
func (rt *Runtime) attempt(ctx context.Context, d *delivery) {
	l := d.lane
	done, err := l.breaker.Allow()
	if err != nil { // open, or half-open with its probe out
		d.deferTo = unixNanos(rt.cfg.Clock.Now()) + nanos(l.cfg.BreakerOpen)
		return
	}
	if l.limiter != nil {
		if err := l.limiter.Wait(ctx); err != nil {
			done(context.Canceled)
			d.deferTo = unixNanos(rt.cfg.Clock.Now())
			return
		}
	}
	if !d.m.TriggeredAt.IsZero() && d.h.attempts == 0 && rt.cfg.TimeToTrigger != nil {
		rt.cfg.TimeToTrigger(d.m.Channel, rt.cfg.Clock.Now().Sub(d.m.TriggeredAt))
	}
	sctx, cancel := context.WithTimeout(tracing.WithParent(ctx, d.h.trace), rt.cfg.SendTimeout)
	sctx, span := tracing.Tracer.Start(sctx, "nudge.deliver "+d.h.channel, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("journey", d.h.journey), attribute.String("step", d.h.step),
			attribute.String("channel", d.h.channel), attribute.Int("attempt", d.h.attempts+1)))
	start := time.Now()
	d.err = l.ch.Send(sctx, d.m)
	took := time.Since(start)
	if d.err != nil {
		span.SetStatus(codes.Error, d.err.Error())
	}
	span.End()
	cancel()
	d.attempted = true
	done(d.err)
	if rt.cfg.Delivery != nil {
		outcome := "sent"
		switch {
		case channel.IsPermanent(d.err):
			outcome = "failed"
		case d.err != nil:
			outcome = "retry"
		}
		rt.cfg.Delivery(d.h.channel, outcome, took)
	}
}

// scanJobs claims up to Batch jobs due at now that no lane holds. next is
// the due time of the first job not due yet (0: none); more says that due
// jobs were left for the next scan.
func (rt *Runtime) scanJobs(ctx context.Context, now int64) (items []*delivery, next int64, more bool, err error) {
	// A kick comes after the commit of the jobs it announces (Committed),
	// which also lowered the floor to them: a scan needs no pass through
	// the engine's lock. The outcomes recorded so far are committed too:
	// their jobs are unclaimed.
	rt.dispMu.Lock()
	defer rt.dispMu.Unlock()
	for _, k := range rt.finished {
		delete(rt.claimed, k)
	}
	rt.finished = rt.finished[:0]
	from := rt.jobFloor.begin()
	if from == nil {
		from = []byte(prefixJob)
	}
	var first []byte // the first job key in the store from the floor on
	err = rt.cfg.Store.ScanExt(ctx, from, endOf(prefixJob), func(k, v []byte) error {
		due, id, ok := parseDueKey(prefixJob, k)
		if !ok {
			return nil
		}
		if first == nil {
			first = slices.Clone(k)
		}
		if due > now {
			next = due
			return errStop
		}
		if rt.claimed[string(k)] {
			return nil
		}
		if len(items) == rt.cfg.Batch {
			more = true
			return errStop
		}
		d := &delivery{key: slices.Clone(k), id: id}
		if d.h, d.err = parseJobHeader(slices.Clone(v)); d.err != nil {
			d.drop = true
		}
		rt.claimed[string(d.key)] = true
		items = append(items, d)
		return nil
	})
	if err != nil && err != errStop {
		return nil, 0, false, err
	}
	if first == nil {
		first = endOf(prefixJob)
	}
	rt.jobFloor.end(first)
	return items, next, more, nil
}

// unclaim releases jobs whose outcome is recorded (or was not, after a
// failed transaction: they are scanned again).
func (rt *Runtime) unclaim(items []*delivery) {
	rt.dispMu.Lock()
	for _, d := range items {
		rt.finished = append(rt.finished, string(d.key))
	}
	rt.dispMu.Unlock()
}

// record writes outcomes, and in-flight marks, in one engine transaction.
func (rt *Runtime) record(ctx context.Context, marks, outcomes []*delivery) error {
	return rt.cfg.Engine.Do(ctx, func(tx *profile.Tx) error {
		t := rt.begin(ctx, tx)
		for _, d := range marks {
			if rt.erasedJobs[string(d.key)] {
				d.drop = true // not attempted; the outcome forgets it
				continue
			}
			h := *d.h
			h.flags |= jobInFlight
			tx.Set(d.key, h.encode())
		}
		for _, d := range outcomes {
			rt.outcome(t, d)
		}
		if len(marks) > 0 {
			tx.Durable() // on disk before the provider is called
		} else {
			tx.Urgent()
		}
		return t.finish()
	})
}

// outcome records what became of a job.
func (rt *Runtime) outcome(t *txn, d *delivery) {
	tx := t.tx
	if rt.erasedJobs[string(d.key)] {
		delete(rt.erasedJobs, string(d.key)) // its person was erased meanwhile
		return
	}
	if d.leave {
		return
	}
	tx.Delete(d.key)
	if d.drop {
		return
	}
	st := t.stat(&Journey{ID: d.h.journey, Version: d.h.version})
	if d.suppressed {
		rt.bump(st, func(s *vstats) { s.step(d.h.step).Suppressed++ })
		return
	}
	attempts := d.h.attempts
	if d.attempted {
		attempts++
	}
	var retryAt int64
	if d.err != nil && !channel.IsPermanent(d.err) {
		retryAt = t.now + nanos(rt.backoff(attempts, channel.RetryAfter(d.err)))
	}
	switch {
	case d.deferTo > 0:
		h := *d.h
		rt.setJob(tx, jobKey(d.deferTo, d.id), &h)
	case d.inDoubt:
		rt.deadLetter(tx, t.now, d, "in doubt: nudge stopped while this message was being sent to a provider that does not drop repeats; not repeated (at most once)")
		rt.bump(st, func(s *vstats) { s.step(d.h.step).InDoubt++ })
	case d.err == nil:
		rt.bump(st, func(s *vstats) {
			s.step(d.h.step).Sent++
			if d.m != nil && d.m.Variant != "" {
				s.variant(d.m.Variant).Sent++
			}
		})
	case retryAt != 0 && attempts < rt.cfg.MaxAttempts && retryAt < d.h.created+nanos(rt.cfg.MaxAge):
		h := *d.h
		h.attempts = attempts
		h.flags &^= jobInFlight // the provider answered: not in doubt
		rt.setJob(tx, jobKey(retryAt, d.id), &h)
		rt.bump(st, func(s *vstats) { s.step(d.h.step).Retried++ })
	default:
		rt.logger.Warn("journey send failed; dead-lettered", "journey", d.h.journey, "version", d.h.version, "step", d.h.step,
			"channel", d.h.channel, "attempts", attempts, "err", d.err)
		h := *d.h
		h.attempts = attempts
		d.h = &h
		rt.deadLetter(tx, t.now, d, d.err.Error())
		rt.bump(st, func(s *vstats) {
			s.step(d.h.step).Failed++
			if d.m != nil && d.m.Variant != "" {
				s.variant(d.m.Variant).Failed++
			}
		})
	}
}

// setJob writes a job at key k.
func (rt *Runtime) setJob(tx *profile.Tx, k []byte, h *jobHeader) {
	tx.Set(k, h.encode())
	// The batch's commit lowers the floor to it (Committed).
	gen := tx.Gen()
	if n := len(rt.jobPending); n == 0 || rt.jobPending[n-1].gen != gen {
		rt.jobPending = append(rt.jobPending, pendingJob{gen, k})
	} else if p := &rt.jobPending[n-1]; bytes.Compare(k, p.key) < 0 {
		p.key = k
	}
}

// backoff is the wait before attempt n+1: RetryMin doubled per attempt, at
// most RetryMax, less a random part of up to a half (jitter, so that the
// jobs a failure stopped together do not retry together), and at least
// what the channel asked for.
func (rt *Runtime) backoff(n int, asked time.Duration) time.Duration {
	d := rt.cfg.RetryMin
	for i := 1; i < n && d < rt.cfg.RetryMax; i++ {
		d *= 2
	}
	d = min(d, rt.cfg.RetryMax)
	d -= time.Duration(rand.Int64N(int64(d)/2 + 1))
	return max(d, asked)
}

// Deliver sends the jobs due at the clock's now (one round: at most Batch
// of them) and records their outcomes before it returns; it returns how
// many it handled. Tests and simulations driving a fake clock call it; Run
// delivers continuously instead. Rounds never overlap.
func (rt *Runtime) Deliver(ctx context.Context) (int, error) {
	rt.deliverMu.Lock()
	defer rt.deliverMu.Unlock()
	items, _, _, err := rt.scanJobs(ctx, unixNanos(rt.cfg.Clock.Now()))
	if err != nil || len(items) == 0 {
		return 0, err
	}
	defer rt.unclaim(items)
	var send, marks []*delivery
	now := unixNanos(rt.cfg.Clock.Now())
	for _, d := range items {
		if rt.route(d, now) && rt.recheck(ctx, d) {
			send = append(send, d)
			if d.needsMark() {
				marks = append(marks, d)
			}
		}
	}
	if len(marks) > 0 {
		if err := rt.record(ctx, marks, nil); err != nil {
			return 0, err
		}
	}
	sem := make(chan struct{}, rt.cfg.SendWorkers)
	var wg sync.WaitGroup
	for _, d := range send {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if !d.drop {
				rt.attempt(ctx, d)
			}
		}()
	}
	wg.Wait()
	return len(items), rt.record(context.WithoutCancel(ctx), nil, items)
}

// sendLoop delivers jobs as they are written and fall due, until ctx is
// done: the scanner, the lanes' workers and the recorder.
func (rt *Runtime) sendLoop(ctx context.Context) error {
	recs := make(chan *delivery, 4096)
	var workers sync.WaitGroup
	for _, l := range rt.lanes {
		l.queue = make(chan *delivery, 4*l.cfg.Workers)
		for range l.cfg.Workers {
			workers.Go(func() {
				for d := range l.queue {
					rt.work(ctx, d, recs)
				}
			})
		}
	}
	recorded := make(chan error, 1)
	go func() { recorded <- rt.recorder(ctx, recs) }()
	err := rt.scanLoop(ctx, recs)
	for _, l := range rt.lanes {
		close(l.queue)
	}
	workers.Wait()
	close(recs)
	return errors.Join(err, <-recorded)
}

// work runs one job on a lane's worker: the in-flight mark when its
// channel needs one, the attempt, and the outcome to the recorder.
func (rt *Runtime) work(ctx context.Context, d *delivery, recs chan<- *delivery) {
	if ctx.Err() != nil {
		rt.unclaim([]*delivery{d}) // not attempted: scanned again after a restart
		return
	}
	if !rt.recheck(ctx, d) {
		recs <- d
		return
	}
	if d.needsMark() {
		d.marked = make(chan error, 1)
		recs <- d
		if err := <-d.marked; err != nil {
			rt.unclaim([]*delivery{d})
			return
		}
		d.marked = nil
		if d.drop {
			recs <- d
			return
		}
	}
	rt.attempt(ctx, d)
	if d.attempted && ctx.Err() != nil && errors.Is(d.err, context.Canceled) {
		// Stopped mid-send: left as it is, like a crash.
		rt.unclaim([]*delivery{d})
		return
	}
	recs <- d
}

// recorder writes what the workers and the scanner send it, as many per
// transaction as are waiting, until recs is closed.
func (rt *Runtime) recorder(ctx context.Context, recs <-chan *delivery) error {
	ctx = context.WithoutCancel(ctx) // outcomes of sends made are kept
	var failed error
	for d := range recs {
		batch := []*delivery{d}
	drain:
		for len(batch) < rt.cfg.Batch {
			select {
			case d, ok := <-recs:
				if !ok {
					break drain
				}
				batch = append(batch, d)
			default:
				break drain
			}
		}
		var marks, outcomes []*delivery
		for _, d := range batch {
			if d.marked != nil {
				marks = append(marks, d)
			} else {
				outcomes = append(outcomes, d)
			}
		}
		err := failed
		if err == nil {
			err = rt.record(ctx, marks, outcomes)
		}
		if err != nil && failed == nil {
			rt.logger.Error("journey send outcomes could not be recorded", "err", err)
			failed = err
		}
		for _, d := range marks {
			d.marked <- err
		}
		rt.unclaim(outcomes)
		kick(rt.sendKick)
	}
	return failed
}

// scanLoop hands due jobs to their lanes until ctx is done.
func (rt *Runtime) scanLoop(ctx context.Context, recs chan<- *delivery) error {
	for {
		now := unixNanos(rt.cfg.Clock.Now())
		items, next, more, err := rt.scanJobs(ctx, now)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		var full []*delivery // lanes with no room: scanned again later
		for _, d := range items {
			if !rt.route(d, now) {
				recs <- d
				continue
			}
			select {
			case d.lane.queue <- d:
			default:
				full = append(full, d)
			}
		}
		rt.unclaim(full)
		if more && len(full) < len(items) {
			continue
		}
		var wake <-chan time.Time
		if next != 0 {
			wake = rt.cfg.Clock.After(time.Duration(next - unixNanos(rt.cfg.Clock.Now())))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-rt.sendKick:
		case <-wake:
		}
	}
}
