package journey

import (
	"encoding/binary"
	"errors"
	"math"
	"time"
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
func (w *wbuf) str(s string)     { w.uvarint(uint64(len(s))); w.b = append(w.b, s...) }
func (w *wbuf) bytes(p []byte)   { w.uvarint(uint64(len(p))); w.b = append(w.b, p...) }
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

// rbuf reads what wbuf wrote; the first malformed field sets err and makes
// every later read return zero.
type rbuf struct {
	b   []byte
	err error
}

func (r *rbuf) fail() {
	if r.err == nil {
		r.err = errCorrupt
	}
	r.b = nil
}

func (r *rbuf) byte() byte {
	if len(r.b) == 0 {
		r.fail()
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *rbuf) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *rbuf) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *rbuf) u64() uint64 {
	if len(r.b) < 8 {
		r.fail()
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *rbuf) id() (x runID) {
	if len(r.b) < len(x) {
		r.fail()
		return x
	}
	copy(x[:], r.b)
	r.b = r.b[len(x):]
	return x
}

func (r *rbuf) time() time.Time { return fromNanos(r.varint()) }
func (r *rbuf) bool() bool      { return r.byte() == 1 }

func (r *rbuf) str() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail()
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// bytes returns a copy, nil when empty.
func (r *rbuf) bytes() []byte {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail()
		return nil
	}
	if n == 0 {
		return nil
	}
	p := make([]byte, n)
	copy(p, r.b)
	r.b = r.b[n:]
	return p
}

// count reads a number of items that each take at least one byte.
func (r *rbuf) count() int {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail()
		return 0
	}
	return int(n)
}
