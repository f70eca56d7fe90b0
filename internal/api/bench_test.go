package api

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveanalytics/analyticsd/stream"
	"github.com/liveanalytics/analyticsd/summary"
)

// memCache is a summary.Cache in a map, for measuring the edge alone.
type memCache struct {
	mu sync.Mutex
	m  map[string]summary.Entry
}

func (c *memCache) Get(_ context.Context, k string) (summary.Entry, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	return e, ok, nil
}
func (c *memCache) GetStale(ctx context.Context, k string) (summary.Entry, bool, error) {
	return c.Get(ctx, k)
}
func (c *memCache) Set(_ context.Context, k string, e summary.Entry) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[k] = e
	return nil
}

type fixedStore struct{ s summary.Summary }

func (f fixedStore) Summary(context.Context, summary.Range) (summary.Summary, error) { return f.s, nil }

// discardWriter is a ResponseWriter that keeps nothing, so that the
// benchmark measures the edge, not a recorder.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}

// BenchmarkSummaryEdge is one cached summary request through the whole
// edge (middleware, routing, guard, handler, the service's in-process
// tier), without the network: what the server adds to a bare handler.
func BenchmarkSummaryEdge(b *testing.B) {
	sum := summary.Summary{TotalEvents: 1234567, UniqueUsers: 23456, EventsByType: summary.TypeCounts{
		{Type: "page_view", Count: 600000}, {Type: "click", Count: 300000}, {Type: "scroll", Count: 100000},
		{Type: "search", Count: 50000}, {Type: "signup", Count: 30000}, {Type: "add_to_cart", Count: 20000},
		{Type: "checkout", Count: 10000}, {Type: "purchase", Count: 5000}, {Type: "logout", Count: 1000}}}
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer devnull.Close()
	br := stream.New(nil, nil, stream.Options{})
	defer br.Close()
	for _, c := range []struct {
		name   string
		local  int
		sample int
	}{{"local tier, every request logged", 1000, 1}, {"local tier, errors logged", 1000, 0}, {"no local tier, every request logged", 0, 1}} {
		b.Run(c.name, func(b *testing.B) {
			svc := summary.NewService(fixedStore{sum}, &memCache{m: map[string]summary.Entry{}}, summary.ServiceOptions{
				LocalEntries: c.local, RefreshInterval: time.Hour, CacheTTL: time.Hour})
			log := slog.New(slog.NewJSONHandler(devnull, nil))
			a := New(Deps{Summaries: svc, Broker: br, Registry: prometheus.NewRegistry()},
				Options{RefreshInterval: time.Hour, MaxRange: 400 * 24 * time.Hour, Logger: log, AccessLogSample: c.sample})
			req := httptest.NewRequest("GET", "/api/v1/analytics/summary?from=2024-01-01T00:00:00Z&to=2024-01-31T00:00:00Z", nil)
			w := &discardWriter{h: http.Header{}}
			a.ServeHTTP(w, req) // fill the cache
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				a.ServeHTTP(w, req)
			}
		})
	}
}
