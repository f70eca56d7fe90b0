package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/liveanalytics/analyticsd/internal/auth"
)

// TestRepeatedQueryParameters: a parameter given twice is a 400 on every
// endpoint that reads the query, whichever value comes first, and the
// key in ?access_token= too; a malformed query string is a 400.
func TestRepeatedQueryParameters(t *testing.T) {
	t.Parallel()
	rd := newKey(t, auth.ScopeRead)
	s := startServer(t, map[string]string{"API_KEYS": rd.entry})
	for _, path := range []string{
		"/api/analytics/summary", "/api/v1/analytics/summary",
		"/api/analytics/timeseries", "/api/v1/analytics/timeseries",
		"/api/v1/analytics/export.csv",
		"/api/analytics/stream", "/api/v1/analytics/stream",
		"/api/v1/config",
	} {
		for _, q := range []string{
			"from=2024-01-01T00:00:00Z&from=garbage&to=2024-01-02T00:00:00Z",
			"from=garbage&from=2024-01-01T00:00:00Z&to=2024-01-02T00:00:00Z",
			"from=now-1h&to=now&to=now",
			"from=now-1h&to=now&event_type=a&event_type=b",
			"from=now-1h&to=now&bucket=hour&bucket=day",
			"from=now-1h&to=now&tz=UTC&tz=Europe/Berlin",
			"from=now-1h&to=now&access_token=" + rd.token + "&access_token=" + rd.token,
			"from=now-1h&to=now&x=1&x=2",
		} {
			r := get(t, s.base+path+"?"+q)
			if r.code != 400 || r.errorCode() != "invalid_parameter" || !strings.Contains(r.raw, "given 2 times") {
				t.Errorf("%s?%s: %d %s, want 400 invalid_parameter", path, q, r.code, r.raw)
			}
			if strings.Contains(r.raw, rd.token) {
				t.Fatalf("%s: the key was echoed: %s", path, r.raw)
			}
		}
		if r := get(t, s.base+path+"?from=now-1h&to=now&tz=%zz"); r.code != 400 || r.errorCode() != "invalid_parameter" {
			t.Errorf("%s with a bad escape: %d %s", path, r.code, r.raw)
		}
	}
	// One of each still works (the stream is checked by its own tests).
	for _, path := range []string{"/api/v1/analytics/summary", "/api/v1/analytics/timeseries", "/api/v1/analytics/export.csv", "/api/v1/config"} {
		if r := do(t, "GET", s.base+path+"?from=now-1h&to=now&access_token="+rd.token, "", "", nil); r.code != 200 {
			t.Errorf("%s: %d %s", path, r.code, r.raw)
		}
	}
}

// get is a GET that gives up on the body after a few seconds, so that a
// stream that should have been refused fails the test instead of hanging.
func get(t *testing.T, u string) reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
	return send(t, req)
}

// TestIngestRefusesInvalidUTF8: ids whose bytes are not UTF-8, or whose
// escapes are unpaired surrogates, would be stored as U+FFFD and merge
// users: each is a 400 naming the event and field, and nothing is written.
func TestIngestRefusesInvalidUTF8(t *testing.T) {
	t.Parallel()
	ing := newKey(t, auth.ScopeIngest)
	s := startServer(t, map[string]string{"API_KEYS": ing.entry})
	u := s.base + "/api/v1/events"
	for _, c := range []struct{ contentType, body, field string }{
		{"application/json", `[{"user_id":"ok","event_type":"click"},{"user_id":"a` + "\xff\xfe" + `b","event_type":"click"}]`, "user_id"},
		{"application/json", `[{"user_id":"ok","event_type":"click"},{"user_id":"a\ud800b","event_type":"click"}]`, "user_id"},
		{"application/x-ndjson", `{"user_id":"ok","event_type":"click"}` + "\n" + `{"user_id":"a` + "\xff\xfe" + `b","event_type":"click"}` + "\n", "user_id"},
		{"application/x-ndjson", `{"user_id":"ok","event_type":"click"}` + "\n" + `{"user_id":"x","event_type":"click\udc00"}` + "\n", "event_type"},
	} {
		r := do(t, "POST", u, ing.token, c.contentType, []byte(c.body))
		var items []struct {
			Index  int
			Field  string
			Reason string
		}
		_ = json.Unmarshal(r.body["errors"], &items)
		if r.code != 400 || r.errorCode() != "invalid_events" || len(items) != 1 || items[0].Index != 1 || items[0].Field != c.field || !strings.Contains(items[0].Reason, "UTF-8") {
			t.Errorf("%s %q: %d %s, want 400 invalid_events for event 1's %s", c.contentType, c.body, r.code, r.raw, c.field)
		}
	}
	if n := countEvents(t, s.dbURL); n != 0 {
		t.Fatalf("%d events stored, want none", n)
	}
	// Distinct valid ids stay distinct.
	body := `[{"user_id":"a\ud83d\ude00","event_type":"click"},{"user_id":"a` + "\uFFFD" + `","event_type":"click"}]`
	if r := do(t, "POST", u, ing.token, "application/json", []byte(body)); r.code != 202 {
		t.Fatalf("valid ids: %d %s", r.code, r.raw)
	}
	conn := pgxConnect(t, s.dbURL)
	defer conn.Close(t.Context())
	var users int
	if err := conn.QueryRow(t.Context(), `SELECT count(DISTINCT user_id) FROM events`).Scan(&users); err != nil || users != 2 {
		t.Fatalf("%d distinct users stored (%v), want 2", users, err)
	}
}

