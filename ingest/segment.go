package ingest

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/google/uuid"

	nudge "github.com/nudge-dev/nudge"
	"github.com/nudge-dev/nudge/api"
)

// Limits bounds what one request may hold. A zero field means its default.
type Limits struct {
	// MaxEventBytes bounds one event: a single call's body, one batch item's
	// raw JSON, one CloudEvent. Over it: 413 event_too_large. Default 32 KiB.
	MaxEventBytes int
	// MaxBatchBytes bounds a whole body. Over it: 413 batch_too_large.
	// Default 500 KiB; at most 64 MiB (a larger value means 64 MiB).
	MaxBatchBytes int
	// MaxDepth bounds the nesting of objects and arrays, counted from the
	// body's root (the root object or array is level 1, so a batch item's
	// properties object is level 4). Over it: 400 too_deep. Default 32.
	MaxDepth int
}

// DefaultLimits returns Segment's limits: 32 KiB per event, 500 KiB per
// batch, and a nesting depth of 32.
func DefaultLimits() Limits {
	return Limits{MaxEventBytes: 32 * 1024, MaxBatchBytes: 500 * 1024, MaxDepth: 32}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxEventBytes <= 0 {
		l.MaxEventBytes = d.MaxEventBytes
	}
	if l.MaxBatchBytes <= 0 {
		l.MaxBatchBytes = d.MaxBatchBytes
	}
	if l.MaxBatchBytes > maxBatchBytes {
		l.MaxBatchBytes = maxBatchBytes // offsets into a body are int32
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = d.MaxDepth
	}
	return l
}

const maxBatchBytes = 64 << 20

// KindBatch is the kind of POST /v1/batch; the other kinds are the
// nudge.EventType values.
const KindBatch = "batch"

// ParseSegment parses the (already decompressed) body of POST /v1/{kind},
// kind being one of the Segment calls ("track", "identify", "page",
// "screen", "group", "alias") or "batch". now is the receive time.
//
// It returns the events and the body's "writeKey" field ("" when absent).
// Either every event is valid and all are returned, or none is and err is
// an *api.Error naming the first fault (the field as "userId" in a single call,
// "batch[3].userId" in a batch).
//
// Each returned event has:
//   - Type: the path's kind for a single call (a disagreeing "type" in the
//     body is ignored, as Segment does), the item's "type" in a batch;
//   - MessageID: the body's messageId, or a new random UUID when absent;
//   - UserID, AnonymousID, PreviousID, GroupID: strings; a JSON number is
//     accepted and kept as its decimal text: an integer as written
//     (1234 -> "1234"), any other number without exponent (1e3 -> "1000",
//     1.50 -> "1.5"), refused (invalid_type) when that is over 32 characters;
//   - Timestamp: timestamp when present; else, when originalTimestamp and
//     sentAt are both present, now - (sentAt - originalTimestamp) (Segment's
//     clock-skew correction); else originalTimestamp; else now. A timestamp
//     equal to Go's zero time ("0001-01-01T00:00:00Z") counts as absent.
//     Timestamps keep the offset the client sent;
//   - OriginalTimestamp, SentAt as sent (SentAt inherited from the batch),
//     ReceivedAt = now; Source is left for the caller to set.
//   - Properties, Traits, Context, Integrations, Metadata: the raw JSON
//     objects of the body, as sent. In a batch, the batch's context and
//     integrations are merged under each item's: the item's top-level keys
//     win, the batch's other top-level keys are appended.
//
// Memory: the events never alias body, which the caller may reuse once
// ParseSegment returns. For speed, the string fields of all the events of
// one call share one allocation, and their raw JSON fields another (each
// RawMessage is capped, so appending to one never writes into another):
// keeping any one of them alive keeps the call's whole set alive. Copy a
// field (strings.Clone, bytes.Clone) to keep it for long on its own.
//
// The body is checked in one pass: valid JSON, valid UTF-8 in strings, depth
// at most lim.MaxDepth. Object keys match exactly (case-sensitive, unlike
// encoding/json); with a duplicate key the last one wins. Unknown fields are
// ignored. A null value counts as an absent field.
func ParseSegment(kind string, body []byte, now time.Time, lim Limits) (events []nudge.Event, writeKey string, err error) {
	lim = lim.withDefaults()
	batch := kind == KindBatch
	if !batch && !nudge.EventType(kind).Valid() {
		return nil, "", api.NewError(api.CodeUnknownType, "", "unknown call kind "+strconv.Quote(kind)+`: want track, identify, page, screen, group, alias or batch`)
	}
	if len(body) > lim.MaxBatchBytes {
		return nil, "", api.NewError(api.CodeBatchTooLarge, "", "body is "+strconv.Itoa(len(body))+" bytes, over the limit of "+strconv.Itoa(lim.MaxBatchBytes))
	}
	if !batch && len(body) > lim.MaxEventBytes {
		return nil, "", api.NewError(api.CodeEventTooLarge, "", "event is "+strconv.Itoa(len(body))+" bytes, over the limit of "+strconv.Itoa(lim.MaxEventBytes))
	}
	p := segParser{s: scanner{buf: body, maxDepth: lim.MaxDepth}, lim: lim, sb: make([]byte, 0, len(body)/4)}
	if e := p.parse(batch); e != nil {
		return nil, "", e
	}
	if p.deferred != nil {
		return nil, "", p.deferred
	}
	if batch && len(p.items) == 0 {
		return nil, "", api.NewError(api.CodeEmptyBatch, "batch", "the batch holds no events")
	}
	events, e := p.build(nudge.EventType(kind), batch, now.Round(0))
	if e != nil {
		return nil, "", e
	}
	return events, p.writeKeyStr, nil
}

