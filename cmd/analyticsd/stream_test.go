package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

type sseEvent struct {
	id, event, data, comment, retry string
	at                              time.Time // when it was read
}

// sseConn reads events from one stream in a goroutine.
type sseConn struct {
	resp   *http.Response
	events chan sseEvent
}

func openStream(t *testing.T, url, lastID string) *sseConn {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Accept", "text/event-stream") // as every EventSource does
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	c := &sseConn{resp: resp, events: make(chan sseEvent, 100)}
	go func() {
		defer close(c.events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				ev.at = time.Now()
				c.events <- ev
				ev = sseEvent{}
			case strings.HasPrefix(line, ":"):
				ev.comment = strings.TrimSpace(line[1:])
			default:
				k, v, _ := strings.Cut(line, ": ")
				switch k {
				case "id":
					ev.id = v
				case "event":
					ev.event = v
				case "data":
					ev.data = v
				case "retry":
					ev.retry = v
				}
			}
		}
	}()
	return c
}

// next returns the next event that carries data, skipping heartbeats
// and status events (a loaded machine may delay a refresh enough for one).
func (c *sseConn) next(t *testing.T, within time.Duration) (sseEvent, bool) {
	t.Helper()
	timeout := time.After(within)
	for {
		ev, ok := c.nextNamed(t, timeout)
		if !ok || ev.event != "status" {
			return ev, ok
		}
	}
}

// nextNamed returns the next event that carries data, by the timeout.
func (c *sseConn) nextNamed(t *testing.T, timeout <-chan time.Time) (sseEvent, bool) {
	t.Helper()
	for {
		select {
		case ev, ok := <-c.events:
			if !ok {
				return sseEvent{}, false
			}
			if ev.data != "" {
				return ev, true
			}
		case <-timeout:
			return sseEvent{}, false
		}
	}
}

func TestStreamEndpoint(t *testing.T) {
	t.Parallel()
	for _, detach := range []string{"true", "false"} {
		t.Run("detach="+detach, func(t *testing.T) {
			t.Parallel()
			testStreamEndpoint(t, detach)
		})
	}
}

