package journey

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nudge-dev/nudge"
)

// TestParseErrors: each broken document reports exactly the expected
// errors, each as cart.yaml:<line>: <field>: <message>. A want entry is the
// start of an error after "cart.yaml:".
func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		doc  string
		want []string
	}{
		{
			name: "bad duration",
			doc: `id: cart
trigger:
  event: Checkout Started
steps:
  - id: sms
    send: {channel: sms, content: {body: hi}}
  - id: later
    wait:
      duration: 3 hourz
  - id: push
    send: {channel: push, content: {body: hi}}
`,
			want: []string{`9: steps[1].wait.duration: "3 hourz" is not a duration`},
		},
		{
			name: "duration without a unit",
			doc: `id: cart
trigger: {event: Checkout Started}
steps:
  - id: later
    wait: {duration: 30}
`,
			want: []string{`5: steps[0].wait.duration: 30 is not a duration: it needs a unit`},
		},
		{
			name: "every error of the file",
			doc: `id: cart
trigger:
  event: Checkout Started
  if: event.properties.total > 
steps:
  - id: sms
    send:
      channel: carrier-pigeon
      content: {body: hi}
  - id: sms
    wait:
      duration: 3 hourz
  - id: push
    send: {channel: push, content: {body: hi}}
    next: nowhere
`,
			want: []string{
				`4: trigger.if: column 25: Syntax error`,
				`8: steps[0].send.channel: unknown channel "carrier-pigeon" (known: webhook, log, email, sms, push, slack, google_ads, meta_audience, cdp)`,
				`10: steps[1].id: "sms" is already the id of steps[0]`,
				`12: steps[1].wait.duration: "3 hourz" is not a duration`,
				`15: steps[2].next: no step has the id "nowhere"`,
			},
		},
		{
			name: "unknown fields",
			doc: `id: cart
trigger: {event: Checkout Started}
colour: blue
steps:
  - id: later
    wiat: {duration: 1h}
`,
			want: []string{
				`3: colour: unknown field (fields: id, name, description, version, trigger, steps, exit_on, reentry, key, goal, allowed_lateness, quiet_hours)`,
				`5: steps[0]: needs one of send, wait, wait_for, branch, split, update, exit`,
				`6: steps[0].wiat: unknown field (did you mean wait?)`,
			},
		},
		{
			name: "missing target and suggestion",
			doc: `id: cart
trigger: {event: Checkout Started}
steps:
  - id: check
    branch:
      if: profile.cart.size() > 0
      then: remind
      else: stop
  - id: reminder
    send: {channel: sms, content: {body: hi}}
  - id: end
    exit: {}
`,
			want: []string{
				`7: steps[0].branch.then: no step has the id "remind" (did you mean "reminder"?)`,
				`8: steps[0].branch.else: no step has the id "stop"`,
				`9: steps[1]: step "reminder" is unreachable`,
				`11: steps[2]: step "end" is unreachable`,
			},
		},
		{
			name: "unreachable after an exit",
			doc: `id: cart
trigger: {event: Checkout Started}
steps:
  - id: stop
    exit:
  - id: never
    send: {channel: sms, content: {body: hi}}
`,
			want: []string{`6: steps[1]: step "never" is unreachable`},
		},
		{
			name: "loop without a wait",
			doc: `id: cart
trigger: {event: Checkout Started}
steps:
  - id: again
    send: {channel: sms, content: {body: hi}}
  - id: check
    branch:
      if: profile.cart.size() > 0
      then: again
`,
			want: []string{`4: steps[0]: the steps "again" → "check" → "again" loop without a wait or wait_for`},
		},
		{
			name: "self loop",
			doc: `id: cart
trigger: {event: Checkout Started}
steps:
  - id: again
    update: {set: {x: 1}}
    next: again
`,
			want: []string{`4: steps[0]: the steps "again" → "again" loop`},
		},
		{
			name: "a wait for a trait does not break a loop",
			doc: `id: cart
trigger: {event: Checkout Started}
steps:
  - id: again
    send: {channel: sms, content: {body: hi}}
  - id: until
    wait: {until_trait: renews_at}
    next: again
`,
			want: []string{`4: steps[0]: the steps "again" → "until" → "again" loop`},
		},
		{
			name: "wait_for without a timeout",
			doc: `id: cart
trigger: {event: Checkout Started}
steps:
  - id: order
    wait_for:
      event: Order Completed
`,
			want: []string{`5: steps[0].wait_for.timeout: is required: a run must not wait forever`},
		},
		{
			name: "split weights and holdout",
			doc: `id: cart
trigger: {event: Checkout Started}
steps:
  - id: test
    split:
      holdout: 1
      variants:
        - {name: a, weight: 0}
        - {name: a, weight: -2}
        - {name: c, weight: many}
`,
			want: []string{
				`6: steps[0].split.holdout: 1 is not in [0, 1)`,
				`8: steps[0].split.variants[0].weight: 0 is not a positive weight`,
				`9: steps[0].split.variants[1].name: "a" is already the name of another variant`,
				`9: steps[0].split.variants[1].weight: -2 is not a positive weight`,
				`10: steps[0].split.variants[2].weight: must be a number, not a string`,
			},
		},
		{
			name: "condition compile errors",
			doc: `id: cart
trigger:
  event: Checkout Started
  if: event.propertes.total > 10
exit_on:
  - event: Order Completed
    if: event.properties.cart_id == trigger.properties.cart_id
  - event: Refund Requested
    if: event.properties.amount + 1
steps:
  - id: check
    branch:
      if: |
        profile.orders > 0 &&
        profile.revenu > 500.0
      then: sms
  - id: sms
    send: {channel: sms, content: {body: hi}}
`,
			want: []string{
				`4: trigger.if: column 6: undefined field 'propertes' (did you mean properties?)`,
				`9: exit_on[1].if: a condition must be a bool, and this one's value is of type`,
				`15: steps[0].branch.if: column 8: undefined field 'revenu' (did you mean revenue?)`,
			},
		},
		{
			name: "trigger outside a run",
			doc: `id: cart
trigger:
  profile: profile.revenue > trigger.properties.total
key: trigger.properties.cart_id
steps:
  - {id: sms, send: {channel: sms, content: {body: hi}}}
`,
			want: []string{
				`3: trigger.profile: column 19: undeclared reference to 'trigger' (trigger exists only inside a run`,
				`4: key: column 1: undeclared reference to 'trigger'`,
			},
		},
		{
			name: "update expression error",
			doc: `id: cart
trigger: {event: Checkout Started}
steps:
  - id: set
    update:
      set:
        tier: gold
        score: {expr: "profile.orders *"}
`,
			want: []string{`8: steps[0].update.set.score.expr: column 17: Syntax error`},
		},
		{
			name: "yaml syntax",
			doc: `id: cart
trigger: {event: Checkout Started
steps: []
`,
			want: []string{`3: `},
		},
		{
			name: "duplicate key",
			doc: `id: cart
id: cart2
`,
			want: []string{`2: mapping key "id" already defined`},
		},
		{
			name: "empty",
			doc:  "# nothing\n",
			want: []string{`1: the document is empty`},
		},
		{
			name: "two documents",
			doc: `id: a
---
id: b
`,
			want: []string{`3: a file holds one journey`},
		},
		{
			name: "not a mapping",
			doc:  "- id: a\n",
			want: []string{`1: must be a mapping, not a list`},
		},
		{
			name: "required fields",
			doc:  "name: Nothing yet\n",
			want: []string{`1: id: is required`, `1: trigger: is required`, `1: steps: a journey needs at least one step`},
		},
		{
			name: "two triggers",
			doc: `id: cart
trigger:
  event: Checkout Started
  absence: {duration: 7d}
steps:
  - {id: sms, send: {channel: sms, content: {body: hi}}}
`,
			want: []string{`2: trigger: has both event and absence: a journey has one trigger`},
		},
		{
			name: "two kinds in a step",
			doc: `id: cart
trigger: {event: Checkout Started}
steps:
  - id: sms
    send: {channel: sms, content: {body: hi}}
    wait: {duration: 1h}
`,
			want: []string{`4: steps[0]: has both send and wait: a step does one thing`},
		},
		{
			name: "next on a branch",
			doc: `id: cart
trigger: {event: Checkout Started}
steps:
  - id: check
    branch: {if: "true", then: sms}
    next: sms
  - {id: sms, send: {channel: sms, content: {body: hi}}}
`,
			want: []string{`6: steps[0].next: a branch step has no next: it goes on to then or else`},
		},
		{
			name: "patterns",
			doc: `id: views
trigger:
  pattern:
    count: 1
    event: Product Viewed
    within: 5m
    correlate: category
steps:
  - {id: sms, send: {channel: sms, content: {body: hi}}}
`,
			want: []string{
				`4: trigger.pattern.count: 1 is below 2`,
				`7: trigger.pattern.correlate: does not apply to a count pattern`,
			},
		},
		{
			name: "sequence",
			doc: `id: views
trigger:
  pattern:
    sequence:
      - Product Viewed
    group_by: category
steps:
  - {id: sms, send: {channel: sms, content: {body: hi}}}
`,
			want: []string{
				`3: trigger.pattern.within: is required`,
				`4: trigger.pattern.sequence: needs at least two events`,
				`6: trigger.pattern.group_by: does not apply to a sequence pattern`,
			},
		},
		{
			name: "pattern kinds",
			doc: `id: views
trigger:
  pattern:
    count: 2
    sequence: [A, B]
    within: 1h
steps:
  - {id: sms, send: {channel: sms, content: {body: hi}}}
`,
			want: []string{`3: trigger.pattern: has both count and sequence`},
		},
		{
			name: "rules",
			doc: `id: Cart Recovery
version: -1
trigger: {event: Checkout Started}
reentry: sometimes
goal: {event: Order Completed}
allowed_lateness: -5m
quiet_hours: {from: "21:00", to: "21:00", action: later}
frequency: {max: 3, per: 1d}
steps:
  - {id: sms, send: {channel: sms, content: {body: hi}}}
`,
			want: []string{
				`1: id: "Cart Recovery" may hold only letters, digits`,
				`2: version: -1 is negative`,
				`4: reentry: "sometimes" is not once, every_time or {after: <duration>}`,
				`5: goal.within: is required`,
				`6: allowed_lateness: -5m is negative`,
				`7: quiet_hours: from and to are the same time`,
				`7: quiet_hours.action: "later" is not defer or skip`,
				`8: frequency: frequency caps hold across all journeys`,
			},
		},
		{
			name: "events",
			doc: `id: cart
trigger:
  type: login
exit_on:
  - event: Logged In
    type: identify
  - if: event.properties.x == 1
steps:
  - {id: sms, send: {channel: sms, content: {body: hi}}}
`,
			want: []string{
				`3: trigger.type: "login" is not an event type`,
				`5: exit_on[0].event: only track, page and screen events have a name, not identify events`,
				`7: exit_on[1].event: is required (or a type)`,
			},
		},
		{
			name: "waits",
			doc: `id: cart
trigger: {event: Checkout Started}
steps:
  - id: a
    wait: {until_local_time: "25:00"}
  - id: b
    wait: {until_local_time: "09:00", timezone: Mars/Olympus}
  - id: c
    wait: {duration: 1h, until_trait: renews_at}
  - id: d
    wait: {duration: 1h, offset: 1h}
  - id: e
    wait: {}
`,
			want: []string{
				`5: steps[0].wait.until_local_time: "25:00" is not a time of day`,
				`7: steps[1].wait.timezone: "Mars/Olympus" is not a time zone`,
				`9: steps[2].wait: has both duration and until_trait`,
				`11: steps[3].wait.offset: applies only to until_trait`,
				`13: steps[4].wait: needs one of duration, until_local_time or until_trait`,
			},
		},
		{
			name: "sends",
			doc: `id: cart
trigger: {event: Checkout Started}
steps:
  - id: a
    send: {channel: email, template: welcome, content: {subject: hi}}
  - id: b
    send: {channel: email}
  - id: c
    send: {template: welcome, transactional: yes}
`,
			want: []string{
				`5: steps[0].send: has both a template and inline content`,
				`7: steps[1].send: needs a template name or inline content`,
				`9: steps[2].send.channel: is required`,
				`9: steps[2].send.transactional: must be true or false, not a string`,
			},
		},
		{
			name: "steps not a list",
			doc: `id: cart
trigger: {event: Checkout Started}
steps:
  sms: {send: {channel: sms}}
`,
			want: []string{`3: steps: must be a list, not a mapping`},
		},
		{
			name: "step ids",
			doc: `id: cart
trigger: {event: Checkout Started}
steps:
  - send: {channel: sms, content: {body: hi}}
  - id: "two words"
    exit: {reason: done}
`,
			want: []string{
				`4: steps[0].id: is required`,
				`5: steps[1].id: "two words" may hold only letters`,
			},
		},
		{
			name: "merge keys",
			doc: `id: cart
trigger: {event: Checkout Started}
steps:
  - id: set
    update:
      set:
        <<: {tier: gold}
`,
			want: []string{`7: steps[0].update.set: merge keys (<<) are not supported`},
		},
		{
			name: "unknown alias",
			doc: `id: cart
trigger: *nope
steps:
  - {id: sms, send: {channel: sms, content: {body: hi}}}
`,
			want: []string{`2: `},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j, err := Parse("cart.yaml", []byte(tc.doc))
			if err == nil {
				t.Fatalf("no error; journey %+v", j)
			}
			if j != nil {
				t.Errorf("a journey came back with the error")
			}
			asErrors(t, err)
			got := errorList(err)
			if len(got) != len(tc.want) {
				t.Errorf("got %d errors, want %d:\n%s", len(got), len(tc.want), strings.Join(got, "\n"))
			}
			for _, w := range tc.want {
				found := false
				for _, g := range got {
					if strings.HasPrefix(g, "cart.yaml:"+w) {
						found = true
					}
				}
				if !found {
					t.Errorf("no error cart.yaml:%s...; got:\n%s", w, strings.Join(got, "\n"))
				}
			}
		})
	}
}

