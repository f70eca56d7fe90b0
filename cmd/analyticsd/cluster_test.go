package main

import (
	"testing"
	"time"

	"github.com/liveanalytics/analyticsd/internal/testenv"
)

// TestRedisCluster runs two instances on a real three-node Redis Cluster:
// the cache answers the second request, and a live range is refreshed once
// per interval for both (one leader, the other follows over pub/sub).
func TestRedisCluster(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"REDIS_CLUSTER":    "true",
		"REDIS_URL":        testenv.StartRedisCluster(t),
		"DATABASE_URL":     testenv.PostgresURL(t),
		"REDIS_PREFIX":     testenv.RandomName("cluster:") + ":",
		"REFRESH_INTERVAL": "400ms",
	}
	a := startServer(t, env)
	b := startServer(t, env)

	from, to := "2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z"
	if code, body := a.summary(t, from, to); code != 200 || body.Cached {
		t.Fatalf("first summary: %d cached=%v", code, body.Cached)
	}
	if code, body := b.summary(t, from, to); code != 200 || !body.Cached {
		t.Fatalf("second summary on the other instance: %d cached=%v, want a cache hit", code, body.Cached)
	}

	sa := openStream(t, a.base+"/api/v1/analytics/stream?from=now-1h&to=now", "")
	sb := openStream(t, b.base+"/api/v1/analytics/stream?from=now-1h&to=now", "")
	for range 6 {
		for _, s := range []*sseConn{sa, sb} {
			if _, ok := s.next(t, 3*time.Second); !ok {
				t.Fatal("no snapshot within 3 s")
			}
		}
	}
	leaders := metric(t, a.base, `analytics_stream_refreshes_total{role="leader"}`) + metric(t, b.base, `analytics_stream_refreshes_total{role="leader"}`)
	followers := metric(t, a.base, `analytics_stream_refreshes_total{role="follower"}`) + metric(t, b.base, `analytics_stream_refreshes_total{role="follower"}`)
	local := metric(t, a.base, `analytics_stream_refreshes_total{role="local"}`) + metric(t, b.base, `analytics_stream_refreshes_total{role="local"}`)
	if local != 0 || followers < 3 || leaders > followers+3 {
		t.Fatalf("refreshes: %v leader, %v follower, %v local; want shared through the cluster", leaders, followers, local)
	}
}
