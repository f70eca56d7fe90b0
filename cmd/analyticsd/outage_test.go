package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/liveanalytics/analyticsd/internal/testenv"
)

// liveSummary is what these tests read of a summary (event or answer).
type liveSummary struct {
	Stale      bool   `json:"stale"`
	Cached     bool   `json:"cached"`
	ComputedAt string `json:"computedAt"`
	Data       struct {
		TotalEvents int64 `json:"totalEvents"`
	} `json:"data"`
}

// getSummary reads a summary answer with its headers.
func getSummary(t *testing.T, u string) (int, http.Header, liveSummary) {
	t.Helper()
	var b liveSummary
	code, h := getJSON(t, u, &b)
	return code, h, b
}

// TestStreamDuringPostgresOutage: through the real HTTP edge, with
// PostgreSQL cut, a stream's client hears a status "delayed" within two
// intervals of its last summary and one every interval after; the summary
// endpoint answers the live range with the last snapshot marked stale;
// a stream opened during the outage gets that snapshot (unless its
// Last-Event-ID has it) and the status; after the outage, a fresh summary
// then a status "ok".
func TestStreamDuringPostgresOutage(t *testing.T) {
	t.Parallel()
	for _, detach := range []string{"true", "false"} {
		t.Run("detach="+detach, func(t *testing.T) {
			t.Parallel()
			testStreamDuringOutage(t, detach)
		})
	}
}

