package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The probe passes --wait as the reads' wait parameter and counts the
// answers that say they are behind.
func TestProbeWaitAndBehind(t *testing.T) {
	var reads, wrongQuery atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("wait") != "0" || r.Header.Get("Authorization") != "Bearer adm" || !strings.HasPrefix(r.URL.Path, "/v1/profiles/u") {
			wrongQuery.Add(1)
		}
		if reads.Add(1)%2 == 0 {
			w.Header().Set("Nudge-Profiles-Behind", "true")
		}
		w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	var out strings.Builder
	err := probeMain(context.Background(), []string{"--url", srv.URL, "--admin-token", "adm", "--users", "10",
		"--rate", "200", "--duration", (250 * time.Millisecond).String(), "--wait", "0"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if wrongQuery.Load() != 0 {
		t.Errorf("%d reads without wait=0 or the token", wrongQuery.Load())
	}
	m := regexp.MustCompile(`\?wait=0: (\d+) reads, status map\[200:\d+\], (\d+) behind`).FindStringSubmatch(out.String())
	if m == nil || m[1] == "0" || m[2] != strconv.FormatInt(reads.Load()/2, 10) {
		t.Errorf("report %q after %d reads, half of them behind", out.String(), reads.Load())
	}
}
