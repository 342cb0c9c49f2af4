package dashboard

import (
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, method, target string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestDashboardPage(t *testing.T) {
	h := Handler()
	rec := get(t, h, http.MethodGet, "/")
	if rec.Code != 200 {
		t.Fatalf("GET / = %d", rec.Code)
	}
	hd := rec.Header()
	if got := hd.Get("Content-Type"); got != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", got)
	}
	if got := hd.Get("Cache-Control"); got != "no-cache" {
		t.Errorf("Cache-Control %q, want no-cache: the page names the assets' versions", got)
	}
	if csp := hd.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	body := rec.Body.String()
	for _, ref := range regexp.MustCompile(`"/assets/[^"]+"`).FindAllString(body, -1) {
		if !strings.Contains(ref, "?v=") {
			t.Errorf("the page names %s without its version", ref)
		}
	}
	if !strings.Contains(body, `<script type="module" src="/assets/app.js?v=`) {
		t.Errorf("the page does not load app.js:\n%s", body)
	}
	// Revalidation answers 304.
	if rec := get(t, h, http.MethodGet, "/", "If-None-Match", hd.Get("ETag")); rec.Code != http.StatusNotModified {
		t.Errorf("GET / with its ETag = %d, want 304", rec.Code)
	}
	if rec := get(t, h, http.MethodHead, "/"); rec.Code != 200 {
		t.Errorf("HEAD / = %d", rec.Code)
	}
}

func TestDashboardAssets(t *testing.T) {
	h := Handler()
	files, err := load()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
	for _, name := range []string{"app.js", "api.js", "ui.js", "prom.js", "chart.js", "app.css", "favicon.svg",
		"pages/overview.js", "pages/events.js", "pages/profiles.js", "pages/journeys.js", "pages/deliveries.js"} {
		f := files[name]
		if f == nil {
			t.Errorf("no asset %s", name)
			continue
		}
		ext := name[strings.LastIndex(name, "."):]
		rec := get(t, h, http.MethodGet, "/assets/"+name+"?v="+f.hash)
		if rec.Code != 200 || rec.Header().Get("Content-Type") != want[ext] {
			t.Errorf("GET /assets/%s = %d %q, want 200 %q", name, rec.Code, rec.Header().Get("Content-Type"), want[ext])
		}
		if got := rec.Header().Get("Cache-Control"); got != "public, max-age=31536000, immutable" {
			t.Errorf("%s with its version: Cache-Control %q", name, got)
		}
		if got := rec.Header().Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s: X-Content-Type-Options %q", name, got)
		}
		// Without the version (a module imported by another) or with an
		// old one, it is revalidated.
		for _, q := range []string{"", "?v=old"} {
			if got := get(t, h, http.MethodGet, "/assets/"+name+q).Header().Get("Cache-Control"); got != "no-cache" {
				t.Errorf("GET /assets/%s%s: Cache-Control %q, want no-cache", name, q, got)
			}
		}
	}
}

func TestDashboardLeavesOtherPathsToTheAPI(t *testing.T) {
	h := Handler()
	for _, c := range []struct{ method, path string }{
		{"GET", "/v1/journeys/welcome"}, {"GET", "/v1/dlq"}, {"GET", "/assets/nope.js"},
		{"GET", "/assets/"}, {"GET", "/index.html"}, {"POST", "/"}, {"DELETE", "/assets/app.js"},
	} {
		rec := get(t, h, c.method, c.path)
		var body struct{ Error struct{ Code string } }
		if rec.Code != 404 || json.Unmarshal(rec.Body.Bytes(), &body) != nil || body.Error.Code != "not_found" {
			t.Errorf("%s %s = %d %s, want the API's 404", c.method, c.path, rec.Code, rec.Body)
		}
	}
	// Mounted as the mux's fallback, it does not shadow an API route.
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/journeys", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("api")) })
	mux.Handle("/", h)
	if rec := get(t, mux, "GET", "/v1/journeys"); rec.Body.String() != "api" {
		t.Errorf("the dashboard shadows an API route: %s", rec.Body)
	}
	if rec := get(t, mux, "GET", "/"); rec.Code != 200 || !strings.Contains(rec.Body.String(), "<title>nudge</title>") {
		t.Errorf("GET / through the mux = %d", rec.Code)
	}
}

// The dashboard works offline and leaks nothing to third parties: no
// asset names another host. (The SVG namespace is a name, not a load.)
func TestDashboardAssetsNameNoOtherHost(t *testing.T) {
	url := regexp.MustCompile(`(?i)(?:https?:)?//[a-z0-9-]+(?:\.[a-z0-9-]+)+`)
	imports := regexp.MustCompile(`(?m)(?:^\s*import\s.*from\s+|import\()\s*['"]([^'"]+)['"]`)
	err := fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := assets.ReadFile(p)
		for _, u := range url.FindAllString(string(b), -1) {
			if u != "http://www.w3.org" {
				t.Errorf("%s names %s", p, u)
			}
		}
		for _, m := range imports.FindAllStringSubmatch(string(b), -1) {
			if !strings.HasPrefix(m[1], "./") && !strings.HasPrefix(m[1], "../") {
				t.Errorf("%s imports %s: only relative modules", p, m[1])
			}
		}
		if strings.Contains(string(b), "@import") || regexp.MustCompile(`url\((?:['"]?)(?:https?:)?//`).Match(b) {
			t.Errorf("%s loads a stylesheet or image from elsewhere", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// The page runs with a strict Content-Security-Policy: no inline script,
// no inline style attribute in the HTML.
func TestDashboardHasNoInlineCode(t *testing.T) {
	b, _ := assets.ReadFile("assets/index.html")
	page := string(b)
	if regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]`).MatchString(page) || strings.Contains(page, " style=") ||
		regexp.MustCompile(`\son[a-z]+=`).MatchString(page) {
		t.Errorf("index.html has inline script or style")
	}
}
