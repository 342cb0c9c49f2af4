package main

// The Grafana dashboard (docs/grafana/nudge.json) and the operator's guide
// (docs/operations.md) against the real binary's /metrics: the dashboard
// queries only metrics nudge exports, the guide names every nudge_ metric
// nudge exports and no other, and links the dashboard.

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

const (
	dashboardFile = "../../docs/grafana/nudge.json"
	guideFile     = "../../docs/operations.md"
)

// metricName finds metric names in PromQL and in the guide: nudge's own,
// and the runtime's the dashboard plots.
var metricName = regexp.MustCompile(`\b(?:nudge|go|process|promhttp)_[a-z0-9_]*[a-z0-9]`)

// grafanaPanel is the part of a dashboard panel the test reads; a row
// holds its panels when collapsed.
type grafanaPanel struct {
	ID         int
	Type       string
	Title      string
	Datasource *struct{ Type, UID string }
	Targets    []struct {
		RefID string
		Expr  string
	}
	Panels []grafanaPanel
}

type grafanaDashboard struct {
	UID           string
	Title         string
	SchemaVersion int
	Templating    struct {
		List []struct {
			Name, Type string
			Query      json.RawMessage // a string, or {"query": "..."}
		}
	}
	Panels []grafanaPanel
}

// dashboardQueries reads the dashboard and returns its PromQL: every
// panel's targets and the query variables, each prefixed with where it
// comes from. It checks the dashboard's shape on the way.
func dashboardQueries(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if d.UID == "" || d.Title == "" || d.SchemaVersion < 36 {
		t.Errorf("dashboard uid %q, title %q, schemaVersion %d", d.UID, d.Title, d.SchemaVersion)
	}
	queries := map[string]string{}
	hasDS := false
	for _, v := range d.Templating.List {
		switch v.Type {
		case "datasource":
			hasDS = hasDS || v.Name == "DS_PROMETHEUS"
		case "query":
			var q string
			if json.Unmarshal(v.Query, &q) != nil {
				var o struct{ Query string }
				json.Unmarshal(v.Query, &o)
				q = o.Query
			}
			queries["variable "+v.Name] = q
		}
	}
	if !hasDS {
		t.Error("no datasource variable DS_PROMETHEUS")
	}
	ids := map[int]bool{}
	var walk func([]grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel id %d twice", p.ID)
			}
			ids[p.ID] = true
			walk(p.Panels)
			if p.Type == "row" || p.Type == "text" {
				continue
			}
			if p.Datasource == nil || p.Datasource.UID != "${DS_PROMETHEUS}" {
				t.Errorf("panel %q: datasource %+v, want uid ${DS_PROMETHEUS}", p.Title, p.Datasource)
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("panel %q, query %s: empty", p.Title, tg.RefID)
				}
				queries["panel "+p.Title+" "+tg.RefID] = tg.Expr
			}
		}
	}
	walk(d.Panels)
	if len(queries) < 10 {
		t.Fatalf("%d queries in the dashboard", len(queries))
	}
	return queries
}

// exports reports whether the scrape has the family name refers to: the
// family itself, or a histogram's (a summary's) _bucket, _sum or _count.
func exports(s scraped, name string) bool {
	if s[name] != nil {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok || s[base] == nil {
			continue
		}
		switch s[base].GetType() {
		case dto.MetricType_HISTOGRAM:
			return true
		case dto.MetricType_SUMMARY:
			return suffix != "_bucket"
		}
	}
	return false
}

// TestGrafanaDashboardAndGuide runs nudge with the shipped journeys, sends
// what makes every nudge_ family appear (accepted, duplicate and refused
// events, a sign-up the welcome journey emails), and checks the dashboard
// and the guide against the scrape.
func TestGrafanaDashboardAndGuide(t *testing.T) {
	queries := dashboardQueries(t)
	guide, err := os.ReadFile(guideFile)
	if err != nil {
		t.Fatal(err)
	}

	p := start(t, t.TempDir())
	p.waitReadyz(200)
	p.mustPost("/v1/batch", `{"batch":[
		{"type":"identify","userId":"grafana-1","traits":{"email":"g1@example.com","first_name":"Gail"},"messageId":"gr-1"},
		{"type":"track","userId":"grafana-1","event":"Signed Up","messageId":"gr-2"}]}`)
	p.mustPost("/v1/track", `{"userId":"grafana-1","event":"Signed Up","messageId":"gr-2"}`) // a duplicate
	if code, _ := p.post("/v1/track", `{"event":"No One","messageId":"gr-3"}`); code != 400 {
		t.Fatalf("an event without identity = %d", code)
	}
	if d := p.profile("grafana-1"); d.ID == "" {
		t.Fatalf("profile = %+v", d)
	}
	// The welcome email goes out through the log channel a moment later;
	// an order then ends the run (an exit, a conversion).
	var got scraped
	eventually(t, 30*time.Second, "the welcome email's send in /metrics", func() bool {
		got = p.scrape()
		return got["nudge_time_to_trigger_seconds"] != nil && got["nudge_deliveries_seconds"] != nil
	})
	p.mustPost("/v1/track", `{"userId":"grafana-1","event":"Order Completed","messageId":"gr-4","properties":{"revenue":10}}`)
	eventually(t, 30*time.Second, "the run's exit in /metrics", func() bool {
		got = p.scrape()
		return got["nudge_journey_exits_total"] != nil
	})

	var exported []string
	for name := range got {
		if strings.HasPrefix(name, "nudge_") {
			exported = append(exported, name)
		}
	}
	slices.Sort(exported)
	if len(exported) < 20 {
		t.Fatalf("only %d nudge_ families in /metrics: %v", len(exported), exported)
	}

	t.Run("dashboard", func(t *testing.T) {
		used := map[string]bool{}
		for where, q := range queries {
			names := metricName.FindAllString(q, -1)
			if len(names) == 0 {
				t.Errorf("%s names no metric: %s", where, q)
			}
			for _, name := range names {
				used[name] = true
				if !exports(got, name) {
					t.Errorf("%s: %s is not in /metrics", where, name)
				}
			}
		}
		// And the dashboard shows every nudge_ family.
		for _, name := range exported {
			if !used[name] && !used[name+"_bucket"] && !used[name+"_count"] {
				t.Errorf("%s is on no panel", name)
			}
		}
	})

	t.Run("guide", func(t *testing.T) {
		named := map[string]bool{}
		for _, name := range metricName.FindAllString(string(guide), -1) {
			named[name] = true
			if !exports(got, name) {
				t.Errorf("operations.md names %s, which /metrics does not export", name)
			}
		}
		for _, name := range exported {
			if !named[name] {
				t.Errorf("operations.md does not describe %s", name)
			}
		}
		if !strings.Contains(string(guide), "grafana/nudge.json") {
			t.Error("operations.md does not link the dashboard, grafana/nudge.json")
		}
	})
}
