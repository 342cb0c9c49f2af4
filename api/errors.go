// Package api holds what every nudge HTTP API shares: the one table of
// stable error codes and the error body
// {"error":{"code":"...","message":"...","field":"..."}}.
package api

import (
	"encoding/json"
	"net/http"
	"unicode/utf8"
)

// The stable machine codes of *Error. They are part of the HTTP API: never
// rename one; add new ones instead.
//
//	code                status  meaning
//	invalid_json        400     the body (or a JSON data payload) is not valid JSON, or its root is not the
//	                            expected JSON type; the message gives the byte offset
//	invalid_utf8        400     the body holds bytes that are not valid UTF-8 (checked explicitly:
//	                            encoding/json would silently replace them); the message gives the byte offset
//	invalid_number      400     a number is valid JSON but beyond the range of a 64-bit float (1e700):
//	                            no consumer could decode it
//	too_deep            400     objects/arrays nest deeper than Limits.MaxDepth (default 32, the body's
//	                            root counting as level 1)
//	invalid_type        400     a field has the wrong JSON type (e.g. userId an object, properties a
//	                            string, timestamp a number)
//	missing_identity    400     an event has neither a userId nor an anonymousId (CloudEvents: neither a
//	                            subject, a userid nor an anonymousid)
//	missing_field       400     a field the call requires is absent or empty: track without event, group
//	                            without groupId, alias without previousId or userId, a batch item
//	                            without type
//	unknown_type        400     a batch item's "type" (or the call kind) is not a Segment call
//	invalid_timestamp   400     timestamp, originalTimestamp or sentAt is not an RFC 3339 date-time
//	empty_batch         400     a batch has no events (missing, null or empty)
//	event_too_large     413     one event is over Limits.MaxEventBytes (default 32 KiB)
//	batch_too_large     413     the body is over Limits.MaxBatchBytes (default 500 KiB)
//	invalid_cloudevent  400     a CloudEvent breaks the CloudEvents spec (missing or bad id, source,
//	                            type, specversion, time, datacontenttype, extension...) or the request
//	                            is not a CloudEvent at all
//
// and the codes about the request rather than its events:
//
//	code                status  meaning
//	invalid_gzip        400     Content-Encoding: gzip, but the body is not valid gzip
//	bad_body            400     the request body could not be read
//	unauthorized        401     no write key, or an unknown one (Basic auth user, or the body's writeKey);
//	                            on the admin API: no admin token, or a wrong one
//	not_found           404     the route or the thing asked for does not exist
//	invalid_query       400     a query parameter is missing or malformed (Field names it)
//	unavailable         503     the events cannot be stored for now (disk full, shutting down); retry
//	                            after the Retry-After header
//	internal            500     the events could not be stored
//
// Field names the value at fault with the body's own JSON names: "userId",
// "timestamp", "batch[3].userId", "batch[3]" (the whole item) for Segment;
// the attribute name ("type", "time", "data") for CloudEvents, prefixed with
// the index in batch mode ("[2].type"). It is "" when the error is not about
// one field (e.g. the body is not JSON).
const (
	CodeInvalidJSON       = "invalid_json"
	CodeInvalidUTF8       = "invalid_utf8"
	CodeInvalidNumber     = "invalid_number"
	CodeTooDeep           = "too_deep"
	CodeInvalidType       = "invalid_type"
	CodeMissingIdentity   = "missing_identity"
	CodeMissingField      = "missing_field"
	CodeUnknownType       = "unknown_type"
	CodeInvalidTimestamp  = "invalid_timestamp"
	CodeEmptyBatch        = "empty_batch"
	CodeEventTooLarge     = "event_too_large"
	CodeBatchTooLarge     = "batch_too_large"
	CodeInvalidCloudEvent = "invalid_cloudevent"

	CodeBadGzip      = "invalid_gzip"
	CodeBadBody      = "bad_body"
	CodeUnauthorized = "unauthorized"
	CodeUnavailable  = "unavailable"
	CodeInternal     = "internal"
	CodeNotFound     = "not_found"
	CodeInvalidQuery = "invalid_query"
	// CodeInvalidJourney: a journey definition (PUT /v1/journeys/{id}) does
	// not parse or validate; the message names each line and field.
	CodeInvalidJourney = "invalid_journey"
	// CodeInvalidLink: a signed link (unsubscribe, open pixel, click) was
	// forged, changed, cut or has expired.
	CodeInvalidLink = "invalid_link"
	// CodeInvalidSignature: a provider's webhook is not signed with the
	// key configured for it.
	CodeInvalidSignature = "invalid_signature"
)

// Errors shared by several APIs.
var (
	ErrUnavailable       = NewError(CodeUnavailable, "", "the request cannot be served for now: retry later")
	ErrUnauthorizedAdmin = NewError(CodeUnauthorized, "", "the admin API needs the admin token as a Bearer token")
)

// Error is a client error: the HTTP status to answer with, a stable machine
// code (one of the Code* constants), a message naming what is wrong, and the
// field at fault ("batch[3].userId", "timestamp", "" when the error is not
// about one field).
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// Error implements error as "code: field: message" (the field part omitted
// when empty).
func (e *Error) Error() string {
	if e.Field == "" {
		return e.Code + ": " + e.Message
	}
	return e.Code + ": " + e.Field + ": " + e.Message
}

// StatusOf maps each code to its HTTP status.
func StatusOf(code string) int {
	switch code {
	case CodeEventTooLarge, CodeBatchTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeUnauthorized:
		return http.StatusUnauthorized
	case CodeUnavailable:
		return http.StatusServiceUnavailable
	case CodeInternal:
		return http.StatusInternalServerError
	case CodeNotFound:
		return http.StatusNotFound
	case CodeInvalidLink, CodeInvalidSignature:
		return http.StatusForbidden
	}
	return http.StatusBadRequest
}

// maxMessage bounds an error message, which may quote the client's input.
const maxMessage = 512

// NewError makes an error with the status of its code; a long message is cut.
func NewError(code, field, msg string) *Error {
	if len(msg) > maxMessage {
		cut := maxMessage
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut] + "..."
	}
	return &Error{Status: StatusOf(code), Code: code, Message: msg, Field: field}
}

// WriteError answers with e's status and its JSON body. A 503 carries
// Retry-After.
func WriteError(w http.ResponseWriter, e *Error) {
	w.Header().Set("Content-Type", "application/json")
	if e.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	w.WriteHeader(e.Status)
	json.NewEncoder(w).Encode(struct {
		Error *Error `json:"error"`
	}{e})
}
