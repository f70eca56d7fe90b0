package api

import (
	"io/fs"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/liveanalytics/analyticsd/ui"
)

func TestCacheHeaders(t *testing.T) {
	h := dashboard()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 200 || rec.Header().Get("Cache-Control") != "no-cache" || !strings.Contains(rec.Body.String(), "/assets/") {
		t.Fatalf("index: %d %q", rec.Code, rec.Header().Get("Cache-Control"))
	}
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || rec.Header().Get("X-Frame-Options") != "DENY" {
		t.Fatalf("index security headers: %v", rec.Header())
	}
	assets, err := fs.Glob(ui.Assets(), "assets/index-*.js")
	if err != nil || len(assets) != 1 {
		t.Fatalf("built script: %v %v (run make ui)", assets, err)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/"+assets[0], nil))
	if rec.Code != 200 || !strings.Contains(rec.Header().Get("Cache-Control"), "immutable") {
		t.Fatalf("asset: %d %q", rec.Code, rec.Header().Get("Cache-Control"))
	}
}
