package ingest

import (
	"strconv"

	"github.com/nudge-dev/nudge/api"
)

// The HTTP layer's fixed errors.
var (
	errBadGzip      = api.NewError(api.CodeBadGzip, "", "the body is not valid gzip (Content-Encoding: gzip)")
	errUnauthorized = api.NewError(api.CodeUnauthorized, "", "a valid write key is required: as the Basic auth user name, or as writeKey in the body")
	errUnavailable  = api.NewError(api.CodeUnavailable, "", "the events cannot be stored for now: retry later")
)

// errBatchTooLarge refuses a body over limit bytes.
func errBatchTooLarge(limit int) *api.Error {
	return api.NewError(api.CodeBatchTooLarge, "", "the body is over the limit of "+strconv.Itoa(limit)+" bytes")
}

// fieldName names key of batch item idx ("batch[3].userId"), or key alone
// when idx < 0 (a single call's body). An empty key names the whole item.
func fieldName(idx int, key string) string {
	if idx < 0 {
		return key
	}
	s := "batch[" + strconv.Itoa(idx) + "]"
	if key != "" {
		s += "." + key
	}
	return s
}

// ceFieldName names attribute attr of CloudEvent idx in a batch ("[2].type"),
// or attr alone when idx < 0.
func ceFieldName(idx int, attr string) string {
	if idx < 0 {
		return attr
	}
	s := "[" + strconv.Itoa(idx) + "]"
	if attr != "" {
		s += "." + attr
	}
	return s
}
