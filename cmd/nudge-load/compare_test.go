package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// TestMain lets compare re-execute the test binary as "nudge-load ref".
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "ref" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestCompare(t *testing.T) {
	s, srv := newSink(t)
	var out, errOut bytes.Buffer
	err := compareMain(context.Background(), []string{"--url", srv.URL, "--write-key", "wk", "--requests", "20", "--clients", "2",
		"--warmup", "0s", "--batch", "5", "--pause", "0s", "--order", "ref-first", "--ref-dir", t.TempDir(), "--repeat", "2", "--json"}, &out, &errOut)
	if err != nil {
		t.Fatalf("%v; stderr:\n%s", err, errOut.String())
	}
	var cmp comparison
	if err := json.Unmarshal(out.Bytes(), &cmp); err != nil {
		t.Fatalf("--json output %q: %v", out.String(), err)
	}
	if len(cmp.Pairs) != 2 || s.requests.Load() != 40 {
		t.Fatalf("%d pairs, sink saw %d requests; want 2 and 40", len(cmp.Pairs), s.requests.Load())
	}
	for _, p := range cmp.Pairs {
		if p.Nudge.OKRequests != 20 || p.Reference.OKRequests != 20 || p.Nudge.URL != srv.URL {
			t.Errorf("nudge %d ok, reference %d ok", p.Nudge.OKRequests, p.Reference.OKRequests)
		}
		if p.Reference.Target == nil || p.Reference.Target.PID == os.Getpid() || p.Reference.Target.RSSMaxMB <= 0 {
			t.Errorf("reference process stats: %+v", p.Reference.Target)
		}
		if p.EventsRatio <= 0 {
			t.Errorf("pair: %+v", p)
		}
	}
	if lo, hi := min(cmp.Pairs[0].EventsRatio, cmp.Pairs[1].EventsRatio), max(cmp.Pairs[0].EventsRatio, cmp.Pairs[1].EventsRatio); cmp.EventsRatio < lo || cmp.EventsRatio > hi || cmp.Order != "ref-first" {
		t.Errorf("comparison: median %v of %v, order %q", cmp.EventsRatio, cmp.Pairs, cmp.Order)
	}
	text := errOut.String()
	if i, j := strings.Index(text, "== reference"), strings.Index(text, "== nudge:"); i < 0 || j < i {
		t.Errorf("reference should run first:\n%s", text)
	}
}
