package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	nudge "github.com/nudge-dev/nudge"
	"github.com/nudge-dev/nudge/api"
)

var testNow = time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)

// errCase is a request ParseSegment must refuse.
type errCase struct {
	name   string
	kind   string
	body   string
	status int
	code   string
	field  string
}

func nested(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }

// padTrack is a valid track body of exactly n bytes.
func padTrack(n int) string {
	head := `{"userId":"u1","event":"e","properties":{"pad":"`
	tail := `"}}`
	return head + strings.Repeat("x", n-len(head)-len(tail)) + tail
}

// batchOf wraps items into a batch body.
func batchOf(items ...string) string {
	return `{"batch":[` + strings.Join(items, ",") + `]}`
}

const (
	okTrack    = `{"type":"track","userId":"u1","event":"Signed Up"}`
	okIdentify = `{"type":"identify","anonymousId":"a1","traits":{"email":"a@example.com"}}`
)

var segmentErrCases = []errCase{
	// Malformed JSON.
	{"truncated", "track", `{"userId":"u1",`, 400, api.CodeInvalidJSON, ""},
	{"missing colon", "track", `{"userId" "u1"}`, 400, api.CodeInvalidJSON, ""},
	{"not json", "track", `hello`, 400, api.CodeInvalidJSON, ""},
	{"empty body", "track", ``, 400, api.CodeInvalidJSON, ""},
	{"whitespace body", "batch", " \n", 400, api.CodeInvalidJSON, ""},
	{"root array", "track", `[{"userId":"u1","event":"e"}]`, 400, api.CodeInvalidJSON, ""},
	{"root string", "batch", `"batch"`, 400, api.CodeInvalidJSON, ""},
	{"trailing garbage", "track", `{"userId":"u1","event":"e"} x`, 400, api.CodeInvalidJSON, ""},
	{"two objects", "track", `{"userId":"u1","event":"e"}{}`, 400, api.CodeInvalidJSON, ""},
	{"trailing comma", "track", `{"userId":"u1","event":"e",}`, 400, api.CodeInvalidJSON, ""},
	{"bad literal", "track", `{"userId":"u1","event":"e","properties":{"a":tru}}`, 400, api.CodeInvalidJSON, "properties"},
	{"bad number", "track", `{"userId":"u1","event":"e","properties":{"a":01}}`, 400, api.CodeInvalidJSON, "properties"},
	{"bad escape", "track", `{"userId":"u\x1","event":"e"}`, 400, api.CodeInvalidJSON, "userId"},
	{"control char in string", "track", "{\"userId\":\"u\n1\",\"event\":\"e\"}", 400, api.CodeInvalidJSON, "userId"},
	{"malformed item in batch", "batch", `{"batch":[` + okTrack + `,{"type":"track",]}`, 400, api.CodeInvalidJSON, ""},
	{"unclosed batch", "batch", `{"batch":[` + okTrack, 400, api.CodeInvalidJSON, ""},

	// Wrong JSON types.
	{"userId object", "track", `{"userId":{"id":1},"event":"e"}`, 400, api.CodeInvalidType, "userId"},
	{"userId bool", "track", `{"userId":true,"event":"e"}`, 400, api.CodeInvalidType, "userId"},
	{"anonymousId array", "identify", `{"anonymousId":["a"]}`, 400, api.CodeInvalidType, "anonymousId"},
	{"properties string", "track", `{"userId":"u1","event":"e","properties":"{}"}`, 400, api.CodeInvalidType, "properties"},
	{"traits array", "identify", `{"userId":"u1","traits":[]}`, 400, api.CodeInvalidType, "traits"},
	{"context number", "track", `{"userId":"u1","event":"e","context":1}`, 400, api.CodeInvalidType, "context"},
	{"integrations bool", "track", `{"userId":"u1","event":"e","integrations":false}`, 400, api.CodeInvalidType, "integrations"},
	{"metadata string", "track", `{"userId":"u1","event":"e","_metadata":"x"}`, 400, api.CodeInvalidType, "_metadata"},
	{"timestamp number", "track", `{"userId":"u1","event":"e","timestamp":1732693930}`, 400, api.CodeInvalidType, "timestamp"},
	{"event number", "track", `{"userId":"u1","event":42}`, 400, api.CodeInvalidType, "event"},
	{"messageId number", "track", `{"userId":"u1","event":"e","messageId":42}`, 400, api.CodeInvalidType, "messageId"},
	{"writeKey object", "track", `{"userId":"u1","event":"e","writeKey":{}}`, 400, api.CodeInvalidType, "writeKey"},
	{"userId number out of range", "track", `{"userId":1e999,"event":"e"}`, 400, api.CodeInvalidNumber, "userId"},
	{"property number out of range", "track", `{"userId":"u","event":"e","properties":{"big":-1e700}}`, 400, api.CodeInvalidNumber, "properties"},
	{"userId number too long", "track", `{"userId":1e40,"event":"e"}`, 400, api.CodeInvalidType, "userId"},
	{"batch item userId object", "batch", batchOf(okTrack, `{"type":"track","userId":{},"event":"e"}`), 400, api.CodeInvalidType, "batch[1].userId"},
	{"batch item type number", "batch", batchOf(`{"type":1,"userId":"u1"}`), 400, api.CodeInvalidType, "batch[0].type"},
	{"batch item not object", "batch", batchOf(okTrack, `"track"`), 400, api.CodeInvalidType, "batch[1]"},
	{"batch not array", "batch", `{"batch":{"type":"track"}}`, 400, api.CodeInvalidType, "batch"},
	{"batch sentAt number", "batch", `{"batch":[` + okTrack + `],"sentAt":5}`, 400, api.CodeInvalidType, "sentAt"},
	{"batch context array", "batch", `{"batch":[` + okTrack + `],"context":[]}`, 400, api.CodeInvalidType, "context"},
	{"type error before later syntax error", "batch", `{"batch":[{"type":"track","userId":{}},` + "\x00" + `]}`, 400, api.CodeInvalidJSON, ""},

	// Identity.
	{"no identity", "track", `{"event":"e"}`, 400, api.CodeMissingIdentity, "userId"},
	{"empty identities", "track", `{"event":"e","userId":"","anonymousId":""}`, 400, api.CodeMissingIdentity, "userId"},
	{"null identities", "identify", `{"userId":null,"anonymousId":null}`, 400, api.CodeMissingIdentity, "userId"},
	{"batch item without identity", "batch", batchOf(okTrack, okTrack, `{"type":"page","name":"Home"}`), 400, api.CodeMissingIdentity, "batch[2].userId"},

	// Types and required fields.
	{"unknown type in batch", "batch", batchOf(okTrack, `{"type":"purchase","userId":"u1"}`), 400, api.CodeUnknownType, "batch[1].type"},
	{"type case matters", "batch", batchOf(`{"type":"Track","userId":"u1","event":"e"}`), 400, api.CodeUnknownType, "batch[0].type"},
	{"missing type in batch", "batch", batchOf(`{"userId":"u1","event":"e"}`), 400, api.CodeMissingField, "batch[0].type"},
	{"unknown kind", "purchase", `{"userId":"u1"}`, 400, api.CodeUnknownType, ""},
	{"track without event", "track", `{"userId":"u1"}`, 400, api.CodeMissingField, "event"},
	{"track with empty event", "batch", batchOf(`{"type":"track","userId":"u1","event":""}`), 400, api.CodeMissingField, "batch[0].event"},
	{"group without groupId", "group", `{"userId":"u1","traits":{}}`, 400, api.CodeMissingField, "groupId"},
	{"alias without previousId", "alias", `{"userId":"u1"}`, 400, api.CodeMissingField, "previousId"},
	{"alias without userId", "alias", `{"anonymousId":"a1","previousId":"a0"}`, 400, api.CodeMissingField, "userId"},

	// Invalid UTF-8.
	{"0xff in userId", "track", "{\"userId\":\"u\xff1\",\"event\":\"e\"}", 400, api.CodeInvalidUTF8, "userId"},
	{"0xff in properties", "track", "{\"userId\":\"u1\",\"event\":\"e\",\"properties\":{\"a\":\"\xff\"}}", 400, api.CodeInvalidUTF8, "properties"},
	{"0xff in a key", "track", "{\"userId\":\"u1\",\"event\":\"e\",\"\xff\":1}", 400, api.CodeInvalidUTF8, ""},
	{"0xff outside strings", "track", "{\"userId\":\"u1\",\"event\":\"e\"}\xff", 400, api.CodeInvalidUTF8, ""},
	{"truncated sequence", "track", "{\"userId\":\"caf\xc3\",\"event\":\"e\"}", 400, api.CodeInvalidUTF8, "userId"},
	{"surrogate encoded in UTF-8", "track", "{\"userId\":\"\xed\xa0\x80\",\"event\":\"e\"}", 400, api.CodeInvalidUTF8, "userId"},
	{"0xff in batch item", "batch", batchOf(okTrack, "{\"type\":\"track\",\"userId\":\"u1\",\"event\":\"\xff\"}"), 400, api.CodeInvalidUTF8, "batch[1].event"},

	// Nesting.
	{"1000 nested arrays in properties", "track", `{"userId":"u1","event":"e","properties":{"a":` + nested(1000) + `}}`, 400, api.CodeTooDeep, "properties"},
	{"1000 nested arrays in a batch item", "batch", batchOf(okTrack, `{"type":"track","userId":"u1","event":"e","properties":{"a":`+nested(1000)+`}}`), 400, api.CodeTooDeep, "batch[1].properties"},
	{"deep unknown field", "track", `{"userId":"u1","event":"e","x":` + nested(40) + `}`, 400, api.CodeTooDeep, "x"},
	{"depth 33", "track", `{"userId":"u1","event":"e","properties":{"a":` + nested(31) + `}}`, 400, api.CodeTooDeep, "properties"},
	{"deep root", "batch", nested(1000), 400, api.CodeTooDeep, ""},

	// Timestamps.
	{"timestamp words", "track", `{"userId":"u1","event":"e","timestamp":"yesterday"}`, 400, api.CodeInvalidTimestamp, "timestamp"},
	{"timestamp without zone", "track", `{"userId":"u1","event":"e","timestamp":"2026-11-27T07:52:10"}`, 400, api.CodeInvalidTimestamp, "timestamp"},
	{"timestamp with space", "track", `{"userId":"u1","event":"e","timestamp":"2026-11-27 07:52:10Z"}`, 400, api.CodeInvalidTimestamp, "timestamp"},
	{"timestamp date only", "track", `{"userId":"u1","event":"e","timestamp":"2026-11-27"}`, 400, api.CodeInvalidTimestamp, "timestamp"},
	{"timestamp month 13", "track", `{"userId":"u1","event":"e","timestamp":"2026-13-27T07:52:10Z"}`, 400, api.CodeInvalidTimestamp, "timestamp"},
	{"bad originalTimestamp", "track", `{"userId":"u1","event":"e","originalTimestamp":"now"}`, 400, api.CodeInvalidTimestamp, "originalTimestamp"},
	{"bad sentAt", "identify", `{"userId":"u1","sentAt":"1732693930"}`, 400, api.CodeInvalidTimestamp, "sentAt"},
	{"bad timestamp in batch", "batch", batchOf(okTrack, okTrack, `{"type":"track","userId":"u1","event":"e","timestamp":"27/11/2026"}`), 400, api.CodeInvalidTimestamp, "batch[2].timestamp"},
	{"bad batch sentAt", "batch", `{"batch":[` + okTrack + `],"sentAt":"soon"}`, 400, api.CodeInvalidTimestamp, "sentAt"},

	// Empty batches.
	{"empty batch", "batch", `{"batch":[]}`, 400, api.CodeEmptyBatch, "batch"},
	{"no batch", "batch", `{"writeKey":"wk"}`, 400, api.CodeEmptyBatch, "batch"},
	{"null batch", "batch", `{"batch":null}`, 400, api.CodeEmptyBatch, "batch"},
	{"empty object", "batch", `{}`, 400, api.CodeEmptyBatch, "batch"},

	// Sizes.
	{"event over 32 KiB", "track", padTrack(32*1024 + 1), 413, api.CodeEventTooLarge, ""},
	{"batch item over 32 KiB", "batch", batchOf(okTrack, padTrack(32*1024+1)), 413, api.CodeEventTooLarge, "batch[1]"},
	{"single body over 500 KiB", "track", padTrack(501 * 1024), 413, api.CodeBatchTooLarge, ""},
}

