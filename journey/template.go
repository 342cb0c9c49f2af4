package journey

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/osteele/liquid"

	"github.com/nudge-dev/nudge"
	"github.com/nudge-dev/nudge/profile"
)

// Templates are Liquid (github.com/osteele/liquid: Shopify's syntax,
// tags and standard filters, json included), parsed when a journey loads
// and rendered when a send step runs, over profile, event, trigger and
// journey (docs/journeys.md, Templates).

// liquidEngine is configured once and never changed; parsing and rendering
// with it are safe for concurrent use.
var liquidEngine = sync.OnceValue(liquid.NewEngine)

// Template is one compiled Liquid text.
type Template struct {
	Source string
	tpl    *liquid.Template
}

// liquidPrefix is how the liquid package starts its messages.
var liquidPrefix = regexp.MustCompile(`^Liquid error( \(line \d+\))?: `)

// TemplateError is a template that does not parse: Line counts from 1
// within the text (0 when unknown).
type TemplateError struct {
	Line int
	Msg  string
}

func (e *TemplateError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d of the template: %s", e.Line, e.Msg)
	}
	return e.Msg
}

// ParseTemplate compiles a Liquid text.
func ParseTemplate(src string) (*Template, error) {
	if !strings.Contains(src, "{") {
		return &Template{Source: src}, nil // no markup: rendered as is
	}
	tpl, err := liquidEngine().ParseTemplateLocation([]byte(src), "", 1)
	if err != nil {
		msg := liquidPrefix.ReplaceAllString(err.Error(), "")
		return nil, &TemplateError{Line: err.LineNumber(), Msg: msg}
	}
	return &Template{Source: src, tpl: tpl}, nil
}

// Render renders the template over vars.
func (t *Template) Render(vars TemplateVars) (string, error) {
	if t.tpl == nil {
		return t.Source, nil
	}
	out, err := t.tpl.Render(vars.bindings())
	if err != nil {
		var se liquid.SourceError
		if errors.As(err, &se) && se.Cause() != nil {
			return "", se.Cause()
		}
		return "", err
	}
	return string(out), nil
}

// TemplateVars are the variables of a template: the profile, the event
// (the run's latest), the trigger event and the journey (and run).
type TemplateVars struct {
	Profile *profile.Profile
	Event   *nudge.Event
	Trigger *nudge.Event
	Journey any // a map, or a liquid.Drop of one
}

func (v TemplateVars) bindings() liquid.Bindings {
	return liquid.Bindings{
		"profile": profileDrop{v.Profile},
		"event":   eventDrop{v.Event},
		"trigger": eventDrop{v.Trigger},
		"journey": v.Journey,
	}
}

// profileDrop and eventDrop build their maps when a template first reads
// them (liquid evaluates a Drop once per render).
type profileDrop struct{ p *profile.Profile }

func (d profileDrop) ToLiquid() any {
	if d.p == nil {
		return map[string]any{}
	}
	s := &d.p.State
	traits := make(map[string]any, len(s.Traits))
	for k, t := range s.Traits {
		traits[k] = decodeJSON(t.Value)
	}
	counts := make(map[string]any, len(s.Counts))
	for k, n := range s.Counts {
		counts[k] = n
	}
	items := s.Cart.Items()
	cart := make([]any, len(items))
	for i, it := range items {
		cart[i] = map[string]any{
			"id": it.ID, "product_id": it.ProductID, "sku": it.SKU, "name": it.Name,
			"price": it.Price, "quantity": it.Quantity, "properties": decodeJSON(it.Properties),
			"added_at": it.AddedAt,
		}
	}
	flags := func(m map[string]profile.TimedBool) map[string]any {
		out := make(map[string]any, len(m))
		for k, f := range m {
			out[k] = f.Value
		}
		return out
	}
	return map[string]any{
		"id": d.p.ID.P.String(), "traits": traits, "counts": counts, "orders": s.Orders,
		"revenue": s.Revenue.Float64(), "cart": cart, "first_seen": s.FirstSeen, "last_seen": s.LastSeen,
		"timezone": s.Timezone.Value, "consent": flags(s.Consent), "subscriptions": flags(s.Subscriptions),
	}
}

type eventDrop struct{ e *nudge.Event }

func (d eventDrop) ToLiquid() any {
	e := d.e
	if e == nil {
		return map[string]any{}
	}
	return map[string]any{
		"type": string(e.Type), "event": e.Event, "name": e.Name, "category": e.Category,
		"messageId": e.MessageID, "userId": e.UserID, "anonymousId": e.AnonymousID, "groupId": e.GroupID,
		"source": e.Source, "channel": e.Channel,
		"properties": decodeJSON(e.Properties), "traits": decodeJSON(e.Traits), "context": decodeJSON(e.Context),
		"timestamp": e.Timestamp, "receivedAt": e.ReceivedAt,
	}
}

// decodeJSON decodes a raw JSON value; nil for none or bad JSON.
func decodeJSON(raw json.RawMessage) any {
	if len(raw) == 0 {
		return nil
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return nil
	}
	return v
}

// journeyDrop is the journey variable of a run's templates.
type journeyDrop struct {
	j           *Journey
	r           *run
	step        string
	unsubscribe string // the message's unsubscribe link ("" for transactional ones)
}

func (d journeyDrop) ToLiquid() any {
	return map[string]any{
		"id": d.j.ID, "name": d.j.Name, "version": d.j.Version, "run_id": d.r.id.String(), "step": d.step,
		"variant": d.r.variant, "key": d.r.key, "started_at": fromNanos(d.r.started).Format(time.RFC3339),
		"unsubscribe_url": d.unsubscribe,
	}
}
