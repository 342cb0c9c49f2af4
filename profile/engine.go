// Package profile keeps one live profile per person: the identity graph
// that links a person's anonymous ids, user ids and emails, their state
// (traits, computed attributes, cart, consent; state.go) and their event
// history, all from the event log.
//
// The Engine is the log's profile consumer. It applies events in memory and
// commits, every second or so, one atomic store batch with the profiles it
// changed, where the log holds the events it read, and its log positions, so a crash
// neither counts an event twice nor drops one: what a lost batch held is
// read again from the log. Run commits in the background while it applies
// what follows (one commit at a time, in order).
package profile

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/nudge-dev/nudge"
	"github.com/nudge-dev/nudge/bus"
	"github.com/nudge-dev/nudge/shred"
)

// Config tunes the engine. The limits are documented in docs/http-api.md.
type Config struct {
	Partitions int
	// IdentityTraits are trait names whose values identify a person, besides
	// email (e.g. "phone").
	IdentityTraits []string
	// MaxIdentities bounds the identifiers of one profile (default 100).
	MaxIdentities int
	// MaxUserIDs bounds the user ids one profile may gather through
	// identify calls and shared identifiers (default 1): an anonymous id or
	// an email seen with a second user id is not merged. Alias calls link
	// user ids explicitly, up to MaxIdentities.
	MaxUserIDs int
	// CacheProfiles bounds the profiles held in memory (default 100,000),
	// and as many extension values (a reactor's state, see Tx.Get).
	CacheProfiles int
	// FlushEvents, FlushDirty (changed profiles) and FlushEvery bound what
	// is applied but not committed (defaults 100,000, 20,000 and 1 s): what
	// a crash makes the engine read again, and the profiles held in memory
	// until a commit. Fewer commits write a busy profile fewer times.
	FlushEvents int
	FlushDirty  int
	FlushEvery  time.Duration
	// Delay, when set, is told for each message applied from the log how
	// long after its last event was received (receivedAt) it was applied:
	// how far behind real time the profiles, and the journeys reacting to
	// them, are. Now is the clock receivedAt was stamped with (default
	// time.Now).
	Delay func(time.Duration)
	Now   func() time.Time
}

