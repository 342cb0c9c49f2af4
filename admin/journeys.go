package admin

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/nudge-dev/nudge/api"
	"github.com/nudge-dev/nudge/journey"
)

type journeyView struct {
	ID          string `json:"id"`
	Name        string `json:"name,omitempty"`
	Description string `json:"description,omitempty"`
	Version     int    `json:"version"`
	File        string `json:"file,omitempty"`
	Trigger     string `json:"trigger"`
	Steps       int    `json:"steps"`
}

// listJourneys answers GET /v1/journeys: every loaded journey version.
func (a *API) listJourneys(w http.ResponseWriter, _ *http.Request) {
	out := []journeyView{}
	for _, j := range a.journeys.Journeys() {
		out = append(out, journeyView{
			ID: j.ID, Name: j.Name, Description: j.Description, Version: j.Version, File: j.File,
			Trigger: string(j.Trigger.Kind), Steps: len(j.Steps),
		})
	}
	writeJSON(w, map[string]any{"journeys": out})
}

// journeyStats answers GET /v1/journeys/{id}/stats: entries, per-step
// counts, exits by reason, conversions and split variants, per version.
func (a *API) journeyStats(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	st, err := a.journeys.Stats(id)
	if errors.Is(err, journey.ErrUnknownJourney) {
		api.WriteError(w, &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound,
			Message: fmt.Sprintf("no journey has the id %q (GET /v1/journeys lists them)", id)})
		return
	}
	if err != nil {
		a.logger.Error("journey stats", "journey", id, "err", err)
		api.WriteError(w, api.ErrUnavailable)
		return
	}
	writeJSON(w, st)
}