// TestParse checks what valid documents become: defaults, fall-through
// targets, shorthands.
func TestParse(t *testing.T) {
	t.Run("defaults and fall-through", func(t *testing.T) {
		j := mustParse(t, `id: cart
trigger:
  event: Checkout Started
steps:
  - id: sms
    send: {channel: sms, template: cart-sms}
  - id: wait
    wait_for:
      event: Order Completed
      correlate: cart_id
      if: event.properties.total > 0
      timeout: 1h
      on_event: thanks
  - id: check
    branch:
      if: profile.cart.size() > 0
      then: push
  - id: push
    send: {channel: push, content: {title: Cart, body: "{{ item.name }}"}, transactional: true}
  - id: thanks
    exit: {reason: bought}
`)
		if j.Reentry.Mode != ReentryOnce || j.AllowedLateness != DefaultAllowedLateness || j.Key != nil || j.Goal != nil {
			t.Errorf("defaults: reentry %+v, lateness %v, key %v, goal %v", j.Reentry, j.AllowedLateness, j.Key, j.Goal)
		}
		if j.Version != 0 || j.File != "test.yaml" {
			t.Errorf("version %d, file %q", j.Version, j.File)
		}
		want := map[string][]string{
			"sms":    {"wait"},
			"wait":   {"thanks", "check"},
			"check":  {"push", "push"},
			"push":   {"thanks"},
			"thanks": nil,
		}
		for id, targets := range want {
			if got := j.Step(id).Targets(); !slices.Equal(got, targets) {
				t.Errorf("%s goes to %q, want %q", id, got, targets)
			}
		}
		w := j.Step("wait").WaitFor
		if w.Event.Type != nudge.Track || w.Event.Name != "Order Completed" || w.Correlate != "cart_id" || w.Timeout != time.Hour || w.Event.If == nil {
			t.Errorf("wait_for = %+v", w)
		}
		if c := w.Event.If; c.Pos.Line != 11 || c.Pos.Field != "steps[1].wait_for.if" || c.Pos.File != "test.yaml" {
			t.Errorf("condition at %v", c.Pos)
		}
		if s := j.Step("push"); !s.Send.Transactional || s.Send.Content["body"] != "{{ item.name }}" {
			t.Errorf("push = %+v", s.Send)
		}
		if s := j.Step("sms"); s.Send.Template != "cart-sms" || s.Pos.Line != 5 || s.Pos.Field != "steps[0]" {
			t.Errorf("sms = %+v at %v", s.Send, s.Pos)
		}
		if j.Step("thanks").Exit.Reason != "bought" || j.Step("nope") != nil {
			t.Error("Step lookup")
		}
	})

	t.Run("rules and shorthands", func(t *testing.T) {
		j := mustParse(t, `id: cart-2.b_c
name: Cart
version: 3
description: |
  Two lines
  of text.
trigger:
  pattern:
    sequence:
      - Product Added
      - event: Checkout Started
        if: event.properties.total > 20
      - {type: page, event: Payment}
    within: 1h
    correlate: cart_id
exit_on: Order Completed
reentry: {after: 30d}
key: event.properties.cart_id
goal: {event: Order Completed, correlate: cart_id, within: 2d}
allowed_lateness: 0
steps:
  - id: mark
    update:
      set:
        tier: gold
        points: 10
        ratio: 0.5
        vip: true
        none: null
        tags: [a, b]
        meta: {source: nudge}
        orders: {expr: profile.orders + 1}
`)
		if j.Name != "Cart" || j.Version != 3 || j.Description != "Two lines\nof text.\n" {
			t.Errorf("name %q version %d description %q", j.Name, j.Version, j.Description)
		}
		p := j.Trigger.Pattern
		if p.Kind != PatternSequence || len(p.Sequence) != 3 || p.Correlate != "cart_id" || p.Within != time.Hour {
			t.Fatalf("pattern = %+v", p)
		}
		if f := p.Sequence[0]; f.Name != "Product Added" || f.Type != nudge.Track || f.If != nil {
			t.Errorf("sequence[0] = %+v", f)
		}
		if f := p.Sequence[1]; f.Name != "Checkout Started" || f.If == nil {
			t.Errorf("sequence[1] = %+v", f)
		}
		if f := p.Sequence[2]; f.Name != "Payment" || f.Type != nudge.Page {
			t.Errorf("sequence[2] = %+v", f)
		}
		if len(j.ExitOn) != 1 || j.ExitOn[0].Event.Name != "Order Completed" {
			t.Errorf("exit_on = %+v", j.ExitOn)
		}
		if j.Reentry != (Reentry{ReentryAfter, 30 * 24 * time.Hour}) || j.AllowedLateness != 0 {
			t.Errorf("reentry %+v, lateness %v", j.Reentry, j.AllowedLateness)
		}
		if j.Goal == nil || j.Goal.Within != 48*time.Hour || j.Goal.Correlate != "cart_id" || j.Key == nil {
			t.Errorf("goal %+v, key %v", j.Goal, j.Key)
		}
		set := j.Steps[0].Update.Set
		var names []string
		for _, a := range set {
			names = append(names, a.Trait)
		}
		if !slices.Equal(names, []string{"tier", "points", "ratio", "vip", "none", "tags", "meta", "orders"}) {
			t.Errorf("traits in order %q", names)
		}
		values := []any{"gold", int64(10), 0.5, true, nil, []any{"a", "b"}, map[string]any{"source": "nudge"}}
		for i, v := range values {
			if !reflect.DeepEqual(set[i].Value, v) || set[i].Expr != nil {
				t.Errorf("%s = %#v, want %#v", set[i].Trait, set[i].Value, v)
			}
		}
		if set[7].Expr == nil || set[7].Expr.Source != "profile.orders + 1" {
			t.Errorf("orders = %+v", set[7])
		}
	})

	t.Run("waits", func(t *testing.T) {
		j := mustParse(t, `id: waits
trigger:
  absence: {duration: 7d, type: track}
steps:
  - id: a
    wait: {duration: 1d12h}
  - id: b
    wait: {until_local_time: "09:30", timezone: Europe/Paris}
  - id: c
    wait: {until_trait: trial_ends_at, offset: -3d}
`)
		if a := j.Trigger.Absence; a.Duration != 7*24*time.Hour || a.Event.Type != nudge.Track || a.Event.Name != "" {
			t.Errorf("absence = %+v", a)
		}
		if w := j.Steps[0].Wait; w.Kind != WaitDuration || w.Duration != 36*time.Hour {
			t.Errorf("a = %+v", w)
		}
		if w := j.Steps[1].Wait; w.Kind != WaitLocalTime || w.LocalTime != (Clock{9, 30}) || w.Timezone != "Europe/Paris" {
			t.Errorf("b = %+v", w)
		}
		if w := j.Steps[2].Wait; w.Kind != WaitTrait || w.Trait != "trial_ends_at" || w.Offset != -72*time.Hour {
			t.Errorf("c = %+v", w)
		}
	})

	t.Run("profile trigger and split", func(t *testing.T) {
		j := mustParse(t, `id: vip
trigger:
  profile: profile.revenue > 500
steps:
  - id: ab
    split:
      variants:
        - {name: email, weight: 2, next: email}
        - {name: sms, weight: 1.5}
      holdout: 0.2
  - {id: sms, send: {channel: sms, content: {body: hi}}, next: done}
  - {id: email, send: {channel: email, content: {body: hi}}}
  - {id: done, exit: }
`)
		if j.Trigger.Kind != TriggerProfile || j.Trigger.Profile.Source != "profile.revenue > 500" {
			t.Errorf("trigger = %+v", j.Trigger)
		}
		sp := j.Steps[0].Split
		if sp.Holdout != 0.2 || sp.Variants[0].Next != "email" || sp.Variants[1].Next != "sms" || sp.Variants[1].Weight != 1.5 {
			t.Errorf("split = %+v", sp)
		}
	})

	t.Run("anchors", func(t *testing.T) {
		j := mustParse(t, `id: anchors
trigger: {event: Order Completed}
steps:
  - id: a
    send: &sms {channel: sms, content: {body: hi}}
  - id: b
    send: *sms
`)
		if j.Steps[1].Send.Channel != "sms" {
			t.Errorf("b = %+v", j.Steps[1].Send)
		}
	})
}

