package journey

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/nudge-dev/nudge"
	"github.com/nudge-dev/nudge/bus"
	"github.com/nudge-dev/nudge/channel"
	"github.com/nudge-dev/nudge/profile"
	"github.com/nudge-dev/nudge/profile/pebblestore"
	"github.com/nudge-dev/nudge/shred"
)

// A Sandbox runs journeys the way nudge serve does, in a real profile
// engine over a Pebble store and a keyring in a directory of its own, but
// on a VirtualClock and with Recorder channels that send nothing: events
// are applied by hand (as log messages), and time moves only when told.
// nudge test and nudge simulate run journeys in one, and so do the
// package's tests.
//
// A Sandbox is not safe for concurrent use, but its Recorders and its
// Clock are.
type Sandbox struct {
	// Dir holds the keyring and the store.
	Dir   string
	Keys  *shred.Keyring
	Store *pebblestore.Store
	// Engine and Runtime are replaced by Open (a restart).
	Engine  *profile.Engine
	Runtime *Runtime
	Clock   *VirtualClock
	// Channels are the recording channels, by name.
	Channels map[string]*Recorder
	// Journeys are what Open gives the runtime.
	Journeys []*Journey
	// Config is the runtime's configuration for Open; its Engine, Store,
	// Keys and Clock are set by Open.
	Config     Config
	Partitions int
	// Log is every message applied, in order (Crash replays it).
	Log []bus.Message
}

// SandboxConfig configures NewSandbox.
type SandboxConfig struct {
	// Dir is the sandbox's directory (required; the caller removes it).
	Dir string
	// Start is the virtual clock's first time.
	Start    time.Time
	Journeys []*Journey
	// Channels names the recording channels (default: DefaultChannels).
	Channels []string
	// Partitions of the profile engine (default 8).
	Partitions int
	// Runtime is the runtime's configuration (Engine, Store, Keys and Clock
	// are the sandbox's).
	Runtime Config
}

// NewSandbox opens a sandbox: a keyring and a store in cfg.Dir, an engine
// and a runtime over them.
func NewSandbox(cfg SandboxConfig) (*Sandbox, error) {
	if cfg.Dir == "" {
		return nil, errors.New("journey: a sandbox needs a directory")
	}
	s := &Sandbox{
		Dir: cfg.Dir, Clock: NewVirtualClock(cfg.Start), Channels: map[string]*Recorder{},
		Journeys: cfg.Journeys, Config: cfg.Runtime, Partitions: cmp.Or(cfg.Partitions, 8),
	}
	names := cfg.Channels
	if names == nil {
		names = DefaultChannels
	}
	for _, n := range names {
		s.Channels[n] = &Recorder{ChannelName: n}
	}
	// A fixed secret: the same ids get the same profile ids in every
	// sandbox, and so the same split variants.
	keys := filepath.Join(s.Dir, "keys")
	if _, err := os.Stat(keys); errors.Is(err, fs.ErrNotExist) {
		if err := shred.CreateWithSecret(keys, [32]byte{'n', 'u', 'd', 'g', 'e'}); err != nil {
			return nil, err
		}
	}
	var err error
	if s.Keys, err = shred.Open(keys); err != nil {
		return nil, err
	}
	if err := s.Open(); err != nil {
		s.Keys.Close()
		return nil, err
	}
	return s, nil
}

// Open opens the store, an engine and a runtime over it, as a restart
// does. The store must be closed (Crash closes it).
func (s *Sandbox) Open() error {
	var err error
	if s.Store, err = pebblestore.Open(filepath.Join(s.Dir, "profiles"), pebblestore.Options{}); err != nil {
		return err
	}
	s.Engine = profile.NewEngine(profile.Config{Partitions: s.Partitions}, s.Store, s.Keys, sandboxLog{s}, slog.New(slog.DiscardHandler))
	cfg := s.Config
	cfg.Engine, cfg.Store, cfg.Keys, cfg.Clock = s.Engine, s.Store, s.Keys, s.Clock
	names := slices.Sorted(maps.Keys(s.Channels))
	chans := make([]channel.Channel, 0, len(names))
	for _, n := range names {
		chans = append(chans, s.Channels[n])
	}
	if s.Runtime, err = NewRuntime(cfg, s.Journeys, chans); err != nil {
		s.Store.Close()
		return err
	}
	s.Engine.SetReactor(s.Runtime)
	return nil
}

