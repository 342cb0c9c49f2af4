package channel_test

import (
	"strings"
	"testing"

	"github.com/nudge-dev/nudge/channel"
)

func TestReadEmail(t *testing.T) {
	msg := func(fields map[string]string) *channel.Message {
		return &channel.Message{Fields: fields,
			Recipient: channel.Recipient{Identifiers: map[string]string{"email": "ada@example.com"}}}
	}
	m := msg(map[string]string{"subject": "  Your cart \n", "text": "t", "html": "<p>h</p>", "reply_to": "Help <help@shop.example>"})
	m.UnsubscribeURL = "https://shop.example/e/u?t=x"
	e, err := channel.ReadEmail(m, "Shop <shop@shop.example>")
	if err != nil {
		t.Fatal(err)
	}
	if e.To.Address != "ada@example.com" || e.From.String() != `"Shop" <shop@shop.example>` || e.ReplyTo.Address != "help@shop.example" ||
		e.Subject != "Your cart" || e.Text != "t" || e.HTML != "<p>h</p>" || e.ListUnsubscribe() != "<https://shop.example/e/u?t=x>" {
		t.Errorf("%+v", e)
	}
	e, err = channel.ReadEmail(msg(map[string]string{"to": "bob@example.com", "from": "news@shop.example", "subject": "s", "html": "h"}), "")
	if err != nil || e.To.Address != "bob@example.com" || e.From.Address != "news@shop.example" || e.ReplyTo != nil || e.ListUnsubscribe() != "" {
		t.Errorf("%+v, %v", e, err)
	}

	noEmail := msg(map[string]string{"subject": "s", "text": "t"})
	noEmail.Recipient.Identifiers = map[string]string{"phone": "+15550100"}
	badUnsub := msg(map[string]string{"subject": "s", "text": "t"})
	badUnsub.UnsubscribeURL = "https://x.example/u>\r\nBcc: all@example.com"
	for name, tc := range map[string]struct {
		m    *channel.Message
		from string
		want string
	}{
		"no address":      {noEmail, "shop@shop.example", "email identifier"},
		"bad address":     {msg(map[string]string{"to": "not-an-address", "subject": "s", "text": "t"}), "shop@shop.example", "recipient's address"},
		"no from":         {msg(map[string]string{"subject": "s", "text": "t"}), "", "no from field"},
		"bad from":        {msg(map[string]string{"from": "not-an-address", "subject": "s", "text": "t"}), "", "from field"},
		"no subject":      {msg(map[string]string{"subject": " ", "text": "t"}), "shop@shop.example", "subject"},
		"no body":         {msg(map[string]string{"subject": "s"}), "shop@shop.example", "neither a text nor an html"},
		"bad reply_to":    {msg(map[string]string{"subject": "s", "text": "t", "reply_to": "not-an-address"}), "shop@shop.example", "reply_to"},
		"bad unsubscribe": {badUnsub, "shop@shop.example", "UnsubscribeURL"},
	} {
		_, err := channel.ReadEmail(tc.m, tc.from)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "not-an-address") {
			t.Errorf("%s: %v", name, err)
		}
	}
	if channel.CheckFrom("") != nil || channel.CheckFrom("Shop <shop@shop.example>") != nil || channel.CheckFrom("nobody") == nil {
		t.Error("CheckFrom")
	}
}