func testStreamEndpoint(t *testing.T, detach string) {
	s := startServer(t, map[string]string{"REFRESH_INTERVAL": "200ms", "STREAM_HEARTBEAT": "1s", "STREAM_DETACH": detach})
	execSQL(t, s.dbURL, `INSERT INTO events (user_id, event_type, created_at) VALUES ('u1','page_view', now() - interval '2 seconds'), ('u2','click','2024-01-01T10:00:00Z')`)

	var e summaryBody
	if code, _ := getJSON(t, s.base+"/api/analytics/stream?from=now&to=now-1h", &e); code != 400 || e.Error == nil || e.Error.Code != "invalid_range" {
		t.Fatalf("bad range: %d %+v", code, e.Error)
	}

	live := openStream(t, s.base+"/api/analytics/stream?from=now-1h&to=now", "")
	h := live.resp.Header
	if live.resp.StatusCode != 200 || h.Get("Content-Type") != "text/event-stream" || h.Get("Cache-Control") != "no-cache" || h.Get("X-Accel-Buffering") != "no" {
		t.Fatalf("status %d headers %v", live.resp.StatusCode, h)
	}
	if first := <-live.events; first.retry == "" {
		t.Fatalf("first frame must be the retry hint: %+v", first)
	}
	ev, ok := live.next(t, 2*time.Second)
	if !ok || ev.event != "summary" || ev.id == "" {
		t.Fatalf("initial snapshot: %+v", ev)
	}
	var body struct {
		Data struct {
			TotalEvents int64            `json:"totalEvents"`
			ByType      map[string]int64 `json:"eventsByType"`
		} `json:"data"`
		Period struct{ From, To string } `json:"period"`
	}
	if err := json.Unmarshal([]byte(ev.data), &body); err != nil || body.Data.TotalEvents != 1 || body.Period.To == "" {
		t.Fatalf("data %s (%v)", ev.data, err)
	}
	// Versions move with the refresh interval.
	prev, _ := strconv.ParseInt(ev.id, 10, 64)
	for range 3 {
		ev, ok = live.next(t, 2*time.Second)
		id, _ := strconv.ParseInt(ev.id, 10, 64)
		if !ok || id <= prev {
			t.Fatalf("next version after %d: %+v", prev, ev)
		}
		prev = id
	}
	// A new event shows up in the stream without asking.
	execSQL(t, s.dbURL, `INSERT INTO events (user_id, event_type, created_at) VALUES ('u3','purchase', now() - interval '1 second')`)
	deadline := time.Now().Add(3 * time.Second)
	for body.Data.ByType["purchase"] != 1 {
		ev, ok = live.next(t, time.Until(deadline))
		if !ok {
			t.Fatal("the inserted event never reached the stream")
		}
		body.Data.ByType = nil
		_ = json.Unmarshal([]byte(ev.data), &body)
	}

	// Past ranges are immutable: one snapshot, then heartbeats only.
	past := openStream(t, s.base+"/api/analytics/stream?from=2024-01-01T00:00:00Z&to=2024-01-02T00:00:00Z", "")
	pev, ok := past.next(t, 2*time.Second)
	if !ok {
		t.Fatal("no snapshot for a past range")
	}
	heartbeats := 0
	timeout := time.After(2500 * time.Millisecond)
loop:
	for {
		select {
		case ev := <-past.events:
			if ev.data != "" {
				t.Fatalf("past range sent a second snapshot: %+v", ev)
			}
			if ev.comment != "" {
				heartbeats++
			}
		case <-timeout:
			break loop
		}
	}
	if heartbeats == 0 {
		t.Fatal("no heartbeat on an idle stream")
	}
	// A reconnect that already has the current version gets no duplicate.
	again := openStream(t, s.base+"/api/analytics/stream?from=2024-01-01T00:00:00Z&to=2024-01-02T00:00:00Z", pev.id)
	if ev, ok := again.next(t, 1500*time.Millisecond); ok {
		t.Fatalf("duplicate after Last-Event-ID %s: %+v", pev.id, ev)
	}

	// Shutdown ends the streams and the server exits.
	s.cancel()
	select {
	case _, open := <-drain(live.events):
		if open {
			t.Fatal("stream still open")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("stream not closed by shutdown")
	}
	select {
	case err := <-s.done:
		s.done <- err
		if err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("server did not exit with streams open")
	}
}

// drain returns a channel that is closed when events is.
func drain(events chan sseEvent) chan sseEvent {
	out := make(chan sseEvent)
	go func() {
		for range events {
		}
		close(out)
	}()
	return out
}

// metric reads one unlabelled sample from /metrics.
func metric(t *testing.T, base, name string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

// TestStalledClientIsDroppedOthersOnTime opens a raw TCP stream that never
// reads (with a tiny receive window) next to a normal client.
func TestStalledClientIsDroppedOthersOnTime(t *testing.T) {
	t.Parallel()
	for _, detach := range []string{"true", "false"} {
		t.Run("detach="+detach, func(t *testing.T) {
			t.Parallel()
			testStalledClient(t, detach)
		})
	}
}

func testStalledClient(t *testing.T, detach string) {
	s := startServer(t, map[string]string{"REFRESH_INTERVAL": "100ms", "STREAM_WRITE_TIMEOUT": "300ms", "STREAM_DETACH": detach})
	// Thousands of event types make each snapshot ~60 KB, so the stalled
	// connection's buffers fill within a few intervals.
	execSQL(t, s.dbURL, `INSERT INTO events (user_id, event_type, created_at)
		SELECT 'u' || g, 'type_with_a_long_name_' || g, now() - interval '5 seconds' FROM generate_series(1, 3000) g`)
	path := "/api/analytics/stream?from=now-1h&to=now"

	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
	}}
	stalled, err := d.Dial("tcp", strings.TrimPrefix(s.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	if _, err := fmt.Fprintf(stalled, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path); err != nil {
		t.Fatal(err)
	}

	good := openStream(t, s.base+path, "")
	last := time.Now()
	var worst time.Duration
	deadline := time.Now().Add(10 * time.Second)
	for metric(t, s.base, "analytics_stream_slow_client_disconnects_total") < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the stalled client was never dropped")
		}
		if _, ok := good.next(t, 2*time.Second); !ok {
			t.Fatal("the reading client stopped receiving")
		}
		if gap := time.Since(last); gap > worst {
			worst = gap
		}
		last = time.Now()
	}
	// The write deadline is 300 ms: the reading client must never have
	// waited on the stalled one for that long on top of the interval.
	if worst > time.Second {
		t.Fatalf("the reading client waited %v between snapshots", worst)
	}
	for range 5 {
		if _, ok := good.next(t, 2*time.Second); !ok {
			t.Fatal("the reading client stopped after the drop")
		}
	}
	if n := metric(t, s.base, "analytics_stream_clients"); n != 1 {
		t.Fatalf("clients gauge %v after the drop, want 1", n)
	}
}