func bigBatch() string {
	items := make([]string, 0, 20)
	for i := 0; i < 20; i++ {
		items = append(items, padTrack(30*1024))
	}
	return batchOf(items...) // ~600 KiB of valid events
}

func TestParseSegmentErrors(t *testing.T) {
	cases := append(segmentErrCases, errCase{"batch over 500 KiB", "batch", bigBatch(), 413, api.CodeBatchTooLarge, ""})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			events, wk, err := ParseSegment(c.kind, []byte(c.body), testNow, DefaultLimits())
			if events != nil || wk != "" {
				t.Errorf("got %d events and write key %q with an error", len(events), wk)
			}
			assertError(t, err, c.status, c.code, c.field)
		})
	}
}

func assertError(t *testing.T, err error, status int, code, field string) {
	t.Helper()
	var e *api.Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v (%T), want *api.Error %s", err, err, code)
	}
	if e.Status != status || e.Code != code || e.Field != field {
		t.Errorf("got status %d code %q field %q (%s), want %d %q %q", e.Status, e.Code, e.Field, e.Message, status, code, field)
	}
	if e.Message == "" {
		t.Error("empty message")
	}
}

func TestErrorMessages(t *testing.T) {
	_, _, err := ParseSegment("track", []byte(`{"userId":"u1" "event":"e"}`), testNow, DefaultLimits())
	if !strings.Contains(err.Error(), "byte offset 15") {
		t.Errorf("invalid_json message %q lacks the offset", err)
	}
	_, _, err = ParseSegment("track", []byte("{\"userId\":\"ab\xff\"}"), testNow, DefaultLimits())
	if !strings.Contains(err.Error(), "byte offset 13") {
		t.Errorf("invalid_utf8 message %q lacks the offset", err)
	}
	_, _, err = ParseSegment("batch", []byte(batchOf(`{"type":"`+strings.Repeat("é", 5000)+`","userId":"u"}`)), testNow, DefaultLimits())
	if e := err.(*api.Error); e.Code != api.CodeUnknownType || len(e.Message) > 200 || !utf8.ValidString(e.Message) {
		t.Errorf("message not cut: %d bytes", len(e.Message))
	}
	e := &api.Error{Status: 400, Code: api.CodeMissingField, Message: "m", Field: "batch[1].event"}
	if got := e.Error(); got != "missing_field: batch[1].event: m" {
		t.Errorf("Error() = %q", got)
	}
}

