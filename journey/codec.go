package journey

import (
	"encoding/binary"
	"errors"
	"math"
	"time"

	"github.com/nudge-dev/nudge"
	"github.com/nudge-dev/nudge/shred"
)

// errCorrupt is returned for runtime state the runtime did not write.
var errCorrupt = errors.New("journey: corrupt runtime state")

// wbuf appends the runtime's binary encodings: uvarints, varints, strings
// and bytes behind their length, times as Unix nanoseconds (0: zero time).
type wbuf struct{ b []byte }

func (w *wbuf) byte(c byte)      { w.b = append(w.b, c) }
func (w *wbuf) uvarint(x uint64) { w.b = binary.AppendUvarint(w.b, x) }
func (w *wbuf) varint(x int64)   { w.b = binary.AppendVarint(w.b, x) }
func (w *wbuf) u64(x uint64)     { w.b = binary.BigEndian.AppendUint64(w.b, x) }
func (w *wbuf) id(x runID)       { w.b = append(w.b, x[:]...) }
func (w *wbuf) time(t time.Time) { w.varint(unixNanos(t)) }
func (w *wbuf) bool(v bool)      { w.b = append(w.b, b2u(v)) }
func (w *wbuf) str(s string)     { w.b = nudge.AppendString(w.b, s) }
func (w *wbuf) bytes(p []byte)   { w.b = nudge.AppendBytes(w.b, p) }
func (w *wbuf) count(n int)      { w.uvarint(uint64(n)) }

func b2u(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// unixNanos is t in Unix nanoseconds, 0 for the zero time, clamped to what
// an int64 holds.
func unixNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	switch s := t.Unix(); {
	case s > math.MaxInt64/int64(time.Second)-1:
		return math.MaxInt64
	case s < math.MinInt64/int64(time.Second)+1:
		return math.MinInt64
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// rbuf reads what wbuf wrote (the log's decoder, with the runtime's fixed
// fields); the first malformed field makes every later read return zero,
// and corrupt report errCorrupt.
type rbuf struct{ nudge.Decoder }

func newRbuf(b []byte) *rbuf { return &rbuf{*nudge.NewDecoder(b)} }

// corrupt is errCorrupt once a read failed, else nil.
func (r *rbuf) corrupt() error {
	if r.Err() != nil {
		return errCorrupt
	}
	return nil
}

// done is corrupt, and errCorrupt when bytes are left over.
func (r *rbuf) done() error {
	if len(r.Rest()) != 0 {
		return errCorrupt
	}
	return r.corrupt()
}

func (r *rbuf) byte() byte      { return r.Byte() }
func (r *rbuf) uvarint() uint64 { return r.Uvarint() }
func (r *rbuf) varint() int64   { return r.Varint() }
func (r *rbuf) str() string     { return r.String() }
func (r *rbuf) bytes() []byte   { return r.Bytes() }
func (r *rbuf) count() int      { return r.Count() }
func (r *rbuf) time() time.Time { return fromNanos(r.Varint()) }
func (r *rbuf) bool() bool      { return r.Byte() == 1 }

func (r *rbuf) u64() uint64 {
	if p := r.Next(8); p != nil {
		return binary.BigEndian.Uint64(p)
	}
	return 0
}

func (r *rbuf) id() (x runID) {
	copy(x[:], r.Next(len(x)))
	return x
}

func (r *rbuf) pseudonym() (p shred.Pseudonym) {
	copy(p[:], r.Next(len(p)))
	return p
}