func TestLoadDir(t *testing.T) {
	dir := t.TempDir()
	write := func(name, doc string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	valid := func(id string) string {
		return fmt.Sprintf("id: %s\ntrigger: {event: Signed Up}\nsteps:\n  - {id: hi, send: {channel: log, content: {body: hi}}}\n", id)
	}
	write("a.yaml", valid("one"))
	write("b.yml", valid("two"))
	write("c.yaml", valid("one"))
	write("d.yaml", "id: broken\ntrigger: {event: Signed Up}\nsteps:\n  - {id: hi, wait: {duration: soon}}\n")
	write("e_test.yaml", "not a journey")
	write("notes.txt", "not a journey")
	write(".hidden.yaml", "not a journey")
	if err := os.Mkdir(filepath.Join(dir, "sub.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	js, err := LoadDir(dir)
	var ids []string
	for _, j := range js {
		ids = append(ids, j.ID)
	}
	if !slices.Equal(ids, []string{"one", "two"}) {
		t.Errorf("loaded %q", ids)
	}
	got := errorList(err)
	want := []string{
		filepath.Join(dir, "c.yaml") + `:1: id: "one" is already the id of the journey in ` + filepath.Join(dir, "a.yaml"),
		filepath.Join(dir, "d.yaml") + `:4: steps[0].wait.duration: "soon" is not a duration (such as 30m, 48h or 7d)`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	big := make([]byte, MaxFileSize+1)
	if _, err := Parse("big.yaml", big); err == nil || !strings.HasPrefix(err.Error(), "big.yaml: the file is") {
		t.Errorf("a file too large: %v", err)
	}
	if _, err := LoadDir(filepath.Join(dir, "missing")); err == nil {
		t.Error("no error for a missing directory")
	}
}

func TestLoaderChannels(t *testing.T) {
	doc := []byte("id: x\ntrigger: {event: Signed Up}\nsteps:\n  - {id: hi, send: {channel: email, content: {body: hi}}}\n")
	if _, err := (Loader{Channels: []string{"log"}}).Parse("x.yaml", doc); err == nil ||
		err.Error() != `x.yaml:4: steps[0].send.channel: unknown channel "email" (known: log)` {
		t.Errorf("err = %v", err)
	}
	if _, err := (Loader{Channels: []string{"email"}}).Parse("x.yaml", doc); err != nil {
		t.Error(err)
	}
}
