package ingest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	nudge "github.com/nudge-dev/nudge"
	"github.com/nudge-dev/nudge/api"
)

const (
	ctStructured = "application/cloudevents+json"
	ctBatch      = "application/cloudevents-batch+json"
)

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

// binaryHdr is a valid binary-mode header set, with overrides (an empty
// value deletes the header).
func binaryHdr(kv ...string) http.Header {
	h := hdr("Ce-Specversion", "1.0", "Ce-Id", "e1", "Ce-Source", "/shop", "Ce-Type", "order.completed", "Ce-Subject", "u1")
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == "" {
			h.Del(kv[i])
		} else {
			h.Set(kv[i], kv[i+1])
		}
	}
	return h
}

// ce is a structured event with the given members added (or, with a null
// value, removed) on top of a valid one.
func ce(members string) string {
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(`{"specversion":"1.0","id":"e1","source":"/shop","type":"order.completed","subject":"u1"}`), &m); err != nil {
		panic(err)
	}
	if members != "" {
		var add map[string]json.RawMessage
		if err := json.Unmarshal([]byte("{"+members+"}"), &add); err != nil {
			panic(err)
		}
		for k, v := range add {
			if string(v) == "null" {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func ceContext(t *testing.T, ev nudge.Event) map[string]any {
	t.Helper()
	var c struct {
		CloudEvents map[string]any `json:"cloudevents"`
	}
	if err := json.Unmarshal(ev.Context, &c); err != nil || c.CloudEvents == nil {
		t.Fatalf("context %s: %v", ev.Context, err)
	}
	return c.CloudEvents
}

func parseCE(t *testing.T, h http.Header, body string) []nudge.Event {
	t.Helper()
	events, err := ParseCloudEvents(h, []byte(body), testNow, DefaultLimits())
	if err != nil {
		t.Fatalf("ParseCloudEvents: %v", err)
	}
	checkEvents(t, events, testNow)
	return events
}

func TestCloudEventsStructured(t *testing.T) {
	body := ce(`"time":"2026-11-27T07:52:10.5Z","datacontenttype":"application/json","data":{"total":42,"items":[1,2]},"shopext":"x","count":3,"flag":true`)
	events := parseCE(t, hdr("Content-Type", ctStructured+"; charset=utf-8"), body)
	if len(events) != 1 {
		t.Fatalf("%d events", len(events))
	}
	assertEvent(t, events[0], nudge.Event{
		Type: nudge.Track, Event: "order.completed", MessageID: "e1", UserID: "u1",
		Properties: events[0].Properties, Context: events[0].Context,
		Timestamp: mustTime("2026-11-27T07:52:10.5Z"), ReceivedAt: testNow,
	})
	assertJSONEqual(t, "properties", events[0].Properties, `{"total":42,"items":[1,2]}`)
	assertJSONEqual(t, "context", events[0].Context, `{"cloudevents":{"source":"/shop","specversion":"1.0","subject":"u1",
		"datacontenttype":"application/json","extensions":{"shopext":"x","count":3,"flag":true}}}`)
}

func TestCloudEventsMapping(t *testing.T) {
	cases := []struct {
		name, body  string
		user, anon  string
		props       string // "" for none
		noTimestamp bool
	}{
		{"userid extension wins over subject", ce(`"userid":"u9","anonymousid":"a9"`), "u9", "a9", "", true},
		{"integer userid", ce(`"userid":42,"subject":null`), "42", "", "", true},
		{"anonymousid alone", ce(`"anonymousid":"a1","subject":null`), "", "a1", "", true},
		{"empty userid falls back to subject", ce(`"userid":""`), "u1", "", "", true},
		{"text data", ce(`"datacontenttype":"text/plain","data":"hello \u00e9"`), "u1", "", `{"data":"hello é"}`, true},
		{"xml data", ce(`"datacontenttype":"application/xml","data":"<a/>"`), "u1", "", `{"data":"<a/>"}`, true},
		{"base64 data", ce(`"datacontenttype":"application/octet-stream","data_base64":"aGVsbG8="`), "u1", "", `{"data":"aGVsbG8="}`, true},
		{"array data", ce(`"data":[1,"two"]`), "u1", "", `{"data":[1,"two"]}`, true},
		{"string data without content type", ce(`"data":"s"`), "u1", "", `{"data":"s"}`, true},
		{"number data", ce(`"datacontenttype":"application/json","data":3.5`), "u1", "", `{"data":3.5}`, true},
		{"null data", ce(`"data":null`), "u1", "", "", true},
		{"time", ce(`"time":"2026-11-27T07:00:00+01:00"`), "u1", "", "", false},
		{"specversion 0.3", ce(`"specversion":"0.3","data":{"a":1}`), "u1", "", `{"a":1}`, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev := parseCE(t, hdr("Content-Type", ctStructured), c.body)[0]
			if ev.UserID != c.user || ev.AnonymousID != c.anon {
				t.Errorf("user %q anon %q, want %q %q", ev.UserID, ev.AnonymousID, c.user, c.anon)
			}
			if c.props == "" {
				if ev.Properties != nil {
					t.Errorf("properties %s, want none", ev.Properties)
				}
			} else {
				assertJSONEqual(t, "properties", ev.Properties, c.props)
			}
			if c.noTimestamp != ev.Timestamp.Equal(testNow) {
				t.Errorf("timestamp %v", ev.Timestamp)
			}
			ext, _ := ceContext(t, ev)["extensions"].(map[string]any)
			if _, ok := ext["userid"]; ok {
				t.Errorf("userid left in extensions: %v", ext)
			}
			if _, ok := ext["anonymousid"]; ok {
				t.Errorf("anonymousid left in extensions: %v", ext)
			}
		})
	}
}

func TestCloudEventsBatch(t *testing.T) {
	body := "[" + ce(`"id":"b1","data":{"n":1}`) + ",\n " + ce(`"id":"b2","subject":null,"anonymousid":"a2","type":"page.viewed"`) + "]"
	events := parseCE(t, hdr("Content-Type", ctBatch), body)
	if len(events) != 2 || events[0].MessageID != "b1" || events[1].MessageID != "b2" ||
		events[1].AnonymousID != "a2" || events[1].Event != "page.viewed" || events[1].UserID != "" {
		t.Fatalf("events %+v", events)
	}
	assertJSONEqual(t, "properties", events[0].Properties, `{"n":1}`)
}

func TestCloudEventsBinary(t *testing.T) {
	cases := []struct {
		name   string
		header http.Header
		body   string
		props  string
	}{
		{"json", binaryHdr("Content-Type", "application/json", "Ce-Time", "2026-11-27T07:52:10Z", "Ce-Shopext", "x"), `{"total":42}`, `{"total":42}`},
		{"json suffix", binaryHdr("Content-Type", "application/vnd.shop+json; charset=utf-8"), `[1]`, `{"data":[1]}`},
		{"text", binaryHdr("Content-Type", "text/plain; charset=utf-8"), "hello", `{"data":"hello"}`},
		{"bytes", binaryHdr("Content-Type", "application/octet-stream"), "\x00\x01\xff", `{"data":"AAH/"}`},
		{"no content type, json", binaryHdr(), ` {"a":1} `, `{"a":1}`},
		{"no content type, not json", binaryHdr(), `a=1`, `{"data":"YT0x"}`},
		{"no body", binaryHdr("Content-Type", "application/json"), ``, ``},
		{"userid header", binaryHdr("Ce-Userid", "u7", "Ce-Anonymousid", "a7"), ``, ``},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev := parseCE(t, c.header, c.body)[0]
			if ev.MessageID != "e1" || ev.Event != "order.completed" || ev.Type != nudge.Track {
				t.Errorf("event %+v", ev)
			}
			if c.props == "" {
				if ev.Properties != nil {
					t.Errorf("properties %s", ev.Properties)
				}
			} else {
				assertJSONEqual(t, "properties", ev.Properties, c.props)
			}
			info := ceContext(t, ev)
			if info["source"] != "/shop" || info["specversion"] != "1.0" {
				t.Errorf("context %s", ev.Context)
			}
		})
	}
	ev := parseCE(t, binaryHdr("Content-Type", "application/json", "Ce-Time", "2026-11-27T07:52:10Z", "Ce-Shopext", "x"), `{}`)[0]
	if !ev.Timestamp.Equal(mustTime("2026-11-27T07:52:10Z")) || ev.UserID != "u1" {
		t.Errorf("event %+v", ev)
	}
	assertJSONEqual(t, "context", ev.Context, `{"cloudevents":{"source":"/shop","specversion":"1.0","subject":"u1","datacontenttype":"application/json","extensions":{"shopext":"x"}}}`)
	ev = parseCE(t, binaryHdr("Ce-Userid", "u7", "Ce-Anonymousid", "a7"), ``)[0]
	if ev.UserID != "u7" || ev.AnonymousID != "a7" {
		t.Errorf("event %+v", ev)
	}
	// Header keys as a client library may leave them (not canonical).
	h := http.Header{"ce-specversion": {"1.0"}, "ce-id": {"e1"}, "ce-source": {"/shop"}, "ce-type": {"t"}, "ce-subject": {"u1"}, "content-type": {"application/json"}}
	ev = parseCE(t, h, `{"a":1}`)[0]
	if ev.MessageID != "e1" || ev.Event != "t" {
		t.Errorf("event %+v", ev)
	}
}

