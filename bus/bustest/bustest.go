// Package bustest is the conformance suite every bus.Log implementation
// passes:
//
//	func TestMyLog(t *testing.T) {
//		bustest.Run(t, func(t *testing.T, partitions int) bus.Log {
//			l := openFreshLog(t, partitions)
//			t.Cleanup(func() { l.Close() })
//			return l
//		})
//	}
//
// The suite waits on channels, bounded by context timeouts, never on sleeps.
package bustest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nudge-dev/nudge/bus"
)

// Timeout bounds each step of the suite that waits for the log.
var Timeout = 30 * time.Second

// Run runs the suite. open makes a fresh, empty log with the given number of
// partitions for each subtest and registers its cleanup with t.Cleanup.
func Run(t *testing.T, open func(t *testing.T, partitions int) bus.Log) {
	s := suite{open: open}
	t.Run("AppendReadAll", s.appendReadAll)
	t.Run("AppendInvalid", s.appendInvalid)
	t.Run("ReadFromSeq", s.readFromSeq)
	t.Run("Get", s.get)
	t.Run("ReadFromTime", s.readFromTime)
	t.Run("ReadPartitions", s.readPartitions)
	t.Run("ReadEmpty", s.readEmpty)
	t.Run("ReadHandlerError", s.readHandlerError)
	t.Run("ReadFollow", s.readFollow)
	t.Run("ReadFollowEmpty", s.readFollowEmpty)
	t.Run("Dedup", s.dedup)
	t.Run("LastProducerPos", s.lastProducerPos)
	t.Run("SubscribeResume", s.subscribeResume)
	t.Run("SubscribeRetry", s.subscribeRetry)
	t.Run("SubscribeGroups", s.subscribeGroups)
	t.Run("SubscribePartitions", s.subscribePartitions)
	t.Run("ConcurrentAppend", s.concurrentAppend)
	t.Run("HandlerNotConcurrent", s.handlerNotConcurrent)
	t.Run("Sync", s.sync)
}

type suite struct {
	open func(t *testing.T, partitions int) bus.Log
}

// Payload is the suite's deterministic payload for a batch; size varies with
// pos (0 bytes up to about 40 KB).
func Payload(partition int, pos uint64) []byte {
	sizes := []int{0, 1, 100, 2000, 40000, 500}
	n := sizes[pos%uint64(len(sizes))]
	head := fmt.Sprintf("p%d/%d;", partition, pos)
	if n == 0 {
		return nil
	}
	b := make([]byte, 0, len(head)+n)
	b = append(b, head...)
	for i := 0; len(b) < len(head)+n; i++ {
		b = append(b, byte('a'+(i+partition+int(pos))%26))
	}
	return b
}

// batches makes the batches for positions from..to (inclusive) of each
// partition, interleaved across partitions.
func batches(partitions []int, from, to uint64) []bus.Batch {
	var out []bus.Batch
	for pos := from; pos <= to; pos++ {
		for _, p := range partitions {
			out = append(out, bus.Batch{Partition: p, ProducerPos: pos, Payload: Payload(p, pos)})
		}
	}
	return out
}

func seqParts(n int) []int {
	ps := make([]int, n)
	for i := range ps {
		ps[i] = i
	}
	return ps
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), Timeout)
	t.Cleanup(cancel)
	return ctx
}

func mustAppend(t *testing.T, ctx context.Context, l bus.Log, bs []bus.Batch) {
	t.Helper()
	if err := l.Append(ctx, bs); err != nil {
		t.Fatalf("Append(%d batches): %v", len(bs), err)
	}
}

func clone(m bus.Message) bus.Message {
	m.Payload = bytes.Clone(m.Payload)
	return m
}

// readAll reads without Follow and returns copies of the messages.
func readAll(t *testing.T, ctx context.Context, l bus.Log, opts bus.ReadOptions) []bus.Message {
	t.Helper()
	var out []bus.Message
	err := l.Read(ctx, opts, func(_ context.Context, m bus.Message) error {
		out = append(out, clone(m))
		return nil
	})
	if err != nil {
		t.Fatalf("Read(%+v): %v", opts, err)
	}
	return out
}