// span is a value's extent in the body; end == 0 means absent.
type span struct{ start, end int }

func (s span) ok() bool { return s.end != 0 }
func (s span) len() int { return s.end - s.start }

// sref is a string in segParser.sb; n == 0 is the empty or absent string.
type sref struct{ off, n int32 }

// rawItem is one event as read from the body, before validation.
type rawItem struct {
	typ                                                 sref
	messageID, userID, anonymousID, previousID, groupID sref
	event, name, category, channel                      sref
	timestamp, originalTimestamp, sentAt                sref
	properties, traits, context, integrations, metadata span
}

type segParser struct {
	s        scanner
	lim      Limits
	items    []rawItem
	deferred *api.Error // first type error: reported once the body is known to be well-formed JSON
	// sb holds the (unquoted) content of every string field read, so that
	// the events' strings take one allocation per call, not one per field.
	sb []byte

	// batch envelope
	writeKey, sentAt      sref
	context, integrations span
	writeKeyStr           string
}

// setStr stores the string content b (escaped when esc) in p.sb.
func (p *segParser) setStr(dst *sref, b []byte, esc bool) {
	off := len(p.sb)
	if esc {
		p.sb = appendUnquote(p.sb, b)
	} else {
		p.sb = append(p.sb, b...)
	}
	*dst = sref{int32(off), int32(len(p.sb) - off)}
}

func (p *segParser) deferErr(code, field, msg string) {
	if p.deferred == nil {
		p.deferred = api.NewError(code, field, msg)
	}
}

// parse scans the whole body, filling p.items and the envelope fields.
func (p *segParser) parse(batch bool) *api.Error {
	s := &p.s
	s.ws()
	if s.pos >= len(s.buf) {
		return api.NewError(api.CodeInvalidJSON, "", "empty body: want a JSON object")
	}
	if s.buf[s.pos] != '{' {
		if e := s.value(0); e != nil {
			return e
		}
		return api.NewError(api.CodeInvalidJSON, "", "body must be a JSON object")
	}
	var e *api.Error
	if batch {
		e = p.envelope()
	} else {
		p.items = make([]rawItem, 1)
		e = p.item(&p.items[0], -1, 0)
	}
	if e != nil {
		return e
	}
	s.ws()
	if s.pos < len(s.buf) {
		return s.syntaxErr("after the top-level value")
	}
	return nil
}

// Keys the parser knows; 0 is any other key.
const (
	kOther = iota
	kType
	kMessageID
	kUserID
	kAnonymousID
	kPreviousID
	kGroupID
	kEvent
	kName
	kCategory
	kChannel
	kTimestamp
	kOriginalTimestamp
	kSentAt
	kProperties
	kTraits
	kContext
	kIntegrations
	kMetadata
	kWriteKey
	kBatch
)

