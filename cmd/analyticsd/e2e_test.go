package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/liveanalytics/analyticsd/internal/testenv"
	"github.com/liveanalytics/analyticsd/summary"
)

// server is a real analyticsd started through run(), as the binary does.
type server struct {
	base   string
	dbURL  string
	cancel context.CancelFunc
	done   chan error
	logs   *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// listeningPort finds the port in the server's "listening" log line.
var listeningPort = regexp.MustCompile(`msg=listening addr=\S*:(\d+)`)

// startServer runs analyticsd serve on a fresh schema and Redis prefix.
// env entries override the defaults. The server binds a port of its
// choosing (PORT=0) and the test reads it from the log, so no other
// socket can take the port between choosing and binding it.
func startServer(t *testing.T, env map[string]string, args ...string) *server {
	t.Helper()
	vars := map[string]string{
		"PORT":         "0",
		"DATABASE_URL": testenv.PostgresURL(t),
		"REDIS_URL":    testenv.RedisURL(t),
		"REDIS_PREFIX": testenv.KeyPrefix(t), // its keys are deleted when the test ends
		"LOG_FORMAT":   "text",
		// Tests hammer the API from one address; the rate-limit tests
		// set their own limits.
		"RATE_LIMIT_ADDR": "0",
	}
	for k, v := range env {
		vars[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	host := "127.0.0.1"
	if h := vars["LISTEN_ADDR"]; h != "" {
		host = h
	}
	s := &server{dbURL: vars["DATABASE_URL"], cancel: cancel, done: make(chan error, 1), logs: &syncBuffer{}}
	go func() {
		s.done <- run(ctx, append([]string{"serve"}, args...), func(k string) string { return vars[k] }, io.Discard, s.logs)
	}()
	t.Cleanup(func() { s.stop(t) })
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := errors.New("not listening yet")
		if s.base == "" {
			if m := listeningPort.FindStringSubmatch(s.logs.String()); m != nil {
				s.base = "http://" + net.JoinHostPort(host, m[1])
			}
		}
		if s.base != "" {
			var resp *http.Response
			if resp, err = http.Get(s.base + "/health"); err == nil {
				resp.Body.Close()
				return s
			}
		}
		select {
		case err := <-s.done:
			s.done <- err
			t.Fatalf("server exited at start: %v\n%s", err, s.logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not answer: %v\n%s", err, s.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *server) stop(t *testing.T) {
	s.cancel()
	select {
	case err := <-s.done:
		s.done <- err
		if err != nil {
			t.Errorf("server exit: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Error("server did not shut down")
	}
}

type summaryBody struct {
	Data   map[string]json.RawMessage `json:"data"`
	Cached bool                       `json:"cached"`
	Period summary.Period             `json:"period"`
	Error  *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// healthBody is GET /health's answer.
type healthBody struct {
	Status string `json:"status"`
	Checks map[string]struct {
		Status    string  `json:"status"`
		LatencyMs float64 `json:"latencyMs"`
		Error     string  `json:"error,omitempty"`
	} `json:"checks"`
}

type parsedSummary struct {
	Total, Users int64
	ByType       map[string]int64
}

func (b summaryBody) parse(t *testing.T) parsedSummary {
	t.Helper()
	var p parsedSummary
	if err := json.Unmarshal(b.Data["totalEvents"], &p.Total); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b.Data["uniqueUsers"], &p.Users); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b.Data["eventsByType"], &p.ByType); err != nil {
		t.Fatal(err)
	}
	return p
}

func getJSON(t *testing.T, u string, into any) (int, http.Header) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s: content type %q, body %s", u, ct, body)
	}
	if into != nil {
		if err := json.Unmarshal(body, into); err != nil {
			t.Fatalf("%s: %v: %s", u, err, body)
		}
	}
	return resp.StatusCode, resp.Header
}

func (s *server) summary(t *testing.T, from, to string) (int, summaryBody) {
	t.Helper()
	var b summaryBody
	code, _ := getJSON(t, s.base+"/api/analytics/summary?from="+url.QueryEscape(from)+"&to="+url.QueryEscape(to), &b)
	return code, b
}

func TestSummaryEndpointCachesAndValidates(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	execSQL(t, s.dbURL, `INSERT INTO events (user_id, event_type, created_at) VALUES
		('u1','page_view','2024-01-01T00:00:00Z'), ('u2','click','2024-01-01T12:00:00Z'),
		('u1','click','2024-01-01T23:59:59.999Z'), ('u3','purchase','2024-01-02T00:00:00.001Z')`)

	code, b := s.summary(t, "2024-01-01T00:00:00Z", "2024-01-01T23:59:59.999Z")
	if code != 200 || b.Cached {
		t.Fatalf("first: %d %+v", code, b)
	}
	if got := b.parse(t); got.Total != 3 || got.Users != 2 || got.ByType["click"] != 2 || got.ByType["page_view"] != 1 {
		t.Fatalf("got %+v", got)
	}
	if b.Period.From != "2024-01-01T00:00:00.000Z" || b.Period.To != "2024-01-01T23:59:59.999Z" {
		t.Fatalf("period %+v", b.Period)
	}
	_, b = s.summary(t, "2024-01-01T02:00:00+02:00", "2024-01-01T23:59:59.999Z")
	if !b.Cached {
		t.Fatal("the same instants with another offset must hit the cache")
	}
	var v1 summaryBody
	getJSON(t, s.base+"/api/v1/analytics/summary?from=2024-01-01T00:00:00Z&to=2024-01-01T23:59:59.999Z", &v1)
	if !v1.Cached || v1.parse(t).Total != 3 {
		t.Fatalf("v1: %+v", v1)
	}

	bad := []struct{ query, code, param string }{
		{"", "missing_parameter", "from"},
		{"from=2024-01-01T00:00:00Z", "missing_parameter", "to"},
		{"from=yesterday&to=now", "invalid_parameter", "from"},
		{"from=now-1h&to=2024-02-30T00:00:00Z", "invalid_parameter", "to"},
		{"from=2024-02-01T00:00:00Z&to=2024-01-01T00:00:00Z", "invalid_range", "from"},
		{"from=2000-01-01T00:00:00Z&to=2024-01-01T00:00:00Z", "range_too_large", "to"},
		{"from=now-1h&to=now%3Cscript%3E", "invalid_parameter", "to"},
	}
	for _, c := range bad {
		var e summaryBody
		status, _ := getJSON(t, s.base+"/api/analytics/summary?"+c.query, &e)
		if status != 400 || e.Error == nil || e.Error.Code != c.code || !strings.Contains(e.Error.Message, c.param) {
			t.Errorf("%q: status %d body %+v, want 400 %s naming %s", c.query, status, e.Error, c.code, c.param)
		}
		if e.Error != nil && strings.Contains(e.Error.Message, "<script>") {
			t.Errorf("%q: message echoes input: %s", c.query, e.Error.Message)
		}
	}
	var nf summaryBody
	if status, _ := getJSON(t, s.base+"/api/nope", &nf); status != 404 || nf.Error == nil || nf.Error.Code != "not_found" {
		t.Errorf("unknown API path: %d %+v", status, nf.Error)
	}
	resp, err := http.Post(s.base+"/api/analytics/summary?from=now-1h&to=now", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Errorf("POST summary: %d", resp.StatusCode)
	}
}

func TestHealthOkDegradedDown(t *testing.T) {
	t.Parallel()
	redisSrv := testenv.StartRedis(t)
	s := startServer(t, map[string]string{"REDIS_URL": redisSrv.URL()})
	var h healthBody
	if code, _ := getJSON(t, s.base+"/health", &h); code != 200 || h.Status != "ok" || h.Checks["postgres"].Status != "ok" || h.Checks["redis"].Status != "ok" {
		t.Fatalf("healthy: %d %+v", code, h)
	}
	redisSrv.Stop()
	if code, _ := getJSON(t, s.base+"/health", &h); code != 200 || h.Status != "degraded" || h.Checks["redis"].Status != "down" {
		t.Fatalf("redis down: %d %+v", code, h)
	}
	// Summaries keep coming from PostgreSQL.
	if code, b := s.summary(t, "now-1h", "now"); code != 200 || b.Cached {
		t.Fatalf("summary with redis down: %d %+v", code, b)
	}
	redisSrv.Start()
	deadline := time.Now().Add(10 * time.Second)
	for {
		getJSON(t, s.base+"/health", &h)
		if h.Status == "ok" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("health did not recover: %+v", h)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestPostgresDown(t *testing.T) {
	t.Parallel()
	direct := testenv.PostgresURL(t)
	u, _ := url.Parse(direct)
	proxy := testenv.NewProxy(t, u.Host)
	u.Host = proxy.Addr
	s := startServer(t, map[string]string{"DATABASE_URL": u.String()})
	execSQL(t, direct, `INSERT INTO events (user_id, event_type, created_at) VALUES ('u1','page_view','2024-01-01T10:00:00Z')`)
	if code, b := s.summary(t, "2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z"); code != 200 || b.parse(t).Total != 1 {
		t.Fatalf("before the outage: %d %+v", code, b)
	}

	proxy.Cut()
	var h healthBody
	if code, _ := getJSON(t, s.base+"/health", &h); code != 503 || h.Status != "down" || h.Checks["postgres"].Status != "down" {
		t.Fatalf("health with PostgreSQL down: %d %+v", code, h)
	}
	// A cached range is still answered.
	if code, b := s.summary(t, "2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z"); code != 200 || !b.Cached || b.parse(t).Total != 1 {
		t.Fatalf("cached range during the outage: %d %+v", code, b)
	}
	// Anything else is a 503 that leaks nothing.
	var e summaryBody
	code, hdr := getJSON(t, s.base+"/api/analytics/summary?from=2023-01-01T00:00:00Z&to=2023-02-01T00:00:00Z", &e)
	if code != 503 || e.Error == nil || e.Error.Code != "unavailable" || hdr.Get("Retry-After") == "" {
		t.Fatalf("uncached range during the outage: %d %+v", code, e.Error)
	}
	if strings.Contains(e.Error.Message, "127.0.0.1") || strings.Contains(e.Error.Message, "pgx") || strings.Contains(e.Error.Message, "dial") {
		t.Fatalf("503 leaks internals: %s", e.Error.Message)
	}
	if !strings.Contains(s.logs.String(), "summary failed") {
		t.Fatal("the fault is not logged")
	}

	proxy.Heal()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if code, _ := getJSON(t, s.base+"/health", &h); code == 200 && h.Status == "ok" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("did not recover: %+v", h)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, _ := s.summary(t, "2023-01-01T00:00:00Z", "2023-02-01T00:00:00Z"); code != 200 {
		t.Fatalf("after recovery: %d", code)
	}
}

// TestGroundTruth compares the endpoint with direct SQL over the same rows
// for many random ranges: sub-second edges, ends exactly on events, empty
// ranges and ranges before the first event.
func TestGroundTruth(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	ctx := context.Background()
	conn := pgxConnect(t, s.dbURL)
	defer conn.Close(ctx)

	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	types := []string{"page_view", "click", "purchase", "signup"}
	var stamps []time.Time
	rows := make([][]any, 0, 5000)
	for i := range 5000 {
		// Clustered instants with millisecond and microsecond precision,
		// and duplicates, over three days.
		ts := base.Add(time.Duration(rng.Int64N(int64(72 * time.Hour)))).Truncate(time.Microsecond)
		if i%7 == 0 {
			ts = ts.Truncate(time.Second)
		}
		if i%11 == 0 && len(stamps) > 0 {
			ts = stamps[rng.IntN(len(stamps))]
		}
		stamps = append(stamps, ts)
		user := fmt.Sprintf("user-%d", int(rng.ExpFloat64()*40))
		rows = append(rows, []any{user, types[rng.IntN(len(types))], ts})
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"events"}, []string{"user_id", "event_type", "created_at"}, pgx.CopyFromRows(rows)); err != nil {
		t.Fatal(err)
	}

	instant := func() time.Time {
		switch rng.IntN(5) {
		case 0: // exactly an event
			return stamps[rng.IntN(len(stamps))]
		case 1: // one microsecond beside an event
			return stamps[rng.IntN(len(stamps))].Add(time.Duration(rng.IntN(3)-1) * time.Microsecond)
		case 2: // before the first event
			return base.Add(-time.Duration(rng.Int64N(int64(48 * time.Hour)))).Truncate(time.Microsecond)
		default: // anywhere, millisecond precision
			return base.Add(time.Duration(rng.Int64N(int64(80 * time.Hour)))).Truncate(time.Millisecond)
		}
	}
	for i := range 150 {
		a, b := instant(), instant()
		if i%10 == 0 {
			b = a // a single instant
		}
		if b.Before(a) {
			a, b = b, a
		}
		// Spell the instants with random offsets: the answer must not care.
		zone := time.FixedZone("", (rng.IntN(27)-12)*3600)
		from, to := a.In(zone).Format(time.RFC3339Nano), b.In(zone).Format(time.RFC3339Nano)
		code, body := s.summary(t, from, to)
		if code != 200 {
			t.Fatalf("%s..%s: status %d %+v", from, to, code, body.Error)
		}
		got := body.parse(t)
		want := groundTruth(t, conn, a, b)
		if got.Total != want.Total || got.Users != want.Users || !equalMaps(got.ByType, want.ByType) {
			t.Fatalf("%s..%s: endpoint %+v, SQL %+v", from, to, got, want)
		}
	}
}

func groundTruth(t *testing.T, conn *pgx.Conn, from, to time.Time) parsedSummary {
	t.Helper()
	ctx := context.Background()
	var p parsedSummary
	err := conn.QueryRow(ctx, `SELECT count(*), count(DISTINCT user_id) FROM events WHERE created_at BETWEEN $1 AND $2`, from, to).Scan(&p.Total, &p.Users)
	if err != nil {
		t.Fatal(err)
	}
	p.ByType = map[string]int64{}
	rows, err := conn.Query(ctx, `SELECT event_type, count(*) FROM events WHERE created_at BETWEEN $1 AND $2 GROUP BY 1`, from, to)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		var n int64
		if err := rows.Scan(&k, &n); err != nil {
			t.Fatal(err)
		}
		p.ByType[k] = n
	}
	return p
}

func equalMaps(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func pgxConnect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

func execSQL(t *testing.T, dsn, sql string) {
	t.Helper()
	conn := pgxConnect(t, dsn)
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), sql); err != nil {
		t.Fatal(err)
	}
}

func TestNoMigrateRefusesAnOldSchema(t *testing.T) {
	t.Parallel()
	dbURL := testenv.PostgresURL(t)
	env := map[string]string{"DATABASE_URL": dbURL, "REDIS_URL": testenv.RedisURL(t), "PORT": freePort(t)}
	getenv := func(k string) string { return env[k] }
	err := run(context.Background(), []string{"serve", "--no-migrate"}, getenv, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "analyticsd migrate") {
		t.Fatalf("want a refusal that says to migrate, got %v", err)
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"migrate"}, getenv, &out, io.Discard); err != nil || !strings.Contains(out.String(), "applied") {
		t.Fatalf("migrate: %v %s", err, out.String())
	}
	// Now --no-migrate starts, and stops cleanly on cancel.
	s := startServer(t, map[string]string{"DATABASE_URL": dbURL}, "--no-migrate")
	if code, _ := getJSON(t, s.base+"/health", nil); code != 200 {
		t.Fatalf("health %d", code)
	}
}

func TestSeedCommand(t *testing.T) {
	t.Parallel()
	dbURL := testenv.PostgresURL(t)
	var out bytes.Buffer
	err := run(context.Background(), []string{"seed", "--events", "5000", "--days", "2", "--users", "50", "--types", "a:3,b:1", "--seed", "7"},
		func(k string) string { return map[string]string{"DATABASE_URL": dbURL}[k] }, &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "seeded 5000 events") {
		t.Fatalf("output: %s", out.String())
	}
	var n int
	conn := pgxConnect(t, dbURL)
	defer conn.Close(context.Background())
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM events WHERE event_type IN ('a','b')`).Scan(&n); err != nil || n != 5000 {
		t.Fatalf("rows %d %v", n, err)
	}
	err = run(context.Background(), []string{"seed", "--types", "Bad Type"}, func(string) string { return "" }, io.Discard, io.Discard)
	if err == nil || exitCode(err) != 2 {
		t.Fatalf("bad --types: %v", err)
	}
}

func TestSummaryETagAndMaxAge(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"REFRESH_INTERVAL": "5s"})
	get := func(url, inm string) *http.Response {
		req, _ := http.NewRequest("GET", url, nil)
		if inm != "" {
			req.Header.Set("If-None-Match", inm)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	live := s.base + "/api/analytics/summary?from=now-1h&to=now"
	first := get(live, "")
	etag := first.Header.Get("ETag")
	want := fmt.Sprintf(`"%d"`, time.Now().UnixMilli()/5000)
	if first.StatusCode != 200 || etag == "" {
		t.Fatalf("status %d etag %q", first.StatusCode, etag)
	}
	if etag != want && etag != fmt.Sprintf(`"%d"`, time.Now().UnixMilli()/5000-1) {
		t.Fatalf("etag %s is not the interval's version %s", etag, want)
	}
	maxAge, err := strconv.Atoi(strings.TrimPrefix(first.Header.Get("Cache-Control"), "max-age="))
	if err != nil || maxAge < 0 || maxAge > 5 {
		t.Fatalf("Cache-Control %q: want max-age up to the next refresh", first.Header.Get("Cache-Control"))
	}
	if r := get(live, etag); r.StatusCode != 304 && r.Header.Get("ETag") == etag {
		t.Fatalf("If-None-Match with the current version: %d", r.StatusCode)
	}
	if r := get(live, `"1"`); r.StatusCode != 200 {
		t.Fatalf("If-None-Match with an old version: %d", r.StatusCode)
	}
	past := get(s.base+"/api/analytics/summary?from=2024-01-01T00:00:00Z&to=2024-01-02T00:00:00Z", "")
	if r := get(s.base+"/api/analytics/summary?from=2024-01-01T00:00:00Z&to=2024-01-02T00:00:00Z", past.Header.Get("ETag")); r.StatusCode != 304 {
		t.Fatalf("past range with its ETag: %d", r.StatusCode)
	}
}
