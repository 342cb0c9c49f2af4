package admin

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/nudge-dev/nudge"
	"github.com/nudge-dev/nudge/api"
	"github.com/nudge-dev/nudge/profile"
)

// readYourWrites is how long a profile read waits at most for the events
// acknowledged before it, unless its wait parameter says otherwise (up to
// maxWait; 0: not at all).
const (
	readYourWrites = 5 * time.Second
	maxWait        = 10 * time.Second
)

const (
	recentEvents      = 20
	defaultPageEvents = 50
	maxPageEvents     = 1000
)

// profileView is a profile as the API shows it: values without the event
// times that decided them (the export has those too).
type profileView struct {
	ID            string                     `json:"id"`
	Identities    []profile.Identity         `json:"identities"`
	Traits        map[string]json.RawMessage `json:"traits"`
	Computed      computedView               `json:"computed"`
	Consent       map[string]bool            `json:"consent"`
	Subscriptions map[string]bool            `json:"subscriptions"`
	Timezone      string                     `json:"timezone,omitempty"`
	Dropped       profile.Dropped            `json:"dropped,omitzero"`
	RefusedLinks  int64                      `json:"refusedLinks,omitempty"`
	State         *profile.State             `json:"state,omitempty"` // export only
	Events        []nudge.Event              `json:"events"`
}

type computedView struct {
	FirstSeen time.Time          `json:"firstSeen,omitzero"`
	LastSeen  time.Time          `json:"lastSeen,omitzero"`
	Counts    map[string]int64   `json:"counts"`
	Orders    int64              `json:"orders"`
	Revenue   profile.Money      `json:"revenue"`
	Cart      []profile.CartItem `json:"cart"`
}

func viewOf(p *profile.Profile) *profileView {
	s := &p.State
	v := &profileView{
		ID: p.ID.P.String(), Identities: p.Identities,
		Traits: make(map[string]json.RawMessage, len(s.Traits)),
		Computed: computedView{
			FirstSeen: s.FirstSeen, LastSeen: s.LastSeen, Counts: s.Counts, Orders: s.Orders,
			Revenue: s.Revenue, Cart: s.Cart.Items(),
		},
		Consent:       make(map[string]bool, len(s.Consent)),
		Subscriptions: make(map[string]bool, len(s.Subscriptions)),
		Timezone:      s.Timezone.Value,
		Dropped:       s.Dropped,
		RefusedLinks:  p.Refused,
	}
	for k, t := range s.Traits {
		v.Traits[k] = t.Value
	}
	for k, t := range s.Consent {
		v.Consent[k] = t.Value
	}
	for k, t := range s.Subscriptions {
		v.Subscriptions[k] = t.Value
	}
	if v.Computed.Counts == nil {
		v.Computed.Counts = map[string]int64{}
	}
	if v.Computed.Cart == nil {
		v.Computed.Cart = []profile.CartItem{}
	}
	return v
}

// caughtUp waits until the profiles hold every event acknowledged before
// the request, so a client reads its own writes: the waits end with wait,
// and each looks before it waits, so that an ended wait still tells
// whether they are caught up.
func (a *API) caughtUp(ctx, wait context.Context) error {
	if err := a.fwd.WaitForwarded(wait, a.fwd.Committed()); err != nil {
		return err
	}
	seq, err := a.log.LastSeq(ctx)
	if err != nil {
		return err
	}
	return a.profiles.WaitApplied(wait, seq)
}

// findProfile answers the common start of the profile routes: wait, find,
// or write the error and return nil.
//
// A read waits at most readYourWrites (or its wait parameter) for the
// profiles to catch up; when they are further behind (a consumer that lags
// under load), it answers with what is applied and says so in the
// Nudge-Profiles-Behind header, rather than hold every reader until the
// lag is gone. A read that asks not to wait (wait=0: a client that wrote
// nothing it must read back) answers at once, with the header when it is
// behind.
func (a *API) findProfile(w http.ResponseWriter, r *http.Request) (*profile.Profile, context.Context, context.CancelFunc) {
	bound := readYourWrites
	if s := r.URL.Query().Get("wait"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 || d > maxWait {
			api.WriteError(w, &api.Error{Status: http.StatusBadRequest, Code: api.CodeInvalidQuery, Field: "wait",
				Message: fmt.Sprintf("wait must be a duration from 0 to %s (such as 0, 500ms or 2s), not %q", maxWait, s)})
			return nil, nil, nil
		}
		bound = d
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	wait, stop := context.WithTimeout(ctx, bound)
	err := a.caughtUp(ctx, wait)
	stop()
	if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		w.Header().Set("Nudge-Profiles-Behind", "true")
	} else if err != nil {
		a.logger.Warn("profiles are not caught up with ingest", "err", err)
		api.WriteError(w, api.ErrUnavailable)
		cancel()
		return nil, nil, nil
	}
	id := r.PathValue("id")
	p, err := a.profiles.Find(ctx, id)
	if err != nil {
		a.profileError(w, id, err)
		cancel()
		return nil, nil, nil
	}
	return p, ctx, cancel
}