// A zero Limits means the defaults; smaller limits apply.
func TestLimits(t *testing.T) {
	body := []byte(`{"userId":"u1","event":"e","properties":{"a":[[1]]}}`)
	if _, _, err := ParseSegment("track", body, testNow, Limits{}); err != nil {
		t.Fatal(err)
	}
	_, _, err := ParseSegment("track", body, testNow, Limits{MaxDepth: 3})
	assertError(t, err, 400, api.CodeTooDeep, "properties")
	_, _, err = ParseSegment("track", body, testNow, Limits{MaxEventBytes: 20})
	assertError(t, err, 413, api.CodeEventTooLarge, "")
	_, _, err = ParseSegment("batch", []byte(batchOf(okTrack)), testNow, Limits{MaxBatchBytes: 20})
	assertError(t, err, 413, api.CodeBatchTooLarge, "")
	if _, _, err := ParseSegment("track", []byte(`{"userId":"u1","event":"e","properties":{"a":`+nested(30)+`}}`), testNow, DefaultLimits()); err != nil {
		t.Errorf("depth 32: %v", err)
	}
	if _, _, err := ParseSegment("track", []byte(padTrack(32*1024)), testNow, DefaultLimits()); err != nil {
		t.Errorf("an event of exactly 32 KiB: %v", err)
	}
}

