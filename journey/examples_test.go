package journey

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const examplesDir = "../examples/journeys"

// TestExamples parses and validates every shipped journey, and checks that
// each does what issue 4 asks of it.
func TestExamples(t *testing.T) {
	js, err := LoadDir(examplesDir)
	if err != nil {
		t.Fatalf("LoadDir:\n%v", err)
	}
	files, _ := filepath.Glob(filepath.Join(examplesDir, "*.yaml"))
	files = slices.DeleteFunc(files, func(f string) bool { return strings.HasSuffix(f, "_test.yaml") })
	if len(js) != len(files) || len(js) < 5 {
		t.Fatalf("loaded %d journeys from %d files", len(js), len(files))
	}
	byID := map[string]*Journey{}
	for _, j := range js {
		byID[j.ID] = j
		if j.Name == "" || j.Description == "" {
			t.Errorf("%s: no name or description", j.File)
		}
	}
	for _, id := range []string{"welcome", "abandoned-cart", "high-intent", "re-engagement", "loyalty"} {
		if byID[id] == nil {
			t.Fatalf("no journey %q", id)
		}
	}

	t.Run("welcome", func(t *testing.T) {
		j := byID["welcome"]
		if j.Trigger.Kind != TriggerEvent || j.Trigger.Event.Name != "Signed Up" {
			t.Errorf("trigger = %+v", j.Trigger)
		}
		first := j.Steps[0]
		if first.Kind != StepSend || first.Send.Channel != "email" {
			t.Errorf("first step = %+v", first)
		}
		w := j.Step(first.Next)
		if w == nil || w.Kind != StepWaitFor || w.WaitFor.Event.Name != "Order Completed" || w.WaitFor.Timeout != 48*time.Hour {
			t.Fatalf("after the welcome: %+v", w)
		}
		if s := j.Step(w.WaitFor.OnTimeout); s == nil || s.Kind != StepSend {
			t.Errorf("on timeout: %+v, want the incentive", s)
		}
		if s := j.Step(w.WaitFor.OnEvent); s == nil || s.Kind != StepExit {
			t.Errorf("on event: %+v, want an exit", s)
		}
		if j.Reentry.Mode != ReentryOnce {
			t.Errorf("reentry = %+v", j.Reentry)
		}
	})

	t.Run("abandoned-cart", func(t *testing.T) {
		j := byID["abandoned-cart"]
		p := j.Trigger.Pattern
		if j.Trigger.Kind != TriggerPattern || p.Kind != PatternNotFollowedBy || p.Event.Name != "Checkout Started" ||
			p.NotFollowedBy.Name != "Order Completed" || p.Within != time.Hour || p.Correlate != "cart_id" {
			t.Fatalf("trigger = %+v", p)
		}
		if len(j.ExitOn) != 1 || j.ExitOn[0].Event.Name != "Order Completed" {
			t.Errorf("exit_on = %+v", j.ExitOn)
		}
		// SMS at once, push after 30 minutes if the cart holds items, email
		// 24 hours after the SMS if it still does.
		sms := j.Steps[0]
		if sms.Kind != StepSend || sms.Send.Channel != "sms" {
			t.Fatalf("first step = %+v", sms)
		}
		wait := j.Step(sms.Next)
		if wait.Kind != StepWait || wait.Wait.Duration != 30*time.Minute {
			t.Fatalf("after the SMS: %+v", wait)
		}
		branch := j.Step(wait.Next)
		push := j.Step(branch.Branch.Then)
		if branch.Kind != StepBranch || push.Kind != StepSend || push.Send.Channel != "push" {
			t.Fatalf("after 30 minutes: %+v then %+v", branch, push)
		}
		wait2 := j.Step(push.Next)
		branch2 := j.Step(wait2.Next)
		email := j.Step(branch2.Branch.Then)
		if wait.Wait.Duration+wait2.Wait.Duration != 24*time.Hour || email.Send.Channel != "email" {
			t.Errorf("the email comes %v after the SMS, on %q", wait.Wait.Duration+wait2.Wait.Duration, email.Send.Channel)
		}
		for _, s := range []*Step{sms, push, email} {
			if !containsText(s.Send.Content, "{% for item in profile.cart %}") {
				t.Errorf("%s does not name the cart's items: %v", s.ID, s.Send.Content)
			}
		}

		full := state(track("Product Added", `{"product_id":"p1","name":"Trail shoe","price":120,"quantity":1}`, 0))
		empty := state()
		checkout := track("Checkout Started", `{"cart_id":"c42"}`, time.Minute)
		for _, b := range []*Step{branch, branch2} {
			if ok, err := b.Branch.If.Eval(NewVars(checkout, full).WithTrigger(checkout)); !ok || err != nil {
				t.Errorf("%s with items in the cart: %v, %v", b.ID, ok, err)
			}
			if ok, err := b.Branch.If.Eval(NewVars(checkout, empty).WithTrigger(checkout)); ok || err != nil {
				t.Errorf("%s with an empty cart: %v, %v", b.ID, ok, err)
			}
		}
		key, err := j.Key.Eval(NewVars(checkout, full))
		if key != "c42" || err != nil {
			t.Errorf("key = %v, %v", key, err)
		}
	})

	t.Run("high-intent", func(t *testing.T) {
		j := byID["high-intent"]
		p := j.Trigger.Pattern
		if p == nil || p.Kind != PatternCount || p.Count != 3 || p.Event.Name != "Product Viewed" || p.Within != 5*time.Minute {
			t.Fatalf("trigger = %+v", j.Trigger)
		}
		if s := j.Steps[0]; s.Kind != StepSend || s.Send.Channel != "webhook" || s.Send.Content["url"] == "" {
			t.Errorf("step = %+v", s)
		}
	})

	t.Run("re-engagement", func(t *testing.T) {
		j := byID["re-engagement"]
		if j.Trigger.Kind != TriggerAbsence || j.Trigger.Absence.Duration != 7*24*time.Hour {
			t.Fatalf("trigger = %+v", j.Trigger)
		}
		if j.Reentry != (Reentry{Mode: ReentryAfter, After: 30 * 24 * time.Hour}) {
			t.Errorf("reentry = %+v", j.Reentry)
		}
		var split *Split
		for _, s := range j.Steps {
			if s.Kind == StepSplit {
				split = s.Split
			}
		}
		if split == nil || split.Holdout != 0.1 || len(split.Variants) != 2 {
			t.Errorf("split = %+v", split)
		}
	})

	t.Run("loyalty", func(t *testing.T) {
		j := byID["loyalty"]
		f := j.Trigger.Event
		if j.Trigger.Kind != TriggerEvent || f.Name != "Order Completed" || f.If == nil {
			t.Fatalf("trigger = %+v", j.Trigger)
		}
		s := state()
		for i := range 4 {
			e := track("Order Completed", `{"revenue":40}`, time.Duration(i)*time.Hour)
			s.Apply(e)
			ok, err := f.Match(NewVars(e, s))
			if err != nil {
				t.Fatal(err)
			}
			if ok != (i == 2) {
				t.Errorf("after order %d: match = %v", i+1, ok)
			}
		}
		up := j.Steps[0]
		if up.Kind != StepUpdate || len(up.Update.Set) != 3 {
			t.Fatalf("first step = %+v", up)
		}
		e := track("Order Completed", `{"revenue":40}`, 0)
		got := map[string]any{}
		for _, a := range up.Update.Set {
			if a.Expr == nil {
				got[a.Trait] = a.Value
				continue
			}
			v, err := a.Expr.Eval(NewVars(e, s).WithTrigger(e))
			if err != nil {
				t.Fatal(err)
			}
			got[a.Trait] = v
		}
		if got["loyalty_tier"] != "silver" || got["lifetime_value"] != 160.0 || got["loyalty_since"] != "2025-03-01T10:00:00Z" {
			t.Errorf("traits set: %v", got)
		}
	})
}

func containsText(content map[string]string, sub string) bool {
	for _, v := range content {
		if strings.Contains(v, sub) {
			return true
		}
	}
	return false
}

// TestExamplesEachFile parses each shipped file on its own, as nudge check
// would.
func TestExamplesEachFile(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(examplesDir, "*.yaml"))
	files = slices.DeleteFunc(files, func(f string) bool { return strings.HasSuffix(f, "_test.yaml") })
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(f, data); err != nil {
			t.Errorf("%v", err)
		}
	}
}