func keyOf(b []byte) int {
	switch string(b) {
	case "type":
		return kType
	case "messageId":
		return kMessageID
	case "userId":
		return kUserID
	case "anonymousId":
		return kAnonymousID
	case "previousId":
		return kPreviousID
	case "groupId":
		return kGroupID
	case "event":
		return kEvent
	case "name":
		return kName
	case "category":
		return kCategory
	case "channel":
		return kChannel
	case "timestamp":
		return kTimestamp
	case "originalTimestamp":
		return kOriginalTimestamp
	case "sentAt":
		return kSentAt
	case "properties":
		return kProperties
	case "traits":
		return kTraits
	case "context":
		return kContext
	case "integrations":
		return kIntegrations
	case "_metadata":
		return kMetadata
	case "writeKey":
		return kWriteKey
	case "batch":
		return kBatch
	}
	return kOther
}

// key reads an object key and the colon after it, returning the key's id.
// It leaves the key in s.key, so that errors in its value name it.
func (p *segParser) key(idx int) (int, *api.Error) {
	s := &p.s
	if s.pos >= len(s.buf) || s.buf[s.pos] != '"' {
		return 0, s.syntaxErr("looking for an object key")
	}
	start, end, esc, e := s.str()
	if e != nil {
		return 0, e
	}
	var k int
	if esc {
		k = keyOf([]byte(unquote(s.buf[start:end])))
	} else {
		k = keyOf(s.buf[start:end])
	}
	s.ws()
	if s.pos >= len(s.buf) || s.buf[s.pos] != ':' {
		return 0, s.syntaxErr("after an object key")
	}
	s.pos++
	s.ws()
	s.key, s.keyEsc, s.idx = span{start, end}, esc, idx
	return k, nil
}

// envelope parses a /v1/batch body's root object; s.pos is at '{'.
func (p *segParser) envelope() *api.Error {
	s := &p.s
	if 1 > s.maxDepth {
		return s.tooDeep("")
	}
	if s.open('}') {
		return nil
	}
	for {
		k, e := p.key(-1)
		if e != nil {
			return e
		}
		switch k {
		case kBatch:
			s.key = span{}
			e = p.batchArray()
		case kWriteKey:
			e = p.str(&p.writeKey, 1)
		case kSentAt:
			e = p.str(&p.sentAt, 1)
		case kContext:
			e = p.obj(&p.context, 1)
		case kIntegrations:
			e = p.obj(&p.integrations, 1)
		default:
			e = s.value(1)
		}
		s.key = span{}
		if e != nil {
			return e
		}
		done, e := s.objectNext()
		if e != nil || done {
			return e
		}
	}
}

// batchArray parses the value of the envelope's "batch" key.
func (p *segParser) batchArray() *api.Error {
	s := &p.s
	p.items = p.items[:0] // a duplicate "batch" key replaces the earlier one
	if s.pos >= len(s.buf) {
		return s.syntaxErr("looking for a value")
	}
	switch s.buf[s.pos] {
	case '[':
	case 'n':
		return s.value(1)
	default:
		p.deferErr(api.CodeInvalidType, "batch", "batch must be an array of events")
		return s.value(1)
	}
	if 2 > s.maxDepth {
		return s.tooDeep("batch")
	}
	s.pos++
	s.ws()
	if s.pos < len(s.buf) && s.buf[s.pos] == ']' {
		s.pos++
		return nil
	}
	if p.items == nil {
		p.items = make([]rawItem, 0, 1+len(s.buf)/512)
	}
	for {
		idx := len(p.items)
		p.items = append(p.items, rawItem{})
		start := s.pos
		var e *api.Error
		if s.pos < len(s.buf) && s.buf[s.pos] == '{' {
			e = p.item(&p.items[idx], idx, 2)
		} else {
			e = s.value(2)
			p.deferErr(api.CodeInvalidType, fieldName(idx, ""), "a batch item must be a JSON object")
		}
		if e != nil {
			return e
		}
		if n := s.pos - start; n > p.lim.MaxEventBytes {
			return api.NewError(api.CodeEventTooLarge, fieldName(idx, ""), "event is "+strconv.Itoa(n)+" bytes, over the limit of "+strconv.Itoa(p.lim.MaxEventBytes))
		}
		if done, e := s.arrayNext("after a batch item"); e != nil || done {
			return e
		}
	}
}

