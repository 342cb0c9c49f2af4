package ingest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/textproto"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/binding/format"
	"github.com/cloudevents/sdk-go/v2/binding/spec"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/cloudevents/sdk-go/v2/types"

	nudge "github.com/nudge-dev/nudge"
	"github.com/nudge-dev/nudge/api"
)

// ParseCloudEvents maps the body of a POST /v1/cloudevents request (already
// read and decompressed) onto events, in the mode the CloudEvents HTTP
// binding picks from the headers:
//
//   - structured: Content-Type application/cloudevents+json, the body is one
//     event in the JSON event format;
//   - batch: Content-Type application/cloudevents-batch+json, the body is a
//     JSON array of such events;
//   - binary: a ce-specversion header, the attributes in ce-* headers, the
//     body is the data and Content-Type its datacontenttype.
//
// Specversions 1.0 and 0.3 are accepted. Either every event is valid and all
// are returned, or err is an *api.Error: invalid_cloudevent naming the attribute
// ("type", "time"; "[2].type" for the third event of a batch), or one of the
// codes ParseSegment uses (invalid_json, invalid_utf8, too_deep,
// missing_identity, invalid_type, empty_batch, event_too_large,
// batch_too_large). A request that is in none of the three modes is
// invalid_cloudevent on "specversion".
//
// Each CloudEvent becomes a track event:
//
//	nudge.Event field   from the CloudEvent
//	Type                "track"
//	Event               type
//	MessageID           id
//	UserID              the extension userid when present and non-empty (a string, or an
//	                    integer as its decimal text), else subject
//	AnonymousID         the extension anonymousid
//	                    (neither UserID nor AnonymousID: missing_identity on "subject")
//	Timestamp           time; the receive time when absent
//	ReceivedAt          the receive time
//	Properties          data when it is a JSON object (datacontenttype JSON, i.e.
//	                    application/json, text/json, */*+json in binary mode, or absent);
//	                    else {"data": value}: the JSON value itself for other JSON data,
//	                    a string for text data (a text/* Content-Type in binary mode, any
//	                    non-JSON datacontenttype in structured mode), a base64 string for
//	                    binary data (data_base64, or a binary-mode body of another type, or
//	                    of no type that is not JSON); absent when there is no data or
//	                    data is null
//	Context             {"cloudevents": {"source": source, "specversion": specversion,
//	                    "subject": subject, "datacontenttype": datacontenttype,
//	                    "dataschema": dataschema, "extensions": {name: value}}}, absent
//	                    attributes omitted; extensions are every extension but userid and
//	                    anonymousid, strings, integers and booleans as JSON values, other
//	                    kinds as their canonical string form
//	Source              left empty: the caller sets the write key's source
//
// Limits: the body is at most lim.MaxBatchBytes; one event (a structured
// body, a batch element, a binary body) at most lim.MaxEventBytes; nesting
// at most lim.MaxDepth. The events never alias body.
//
// Known limit of the SDK: in structured mode a datacontenttype of the form
// application/*+json (other than application/cloudevents+json) is not taken
// as JSON by sdk-go, which then requires data to be a string.
func ParseCloudEvents(header http.Header, body []byte, now time.Time, lim Limits) ([]nudge.Event, error) {
	events, e := parseCloudEvents(header, body, now.Round(0), lim.withDefaults())
	if e != nil {
		return nil, e
	}
	return events, nil
}

