package main

import (
	"bytes"
	"compress/gzip"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"
)

// A bodyTemplate is one request body built once, with the spots that change
// per request (messageId counter, userId, timestamp) at known offsets, so
// that a request costs a copy-free patch of a few bytes per event rather than
// a JSON encoding.
type bodyTemplate struct {
	body      []byte
	slots     []eventSlot
	userWidth int    // digits of a userId
	users     uint64 // userIds are u0..u<users-1>
	eventLen  []int  // JSON size of each event (for tests and reports)
}

type eventSlot struct{ msg, user, ts int }

const (
	msgDigits = 16                            // fixed-width counter in each messageId
	tsLayout  = "2006-01-02T15:04:05.000000Z" // ISO 8601, UTC, µs (time to trigger is measured from it), 27 bytes
)

// shopEvents are the event names of a request, in turn, unless --events
// names others.
var shopEvents = []string{"Product Viewed", "Product Added", "Checkout Started", "Order Completed", "Product Clicked"}

// newBodyTemplate builds the body of one request: a {"batch":[...]} of n
// events, or a bare event when track is set, named after names (none:
// shopEvents) in turn.
// Each event's JSON is padded to eventSize bytes (or is as small as it can
// be, if eventSize is smaller).
func newBodyTemplate(runID string, track bool, n, eventSize, users int, names []string) *bodyTemplate {
	if len(names) == 0 {
		names = shopEvents
	}
	t := &bodyTemplate{userWidth: len(strconv.Itoa(max(users-1, 0))), users: uint64(max(users, 1))}
	if track {
		n = 1
	} else {
		t.body = append(t.body, `{"batch":[`...)
	}
	for i := range n {
		if i > 0 {
			t.body = append(t.body, ',')
		}
		start := len(t.body)
		var slot eventSlot
		t.body, slot = appendEvent(t.body, runID, names[i%len(names)], i, t.userWidth, 0)
		if pad := eventSize - (len(t.body) - start); pad > 0 {
			t.body, slot = appendEvent(t.body[:start], runID, names[i%len(names)], i, t.userWidth, pad)
		}
		t.slots = append(t.slots, slot)
		t.eventLen = append(t.eventLen, len(t.body)-start)
	}
	if !track {
		t.body = append(t.body, `]}`...)
	}
	return t
}

func appendEvent(b []byte, runID, name string, i, userWidth, pad int) ([]byte, eventSlot) {
	var s eventSlot
	b = append(b, `{"type":"track","event":"`...)
	b = append(b, name...) // checked by the --events flag: nothing to escape
	b = append(b, `","userId":"u`...)
	s.user = len(b)
	b = append(b, bytes.Repeat([]byte{'0'}, userWidth)...)
	b = append(b, `","messageId":"`...)
	b = append(b, runID...)
	b = append(b, '-')
	s.msg = len(b)
	b = append(b, bytes.Repeat([]byte{'0'}, msgDigits)...)
	b = append(b, `","timestamp":"`...)
	s.ts = len(b)
	b = append(b, tsLayout...)
	b = append(b, `","properties":{"product_id":"p`...)
	b = strconv.AppendInt(b, int64(1000+i%9000), 10)
	b = append(b, `","price":19.99,"currency":"USD","pad":"`...)
	b = append(b, bytes.Repeat([]byte{'x'}, pad)...)
	b = append(b, `"},"context":{"library":{"name":"nudge-load","version":"1.0.0"},"ip":"10.0.0.1","userAgent":"nudge-load"}}`...)
	return b, s
}

// bodyMaker produces request bodies for one worker. It owns its buffer, so
// the caller must not ask for the next body while the previous one may still
// be read by the transport.
type bodyMaker struct {
	t       *bodyTemplate
	buf     []byte
	counter *atomic.Uint64 // shared across workers: messageId sequence
	rng     *rand.Rand
	ts      []byte
	gz      *gzip.Writer // nil: no compression
	gzBuf   bytes.Buffer
}

func newBodyMaker(t *bodyTemplate, counter *atomic.Uint64, seed uint64, gz bool) *bodyMaker {
	m := &bodyMaker{t: t, buf: bytes.Clone(t.body), counter: counter, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	if gz {
		m.gz, _ = gzip.NewWriterLevel(&m.gzBuf, gzip.BestSpeed)
	}
	return m
}

// next patches fresh messageIds, random userIds and the current time into
// the worker's copy of the template and returns it (gzipped if asked).
func (m *bodyMaker) next(now time.Time) []byte {
	n := uint64(len(m.t.slots))
	seq := m.counter.Add(n) - n
	m.ts = now.UTC().AppendFormat(m.ts[:0], tsLayout)
	w := m.t.userWidth
	for i, s := range m.t.slots {
		putDigits(m.buf[s.msg:s.msg+msgDigits], seq+uint64(i))
		putDigits(m.buf[s.user:s.user+w], m.rng.Uint64N(m.t.users))
		copy(m.buf[s.ts:s.ts+len(tsLayout)], m.ts)
	}
	if m.gz == nil {
		return m.buf
	}
	m.gzBuf.Reset()
	m.gz.Reset(&m.gzBuf)
	m.gz.Write(m.buf)
	m.gz.Close()
	return m.gzBuf.Bytes()
}

// fresh gives the maker new buffers, for when the transport may still hold
// the old ones.
func (m *bodyMaker) fresh() {
	m.buf = bytes.Clone(m.buf)
	m.gzBuf = bytes.Buffer{}
}

// putDigits writes v in decimal into all of dst, zero-padded on the left
// (keeping the low digits if v does not fit).
func putDigits(dst []byte, v uint64) {
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = byte('0' + v%10)
		v /= 10
	}
}