func gzipBody(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestIngestContentEncoding: gzip bodies are decoded (the 5 MB limit
// applies to the decoded body, and a bomb is a 413); a body that claims
// gzip and is not is a 400; other codings are a 415. Nothing refused is
// written.
func TestIngestContentEncoding(t *testing.T) {
	t.Parallel()
	ing := newKey(t, auth.ScopeIngest)
	s := startServer(t, map[string]string{"API_KEYS": ing.entry})
	u := s.base + "/api/v1/events"
	at := time.Now().Add(-time.Hour).UTC()
	plain := batch(20, at)

	r := do(t, "POST", u, ing.token, "application/json", gzipBody(t, plain), "Content-Encoding", "gzip", "Idempotency-Key", "gz-1")
	if r.code != 202 || string(r.body["accepted"]) != "20" {
		t.Fatalf("gzip batch: %d %s", r.code, r.raw)
	}
	// The same batch sent plain under the same key is the same batch.
	if r = do(t, "POST", u, ing.token, "application/json", plain, "Idempotency-Key", "gz-1"); r.code != 202 || r.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("the gzip batch again, plain: %d %s %v", r.code, r.raw, r.header)
	}
	nd := []byte(`{"user_id":"a","event_type":"click"}` + "\n")
	if r = do(t, "POST", u, ing.token, "application/x-ndjson", gzipBody(t, nd), "Content-Encoding", "identity, GZIP"); r.code != 202 {
		t.Fatalf("gzip NDJSON: %d %s", r.code, r.raw)
	}
	if n := countEvents(t, s.dbURL); n != 21 {
		t.Fatalf("%d events stored, want 21", n)
	}

	for _, c := range []struct {
		encoding string
		body     []byte
		code     int
		err      string
	}{
		{"gzip", plain, 400, "invalid_body"},                                                 // claims gzip, is not
		{"gzip", gzipBody(t, plain)[:40], 400, "invalid_body"},                               // truncated
		{"br", plain, 415, "unsupported_content_encoding"},                                   // not supported
		{"deflate", plain, 415, "unsupported_content_encoding"},                              //
		{"gzip, gzip", gzipBody(t, gzipBody(t, plain)), 415, "unsupported_content_encoding"}, // one layer only
		{"gzip", gzipBody(t, append([]byte(`[{"user_id":"`), bytes.Repeat([]byte("x"), 6<<20)...)), 413, "payload_too_large"},
	} {
		r := do(t, "POST", u, ing.token, "application/json", c.body, "Content-Encoding", c.encoding)
		if r.code != c.code || r.errorCode() != c.err {
			t.Errorf("Content-Encoding %s: %d %s, want %d %s", c.encoding, r.code, r.raw, c.code, c.err)
		}
		if c.code == 415 && r.header.Get("Accept-Encoding") != "gzip" {
			t.Errorf("415 without Accept-Encoding: %v", r.header)
		}
	}

	// A gzip bomb: 1 GiB of zeros in about a megabyte. The server stops
	// at 5 MB decoded.
	member := gzipBody(t, make([]byte, 1<<20))
	bomb := bytes.Repeat(member, 1024)
	if r = do(t, "POST", u, ing.token, "application/json", bomb, "Content-Encoding", "gzip"); r.code != 413 || !strings.Contains(r.raw, "decompressed") {
		t.Fatalf("gzip bomb: %d %s, want 413", r.code, r.raw)
	}
	// More than the compressed limit is refused as it arrives.
	huge := bytes.Repeat(member, 7000)
	if r = do(t, "POST", u, ing.token, "application/json", huge, "Content-Encoding", "gzip"); r.code != 413 {
		t.Fatalf("7 MB of gzip: %d %s, want 413", r.code, r.raw)
	}
	if n := countEvents(t, s.dbURL); n != 21 {
		t.Fatalf("after refused bodies: %d events, want 21", n)
	}
}

// TestCalendarEdges: a year-1 range streams with a non-negative id (and
// the same ETag), and a series whose buckets would be labelled outside
// the years 0001-9999 on the zone's wall clock is a 400, not a label
// such as 10000-01-01T00:00:00+14:00.
func TestCalendarEdges(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	q := "?from=0001-01-01T00:00:00Z&to=0001-01-02T00:00:00Z"
	c := openStream(t, s.base+"/api/v1/analytics/stream"+q, "")
	ev, ok := c.next(t, 10*time.Second)
	if !ok {
		t.Fatal("no snapshot for a year-1 range")
	}
	if id, err := strconv.ParseInt(ev.id, 10, 64); err != nil || id < 0 {
		t.Fatalf("year-1 stream id %q, want a non-negative integer", ev.id)
	}
	if r := do(t, "GET", s.base+"/api/v1/analytics/summary"+q, "", "", nil); r.code != 200 || r.header.Get("ETag") != `"`+ev.id+`"` {
		t.Fatalf("year-1 summary: %d, ETag %s, stream id %s", r.code, r.header.Get("ETag"), ev.id)
	}

	end := "from=9999-12-28T00:00:00Z&to=9999-12-31T23:59:59.999999Z&bucket=day"
	for _, path := range []string{"/api/v1/analytics/timeseries", "/api/v1/analytics/export.csv"} {
		r := do(t, "GET", s.base+path+"?"+end+"&tz=Pacific/Kiritimati", "", "", nil)
		if r.code != 400 || r.errorCode() != "invalid_range" || strings.Contains(r.raw, "10000-") {
			t.Errorf("%s at the end of 9999 east of UTC: %d %s, want 400 invalid_range", path, r.code, r.raw)
		}
	}
	var body seriesBody
	if code, _ := getJSON(t, s.base+"/api/v1/analytics/timeseries?"+end+"&tz=UTC", &body); code != 200 || len(body.Data) != 4 || body.Data[3].T != "9999-12-31T00:00:00Z" {
		t.Fatalf("the same range in UTC: %d %+v", code, body)
	}
}

// clientFrom is an HTTP client whose connections come from the loopback
// address src (127.0.0.0/8 is all local on Linux), for per-address limits.
func clientFrom(t *testing.T, src string) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func status(t *testing.T, c *http.Client, method, u, token string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(method, u, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// TestFailedAuthenticationIsThrottled: wrong keys are limited per
// address on every endpoint, streams included (which have no request
// limit): with the defaults (10 a minute), guessing 40 keys on the
// stream gets 429s with Retry-After after the tenth. Once blocked, even
// the right key gets a 429 from that address (a right guess must not
// stand out), while other addresses, and requests without a key, are
// served.
func TestFailedAuthenticationIsThrottled(t *testing.T) {
	t.Parallel()
	rd, ing := newKey(t, auth.ScopeRead), newKey(t, auth.ScopeIngest)
	s := startServer(t, map[string]string{"API_KEYS": rd.entry + " " + ing.entry})
	attacker, other := clientFrom(t, "127.0.0.2"), clientFrom(t, "127.0.0.3")
	stream := s.base + "/api/analytics/stream?from=now-1h&to=now&access_token="
	codes := map[int]int{}
	var retry string
	for i := range 40 {
		resp := status(t, attacker, "GET", stream+fmt.Sprintf("ak_guess%04d", i), "")
		codes[resp.StatusCode]++
		if resp.StatusCode == 429 {
			retry = resp.Header.Get("Retry-After")
		}
	}
	// A token comes back every 6 s; a slow run may see one more.
	if codes[401] < 10 || codes[401] > 11 || codes[429] != 40-codes[401] || retry == "" {
		t.Fatalf("40 wrong keys on the stream: %v, Retry-After %q; want 10 401s, then 429s", codes, retry)
	}
	if n, err := strconv.Atoi(retry); err != nil || n < 1 || n > 6 {
		t.Fatalf("Retry-After %q, want 1 to 6 seconds", retry)
	}
	// Blocked on every endpoint that takes a key, for right keys too.
	for _, c := range []struct{ method, path, token string }{
		{"GET", "/api/v1/analytics/stream?from=now-1h&to=now&access_token=" + rd.token, ""},
		{"GET", "/api/v1/analytics/summary?from=now-1h&to=now", rd.token},
		{"GET", "/api/v1/config", "ak_wrong"},
		{"POST", "/api/v1/events", ing.token},
	} {
		if resp := status(t, attacker, c.method, s.base+c.path, c.token); resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s %s from the blocked address: %d, want 429", c.method, c.path, resp.StatusCode)
		}
	}
	// Reads without a key (READ_AUTH=open) are still served to it.
	if resp := status(t, attacker, "GET", s.base+"/api/v1/analytics/summary?from=now-1h&to=now", ""); resp.StatusCode != 200 {
		t.Errorf("a read without a key from the blocked address: %d", resp.StatusCode)
	}
	// Another address is not affected.
	if resp := status(t, other, "GET", s.base+"/api/v1/analytics/summary?from=now-1h&to=now", rd.token); resp.StatusCode != 200 {
		t.Errorf("the right key from another address: %d", resp.StatusCode)
	}
	if resp := status(t, other, "GET", s.base+"/api/v1/config", "ak_wrong"); resp.StatusCode != 401 {
		t.Errorf("a wrong key from another address: %d, want 401", resp.StatusCode)
	}
	if got := metric(t, s.base, `analytics_rate_limited_total{scope="auth"}`); got != float64(codes[429]+4) {
		t.Errorf(`analytics_rate_limited_total{scope="auth"} = %v, want %d`, got, codes[429]+4)
	}
	if got := metric(t, s.base, `analytics_auth_failures_total`); got != float64(codes[401]+1) {
		t.Errorf("analytics_auth_failures_total = %v, want %d", got, codes[401]+1)
	}
}

// openFrom opens a stream from client c and returns its status; a 200's
// body stays open until closed.
func openFrom(t *testing.T, c *http.Client, u string) (int, io.Closer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
	resp, err := c.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	closer := closeFunc(func() error { cancel(); return resp.Body.Close() })
	t.Cleanup(func() { _ = closer.Close() })
	if resp.StatusCode != 200 {
		_ = closer.Close()
	}
	return resp.StatusCode, closer
}

type closeFunc func() error

func (f closeFunc) Close() error { return f() }

// TestStreamRangesPerAddress: one address cannot hold every live range
// of the instance (STREAM_MAX_RANGES_PER_ADDR, then 429); and when the
// instance is full, ranges whose clients left make room at once for a new
// range from someone else, instead of a 503 until their grace ends.
func TestStreamRangesPerAddress(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"STREAM_MAX_RANGES": "8", "STREAM_MAX_RANGES_PER_ADDR": "5", "STREAM_HEARTBEAT": "1s"})
	attacker, other, third := clientFrom(t, "127.0.0.2"), clientFrom(t, "127.0.0.3"), clientFrom(t, "127.0.0.4")
	u := func(i int) string { return fmt.Sprintf("%s/api/v1/analytics/stream?from=now-%ds&to=now", s.base, i) }
	var held []io.Closer
	for i := 1; i <= 5; i++ {
		code, body := openFrom(t, attacker, u(i))
		if code != 200 {
			t.Fatalf("range %d of 5 from one address: %d", i, code)
		}
		held = append(held, body)
	}
	resp := status(t, attacker, "GET", u(6), "")
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a 6th range from one address: %d, want 429 with Retry-After", resp.StatusCode)
	}
	// Joining a range it already has is fine.
	if code, _ := openFrom(t, attacker, u(1)); code != 200 {
		t.Fatalf("a second stream on one of its ranges: %d", code)
	}
	// Others fill the instance.
	for i := 101; i <= 103; i++ {
		if code, _ := openFrom(t, other, u(i)); code != 200 {
			t.Fatalf("another address, range %d: %d", i, code)
		}
	}
	if code, _ := openFrom(t, third, u(200)); code != 503 {
		t.Fatalf("a new range with every range in use: %d, want 503", code)
	}
	// The attacker leaves: its ranges are idle (in their grace period) and
	// make room for a new one at once.
	for _, b := range held {
		_ = b.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for metric(t, s.base, "analytics_stream_clients") > 4 { // the second stream on range 1, and other's 3
		if time.Now().After(deadline) {
			t.Fatal("the closed streams were not released")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, _ := openFrom(t, third, u(200)); code != 200 {
		t.Fatalf("a new range with idle ones to evict: %d, want 200", code)
	}
	if got := metric(t, s.base, "analytics_stream_ranges_evicted_total"); got != 1 {
		t.Errorf("analytics_stream_ranges_evicted_total = %v, want 1", got)
	}
	if got := metric(t, s.base, `analytics_stream_rejected_total{reason="ranges_per_addr"}`); got != 1 {
		t.Errorf(`rejected{reason="ranges_per_addr"} = %v, want 1`, got)
	}
}

// TestListenAddr: by default the server listens on every interface (it
// answers on 127.0.0.2 too); LISTEN_ADDR=127.0.0.1 binds that address
// only. A port in LISTEN_ADDR is refused with a message naming PORT.
func TestListenAddr(t *testing.T) {
	t.Parallel()
	reach := func(base string) bool {
		_, port, _ := net.SplitHostPort(strings.TrimPrefix(base, "http://"))
		c, err := net.DialTimeout("tcp", "127.0.0.2:"+port, 2*time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	}
	if all := startServer(t, nil); !reach(all.base) {
		t.Fatal("the default does not listen on every interface")
	}
	one := startServer(t, map[string]string{"LISTEN_ADDR": "127.0.0.1"})
	if reach(one.base) {
		t.Fatal("LISTEN_ADDR=127.0.0.1 answers on 127.0.0.2")
	}
	if !strings.Contains(one.logs.String(), "addr=127.0.0.1:") {
		t.Fatalf("the log does not say where it listens:\n%s", one.logs)
	}
	// The container's health check asks where the server listens.
	two := startServer(t, map[string]string{"LISTEN_ADDR": "127.0.0.2"})
	port := portOf(t, two.base)
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, 2*time.Second); err == nil {
		c.Close()
		t.Fatal("LISTEN_ADDR=127.0.0.2 answers on 127.0.0.1")
	}
	var out bytes.Buffer
	env := map[string]string{"PORT": port, "LISTEN_ADDR": "127.0.0.2"}
	if err := run(t.Context(), []string{"healthcheck"}, func(k string) string { return env[k] }, &out, io.Discard); err != nil || strings.TrimSpace(out.String()) != "ok" {
		t.Fatalf("healthcheck with LISTEN_ADDR=127.0.0.2: %v %q", err, out.String())
	}
	for _, v := range []string{"127.0.0.1", "[::1]", "::1", "localhost", "", "0.0.0.0"} {
		if _, err := parseConfig("serve", nil, func(k string) string { return map[string]string{"LISTEN_ADDR": v}[k] }, io.Discard, nil); err != nil {
			t.Errorf("LISTEN_ADDR=%q: %v", v, err)
		}
	}
	for _, v := range []string{"127.0.0.1:8080", "[::1]:80", "bad host", "-x", "a..b"} {
		_, err := parseConfig("serve", nil, func(k string) string { return map[string]string{"LISTEN_ADDR": v}[k] }, io.Discard, nil)
		if err == nil || !strings.Contains(err.Error(), "LISTEN_ADDR") {
			t.Errorf("LISTEN_ADDR=%q: %v, want an error naming LISTEN_ADDR", v, err)
		}
	}
	_, err := parseConfig("serve", nil, func(k string) string { return map[string]string{"LISTEN_ADDR": "127.0.0.1:8080"}[k] }, io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "PORT") {
		t.Errorf("a port in LISTEN_ADDR: %v, want a hint at PORT", err)
	}
}

func writeKeys(t *testing.T, path string, entries ...string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte("# rotated\n"+strings.Join(entries, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// waitCode polls until a GET with token answers code.
func waitCode(t *testing.T, u, token string, code int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := do(t, "GET", u, token, "", nil)
		if r.code == code {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d, still not %d", u, r.code, code)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAPIKeysFileReloads: a key rotated in API_KEYS_FILE works without a
// restart while requests keep flowing (-race checks the swap); keys in
// API_KEYS stay; a bad file is logged and counted and changes nothing.
func TestAPIKeysFileReloads(t *testing.T) {
	t.Parallel()
	old, fresh, inline := newKey(t, auth.ScopeRead), newKey(t, auth.ScopeRead), newKey(t, auth.ScopeRead)
	path := filepath.Join(t.TempDir(), "keys")
	writeKeys(t, path, old.entry)
	s := startServer(t, map[string]string{"API_KEYS_FILE": path, "API_KEYS": inline.entry, "READ_AUTH": "required",
		"API_KEYS_RELOAD_INTERVAL": "100ms", "RATE_LIMIT_AUTH_FAILURES": "0"})
	sum := s.base + "/api/v1/analytics/summary?from=now-1h&to=now"

	// Requests with the inline key run throughout the rotations (paced:
	// other tests run beside this one).
	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	var failures, sent atomic.Int64
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				req, _ := http.NewRequest("GET", sum, nil)
				req.Header.Set("Authorization", "Bearer "+inline.token)
				resp, err := http.DefaultClient.Do(req)
				if err != nil || resp.StatusCode != 200 {
					failures.Add(1)
				}
				if err == nil {
					resp.Body.Close()
				}
				sent.Add(1)
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	writeKeys(t, path, fresh.entry)
	waitCode(t, sum, fresh.token, 200)
	if r := do(t, "GET", sum, old.token, "", nil); r.code != 401 {
		t.Fatalf("the rotated-out key: %d", r.code)
	}
	// A bad file: logged, counted, and the keys stay.
	writeKeys(t, path, "sha256:0123:read")
	deadline := time.Now().Add(10 * time.Second)
	for metric(t, s.base, `analytics_api_keys_reloads_total{result="error"}`) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the bad file was not counted:\n%s", s.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if r := do(t, "GET", sum, fresh.token, "", nil); r.code != 200 {
		t.Fatalf("the key after a bad file: %d", r.code)
	}
	if !strings.Contains(s.logs.String(), "previous keys stay") || strings.Contains(s.logs.String(), "0123:read") {
		t.Fatalf("the bad file was not logged, or its entry was:\n%s", s.logs)
	}
	writeKeys(t, path, old.entry, fresh.entry)
	waitCode(t, sum, old.token, 200)
	stop()
	wg.Wait()
	if n := failures.Load(); n != 0 || sent.Load() < 10 {
		t.Fatalf("%d of %d requests with the inline key failed during reloads", n, sent.Load())
	}
	if got := metric(t, s.base, "analytics_api_keys"); got != 3 {
		t.Fatalf("analytics_api_keys = %v, want 3", got)
	}
	if got := metric(t, s.base, `analytics_api_keys_reloads_total{result="ok"}`); got != 2 {
		t.Fatalf("ok reloads = %v, want 2", got)
	}
}

// TestSIGHUPReloadsKeys sends SIGHUP to this test process, which runs the
// server: the server reloads API_KEYS_FILE (polling is off here) and
// keeps running, where the default action would end the process.
func TestSIGHUPReloadsKeys(t *testing.T) {
	t.Parallel()
	old, fresh := newKey(t, auth.ScopeIngest), newKey(t, auth.ScopeIngest)
	path := filepath.Join(t.TempDir(), "keys")
	writeKeys(t, path, old.entry)
	s := startServer(t, map[string]string{"API_KEYS_FILE": path, "API_KEYS_RELOAD_INTERVAL": "0"})
	u := s.base + "/api/v1/events"
	at := time.Now().Add(-time.Minute)
	if r := do(t, "POST", u, old.token, "application/json", batch(1, at)); r.code != 202 {
		t.Fatalf("before: %d %s", r.code, r.raw)
	}
	writeKeys(t, path, fresh.entry)
	time.Sleep(200 * time.Millisecond)
	if r := do(t, "POST", u, fresh.token, "application/json", batch(1, at)); r.code != 401 {
		t.Fatalf("with polling off, the new key works before SIGHUP: %d", r.code)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := do(t, "POST", u, fresh.token, "application/json", batch(1, at))
		if r.code == 202 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after SIGHUP the new key gets %d\n%s", r.code, s.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if r := do(t, "POST", u, old.token, "application/json", batch(1, at)); r.code != 401 {
		t.Fatalf("the old key after SIGHUP: %d", r.code)
	}
	if !strings.Contains(s.logs.String(), "trigger=hangup") {
		t.Fatalf("the reload does not say SIGHUP caused it:\n%s", s.logs)
	}
}
