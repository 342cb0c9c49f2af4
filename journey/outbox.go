package journey

import (
	"context"
	"encoding/hex"
	"errors"
	"slices"
	"time"

	"github.com/nudge-dev/nudge/channel"
)

// The outbox, read by operators: the send jobs waiting for their channel
// (sends.go), in due order, as the admin API and the dashboard list them.
// A job is named by its key's suffix (due time and job id), as a dead
// letter is; a job that is attempted and retried moves to a new due time,
// so its id changes and the old one answers ErrNoDelivery. Listing reads
// the store: what the engine has not committed yet is not listed.

// ErrNoDelivery is returned for an id the outbox does not hold.
var ErrNoDelivery = errors.New("journey: no such delivery")

// Delivery is one send job waiting in the outbox.
type Delivery struct {
	// ID names the job in the admin API.
	ID       string `json:"id"`
	Journey  string `json:"journey"`
	Version  int    `json:"version"`
	Step     string `json:"step"`
	Channel  string `json:"channel"`
	Attempts int    `json:"attempts"`
	// Due is when the job is (next) attempted.
	Due time.Time `json:"due"`
	// CreatedAt is when the run decided to send.
	CreatedAt time.Time `json:"createdAt"`
	// InFlight is set while an attempt on a channel that does not drop
	// repeats is under way (or was, when nudge stopped during it).
	InFlight      bool `json:"inFlight"`
	Transactional bool `json:"transactional"`
	// Message is the message, in DeliveryByID only; nil when its person
	// was erased.
	Message *channel.Message `json:"message,omitempty"`
}

func viewDelivery(k []byte, h *jobHeader) Delivery {
	due, _, _ := parseDueKey(prefixJob, k)
	return Delivery{
		ID: hex.EncodeToString(k[len(prefixJob):]), Journey: h.journey, Version: h.version,
		Step: h.step, Channel: h.channel, Attempts: h.attempts,
		Due: fromNanos(due), CreatedAt: fromNanos(h.created),
		InFlight: h.has(jobInFlight), Transactional: h.has(jobTransactional),
	}
}

// jobKeyOf parses an id of the admin API.
func jobKeyOf(id string) ([]byte, bool) {
	b, err := hex.DecodeString(id)
	if err != nil || len(b) != 8+16 {
		return nil, false
	}
	return append([]byte(prefixJob), b...), true
}

// Deliveries lists up to limit queued send jobs, soonest due first, from
// the one after the id after ("": from the start); next is the id to pass
// to list on ("" at the end). An after that is no longer queued (sent or
// retried since) still works: the listing goes on from its place.
func (rt *Runtime) Deliveries(ctx context.Context, after string, limit int) (out []Delivery, next string, err error) {
	from := []byte(prefixJob)
	if after != "" {
		k, ok := jobKeyOf(after)
		if !ok {
			return nil, "", ErrNoDelivery
		}
		from = append(k, 0)
	}
	out = []Delivery{}
	err = rt.cfg.Store.ScanExt(ctx, from, endOf(prefixJob), func(k, v []byte) error {
		if _, _, ok := parseDueKey(prefixJob, k); !ok {
			return nil
		}
		if len(out) == limit {
			next = out[len(out)-1].ID
			return errStop
		}
		h, err := parseJobHeader(v)
		if err != nil {
			return err
		}
		out = append(out, viewDelivery(k, h))
		return nil
	})
	if err == errStop {
		err = nil
	}
	return out, next, err
}

// DeliveryByID returns one queued job with its message.
func (rt *Runtime) DeliveryByID(ctx context.Context, id string) (*Delivery, error) {
	k, ok := jobKeyOf(id)
	if !ok {
		return nil, ErrNoDelivery
	}
	var found *Delivery
	err := rt.cfg.Store.ScanExt(ctx, k, append(slices.Clone(k), 0), func(k, v []byte) error {
		h, err := parseJobHeader(slices.Clone(v))
		if err != nil {
			return err
		}
		view := viewDelivery(k, h)
		if m, err := rt.decodeJob(h); err == nil {
			view.Message = m
		}
		found = &view
		return nil
	})
	if err == nil && found == nil {
		err = ErrNoDelivery
	}
	return found, err
}
