package journey

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/nudge-dev/nudge/profile"
)

// The journey store keeps every version of every journey's definition, as
// its source text, in the profile store's extension keys (written through
// the engine's transactions, committed before a change is answered):
//
//	jd/<journey id>/v<version: 4 bytes>   a version (defRecord, JSON)
//	jd/<journey id>/head                  the journey's state (defHead, JSON)
//
// Journey ids hold no '/' (validID), so a journey's keys sort together.
const prefixDefs = "jd/"

type defRecord struct {
	Source string `json:"source"`
	// Origin is the file the version was loaded from; "" when it came
	// through the admin API.
	Origin string    `json:"origin,omitempty"`
	At     time.Time `json:"at"`
}

type defHead struct {
	// Deleted: no new run starts; runs on its versions finish.
	Deleted bool `json:"deleted,omitempty"`
	// FileGone: it was deleted because its file was no longer given; the
	// file given again brings it back.
	FileGone bool `json:"file_gone,omitempty"`
}

func defVersionKey(id string, v int) []byte {
	b := append([]byte(prefixDefs+id), "/v"...)
	return binary.BigEndian.AppendUint32(b, uint32(v))
}

func defHeadKey(id string) []byte { return []byte(prefixDefs + id + "/head") }

// Source is the text of a journey definition and the file it is in.
type Source struct {
	File string
	Data []byte
}

// Definitions is the journey store: every version of every journey, each
// change a new version, durable in the runtime's store. It decides what
// the runtime runs (Runtime.SetJourneys): every version it holds, so that
// a run finishes on the version it started on, new runs starting on the
// highest version of each journey not deleted.
//
// Versions are numbered from 1 per journey. A change whose source equals
// the current version's is no change. Its methods are safe for concurrent
// use.
type Definitions struct {
	rt     *Runtime
	loader Loader

	mu   sync.Mutex
	byID map[string]*defJourney
}

type defJourney struct {
	versions []*defVersion // ascending
	deleted  bool
	fileGone bool
}

type defVersion struct {
	n   int
	rec defRecord
	j   *Journey // nil: it no longer compiles (runs on it end)
}

func (d *defJourney) current() *defVersion {
	if len(d.versions) == 0 {
		return nil
	}
	return d.versions[len(d.versions)-1]
}

// Definition is a journey's current version, as the store holds it.
type Definition struct {
	Journey  *Journey
	Source   string
	Versions []int // every version held, ascending
}

// ErrDeleted is returned for a change to a journey that is not there.
var ErrDeleted = errors.New("journey: the journey is deleted")