func parseOK(t *testing.T, kind, body string) ([]nudge.Event, string) {
	t.Helper()
	events, wk, err := ParseSegment(kind, []byte(body), testNow, DefaultLimits())
	if err != nil {
		t.Fatalf("ParseSegment(%s): %v", kind, err)
	}
	checkEvents(t, events, testNow)
	checkAgainstStdlib(t, kind, []byte(body), events)
	return events, wk
}

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestSingleCalls(t *testing.T) {
	cases := []struct {
		kind, body string
		want       nudge.Event
	}{
		{"track", `{"userId":"u1","event":"Order Completed","properties":{"total":42.5},"messageId":"m1","timestamp":"2026-11-27T07:52:10.123Z"}`,
			nudge.Event{Type: nudge.Track, UserID: "u1", Event: "Order Completed", Properties: json.RawMessage(`{"total":42.5}`), MessageID: "m1", Timestamp: mustTime("2026-11-27T07:52:10.123Z")}},
		{"identify", `{"anonymousId":"a1","traits":{"email":"a@example.com"},"messageId":"m2"}`,
			nudge.Event{Type: nudge.Identify, AnonymousID: "a1", Traits: json.RawMessage(`{"email":"a@example.com"}`), MessageID: "m2", Timestamp: testNow}},
		{"page", `{"userId":"u1","name":"Pricing","category":"Docs","properties":{"path":"/pricing"},"messageId":"m3","channel":"browser"}`,
			nudge.Event{Type: nudge.Page, UserID: "u1", Name: "Pricing", Category: "Docs", Properties: json.RawMessage(`{"path":"/pricing"}`), MessageID: "m3", Channel: "browser", Timestamp: testNow}},
		{"screen", `{"userId":"u1","name":"Home","messageId":"m4"}`,
			nudge.Event{Type: nudge.Screen, UserID: "u1", Name: "Home", MessageID: "m4", Timestamp: testNow}},
		{"group", `{"userId":"u1","groupId":"g1","traits":{"plan":"pro"},"messageId":"m5"}`,
			nudge.Event{Type: nudge.Group, UserID: "u1", GroupID: "g1", Traits: json.RawMessage(`{"plan":"pro"}`), MessageID: "m5", Timestamp: testNow}},
		{"alias", `{"userId":"u1","previousId":"a1","messageId":"m6"}`,
			nudge.Event{Type: nudge.Alias, UserID: "u1", PreviousID: "a1", MessageID: "m6", Timestamp: testNow}},
		// The path's kind wins over the body's type.
		{"identify", `{"type":"track","userId":"u1","messageId":"m7"}`,
			nudge.Event{Type: nudge.Identify, UserID: "u1", MessageID: "m7", Timestamp: testNow}},
		// A wrongly typed "type" is ignored too.
		{"identify", `{"type":7,"userId":"u1","messageId":"m8"}`,
			nudge.Event{Type: nudge.Identify, UserID: "u1", MessageID: "m8", Timestamp: testNow}},
		// Numeric identifiers become their decimal text.
		{"group", `{"userId":12345,"anonymousId":-7,"groupId":1e3,"messageId":"m9"}`,
			nudge.Event{Type: nudge.Group, UserID: "12345", AnonymousID: "-7", GroupID: "1000", MessageID: "m9", Timestamp: testNow}},
		{"alias", `{"userId":1.50,"previousId":98765432109876543210,"messageId":"m10"}`,
			nudge.Event{Type: nudge.Alias, UserID: "1.5", PreviousID: "98765432109876543210", MessageID: "m10", Timestamp: testNow}},
		// Nulls are absent; unknown fields are ignored; case matters.
		{"track", `{"userId":"u1","anonymousId":null,"event":"e","properties":null,"context":null,"UserId":"x","extra":{"a":[1,2,{"b":null}]},"messageId":"m11"}`,
			nudge.Event{Type: nudge.Track, UserID: "u1", Event: "e", MessageID: "m11", Timestamp: testNow}},
		// Escapes decode like encoding/json, lone surrogates included.
		{"track", `{"userId":"caf\u00e9 \ud83d\ude00 \ud800 \"q\" \\ \/ \b\f\n\r\t","event":"\u0045","messageId":"m12"}`,
			nudge.Event{Type: nudge.Track, UserID: "café 😀 \ufffd \"q\" \\ / \b\f\n\r\t", Event: "E", MessageID: "m12", Timestamp: testNow}},
		// Escaped keys are matched once decoded; duplicate keys: the last wins.
		{"track", `{"user\u0049d":"u1","event":"a","event":"b","messageId":"m13"}`,
			nudge.Event{Type: nudge.Track, UserID: "u1", Event: "b", MessageID: "m13", Timestamp: testNow}},
		// Whitespace everywhere.
		{"track", " \t\n{ \"userId\" : \"u1\" ,\r\n \"event\" : \"e\" , \"properties\" : { \"a\" : [ 1 , 2 ] } , \"messageId\":\"m14\" } \n",
			nudge.Event{Type: nudge.Track, UserID: "u1", Event: "e", Properties: json.RawMessage(`{ "a" : [ 1 , 2 ] }`), MessageID: "m14", Timestamp: testNow}},
		{"track", `{"userId":"u1","event":"e","context":{"library":{"name":"analytics-node"}},"integrations":{"All":false},"_metadata":{"nodeVersion":"20"},"messageId":"m15"}`,
			nudge.Event{Type: nudge.Track, UserID: "u1", Event: "e", Context: json.RawMessage(`{"library":{"name":"analytics-node"}}`), Integrations: json.RawMessage(`{"All":false}`), Metadata: json.RawMessage(`{"nodeVersion":"20"}`), MessageID: "m15", Timestamp: testNow}},
	}
	for i, c := range cases {
		t.Run(fmt.Sprint(i, c.kind), func(t *testing.T) {
			events, wk := parseOK(t, c.kind, c.body)
			if len(events) != 1 || wk != "" {
				t.Fatalf("got %d events, write key %q", len(events), wk)
			}
			c.want.ReceivedAt = testNow
			assertEvent(t, events[0], c.want)
		})
	}
}