type key struct {
	P   int
	Pos uint64
}

// checkMessages checks that msgs are in log order (Seq increasing), hold
// exactly positions from..to of each partition in parts, in order within each
// partition, with the suite's payloads.
func checkMessages(t *testing.T, msgs []bus.Message, parts []int, from, to uint64) {
	t.Helper()
	want := map[int]uint64{}
	for _, p := range parts {
		want[p] = from
	}
	var lastSeq uint64
	for i, m := range msgs {
		if i > 0 && m.Seq <= lastSeq {
			t.Fatalf("message %d: Seq %d after %d: not in log order", i, m.Seq, lastSeq)
		}
		lastSeq = m.Seq
		next, ok := want[m.Partition]
		if !ok {
			t.Fatalf("message %d: partition %d not requested (want %v)", i, m.Partition, parts)
		}
		if m.ProducerPos != next {
			t.Fatalf("message %d: partition %d ProducerPos %d, want %d", i, m.Partition, m.ProducerPos, next)
		}
		if !bytes.Equal(m.Payload, Payload(m.Partition, m.ProducerPos)) {
			t.Fatalf("message %d: partition %d pos %d: payload of %d bytes differs from the %d appended",
				i, m.Partition, m.ProducerPos, len(m.Payload), len(Payload(m.Partition, m.ProducerPos)))
		}
		if m.Time.IsZero() {
			t.Fatalf("message %d: zero Time", i)
		}
		want[m.Partition] = next + 1
	}
	for _, p := range parts {
		if want[p] != to+1 {
			t.Fatalf("partition %d: read positions %d..%d, want %d..%d (%d messages in all)", p, from, want[p]-1, from, to, len(msgs))
		}
	}
}

func (s suite) appendReadAll(t *testing.T) {
	ctx := ctxFor(t)
	l := s.open(t, 4)
	if n := l.Partitions(); n != 4 {
		t.Fatalf("Partitions() = %d, want 4", n)
	}
	parts := seqParts(4)
	start := time.Now()
	mustAppend(t, ctx, l, batches(parts, 1, 3))
	mustAppend(t, ctx, l, batches(parts, 4, 4))
	mustAppend(t, ctx, l, batches(parts, 5, 12))
	if err := l.Append(ctx, nil); err != nil {
		t.Fatalf("Append(nil): %v", err)
	}
	msgs := readAll(t, ctx, l, bus.ReadOptions{})
	checkMessages(t, msgs, parts, 1, 12)
	for _, m := range msgs {
		if m.Time.Before(start.Add(-time.Minute)) || m.Time.After(time.Now().Add(time.Minute)) {
			t.Fatalf("message Seq %d: Time %v, appended around %v", m.Seq, m.Time, start)
		}
	}
	// Reading again gives the same.
	again := readAll(t, ctx, l, bus.ReadOptions{})
	if len(again) != len(msgs) || again[0].Seq != msgs[0].Seq || again[len(again)-1].Seq != msgs[len(msgs)-1].Seq {
		t.Fatalf("second Read: %d messages, first read %d", len(again), len(msgs))
	}
}

func (s suite) appendInvalid(t *testing.T) {
	ctx := ctxFor(t)
	l := s.open(t, 2)
	for _, p := range []int{-1, 2} {
		bs := []bus.Batch{{Partition: 0, ProducerPos: 1, Payload: []byte("ok")}, {Partition: p, ProducerPos: 1, Payload: []byte("bad")}}
		if err := l.Append(ctx, bs); err == nil {
			t.Fatalf("Append to partition %d of 2: no error", p)
		}
	}
	if msgs := readAll(t, ctx, l, bus.ReadOptions{}); len(msgs) != 0 {
		t.Fatalf("a rejected Append stored %d messages", len(msgs))
	}
	if _, err := l.LastProducerPos(ctx, 2); err == nil {
		t.Fatal("LastProducerPos(2) of 2 partitions: no error")
	}
	if err := l.Read(ctx, bus.ReadOptions{Partitions: []int{5}}, func(context.Context, bus.Message) error { return nil }); err == nil {
		t.Fatal("Read of partition 5 of 2: no error")
	}
	if err := l.Subscribe(ctx, "g", []int{-1}, func(context.Context, bus.Message) error { return nil }); err == nil {
		t.Fatal("Subscribe to partition -1: no error")
	}
}

