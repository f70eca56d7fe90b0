package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/liveanalytics/analyticsd/internal/auth"
	"github.com/liveanalytics/analyticsd/internal/testenv"
)

type keyPair struct{ token, entry string }

func newKey(t *testing.T, scopes ...auth.Scope) keyPair {
	t.Helper()
	token, entry, err := auth.Generate(scopes...)
	if err != nil {
		t.Fatal(err)
	}
	return keyPair{token, entry}
}

type reply struct {
	code   int
	header http.Header
	body   map[string]json.RawMessage
	raw    string
}

func do(t *testing.T, method, u, token, contentType string, body []byte, headers ...string) reply {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return send(t, req)
}

// send does req and reads the whole answer.
func send(t *testing.T, req *http.Request) reply {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := reply{code: resp.StatusCode, header: resp.Header, raw: string(b)}
	_ = json.Unmarshal(b, &r.body)
	return r
}

func (r reply) errorCode() string {
	var e struct{ Code string }
	_ = json.Unmarshal(r.body["error"], &e)
	return e.Code
}

func countEvents(t *testing.T, dsn string) int64 {
	t.Helper()
	conn := pgxConnect(t, dsn)
	defer conn.Close(context.Background())
	var n int64
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM events`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func batch(n int, at time.Time) []byte {
	var evs []map[string]string
	for i := range n {
		evs = append(evs, map[string]string{"user_id": fmt.Sprintf("user-%d", i%7), "event_type": "page_view", "created_at": at.Add(time.Duration(i) * time.Millisecond).Format(time.RFC3339Nano)})
	}
	b, _ := json.Marshal(evs)
	return b
}

func TestIngest(t *testing.T) {
	t.Parallel()
	ing, rd := newKey(t, auth.ScopeIngest), newKey(t, auth.ScopeRead)
	s := startServer(t, map[string]string{"API_KEYS": ing.entry + " " + rd.entry, "ROLLUP_INTERVAL": "50ms"})
	u := s.base + "/api/v1/events"
	at := time.Now().Add(-time.Hour).UTC()

	// A JSON array and an NDJSON batch are accepted and stored.
	r := do(t, "POST", u, ing.token, "application/json", batch(50, at))
	if r.code != 202 || string(r.body["accepted"]) != "50" {
		t.Fatalf("JSON batch: %d %s", r.code, r.raw)
	}
	nd := `{"user_id":"a","event_type":"click"}` + "\n\n" + `{"user_id":"b","event_type":"signup","created_at":"2024-05-01T10:00:00.123456+02:00"}` + "\n"
	if r = do(t, "POST", u, ing.token, "application/x-ndjson", []byte(nd)); r.code != 202 || string(r.body["accepted"]) != "2" {
		t.Fatalf("NDJSON batch: %d %s", r.code, r.raw)
	}
	if n := countEvents(t, s.dbURL); n != 52 {
		t.Fatalf("%d events stored, want 52", n)
	}

	// One bad event: 400 naming each bad item, and nothing written.
	bad := `[{"user_id":"ok","event_type":"page_view"},{"user_id":"","event_type":"Page View"},{"event_type":"click","created_at":"2999-01-01T00:00:00Z"}]`
	r = do(t, "POST", u, ing.token, "application/json", []byte(bad))
	var items []struct {
		Index  int
		Field  string
		Reason string
	}
	_ = json.Unmarshal(r.body["errors"], &items)
	if r.code != 400 || r.errorCode() != "invalid_events" || len(items) != 4 || items[0].Index != 1 || items[2].Index != 2 {
		t.Fatalf("invalid batch: %d %s", r.code, r.raw)
	}
	for _, body := range []string{`{"user_id":"x"}`, `[{"user_id":"x","event_type":"a"}`, `[1,2]`, `not json`, `[]`} {
		if r = do(t, "POST", u, ing.token, "application/json", []byte(body)); r.code != 400 || r.errorCode() != "invalid_body" {
			t.Errorf("body %q: %d %s, want 400 invalid_body", body, r.code, r.raw)
		}
	}
	if n := countEvents(t, s.dbURL); n != 52 {
		t.Fatalf("after rejected batches: %d events, want 52 (all-or-nothing)", n)
	}

	// Idempotency: the same key and body is written once, however many
	// times and however concurrently it is sent; another body is a 422.
	body := batch(10, at)
	var wg sync.WaitGroup
	replies := make([]reply, 6)
	for i := range replies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			replies[i] = do(t, "POST", u, ing.token, "application/json", body, "Idempotency-Key", "batch-0001")
		}()
	}
	wg.Wait()
	replayed := 0
	for _, r := range replies {
		if r.code != 202 || string(r.body["accepted"]) != "10" {
			t.Fatalf("idempotent retry: %d %s", r.code, r.raw)
		}
		if r.header.Get("Idempotent-Replayed") == "true" {
			replayed++
		}
	}
	if replayed != len(replies)-1 {
		t.Fatalf("%d of %d answers were replays, want all but one", replayed, len(replies))
	}
	if n := countEvents(t, s.dbURL); n != 62 {
		t.Fatalf("after 6 idempotent sends: %d events, want 62", n)
	}
	if r = do(t, "POST", u, ing.token, "application/json", batch(11, at), "Idempotency-Key", "batch-0001"); r.code != 422 || r.errorCode() != "idempotency_key_reused" {
		t.Fatalf("key reused with another body: %d %s", r.code, r.raw)
	}

	// Authentication and scopes.
	for _, c := range []struct {
		token string
		code  int
		err   string
	}{
		{"", 401, "unauthorized"},
		{"ak_not-a-key", 401, "unauthorized"},
		{rd.token, 403, "forbidden"},
	} {
		if r = do(t, "POST", u, c.token, "application/json", batch(1, at)); r.code != c.code || r.errorCode() != c.err {
			t.Errorf("token %q: %d %s, want %d %s", c.token, r.code, r.raw, c.code, c.err)
		}
		if strings.Contains(r.raw, ing.token) || strings.Contains(s.logs.String(), ing.token) {
			t.Fatal("a key was echoed or logged")
		}
	}

	// Limits and media types.
	if r = do(t, "POST", u, ing.token, "application/json", batch(10_001, at)); r.code != 413 {
		t.Errorf("10,001 events: %d %s, want 413", r.code, r.raw)
	}
	big := append([]byte(`[{"user_id":"`), bytes.Repeat([]byte("x"), 6<<20)...)
	if r = do(t, "POST", u, ing.token, "application/json", big); r.code != 413 || r.errorCode() != "payload_too_large" {
		t.Errorf("6 MB body: %d %s, want 413", r.code, r.raw)
	}
	if r = do(t, "POST", u, ing.token, "text/plain", batch(1, at)); r.code != 415 {
		t.Errorf("text/plain: %d %s, want 415", r.code, r.raw)
	}
	if r = do(t, "GET", u, ing.token, "", nil); r.code != 405 || r.header.Get("Allow") != "POST" {
		t.Errorf("GET /api/v1/events: %d, Allow %q", r.code, r.header.Get("Allow"))
	}
	if n := countEvents(t, s.dbURL); n != 62 {
		t.Fatalf("after rejected requests: %d events, want 62", n)
	}

	// The metrics saw it all, and ingested events reach the summary.
	if got := metric(t, s.base, `analytics_ingest_events_total{source="api"}`); got != 62 {
		t.Errorf(`analytics_ingest_events_total{source="api"} = %v, want 62`, got)
	}
	if got := metric(t, s.base, `analytics_ingest_rejected_total{reason="invalid"}`); got < 6 {
		t.Errorf("rejected invalid = %v, want at least 6", got)
	}
	if got := metric(t, s.base, `analytics_ingest_rejected_total{reason="unauthorized"}`); got != 2 {
		t.Errorf("rejected unauthorized = %v, want 2", got)
	}
	code, sb := s.summary(t, at.Add(-time.Minute).Format(time.RFC3339), at.Add(time.Minute).Format(time.RFC3339))
	if got := sb.parse(t); code != 200 || got.Total != 60 {
		t.Errorf("summary around the ingested batch: %d %+v, want 60 events", code, got)
	}
	hits := metric(t, s.base, `analytics_cache_requests_total{result="hit"}`)
	s.summary(t, at.Add(-time.Minute).Format(time.RFC3339), at.Add(time.Minute).Format(time.RFC3339))
	if got := metric(t, s.base, `analytics_cache_requests_total{result="hit"}`); got != hits+1 {
		t.Errorf("cache hits %v then %v, want one more", hits, got)
	}
}

func TestReadAuthRateLimitsCORS(t *testing.T) {
	t.Parallel()
	ing, rd := newKey(t, auth.ScopeIngest), newKey(t, auth.ScopeRead)
	s := startServer(t, map[string]string{
		"API_KEYS":        ing.entry + ";" + rd.entry,
		"READ_AUTH":       "required",
		"RATE_LIMIT_ADDR": "1000",
		"RATE_LIMIT_KEY":  "2", // bursts of 4
		"CORS_ORIGINS":    "https://wall.example.com",
	})
	sum := s.base + "/api/v1/analytics/summary?from=now-1h&to=now"
	if r := do(t, "GET", sum, "", "", nil); r.code != 401 || r.errorCode() != "unauthorized" || r.header.Get("WWW-Authenticate") == "" {
		t.Fatalf("read without a key: %d %s", r.code, r.raw)
	}
	if r := do(t, "GET", sum, ing.token, "", nil); r.code != 403 {
		t.Fatalf("read with an ingest-only key: %d %s", r.code, r.raw)
	}
	if r := do(t, "GET", sum, rd.token, "", nil); r.code != 200 {
		t.Fatalf("read with a read key: %d %s", r.code, r.raw)
	}
	// EventSource cannot set headers: the stream takes ?access_token=.
	resp, err := http.Get(s.base + "/api/v1/analytics/stream?from=now-1h&to=now&access_token=" + rd.token)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("stream with access_token: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}

	// Per-key limit: 2/s with bursts of 4; then 429 with Retry-After.
	limited := 0
	var last reply
	for range 10 {
		if r := do(t, "GET", sum, rd.token, "", nil); r.code == 429 {
			limited++
			last = r
		}
	}
	if limited < 4 || last.errorCode() != "rate_limited" || last.header.Get("Retry-After") == "" {
		t.Fatalf("10 quick reads on a 2/s key: %d limited, last %d %s %q", limited, last.code, last.raw, last.header.Get("Retry-After"))
	}
	if got := metric(t, s.base, `analytics_rate_limited_total{scope="key"}`); got != float64(limited) {
		t.Errorf("analytics_rate_limited_total{scope=key} = %v, want %d", got, limited)
	}

	// CORS: the allowed origin gets the headers, another a 403 preflight.
	r := do(t, "OPTIONS", sum, "", "", nil, "Origin", "https://wall.example.com", "Access-Control-Request-Method", "GET", "Access-Control-Request-Headers", "authorization")
	if r.code != 204 || r.header.Get("Access-Control-Allow-Origin") != "https://wall.example.com" || !strings.Contains(r.header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Fatalf("preflight from an allowed origin: %d %v", r.code, r.header)
	}
	if r = do(t, "OPTIONS", sum, "", "", nil, "Origin", "https://evil.example", "Access-Control-Request-Method", "GET"); r.code != 403 || r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight from another origin: %d %v", r.code, r.header)
	}
	// Security headers on the dashboard; no body on reads.
	if r = do(t, "GET", s.base+"/", "", "", nil); r.header.Get("Content-Security-Policy") == "" || r.header.Get("X-Frame-Options") != "DENY" {
		t.Fatalf("dashboard headers: %v", r.header)
	}
	if r = do(t, "GET", s.base+"/health", "", "application/json", bytes.Repeat([]byte("x"), 100<<10)); r.code != 413 {
		t.Fatalf("100 KB body on a read: %d", r.code)
	}
}

func TestRateLimitPerAddress(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"RATE_LIMIT_ADDR": "1"}) // bursts of 2
	codes := map[int]int{}
	var retry string
	for range 5 {
		r := do(t, "GET", s.base+"/api/v1/analytics/summary?from=now-1h&to=now", "", "", nil)
		codes[r.code]++
		if r.code == 429 {
			retry = r.header.Get("Retry-After")
		}
	}
	if codes[200] != 2 || codes[429] != 3 || retry != "1" {
		t.Fatalf("5 quick reads at 1/s per address: %v, Retry-After %q", codes, retry)
	}
	// Health and metrics are not limited (probes and scrapers).
	for range 5 {
		if r := do(t, "GET", s.base+"/health", "", "", nil); r.code != 200 {
			t.Fatalf("health under the limit: %d", r.code)
		}
	}
}

// TestReadReplicaURL sends reads to DATABASE_READ_URL: with the "replica"
// (the same database behind a proxy we can cut) gone, reads fail while
// ingest, on DATABASE_URL, still works.
func TestReadReplicaURL(t *testing.T) {
	t.Parallel()
	primary := testenv.PostgresURL(t)
	u, err := url.Parse(primary)
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.NewProxy(t, u.Host)
	u.Host = proxy.Addr
	ing := newKey(t, auth.ScopeIngest)
	s := startServer(t, map[string]string{"DATABASE_URL": primary, "DATABASE_READ_URL": u.String(), "API_KEYS": ing.entry})
	if code, _ := s.summary(t, "2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z"); code != 200 {
		t.Fatalf("summary through the replica: %d", code)
	}
	proxy.Cut()
	if code, _ := s.summary(t, "2024-02-01T00:00:00Z", "2024-02-02T00:00:00Z"); code != 503 {
		t.Fatalf("summary with the replica gone: %d, want 503", code)
	}
	if r := do(t, "POST", s.base+"/api/v1/events", ing.token, "application/json", batch(3, time.Now().Add(-time.Minute))); r.code != 202 {
		t.Fatalf("ingest with the replica gone: %d %s, want 202 (writes go to the primary)", r.code, r.raw)
	}
	proxy.Heal()
	code, body := s.summary(t, time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), time.Now().UTC().Format(time.RFC3339))
	if code != 200 || body.parse(t).Total != 3 {
		t.Fatalf("summary after the replica is back: %d %+v", code, body)
	}
}