func assertEvent(t *testing.T, got, want nudge.Event) {
	t.Helper()
	if !got.Timestamp.Equal(want.Timestamp) || !got.OriginalTimestamp.Equal(want.OriginalTimestamp) ||
		!got.SentAt.Equal(want.SentAt) || !got.ReceivedAt.Equal(want.ReceivedAt) {
		t.Errorf("times: got ts %v ots %v sent %v recv %v, want %v %v %v %v", got.Timestamp, got.OriginalTimestamp, got.SentAt, got.ReceivedAt,
			want.Timestamp, want.OriginalTimestamp, want.SentAt, want.ReceivedAt)
	}
	got.Timestamp, got.OriginalTimestamp, got.SentAt, got.ReceivedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	want.Timestamp, want.OriginalTimestamp, want.SentAt, want.ReceivedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		t.Errorf("got  %s\nwant %s", g, w)
	}
}

func TestTimestamps(t *testing.T) {
	cases := []struct {
		name, fields string
		want         time.Time
	}{
		{"timestamp wins", `"timestamp":"2026-11-27T07:00:00Z","originalTimestamp":"2026-11-27T06:00:00Z","sentAt":"2026-11-27T06:00:05Z"`, mustTime("2026-11-27T07:00:00Z")},
		// Segment's clock-skew correction: the client's clock is 10 minutes
		// slow; the event happened 10 s before the client sent it, which
		// was (taking transit as nil) at receive time 08:00:00.
		{"clock skew", `"originalTimestamp":"2026-11-27T07:50:00Z","sentAt":"2026-11-27T07:50:10Z"`, mustTime("2026-11-27T07:59:50Z")},
		{"clock skew with offsets and fractions", `"originalTimestamp":"2026-11-27T08:50:00.250+01:00","sentAt":"2026-11-27T07:50:10.5Z"`, mustTime("2026-11-27T07:59:49.75Z")},
		{"originalTimestamp alone", `"originalTimestamp":"2026-11-27T07:50:00Z"`, mustTime("2026-11-27T07:50:00Z")},
		{"sentAt alone", `"sentAt":"2026-11-27T07:50:00Z"`, testNow},
		{"nothing", ``, testNow},
		{"offset", `"timestamp":"2026-11-27T09:52:10+02:00"`, mustTime("2026-11-27T07:52:10Z")},
		{"nanoseconds", `"timestamp":"2026-11-27T07:52:10.123456789Z"`, mustTime("2026-11-27T07:52:10.123456789Z")},
		{"no fraction", `"timestamp":"2026-11-27T07:52:10Z"`, mustTime("2026-11-27T07:52:10Z")},
		{"empty string is absent", `"timestamp":"","originalTimestamp":"2026-11-27T07:50:00Z"`, mustTime("2026-11-27T07:50:00Z")},
		{"zero time is absent", `"timestamp":"0001-01-01T00:00:00Z"`, testNow},
		{"null is absent", `"timestamp":null`, testNow},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body := `{"userId":"u1","event":"e"`
			if c.fields != "" {
				body += "," + c.fields
			}
			events, _ := parseOK(t, "track", body+"}")
			if got := events[0].Timestamp; !got.Equal(c.want) {
				t.Errorf("Timestamp = %v, want %v", got, c.want)
			}
			if !events[0].ReceivedAt.Equal(testNow) {
				t.Errorf("ReceivedAt = %v", events[0].ReceivedAt)
			}
		})
	}
	// The offset the client sent is kept.
	events, _ := parseOK(t, "track", `{"userId":"u1","event":"e","timestamp":"2026-11-27T09:52:10+02:00"}`)
	if _, off := events[0].Timestamp.Zone(); off != 7200 {
		t.Errorf("offset = %d", off)
	}
}