func (s suite) readFromSeq(t *testing.T) {
	ctx := ctxFor(t)
	l := s.open(t, 2)
	parts := seqParts(2)
	mustAppend(t, ctx, l, batches(parts, 1, 10))
	all := readAll(t, ctx, l, bus.ReadOptions{})
	checkMessages(t, all, parts, 1, 10)

	for _, i := range []int{0, 1, 7, len(all) - 1} {
		got := readAll(t, ctx, l, bus.ReadOptions{FromSeq: all[i].Seq})
		if !sameSeqs(got, all[i:]) {
			t.Fatalf("FromSeq %d: got seqs %v, want %v", all[i].Seq, seqs(got), seqs(all[i:]))
		}
	}
	// FromSeq wins over FromTime.
	got := readAll(t, ctx, l, bus.ReadOptions{FromSeq: all[5].Seq, FromTime: time.Now().Add(time.Hour)})
	if !sameSeqs(got, all[5:]) {
		t.Fatalf("FromSeq with FromTime: got seqs %v, want %v", seqs(got), seqs(all[5:]))
	}
	// Past the end: nothing.
	if got := readAll(t, ctx, l, bus.ReadOptions{FromSeq: all[len(all)-1].Seq + 1}); len(got) != 0 {
		t.Fatalf("FromSeq past the end: %d messages", len(got))
	}
	// FromSeq with a partition filter.
	got = readAll(t, ctx, l, bus.ReadOptions{FromSeq: all[6].Seq, Partitions: []int{1}})
	var want []bus.Message
	for _, m := range all[6:] {
		if m.Partition == 1 {
			want = append(want, m)
		}
	}
	if !sameSeqs(got, want) {
		t.Fatalf("FromSeq, partition 1: got seqs %v, want %v", seqs(got), seqs(want))
	}
}

func (s suite) get(t *testing.T) {
	ctx := ctxFor(t)
	l := s.open(t, 3)
	parts := seqParts(3)
	mustAppend(t, ctx, l, batches(parts, 1, 4))
	all := readAll(t, ctx, l, bus.ReadOptions{})
	for _, want := range all {
		got, err := l.Get(ctx, want.Seq)
		if err != nil {
			t.Fatalf("Get(%d): %v", want.Seq, err)
		}
		if got.Seq != want.Seq || got.Partition != want.Partition || got.ProducerPos != want.ProducerPos || !bytes.Equal(got.Payload, want.Payload) {
			t.Fatalf("Get(%d) = seq %d partition %d pos %d, want partition %d pos %d", want.Seq, got.Seq, got.Partition, got.ProducerPos, want.Partition, want.ProducerPos)
		}
	}
	if _, err := l.Get(ctx, all[len(all)-1].Seq+1); !errors.Is(err, bus.ErrNotFound) {
		t.Fatalf("Get past the end: %v, want ErrNotFound", err)
	}
}

func (s suite) readFromTime(t *testing.T) {
	ctx := ctxFor(t)
	l := s.open(t, 2)
	parts := seqParts(2)
	mustAppend(t, ctx, l, batches(parts, 1, 5))
	mustAppend(t, ctx, l, batches(parts, 6, 10))
	all := readAll(t, ctx, l, bus.ReadOptions{})
	checkMessages(t, all, parts, 1, 10)

	for _, i := range []int{0, 3, 10, len(all) - 1} {
		from := all[i].Time
		first := slices.IndexFunc(all, func(m bus.Message) bool { return !m.Time.Before(from) })
		got := readAll(t, ctx, l, bus.ReadOptions{FromTime: from})
		if !sameSeqs(got, all[first:]) {
			t.Fatalf("FromTime %v: got seqs %v, want %v", from, seqs(got), seqs(all[first:]))
		}
	}
	if got := readAll(t, ctx, l, bus.ReadOptions{FromTime: time.Now().Add(time.Hour)}); len(got) != 0 {
		t.Fatalf("FromTime in the future: %d messages", len(got))
	}
	if got := readAll(t, ctx, l, bus.ReadOptions{FromTime: all[0].Time.Add(-time.Hour)}); !sameSeqs(got, all) {
		t.Fatalf("FromTime before the log: got %d messages, want %d", len(got), len(all))
	}
}