func testStreamDuringOutage(t *testing.T, detach string) {
	const step = time.Second
	direct := testenv.PostgresURL(t)
	u, _ := url.Parse(direct)
	proxy := testenv.NewProxy(t, u.Host)
	u.Host = proxy.Addr
	s := startServer(t, map[string]string{"DATABASE_URL": u.String(), "REFRESH_INTERVAL": "1s", "STREAM_DETACH": detach})
	execSQL(t, direct, `INSERT INTO events (user_id, event_type, created_at)
		SELECT 'u' || (g % 5000), 'page_view', now() - interval '10 minutes' FROM generate_series(1, 23456) g`)
	const live = "/api/analytics/stream?from=now-1h&to=now"
	liveSummaryURL := s.base + "/api/analytics/summary?from=now-1h&to=now"

	c := openStream(t, s.base+live, "")
	var last liveSummary
	var lastEv sseEvent
	for range 2 {
		ev, ok := c.next(t, 10*step)
		if !ok || ev.event != "summary" {
			t.Fatalf("healthy: %+v", ev)
		}
		last, lastEv = testenv.Decode[liveSummary](t, ev.data), ev
		if last.Stale || last.Data.TotalEvents != 23456 {
			t.Fatalf("healthy summary: %s", ev.data)
		}
		testenv.Millis(t, last.ComputedAt)
	}
	if code, _, b := getSummary(t, liveSummaryURL); code != 200 || b.Stale || b.ComputedAt == "" {
		t.Fatalf("summary, healthy: %d %+v", code, b)
	}

	proxy.Cut()
	cut := time.Now()
	prev := lastEv.at
	timeout := time.After(10 * step)
	// Three statuses in a row saying the computation failed. Before them
	// may come what was under way at the cut on a loaded machine: a
	// summary computed just before it, a "refresh_overdue" for a slow
	// refresh and the "ok" when it lands.
	for statuses := 0; statuses < 3; {
		ev, ok := c.nextNamed(t, timeout)
		if !ok {
			t.Fatalf("the stream went silent during the outage (%d statuses)", statuses)
		}
		if gap := ev.at.Sub(prev); gap > 2*step {
			t.Fatalf("%v without an event before %+v", gap, ev)
		}
		prev = ev.at
		if ev.event == "summary" {
			last, lastEv = testenv.Decode[liveSummary](t, ev.data), ev
			statuses = 0
			continue
		}
		st := testenv.Decode[testenv.Status](t, ev.data)
		if ev.event != "status" || ev.id != "" {
			t.Fatalf("during the outage: %+v, want a status without id", ev)
		}
		if st.State == "ok" {
			statuses = 0
			continue
		}
		if st.State != "delayed" || st.ComputedAt == nil || *st.ComputedAt != last.ComputedAt || testenv.Millis(t, st.Since).After(ev.at) ||
			st.Reason != "storage_unavailable" && st.Reason != "refresh_overdue" {
			t.Fatalf("during the outage: %+v, want a status delayed with the last summary's computedAt %s", ev, last.ComputedAt)
		}
		if st.Reason == "storage_unavailable" {
			statuses++
		}
	}

	if n := metric(t, s.base, `analytics_stream_delayed_intervals_total{reason="storage_unavailable"}`); n < 3 {
		t.Errorf("analytics_stream_delayed_intervals_total{reason=storage_unavailable} = %v after 3 statuses", n)
	}

	// The summary endpoint: the live range's last snapshot, stale, never
	// confirmed by an ETag; a range with no snapshot is a 503.
	code, h, b := getSummary(t, liveSummaryURL)
	if code != 200 || !b.Stale || b.ComputedAt != last.ComputedAt || b.Data.TotalEvents != 23456 || h.Get("ETag") != "" || h.Get("Cache-Control") != "no-cache" {
		t.Fatalf("summary of the live range during the outage: %d %+v %v", code, b, h)
	}
	for _, q := range []string{"from=now-7h&to=now", "from=2023-01-01T00:00:00Z&to=2023-02-01T00:00:00Z"} {
		var e summaryBody
		if code, _ := getJSON(t, s.base+"/api/analytics/summary?"+q, &e); code != 503 || e.Error == nil || e.Error.Code != "unavailable" {
			t.Fatalf("%s without a snapshot during the outage: %d %+v", q, code, e.Error)
		}
	}

	// A stream opened now: the stale snapshot and the status; with the
	// snapshot's id as Last-Event-ID, the status only.
	fresh := openStream(t, s.base+live, "")
	ev, ok := fresh.nextNamed(t, time.After(step))
	if sum := testenv.Decode[liveSummary](t, ev.data); !ok || ev.event != "summary" || ev.id != lastEv.id || !sum.Stale || sum.ComputedAt != last.ComputedAt {
		t.Fatalf("a new stream during the outage: %+v, want the stale snapshot %s", ev, lastEv.id)
	}
	if ev, ok = fresh.nextNamed(t, time.After(step)); !ok || ev.event != "status" || testenv.Decode[testenv.Status](t, ev.data).State != "delayed" {
		t.Fatalf("a new stream during the outage, second event: %+v", ev)
	}
	resumed := openStream(t, s.base+live, lastEv.id)
	if ev, ok = resumed.nextNamed(t, time.After(step)); !ok || ev.event != "status" {
		t.Fatalf("a reconnect with Last-Event-ID %s during the outage: %+v, want the status only", lastEv.id, ev)
	}

	proxy.Heal()
	for i, c := range []*sseConn{c, fresh, resumed} {
		timeout := time.After(20 * step)
		for {
			ev, ok = c.nextNamed(t, timeout)
			if !ok {
				t.Fatalf("stream %d: no summary after the outage", i)
			}
			if ev.event == "summary" {
				break
			}
			if st := testenv.Decode[testenv.Status](t, ev.data); ev.event != "status" || st.State != "delayed" {
				t.Fatalf("stream %d before recovery: %+v", i, ev)
			}
		}
		if sum := testenv.Decode[liveSummary](t, ev.data); sum.Stale || !testenv.Millis(t, sum.ComputedAt).After(cut) {
			t.Fatalf("stream %d, the first summary after the outage: %s", i, ev.data)
		}
		if ev, ok = c.nextNamed(t, time.After(step)); !ok || ev.event != "status" || ev.data != `{"state":"ok"}` {
			t.Fatalf("stream %d after the fresh summary: %+v, want status ok", i, ev)
		}
	}
	if code, h, b := getSummary(t, liveSummaryURL); code != 200 || b.Stale || h.Get("ETag") == "" {
		t.Fatalf("summary after the outage: %d %+v", code, b)
	}
}

// refusedStream opens a stream as an EventSource would (Accept:
// text/event-stream) from client hc and reads it to its end, which must
// come by itself: status, content type, the retry delay, the refused
// event's error code.
func refusedStream(t *testing.T, hc *http.Client, u string) (status int, contentType string, retry time.Duration, code string) {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body) // the client's Timeout bounds it: the stream must close
	if err != nil {
		t.Fatalf("%s: the refused stream did not end: %v (%q)", u, err, body)
	}
	var event string
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ": ")
		switch k {
		case "retry":
			ms, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("retry %q", v)
			}
			retry = time.Duration(ms) * time.Millisecond
		case "event":
			event = v
		case "data":
			if event != "refused" {
				t.Fatalf("%s: data in event %q: %s", u, event, body)
			}
			var e struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			if err := json.Unmarshal([]byte(v), &e); err != nil || e.Error.Message == "" {
				t.Fatalf("refused data %s: %v", v, err)
			}
			code = e.Error.Code
		case "id":
			t.Fatalf("a refusal carries no id: %s", body)
		}
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), retry, code
}

