package main

import (
	"bytes"
	"io"
	"net/http"
	"testing"

	"github.com/liveanalytics/analyticsd/internal/testenv"
)

// TestCachedAnswersAcrossInstances runs two instances on one PostgreSQL
// and one Redis: the first answer of a range is computed (cached:false),
// the other instance's first is a Redis hit and its next ones come from
// its memory, all with the same bytes and an honest cached:true.
func TestCachedAnswersAcrossInstances(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"DATABASE_URL": testenv.PostgresURL(t),
		"REDIS_PREFIX": testenv.KeyPrefix(t), // its keys are deleted when the test ends
	}
	a := startServer(t, env)
	b := startServer(t, env)
	const path = "/api/v1/analytics/summary?from=2024-01-01T00:00:00Z&to=2024-01-31T00:00:00.5Z"
	body := func(s *server) []byte {
		t.Helper()
		resp, err := http.Get(s.base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, out)
		}
		return out
	}
	computed := body(a)
	if !bytes.Contains(computed, []byte(`"cached":false`)) {
		t.Fatalf("first answer: %s", computed)
	}
	fromRedis := body(b)
	localBefore := metric(t, b.base, "analytics_cache_local_hits_total")
	fromMemory := body(b)
	if !bytes.Contains(fromRedis, []byte(`"cached":true`)) || !bytes.Equal(fromRedis, fromMemory) {
		t.Fatalf("the other instance: %s then %s; want the same cached bytes", fromRedis, fromMemory)
	}
	if got := metric(t, b.base, "analytics_cache_local_hits_total"); got != localBefore+1 {
		t.Fatalf("local hits %v → %v; the second answer should come from memory", localBefore, got)
	}
	if !bytes.Equal(bytes.Replace(computed, []byte(`"cached":false`), []byte(`"cached":true`), 1), fromMemory) {
		t.Fatalf("computed %s, cached %s: only the cached flag may differ", computed, fromMemory)
	}
}