func TestCloudEventsErrors(t *testing.T) {
	bigData := `"data":{"pad":"` + strings.Repeat("x", 33*1024) + `"}`
	cases := []struct {
		name   string
		header http.Header
		body   string
		status int
		code   string
		field  string
	}{
		// Structured.
		{"missing id", hdr("Content-Type", ctStructured), ce(`"id":null`), 400, api.CodeInvalidCloudEvent, "id"},
		{"empty id", hdr("Content-Type", ctStructured), ce(`"id":""`), 400, api.CodeInvalidCloudEvent, "id"},
		{"missing source", hdr("Content-Type", ctStructured), ce(`"source":null`), 400, api.CodeInvalidCloudEvent, "source"},
		{"missing type", hdr("Content-Type", ctStructured), ce(`"type":null`), 400, api.CodeInvalidCloudEvent, "type"},
		{"missing specversion", hdr("Content-Type", ctStructured), ce(`"specversion":null`), 400, api.CodeInvalidCloudEvent, "specversion"},
		{"unknown specversion", hdr("Content-Type", ctStructured), ce(`"specversion":"2.0"`), 400, api.CodeInvalidCloudEvent, "specversion"},
		{"bad time", hdr("Content-Type", ctStructured), ce(`"time":"yesterday"`), 400, api.CodeInvalidCloudEvent, "time"},
		{"time number", hdr("Content-Type", ctStructured), ce(`"time":1732693930`), 400, api.CodeInvalidCloudEvent, "time"},
		{"id number", hdr("Content-Type", ctStructured), ce(`"id":7`), 400, api.CodeInvalidCloudEvent, "id"},
		{"bad datacontenttype", hdr("Content-Type", ctStructured), ce(`"datacontenttype":"not a type"`), 400, api.CodeInvalidCloudEvent, "datacontenttype"},
		{"data_base64 number", hdr("Content-Type", ctStructured), ce(`"data_base64":12`), 400, api.CodeInvalidCloudEvent, "data_base64"},
		{"data_base64 not base64", hdr("Content-Type", ctStructured), ce(`"data_base64":"%%%"`), 400, api.CodeInvalidCloudEvent, "data_base64"},
		{"text data not a string", hdr("Content-Type", ctStructured), ce(`"datacontenttype":"text/plain","data":{"a":1}`), 400, api.CodeInvalidCloudEvent, "data"},
		{"bad extension name", hdr("Content-Type", ctStructured), ce(`"my_ext":"x"`), 400, api.CodeInvalidCloudEvent, "my_ext"},
		{"object extension", hdr("Content-Type", ctStructured), ce(`"shopext":{"a":1}`), 400, api.CodeInvalidCloudEvent, "shopext"},
		{"no identity", hdr("Content-Type", ctStructured), ce(`"subject":null`), 400, api.CodeMissingIdentity, "subject"},
		{"userid bool", hdr("Content-Type", ctStructured), ce(`"userid":true`), 400, api.CodeInvalidType, "userid"},
		{"malformed json", hdr("Content-Type", ctStructured), `{"specversion":"1.0",`, 400, api.CodeInvalidJSON, ""},
		{"trailing garbage", hdr("Content-Type", ctStructured), ce("") + "x", 400, api.CodeInvalidJSON, ""},
		{"structured array", hdr("Content-Type", ctStructured), "[" + ce("") + "]", 400, api.CodeInvalidJSON, ""},
		{"invalid utf8", hdr("Content-Type", ctStructured), strings.Replace(ce(`"data":{"a":"X"}`), "X", "\xff", 1), 400, api.CodeInvalidUTF8, ""},
		{"too deep", hdr("Content-Type", ctStructured), ce(`"data":{"a":` + nested(100) + `}`), 400, api.CodeTooDeep, ""},
		{"structured too large", hdr("Content-Type", ctStructured), ce(bigData), 413, api.CodeEventTooLarge, ""},

		// Batch.
		{"bad third event", hdr("Content-Type", ctBatch), "[" + ce(`"id":"1"`) + "," + ce(`"id":"2"`) + "," + ce(`"type":""`) + "]", 400, api.CodeInvalidCloudEvent, "[2].type"},
		{"batch event without identity", hdr("Content-Type", ctBatch), "[" + ce("") + "," + ce(`"subject":null`) + "]", 400, api.CodeMissingIdentity, "[1].subject"},
		{"batch bad time", hdr("Content-Type", ctBatch), "[" + ce(`"time":"noon"`) + "]", 400, api.CodeInvalidCloudEvent, "[0].time"},
		{"batch element not object", hdr("Content-Type", ctBatch), "[" + ce("") + `,"x"]`, 400, api.CodeInvalidCloudEvent, "[1]"},
		{"empty batch", hdr("Content-Type", ctBatch), `[]`, 400, api.CodeEmptyBatch, ""},
		{"batch object", hdr("Content-Type", ctBatch), ce(""), 400, api.CodeInvalidJSON, ""},
		{"batch event too large", hdr("Content-Type", ctBatch), "[" + ce("") + "," + ce(bigData) + "]", 413, api.CodeEventTooLarge, "[1]"},
		{"batch too large", hdr("Content-Type", ctBatch), "[" + strings.Repeat(ce(`"data":"`+strings.Repeat("y", 20000)+`"`)+",", 30) + ce("") + "]", 413, api.CodeBatchTooLarge, ""},

		// Binary.
		{"binary missing id", binaryHdr("Ce-Id", ""), `{}`, 400, api.CodeInvalidCloudEvent, "id"},
		{"binary missing source", binaryHdr("Ce-Source", ""), `{}`, 400, api.CodeInvalidCloudEvent, "source"},
		{"binary missing type", binaryHdr("Ce-Type", ""), `{}`, 400, api.CodeInvalidCloudEvent, "type"},
		{"binary bad time", binaryHdr("Ce-Time", "yesterday"), `{}`, 400, api.CodeInvalidCloudEvent, "time"},
		{"binary bad source", binaryHdr("Ce-Source", "%zz"), `{}`, 400, api.CodeInvalidCloudEvent, "source"},
		{"binary bad extension name", binaryHdr("Ce-My-Ext", "x"), `{}`, 400, api.CodeInvalidCloudEvent, "my-Ext"},
		{"binary unknown specversion", binaryHdr("Ce-Specversion", "2.0"), `{}`, 400, api.CodeInvalidCloudEvent, "specversion"},
		{"binary no identity", binaryHdr("Ce-Subject", ""), `{}`, 400, api.CodeMissingIdentity, "subject"},
		{"binary invalid json data", binaryHdr("Content-Type", "application/json"), `{"a":`, 400, api.CodeInvalidJSON, "data"},
		{"binary invalid utf8 json data", binaryHdr("Content-Type", "application/json"), "\"\xff\"", 400, api.CodeInvalidUTF8, "data"},
		{"binary deep json data", binaryHdr("Content-Type", "application/json"), nested(40), 400, api.CodeTooDeep, "data"},
		{"binary invalid utf8 header", binaryHdr("Ce-Type", "order\xff"), `{}`, 400, api.CodeInvalidUTF8, "type"},
		{"binary too large", binaryHdr("Content-Type", "text/plain"), strings.Repeat("z", 33*1024), 413, api.CodeEventTooLarge, ""},
		{"empty ce- header", binaryHdr("Ce-", "x"), `{}`, 400, api.CodeInvalidCloudEvent, ""},

		// Neither mode.
		{"plain json", hdr("Content-Type", "application/json"), ce(""), 400, api.CodeInvalidCloudEvent, "specversion"},
		{"no headers", http.Header{}, ce(""), 400, api.CodeInvalidCloudEvent, "specversion"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			events, err := ParseCloudEvents(c.header, []byte(c.body), testNow, DefaultLimits())
			if events != nil {
				t.Errorf("got %d events with an error", len(events))
			}
			assertError(t, err, c.status, c.code, c.field)
		})
	}
}

