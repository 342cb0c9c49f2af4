package admin

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/nudge-dev/nudge/api"
	"github.com/nudge-dev/nudge/journey"
)

// The dead-letter queue: sends that failed for good, and sends in doubt
// after a crash (see journey/deadletters.go).

// maxPage bounds a page of the queues' listings.
const maxPage = 1000

// pageQuery reads the limit (default 100) and after parameters of a
// listing; false when it answered an error.
func pageQuery(w http.ResponseWriter, r *http.Request) (after string, limit int, ok bool) {
	limit, ok = limitQuery(w, r, 100, maxPage)
	return r.URL.Query().Get("after"), limit, ok
}

// limitQuery reads the limit parameter: def when it is absent, at most
// max; false when it answered an error.
func limitQuery(w http.ResponseWriter, r *http.Request, def, max int) (int, bool) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return def, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > max {
		api.WriteError(w, &api.Error{Status: http.StatusBadRequest, Code: api.CodeInvalidQuery, Field: "limit",
			Message: fmt.Sprintf("limit must be a whole number from 1 to %d", max)})
		return 0, false
	}
	return n, true
}

// writePage answers a listing: its items and the id to list on from, or
// the error; badAfter is the queue's error for an after that is no id.
func (a *API) writePage(w http.ResponseWriter, what string, page map[string]any, err, badAfter error) {
	switch {
	case err == nil:
		writeJSON(w, page)
	case errors.Is(err, badAfter):
		api.WriteError(w, &api.Error{Status: http.StatusBadRequest, Code: api.CodeInvalidQuery, Field: "after",
			Message: "after must be the id of " + what + " (the next field of the previous page)"})
	default:
		a.logger.Error("listing "+what, "err", err)
		api.WriteError(w, api.ErrUnavailable)
	}
}

// listDeadLetters answers GET /v1/dlq?limit=&after=.
func (a *API) listDeadLetters(w http.ResponseWriter, r *http.Request) {
	after, limit, ok := pageQuery(w, r)
	if !ok {
		return
	}
	items, next, err := a.journeys.DeadLetters(r.Context(), after, limit)
	a.writePage(w, "a dead letter", map[string]any{"items": items, "next": next, "total": a.journeys.DeadLetterCount()},
		err, journey.ErrNoDeadLetter)
}

// getDeadLetter answers GET /v1/dlq/{id}: the entry and its message.
func (a *API) getDeadLetter(w http.ResponseWriter, r *http.Request) {
	dl, err := a.journeys.DeadLetterByID(r.Context(), r.PathValue("id"))
	if a.deadLetterError(w, r, err) {
		return
	}
	writeJSON(w, dl)
}

// redriveDeadLetter answers POST /v1/dlq/{id}/redrive: queued again, due now.
func (a *API) redriveDeadLetter(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if a.deadLetterError(w, r, a.journeys.Redrive(r.Context(), id)) {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	fmt.Fprintf(w, "{\"redriven\":%q}\n", id)
}

// discardDeadLetter answers DELETE /v1/dlq/{id}.
func (a *API) discardDeadLetter(w http.ResponseWriter, r *http.Request) {
	if a.deadLetterError(w, r, a.journeys.Discard(r.Context(), r.PathValue("id"))) {
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) deadLetterError(w http.ResponseWriter, r *http.Request, err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, journey.ErrNoDeadLetter):
		api.WriteError(w, &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound,
			Message: fmt.Sprintf("the dead-letter queue holds no entry %q (GET /v1/dlq lists them)", r.PathValue("id"))})
	default:
		a.logger.Error("dead letter", "err", err)
		api.WriteError(w, api.ErrUnavailable)
	}
	return true
}