func TestBatch(t *testing.T) {
	body := `{
		"batch": [
			{"type":"track","userId":"u1","event":"A","messageId":"m1","originalTimestamp":"2026-11-27T07:50:00Z",
			 "context":{"library":{"name":"item"},"locale":"fr-FR"},"integrations":{"Mixpanel":false}},
			{"type":"identify","anonymousId":"a2","traits":{"n":1},"messageId":"m2","originalTimestamp":"2026-11-27T07:50:00Z","sentAt":"2026-11-27T07:50:01Z"},
			{"type":"page","userId":"u3","name":"Home","messageId":"m3","context":{}},
			{"type":"screen","userId":"u4","name":"Feed","messageId":"m4","context":{ }},
			{"type":"group","userId":"u5","groupId":"g5","messageId":"m5","context":null},
			{"type":"alias","userId":"u6","previousId":"a6","messageId":"m6","context":{"ip":"10.0.0.9"}}
		],
		"writeKey": "wk_123",
		"sentAt": "2026-11-27T07:50:10Z",
		"context": {"library":{"name":"analytics-node","version":"2.1.2"},"ip":"203.0.113.7"},
		"integrations": {"All": true}
	}`
	events, wk := parseOK(t, "batch", body)
	if wk != "wk_123" {
		t.Errorf("write key %q", wk)
	}
	if len(events) != 6 {
		t.Fatalf("%d events", len(events))
	}
	types := []nudge.EventType{nudge.Track, nudge.Identify, nudge.Page, nudge.Screen, nudge.Group, nudge.Alias}
	for i, ev := range events {
		if ev.Type != types[i] || ev.MessageID != fmt.Sprint("m", i+1) {
			t.Errorf("event %d: type %s id %s", i, ev.Type, ev.MessageID)
		}
	}
	// Batch-level sentAt applies to items lacking their own.
	if want := mustTime("2026-11-27T07:50:10Z"); !events[0].SentAt.Equal(want) || !events[0].Timestamp.Equal(mustTime("2026-11-27T07:59:50Z")) {
		t.Errorf("item 0: sentAt %v timestamp %v", events[0].SentAt, events[0].Timestamp)
	}
	if want := mustTime("2026-11-27T07:50:01Z"); !events[1].SentAt.Equal(want) || !events[1].Timestamp.Equal(mustTime("2026-11-27T07:59:59Z")) {
		t.Errorf("item 1: sentAt %v timestamp %v", events[1].SentAt, events[1].Timestamp)
	}
	// Batch-level context and integrations merge under the item's.
	wantCtx := []string{
		`{"library":{"name":"item"},"locale":"fr-FR","ip":"203.0.113.7"}`,
		`{"library":{"name":"analytics-node","version":"2.1.2"},"ip":"203.0.113.7"}`,
		`{"library":{"name":"analytics-node","version":"2.1.2"},"ip":"203.0.113.7"}`,
		`{"library":{"name":"analytics-node","version":"2.1.2"},"ip":"203.0.113.7"}`,
		`{"library":{"name":"analytics-node","version":"2.1.2"},"ip":"203.0.113.7"}`,
		`{"ip":"10.0.0.9","library":{"name":"analytics-node","version":"2.1.2"}}`,
	}
	for i, ev := range events {
		assertJSONEqual(t, fmt.Sprint("context ", i), ev.Context, wantCtx[i])
	}
	assertJSONEqual(t, "integrations 0", events[0].Integrations, `{"Mixpanel":false,"All":true}`)
	assertJSONEqual(t, "integrations 1", events[1].Integrations, `{"All":true}`)
}

func assertJSONEqual(t *testing.T, what string, got json.RawMessage, want string) {
	t.Helper()
	if !json.Valid(got) {
		t.Errorf("%s: invalid JSON %s", what, got)
		return
	}
	var g, w any
	_ = json.Unmarshal(got, &g)
	_ = json.Unmarshal([]byte(want), &w)
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s: got %s, want %s", what, got, want)
	}
}

func TestMergeKeepsItemText(t *testing.T) {
	body := `{"batch":[{"type":"track","userId":"u","event":"e","context":{"a":1 , "b":{"c":2} }}],"context":{"b":0,"d":[1],"e\u0041":3,"a":9}}`
	events, _ := parseOK(t, "batch", body)
	want := `{"a":1 , "b":{"c":2},"d":[1],"e\u0041":3}`
	if string(events[0].Context) != want {
		t.Errorf("context %s, want %s", events[0].Context, want)
	}
}

func TestWriteKey(t *testing.T) {
	_, wk := parseOK(t, "track", `{"writeKey":"wk_body","userId":"u1","event":"e"}`)
	if wk != "wk_body" {
		t.Errorf("single call write key %q", wk)
	}
	_, wk = parseOK(t, "batch", `{"batch":[{"type":"track","userId":"u1","event":"e","writeKey":"item"}]}`)
	if wk != "" {
		t.Errorf("batch write key %q: an item's writeKey is not the body's", wk)
	}
}

