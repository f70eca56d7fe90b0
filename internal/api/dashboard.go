package api

import (
	"io/fs"
	"net/http"
	"path"
	"strings"
	"unicode/utf8"

	"github.com/liveanalytics/analyticsd/ui"
)

// dashboard serves the embedded dashboard. index.html is never cached;
// anything else under assets/ has a content-hashed name and is cached for
// a year.
func dashboard() http.Handler {
	assets := ui.Assets()
	files := http.FileServer(http.FS(assets))
	missing := notFound()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A path that names no file (or a directory other than the root,
		// or is not UTF-8, which the file server answered with a
		// plain-text 500) gets the JSON 404.
		name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
		if name == "" {
			name = "."
		}
		if !utf8.ValidString(r.URL.Path) || !fs.ValidPath(name) {
			missing.ServeHTTP(w, r)
			return
		}
		if st, err := fs.Stat(assets, name); err != nil || (st.IsDir() && name != ".") {
			missing.ServeHTTP(w, r) // no directory listings either
			return
		}
		if strings.HasPrefix(r.URL.Path, "/assets/") {
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			w.Header().Set("Cache-Control", "no-cache")
		}
		h := w.Header()
		// The built page loads only its own hashed scripts; uPlot sets
		// inline styles. No framing, no referrer (a kiosk URL may carry
		// an access_token).
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		files.ServeHTTP(w, r)
	})
}
