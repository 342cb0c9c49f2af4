package journey

import (
	"context"
	"errors"
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
		ID: idOfKey(prefixJob, k), Journey: h.journey, Version: h.version,
		Step: h.step, Channel: h.channel, Attempts: h.attempts,
		Due: fromNanos(due), CreatedAt: fromNanos(h.created),
		InFlight: h.has(jobInFlight), Transactional: h.has(jobTransactional),
	}
}

// Deliveries lists up to limit queued send jobs, soonest due first, from
// the one after the id after ("": from the start); next is the id to pass
// to list on ("" at the end). An after that is no longer queued (sent or
// retried since) still works: the listing goes on from its place.
func (rt *Runtime) Deliveries(ctx context.Context, after string, limit int) ([]Delivery, string, error) {
	return page(ctx, rt.cfg.Store, prefixJob, after, limit, ErrNoDelivery, func(k, v []byte) (Delivery, error) {
		h, err := parseJobHeader(v)
		if err != nil {
			return Delivery{}, err
		}
		return viewDelivery(k, h), nil
	})
}

// DeliveryByID returns one queued job with its message.
func (rt *Runtime) DeliveryByID(ctx context.Context, id string) (*Delivery, error) {
	return entry(ctx, rt.cfg.Store, prefixJob, id, ErrNoDelivery, func(k, v []byte) (*Delivery, error) {
		h, err := parseJobHeader(v)
		if err != nil {
			return nil, err
		}
		view := viewDelivery(k, h)
		if m, err := rt.decodeJob(h); err == nil {
			view.Message = m
		}
		return &view, nil
	})
}