func parseCloudEvents(header http.Header, body []byte, now time.Time, lim Limits) ([]nudge.Event, *api.Error) {
	if len(body) > lim.MaxBatchBytes {
		return nil, api.NewError(api.CodeBatchTooLarge, "", "body is "+strconv.Itoa(len(body))+" bytes, over the limit of "+strconv.Itoa(lim.MaxBatchBytes))
	}
	h, e := ceHeader(header)
	if e != nil {
		return nil, e
	}
	msg := cehttp.NewMessage(h, nil)
	switch msg.ReadEncoding() {
	case binding.EncodingStructured:
		if len(body) > lim.MaxEventBytes {
			return nil, api.NewError(api.CodeEventTooLarge, "", "event is "+strconv.Itoa(len(body))+" bytes, over the limit of "+strconv.Itoa(lim.MaxEventBytes))
		}
		if e := scanRoot(body, '{', lim.MaxDepth, "a structured CloudEvent must be a JSON object"); e != nil {
			return nil, e
		}
		ev, e := decodeStructured(body, -1, now)
		if e != nil {
			return nil, e
		}
		return []nudge.Event{ev}, nil

	case binding.EncodingBatch:
		if e := scanRoot(body, '[', lim.MaxDepth, "a CloudEvents batch must be a JSON array"); e != nil {
			return nil, e
		}
		items := arrayElements(body)
		if len(items) == 0 {
			return nil, api.NewError(api.CodeEmptyBatch, "", "the batch holds no events")
		}
		for i, sp := range items {
			if n := sp.len(); n > lim.MaxEventBytes {
				return nil, api.NewError(api.CodeEventTooLarge, ceFieldName(i, ""), "event is "+strconv.Itoa(n)+" bytes, over the limit of "+strconv.Itoa(lim.MaxEventBytes))
			}
		}
		events := make([]nudge.Event, len(items))
		for i, sp := range items {
			if body[sp.start] != '{' {
				return nil, api.NewError(api.CodeInvalidCloudEvent, ceFieldName(i, ""), "a batch element must be a JSON object")
			}
			ev, e := decodeStructured(body[sp.start:sp.end], i, now)
			if e != nil {
				return nil, e
			}
			events[i] = ev
		}
		return events, nil

	case binding.EncodingBinary:
		if len(body) > lim.MaxEventBytes {
			return nil, api.NewError(api.CodeEventTooLarge, "", "event is "+strconv.Itoa(len(body))+" bytes, over the limit of "+strconv.Itoa(lim.MaxEventBytes))
		}
		ev, e := decodeBinary(msg, h, body, now, lim)
		if e != nil {
			return nil, e
		}
		return []nudge.Event{ev}, nil
	}
	if v := h.Get("Ce-Specversion"); v != "" {
		return nil, api.NewError(api.CodeInvalidCloudEvent, "specversion", "unsupported specversion "+quoteShort(v)+": want 1.0 or 0.3")
	}
	return nil, api.NewError(api.CodeInvalidCloudEvent, "specversion", "not a CloudEvent: want Content-Type application/cloudevents+json (structured), application/cloudevents-batch+json (batch), or ce-* headers with ce-specversion (binary)")
}

// ceHeader copies the header with canonical keys (as the SDK expects) and
// checks the CloudEvents headers' values are UTF-8.
func ceHeader(header http.Header) (http.Header, *api.Error) {
	h := make(http.Header, len(header))
	for k, v := range header {
		ck := textproto.CanonicalMIMEHeaderKey(k)
		isCE := len(ck) >= 3 && strings.EqualFold(ck[:3], "ce-")
		if isCE && len(ck) == 3 {
			return nil, api.NewError(api.CodeInvalidCloudEvent, "", `a "ce-" header names no attribute`)
		}
		if isCE || ck == "Content-Type" {
			attr := "datacontenttype"
			if isCE {
				attr = strings.ToLower(ck[3:])
			}
			if !utf8.ValidString(attr) {
				return nil, api.NewError(api.CodeInvalidUTF8, "", "a header name is not valid UTF-8")
			}
			for _, s := range v {
				if !utf8.ValidString(s) {
					return nil, api.NewError(api.CodeInvalidUTF8, attr, "header "+ck+" is not valid UTF-8")
				}
			}
		}
		h[ck] = append(h[ck], v...)
	}
	return h, nil
}

// scanRoot checks body is one JSON value whose first byte is root.
func scanRoot(body []byte, root byte, maxDepth int, what string) *api.Error {
	s := scanner{buf: body, maxDepth: maxDepth}
	s.ws()
	if s.pos >= len(body) {
		return api.NewError(api.CodeInvalidJSON, "", "empty body: "+what)
	}
	first := body[s.pos]
	if e := s.value(0); e != nil {
		return e
	}
	s.ws()
	if s.pos < len(body) {
		return s.syntaxErr("after the top-level value")
	}
	if first != root {
		return api.NewError(api.CodeInvalidJSON, "", what)
	}
	return nil
}

