package journey

import (
	"context"
	"strings"
	"testing"
	"time"
)

const defV1 = `id: greet
trigger:
  event: Signed Up
reentry: every_time
steps:
  - id: pause
    wait:
      duration: 1h
  - id: hello-v1
    send:
      channel: email
      content:
        subject: v1
`

func openDefs(t *testing.T, h *harness, files ...Source) *Definitions {
	t.Helper()
	d, err := OpenDefinitions(context.Background(), h.Runtime, files)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// restart reopens the store, the engine and the runtime, and the journey
// store over them.
func restart(t *testing.T, h *harness, files ...Source) *Definitions {
	t.Helper()
	h.Journeys = nil
	h.crash()
	return openDefs(t, h, files...)
}

func put(t *testing.T, d *Definitions, id, src string) (int, bool) {
	t.Helper()
	v, created, err := d.Put(context.Background(), id, "", []byte(src))
	if err != nil {
		t.Fatalf("Put %s: %v", id, err)
	}
	return v, created
}

func TestDefinitionsVersions(t *testing.T) {
	h := newHarness(t)
	d := openDefs(t, h)
	if v, created := put(t, d, "greet", defV1); v != 1 || !created {
		t.Fatalf("first put: version %d, created %v", v, created)
	}
	if v, created := put(t, d, "greet", defV1); v != 1 || created {
		t.Fatalf("same document: version %d, created %v", v, created)
	}
	// A run starts on version 1; version 2 comes while it waits.
	h.send(h.ev("ann", "Signed Up", "", 0))
	h.settle()
	v2 := strings.ReplaceAll(defV1, "v1", "v2")
	if v, created := put(t, d, "greet", v2); v != 2 || created {
		t.Fatalf("changed document: version %d, created %v", v, created)
	}
	h.send(h.ev("bob", "Signed Up", "", 0))
	h.advance(time.Hour)
	got := map[string]string{}
	for _, m := range h.sent("email") {
		got[m.Recipient.Identifiers["userId"]] = m.Step + "@" + m.Fields["subject"]
	}
	if got["ann"] != "hello-v1@v1" || got["bob"] != "hello-v2@v2" || len(got) != 2 {
		t.Fatalf("sent %v: a run finishes on the version it started on", got)
	}
	def, ok := d.Get("greet")
	if !ok || def.Journey.Version != 2 || def.Source != v2 || len(def.Versions) != 2 {
		t.Fatalf("Get = %+v %v", def, ok)
	}

	// Versions survive a restart, with their numbers.
	d = restart(t, h)
	if def, ok := d.Get("greet"); !ok || def.Journey.Version != 2 {
		t.Fatalf("after a restart: %+v %v", def, ok)
	}
	if v, _ := put(t, d, "greet", defV1); v != 3 {
		t.Fatalf("back to the first text: version %d, want 3", v)
	}

	// Deleted: no new run; the one started finishes.
	h.send(h.ev("cid", "Signed Up", "", 0))
	h.settle()
	if err := d.Delete(context.Background(), "greet"); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(context.Background(), "greet"); err != ErrUnknownJourney {
		t.Fatalf("second delete: %v", err)
	}
	if _, ok := d.Get("greet"); ok {
		t.Fatal("Get finds a deleted journey")
	}
	h.send(h.ev("dan", "Signed Up", "", 0))
	d = restart(t, h) // deletion is durable, and runs on version 3 go on
	h.advance(time.Hour)
	if ms := h.sent("email"); len(ms) != 1 || ms[0].Recipient.Identifiers["userId"] != "cid" || ms[0].Version != 3 {
		t.Fatalf("after the delete: %+v", ms)
	}
	if _, ok := d.Get("greet"); ok {
		t.Fatal("a deleted journey is back after a restart")
	}
	// A put after a delete makes the next version.
	if v, created := put(t, d, "greet", v2); v != 4 || !created {
		t.Fatalf("put after delete: version %d, created %v", v, created)
	}
}

func TestDefinitionsFiles(t *testing.T) {
	h := newHarness(t)
	file := Source{File: "journeys/greet.yaml", Data: []byte(defV1)}
	d := openDefs(t, h, file)
	if def, ok := d.Get("greet"); !ok || def.Journey.Version != 1 || def.Journey.File != file.File {
		t.Fatalf("from a file: %+v", def)
	}
	d = restart(t, h, file)
	if def, _ := d.Get("greet"); def.Journey.Version != 1 {
		t.Fatalf("unchanged file: version %d", def.Journey.Version)
	}
	// Editing the file and restarting bumps the version.
	file.Data = []byte(strings.ReplaceAll(defV1, "v1", "v2"))
	d = restart(t, h, file)
	if def, _ := d.Get("greet"); def.Journey.Version != 2 {
		t.Fatalf("edited file: version %d", def.Journey.Version)
	}
	// A file gone: its journey is deleted; back, it is back.
	d = restart(t, h)
	if _, ok := d.Get("greet"); ok {
		t.Fatal("a journey whose file is gone still runs")
	}
	d = restart(t, h, file)
	if def, ok := d.Get("greet"); !ok || def.Journey.Version != 2 {
		t.Fatalf("file back: %+v %v", def, ok)
	}
	// A change through the API stays when the file did not change.
	put(t, d, "greet", strings.ReplaceAll(defV1, "v1", "api"))
	d = restart(t, h, file)
	if def, _ := d.Get("greet"); def.Journey.Version != 3 || !strings.Contains(def.Source, "api") {
		t.Fatalf("API change after a restart: %+v", def)
	}
	if js := h.Runtime.Journeys(); len(js) != 3 {
		t.Fatalf("the runtime runs %d versions, want 3", len(js))
	}
	// The current version came through the API: it runs without the file.
	d = restart(t, h)
	if _, ok := d.Get("greet"); !ok {
		t.Fatal("a journey changed through the API stopped with its file")
	}
}

func TestDefinitionsPutErrors(t *testing.T) {
	h := newHarness(t)
	d := openDefs(t, h)
	for _, c := range []struct{ id, doc, want string }{
		{"greet", strings.Replace(defV1, "duration: 1h", "duration: 1 hourz", 1), "8: steps[0].wait.duration"},
		{"other", defV1, `1: id: is "greet", and the journey's path names "other"`},
		{"greet", strings.Replace(defV1, "channel: email", "channel: fax", 1), "11: steps[1].send.channel"},
		// Without an id, the lines are the body's.
		{"greet", strings.Replace(strings.TrimPrefix(defV1, "id: greet\n"), "1h", "-1h", 1), "7: steps[0].wait.duration"},
		{"greet", `{"trigger": {"event": "Signed Up"}, "steps": [{"id": "x", "wait": {"duration": "soon"}}]}`, "1: steps[0].wait.duration"},
		{"bad/id", defV1, "id"},
	} {
		_, _, err := d.Put(context.Background(), c.id, "", []byte(c.doc))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Put(%s) = %v, want %q", c.id, err, c.want)
		}
	}
	if _, ok := d.Get("greet"); ok {
		t.Fatal("a rejected document was stored")
	}
	// A JSON document without an id.
	v, _, err := d.Put(context.Background(), "j", "", []byte(`{"trigger": {"event": "Signed Up"}, "steps": [{"id": "x", "exit": {}}]}`))
	if err != nil || v != 1 {
		t.Fatalf("JSON put: %d %v", v, err)
	}
	if def, _ := d.Get("j"); def.Journey.ID != "j" {
		t.Fatalf("JSON put: %+v", def)
	}
}