// Crash loses what the engine did not commit, reopens the store and
// replays the whole log (the engine skips what it committed).
func (s *Sandbox) Crash() error {
	s.Store.Close()
	if err := s.Open(); err != nil {
		return err
	}
	for _, m := range s.Log {
		if err := s.Engine.Apply(context.Background(), m); err != nil {
			return err
		}
	}
	return nil
}

// Close closes the store and the keyring.
func (s *Sandbox) Close() error {
	return errors.Join(s.Store.Close(), s.Keys.Close())
}

// Send seals the events as ingest does and applies them as log messages,
// one per partition. Events of an erased person are dropped.
func (s *Sandbox) Send(events ...nudge.Event) error {
	parts := make([]int, 0, len(events))
	sealed := make([]nudge.Event, 0, len(events))
	for _, e := range events {
		p := bus.PartitionOf(e.CustomerKey(), s.Partitions)
		if _, err := shred.SealEvent(s.Keys, &e); err != nil {
			if errors.Is(err, shred.ErrShredded) {
				continue
			}
			return err
		}
		parts = append(parts, p)
		sealed = append(sealed, e)
	}
	return s.Apply(parts, sealed)
}

// Apply applies events that are sealed already (parts: the partition of
// each), one log message per partition.
func (s *Sandbox) Apply(parts []int, events []nudge.Event) error {
	byPart := map[int][]nudge.Event{}
	for i, e := range events {
		byPart[parts[i]] = append(byPart[parts[i]], e)
	}
	for p := range s.Partitions {
		if len(byPart[p]) == 0 {
			continue
		}
		m := bus.Message{Partition: p, Seq: uint64(len(s.Log) + 1), Payload: nudge.EncodeEvents(nil, byPart[p])}
		s.Log = append(s.Log, m)
		if err := s.Engine.Apply(context.Background(), m); err != nil {
			return err
		}
	}
	return nil
}

// sandboxLog is the sandbox's messages as a bus.Log, for the engine to read
// events back (Tx.Event). Send and Apply append to it and apply each
// message themselves, so it is never read in order, subscribed or
// appended to.
type sandboxLog struct{ s *Sandbox }

var errSandboxLog = errors.New("journey sandbox: the log is written by Send and Apply, and only read back by sequence")

func (l sandboxLog) Partitions() int                           { return l.s.Partitions }
func (l sandboxLog) Append(context.Context, []bus.Batch) error { return errSandboxLog }
func (l sandboxLog) Sync(context.Context) error                { return nil }
func (l sandboxLog) Close() error                              { return nil }
func (l sandboxLog) LastProducerPos(context.Context, int) (uint64, error) {
	return 0, nil
}
func (l sandboxLog) LastSeq(context.Context) (uint64, error) { return uint64(len(l.s.Log)), nil }

func (l sandboxLog) Get(_ context.Context, seq uint64) (bus.Message, error) {
	if seq == 0 || seq > uint64(len(l.s.Log)) {
		return bus.Message{}, fmt.Errorf("sandbox log, message %d: %w", seq, bus.ErrNotFound)
	}
	return l.s.Log[seq-1], nil
}

func (l sandboxLog) Read(context.Context, bus.ReadOptions, bus.Handler) error { return errSandboxLog }
func (l sandboxLog) Subscribe(context.Context, string, []int, bus.Handler) error {
	return errSandboxLog
}

// Flush commits what the engine applied.
func (s *Sandbox) Flush() error { return s.Engine.Flush(context.Background()) }

// Settle fires the timers due at the clock's now and delivers the send
// jobs due, until nothing more is due.
func (s *Sandbox) Settle() error {
	_, err := s.settle()
	return err
}

// settle returns the due time of the next timer (0: none).
func (s *Sandbox) settle() (next int64, err error) {
	ctx := context.Background()
	for range 10_000 {
		tn, f, err := s.Runtime.fireDue(ctx)
		if err != nil {
			return 0, err
		}
		n, err := s.Runtime.Deliver(ctx)
		if err != nil {
			return 0, err
		}
		if f == 0 && n == 0 {
			// A send retried later waits for the next timer or RunUntil's
			// end: recorders fail only when told to.
			return tn, nil
		}
	}
	return 0, errors.New("journey: the runtime does not settle")
}

// Advance moves the clock by d and settles.
func (s *Sandbox) Advance(d time.Duration) error {
	s.Clock.Advance(d)
	return s.Settle()
}

