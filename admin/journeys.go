package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

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

// journeyDoc is GET /v1/journeys/{id}: the current version of a journey.
type journeyDoc struct {
	ID       string         `json:"id"`
	Name     string         `json:"name,omitempty"`
	Version  int            `json:"version"`
	Versions []int          `json:"versions"`
	Trigger  map[string]any `json:"trigger"`
	Steps    []stepView     `json:"steps"`
	Source   string         `json:"source"`
}

type stepView struct {
	ID    string   `json:"id"`
	Type  string   `json:"type"`
	Next  []string `json:"next"`
	Label string   `json:"label"`
}

// maxJourneyBody bounds a PUT body.
const maxJourneyBody = journey.MaxFileSize

func (a *API) unknownJourney(w http.ResponseWriter, id string) {
	api.WriteError(w, &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound,
		Message: fmt.Sprintf("no journey has the id %q (GET /v1/journeys lists them)", id)})
}

// getJourney answers GET /v1/journeys/{id}: the current version.
func (a *API) getJourney(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if a.defs == nil {
		api.WriteError(w, api.ErrUnavailable)
		return
	}
	def, ok := a.defs.Get(id)
	if !ok {
		a.unknownJourney(w, id)
		return
	}
	j := def.Journey
	doc := journeyDoc{ID: j.ID, Name: j.Name, Version: j.Version, Versions: def.Versions,
		Trigger: journey.DescribeTrigger(&j.Trigger), Source: def.Source, Steps: []stepView{}}
	for _, s := range j.Steps {
		next := []string{}
		for _, t := range s.Targets() {
			if t != "" && !slices.Contains(next, t) {
				next = append(next, t)
			}
		}
		doc.Steps = append(doc.Steps, stepView{ID: s.ID, Type: string(s.Kind), Next: next, Label: journey.StepLabel(s)})
	}
	writeJSON(w, doc)
}

// putJourney answers PUT /v1/journeys/{id}: the body (YAML or JSON) is the
// journey's new definition, a new version unless it equals the current one.
func (a *API) putJourney(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if a.defs == nil {
		api.WriteError(w, api.ErrUnavailable)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxJourneyBody+1))
	if err != nil || len(body) > maxJourneyBody {
		api.WriteError(w, api.NewError(api.CodeBadBody, "", fmt.Sprintf("the body must be a journey of at most %d bytes", maxJourneyBody)))
		return
	}
	v, created, err := a.defs.Put(r.Context(), id, "", body)
	var je *journey.Error
	if errors.As(err, &je) {
		api.WriteError(w, journeyError(err))
		return
	}
	if err != nil {
		a.logger.Error("put journey", "journey", id, "err", err)
		api.WriteError(w, api.ErrUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if created {
		w.WriteHeader(http.StatusCreated)
	}
	json.NewEncoder(w).Encode(map[string]any{"id": id, "version": v})
}

// journeyError is the API error of a journey definition's problems: each
// "line N: field: problem", the first one's field as the error's field.
func journeyError(err error) *api.Error {
	errs := journey.Errors(err)
	var lines []string
	for _, e := range errs {
		s := e.Msg
		if e.Field != "" {
			s = e.Field + ": " + s
		}
		if e.Line > 0 {
			s = fmt.Sprintf("line %d: %s", e.Line, s)
		}
		lines = append(lines, s)
	}
	field := ""
	if len(errs) > 0 {
		field = errs[0].Field
	}
	return api.NewError(api.CodeInvalidJourney, field, strings.Join(lines, "; "))
}

// deleteJourney answers DELETE /v1/journeys/{id}: no new runs; runs
// already started finish on their version.
func (a *API) deleteJourney(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if a.defs == nil {
		api.WriteError(w, api.ErrUnavailable)
		return
	}
	err := a.defs.Delete(r.Context(), id)
	if errors.Is(err, journey.ErrUnknownJourney) {
		a.unknownJourney(w, id)
		return
	}
	if err != nil {
		a.logger.Error("delete journey", "journey", id, "err", err)
		api.WriteError(w, api.ErrUnavailable)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