func TestMessageIDGeneration(t *testing.T) {
	events, _ := parseOK(t, "batch", batchOf(okTrack, okIdentify, `{"type":"track","userId":"u","event":"e","messageId":""}`, `{"type":"track","userId":"u","event":"e","messageId":"keep-me"}`))
	seen := map[string]bool{}
	for i, ev := range events[:3] {
		if _, err := uuid.Parse(ev.MessageID); err != nil {
			t.Errorf("event %d: generated messageId %q is not a UUID", i, ev.MessageID)
		}
		if seen[ev.MessageID] {
			t.Errorf("messageId %q generated twice", ev.MessageID)
		}
		seen[ev.MessageID] = true
	}
	if events[3].MessageID != "keep-me" {
		t.Errorf("messageId %q", events[3].MessageID)
	}
}

// A batch with one bad event in the middle returns no event at all.
func TestBatchAllOrNothing(t *testing.T) {
	items := make([]string, 0, 50)
	for i := 0; i < 50; i++ {
		items = append(items, fmt.Sprintf(`{"type":"track","userId":"u%d","event":"e"}`, i))
	}
	items[23] = `{"type":"track","event":"e"}`
	events, wk, err := ParseSegment("batch", []byte(`{"writeKey":"wk",`+batchOf(items...)[1:]), testNow, DefaultLimits())
	if events != nil || wk != "" {
		t.Errorf("got %d events, write key %q", len(events), wk)
	}
	assertError(t, err, 400, api.CodeMissingIdentity, "batch[23].userId")
}

// The events never alias the body: the caller may reuse it.
func TestNoAliasing(t *testing.T) {
	body := []byte(`{"batch":[{"type":"track","userId":"u1","event":"e","properties":{"a":"b"},"context":{"c":1},"traits":{"t":1},"integrations":{"i":1},"_metadata":{"m":1}}],"context":{"d":2}}`)
	events, _, err := ParseSegment("batch", body, testNow, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	before := nudge.EncodeEvents(nil, events)
	for i := range body {
		body[i] = 'X'
	}
	after := nudge.EncodeEvents(nil, events)
	if !bytes.Equal(before, after) {
		t.Errorf("events changed with the body:\n%s\n%s", before, after)
	}
	// Appending to one raw field never spills into another.
	ev := &events[0]
	_ = append(ev.Properties, "garbage"...)
	if again := nudge.EncodeEvents(nil, events); !bytes.Equal(before, again) {
		t.Error("appending to Properties changed another field")
	}
}

func TestRoundTrip(t *testing.T) {
	body := benchBody(20)
	events, _, err := ParseSegment("batch", body, testNow, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	checkEvents(t, events, testNow)
	checkAgainstStdlib(t, "batch", body, events)
	if len(events) != 20 {
		t.Fatalf("%d events", len(events))
	}
	if len(body)/20 < 450 || len(body)/20 > 650 {
		t.Errorf("benchmark events are %d bytes, want about 500", len(body)/20)
	}
}

// checkEvents asserts what every parsed event must satisfy, including the
// log's encoding round trip.
func checkEvents(t testing.TB, events []nudge.Event, now time.Time) {
	t.Helper()
	if len(events) == 0 {
		t.Fatal("no events and no error")
	}
	for i := range events {
		ev := &events[i]
		if ev.MessageID == "" || !ev.Type.Valid() || ev.CustomerKey() == "" || ev.Timestamp.IsZero() || !ev.ReceivedAt.Equal(now) {
			t.Fatalf("event %d incomplete: %+v", i, ev)
		}
		for _, raw := range []json.RawMessage{ev.Properties, ev.Traits, ev.Context, ev.Integrations, ev.Metadata} {
			if raw != nil && (len(raw) == 0 || raw[0] != '{' || !json.Valid(raw)) {
				t.Fatalf("event %d: raw field %q is not a JSON object", i, raw)
			}
		}
	}
	enc := nudge.EncodeEvents(nil, events)
	dec, err := nudge.DecodeEvents(enc)
	if err != nil {
		t.Fatalf("DecodeEvents: %v", err)
	}
	if len(dec) != len(events) {
		t.Fatalf("round trip: %d events, want %d", len(dec), len(events))
	}
	if enc2 := nudge.EncodeEvents(nil, dec); !bytes.Equal(enc, enc2) {
		t.Fatalf("round trip changed the encoding:\n%s\n%s", enc, enc2)
	}
	for i := range dec {
		a, b := events[i], dec[i]
		if a.MessageID != b.MessageID || a.UserID != b.UserID || a.AnonymousID != b.AnonymousID || a.Event != b.Event ||
			a.Type != b.Type || a.GroupID != b.GroupID || a.PreviousID != b.PreviousID || a.Name != b.Name ||
			a.Category != b.Category || a.Channel != b.Channel || !a.Timestamp.Equal(b.Timestamp) ||
			!a.OriginalTimestamp.Equal(b.OriginalTimestamp) || !a.SentAt.Equal(b.SentAt) || !a.ReceivedAt.Equal(b.ReceivedAt) {
			t.Fatalf("round trip changed event %d:\n%+v\n%+v", i, a, b)
		}
	}
}

// checkAgainstStdlib compares what ParseSegment extracted with what
// encoding/json reads from the same body (keys matched exactly, as a map
// does).
func checkAgainstStdlib(t testing.TB, kind string, body []byte, events []nudge.Event) {
	t.Helper()
	var items []map[string]any
	var env map[string]any
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatalf("encoding/json refuses a body ParseSegment accepted: %v", err)
	}
	batchCtx := false
	if kind == KindBatch {
		for _, it := range env["batch"].([]any) {
			items = append(items, it.(map[string]any))
		}
		batchCtx = env["context"] != nil || env["integrations"] != nil
	} else {
		items = []map[string]any{env}
	}
	if len(items) != len(events) {
		t.Fatalf("%d items, %d events", len(items), len(events))
	}
	str := func(m map[string]any, k string) string {
		switch v := m[k].(type) {
		case string:
			return v
		case float64:
			return "<number>"
		}
		return ""
	}
	for i, it := range items {
		ev := &events[i]
		for _, f := range []struct {
			key, got string
		}{
			{"userId", ev.UserID}, {"anonymousId", ev.AnonymousID}, {"previousId", ev.PreviousID}, {"groupId", ev.GroupID},
			{"event", ev.Event}, {"name", ev.Name}, {"category", ev.Category}, {"channel", ev.Channel},
		} {
			want := str(it, f.key)
			if want == "<number>" {
				continue
			}
			if want != f.got {
				t.Fatalf("event %d %s: got %q, encoding/json reads %q", i, f.key, f.got, want)
			}
		}
		if id := str(it, "messageId"); id != "" && id != ev.MessageID {
			t.Fatalf("event %d messageId: got %q, encoding/json reads %q", i, ev.MessageID, id)
		}
		raws := []struct {
			key string
			got json.RawMessage
		}{{"properties", ev.Properties}, {"traits", ev.Traits}, {"_metadata", ev.Metadata}}
		if !batchCtx {
			raws = append(raws, struct {
				key string
				got json.RawMessage
			}{"context", ev.Context}, struct {
				key string
				got json.RawMessage
			}{"integrations", ev.Integrations})
		}
		if batchCtx {
			for _, key := range []string{"context", "integrations"} {
				got := ev.Context
				if key == "integrations" {
					got = ev.Integrations
				}
				want := map[string]any{}
				if m, ok := env[key].(map[string]any); ok {
					for k, v := range m {
						want[k] = v
					}
				}
				if m, ok := it[key].(map[string]any); ok {
					for k, v := range m {
						want[k] = v
					}
				}
				gotMap := map[string]any{}
				if got != nil {
					if err := json.Unmarshal(got, &gotMap); err != nil {
						t.Fatalf("event %d %s: %s: %v", i, key, got, err)
					}
				}
				if !reflect.DeepEqual(gotMap, want) {
					t.Fatalf("event %d %s: got %s, want the merge %v", i, key, got, want)
				}
			}
		}
		if ts := str(it, "timestamp"); ts != "" {
			if want, err := time.Parse(time.RFC3339Nano, ts); err != nil || (!want.IsZero() && !want.Equal(ev.Timestamp)) {
				t.Fatalf("event %d timestamp %q: got %v, time.Parse gives %v, %v", i, ts, ev.Timestamp, want, err)
			}
		}
		for _, r := range raws {
			want, present := it[r.key]
			if want == nil {
				if r.got != nil {
					t.Fatalf("event %d %s: got %s, encoding/json reads %v (present %v)", i, r.key, r.got, want, present)
				}
				continue
			}
			var got any
			if err := json.Unmarshal(r.got, &got); err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("event %d %s: got %s, encoding/json reads %v", i, r.key, r.got, want)
			}
		}
	}
}

