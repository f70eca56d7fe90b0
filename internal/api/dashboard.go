package api

import (
	"net/http"
	"strings"

	"github.com/liveanalytics/analyticsd/ui"
)

// dashboard serves the embedded dashboard. index.html is never cached;
// anything else under assets/ has a content-hashed name and is cached for
// a year.
func dashboard() http.Handler {
	files := http.FileServer(http.FS(ui.Assets()))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
