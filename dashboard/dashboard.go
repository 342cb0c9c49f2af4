// Package dashboard is nudge's web dashboard: one page of HTML, CSS and
// plain JavaScript modules, embedded in the binary and served at "/".
//
// It holds no state and no secret. The browser asks the admin API with the
// admin token the operator types in (kept in the tab's sessionStorage and
// sent as a Bearer token) and polls the open /metrics. There is no build
// step: the files under assets/ are what the browser runs.
package dashboard

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/nudge-dev/nudge/api"
)

//go:embed assets
var assets embed.FS

// file is one asset, read once at start-up.
type file struct {
	body  []byte
	ctype string
	hash  string // of body: its ETag, and the version in the page's URLs
}

// contentTypes maps the extensions of the assets to their types; an asset
// of another extension is refused when the handler is made.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".svg":  "image/svg+xml",
}

// csp lets the page load and ask only its own origin: no inline script,
// no third-party host, no framing.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"

// Handler serves the dashboard: the page at "/" and its files under
// "/assets/", for GET and HEAD. Any other path or method gets the API's
// 404 error body, so the handler can be the mux's fallback ("/") without answering
// for API routes that do not exist.
//
// Caching: the page is revalidated on every load (no-cache, with an ETag);
// it names each asset with ?v=<hash of its content>, and an asset asked
// for with its current hash is cached for a year. Asked for without it
// (a module imported by another), an asset is revalidated like the page.
func Handler() http.Handler {
	files, err := load()
	if err != nil {
		// The assets are compiled in: only a broken build gets here.
		panic(fmt.Sprintf("dashboard: %v", err))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, ok := "index.html", r.URL.Path == "/"
		if rest, found := strings.CutPrefix(r.URL.Path, "/assets/"); found && rest != "index.html" && files[rest] != nil {
			name, ok = rest, true
		}
		if !ok || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
			api.WriteError(w, &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound,
				Message: fmt.Sprintf("nothing at %s %s", r.Method, r.URL.Path)})
			return
		}
		f := files[name]
		h := w.Header()
		h.Set("Content-Type", f.ctype)
		h.Set("ETag", `"`+f.hash+`"`)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if name == "index.html" {
			h.Set("Content-Security-Policy", csp)
			h.Set("X-Frame-Options", "DENY")
		}
		if r.URL.Query().Get("v") == f.hash && name != "index.html" {
			h.Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			h.Set("Cache-Control", "no-cache")
		}
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f.body))
	})
}

// load reads the assets and versions the page's references to them.
func load() (map[string]*file, error) {
	files := map[string]*file{}
	err := fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		ctype, ok := contentTypes[path.Ext(p)]
		if !ok {
			return fmt.Errorf("%s: no content type for its extension", p)
		}
		files[strings.TrimPrefix(p, "assets/")] = &file{body: body, ctype: ctype, hash: hashOf(body)}
		return nil
	})
	if err != nil {
		return nil, err
	}
	index := files["index.html"]
	if index == nil {
		return nil, fmt.Errorf("no assets/index.html")
	}
	for name, f := range files {
		ref := `"/assets/` + name + `"`
		index.body = bytes.ReplaceAll(index.body, []byte(ref), []byte(`"/assets/`+name+`?v=`+f.hash+`"`))
	}
	index.hash = hashOf(index.body)
	return files, nil
}

func hashOf(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}