func (a *API) profileError(w http.ResponseWriter, id string, err error) {
	if errors.Is(err, profile.ErrNotFound) {
		api.WriteError(w, &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound,
			Message: fmt.Sprintf("no profile has the identifier %q (a user id, anonymous id, email or profile id)", id)})
		return
	}
	a.logger.Error("profile", "err", err)
	api.WriteError(w, api.ErrUnavailable)
}

// getProfile answers GET /v1/profiles/{id}.
func (a *API) getProfile(w http.ResponseWriter, r *http.Request) {
	p, ctx, cancel := a.findProfile(w, r)
	if p == nil {
		return
	}
	defer cancel()
	events, _, err := a.profiles.History(ctx, p, profile.Cursor{}, recentEvents)
	if err != nil {
		a.profileError(w, "", err)
		return
	}
	v := viewOf(p)
	v.Events = events
	if v.Events == nil {
		v.Events = []nudge.Event{}
	}
	writeJSON(w, v)
}

// profileEvents answers GET /v1/profiles/{id}/events?limit=&before=: a page
// of the history, newest first, and the cursor of the next page.
func (a *API) profileEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, ok := limitQuery(w, r, defaultPageEvents, maxPageEvents)
	if !ok {
		return
	}
	before, err := parseCursor(q.Get("before"))
	if err != nil {
		api.WriteError(w, &api.Error{Status: http.StatusBadRequest, Code: api.CodeInvalidQuery, Message: err.Error(), Field: "before"})
		return
	}
	p, ctx, cancel := a.findProfile(w, r)
	if p == nil {
		return
	}
	defer cancel()
	events, next, err := a.profiles.History(ctx, p, before, limit)
	if err != nil {
		a.profileError(w, "", err)
		return
	}
	out := struct {
		Events []nudge.Event `json:"events"`
		Next   string        `json:"next,omitempty"`
	}{Events: events}
	if events == nil {
		out.Events = []nudge.Event{}
	}
	if !next.IsZero() {
		out.Next = formatCursor(next)
	}
	writeJSON(w, out)
}

// exportProfile answers GET /v1/profiles/{id}/export: everything held on
// the person as one JSON document, the whole history included, oldest
// event last.
func (a *API) exportProfile(w http.ResponseWriter, r *http.Request) {
	p, ctx, cancel := a.findProfile(w, r)
	if p == nil {
		return
	}
	defer cancel()
	var all []nudge.Event
	for cur := (profile.Cursor{}); ; {
		events, next, err := a.profiles.History(ctx, p, cur, maxPageEvents)
		if err != nil {
			a.profileError(w, "", err)
			return
		}
		all = append(all, events...)
		if next.IsZero() {
			break
		}
		cur = next
	}
	v := viewOf(p)
	v.State = &p.State
	v.Events = all
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", "profile-"+v.ID+".json"))
	writeJSON(w, struct {
		ExportedAt time.Time    `json:"exportedAt"`
		Profile    *profileView `json:"profile"`
	}{time.Now().UTC(), v})
}

// deleteProfile answers DELETE /v1/profiles/{id}: the person is erased
// (profile.Engine.Erase), the erasure is published on the log for every
// other consumer, and the write-ahead log drops every segment written
// before it, so no copy of their keys is left there.
func (a *API) deleteProfile(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	if err := a.caughtUp(ctx, ctx); err != nil {
		api.WriteError(w, api.ErrUnavailable)
		return
	}
	id := r.PathValue("id")
	er, err := a.profiles.Erase(ctx, id)
	if err != nil {
		a.profileError(w, id, err)
		return
	}
	e := nudge.Event{
		Type: nudge.Erase, MessageID: "erase-" + er.Profile.P.String(), Source: "nudge",
		Subject: er.Profile.P.String(), Timestamp: time.Now().UTC(), ReceivedAt: time.Now().UTC(),
	}
	for _, p := range er.Pseudonyms {
		e.Erased = append(e.Erased, p.String())
	}
	if err := a.erasures.PublishErasure(ctx, e, er.Profile.Partition); err != nil {
		// The keys are shredded already: the person is unreadable
		// everywhere. What failed is telling the other consumers.
		a.logger.Error("publishing an erasure failed", "profile", er.Profile.P.String(), "err", err)
		api.WriteError(w, api.ErrUnavailable)
		return
	}
	writeJSON(w, map[string]any{"id": er.Profile.P.String(), "erased": true, "identities": len(er.Pseudonyms)})
}

// A cursor is the event time in nanoseconds and the hash, base64url.
func formatCursor(c profile.Cursor) string {
	b := binary.BigEndian.AppendUint64(nil, uint64(c.Time.UnixNano()))
	b = binary.BigEndian.AppendUint64(b, c.Hash)
	return base64.RawURLEncoding.EncodeToString(b)
}

func parseCursor(s string) (profile.Cursor, error) {
	if s == "" {
		return profile.Cursor{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return profile.Cursor{Time: t}, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 16 {
		return profile.Cursor{}, fmt.Errorf("before must be the next cursor of a previous page or an RFC 3339 time, not %q", s)
	}
	return profile.Cursor{Time: time.Unix(0, int64(binary.BigEndian.Uint64(b))).UTC(), Hash: binary.BigEndian.Uint64(b[8:])}, nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		return // the client went away
	}
}