func (c *Config) defaults() {
	if c.MaxIdentities == 0 {
		c.MaxIdentities = 100
	}
	if c.MaxUserIDs == 0 {
		c.MaxUserIDs = 1
	}
	if c.CacheProfiles == 0 {
		c.CacheProfiles = 100_000
	}
	if c.FlushEvents == 0 {
		c.FlushEvents = 100_000
	}
	if c.FlushDirty == 0 {
		c.FlushDirty = 20_000
	}
	if c.FlushEvery == 0 {
		c.FlushEvery = time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Profile is one person as the engine holds it.
type Profile struct {
	ID         Ref
	Identities []Identity
	State      State
	// Refused counts the links and merges the caps refused for this
	// profile (runaway identifiers).
	Refused int64

	// keyed: the key of ID existed when the profile was loaded or last
	// sealed, so sealing it cannot make the key.
	keyed bool
}

// A Record seals, under the profile's key: the number of identities, each
// identity's kind and value (in the order of Record.Identities), the
// refused count, then the State (State.AppendBinary). appendProfile
// appends that to b, with w's buffers.
func appendProfile(w *encoder, b []byte, p *Profile) []byte {
	b = binary.AppendUvarint(b, uint64(len(p.Identities)))
	for _, id := range p.Identities {
		b = nudge.AppendString(b, id.Kind)
		b = nudge.AppendString(b, id.Value)
	}
	b = binary.AppendVarint(b, p.Refused)
	return p.State.appendBinary(w, b)
}

func decodeProfile(rec *Record, b []byte) (*Profile, error) {
	d := nudge.NewDecoder(b)
	if n := d.Uvarint(); d.Err() != nil || n != uint64(len(rec.Identities)) {
		return nil, fmt.Errorf("%w: profile %s: identities", ErrCorrupt, rec.ID.P)
	}
	p := &Profile{ID: rec.ID, Identities: make([]Identity, len(rec.Identities))}
	for i := range p.Identities {
		p.Identities[i] = Identity{Kind: d.String(), Value: d.String(), Ref: rec.Identities[i]}
	}
	p.Refused = d.Varint()
	if err := d.Err(); err != nil {
		return nil, fmt.Errorf("%w: profile %s: %v", ErrCorrupt, rec.ID.P, err)
	}
	if err := p.State.UnmarshalBinary(d.Rest()); err != nil {
		return nil, fmt.Errorf("profile %s: %w", rec.ID.P, err)
	}
	return p, nil
}

// Stats counts what the engine did since it started.
type Stats struct {
	Events     int64 // events applied
	Dropped    int64 // events of erased people, dropped
	Profiles   int64 // profiles created
	Merges     int64 // profiles merged into another
	Refused    int64 // links and merges refused by the caps
	Erased     int64 // people erased
	Flushes    int64
	AppliedSeq uint64 // the last log message applied
}

// ErrNotFound is returned for an identifier no profile has.
var ErrNotFound = errors.New("profile: no profile has this identifier")

// Engine is the profile consumer and the read side of profiles.
type Engine struct {
	cfg    Config
	store  Store
	keys   *shred.Keyring
	log    bus.Log
	logger *slog.Logger

	mu       sync.RWMutex
	profiles map[shred.Pseudonym]*Profile // by profile id
	links    map[Ref]Ref                  // identifier -> profile, cached or changed
	// ext caches committed extension values (nil: none) that Tx.Get read,
	// kept up to date as commits land: a reactor reads its customer's
	// state for every event (journeys: the customer's record), which was
	// the consumer's costliest store read.
	ext     map[string][]byte
	dirty   map[shred.Pseudonym]*Profile
	deleted map[Ref]bool // profile records deleted by the batch
	batch   *Batch       // what is applied and not committed or committing
	// inflight is the batch the store commits in the background, or nil.
	// Nothing writes to it; the caches keep what it holds (evictLocked runs
	// once it is committed), and reads of extension keys and histories see
	// it as they see the batch.
	inflight *commit
	spare    *commit // a committed batch and its deleted map, for reuse
	// gen is the generation of batch (see Committer); a commit takes it
	// with the batch. committed is the last generation in the store.
	gen       uint64
	committed uint64
	// ended is kicked when a commit in the background ends (Run finishes
	// it; a kick for a commit already finished is harmless).
	ended       chan struct{}
	keysPending bool
	positions   []uint64
	stats       Stats
	// waiters are the WaitApplied calls, by the sequence they wait for;
	// each is woken once (a reader that waits while the consumer lags
	// does not take the lock for every message applied).
	waiters []waiter
	err     error // a failed flush: the engine stops
	reactor Reactor
	tx      Tx                // the Tx of every call into the reactor (the lock is held)
	fetched map[uint64][]byte // log payloads Tx.Event read lately, by sequence
	urgent  bool              // the batch is to commit as soon as it can (Tx.Urgent)
}

// NewEngine makes an engine over a store; Run consumes the log.
func NewEngine(cfg Config, store Store, keys *shred.Keyring, log bus.Log, logger *slog.Logger) *Engine {
	cfg.defaults()
	en := &Engine{
		cfg: cfg, store: store, keys: keys, log: log, logger: logger,
		profiles: make(map[shred.Pseudonym]*Profile),
		links:    make(map[Ref]Ref),
		ext:      make(map[string][]byte),
		fetched:  make(map[uint64][]byte),
		dirty:    make(map[shred.Pseudonym]*Profile),
		deleted:  make(map[Ref]bool),
		batch:    newBatch(cfg.Partitions),
		gen:      1,
		ended:    make(chan struct{}, 1),
	}
	en.tx.en = en
	return en
}

// Run reads the log from the committed positions and applies it until ctx
// is done; it commits what it applied before returning. Its commits run in
// the background, while it applies what follows.
func (en *Engine) Run(ctx context.Context) error {
	en.mu.Lock()
	err := en.loadPositionsLocked(ctx)
	from := max(slices.Min(en.positions), en.stats.AppliedSeq) + 1
	en.mu.Unlock()
	if err != nil {
		return err
	}
	defer func() {
		// On an error: no commit outlives Run (finish waits for its own).
		en.mu.Lock()
		en.awaitCommitLocked()
		en.mu.Unlock()
	}()

	tick := time.NewTicker(en.cfg.FlushEvery)
	defer tick.Stop()
	readCtx, stopRead := context.WithCancel(ctx)
	defer stopRead()
	// Two stages on two cores: the reader decodes and opens each message
	// (the crypto and the parsing) while this goroutine applies the one
	// before it.
	readErr := make(chan error, 1)
	ready := make(chan *prepared, 4)
	go func() {
		defer close(ready)
		readErr <- en.log.Read(readCtx, bus.ReadOptions{FromSeq: from, Follow: true}, func(ctx context.Context, m bus.Message) error {
			pm := en.prepare(m)
			select {
			case ready <- pm:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	// commit runs fn under the lock; an error stops the reader.
	commit := func(fn func() error) error {
		en.mu.Lock()
		err := fn()
		en.mu.Unlock()
		if err != nil {
			stopRead()
			<-readErr
		}
		return err
	}
	for {
		select {
		case <-en.ended:
			// A commit in the background ended: the reactor hears of it,
			// and an urgent batch that waited for it commits, without
			// waiting for the next message.
			err := commit(func() error {
				if err := en.pollCommitLocked(); err != nil || !en.urgent || en.inflight != nil {
					return err
				}
				en.urgent = false
				return en.commitLocked(ctx, true)
			})
			if err != nil {
				return err
			}
		case pm, ok := <-ready:
			if !ok {
				// The reader ended: its error is in readErr.
				return en.finish(ctx, <-readErr, nil)
			}
			if err := en.applyPrepared(ctx, pm, true); err != nil {
				stopRead()
				for range ready {
				}
				<-readErr
				return err
			}
		case <-tick.C:
			if err := commit(func() error { return en.commitLocked(ctx, true) }); err != nil {
				return err
			}
		case err := <-readErr:
			return en.finish(ctx, err, ready)
		}
	}
}

// finish ends Run once the reader has stopped with err: it applies what
// was prepared (ready, closed by the reader, or nil) and commits.
func (en *Engine) finish(ctx context.Context, err error, ready <-chan *prepared) error {
	if ready != nil {
		for pm := range ready {
			if aerr := en.applyPrepared(ctx, pm, true); aerr != nil && err == nil {
				err = aerr
			}
		}
	}
	en.mu.Lock()
	ferr := en.flushLocked(context.WithoutCancel(ctx))
	en.mu.Unlock()
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		err = nil
	}
	return errors.Join(err, ferr)
}

// Apply applies one log message, as Run does for each message in log order.
// A message at or before the committed position of its partition is
// skipped.
func (en *Engine) Apply(ctx context.Context, m bus.Message) error {
	return en.applyPrepared(ctx, en.prepare(m), false)
}

// prepared is a log message decoded and opened, ready to apply.
type prepared struct {
	m      bus.Message
	events []preparedEvent
	err    error // a message that cannot be decoded: the engine stops
}

type preparedEvent struct {
	e       nudge.Event
	at      LogRef
	subject Ref
	ids     []Identity
	erased  bool // its subject's key is shredded
}

// prepare does the per-event work that needs no engine state: decoding,
// opening, finding the identifiers and their pseudonyms. It runs without
// the engine's lock.
func (en *Engine) prepare(m bus.Message) *prepared {
	pm := &prepared{m: m}
	n := 0
	if nudge.EachEncoded(m.Payload, func([]byte) error { n++; return nil }) == nil {
		pm.events = make([]preparedEvent, 0, n)
	}
	var ids []Identity // the events' identifiers, in one array where it fits
	at := LogRef{Seq: m.Seq}
	pm.err = nudge.EachEncoded(m.Payload, func(raw []byte) error {
		pm.events = append(pm.events, preparedEvent{at: at, subject: Ref{Partition: m.Partition}})
		pe := &pm.events[len(pm.events)-1]
		at.Index++
		if err := pe.e.Decode(raw); err != nil {
			return fmt.Errorf("profile: log message %d: %w", m.Seq, err)
		}
		e := &pe.e
		if e.Type == nudge.Erase {
			return nil
		}
		// The subject is the pseudonym of the customer key: made here, or
		// by shred.SealEvent, whose seal binds it to the sealed ids.
		subjectIsKey := true
		if e.Subject != "" {
			p, err := shred.ParsePseudonym(e.Subject)
			if err != nil {
				return fmt.Errorf("profile: event %s: %w", e.MessageID, err)
			}
			pe.subject.P = p
			subjectIsKey = len(e.Sealed) > 0
			if err := shred.OpenEvent(en.keys, e); errors.Is(err, shred.ErrShredded) {
				pe.erased = true
			} else if err != nil {
				return fmt.Errorf("profile: event %s: %w", e.MessageID, err)
			}
		} else {
			pe.subject.P = en.keys.Pseudonym(e.CustomerKey())
		}
		if !pe.erased {
			n := len(ids)
			ids = appendIdentifiers(ids, e, en.cfg.IdentityTraits)
			pe.ids = ids[n:len(ids):len(ids)]
			key := e.CustomerKey()
			for i := range pe.ids {
				id := &pe.ids[i]
				if subjectIsKey && id.Value == key {
					// Its pseudonym is the subject: one HMAC less.
					id.Ref = Ref{P: pe.subject.P, Partition: bus.PartitionOf(key, en.cfg.Partitions)}
				} else {
					id.Ref = en.ref(id.Value)
				}
			}
		}
		return nil
	})
	return pm
}

// applyPrepared applies a prepared message under the engine's lock. The
// commit it may start runs in the background when background is set (Run)
// and the batch is not durable; an urgent batch waits for the commit in
// flight to end (Run then commits it), which groups the urgent writes of
// the messages applied meanwhile into one commit.
func (en *Engine) applyPrepared(ctx context.Context, pm *prepared, background bool) error {
	en.mu.Lock()
	defer en.mu.Unlock()
	if err := en.pollCommitLocked(); err != nil {
		return err
	}
	if en.positions == nil {
		if err := en.loadPositionsLocked(ctx); err != nil {
			return err
		}
	}
	m := pm.m
	if m.Partition >= len(en.positions) {
		return fmt.Errorf("profile: message %d of partition %d; the engine has %d", m.Seq, m.Partition, len(en.positions))
	}
	if m.Seq > en.positions[m.Partition] {
		if pm.err != nil {
			en.err = pm.err
			return pm.err
		}
		for i := range pm.events {
			if err := en.applyEvent(ctx, &pm.events[i]); err != nil {
				en.err = err
				return err
			}
		}
		en.positions[m.Partition] = m.Seq
		en.batch.Positions[m.Partition] = m.Seq
		if n := len(pm.events); n > 0 && en.cfg.Delay != nil {
			en.cfg.Delay(en.cfg.Now().Sub(pm.events[n-1].e.ReceivedAt))
		}
	}
	en.stats.AppliedSeq = max(en.stats.AppliedSeq, m.Seq)
	en.batch.Positions[en.cfg.Partitions] = en.stats.AppliedSeq
	en.wakeLocked()
	full := len(en.batch.Events) >= en.cfg.FlushEvents || len(en.dirty) >= en.cfg.FlushDirty
	if en.urgent || full {
		if background && !full && !en.batch.Durable && en.inflight != nil {
			return nil // Run commits it when the commit in flight ends
		}
		background = background && !en.batch.Durable
		en.urgent = false
		return en.commitLocked(ctx, background)
	}
	return nil
}

// loadPositionsLocked reads the committed positions: one per partition,
// then the sequence through which the whole log is applied (the engine
// reads the log in order, so that is the last message it had read), from
// which a restart reads on and which WaitApplied starts from.
func (en *Engine) loadPositionsLocked(ctx context.Context) error {
	pos, err := en.store.Positions(ctx, en.cfg.Partitions+1)
	if err != nil {
		return err
	}
	en.positions = pos[:en.cfg.Partitions]
	if seq := pos[en.cfg.Partitions]; seq > en.stats.AppliedSeq {
		en.stats.AppliedSeq = seq
		en.wakeLocked()
	}
	return nil
}

func (en *Engine) applyEvent(ctx context.Context, pe *preparedEvent) error {
	e, subject, ids := &pe.e, pe.subject, pe.ids
	if e.Type == nudge.Erase {
		return en.replayErase(ctx, e)
	}
	if pe.erased || en.keys.Shredded(subject.P) {
		en.stats.Dropped++
		return nil
	}
	for i := range ids {
		if ids[i].Ref.P != subject.P && en.keys.Shredded(ids[i].Ref.P) {
			// The event names an erased person: it is dropped, and the
			// identifier it arrived with is erased too, so that what the log
			// holds of it can never be read.
			en.stats.Dropped++
			return en.keys.Shred(subject.P)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	p, moved, err := en.resolve(ctx, ids, e.Type == nudge.Alias)
	if err != nil {
		return err
	}
	p.State.Apply(e)
	en.dirty[p.ID.P] = p
	if en.reactor != nil {
		tx := &en.tx
		for _, from := range moved {
			if err := en.reactor.Merged(ctx, tx, from, p.ID); err != nil {
				return err
			}
		}
		tx.at = pe.at
		err := en.reactor.React(ctx, tx, p, e)
		tx.at = LogRef{}
		if err != nil {
			return err
		}
	}
	en.batch.Events = append(en.batch.Events, Entry{
		Subject: subject,
		At:      Cursor{Time: e.Timestamp, Hash: eventHash(e)},
		Log:     pe.at,
	})
	en.stats.Events++
	return nil
}

// eventHash is the hash of an event's source and message id, which orders
// events of one instant in a history.
func eventHash(e *nudge.Event) uint64 {
	var buf [64]byte // on the stack, for the usual lengths
	b := append(buf[:0], e.Source...)
	b = append(b, 0)
	b = append(b, e.MessageID...)
	return xxhash.Sum64(b)
}

// ref is the store reference of an identifier.
func (en *Engine) ref(v string) Ref {
	return Ref{P: en.keys.Pseudonym(v), Partition: bus.PartitionOf(v, en.cfg.Partitions)}
}

// resolve finds or makes the profile an event belongs to (the profile of
// its first identifier, the customer key) and links or merges the others
// into it where the caps allow.
//
// moved lists the ids of profiles that this merged into p or that p had
// before it took a better id.
func (en *Engine) resolve(ctx context.Context, ids []Identity, alias bool) (p *Profile, moved []Ref, err error) {
	p, err = en.profileOf(ctx, ids[0].Ref, true)
	if err != nil {
		return nil, nil, err
	}
	if p == nil {
		p = &Profile{ID: ids[0].Ref, Identities: []Identity{ids[0]}}
		en.profiles[p.ID.P] = p
		en.setLink(ids[0].Ref, p.ID)
		en.stats.Profiles++
	}
	changed := false
	for i, id := range ids {
		q := p // the profile of ids[0], found or made above
		if i > 0 {
			if q, err = en.profileOf(ctx, id.Ref, true); err != nil {
				return nil, nil, err
			}
		}
		switch {
		case q == p:
			// Known: keep the best kind it was seen as.
			i := slices.IndexFunc(p.Identities, func(x Identity) bool { return x.Ref == id.Ref })
			if i >= 0 && rank(id.Kind) < rank(p.Identities[i].Kind) {
				p.Identities[i].Kind = id.Kind
				changed = true
			}
		case q == nil:
			if len(p.Identities) >= en.cfg.MaxIdentities || (id.Kind == KindUser && !alias && userIDs(p.Identities)+1 > en.cfg.MaxUserIDs) {
				en.refuse(p, "link", id.Ref)
				continue
			}
			p.Identities = append(p.Identities, id)
			en.setLink(id.Ref, p.ID)
			changed = true
		default:
			if len(p.Identities)+len(q.Identities) > en.cfg.MaxIdentities ||
				(!alias && userIDs(p.Identities)+userIDs(q.Identities) > en.cfg.MaxUserIDs) {
				en.refuse(p, "merge", q.ID)
				continue
			}
			p.State.Merge(&q.State)
			p.Identities = append(p.Identities, q.Identities...)
			p.Refused += q.Refused
			en.drop(q.ID)
			moved = append(moved, q.ID)
			en.stats.Merges++
			changed = true
		}
	}
	if changed {
		if old := p.ID; en.settle(p) {
			moved = append(moved, old)
		}
	}
	return p, moved, nil
}

func userIDs(ids []Identity) int {
	n := 0
	for _, id := range ids {
		if id.Kind == KindUser {
			n++
		}
	}
	return n
}

func (en *Engine) refuse(p *Profile, what string, other Ref) {
	p.Refused++
	en.dirty[p.ID.P] = p
	en.stats.Refused++
	en.logger.Warn("identity cap reached: "+what+" refused",
		"profile", p.ID.P.String(), "other", other.P.String(), "identities", len(p.Identities), "refused", p.Refused)
}

// settle gives p the id of its best identifier, so the id does not depend
// on which identifier or profile came first, and points every identifier
// of p at it.
// It reports whether the id changed.
func (en *Engine) settle(p *Profile) (changed bool) {
	best := slices.MinFunc(p.Identities, cmpIdentity).Ref
	if best != p.ID {
		en.drop(p.ID)
		p.ID, p.keyed = best, false
		changed = true
	}
	delete(en.deleted, p.ID)
	if en.inflight != nil {
		delete(en.inflight.deleted, p.ID)
	}
	en.profiles[p.ID.P] = p
	en.dirty[p.ID.P] = p
	for _, id := range p.Identities {
		if en.links[id.Ref] != p.ID {
			en.setLink(id.Ref, p.ID)
		}
	}
	return changed
}

// drop deletes a profile record that another took over.
func (en *Engine) drop(id Ref) {
	delete(en.profiles, id.P)
	delete(en.dirty, id.P)
	en.deleted[id] = true
	en.batch.Delete = append(en.batch.Delete, id)
}

func (en *Engine) setLink(id, profile Ref) {
	en.links[id] = profile
	en.batch.Link[id] = profile
}

// profileOf returns the profile an identifier belongs to, or nil. With
// cache it keeps what it loads (the consumer); readers pass false.
func (en *Engine) profileOf(ctx context.Context, id Ref, cache bool) (*Profile, error) {
	pid, ok := en.links[id]
	if !ok {
		// Most identifiers are their profile's id (a customer known by
		// one user id): a stored profile with that id is the profile, and
		// the store need not be asked for the link. A profile record is
		// stored under its id only while the id is the profile's: a merge
		// or a better id deletes it in the batch that moves the links.
		p, err := en.load(ctx, id, cache)
		if err != nil || p != nil {
			if p != nil && cache {
				en.links[id] = id
			}
			return p, err
		}
		if pid, ok, err = en.store.Link(ctx, id); err != nil || !ok {
			return nil, err
		}
		if cache {
			en.links[id] = pid
		}
	}
	return en.load(ctx, pid, cache)
}

// load returns a profile by id, or nil.
func (en *Engine) load(ctx context.Context, id Ref, cache bool) (*Profile, error) {
	if p := en.profiles[id.P]; p != nil {
		return p, nil
	}
	if en.deleted[id] || (en.inflight != nil && en.inflight.deleted[id]) {
		return nil, nil
	}
	rec, ok, err := en.store.Profile(ctx, id)
	if err != nil || !ok {
		return nil, err
	}
	plain, err := en.keys.Open(nil, rec.ID.P, rec.Sealed)
	if errors.Is(err, shred.ErrShredded) {
		return nil, nil // erased; its leftovers go with the erasure's replay
	}
	if err != nil {
		return nil, fmt.Errorf("profile %s: %w", id.P, err)
	}
	p, err := decodeProfile(rec, plain)
	if err != nil {
		return nil, err
	}
	p.keyed = true // it was sealed with the key that opened it
	if cache {
		en.profiles[id.P] = p
	}
	return p, nil
}

// flushLocked commits the batch, and returns once it is committed.
func (en *Engine) flushLocked(ctx context.Context) error {
	return en.commitLocked(ctx, false)
}

// A commit is a batch handed to the store, and the profile records it
// deletes.
type commit struct {
	batch   *Batch
	deleted map[Ref]bool
	gen     uint64        // the batch's generation (see Committer)
	done    chan struct{} // closed once err is set
	err     error
}

func newBatch(partitions int) *Batch {
	return &Batch{Link: make(map[Ref]Ref), Positions: make([]uint64, partitions+1), Ext: make(map[string][]byte)}
}

// commitLocked seals the changed profiles into the batch and commits it:
// in the background when background is set, else before it returns. A
// commit starts once the one before it is done (the profiles are sealed
// meanwhile), so that commits are in order and one at a time.
func (en *Engine) commitLocked(ctx context.Context, background bool) error {
	if en.err != nil {
		return en.err
	}
	if err := en.sealDirty(); err != nil {
		en.err = err
		return err
	}
	if err := en.awaitCommitLocked(); err != nil {
		return err
	}
	if en.batch.Empty() {
		return nil
	}
	if en.keysPending {
		// Keys made here (for a profile id that never sent an event) must
		// be durable before what they seal is.
		if err := en.keys.Sync(); err != nil {
			en.err = err
			return err
		}
		en.keysPending = false
	}
	c := en.spare
	if c == nil {
		c = &commit{batch: newBatch(en.cfg.Partitions), deleted: make(map[Ref]bool)}
	}
	en.spare = nil
	c.batch, en.batch = en.batch, c.batch
	c.deleted, en.deleted = en.deleted, c.deleted
	c.done, c.err = make(chan struct{}), nil
	c.gen = en.gen
	en.gen++
	en.dirty = emptied(en.dirty) // sealed into c
	en.inflight = c
	if background {
		go func() {
			c.err = en.store.Commit(context.WithoutCancel(ctx), c.batch)
			close(c.done)
			select {
			case en.ended <- struct{}{}:
			default: // one is pending
			}
		}()
		return nil
	}
	c.err = en.store.Commit(ctx, c.batch)
	close(c.done)
	return en.awaitCommitLocked()
}

// awaitCommitLocked waits for the commit in flight, if there is one, and
// finishes it: the reactor hears of it, and the caches are trimmed.
func (en *Engine) awaitCommitLocked() error {
	c := en.inflight
	if c == nil {
		return nil
	}
	<-c.done
	en.inflight = nil
	if c.err != nil {
		en.err = c.err
		return c.err
	}
	en.stats.Flushes++
	en.committed = c.gen
	if r, ok := en.reactor.(Committer); ok {
		r.Committed(c.gen)
	}
	for k, v := range c.batch.Ext {
		// Only keys read: a reactor writes many it never reads back
		// (journeys: timers, send jobs).
		if _, cached := en.ext[k]; cached {
			en.ext[k] = v // the batch gives up its values on Reset
		}
	}
	c.batch.Reset()
	c.deleted = emptied(c.deleted)
	en.spare = c
	en.evictLocked()
	return nil
}

// pollCommitLocked finishes the commit in flight if it is done.
func (en *Engine) pollCommitLocked() error {
	if en.err != nil {
		return en.err
	}
	if c := en.inflight; c != nil {
		select {
		case <-c.done:
			return en.awaitCommitLocked()
		default:
		}
	}
	return nil
}

// sealDirty encodes and seals the changed profiles into the batch, on
// every core: it is most of a flush's own work. The records, their
// identities and their sealed bytes are carved from a few large
// allocations (they live until the batch is committed).
func (en *Engine) sealDirty() error {
	if len(en.dirty) == 0 {
		return nil
	}
	dirty := make([]*Profile, 0, len(en.dirty))
	nrefs := 0
	for _, p := range en.dirty {
		dirty = append(dirty, p)
		nrefs += len(p.Identities)
	}
	recs := make([]Record, len(dirty))
	refs := make([]Ref, 0, nrefs)
	for i, p := range dirty {
		n := len(refs)
		for _, id := range p.Identities {
			refs = append(refs, id.Ref)
		}
		recs[i] = Record{ID: p.ID, Identities: refs[n:len(refs):len(refs)]}
	}
	workers := min(runtime.GOMAXPROCS(0), 1+len(dirty)/256)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	var pending atomic.Bool
	for w := range workers {
		wg.Go(func() {
			var sc sealScratch
			for i := w; i < len(dirty); i += workers {
				keyPending, err := en.seal(&sc, dirty[i], &recs[i])
				if err != nil {
					errs[w] = err
					return
				}
				if keyPending {
					pending.Store(true)
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if pending.Load() {
		en.keysPending = true
	}
	for i := range recs {
		en.batch.Put = append(en.batch.Put, &recs[i])
	}
	return nil
}

// sealScratch is one sealing worker's buffers.
type sealScratch struct {
	w     encoder
	plain []byte
	slab  []byte // sealed records are appended here until it is full
}

// seal encodes and seals p into rec.Sealed; it reports whether the key it
// sealed with was made here and is not yet durable.
func (en *Engine) seal(sc *sealScratch, p *Profile, rec *Record) (keyPending bool, err error) {
	sc.plain = appendProfile(&sc.w, sc.plain[:0], p)
	if need := len(sc.plain) + shred.Overhead; cap(sc.slab)-len(sc.slab) < need {
		// Slabs grow from 4 KiB to 64 KiB: a commit of a few profiles
		// (an urgent one) does not take 64 KiB for them.
		sc.slab = make([]byte, 0, max(need, min(2*cap(sc.slab), 64<<10), 4<<10))
	}
	// A key that ingest made is in the WAL records until the keyring is
	// synced: only a key made here must be synced before the commit.
	had := p.keyed || en.keys.Has(p.ID.P)
	out, pending, err := en.keys.Seal(sc.slab, p.ID.P, sc.plain)
	if err != nil {
		return false, fmt.Errorf("profile %s: %w", p.ID.P, err)
	}
	rec.Sealed = out[len(sc.slab):len(out):len(out)]
	sc.slab = out
	p.keyed = true
	return pending != nil && !had, nil
}

// evictLocked keeps the caches within bounds once a commit is done (with
// none in flight): it keeps what the batch changed, and drops what is in
// the store. Map iteration order is random enough to make this a random
// eviction.
func (en *Engine) evictLocked() {
	slack := en.cfg.CacheProfiles / 10 // evict a tenth more, to evict less often
	evict(en.profiles, en.cfg.CacheProfiles, slack, func(_ shred.Pseudonym, p *Profile) bool {
		return en.dirty[p.ID.P] == p
	})
	evict(en.ext, en.cfg.CacheProfiles, slack, nil)
	evict(en.links, 4*en.cfg.CacheProfiles, slack, func(id, _ Ref) bool {
		_, changed := en.batch.Link[id]
		return changed
	})
}

// evict deletes entries of m, in map order, until it holds bound-slack,
// when it holds more than bound; keep (if not nil) spares entries.
func evict[K comparable, V any](m map[K]V, bound, slack int, keep func(K, V) bool) {
	n := len(m) - bound
	if n <= 0 {
		return
	}
	n += slack
	for k, v := range m {
		if n == 0 {
			return
		}
		if keep != nil && keep(k, v) {
			continue
		}
		delete(m, k)
		n--
	}
}

// Flush commits what is applied. Run flushes by itself; tests and
// benchmarks that call Apply directly use it.
func (en *Engine) Flush(ctx context.Context) error {
	en.mu.Lock()
	defer en.mu.Unlock()
	return en.flushLocked(ctx)
}

// Stats returns the engine's counters.
func (en *Engine) Stats() Stats {
	en.mu.RLock()
	defer en.mu.RUnlock()
	return en.stats
}

// WaitApplied returns once the engine has applied the log up to seq.
func (en *Engine) WaitApplied(ctx context.Context, seq uint64) error {
	en.mu.Lock()
	if en.err != nil || en.stats.AppliedSeq >= seq {
		err := en.err
		en.mu.Unlock()
		return err
	}
	w := waiter{seq: seq, woken: make(chan struct{})}
	// Readers ask for the log's end, which only grows: the usual place is
	// the end.
	i, _ := slices.BinarySearchFunc(en.waiters, seq, func(w waiter, seq uint64) int { return cmp.Compare(w.seq, seq) })
	en.waiters = slices.Insert(en.waiters, i, w)
	en.mu.Unlock()
	select {
	case <-w.woken:
		en.mu.RLock()
		defer en.mu.RUnlock()
		return en.err
	case <-ctx.Done():
		en.mu.Lock()
		if i := slices.IndexFunc(en.waiters, func(x waiter) bool { return x.woken == w.woken }); i >= 0 {
			en.waiters = slices.Delete(en.waiters, i, i+1)
		}
		en.mu.Unlock()
		return ctx.Err()
	}
}

// waiter is a WaitApplied call: woken is closed once the log is applied
// through seq.
type waiter struct {
	seq   uint64
	woken chan struct{}
}

// wakeLocked wakes the waiters that the applied sequence has reached.
func (en *Engine) wakeLocked() {
	n := 0
	for n < len(en.waiters) && en.waiters[n].seq <= en.stats.AppliedSeq {
		close(en.waiters[n].woken)
		n++
	}
	if n > 0 {
		en.waiters = slices.Delete(en.waiters, 0, n)
	}
}