// benchBody is a /v1/batch body of n events shaped like analytics-node's:
// ~500 bytes each with context.library, properties and _metadata.
func benchBody(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"batch":[`)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"type":"track","event":"Order Completed","properties":{"orderId":"ord_%06d","total":42.5,"currency":"EUR","products":[{"sku":"SKU-1","quantity":2,"price":21.25}]},"userId":"user-%d","anonymousId":"0d3c1d2e-5f4a-4b7e-9c1d-2e3f4a5b6c7d","messageId":"node-next-1764229930123-%08d","timestamp":"2026-11-27T07:52:10.123Z","context":{"library":{"name":"@segment/analytics-node","version":"2.1.2"},"ip":"203.0.113.7","userAgent":"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7)"},"integrations":{},"_metadata":{"nodeVersion":"20.11.0","jsRuntime":"node"}}`, i, i, i)
	}
	b.WriteString(`],"writeKey":"wk_3fa85f64","sentAt":"2026-11-27T07:52:11.000Z"}`)
	return b.Bytes()
}

func BenchmarkParseBatch(b *testing.B) {
	body := benchBody(100)
	lim := DefaultLimits()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		events, _, err := ParseSegment("batch", body, testNow, lim)
		if err != nil || len(events) != 100 {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/100, "ns/event")
	b.ReportMetric(float64(len(body))/100, "bytes/event")
}

func BenchmarkParseTrack(b *testing.B) {
	body := benchBody(1)
	body = body[len(`{"batch":[`):bytes.LastIndex(body, []byte("],"))]
	lim := DefaultLimits()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ParseSegment("track", body, testNow, lim); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBaselineJSONValid measures json.Valid on BenchmarkParseBatch's
// body: a reference for ParseBatch on a noisy machine.
func BenchmarkBaselineJSONValid(b *testing.B) {
	body := benchBody(100)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if !json.Valid(body) {
			b.Fatal("invalid")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/100, "ns/event")
}