// RunUntil moves the clock to t, stopping at every timer due on the way and settling there, so that each fires at its due time.
// A t before the clock's now only settles.
func (s *Sandbox) RunUntil(t time.Time) error {
	for {
		next, err := s.settle()
		if err != nil {
			return err
		}
		now := s.Clock.Now()
		if !t.After(now) {
			return nil
		}
		to := t
		if next != 0 {
			if n := fromNanos(next); n.Before(to) {
				to = n
			}
		}
		if !to.After(now) {
			to = now.Add(time.Nanosecond) // due now yet not fired: move on
		}
		s.Clock.Advance(to.Sub(now))
	}
}

// Sent takes the messages every channel was sent since the last call, in
// the order of their CreatedAt (then channel and step).
func (s *Sandbox) Sent() []*channel.Message {
	var out []*channel.Message
	for _, r := range s.Channels {
		out = append(out, r.Take()...)
	}
	slices.SortStableFunc(out, func(a, b *channel.Message) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		if a.Channel != b.Channel {
			if a.Channel < b.Channel {
				return -1
			}
			return 1
		}
		if a.Step < b.Step {
			return -1
		}
		if a.Step > b.Step {
			return 1
		}
		return 0
	})
	return out
}

// VirtualClock is a TimeSource that moves only when told.
type VirtualClock struct {
	mu    sync.Mutex
	now   time.Time
	waits []virtualWait
	added chan struct{} // a signal per After
}

type virtualWait struct {
	at time.Time
	ch chan time.Time
}

// NewVirtualClock returns a clock showing t.
func NewVirtualClock(t time.Time) *VirtualClock {
	return &VirtualClock{now: t, added: make(chan struct{}, 1)}
}

// Now returns the clock's time.
func (c *VirtualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// After returns a channel that receives once the clock has moved d on.
func (c *VirtualClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waits = append(c.waits, virtualWait{c.now.Add(d), ch})
	select {
	case c.added <- struct{}{}:
	default:
	}
	return ch
}

// AwaitWait blocks until someone waits on the clock (After) for at least
// until, and reports whether that happened before the real-time bound
// (a failure bound for tests, not a synchronisation).
func (c *VirtualClock) AwaitWait(until time.Time, bound time.Duration) bool {
	fail := time.After(bound)
	for {
		c.mu.Lock()
		ok := slices.ContainsFunc(c.waits, func(w virtualWait) bool { return !w.at.Before(until) })
		c.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-c.added:
		case <-fail:
			return false
		}
	}
}

// Advance moves the clock by d and fires the waits it passes.
func (c *VirtualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.waits = slices.DeleteFunc(c.waits, func(w virtualWait) bool {
		if w.at.After(c.now) {
			return false
		}
		w.ch <- c.now
		return true
	})
}

// Recorder is a channel that keeps what it is sent.
type Recorder struct {
	ChannelName string
	// Fail, when set, decides the outcome of each attempt (attempt counts
	// from 1 across messages).
	Fail func(m *channel.Message, attempt int) error
	// Sent, when set, receives each delivery.
	Sent chan *channel.Message
	// DropsRepeats says the recorder stands for a provider that drops a
	// repeated message (channel.Idempotent).
	DropsRepeats bool

	mu   sync.Mutex
	msgs []*channel.Message
	n    int
}

var _ channel.Channel = (*Recorder)(nil)

// Name implements channel.Channel.
func (r *Recorder) Name() string { return r.ChannelName }

// Idempotent implements channel.Idempotent.
func (r *Recorder) Idempotent() bool { return r.DropsRepeats }

// Send implements channel.Channel: it keeps m.
func (r *Recorder) Send(_ context.Context, m *channel.Message) error {
	r.mu.Lock()
	r.n++
	n := r.n
	f := r.Fail
	r.mu.Unlock()
	if f != nil {
		if err := f(m, n); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
	if r.Sent != nil {
		r.Sent <- m
	}
	return nil
}

// Take returns the messages kept since the last Take and forgets them.
func (r *Recorder) Take() []*channel.Message {
	return r.TakeIf(func(*channel.Message) bool { return true })
}

// TakeIf returns the kept messages for which keep is true and forgets
// them; the others stay.
func (r *Recorder) TakeIf(take func(*channel.Message) bool) []*channel.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out, rest []*channel.Message
	for _, m := range r.msgs {
		if take(m) {
			out = append(out, m)
		} else {
			rest = append(rest, m)
		}
	}
	r.msgs = rest
	return out
}

// String names the recorder, for errors.
func (r *Recorder) String() string { return fmt.Sprintf("recorder %s", r.ChannelName) }