// item parses one event object (s.pos at '{') enclosed in depth containers;
// idx is its batch index, -1 for a single call's body.
func (p *segParser) item(it *rawItem, idx, depth int) *api.Error {
	s := &p.s
	depth++ // the item's own level
	if depth > s.maxDepth {
		return s.tooDeep(fieldName(idx, ""))
	}
	s.pos++
	s.ws()
	if s.pos < len(s.buf) && s.buf[s.pos] == '}' {
		s.pos++
		return nil
	}
	for {
		k, e := p.key(idx)
		if e != nil {
			return e
		}
		switch k {
		case kType:
			if idx < 0 { // a single call: the path's kind wins
				e = s.value(depth)
			} else {
				e = p.str(&it.typ, depth)
			}
		case kMessageID:
			e = p.str(&it.messageID, depth)
		case kUserID:
			e = p.id(&it.userID, depth)
		case kAnonymousID:
			e = p.id(&it.anonymousID, depth)
		case kPreviousID:
			e = p.id(&it.previousID, depth)
		case kGroupID:
			e = p.id(&it.groupID, depth)
		case kEvent:
			e = p.str(&it.event, depth)
		case kName:
			e = p.str(&it.name, depth)
		case kCategory:
			e = p.str(&it.category, depth)
		case kChannel:
			e = p.str(&it.channel, depth)
		case kTimestamp:
			e = p.str(&it.timestamp, depth)
		case kOriginalTimestamp:
			e = p.str(&it.originalTimestamp, depth)
		case kSentAt:
			e = p.str(&it.sentAt, depth)
		case kProperties:
			e = p.obj(&it.properties, depth)
		case kTraits:
			e = p.obj(&it.traits, depth)
		case kContext:
			e = p.obj(&it.context, depth)
		case kIntegrations:
			e = p.obj(&it.integrations, depth)
		case kMetadata:
			e = p.obj(&it.metadata, depth)
		case kWriteKey:
			if idx < 0 {
				e = p.str(&p.writeKey, depth)
			} else {
				e = s.value(depth)
			}
		default:
			e = s.value(depth)
		}
		s.key = span{}
		if e != nil {
			return e
		}
		done, e := s.objectNext()
		if e != nil || done {
			return e
		}
	}
}

// str reads a string field; null leaves it empty; any other type is an
// invalid_type error.
func (p *segParser) str(dst *sref, depth int) *api.Error {
	s := &p.s
	if s.pos < len(s.buf) {
		switch s.buf[s.pos] {
		case '"':
			start, end, esc, e := s.str()
			if e != nil {
				return e
			}
			p.setStr(dst, s.buf[start:end], esc)
			return nil
		case 'n':
			*dst = sref{}
			return s.value(depth)
		}
	}
	return p.wrongType(depth, "a string")
}

// id reads an identifier field: a string, or a number kept as its decimal
// text.
func (p *segParser) id(dst *sref, depth int) *api.Error {
	s := &p.s
	if s.pos < len(s.buf) {
		if c := s.buf[s.pos]; c == '-' || (c >= '0' && c <= '9') {
			start := s.pos
			if e := s.number(); e != nil {
				return e
			}
			v, ok := numberText(s.buf[start:s.pos])
			if !ok {
				p.deferErr(api.CodeInvalidType, s.where(), s.keyName()+" is a number too large for an identifier")
			}
			p.setStr(dst, v, false)
			return nil
		}
	}
	if s.pos < len(s.buf) && (s.buf[s.pos] == '"' || s.buf[s.pos] == 'n') {
		return p.str(dst, depth)
	}
	return p.wrongType(depth, "a string (or a number)")
}

// obj records the extent of an object field; null leaves it absent.
func (p *segParser) obj(dst *span, depth int) *api.Error {
	s := &p.s
	start := s.pos
	if start < len(s.buf) {
		switch s.buf[start] {
		case '{':
			if e := s.value(depth); e != nil {
				return e
			}
			*dst = span{start, s.pos}
			return nil
		case 'n':
			*dst = span{}
			return s.value(depth)
		}
	}
	return p.wrongType(depth, "an object")
}

