package api

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// healthHandler serves GET /health: ok, degraded (200, Redis down: answers
// still come from PostgreSQL) or down (503, PostgreSQL down).
type healthHandler struct {
	postgres, redis func(context.Context) error
}

type check struct {
	Status    string  `json:"status"`
	LatencyMs float64 `json:"latencyMs"`
	Error     string  `json:"error,omitempty"`
}

type healthBody struct {
	Status string           `json:"status"`
	Checks map[string]check `json:"checks"`
}

func (h *healthHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var pg, rd check
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); pg = probe(r.Context(), 2*time.Second, h.postgres) }()
	go func() { defer wg.Done(); rd = probe(r.Context(), time.Second, h.redis) }()
	wg.Wait()
	body := healthBody{Status: "ok", Checks: map[string]check{"postgres": pg, "redis": rd}}
	status := http.StatusOK
	switch {
	case pg.Status != "ok":
		body.Status, status = "down", http.StatusServiceUnavailable
	case rd.Status != "ok":
		body.Status = "degraded"
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, status, body)
}

// probe times one dependency check. Errors are reported as "unreachable":
// the details (addresses, credentials) belong in the logs, not on a public
// endpoint.
func probe(ctx context.Context, timeout time.Duration, ping func(context.Context) error) check {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	err := ping(ctx)
	c := check{Status: "ok", LatencyMs: float64(time.Since(start).Microseconds()) / 1000}
	if err != nil {
		c.Status, c.Error = "down", "unreachable"
	}
	return c
}
