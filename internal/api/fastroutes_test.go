package api

import (
	"log/slog"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveanalytics/analyticsd/stream"
	"github.com/liveanalytics/analyticsd/summary"
)

// TestFastRoutesAnswerAsTheMux: a GET or HEAD of a static read path goes
// straight to its handler, and gets what the mux would give: the same
// answer, its route template as the metric label, and the access line's
// route; any other method, a path the mux cleans or redirects, and
// unknown paths still go through the mux (405, 301, 404).
func TestFastRoutesAnswerAsTheMux(t *testing.T) {
	sum := summary.Summary{TotalEvents: 7, UniqueUsers: 3, EventsByType: summary.TypeCounts{{Type: "click", Count: 7}}}
	svc := summary.NewService(fixedStore{sum}, &memCache{m: map[string]summary.Entry{}}, summary.ServiceOptions{})
	br := stream.New(nil, nil, stream.Options{})
	defer br.Close()
	reg := prometheus.NewRegistry()
	var lines strings.Builder
	log := slog.New(slog.NewJSONHandler(&lines, nil))
	a := New(Deps{Summaries: svc, Broker: br, Registry: reg},
		Options{RefreshInterval: time.Hour, MaxRange: 400 * 24 * time.Hour, Logger: log, AccessLogSample: 1, AccessLogOut: &lines, AccessLogJSON: true})
	const q = "?from=2024-01-01T00:00:00Z&to=2024-01-31T00:00:00Z"
	for _, c := range []struct {
		method, path string
		status       int
		route        string
	}{
		{"GET", "/api/v1/analytics/summary" + q, 200, "/api/v1/analytics/summary"},
		{"HEAD", "/api/analytics/summary" + q, 200, "/api/analytics/summary"},
		{"POST", "/api/v1/analytics/summary" + q, 405, "/api/v1/analytics/summary"},
		{"GET", "/api/v1//analytics/summary" + q, 301, "unmatched"},
		{"GET", "/api/v1/analytics/summary/" + q, 404, "unmatched"},
		{"GET", "/api/v1/analytics/summary" + q + "&from=x", 400, "/api/v1/analytics/summary"},
	} {
		lines.Reset()
		before := requestCount(t, reg, c.route, c.method, c.status)
		w := httptest.NewRecorder()
		a.ServeHTTP(w, httptest.NewRequest(c.method, c.path, nil))
		if w.Code != c.status {
			t.Fatalf("%s %s: %d %s, want %d", c.method, c.path, w.Code, w.Body, c.status)
		}
		if c.status == 200 && c.method == "GET" && !strings.Contains(w.Body.String(), `"totalEvents":7`) {
			t.Fatalf("%s %s: body %s", c.method, c.path, w.Body)
		}
		if got := requestCount(t, reg, c.route, c.method, c.status); got != before+1 {
			t.Fatalf("%s %s: analytics_http_requests_total{route=%q} went %v → %v", c.method, c.path, c.route, before, got)
		}
		if !strings.Contains(lines.String(), `"route":"`+c.route+`"`) {
			t.Fatalf("%s %s: access line %q lacks the route %q", c.method, c.path, lines.String(), c.route)
		}
	}
}

// requestCount reads analytics_http_requests_total{route,method,code}.
func requestCount(t *testing.T, reg *prometheus.Registry, route, method string, code int) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "analytics_http_requests_total" {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			want := map[string]string{"route": route, "method": method, "code": strconv.Itoa(code)}
			for _, l := range m.GetLabel() {
				if want[l.GetName()] != l.GetValue() {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}