// OpenDefinitions reads the journey store of rt's store and reconciles it
// with the journeys of files: a file whose text differs from the last
// version it gave (and from the current version) becomes a new version; a
// journey whose current version came from a file that is no longer given
// is deleted. It then gives the runtime every version held. rt's other
// journeys (those given to NewRuntime) are replaced.
//
// It must be called before the engine runs, or at least before any change
// through the admin API.
func OpenDefinitions(ctx context.Context, rt *Runtime, files []Source) (*Definitions, error) {
	now := rt.cfg.Clock.Now()
	d := &Definitions{rt: rt, loader: Loader{Channels: rt.channelNames()}, byID: map[string]*defJourney{}}
	err := rt.cfg.Store.ScanExt(ctx, []byte(prefixDefs), endOf(prefixDefs), func(k, v []byte) error {
		rest := string(k[len(prefixDefs):])
		slash := strings.LastIndexByte(rest, '/')
		if slash < 0 {
			return fmt.Errorf("%w: journey store key %q", errCorrupt, k)
		}
		id, suffix := rest[:slash], rest[slash+1:]
		dj := d.byID[id]
		if dj == nil {
			dj = &defJourney{}
			d.byID[id] = dj
		}
		switch {
		case suffix == "head":
			var h defHead
			if err := json.Unmarshal(v, &h); err != nil {
				return fmt.Errorf("%w: journey store %s: %v", errCorrupt, id, err)
			}
			dj.deleted, dj.fileGone = h.Deleted, h.FileGone
		case len(suffix) == 5 && suffix[0] == 'v':
			var rec defRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("%w: journey store %s: %v", errCorrupt, id, err)
			}
			dj.versions = append(dj.versions, &defVersion{n: int(binary.BigEndian.Uint32([]byte(suffix[1:]))), rec: rec})
		default:
			return fmt.Errorf("%w: journey store key %q", errCorrupt, k)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("journey store: %w", err)
	}
	for id, dj := range d.byID {
		slices.SortFunc(dj.versions, func(a, b *defVersion) int { return a.n - b.n })
		for _, v := range dj.versions {
			v.j, _ = d.parse(v, id)
		}
	}

	// Reconcile with the files.
	var writes []func(tx *profile.Tx)
	given := map[string]bool{}
	for _, f := range files {
		j, err := d.loader.Parse(f.File, f.Data)
		if err != nil {
			return nil, err
		}
		given[j.ID] = true
		dj := d.byID[j.ID]
		if dj == nil {
			dj = &defJourney{}
			d.byID[j.ID] = dj
		}
		cur := dj.current()
		lastFile := ""
		for _, v := range slices.Backward(dj.versions) {
			if v.rec.Origin != "" {
				lastFile = v.rec.Source
				break
			}
		}
		src := string(f.Data)
		if cur != nil && (src == cur.rec.Source || (lastFile != "" && src == lastFile)) {
			// Unchanged since it was last loaded.
			if dj.deleted && dj.fileGone {
				dj.deleted, dj.fileGone = false, false
				writes = append(writes, d.writeHead(j.ID, dj))
			}
			continue
		}
		v := &defVersion{n: 1, rec: defRecord{Source: src, Origin: f.File, At: now.UTC()}, j: j}
		if cur != nil {
			v.n = cur.n + 1
		}
		j.Version = v.n
		dj.versions = append(dj.versions, v)
		undelete := dj.deleted
		dj.deleted, dj.fileGone = false, false
		writes = append(writes, d.writeVersion(j.ID, v, undelete))
	}
	for id, dj := range d.byID {
		if cur := dj.current(); cur != nil && cur.rec.Origin != "" && !given[id] && !dj.deleted {
			dj.deleted, dj.fileGone = true, true
			writes = append(writes, d.writeHead(id, dj))
		}
	}
	cat, err := d.catalog()
	if err != nil {
		return nil, err
	}
	if err := d.commit(ctx, writes...); err != nil {
		return nil, err
	}
	rt.cat.Store(cat)
	return d, nil
}

// parse parses a stored version, numbered.
func (d *Definitions) parse(v *defVersion, id string) (*Journey, error) {
	j, err := d.loader.Parse(v.rec.Origin, []byte(v.rec.Source))
	if err != nil {
		return nil, err
	}
	if j.ID != id {
		return nil, fmt.Errorf("%w: journey store: version %d of %s holds journey %s", errCorrupt, v.n, id, j.ID)
	}
	j.Version = v.n
	return j, nil
}

func (d *Definitions) writeVersion(id string, v *defVersion, head bool) func(tx *profile.Tx) {
	b, _ := json.Marshal(v.rec)
	return func(tx *profile.Tx) {
		tx.Set(defVersionKey(id, v.n), b)
		if head {
			tx.Set(defHeadKey(id), []byte(`{}`))
		}
	}
}

func (d *Definitions) writeHead(id string, dj *defJourney) func(tx *profile.Tx) {
	b, _ := json.Marshal(defHead{Deleted: dj.deleted, FileGone: dj.fileGone})
	return func(tx *profile.Tx) { tx.Set(defHeadKey(id), b) }
}

// commit writes in one engine transaction, committed before it returns.
func (d *Definitions) commit(ctx context.Context, writes ...func(tx *profile.Tx)) error {
	if len(writes) == 0 {
		return nil
	}
	err := d.rt.cfg.Engine.Do(ctx, func(tx *profile.Tx) error {
		for _, w := range writes {
			w(tx)
		}
		tx.Urgent()
		return nil
	})
	if err != nil {
		return fmt.Errorf("journey store: %w", err)
	}
	return nil
}

// catalog compiles every version held: a current version that fails is an
// error; an older one that no longer compiles (a channel or template gone)
// is left out, and its runs end with the reason "unloaded".
func (d *Definitions) catalog() (*catalog, error) {
	var js []*Journey
	retired := map[string]bool{}
	var errs []error
	names, named := d.rt.channelNames(), d.rt.cfg.Templates
	for _, id := range slices.Sorted(maps.Keys(d.byID)) {
		dj := d.byID[id]
		if dj.deleted {
			retired[id] = true
		}
		for _, v := range dj.versions {
			if v.j == nil {
				if v == dj.current() && !dj.deleted {
					_, err := d.parse(v, id)
					errs = append(errs, err)
				}
				continue
			}
			if _, err := compileJourney(v.j, names, named); err != nil {
				if v == dj.current() && !dj.deleted {
					errs = append(errs, err)
				}
				continue
			}
			js = append(js, v.j)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	cat, err := newCatalog(js, names, named)
	if err != nil {
		return nil, err
	}
	cat.retire(retired)
	return cat, nil
}

// retire keeps the versions of the journeys ids for their runs, and
// starts no new run of them.
func (c *catalog) retire(ids map[string]bool) {
	if len(ids) == 0 {
		return
	}
	c.current = slices.DeleteFunc(c.current, func(x *compiled) bool { return ids[x.j.ID] })
	for id := range ids {
		delete(c.byID, id)
	}
	c.anyEvent = false
	for _, x := range c.current {
		t := x.j.Trigger
		if t.Kind == TriggerProfile || (t.Kind == TriggerAbsence && t.Absence.Event.Name == "" && t.Absence.Event.Type == "") {
			c.anyEvent = true
		}
	}
}

// channelNames returns the names of the runtime's channels, sorted.
func (rt *Runtime) channelNames() []string {
	return slices.Sorted(maps.Keys(rt.channels))
}

// Get returns the current version of a journey; false when there is none
// or it is deleted.
func (d *Definitions) Get(id string) (Definition, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	dj := d.byID[id]
	if dj == nil || dj.deleted || dj.current() == nil || dj.current().j == nil {
		return Definition{}, false
	}
	cur := dj.current()
	def := Definition{Journey: cur.j, Source: cur.rec.Source}
	for _, v := range dj.versions {
		def.Versions = append(def.Versions, v.n)
	}
	return def, true
}

// Put stores src as the definition of the journey id, parsed and
// validated as a file is (errors are *Error values naming the line and
// the field; filename names the source in them). The document's id must
// be id or absent (then the id is added to the stored source). It returns
// the version now current, and whether the journey was created (it did
// not exist or was deleted). A source equal to the current version's is
// no change.
func (d *Definitions) Put(ctx context.Context, id, filename string, src []byte) (version int, created bool, err error) {
	if !validID(id) {
		return 0, false, &Error{Pos{File: filename, Field: "id"}, fmt.Sprintf("%q is not a journey id: letters, digits and - _ . (not first), at most 128", id)}
	}
	src, shift, err := withID(id, filename, src)
	if err != nil {
		return 0, false, err
	}
	j, err := d.loader.Parse(filename, src)
	if err != nil {
		return 0, false, shiftLines(err, shift)
	}
	if j.ID != id {
		e := &Error{j.pos("id"), fmt.Sprintf("is %q, and the journey's path names %q", j.ID, id)}
		e.Line -= shift
		return 0, false, e
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	dj := d.byID[id]
	created = dj == nil || dj.deleted || dj.current() == nil
	if dj != nil && dj.current() != nil && string(src) == dj.current().rec.Source && dj.current().j != nil {
		if !dj.deleted {
			return dj.current().n, false, nil
		}
		gone := dj.fileGone
		dj.deleted, dj.fileGone = false, false
		cat, err := d.catalog()
		if err == nil {
			err = d.commit(ctx, d.writeHead(id, dj))
		}
		if err != nil {
			dj.deleted, dj.fileGone = true, gone
			return 0, false, err
		}
		d.rt.cat.Store(cat)
		return dj.current().n, true, nil
	}
	if dj == nil {
		dj = &defJourney{}
		d.byID[id] = dj
	}
	v := &defVersion{n: 1, rec: defRecord{Source: string(src), At: d.rt.cfg.Clock.Now().UTC()}, j: j}
	if cur := dj.current(); cur != nil {
		v.n = cur.n + 1
	}
	j.Version = v.n
	wasDeleted, gone := dj.deleted, dj.fileGone
	dj.versions = append(dj.versions, v)
	dj.deleted, dj.fileGone = false, false
	undo := func() {
		dj.versions = dj.versions[:len(dj.versions)-1]
		dj.deleted, dj.fileGone = wasDeleted, gone
		if len(dj.versions) == 0 {
			delete(d.byID, id)
		}
	}
	cat, err := d.catalog()
	if err != nil {
		undo()
		return 0, false, shiftLines(err, shift)
	}
	if err := d.commit(ctx, d.writeVersion(id, v, wasDeleted)); err != nil {
		undo()
		return 0, false, err
	}
	d.rt.cat.Store(cat)
	return v.n, created, nil
}

// Delete stops new runs of a journey; runs already started finish on their
// version. Its versions are kept: a later Put makes the next one.
func (d *Definitions) Delete(ctx context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	dj := d.byID[id]
	if dj == nil || dj.deleted || dj.current() == nil {
		return ErrUnknownJourney
	}
	gone := dj.fileGone
	dj.deleted, dj.fileGone = true, false
	cat, err := d.catalog()
	if err == nil {
		err = d.commit(ctx, d.writeHead(id, dj))
	}
	if err != nil {
		dj.deleted, dj.fileGone = false, gone
		return err
	}
	d.rt.cat.Store(cat)
	return nil
}

// withID returns src with the journey id added when it has none, and how
// many lines were added before the document's first.
func withID(id, filename string, src []byte) ([]byte, int, error) {
	var top map[string]any
	if err := yaml.Unmarshal(src, &top); err != nil || top == nil {
		return src, 0, nil // the parser names the problem
	}
	if _, ok := top["id"]; ok {
		return src, 0, nil
	}
	trimmed := bytes.TrimLeft(src, " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] == '{' { // JSON: on the same line
		i := len(src) - len(trimmed) + 1
		q, _ := json.Marshal(id)
		out := append(append(append(slices.Clip(src[:i]), `"id":`...), q...), ',')
		return append(out, src[i:]...), 0, nil
	}
	q, _ := json.Marshal(id)
	return append(append([]byte("id: "), append(q, '\n')...), src...), 1, nil
}

// shiftLines moves the lines of the *Error values in err up by n.
func shiftLines(err error, n int) error {
	if n == 0 || err == nil {
		return err
	}
	var errs []error
	for _, e := range Errors(err) {
		if e.Line > n {
			e.Line -= n
		}
		errs = append(errs, e)
	}
	return errors.Join(errs...)
}

// Errors returns the *Error values err joins (a Parse or Put error), in
// order; an error that is no *Error becomes one with its text.
func Errors(err error) []*Error {
	var out []*Error
	var walk func(error)
	walk = func(err error) {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		if e, ok := err.(*Error); ok {
			c := *e
			out = append(out, &c)
			return
		}
		if inner := errors.Unwrap(err); inner != nil {
			walk(inner)
			return
		}
		out = append(out, &Error{Msg: err.Error()})
	}
	if err != nil {
		walk(err)
	}
	return out
}
