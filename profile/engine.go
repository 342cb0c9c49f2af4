// Package profile keeps one live profile per person: the identity graph
// that links a person's anonymous ids, user ids and emails, their state
// (traits, computed attributes, cart, consent; state.go) and their event
// history, all from the event log.
//
// The Engine is the log's profile consumer. It applies events in memory and
// commits, every second or so, one atomic store batch with the profiles it
// changed, where the log holds the events it read, and its log positions, so a crash
// neither counts an event twice nor drops one: what a lost batch held is
// read again from the log.
package profile

import (
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
	// CacheProfiles bounds the profiles held in memory (default 100,000).
	CacheProfiles int
	// FlushEvents, FlushDirty (changed profiles) and FlushEvery bound what
	// is applied but not committed (defaults 100,000, 20,000 and 1 s): what
	// a crash makes the engine read again, and the profiles held in memory
	// until a commit. Fewer commits write a busy profile fewer times.
	FlushEvents int
	FlushDirty  int
	FlushEvery  time.Duration
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
}

// Profile is one person as the engine holds it.
type Profile struct {
	ID         Ref
	Identities []Identity
	State      State
	// Refused counts the links and merges the caps refused for this
	// profile (runaway identifiers).
	Refused int64
}

// A Record seals, under the profile's key: the number of identities, each
// identity's kind and value (in the order of Record.Identities), the
// refused count, then the State (State.AppendBinary).
func encodeProfile(p *Profile) ([]byte, error) {
	b := make([]byte, 0, 256+p.State.sizeHint())
	b = binary.AppendUvarint(b, uint64(len(p.Identities)))
	for _, id := range p.Identities {
		b = nudge.AppendString(b, id.Kind)
		b = nudge.AppendString(b, id.Value)
	}
	b = binary.AppendVarint(b, p.Refused)
	return p.State.AppendBinary(b)
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

	mu          sync.RWMutex
	profiles    map[shred.Pseudonym]*Profile // by profile id
	links       map[Ref]Ref                  // identifier -> profile, cached or changed
	dirty       map[shred.Pseudonym]*Profile
	deleted     map[Ref]bool // profile records deleted by the uncommitted batch
	batch       Batch
	keysPending bool
	positions   []uint64
	stats       Stats
	applied     chan struct{} // closed when stats.AppliedSeq moves
	err         error         // a failed flush: the engine stops
	reactor     Reactor
	urgent      bool // commit at the end of the current call (Tx.Urgent)
}

// NewEngine makes an engine over a store; Run consumes the log.
func NewEngine(cfg Config, store Store, keys *shred.Keyring, log bus.Log, logger *slog.Logger) *Engine {
	cfg.defaults()
	return &Engine{
		cfg: cfg, store: store, keys: keys, log: log, logger: logger,
		profiles: make(map[shred.Pseudonym]*Profile),
		links:    make(map[Ref]Ref),
		dirty:    make(map[shred.Pseudonym]*Profile),
		deleted:  make(map[Ref]bool),
		batch:    Batch{Link: make(map[Ref]Ref), Positions: make([]uint64, cfg.Partitions+1), Ext: make(map[string][]byte)},
		applied:  make(chan struct{}),
	}
}

