package journey

import (
	"errors"
	"fmt"
	"slices"

	"github.com/nudge-dev/nudge/channel"
	"github.com/nudge-dev/nudge/profile"
)

// Send jobs (the outbox). A send step renders its message and writes it as
// a job, jq/<due>/<job id>, in the same transaction as the run's new state,
// and asks the engine to commit at once (Tx.Urgent). The dispatcher
// (dispatch.go) reads jobs from the store, so it only sees committed ones,
// hands each to its channel's lane, and records each outcome in an engine
// transaction that deletes the job (delivered, or dead-lettered) or moves
// it to its next attempt's due time.
//
// A crash after a provider took a message and before its outcome is
// recorded is the one window no system closes. For a channel whose provider
// drops repeats (channel.Idempotent: signed webhooks, APIs with an
// idempotency key) the job is simply sent again, with the same key. For the
// others (SMTP, SMS, push) the job is marked in flight, durably, before the
// attempt; a job found in flight after a restart was maybe sent: a
// marketing message is not repeated (at most once) but dead-lettered as "in
// doubt", counted and visible; a transactional one is sent again (at least
// once).

// jobHeader is the part of a job in the clear: whose it is (an erasure
// deletes the person's jobs without opening them), which step made it (its
// stats), its channel (its lane), and the delivery state.
type jobHeader struct {
	ref      profile.Ref
	journey  string
	version  int
	step     string
	channel  string
	attempts int
	created  int64 // when the run decided to send, Unix ns: the age bound
	flags    byte
	trace    string // the W3C traceparent of the send step's span ("": none)
	body     []byte
}

// The flags of a job.
const (
	jobSealed        byte = 1 << iota // body is sealed under the person's key
	jobInFlight                       // an attempt on a channel that does not drop repeats began
	jobTransactional                  // at least once, not at most once
	jobRecheck                        // put off (quiet hours): the customer's wishes are checked again when due
)

const jobV2 = 2

func (h *jobHeader) has(f byte) bool { return h.flags&f != 0 }

func (h *jobHeader) encode() []byte {
	var w wbuf
	w.byte(jobV2)
	w.uvarint(uint64(h.ref.Partition))
	w.b = append(w.b, h.ref.P[:]...)
	w.str(h.journey)
	w.varint(int64(h.version))
	w.str(h.step)
	w.str(h.channel)
	w.uvarint(uint64(h.attempts))
	w.varint(h.created)
	w.byte(h.flags)
	w.str(h.trace)
	w.bytes(h.body)
	return w.b
}

func parseJobHeader(v []byte) (*jobHeader, error) {
	r := newRbuf(v)
	if r.byte() != jobV2 {
		return nil, errCorrupt
	}
	h := &jobHeader{}
	h.ref.Partition = int(r.uvarint())
	h.ref.P = r.pseudonym()
	h.journey, h.version, h.step, h.channel = r.str(), int(r.varint()), r.str(), r.str()
	h.attempts = int(r.uvarint())
	h.created = r.varint()
	h.flags = r.byte()
	h.trace = r.str()
	h.body = r.bytes()
	if err := r.done(); err != nil {
		return nil, err
	}
	return h, nil
}

// newJob makes the job of a message: its body sealed under the person's
// key when the runtime has a keyring.
func (rt *Runtime) newJob(ref profile.Ref, m *channel.Message) (*jobHeader, error) {
	var w wbuf
	w.str(m.IdempotencyKey)
	w.str(m.Channel)
	w.str(m.Variant)
	w.str(m.Recipient.ProfileID)
	w.count(len(m.Recipient.Identifiers))
	for _, k := range sortedKeys(m.Recipient.Identifiers) {
		w.str(k)
		w.str(m.Recipient.Identifiers[k])
	}
	w.count(len(m.Fields))
	for _, k := range sortedKeys(m.Fields) {
		w.str(k)
		w.str(m.Fields[k])
	}
	w.bool(m.Transactional)
	w.time(m.CreatedAt)
	w.time(m.TriggeredAt)
	w.str(m.UnsubscribeURL)
	h := &jobHeader{ref: ref, journey: m.Journey, version: m.Version, step: m.Step, channel: m.Channel,
		created: unixNanos(m.CreatedAt), body: w.b}
	if m.Transactional {
		h.flags |= jobTransactional
	}
	if rt.cfg.Keys != nil {
		sealed, err := rt.seal(ref.P, w.b)
		if err != nil {
			return nil, err
		}
		h.flags |= jobSealed
		h.body = sealed
	}
	return h, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// decodeJob opens a job; shred.ErrShredded when its person was erased.
func (rt *Runtime) decodeJob(h *jobHeader) (*channel.Message, error) {
	body := h.body
	if h.has(jobSealed) {
		if rt.cfg.Keys == nil {
			return nil, errors.New("journey: a send job is sealed and the runtime has no keyring")
		}
		var err error
		if body, err = rt.cfg.Keys.Open(nil, h.ref.P, body); err != nil {
			return nil, err
		}
	}
	r := newRbuf(body)
	m := &channel.Message{
		Journey: h.journey, Version: h.version, Step: h.step,
		IdempotencyKey: r.str(), Channel: r.str(), Variant: r.str(),
	}
	m.Recipient.ProfileID = r.str()
	n := r.count()
	m.Recipient.Identifiers = make(map[string]string, n)
	for range n {
		k := r.str()
		m.Recipient.Identifiers[k] = r.str()
	}
	n = r.count()
	m.Fields = make(map[string]string, n)
	for range n {
		k := r.str()
		m.Fields[k] = r.str()
	}
	m.Transactional = r.bool()
	m.CreatedAt = r.time()
	m.TriggeredAt = r.time()
	m.UnsubscribeURL = r.str()
	if err := r.corrupt(); err != nil {
		return nil, fmt.Errorf("journey: send job: %w", err)
	}
	return m, nil
}
