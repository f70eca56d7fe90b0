package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// healthHandler serves GET /health: ok, degraded (200, Redis down: answers
// still come from PostgreSQL) or down (503, PostgreSQL down).
type healthHandler struct {
	postgres, redis func(context.Context) error
	storage         func(context.Context) (StorageHealth, error) // nil: not reported
}

// StorageHealth is what /health says about the data held: the partitions
// of the raw events, the bytes of raw events and of rollups, the oldest
// of each, and where the raw events start after RAW_RETENTION dropped
// older ones (null: nothing dropped).
type StorageHealth struct {
	Partitions      int        `json:"partitions"`
	RawBytes        int64      `json:"rawBytes"`
	RollupBytes     int64      `json:"rollupBytes"`
	OldestRaw       *time.Time `json:"oldestRaw"`
	OldestRollup    *time.Time `json:"oldestRollup"`
	RawRetainedFrom *time.Time `json:"rawRetainedFrom"`
}

type check struct {
	Status    string  `json:"status"`
	LatencyMs float64 `json:"latencyMs"`
	Error     string  `json:"error,omitempty"`
}

type healthBody struct {
	Status  string           `json:"status"`
	Checks  map[string]check `json:"checks"`
	Storage *StorageHealth   `json:"storage,omitempty"`
}

func (h *healthHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var pg, rd check
	var st *StorageHealth
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); pg = probe(r.Context(), 2*time.Second, h.postgres) }()
	go func() { defer wg.Done(); rd = probe(r.Context(), time.Second, h.redis) }()
	if h.storage != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			if s, err := h.storage(ctx); err == nil {
				st = &s
			}
		}()
	}
	wg.Wait()
	body := healthBody{Status: "ok", Checks: map[string]check{"postgres": pg, "redis": rd}, Storage: st}
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

// CheckHealth asks GET /health at url, the way a container's health check
// does: it returns the server's status when it is "ok" or "degraded" (the
// server answers, from PostgreSQL at least), and an error otherwise (down,
// no answer within ctx, not an analyticsd). It ignores HTTP proxy settings:
// the server is on this machine.
func CheckHealth(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var body healthBody
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body); err != nil {
		return "", fmt.Errorf("%s answered %s, not a health report", url, resp.Status)
	}
	if resp.StatusCode != http.StatusOK || (body.Status != "ok" && body.Status != "degraded") {
		return body.Status, fmt.Errorf("%s: %s (%s)", url, body.Status, resp.Status)
	}
	return body.Status, nil
}