// Run reads the log from the committed positions and applies it until ctx
// is done; it commits what it applied before returning.
func (en *Engine) Run(ctx context.Context) error {
	en.mu.Lock()
	err := en.loadPositionsLocked(ctx)
	from := max(slices.Min(en.positions), en.stats.AppliedSeq) + 1
	en.mu.Unlock()
	if err != nil {
		return err
	}

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
	for {
		select {
		case pm, ok := <-ready:
			if !ok {
				// The reader ended: its error is in readErr.
				return en.finish(ctx, <-readErr, nil)
			}
			if err := en.applyPrepared(ctx, pm); err != nil {
				stopRead()
				for range ready {
				}
				<-readErr
				return err
			}
		case <-tick.C:
			en.mu.Lock()
			err := en.flushLocked(ctx)
			en.mu.Unlock()
			if err != nil {
				stopRead()
				<-readErr
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
			if aerr := en.applyPrepared(ctx, pm); aerr != nil && err == nil {
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
	return en.applyPrepared(ctx, en.prepare(m))
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
	at := LogRef{Seq: m.Seq}
	pm.err = nudge.EachEncoded(m.Payload, func(raw []byte) error {
		pe := preparedEvent{at: at, subject: Ref{Partition: m.Partition}}
		at.Index++
		if err := pe.e.Decode(raw); err != nil {
			return fmt.Errorf("profile: log message %d: %w", m.Seq, err)
		}
		e := &pe.e
		if e.Type == nudge.Erase {
			pm.events = append(pm.events, pe)
			return nil
		}
		if e.Subject != "" {
			p, err := shred.ParsePseudonym(e.Subject)
			if err != nil {
				return fmt.Errorf("profile: event %s: %w", e.MessageID, err)
			}
			pe.subject.P = p
			if err := shred.OpenEvent(en.keys, e); errors.Is(err, shred.ErrShredded) {
				pe.erased = true
			} else if err != nil {
				return fmt.Errorf("profile: event %s: %w", e.MessageID, err)
			}
		} else {
			pe.subject.P = en.keys.Pseudonym(e.CustomerKey())
		}
		if !pe.erased {
			pe.ids = identifiers(e, en.cfg.IdentityTraits)
			for i := range pe.ids {
				pe.ids[i].Ref = en.ref(pe.ids[i].Value)
			}
		}
		pm.events = append(pm.events, pe)
		return nil
	})
	return pm
}

// applyPrepared applies a prepared message under the engine's lock.
func (en *Engine) applyPrepared(ctx context.Context, pm *prepared) error {
	en.mu.Lock()
	defer en.mu.Unlock()
	if en.err != nil {
		return en.err
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
	}
	en.stats.AppliedSeq = max(en.stats.AppliedSeq, m.Seq)
	en.batch.Positions[en.cfg.Partitions] = en.stats.AppliedSeq
	close(en.applied)
	en.applied = make(chan struct{})
	if en.urgent || len(en.batch.Events) >= en.cfg.FlushEvents || len(en.dirty) >= en.cfg.FlushDirty {
		en.urgent = false
		return en.flushLocked(ctx)
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
		close(en.applied)
		en.applied = make(chan struct{})
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
		if en.keys.Shredded(ids[i].Ref.P) {
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
		tx := &Tx{en: en}
		for _, from := range moved {
			if err := en.reactor.Merged(ctx, tx, from, p.ID); err != nil {
				return err
			}
		}
		if err := en.reactor.React(ctx, tx, p, e); err != nil {
			return err
		}
	}
	en.batch.Events = append(en.batch.Events, Entry{
		Subject: subject,
		At:      Cursor{Time: e.Timestamp, Hash: xxhash.Sum64String(e.Source + "\x00" + e.MessageID)},
		Log:     pe.at,
	})
	en.stats.Events++
	return nil
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
	for _, id := range ids {
		q, err := en.profileOf(ctx, id.Ref, true)
		if err != nil {
			return nil, nil, err
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
		p.ID = best
		changed = true
	}
	delete(en.deleted, p.ID)
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
		var err error
		pid, ok, err = en.store.Link(ctx, id)
		if err != nil || !ok {
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
	if en.deleted[id] {
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
	if cache {
		en.profiles[id.P] = p
	}
	return p, nil
}

// flushLocked commits the batch.
func (en *Engine) flushLocked(ctx context.Context) error {
	if en.err != nil {
		return en.err
	}
	if err := en.sealDirty(); err != nil {
		en.err = err
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
	if err := en.store.Commit(ctx, &en.batch); err != nil {
		en.err = err
		return err
	}
	if c, ok := en.reactor.(Committer); ok {
		c.Committed()
	}
	en.batch.Reset()
	clear(en.dirty)
	clear(en.deleted)
	en.stats.Flushes++
	en.evictLocked()
	return nil
}

// sealDirty encodes and seals the changed profiles into the batch, on
// every core: it is most of a flush's own work.
func (en *Engine) sealDirty() error {
	dirty := make([]*Profile, 0, len(en.dirty))
	for _, p := range en.dirty {
		dirty = append(dirty, p)
	}
	recs := make([]*Record, len(dirty))
	errs := make([]error, len(dirty))
	workers := min(runtime.GOMAXPROCS(0), 1+len(dirty)/256)
	var wg sync.WaitGroup
	var pending atomic.Bool
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(dirty); i += workers {
				rec, keyPending, err := en.seal(dirty[i])
				if keyPending {
					pending.Store(true)
				}
				recs[i], errs[i] = rec, err
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
	en.batch.Put = append(en.batch.Put, recs...)
	return nil
}

func (en *Engine) seal(p *Profile) (*Record, bool, error) {
	plain, err := encodeProfile(p)
	if err != nil {
		return nil, false, fmt.Errorf("profile %s: %w", p.ID.P, err)
	}
	// A key that ingest made is in the WAL records until the keyring is
	// synced: only a key made here must be synced before the commit.
	had := en.keys.Has(p.ID.P)
	sealed, pending, err := en.keys.Seal(nil, p.ID.P, plain)
	if err != nil {
		return nil, false, fmt.Errorf("profile %s: %w", p.ID.P, err)
	}
	if had {
		pending = nil
	}
	rec := &Record{ID: p.ID, Identities: make([]Ref, len(p.Identities)), Sealed: sealed}
	for i, id := range p.Identities {
		rec.Identities[i] = id.Ref
	}
	return rec, pending != nil, nil
}

// evictLocked keeps the caches within bounds once the batch is committed
// (nothing in them is dirty then). Map iteration order is random enough
// to make this a random eviction.
func (en *Engine) evictLocked() {
	if n := len(en.profiles) - en.cfg.CacheProfiles; n > 0 {
		n += en.cfg.CacheProfiles / 10
		for id := range en.profiles {
			if n == 0 {
				break
			}
			delete(en.profiles, id)
			n--
		}
	}
	if n := len(en.links) - 4*en.cfg.CacheProfiles; n > 0 {
		n += en.cfg.CacheProfiles / 10
		for id := range en.links {
			if n == 0 {
				break
			}
			delete(en.links, id)
			n--
		}
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
	for {
		en.mu.RLock()
		cur, ch, err := en.stats.AppliedSeq, en.applied, en.err
		en.mu.RUnlock()
		if err != nil {
			return err
		}
		if cur >= seq {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
