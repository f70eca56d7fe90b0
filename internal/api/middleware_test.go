package api

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func newTestHandler(logs *bytes.Buffer, m *httpMetrics) http.Handler {
	r := mux.NewRouter()
	r.Use(tagRoute)
	r.HandleFunc("/items/{id}", func(w http.ResponseWriter, req *http.Request) {
		if mux.Vars(req)["id"] == "boom" {
			panic("kaboom")
		}
		writeJSON(w, http.StatusOK, map[string]string{"id": requestID(req.Context())})
	})
	log := slog.New(slog.NewJSONHandler(logs, nil))
	return instrument(log, &accessLog{log: log, sample: 1}, m)(r)
}

func TestRequestIDTakenOrSet(t *testing.T) {
	var logs bytes.Buffer
	h := newTestHandler(&logs, newHTTPMetrics(prometheus.NewRegistry()))
	for _, tc := range []struct{ sent, want string }{
		{"abc-123", "abc-123"},
		{"bad id with spaces", ""},
		{strings.Repeat("x", 200), ""},
		{"", ""},
	} {
		req := httptest.NewRequest("GET", "/items/1", nil)
		if tc.sent != "" {
			req.Header.Set("X-Request-ID", tc.sent)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		got := rec.Header().Get("X-Request-ID")
		if tc.want != "" && got != tc.want || tc.want == "" && (got == "" || got == tc.sent) {
			t.Errorf("sent %q: got id %q", tc.sent, got)
		}
		var body map[string]string
		_ = json.Unmarshal(rec.Body.Bytes(), &body)
		if body["id"] != got {
			t.Errorf("handler saw id %q, header %q", body["id"], got)
		}
	}
}

func TestPanicBecomesJSON500AndMetricsUseTemplates(t *testing.T) {
	var logs bytes.Buffer
	m := newHTTPMetrics(prometheus.NewRegistry())
	h := newTestHandler(&logs, m)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/items/boom", nil))
	if rec.Code != 500 || !strings.Contains(rec.Body.String(), `"code":"internal"`) || strings.Contains(rec.Body.String(), "kaboom") {
		t.Fatalf("got %d %s", rec.Code, rec.Body)
	}
	if !strings.Contains(logs.String(), "kaboom") || !strings.Contains(logs.String(), "stack") {
		t.Fatalf("panic not logged with its stack: %s", logs.String())
	}
	for _, id := range []string{"1", "2", "3"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/items/"+id, nil))
	}
	if n := testutil.ToFloat64(m.requests.WithLabelValues("/items/{id}", "GET", "200")); n != 3 {
		t.Fatalf("requests by template: %v", n)
	}
	if n := testutil.ToFloat64(m.requests.WithLabelValues("/items/{id}", "GET", "500")); n != 1 {
		t.Fatalf("500 by template: %v", n)
	}
	if n := testutil.ToFloat64(m.panics); n != 1 {
		t.Fatalf("panics: %v", n)
	}
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/nope/x", nil))
	if n := testutil.ToFloat64(m.requests.WithLabelValues("unmatched", "GET", "404")); n != 1 {
		t.Fatalf("unmatched: %v", n)
	}
}