func TestCloudEventsNoAliasing(t *testing.T) {
	for i, c := range []struct {
		h    http.Header
		body string
	}{
		{hdr("Content-Type", ctStructured), ce(`"data":{"a":"b"}`)},
		{hdr("Content-Type", ctBatch), "[" + ce(`"data":{"a":"b"}`) + "]"},
		{binaryHdr("Content-Type", "application/json"), `{"a":"b"}`},
	} {
		body := []byte(c.body)
		events, err := ParseCloudEvents(c.h, body, testNow, DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		before := nudge.EncodeEvents(nil, events)
		for j := range body {
			body[j] = 'X'
		}
		if after := nudge.EncodeEvents(nil, events); string(before) != string(after) {
			t.Errorf("case %d: events changed with the body", i)
		}
	}
}

func ExampleParseCloudEvents() {
	h := http.Header{}
	h.Set("Content-Type", "application/cloudevents+json")
	body := `{"specversion":"1.0","id":"e1","source":"/shop","type":"order.completed","subject":"u1","data":{"total":42}}`
	events, err := ParseCloudEvents(h, []byte(body), testNow, DefaultLimits())
	if err != nil {
		panic(err)
	}
	ev := events[0]
	fmt.Println(ev.Type, ev.Event, ev.MessageID, ev.UserID, string(ev.Properties), string(ev.Context))
	// Output: track order.completed e1 u1 {"total":42} {"cloudevents":{"source":"/shop","specversion":"1.0","subject":"u1"}}
}