// arrayElements lists the elements of the validated JSON array body.
func arrayElements(body []byte) []span {
	s := scanner{buf: body, maxDepth: int(^uint(0) >> 1)}
	s.ws()
	s.pos++ // '['
	s.ws()
	var out []span
	if s.buf[s.pos] == ']' {
		return nil
	}
	for {
		start := s.pos
		_ = s.value(1)
		out = append(out, span{start, s.pos})
		s.ws()
		if s.buf[s.pos] == ']' {
			return out
		}
		s.pos++ // ','
		s.ws()
	}
}

// decodeStructured decodes one event in the JSON event format (raw already
// validated as a JSON object) with the SDK.
func decodeStructured(raw []byte, idx int, now time.Time) (nudge.Event, *api.Error) {
	// sdk-go takes a data_base64 of any JSON type (and panics on some).
	start := 0
	for start < len(raw) && isSpace(raw[start]) {
		start++
	}
	for _, m := range members(raw, span{start, len(raw)}) {
		if m.key == "data_base64" && raw[m.valStart] != '"' {
			return nudge.Event{}, api.NewError(api.CodeInvalidCloudEvent, ceFieldName(idx, "data_base64"), "invalid CloudEvent: data_base64 must be a base64 string")
		}
	}
	var ce event.Event
	if err := sdkUnmarshal(raw, &ce); err != nil {
		field := ""
		if ve, ok := err.(event.ValidationError); ok {
			field = firstAttr(ve)
		} else {
			field = structuredFault(raw)
		}
		return nudge.Event{}, api.NewError(api.CodeInvalidCloudEvent, ceFieldName(idx, field), "invalid CloudEvent: "+oneLine(err.Error()))
	}
	if err := ce.Validate(); err != nil {
		return nudge.Event{}, validationError(err, idx)
	}
	props := structuredProperties(&ce)
	return toEvent(&ce, props, idx, now)
}

// sdkUnmarshal runs the SDK's JSON event format decoder, turning its panics
// (it indexes a non-string data_base64 as a string) into errors.
func sdkUnmarshal(raw []byte, ce *event.Event) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed event: %v", r)
		}
	}()
	return format.JSON.Unmarshal(raw, ce)
}

// structuredFault finds the attribute the SDK choked on (its errors do not
// always say), or "".
func structuredFault(raw []byte) string {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return ""
	}
	str := func(k string) (string, bool, bool) { // value, present, is a string (or null)
		v, ok := m[k]
		if !ok {
			return "", false, true
		}
		var s *string
		if json.Unmarshal(v, &s) != nil {
			return "", true, false
		}
		if s == nil {
			return "", true, true
		}
		return *s, true, true
	}
	sv, present, isStr := str("specversion")
	if !present || !isStr || (sv != event.CloudEventsVersionV1 && sv != event.CloudEventsVersionV03) {
		return "specversion"
	}
	for _, a := range []string{"id", "source", "type", "subject", "datacontenttype", "dataschema", "schemaurl", "time", "datacontentencoding"} {
		v, present, isStr := str(a)
		if !present {
			continue
		}
		if !isStr {
			return a
		}
		switch a {
		case "source", "schemaurl":
			if v != "" && types.ParseURIRef(v) == nil {
				return a
			}
		case "time":
			if _, err := types.ParseTimestamp(v); err != nil {
				return a
			}
		case "datacontentencoding":
			if v != event.Base64 {
				return a
			}
		}
	}
	if v, present, isStr := str("data_base64"); present {
		if !isStr {
			return "data_base64"
		}
		if _, err := base64.StdEncoding.DecodeString(v); err != nil {
			return "data_base64"
		}
	}
	if _, ok := m["data"]; ok {
		ct, _, _ := str("datacontenttype")
		if i := strings.IndexByte(ct, ';'); i >= 0 {
			ct = strings.TrimSpace(ct[:i])
		}
		if !sdkJSON(ct) {
			if _, _, isStr := str("data"); !isStr {
				return "data"
			}
		}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch k {
		case "specversion", "id", "source", "type", "subject", "datacontenttype", "dataschema", "schemaurl", "time", "datacontentencoding", "data", "data_base64":
			continue
		}
		if !event.IsExtensionNameValid(k) {
			return k
		}
		var v any
		if json.Unmarshal(m[k], &v) != nil {
			return k
		}
		if _, err := types.Validate(v); v != nil && err != nil {
			return k
		}
	}
	return ""
}

