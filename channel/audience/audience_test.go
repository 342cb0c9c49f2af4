package audience_test

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/nudge-dev/nudge/channel"
	"github.com/nudge-dev/nudge/channel/audience"
)

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"  Foo.Bar@Example.COM ": "foo.bar@example.com",
		"a@b":                    "a@b",
		"no-at-sign":             "",
		"@example.com":           "",
		"foo@":                   "",
		"":                       "",
	} {
		if got := audience.NormalizeEmail(in); got != want {
			t.Errorf("NormalizeEmail(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"+1 (555) 123-4567":  "+15551234567",
		" +44 20 7946 0958 ": "+442079460958",
		"0049-30-1234567":    "+49301234567",
		"+33.1.23.45.67.89":  "+33123456789",
		"(555) 123-4567":     "", // national: the country is unknown
		"+1 555 CALL NOW":    "",
		"+1234567":           "", // too short
		"+1234567890123456":  "", // too long
		"+0123456789":        "", // no country code starts with 0
		"":                   "",
	} {
		if got := audience.NormalizePhone(in); got != want {
			t.Errorf("NormalizePhone(%q) = %q, want %q", in, got, want)
		}
	}
	sum := sha256.Sum256([]byte("foo.bar@example.com"))
	if got := audience.Hash("foo.bar@example.com"); got != hex.EncodeToString(sum[:]) || strings.ToLower(got) != got {
		t.Errorf("Hash = %s", got)
	}
}

func TestParse(t *testing.T) {
	msg := func(fields, ids map[string]string) *channel.Message {
		return &channel.Message{Fields: fields, Recipient: channel.Recipient{ProfileID: "p1", Identifiers: ids}}
	}
	r, err := audience.Parse(msg(nil, map[string]string{"email": " A@B.C ", "phone": "+1 555 123 4567"}), "42")
	if err != nil || r != (audience.Request{Action: audience.Add, Audience: "42", Email: "a@b.c", Phone: "+15551234567"}) {
		t.Fatalf("Parse = %+v, %v", r, err)
	}
	r, err = audience.Parse(msg(map[string]string{"action": " Remove", "audience": "7"}, map[string]string{"phone": "+15551234567"}), "42")
	if err != nil || r.Action != audience.Remove || r.Audience != "7" || r.Email != "" {
		t.Fatalf("Parse = %+v, %v", r, err)
	}
	for name, tc := range map[string]struct {
		fields, ids map[string]string
		def, want   string
	}{
		"no identifiers": {ids: map[string]string{"userId": "u1"}, def: "1", want: "no usable email or phone"},
		"unusable phone": {ids: map[string]string{"phone": "555-1234"}, def: "1", want: "no usable email or phone"},
		"no audience":    {ids: map[string]string{"email": "a@b.c"}, want: "no audience field"},
		"not an id":      {fields: map[string]string{"audience": "vip list"}, ids: map[string]string{"email": "a@b.c"}, want: "not an id"},
		"unknown action": {fields: map[string]string{"action": "replace"}, ids: map[string]string{"email": "a@b.c"}, def: "1", want: "not add or remove"},
	} {
		_, err := audience.Parse(msg(tc.fields, tc.ids), tc.def)
		if !channel.IsPermanent(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want a permanent error about %q", name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "@") {
			t.Errorf("%s: the error quotes an identifier: %v", name, err)
		}
	}
}
