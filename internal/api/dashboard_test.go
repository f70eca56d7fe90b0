package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestDashboardPaths: the page and its assets are served; a path that
// names no file, or is not UTF-8 (which the file server answered with a
// plain-text 500), gets the JSON 404.
func TestDashboardPaths(t *testing.T) {
	h := dashboard()
	for _, c := range []struct {
		path   string
		status int
		json   bool
	}{
		{"/", 200, false},
		{"/index.html", 301, false}, // the file server's redirect to /
		{"/nope", 404, true},
		{"/x%ff", 404, true},
		{"/%ff", 404, true},
		{"/a%22b", 404, true},
		{"/assets/", 404, true},
		{"/../etc/passwd", 404, true},
	} {
		req := httptest.NewRequest(http.MethodGet, "http://example.test"+c.path, nil)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != c.status {
			t.Fatalf("GET %s: %d %q, want %d", c.path, w.Code, w.Body.String(), c.status)
		}
		if c.json && (!strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") || !strings.Contains(w.Body.String(), `"code":"not_found"`)) {
			t.Fatalf("GET %s: %s %q, want the JSON 404", c.path, w.Header().Get("Content-Type"), w.Body.String())
		}
	}
}
