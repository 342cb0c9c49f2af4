// Package admin is nudge's admin API: reading back what was stored, and
// watching it live. Every route needs the admin token as a Bearer token.
package admin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync"
	"time"

	"github.com/nudge-dev/nudge"
	"github.com/nudge-dev/nudge/api"
	"github.com/nudge-dev/nudge/bus"
	"github.com/nudge-dev/nudge/journey"
	"github.com/nudge-dev/nudge/profile"
	"github.com/nudge-dev/nudge/shred"
)

// Forwarded tells how far acknowledged events have reached the event log.
type Forwarded interface {
	// Committed is the write-ahead position just past the last acknowledged event.
	Committed() uint64
	// WaitForwarded returns once everything before pos is in the event log.
	WaitForwarded(ctx context.Context, pos uint64) error
}

// Erasures publishes an erasure on the log and clears the write-ahead log
// of what was written before it.
type Erasures interface {
	PublishErasure(ctx context.Context, e nudge.Event, partition int) error
}

// Config is what the admin API reads from.
type Config struct {
	Token     string
	Log       bus.Log
	Forwarded Forwarded
	Keys      *shred.Keyring
	Profiles  *profile.Engine
	Erasures  Erasures
	Journeys  *journey.Runtime
	// Definitions is the journey store behind PUT and DELETE
	// /v1/journeys/{id}.
	Definitions *journey.Definitions
}

// API serves the admin routes.
type API struct {
	token    string
	log      bus.Log
	fwd      Forwarded
	keys     *shred.Keyring
	profiles *profile.Engine
	erasures Erasures
	journeys *journey.Runtime
	defs     *journey.Definitions
	logger   *slog.Logger

	closing   chan struct{} // closed by CloseStreams
	closeOnce sync.Once
}

// New makes the admin API.
func New(cfg Config, logger *slog.Logger) *API {
	return &API{
		token: cfg.Token, log: cfg.Log, fwd: cfg.Forwarded, keys: cfg.Keys,
		profiles: cfg.Profiles, erasures: cfg.Erasures, journeys: cfg.Journeys, defs: cfg.Definitions, logger: logger,
		closing: make(chan struct{}),
	}
}

// CloseStreams ends every live stream, now and from now on: a graceful
// shutdown waits for open requests, and a stream never ends by itself.
// Register it with http.Server.RegisterOnShutdown.
func (a *API) CloseStreams() {
	a.closeOnce.Do(func() { close(a.closing) })
}

// Register adds the admin routes to mux.
func (a *API) Register(mux *http.ServeMux) {
	mux.Handle("GET /v1/events", a.auth(http.HandlerFunc(a.events)))
	mux.Handle("GET /v1/events/stream", a.auth(http.HandlerFunc(a.stream)))
	mux.Handle("GET /v1/profiles/{id}", a.auth(http.HandlerFunc(a.getProfile)))
	mux.Handle("GET /v1/profiles/{id}/events", a.auth(http.HandlerFunc(a.profileEvents)))
	mux.Handle("GET /v1/profiles/{id}/export", a.auth(http.HandlerFunc(a.exportProfile)))
	mux.Handle("DELETE /v1/profiles/{id}", a.auth(http.HandlerFunc(a.deleteProfile)))
	mux.Handle("GET /v1/journeys", a.auth(http.HandlerFunc(a.listJourneys)))
	mux.Handle("GET /v1/journeys/{id}/stats", a.auth(http.HandlerFunc(a.journeyStats)))
	mux.Handle("GET /v1/journeys/{id}", a.auth(http.HandlerFunc(a.getJourney)))
	mux.Handle("PUT /v1/journeys/{id}", a.auth(http.HandlerFunc(a.putJourney)))
	mux.Handle("DELETE /v1/journeys/{id}", a.auth(http.HandlerFunc(a.deleteJourney)))
	mux.Handle("GET /v1/dlq", a.auth(http.HandlerFunc(a.listDeadLetters)))
	mux.Handle("GET /v1/dlq/{id}", a.auth(http.HandlerFunc(a.getDeadLetter)))
	mux.Handle("POST /v1/dlq/{id}/redrive", a.auth(http.HandlerFunc(a.redriveDeadLetter)))
	mux.Handle("DELETE /v1/dlq/{id}", a.auth(http.HandlerFunc(a.discardDeadLetter)))
	mux.Handle("GET /v1/deliveries", a.auth(http.HandlerFunc(a.listDeliveries)))
	mux.Handle("GET /v1/deliveries/{id}", a.auth(http.HandlerFunc(a.getDelivery)))
	// Go's profiler, for an operator chasing CPU or memory.
	mux.Handle("GET /debug/pprof/", a.auth(http.HandlerFunc(pprof.Index)))
	mux.Handle("GET /debug/pprof/profile", a.auth(http.HandlerFunc(pprof.Profile)))
	mux.Handle("GET /debug/pprof/trace", a.auth(http.HandlerFunc(pprof.Trace)))
}

