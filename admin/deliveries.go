package admin

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/nudge-dev/nudge/api"
	"github.com/nudge-dev/nudge/journey"
)

// The outbox: sends queued for their channel, due now or waiting for a
// retry (see journey/outbox.go).

// listDeliveries answers GET /v1/deliveries?limit=&after=, soonest due
// first. It reports no total: counting would read the whole queue.
func (a *API) listDeliveries(w http.ResponseWriter, r *http.Request) {
	after, limit, ok := pageQuery(w, r)
	if !ok {
		return
	}
	items, next, err := a.journeys.Deliveries(r.Context(), after, limit)
	a.writePage(w, "a delivery", map[string]any{"items": items, "next": next}, err, journey.ErrNoDelivery)
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