// sdkJSON reports whether sdk-go's JSON event format treats data of media
// type mt (parameters stripped) as a JSON value rather than a string.
func sdkJSON(mt string) bool {
	switch mt {
	case "", event.ApplicationJSON, event.TextJSON, event.ApplicationCloudEventsJSON, event.ApplicationCloudEventsBatchJSON:
		return true
	}
	return false
}

// isJSONMedia reports whether a (lower-case, parameter-less) media type is
// JSON.
func isJSONMedia(mt string) bool {
	return mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json")
}

// attrOrder is the order in which attributes are named when several are
// wrong.
var attrOrder = []string{"specversion", "id", "source", "type", "datacontenttype", "dataschema", "schemaurl", "subject", "time"}

func firstAttr(ve event.ValidationError) string {
	for _, a := range attrOrder {
		if _, ok := ve[a]; ok {
			return a
		}
	}
	keys := make([]string, 0, len(ve))
	for k := range ve {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) > 0 {
		return keys[0]
	}
	return ""
}

func validationError(err error, idx int) *api.Error {
	ve, ok := err.(event.ValidationError)
	if !ok {
		return api.NewError(api.CodeInvalidCloudEvent, ceFieldName(idx, ""), "invalid CloudEvent: "+oneLine(err.Error()))
	}
	a := firstAttr(ve)
	return api.NewError(api.CodeInvalidCloudEvent, ceFieldName(idx, a), "invalid CloudEvent attribute "+a+": "+ve[a].Error())
}

func oneLine(s string) string {
	return strings.TrimSpace(strings.ReplaceAll(s, "\n", "; "))
}

// binaryReader receives a binary-mode message's attributes from the SDK's
// HTTP binding, remembering which attribute it could not set.
type binaryReader struct {
	e      event.Event
	failed string
}

func (b *binaryReader) Start(context.Context) error { return nil }
func (b *binaryReader) End(context.Context) error   { return nil }
func (b *binaryReader) SetData(io.Reader) error {
	return nil // never called: the message is built without a body reader
}

func (b *binaryReader) SetAttribute(attr spec.Attribute, value interface{}) error {
	if attr.Kind() == spec.SpecVersion {
		return nil // the context was made for the header's version
	}
	if value == nil {
		return nil
	}
	if err := attr.Set(b.e.Context, value); err != nil {
		b.failed = attr.Name()
		return err
	}
	return nil
}

func (b *binaryReader) SetExtension(name string, value interface{}) error {
	v, err := types.Validate(value)
	if err == nil {
		err = b.e.Context.SetExtension(name, v)
	}
	if err != nil {
		b.failed = name
	}
	return err
}

func decodeBinary(msg *cehttp.Message, h http.Header, body []byte, now time.Time, lim Limits) (nudge.Event, *api.Error) {
	b := binaryReader{e: event.New(h.Get("Ce-Specversion"))}
	if err := msg.ReadBinary(context.Background(), &b); err != nil {
		return nudge.Event{}, api.NewError(api.CodeInvalidCloudEvent, b.failed, "invalid CloudEvent attribute "+b.failed+": "+oneLine(err.Error()))
	}
	if err := b.e.Validate(); err != nil {
		return nudge.Event{}, validationError(err, -1)
	}
	props, e := binaryProperties(b.e.DataContentType(), body, lim)
	if e != nil {
		return nudge.Event{}, e
	}
	return toEvent(&b.e, props, -1, now)
}

// structuredProperties maps the data of an event decoded from the JSON
// event format.
func structuredProperties(ce *event.Event) json.RawMessage {
	data := ce.DataEncoded
	if len(data) == 0 {
		return nil
	}
	if ce.DataBase64 {
		return wrapString(base64.StdEncoding.EncodeToString(data))
	}
	mt, _ := ce.Context.GetDataMediaType()
	if sdkJSON(mt) {
		return jsonProperties(data)
	}
	return wrapString(string(data))
}

