package journey

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nudge-dev/nudge/profile"
	"github.com/nudge-dev/nudge/shred"
)

// Frequency caps: at most Max marketing messages to one customer in any
// window of Per, across all journeys, on one channel or (Channel "") on
// all. A send step checks them when it queues its message, in the engine's
// transaction, against the customer's send log: an extension key
// jc/<profile id> holding the time and channel of each marketing message
// queued within the longest window. A capped message is not sent, and is
// counted (StepStats.Capped). Transactional messages are exempt.

const prefixCaps = "jc/"

// Cap is one frequency cap.
type Cap struct {
	Channel string // "" caps all channels together
	Max     int
	Per     time.Duration
}

func (c Cap) String() string {
	s := fmt.Sprintf("%d/%s", c.Max, c.Per)
	if c.Channel != "" {
		s = c.Channel + "=" + s
	}
	return s
}

// ParseCap parses a cap as [CHANNEL=]MAX/DURATION: "3/24h" (three a day on
// all channels), "email=1/4h".
func ParseCap(s string) (Cap, error) {
	var c Cap
	rest := s
	if ch, r, ok := strings.Cut(s, "="); ok {
		c.Channel, rest = ch, r
	}
	n, per, ok := strings.Cut(rest, "/")
	max, err := strconv.Atoi(n)
	if !ok || err != nil || max < 1 {
		return c, fmt.Errorf("frequency cap %q: want [CHANNEL=]MAX/DURATION with MAX at least 1, such as 3/24h or email=1/4h", s)
	}
	d, err := ParseDuration(per)
	if err != nil || d <= 0 {
		return c, fmt.Errorf("frequency cap %q: %q is not a positive duration (such as 4h or 1d)", s, per)
	}
	c.Max, c.Per = max, d
	return c, nil
}

func capsKey(p shred.Pseudonym) []byte {
	return append([]byte(prefixCaps), p[:]...)
}

type sentMark struct {
	at      int64
	channel string
}

// capped reports whether a marketing message on ch at due would exceed a
// cap; when it would, the message is logged against the caps.
func (t *txn) capped(ref profile.Ref, ch string, due int64) (bool, error) {
	caps := t.rt.cfg.Caps
	if len(caps) == 0 {
		return false, nil
	}
	key := capsKey(ref.P)
	v, _, err := t.tx.Get(t.ctx, key)
	if err != nil {
		return false, err
	}
	var longest time.Duration
	for _, c := range caps {
		longest = max(longest, c.Per)
	}
	var log []sentMark
	r := newRbuf(v)
	for len(r.Rest()) > 0 && r.Err() == nil {
		m := sentMark{at: r.varint(), channel: r.str()}
		if m.at > t.now-nanos(longest) {
			log = append(log, m)
		}
	}
	for _, c := range caps {
		if c.Channel != "" && c.Channel != ch {
			continue
		}
		// Messages less than Per before or after this one (a deferred
		// message may be due later than one queued now).
		n := 0
		for _, m := range log {
			if (c.Channel == "" || c.Channel == m.channel) && m.at > due-nanos(c.Per) && m.at < due+nanos(c.Per) {
				n++
			}
		}
		if n >= c.Max {
			return true, nil
		}
	}
	log = append(log, sentMark{due, ch})
	var w wbuf
	for _, m := range log {
		w.varint(m.at)
		w.str(m.channel)
	}
	t.tx.Set(key, w.b)
	return false, nil
}