func (s suite) readPartitions(t *testing.T) {
	ctx := ctxFor(t)
	l := s.open(t, 5)
	// Partition 4 stays empty; the log's last message is partition 0's.
	mustAppend(t, ctx, l, batches([]int{0, 1, 2, 3}, 1, 6))
	mustAppend(t, ctx, l, []bus.Batch{{Partition: 0, ProducerPos: 7, Payload: Payload(0, 7)}})

	got := readAll(t, ctx, l, bus.ReadOptions{Partitions: []int{1, 3}})
	checkMessages(t, got, []int{1, 3}, 1, 6)
	got = readAll(t, ctx, l, bus.ReadOptions{Partitions: []int{3, 1, 3}})
	checkMessages(t, got, []int{1, 3}, 1, 6)
	got = readAll(t, ctx, l, bus.ReadOptions{Partitions: []int{2}})
	checkMessages(t, got, []int{2}, 1, 6)
	got = readAll(t, ctx, l, bus.ReadOptions{Partitions: []int{0}})
	checkMessages(t, got, []int{0}, 1, 7)
	if got := readAll(t, ctx, l, bus.ReadOptions{Partitions: []int{4}}); len(got) != 0 {
		t.Fatalf("empty partition 4: %d messages", len(got))
	}
	got = readAll(t, ctx, l, bus.ReadOptions{Partitions: []int{2, 4}})
	checkMessages(t, got, []int{2}, 1, 6)
	got = readAll(t, ctx, l, bus.ReadOptions{Partitions: []int{0, 1, 2, 3, 4}})
	if len(got) != 25 {
		t.Fatalf("all partitions listed: %d messages, want 25", len(got))
	}
}

func (s suite) readEmpty(t *testing.T) {
	ctx := ctxFor(t)
	l := s.open(t, 3)
	for _, opts := range []bus.ReadOptions{
		{},
		{Partitions: []int{1}},
		{Partitions: []int{0, 2}},
		{FromSeq: 5},
		{FromTime: time.Now().Add(-time.Hour)},
	} {
		calls := 0
		err := l.Read(ctx, opts, func(context.Context, bus.Message) error { calls++; return nil })
		if err != nil || calls != 0 {
			t.Fatalf("Read(%+v) of an empty log: err %v, %d handler calls", opts, err, calls)
		}
	}
	for p := range 3 {
		pos, err := l.LastProducerPos(ctx, p)
		if err != nil || pos != 0 {
			t.Fatalf("LastProducerPos(%d) of an empty log = %d, %v", p, pos, err)
		}
	}
}

func (s suite) readHandlerError(t *testing.T) {
	ctx := ctxFor(t)
	l := s.open(t, 2)
	mustAppend(t, ctx, l, batches(seqParts(2), 1, 5))
	boom := errors.New("boom")
	for _, follow := range []bool{false, true} {
		calls := 0
		err := l.Read(ctx, bus.ReadOptions{Follow: follow}, func(context.Context, bus.Message) error {
			calls++
			if calls == 3 {
				return boom
			}
			return nil
		})
		if !errors.Is(err, boom) || calls != 3 {
			t.Fatalf("Follow %v: Read = %v after %d calls, want the handler's error after 3", follow, err, calls)
		}
	}
}

// follower runs Read with Follow in the background and hands copies of the
// messages over a channel.
type follower struct {
	msgs   chan bus.Message
	done   chan error
	cancel context.CancelFunc
}