// wrongType skips a value of the wrong JSON type and records the type
// error, naming the field and what it must be.
func (p *segParser) wrongType(depth int, want string) *api.Error {
	s := &p.s
	if e := s.value(depth); e != nil {
		return e
	}
	p.deferErr(api.CodeInvalidType, s.where(), s.keyName()+" must be "+want)
	return nil
}

// numberText is the decimal text of a JSON number used as an identifier:
// an integer literal as written, any other number formatted without an
// exponent (1e3 -> "1000", 1.50 -> "1.5"); false when that is too long.
func numberText(lit []byte) ([]byte, bool) {
	integer := true
	for _, c := range lit {
		if c == '.' || c == 'e' || c == 'E' {
			integer = false
			break
		}
	}
	if integer {
		return lit, true
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil {
		return nil, false
	}
	b := strconv.AppendFloat(nil, f, 'f', -1, 64)
	if len(b) > maxNumberText {
		return nil, false
	}
	return b, true
}

// maxNumberText bounds the text of a non-integer number used as an
// identifier, so that a short literal (1e300) cannot blow up.
const maxNumberText = 32

// build validates the items and turns them into events.
func (p *segParser) build(kind nudge.EventType, batch bool, now time.Time) ([]nudge.Event, *api.Error) {
	body := p.s.buf
	block := string(p.sb) // every string field, in one allocation
	str := func(r sref) string { return block[r.off : r.off+r.n] }
	p.writeKeyStr = str(p.writeKey)
	var batchSent time.Time
	if batch && p.sentAt.n != 0 {
		t, e := parseTime(str(p.sentAt), -1, "sentAt")
		if e != nil {
			return nil, e
		}
		batchSent = t
	}
	var ctxMembers, intMembers []member
	if batch && p.context.ok() {
		ctxMembers = members(body, p.context)
	}
	if batch && p.integrations.ok() {
		intMembers = members(body, p.integrations)
	}

	// Every raw object is copied into one arena sized up front.
	size := 0
	for i := range p.items {
		it := &p.items[i]
		size += it.properties.len() + it.traits.len() + it.context.len() + it.integrations.len() + it.metadata.len()
		if len(ctxMembers) > 0 {
			size += p.context.len() + 1
		}
		if len(intMembers) > 0 {
			size += p.integrations.len() + 1
		}
	}
	arena := make([]byte, 0, size)
	raw := func(sp span) json.RawMessage {
		if !sp.ok() {
			return nil
		}
		start := len(arena)
		arena = append(arena, body[sp.start:sp.end]...)
		return arena[start:len(arena):len(arena)]
	}
	merge := func(item span, batchSpan span, batchMembers []member) json.RawMessage {
		if len(batchMembers) == 0 {
			return raw(item)
		}
		if !item.ok() {
			return raw(batchSpan)
		}
		start := len(arena)
		arena = mergeObjects(arena, body, item, batchMembers)
		return arena[start:len(arena):len(arena)]
	}

	events := make([]nudge.Event, len(p.items))
	for i := range p.items {
		it := &p.items[i]
		idx := -1
		if batch {
			idx = i
		}
		ev := &events[i]
		typ, userID, anonymousID, previousID, groupID := str(it.typ), str(it.userID), str(it.anonymousID), str(it.previousID), str(it.groupID)
		if batch {
			if typ == "" {
				return nil, api.NewError(api.CodeMissingField, fieldName(idx, "type"), `a batch item needs a "type"`)
			}
			ev.Type = nudge.EventType(typ)
			if !ev.Type.Valid() {
				return nil, api.NewError(api.CodeUnknownType, fieldName(idx, "type"), "unknown type "+quoteShort(typ)+": want track, identify, page, screen, group or alias")
			}
		} else {
			ev.Type = kind
		}
		if userID == "" && anonymousID == "" {
			return nil, api.NewError(api.CodeMissingIdentity, fieldName(idx, "userId"), "an event needs a userId or an anonymousId")
		}
		switch ev.Type {
		case nudge.Track:
			if it.event.n == 0 {
				return nil, api.NewError(api.CodeMissingField, fieldName(idx, "event"), "a track call needs an event name")
			}
		case nudge.Group:
			if groupID == "" {
				return nil, api.NewError(api.CodeMissingField, fieldName(idx, "groupId"), "a group call needs a groupId")
			}
		case nudge.Alias:
			if previousID == "" {
				return nil, api.NewError(api.CodeMissingField, fieldName(idx, "previousId"), "an alias call needs a previousId")
			}
			if userID == "" {
				return nil, api.NewError(api.CodeMissingField, fieldName(idx, "userId"), "an alias call needs a userId")
			}
		}
		var ts, ots, sent time.Time
		var e *api.Error
		if it.timestamp.n != 0 {
			if ts, e = parseTime(str(it.timestamp), idx, "timestamp"); e != nil {
				return nil, e
			}
		}
		if it.originalTimestamp.n != 0 {
			if ots, e = parseTime(str(it.originalTimestamp), idx, "originalTimestamp"); e != nil {
				return nil, e
			}
		}
		if it.sentAt.n != 0 {
			if sent, e = parseTime(str(it.sentAt), idx, "sentAt"); e != nil {
				return nil, e
			}
		} else {
			sent = batchSent
		}
		switch {
		case !ts.IsZero():
			ev.Timestamp = ts
		case !ots.IsZero() && !sent.IsZero():
			ev.Timestamp = now.Add(-sent.Sub(ots))
		case !ots.IsZero():
			ev.Timestamp = ots
		default:
			ev.Timestamp = now
		}
		ev.OriginalTimestamp = ots
		ev.SentAt = sent
		ev.ReceivedAt = now

		ev.MessageID = str(it.messageID)
		if ev.MessageID == "" {
			ev.MessageID = uuid.NewString()
		}
		ev.UserID = userID
		ev.AnonymousID = anonymousID
		ev.PreviousID = previousID
		ev.GroupID = groupID
		ev.Event = str(it.event)
		ev.Name = str(it.name)
		ev.Category = str(it.category)
		ev.Channel = str(it.channel)
		ev.Properties = raw(it.properties)
		ev.Traits = raw(it.traits)
		ev.Context = merge(it.context, p.context, ctxMembers)
		ev.Integrations = merge(it.integrations, p.integrations, intMembers)
		ev.Metadata = raw(it.metadata)
	}
	return events, nil
}

// parseTime parses an RFC 3339 date-time, with or without fractional
// seconds, with "Z" or an offset. Go's zero time comes back as the zero
// time, which callers treat as absent.
func parseTime(v string, idx int, key string) (time.Time, *api.Error) {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, api.NewError(api.CodeInvalidTimestamp, fieldName(idx, key), quoteShort(v)+` is not an RFC 3339 date-time like "2026-11-27T07:52:10.123Z"`)
	}
	return t, nil
}