func (a *API) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(token), []byte(a.token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="nudge admin"`)
			api.WriteError(w, api.ErrUnauthorizedAdmin)
			return
		}
		next.ServeHTTP(w, r)
	})
}

const (
	defaultLimit = 100
	maxLimit     = 1000
)

// events answers GET /v1/events?user=ID&limit=N: the customer's most recent
// N stored events, oldest first. It first waits until every event
// acknowledged before the request has reached the log, so a client reads
// its own writes.
//
// It scans the customer's partition of the log: fine for debugging and
// moderate logs; the profile store serves per-customer history at scale.
func (a *API) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	user := q.Get("user")
	if user == "" {
		api.WriteError(w, &api.Error{Status: http.StatusBadRequest, Code: api.CodeInvalidQuery, Message: "the query parameter user is required", Field: "user"})
		return
	}
	limit, ok := limitQuery(w, r, defaultLimit, maxLimit)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	if err := a.fwd.WaitForwarded(ctx, a.fwd.Committed()); err != nil {
		api.WriteError(w, api.ErrUnavailable)
		return
	}
	ring := make([]nudge.Event, 0, limit)
	next := 0
	p := bus.PartitionOf(user, a.log.Partitions())
	subject := a.keys.Pseudonym(user).String()
	err := a.log.Read(ctx, bus.ReadOptions{Partitions: []int{p}}, func(_ context.Context, m bus.Message) error {
		events, err := nudge.DecodeEvents(m.Payload)
		if err != nil {
			return err
		}
		for _, e := range events {
			if e.Subject != subject || !a.open(&e) {
				continue
			}
			if len(ring) < limit {
				ring = append(ring, e)
			} else {
				ring[next] = e
				next = (next + 1) % limit
			}
		}
		return nil
	})
	if err != nil {
		a.logger.Error("read events", "err", err)
		api.WriteError(w, api.ErrUnavailable)
		return
	}
	out := append(ring[next:len(ring):len(ring)], ring[:next]...)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"events": out})
}

// stream answers GET /v1/events/stream with the live stream of events as
// Server-Sent Events, one JSON event per "data:" line; ?user=ID keeps one
// customer's, ?type=track one kind's, ?event=NAME one event name's.
func (a *API) stream(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		api.WriteError(w, &api.Error{Status: http.StatusInternalServerError, Code: api.CodeInternal, Message: "streaming is not supported"})
		return
	}
	q := r.URL.Query()
	user, kind, name := q.Get("user"), q.Get("type"), q.Get("event")
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": connected\n\n")
	flusher.Flush()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		select {
		case <-a.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	opts := bus.ReadOptions{FromTime: time.Now(), Follow: true}
	subject := a.keys.Pseudonym(user).String()
	if user != "" {
		opts.Partitions = []int{bus.PartitionOf(user, a.log.Partitions())}
	}
	err := a.log.Read(ctx, opts, func(_ context.Context, m bus.Message) error {
		events, err := nudge.DecodeEvents(m.Payload)
		if err != nil {
			return err
		}
		sent := false
		for _, e := range events {
			if (user != "" && e.Subject != subject) ||
				(kind != "" && string(e.Type) != kind) || (name != "" && e.Event != name) || !a.open(&e) {
				continue
			}
			b, err := json.Marshal(e)
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
				return err
			}
			sent = true
		}
		if sent {
			flusher.Flush()
		}
		return nil
	})
	if err != nil && ctx.Err() == nil {
		a.logger.Warn("event stream ended", "err", err)
	}
}

// open unseals an event read from the log in place; it reports false for
// an event of an erased person, which is not shown.
func (a *API) open(e *nudge.Event) bool {
	if e.Subject == "" || len(e.Sealed) == 0 {
		return true
	}
	if err := shred.OpenEvent(a.keys, e); err != nil {
		if !errors.Is(err, shred.ErrShredded) {
			a.logger.Warn("an event could not be opened", "subject", e.Subject, "err", err)
		}
		return false
	}
	return true
}