func follow(ctx context.Context, l bus.Log, opts bus.ReadOptions) *follower {
	ctx, cancel := context.WithCancel(ctx)
	f := &follower{msgs: make(chan bus.Message, 10000), done: make(chan error, 1), cancel: cancel}
	opts.Follow = true
	go func() {
		f.done <- l.Read(ctx, opts, func(ctx context.Context, m bus.Message) error {
			select {
			case f.msgs <- clone(m):
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	return f
}

func (f *follower) take(t *testing.T, ctx context.Context, n int) []bus.Message {
	t.Helper()
	var out []bus.Message
	for len(out) < n {
		select {
		case m := <-f.msgs:
			out = append(out, m)
		case err := <-f.done:
			t.Fatalf("Read with Follow returned %v after %d of %d messages", err, len(out), n)
		case <-ctx.Done():
			t.Fatalf("Read with Follow: %d of %d messages before %v", len(out), n, ctx.Err())
		}
	}
	return out
}

func (f *follower) stop(t *testing.T, ctx context.Context) {
	t.Helper()
	f.cancel()
	select {
	case err := <-f.done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Read with Follow returned %v after cancel, want context.Canceled", err)
		}
	case <-ctx.Done():
		t.Fatalf("Read with Follow did not return after cancel")
	}
}

func (s suite) readFollow(t *testing.T) {
	ctx := ctxFor(t)
	l := s.open(t, 2)
	parts := seqParts(2)
	mustAppend(t, ctx, l, batches(parts, 1, 3))
	f := follow(ctx, l, bus.ReadOptions{})
	got := f.take(t, ctx, 6)
	mustAppend(t, ctx, l, batches(parts, 4, 5))
	got = append(got, f.take(t, ctx, 4)...)
	mustAppend(t, ctx, l, batches(parts, 6, 9))
	got = append(got, f.take(t, ctx, 8)...)
	f.stop(t, ctx)
	checkMessages(t, got, parts, 1, 9)
	if len(f.msgs) != 0 {
		t.Fatalf("%d messages more than appended", len(f.msgs))
	}

	// Following one partition from a sequence.
	f = follow(ctx, l, bus.ReadOptions{Partitions: []int{1}, FromSeq: got[len(got)-1].Seq + 1})
	mustAppend(t, ctx, l, batches(parts, 10, 11))
	got = f.take(t, ctx, 2)
	f.stop(t, ctx)
	checkMessages(t, got, []int{1}, 10, 11)
}

func (s suite) readFollowEmpty(t *testing.T) {
	ctx := ctxFor(t)
	l := s.open(t, 3)
	f := follow(ctx, l, bus.ReadOptions{Partitions: []int{0, 2}})
	mustAppend(t, ctx, l, batches(seqParts(3), 1, 2))
	got := f.take(t, ctx, 4)
	f.stop(t, ctx)
	checkMessages(t, got, []int{0, 2}, 1, 2)
}

func (s suite) dedup(t *testing.T) {
	ctx := ctxFor(t)
	l := s.open(t, 2)
	first := []bus.Batch{
		{Partition: 0, ProducerPos: 1, Payload: Payload(0, 1)},
		{Partition: 0, ProducerPos: 2, Payload: Payload(0, 2)},
		{Partition: 1, ProducerPos: 1, Payload: Payload(1, 1)},
	}
	mustAppend(t, ctx, l, first)
	mustAppend(t, ctx, l, first) // a resend of a whole Append
	// A resend that overlaps new batches; the resent one's payload differs
	// and must not replace what is stored.
	mustAppend(t, ctx, l, []bus.Batch{
		{Partition: 0, ProducerPos: 2, Payload: []byte("resent with another payload")},
		{Partition: 0, ProducerPos: 3, Payload: Payload(0, 3)},
		{Partition: 1, ProducerPos: 2, Payload: Payload(1, 2)},
	})
	got := readAll(t, ctx, l, bus.ReadOptions{})
	if len(got) != 5 {
		t.Fatalf("%d messages stored, want 5 (resent batches stored twice?)", len(got))
	}
	checkMessages(t, filter(got, 0), []int{0}, 1, 3)
	checkMessages(t, filter(got, 1), []int{1}, 1, 2)
	// The same position in another partition is a different batch.
	mustAppend(t, ctx, l, []bus.Batch{{Partition: 1, ProducerPos: 3, Payload: Payload(1, 3)}, {Partition: 0, ProducerPos: 4, Payload: Payload(0, 4)}})
	if got := readAll(t, ctx, l, bus.ReadOptions{}); len(got) != 7 {
		t.Fatalf("%d messages stored, want 7", len(got))
	}
}

func (s suite) lastProducerPos(t *testing.T) {
	ctx := ctxFor(t)
	l := s.open(t, 3)
	mustAppend(t, ctx, l, batches([]int{0, 1}, 1, 5))
	mustAppend(t, ctx, l, batches([]int{1}, 6, 7))
	mustAppend(t, ctx, l, []bus.Batch{{Partition: 1, ProducerPos: 100, Payload: []byte("x")}})
	mustAppend(t, ctx, l, []bus.Batch{{Partition: 0, ProducerPos: 1 << 63, Payload: []byte("big")}})
	for p, want := range []uint64{1 << 63, 100, 0} {
		got, err := l.LastProducerPos(ctx, p)
		if err != nil || got != want {
			t.Fatalf("LastProducerPos(%d) = %d, %v; want %d", p, got, err, want)
		}
	}
}

// collector is a Subscribe handler that records what it is given and cancels
// the subscription once it has recorded `until` messages.
type collector struct {
	mu     sync.Mutex
	got    []bus.Message
	until  int
	cancel context.CancelFunc
	fail   func(m bus.Message) error // optional: fails a call before it is recorded
	calls  []bus.Message             // every call, failed or not
}

func (c *collector) handle(_ context.Context, m bus.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, clone(m))
	if c.fail != nil {
		if err := c.fail(m); err != nil {
			return err
		}
	}
	c.got = append(c.got, clone(m))
	if len(c.got) == c.until {
		c.cancel()
	}
	return nil
}

// subscribe runs Subscribe until the collector cancels it or the suite's
// timeout, and checks how it returned.
func subscribe(t *testing.T, parent context.Context, l bus.Log, group string, parts []int, c *collector) {
	t.Helper()
	subscribeWith(t, parent, l, group, parts, c, c.handle)
}

func subscribeWith(t *testing.T, parent context.Context, l bus.Log, group string, parts []int, c *collector, h bus.Handler) {
	t.Helper()
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	c.cancel = cancel
	err := l.Subscribe(ctx, group, parts, h)
	c.mu.Lock()
	n := len(c.got)
	c.mu.Unlock()
	if parent.Err() != nil {
		t.Fatalf("Subscribe(%s): got %d of %d messages before %v", group, n, c.until, parent.Err())
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Subscribe(%s) = %v after cancel, want context.Canceled", group, err)
	}
}

func filter(msgs []bus.Message, p int) []bus.Message {
	var out []bus.Message
	for _, m := range msgs {
		if m.Partition == p {
			out = append(out, m)
		}
	}
	return out
}

// checkPartitionOrder checks that msgs hold, for each partition, exactly
// positions from..to in order (msgs may interleave partitions in any way).
func checkPartitionOrder(t *testing.T, msgs []bus.Message, parts []int, from, to uint64) {
	t.Helper()
	for _, p := range parts {
		pm := filter(msgs, p)
		checkMessages(t, bySeq(pm), []int{p}, from, to)
	}
	if n := len(parts) * int(to-from+1); len(msgs) != n {
		t.Fatalf("%d messages, want %d", len(msgs), n)
	}
}

func bySeq(msgs []bus.Message) []bus.Message {
	return slices.SortedFunc(slices.Values(msgs), func(a, b bus.Message) int {
		switch {
		case a.Seq < b.Seq:
			return -1
		case a.Seq > b.Seq:
			return 1
		}
		return 0
	})
}

func (s suite) subscribeResume(t *testing.T) {
	ctx := ctxFor(t)
	l := s.open(t, 3)
	parts := seqParts(3)
	mustAppend(t, ctx, l, batches(parts, 1, 10))

	c1 := &collector{until: 12}
	subscribe(t, ctx, l, "resume", nil, c1)
	c2 := &collector{until: 30 - len(c1.got)}
	subscribe(t, ctx, l, "resume", nil, c2)
	// Handled exactly once, in order per partition, across the restart.
	for _, p := range parts {
		run := append(filter(c1.got, p), filter(c2.got, p)...)
		for i, m := range run {
			if m.ProducerPos != uint64(i+1) {
				t.Fatalf("partition %d: handled positions %v across the restart, want 1..10 once each", p, positions(run))
			}
			if !bytes.Equal(m.Payload, Payload(p, m.ProducerPos)) {
				t.Fatalf("partition %d pos %d: payload differs", p, m.ProducerPos)
			}
		}
		if len(run) != 10 {
			t.Fatalf("partition %d: handled positions %v across the restart, want 1..10", p, positions(run))
		}
	}

	// New messages reach a resumed group, and only they.
	mustAppend(t, ctx, l, batches(parts, 11, 12))
	c3 := &collector{until: 6}
	subscribe(t, ctx, l, "resume", nil, c3)
	checkPartitionOrder(t, c3.got, parts, 11, 12)
}

func positions(msgs []bus.Message) []uint64 {
	out := make([]uint64, len(msgs))
	for i, m := range msgs {
		out[i] = m.ProducerPos
	}
	return out
}

func (s suite) subscribeRetry(t *testing.T) {
	ctx := ctxFor(t)
	l := s.open(t, 2)
	parts := seqParts(2)
	mustAppend(t, ctx, l, batches(parts, 1, 5))
	failures := 0
	c := &collector{until: 10, fail: func(m bus.Message) error {
		if m.Partition == 0 && m.ProducerPos == 3 && failures < 3 {
			failures++
			return fmt.Errorf("transient failure %d", failures)
		}
		return nil
	}}
	subscribe(t, ctx, l, "retry", nil, c)
	checkPartitionOrder(t, c.got, parts, 1, 5)
	if got, want := positions(filter(c.calls, 0)), []uint64{1, 2, 3, 3, 3, 3, 4, 5}; !slices.Equal(got, want) {
		t.Fatalf("partition 0: handler called with positions %v, want %v", got, want)
	}
	if got, want := positions(filter(c.calls, 1)), []uint64{1, 2, 3, 4, 5}; !slices.Equal(got, want) {
		t.Fatalf("partition 1: handler called with positions %v, want %v", got, want)
	}
	// The failures did not leave anything to redeliver.
	mustAppend(t, ctx, l, batches(parts, 6, 6))
	c2 := &collector{until: 2}
	subscribe(t, ctx, l, "retry", nil, c2)
	checkPartitionOrder(t, c2.got, parts, 6, 6)
}

func (s suite) subscribeGroups(t *testing.T) {
	ctx := ctxFor(t)
	l := s.open(t, 3)
	parts := seqParts(3)
	mustAppend(t, ctx, l, batches(parts, 1, 5))
	ca, cb := &collector{until: 15}, &collector{until: 15}
	var wg sync.WaitGroup
	var errA, errB error
	run := func(group string, c *collector, errp *error) {
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		c.cancel = cancel
		*errp = l.Subscribe(sctx, group, nil, c.handle)
	}
	wg.Go(func() { run("group-a", ca, &errA) })
	wg.Go(func() { run("group-b", cb, &errB) })
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatalf("groups got %d and %d of 15 messages before %v", len(ca.got), len(cb.got), ctx.Err())
	}
	if !errors.Is(errA, context.Canceled) || !errors.Is(errB, context.Canceled) {
		t.Fatalf("Subscribe returned %v and %v, want context.Canceled", errA, errB)
	}
	checkPartitionOrder(t, ca.got, parts, 1, 5)
	checkPartitionOrder(t, cb.got, parts, 1, 5)
}

func (s suite) subscribePartitions(t *testing.T) {
	ctx := ctxFor(t)
	l := s.open(t, 4)
	mustAppend(t, ctx, l, batches(seqParts(4), 1, 4))
	// One group split over two "nodes": each takes some partitions.
	c1, c2 := &collector{until: 8}, &collector{until: 8}
	subscribe(t, ctx, l, "split", []int{0, 2}, c1)
	subscribe(t, ctx, l, "split", []int{3, 1}, c2)
	checkPartitionOrder(t, c1.got, []int{0, 2}, 1, 4)
	checkPartitionOrder(t, c2.got, []int{1, 3}, 1, 4)
	// Partitions moved between nodes resume where the group left them.
	mustAppend(t, ctx, l, batches(seqParts(4), 5, 5))
	c3 := &collector{until: 4}
	subscribe(t, ctx, l, "split", nil, c3)
	checkPartitionOrder(t, c3.got, seqParts(4), 5, 5)
}

func (s suite) concurrentAppend(t *testing.T) {
	ctx := ctxFor(t)
	const (
		partitions = 8
		writers    = 4
		calls      = 25
		perCall    = 2 // positions per partition per call
	)
	l := s.open(t, partitions)
	f := follow(ctx, l, bus.ReadOptions{})
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		// Writer w owns partitions w, w+writers, ...: one producer per
		// partition keeps ProducerPos increasing.
		var own []int
		for p := w; p < partitions; p += writers {
			own = append(own, p)
		}
		wg.Go(func() {
			for c := range calls {
				from := uint64(c*perCall + 1)
				if err := l.Append(ctx, batches(own, from, from+perCall-1)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent Append: %v", err)
	}
	const last = calls * perCall
	got := readAll(t, ctx, l, bus.ReadOptions{})
	checkMessages(t, got, seqParts(partitions), 1, last)
	followed := f.take(t, ctx, partitions*last)
	f.stop(t, ctx)
	checkMessages(t, followed, seqParts(partitions), 1, last)
	for p := range partitions {
		if pos, err := l.LastProducerPos(ctx, p); err != nil || pos != last {
			t.Fatalf("LastProducerPos(%d) = %d, %v; want %d", p, pos, err, last)
		}
	}
}

func (s suite) handlerNotConcurrent(t *testing.T) {
	ctx := ctxFor(t)
	const partitions = 8
	l := s.open(t, partitions)
	mustAppend(t, ctx, l, batches(seqParts(partitions), 1, 15))
	var inflight, overlaps atomic.Int32
	guard := func() {
		if inflight.Add(1) != 1 {
			overlaps.Add(1)
		}
		for range 20 {
			runtime.Gosched()
		}
		inflight.Add(-1)
	}
	n := 0
	err := l.Read(ctx, bus.ReadOptions{}, func(context.Context, bus.Message) error { guard(); n++; return nil })
	if err != nil || n != partitions*15 {
		t.Fatalf("Read: %v after %d messages", err, n)
	}
	// guard runs outside the collector's mutex, which would hide overlaps.
	c := &collector{until: partitions * 15}
	subscribeWith(t, ctx, l, "serial", nil, c, func(ctx context.Context, m bus.Message) error {
		guard()
		return c.handle(ctx, m)
	})
	if o := overlaps.Load(); o != 0 {
		t.Fatalf("handler called concurrently %d times", o)
	}
	checkPartitionOrder(t, c.got, seqParts(partitions), 1, 15)
}

func (s suite) sync(t *testing.T) {
	ctx := ctxFor(t)
	l := s.open(t, 2)
	if err := l.Sync(ctx); err != nil {
		t.Fatalf("Sync of an empty log: %v", err)
	}
	mustAppend(t, ctx, l, batches(seqParts(2), 1, 3))
	if err := l.Sync(ctx); err != nil {
		t.Fatalf("Sync: %v", err)
	}
}

func seqs(msgs []bus.Message) []uint64 {
	out := make([]uint64, len(msgs))
	for i, m := range msgs {
		out[i] = m.Seq
	}
	return out
}

func sameSeqs(a, b []bus.Message) bool {
	return slices.Equal(seqs(a), seqs(b))
}