// TestStreamRefusalsAreRetried: over every stream limit, a client that
// accepts text/event-stream gets a 200 stream with a retry delay
// (jittered, 3 to 6 s) and a "refused" event, which then ends, so that a
// standard EventSource reconnects instead of failing for good; other
// clients get the JSON 429/503. The rejections are counted either way.
func TestStreamRefusalsAreRetried(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"STREAM_MAX_CLIENTS": "4", "STREAM_MAX_RANGES": "2", "STREAM_MAX_RANGES_PER_ADDR": "2", "STREAM_HEARTBEAT": "1s"})
	a, b := clientFrom(t, "127.0.0.2"), clientFrom(t, "127.0.0.3")
	u := func(from string) string { return s.base + "/api/v1/analytics/stream?from=" + from + "&to=now" }
	hold := func(hc *http.Client, from string) {
		t.Helper()
		if code, _ := openFrom(t, hc, u(from)); code != 200 {
			t.Fatalf("%s: %d", from, code)
		}
	}
	hold(a, "now-1h")
	hold(a, "now-2h") // a is on its 2 ranges, the instance has its 2
	hold(b, "now-1h")
	retries := map[time.Duration]bool{}
	refused := func(what string, hc *http.Client, from, want string) {
		t.Helper()
		for range 2 {
			status, ct, retry, code := refusedStream(t, hc, u(from))
			if status != 200 || ct != "text/event-stream" || retry < 3*time.Second || retry >= 6*time.Second || code != want {
				t.Fatalf("over %s: %d %q retry %v code %q; want 200 text/event-stream, retry in [3s, 6s), %q", what, status, ct, retry, code, want)
			}
			retries[retry] = true
		}
	}
	refused("STREAM_MAX_RANGES_PER_ADDR", a, "now-3h", "rate_limited")
	refused("STREAM_MAX_RANGES", b, "now-3h", "unavailable")
	// Without Accept: text/event-stream, the JSON error as before.
	if resp := status(t, b, "GET", u("now-3h"), ""); resp.StatusCode != 503 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("over the range limit without Accept: %d %v", resp.StatusCode, resp.Header)
	}
	hold(clientFrom(t, "127.0.0.4"), "now-2h") // the 4th client
	refused("STREAM_MAX_CLIENTS", clientFrom(t, "127.0.0.5"), "now-1h", "unavailable")
	if len(retries) < 2 {
		t.Errorf("six refusals all said retry %v: no jitter", retries)
	}
	for reason, want := range map[string]float64{"clients": 2, "ranges": 3, "ranges_per_addr": 2} {
		if got := metric(t, s.base, `analytics_stream_rejected_total{reason="`+reason+`"}`); got != want {
			t.Errorf(`analytics_stream_rejected_total{reason=%q} = %v, want %v`, reason, got, want)
		}
	}
}

// TestShutdownTellsStreamsToReconnect: on shutdown each stream's last
// frame is a retry delay and a "refused" event, then it ends.
func TestShutdownTellsStreamsToReconnect(t *testing.T) {
	t.Parallel()
	for _, detach := range []string{"true", "false"} {
		t.Run("detach="+detach, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, map[string]string{"REFRESH_INTERVAL": "200ms", "STREAM_DETACH": detach})
			c := openStream(t, s.base+"/api/analytics/stream?from=now-1h&to=now", "")
			if _, ok := c.next(t, 10*time.Second); !ok {
				t.Fatal("no first snapshot")
			}
			s.cancel()
			var last sseEvent
			var retried bool
			timeout := time.After(10 * time.Second)
		read:
			for {
				select {
				case ev, open := <-c.events:
					if !open {
						break read
					}
					retried = retried || ev.retry != ""
					if ev.data != "" {
						last = ev
					}
				case <-timeout:
					t.Fatal("the stream did not end at shutdown")
				}
			}
			if !retried || last.event != "refused" || !strings.Contains(last.data, `"code":"unavailable"`) {
				t.Fatalf("the last event before shutdown: %+v (a retry line: %v)", last, retried)
			}
		})
	}
}
