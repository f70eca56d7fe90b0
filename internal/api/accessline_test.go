package api

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"
)

// TestAccessLineMatchesSlog: the hand-formatted access line is byte for
// byte what slog's JSONHandler and TextHandler write for the same record,
// and a line with a value either would escape or quote is left to slog.
func TestAccessLineMatchesSlog(t *testing.T) {
	ctx := context.Background()
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	type line struct {
		at                              time.Time
		level                           slog.Level
		id, method, route, path, remote string
		status                          int
		elapsed                         time.Duration
	}
	lines := []line{
		{time.Date(2026, 11, 27, 4, 42, 35, 959123456, time.UTC), slog.LevelInfo, "5c65f42cc4ef4f94", "GET", "/api/v1/analytics/summary", "/api/v1/analytics/summary", "127.0.0.1:5555", 200, 1234567 * time.Nanosecond},
		{time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), slog.LevelError, "x", "POST", "unmatched", "/api/v1/events/<&>", "[::1]:80", 503, 2 * time.Second},
		{time.Date(2026, 6, 1, 12, 0, 0, 100, berlin), slog.LevelInfo, "a-b_c", "HEAD", "/health", "/health", "10.0.0.1:1", 304, 0},
	}
	for _, json := range []bool{true, false} {
		for _, l := range lines {
			var want bytes.Buffer
			var h slog.Handler = slog.NewTextHandler(&want, nil)
			if json {
				h = slog.NewJSONHandler(&want, nil)
			}
			rec := slog.NewRecord(l.at, l.level, "request", 0)
			rec.AddAttrs(slog.String("request_id", l.id), slog.String("method", l.method), slog.String("route", l.route),
				slog.String("path", l.path), slog.Int("status", l.status), slog.Duration("duration", l.elapsed), slog.String("remote", l.remote))
			if err := h.Handle(ctx, rec); err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			a := &accessLog{log: slog.New(h), sample: 1, out: &got, json: json}
			if !a.write(ctx, l.at, l.level, l.id, l.method, l.route, l.path, l.status, l.elapsed, l.remote) {
				t.Fatalf("json=%v: %+v was not written by hand", json, l)
			}
			if got.String() != want.String() {
				t.Fatalf("json=%v:\nby hand %q\nslog    %q", json, got.String(), want.String())
			}
		}
	}
	// What slog escapes or quotes is slog's to write.
	for _, c := range []struct {
		json bool
		path string
	}{{true, `/a"b`}, {true, `/a\b`}, {true, "/caf\u00e9"}, {true, "/a\x01"}, {false, "/a b"}, {false, "/a=b"}, {false, ""}} {
		var out bytes.Buffer
		a := &accessLog{log: slog.New(slog.NewTextHandler(&out, nil)), sample: 1, out: &out, json: c.json}
		if a.write(ctx, time.Now(), slog.LevelInfo, "id", "GET", "/r", c.path, 200, time.Millisecond, "1.2.3.4:5") {
			t.Fatalf("json=%v path %q was written by hand", c.json, c.path)
		}
	}
	// Below the handler's level: dropped, as slog would.
	var out bytes.Buffer
	a := &accessLog{log: slog.New(slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: slog.LevelWarn})), sample: 1, out: &out, json: true}
	if !a.write(ctx, time.Now(), slog.LevelInfo, "id", "GET", "/r", "/p", 200, time.Millisecond, "1.2.3.4:5") || out.Len() != 0 {
		t.Fatalf("an info line under LOG_LEVEL=warn: %q", out.String())
	}
}
