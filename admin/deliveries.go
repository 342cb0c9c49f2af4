package admin

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/nudge-dev/nudge/api"
	"github.com/nudge-dev/nudge/journey"
)

// The outbox: sends queued for their channel, due now or waiting for a
// retry (see journey/outbox.go).

const maxDeliveryPage = 1000

// listDeliveries answers GET /v1/deliveries?limit=&after=, soonest due
// first. It reports no total: counting would read the whole queue.
func (a *API) listDeliveries(w http.ResponseWriter, r *http.Request) {
	limit := 100
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxDeliveryPage {
			api.WriteError(w, &api.Error{Status: http.StatusBadRequest, Code: api.CodeInvalidQuery, Field: "limit",
				Message: fmt.Sprintf("limit must be a whole number from 1 to %d", maxDeliveryPage)})
			return
		}
		limit = n
	}
	items, next, err := a.journeys.Deliveries(r.Context(), r.URL.Query().Get("after"), limit)
	if errors.Is(err, journey.ErrNoDelivery) {
		api.WriteError(w, &api.Error{Status: http.StatusBadRequest, Code: api.CodeInvalidQuery, Field: "after",
			Message: "after must be the id of a delivery (the next field of the previous page)"})
		return
	}
	if err != nil {
		a.logger.Error("deliveries", "err", err)
		api.WriteError(w, api.ErrUnavailable)
		return
	}
	writeJSON(w, map[string]any{"items": items, "next": next})
}

// getDelivery answers GET /v1/deliveries/{id}: the queued send and its
// message.
func (a *API) getDelivery(w http.ResponseWriter, r *http.Request) {
	d, err := a.journeys.DeliveryByID(r.Context(), r.PathValue("id"))
	switch {
	case err == nil:
		writeJSON(w, d)
	case errors.Is(err, journey.ErrNoDelivery):
		api.WriteError(w, &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound,
			Message: fmt.Sprintf("the outbox holds no delivery %q: sent, retried under a new id, dead-lettered, or never queued (GET /v1/deliveries lists them)", r.PathValue("id"))})
	default:
		a.logger.Error("delivery", "err", err)
		api.WriteError(w, api.ErrUnavailable)
	}
}
