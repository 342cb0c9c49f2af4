package channel_test

import (
	"testing"

	"github.com/nudge-dev/nudge/channel"
)

func TestMessageKeyRoundTrip(t *testing.T) {
	for _, o := range []channel.Origin{
		{Journey: "cart", Version: 3, Step: "email"},
		{Journey: "a.b", Version: 0, Variant: "short: v/2", Step: "s.1"},
	} {
		for _, visit := range []int64{1, 4} {
			k := channel.MessageKey(o, "0a1b", visit)
			got, ok := channel.ParseMessageKey(k)
			if !ok || got != o {
				t.Errorf("%q parses to %+v, %v; want %+v", k, got, ok, o)
			}
		}
	}
	for _, k := range []string{"", "run.step", "j@x:r.s", "@1:r.s", "j@1:r."} {
		if o, ok := channel.ParseMessageKey(k); ok {
			t.Errorf("%q parses to %+v", k, o)
		}
	}
}