// binaryProperties maps a binary-mode body of content type ct.
func binaryProperties(ct string, body []byte, lim Limits) (json.RawMessage, *api.Error) {
	if len(body) == 0 {
		return nil, nil
	}
	mt := ""
	if ct != "" {
		mt, _, _ = mime.ParseMediaType(ct) // validated by event.Validate
	}
	if mt == "" || isJSONMedia(mt) {
		s := scanner{buf: body, maxDepth: lim.MaxDepth}
		s.ws()
		e := s.value(0)
		if e == nil {
			s.ws()
			if s.pos < len(body) {
				e = s.syntaxErr("after the top-level value")
			}
		}
		if e == nil {
			return jsonProperties(body), nil
		}
		if mt != "" {
			e.Field = "data"
			return nil, e
		}
		// No content type and not JSON: opaque bytes.
	}
	if strings.HasPrefix(mt, "text/") && utf8.Valid(body) {
		return wrapString(string(body)), nil
	}
	return wrapString(base64.StdEncoding.EncodeToString(body)), nil
}

// jsonProperties maps valid JSON data: an object as it is, null as no
// properties, anything else as {"data": value}. The result never aliases
// data.
func jsonProperties(data []byte) json.RawMessage {
	data = bytes.TrimSpace(data)
	switch {
	case len(data) == 0 || string(data) == "null":
		return nil
	case data[0] == '{':
		return bytes.Clone(data)
	}
	out := make([]byte, 0, len(data)+9)
	out = append(out, `{"data":`...)
	out = append(out, data...)
	return append(out, '}')
}

func wrapString(s string) json.RawMessage {
	b, _ := json.Marshal(s) // a string never fails to marshal
	out := make([]byte, 0, len(b)+9)
	out = append(out, `{"data":`...)
	out = append(out, b...)
	return append(out, '}')
}

// ceInfo is context.cloudevents.
type ceInfo struct {
	Source          string         `json:"source"`
	SpecVersion     string         `json:"specversion"`
	Subject         string         `json:"subject,omitempty"`
	DataContentType string         `json:"datacontenttype,omitempty"`
	DataSchema      string         `json:"dataschema,omitempty"`
	Extensions      map[string]any `json:"extensions,omitempty"`
}

// toEvent maps a valid CloudEvent onto a nudge event.
func toEvent(ce *event.Event, props json.RawMessage, idx int, now time.Time) (nudge.Event, *api.Error) {
	ev := nudge.Event{
		Type:       nudge.Track,
		Event:      ce.Type(),
		MessageID:  ce.ID(),
		Properties: props,
		ReceivedAt: now,
		Timestamp:  ce.Time(),
	}
	if ev.Timestamp.IsZero() {
		ev.Timestamp = now
	}
	info := ceInfo{
		Source:          ce.Source(),
		SpecVersion:     ce.SpecVersion(),
		Subject:         ce.Subject(),
		DataContentType: ce.DataContentType(),
		DataSchema:      ce.DataSchema(),
	}
	for name, v := range ce.Extensions() {
		switch name {
		case "userid", "anonymousid":
			s, ok := extID(v)
			if !ok {
				return nudge.Event{}, api.NewError(api.CodeInvalidType, ceFieldName(idx, name), "extension "+name+" must be a string or an integer")
			}
			if name == "userid" {
				ev.UserID = s
			} else {
				ev.AnonymousID = s
			}
			continue
		}
		if info.Extensions == nil {
			info.Extensions = make(map[string]any)
		}
		switch v.(type) {
		case string, bool, int32:
		default:
			if s, err := types.Format(v); err == nil {
				v = s
			} else {
				v = fmt.Sprint(v)
			}
		}
		info.Extensions[name] = v
	}
	if ev.UserID == "" {
		ev.UserID = ce.Subject()
	}
	if ev.UserID == "" && ev.AnonymousID == "" {
		return nudge.Event{}, api.NewError(api.CodeMissingIdentity, ceFieldName(idx, "subject"), "a CloudEvent needs a subject, a userid extension or an anonymousid extension")
	}
	ctx, err := json.Marshal(struct {
		CloudEvents ceInfo `json:"cloudevents"`
	}{info})
	if err != nil {
		return nudge.Event{}, api.NewError(api.CodeInvalidCloudEvent, ceFieldName(idx, ""), "invalid CloudEvent: "+err.Error())
	}
	ev.Context = ctx
	return ev, nil
}

// extID reads the userid or anonymousid extension.
func extID(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case int32:
		return strconv.Itoa(int(v)), true
	}
	return "", false
}
