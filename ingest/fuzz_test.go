package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"unicode/utf8"

	"github.com/nudge-dev/nudge/api"
)

var segmentKinds = []string{"track", "identify", "page", "screen", "group", "alias", KindBatch}

func kindIndex(kind string) uint8 {
	for i, k := range segmentKinds {
		if k == kind {
			return uint8(i)
		}
	}
	return 0
}

var knownCodes = map[string]bool{
	api.CodeInvalidJSON: true, api.CodeInvalidUTF8: true, api.CodeInvalidNumber: true, api.CodeTooDeep: true, api.CodeInvalidType: true,
	api.CodeMissingIdentity: true, api.CodeMissingField: true, api.CodeUnknownType: true, api.CodeInvalidTimestamp: true,
	api.CodeEmptyBatch: true, api.CodeEventTooLarge: true, api.CodeBatchTooLarge: true, api.CodeInvalidCloudEvent: true,
}

// checkErr asserts err is a well-formed client error.
func checkErr(t *testing.T, err error) *api.Error {
	t.Helper()
	var e *api.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *api.Error", err, err)
	}
	if (e.Status != http.StatusBadRequest && e.Status != http.StatusRequestEntityTooLarge) || !knownCodes[e.Code] || e.Message == "" {
		t.Fatalf("bad error %+v", e)
	}
	if e.Status != api.StatusOf(e.Code) {
		t.Fatalf("status %d for code %s", e.Status, e.Code)
	}
	return e
}

func FuzzParseSegment(f *testing.F) {
	for _, c := range segmentErrCases {
		if len(c.body) <= 4096 && c.kind != "purchase" {
			f.Add(kindIndex(c.kind), []byte(c.body))
		}
	}
	seeds := []struct{ kind, body string }{
		{"track", okTrack},
		{"identify", okIdentify},
		{"track", `{"userId":"caf\u00e9 \ud83d\ude00 \ud800","event":"e","properties":{"a":[1,-2.5e3,true,false,null,{"b":"\"\\\/\b\f\n\r\t"}]}}`},
		{"group", `{"userId":12345,"anonymousId":-7,"groupId":1e3}`},
		{"alias", `{"userId":"u1","previousId":"a1","originalTimestamp":"2026-11-27T07:50:00Z","sentAt":"2026-11-27T07:50:10Z"}`},
		{"page", `{"userId":"u1","name":"Home","category":"c","channel":"web","context":{"ip":"1.2.3.4"},"integrations":{"All":true},"_metadata":{}}`},
		{"batch", string(benchBody(2))},
		{"batch", `{"batch":[{"type":"track","userId":"u","event":"e","context":{"a":1}},{"type":"screen","anonymousId":"a","name":"n"}],"context":{"a":2,"b":3},"integrations":{"x":true},"sentAt":"2026-11-27T07:50:10Z","writeKey":"wk"}`},
	}
	for _, s := range seeds {
		f.Add(kindIndex(s.kind), []byte(s.body))
		f.Add(kindIndex(s.kind)|0x80, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, k uint8, body []byte) {
		kind := segmentKinds[int(k&0x7f)%len(segmentKinds)]
		lim := DefaultLimits()
		if k&0x80 != 0 {
			lim = Limits{MaxEventBytes: 300, MaxBatchBytes: 1000, MaxDepth: 5}
		}
		events, wk, err := ParseSegment(kind, body, testNow, lim)
		if err != nil {
			e := checkErr(t, err)
			if events != nil || wk != "" {
				t.Fatalf("events and write key returned with error %v", e)
			}
			switch e.Code {
			case api.CodeInvalidJSON:
				if trimmed := bytes.TrimLeft(body, " \t\r\n"); json.Valid(body) && len(trimmed) > 0 && trimmed[0] == '{' {
					t.Fatalf("invalid_json (%v) for a valid JSON object", e)
				}
			case api.CodeInvalidNumber:
				var v any
				if json.Unmarshal(body, &v) == nil {
					t.Fatalf("invalid_number (%v) for a body encoding/json decodes", e)
				}
			case api.CodeInvalidUTF8:
				if utf8.Valid(body) {
					t.Fatalf("invalid_utf8 (%v) for valid UTF-8", e)
				}
			}
			return
		}
		if !json.Valid(body) || !utf8.Valid(body) {
			t.Fatalf("accepted a body that is not valid JSON in UTF-8")
		}
		checkEvents(t, events, testNow)
		checkAgainstStdlib(t, kind, body, events)
	})
}

func FuzzParseCloudEvents(f *testing.F) {
	bodies := []string{
		ce(""),
		ce(`"time":"2026-11-27T07:52:10.5Z","datacontenttype":"application/json","data":{"total":42},"shopext":"x","count":3,"flag":true`),
		ce(`"userid":42,"anonymousid":"a","subject":null`),
		ce(`"datacontenttype":"text/plain","data":"hello"`),
		ce(`"data_base64":"aGVsbG8="`),
		ce(`"specversion":"0.3","datacontentencoding":"base64","data":"aGVsbG8="`),
		ce(`"data":[1,2]`),
		"[" + ce(`"id":"1"`) + "," + ce(`"id":"2"`) + "]",
		`{"a":1}`,
		"hello",
		"",
	}
	for _, b := range bodies {
		for mode := uint8(0); mode < 4; mode++ {
			f.Add(mode, []byte(b), "")
		}
	}
	f.Add(uint8(3), []byte(`{}`), "2026-11-27T07:52:10Z")
	f.Add(uint8(7), []byte(`{}`), "yesterday")
	f.Add(uint8(11), []byte(`{}`), "%zz")
	contentTypes := []string{"application/json", "text/plain", "application/octet-stream", "", "application/vnd.x+json", "not a type"}
	headers := []string{"Ce-Time", "Ce-Type", "Ce-Source", "Ce-Id", "Ce-Subject", "Ce-Userid", "Ce-Specversion", "Content-Type", "Ce-Dataschema", "Ce-Ext"}
	f.Fuzz(func(t *testing.T, mode uint8, body []byte, value string) {
		var h http.Header
		switch mode % 4 {
		case 0:
			h = hdr("Content-Type", ctStructured)
		case 1:
			h = hdr("Content-Type", ctBatch)
		case 2:
			h = binaryHdr("Content-Type", contentTypes[int(mode/4)%len(contentTypes)])
		case 3:
			h = binaryHdr()
			h.Set(headers[int(mode/4)%len(headers)], value)
		}
		events, err := ParseCloudEvents(h, body, testNow, DefaultLimits())
		if err != nil {
			checkErr(t, err)
			if events != nil {
				t.Fatal("events returned with an error")
			}
			return
		}
		checkEvents(t, events, testNow)
	})
}