// member is one top-level member of a JSON object in the body.
type member struct {
	key      string // unquoted
	keyStart int    // the quoted key, from its opening quote...
	valStart int    // (the value)
	valEnd   int    // ...to the end of the value
}

// members lists the top-level members of the (already validated) object sp.
func members(body []byte, sp span) []member {
	s := scanner{buf: body[:sp.end], pos: sp.start + 1, maxDepth: int(^uint(0) >> 1)}
	var ms []member
	s.ws()
	if s.buf[s.pos] == '}' {
		return nil
	}
	for {
		ks := s.pos
		start, end, esc, _ := s.str()
		m := member{keyStart: ks}
		if esc {
			m.key = unquote(body[start:end])
		} else {
			m.key = string(body[start:end])
		}
		s.ws()
		s.pos++ // ':'
		s.ws()
		m.valStart = s.pos
		_ = s.value(1)
		m.valEnd = s.pos
		ms = append(ms, m)
		if done, _ := s.objectNext(); done {
			return ms
		}
	}
}

// mergeObjects appends to dst the object item with the members of under
// whose keys item lacks appended.
func mergeObjects(dst, body []byte, item span, under []member) []byte {
	own := members(body, item)
	has := func(k string) bool {
		for _, m := range own {
			if m.key == k {
				return true
			}
		}
		return false
	}
	// item without its closing brace (and the spaces before it).
	end := item.end - 1
	for end > item.start && isSpace(body[end-1]) {
		end--
	}
	dst = append(dst, body[item.start:end]...)
	n := len(own)
	for _, m := range under {
		if has(m.key) {
			continue
		}
		if n > 0 {
			dst = append(dst, ',')
		}
		n++
		dst = append(dst, body[m.keyStart:m.valEnd]...)
	}
	return append(dst, '}')
}
