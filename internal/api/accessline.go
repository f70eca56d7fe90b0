package api

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// The access log line, formatted by hand: what slog's JSONHandler or
// TextHandler writes for the record instrument logs, without slog's
// generic machinery (the caller's PC, the record's attribute list, the
// handler's attribute walk), which was the largest cost of a cached
// answer after the socket itself. TestAccessLineMatchesSlog holds the two
// byte for byte. A value that slog would escape or quote goes through slog.

var linePool = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// write writes one access line to a.out when it can do so exactly, and
// reports whether it did.
func (a *accessLog) write(ctx context.Context, now time.Time, level slog.Level, id, method, route, path string, status int, elapsed time.Duration, remote string) bool {
	if a.out == nil {
		return false
	}
	for _, s := range [...]string{id, method, route, path, remote} {
		if !plain(s, a.json) {
			return false
		}
	}
	if !a.log.Enabled(ctx, level) {
		return true // the handler would drop it
	}
	bp := linePool.Get().(*[]byte)
	b := appendAccessLine((*bp)[:0], a.json, now, level, id, method, route, path, status, elapsed, remote)
	_, _ = a.out.Write(b) // a log write that fails has nowhere to be reported
	*bp = b
	linePool.Put(bp)
	return true
}

// plain reports whether s is written as is: printable ASCII that neither
// handler escapes (JSON: no '"' or '\\' or '<', '>', '&' are fine in
// slog's JSON; text: not empty, no space, '=' or '"').
func plain(s string, json bool) bool {
	if !json && s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c >= utf8.RuneSelf || c == '"' || c == '\\' {
			return false
		}
		if !json && c == '=' {
			return false
		}
	}
	return true
}

func appendAccessLine(b []byte, json bool, now time.Time, level slog.Level, id, method, route, path string, status int, elapsed time.Duration, remote string) []byte {
	if json {
		b = append(b, `{"time":"`...)
		b = now.AppendFormat(b, time.RFC3339Nano)
		b = append(b, `","level":"`...)
		b = append(b, level.String()...)
		b = append(b, `","msg":"request","request_id":"`...)
		b = append(b, id...)
		b = append(b, `","method":"`...)
		b = append(b, method...)
		b = append(b, `","route":"`...)
		b = append(b, route...)
		b = append(b, `","path":"`...)
		b = append(b, path...)
		b = append(b, `","status":`...)
		b = strconv.AppendInt(b, int64(status), 10)
		b = append(b, `,"duration":`...)
		b = strconv.AppendInt(b, int64(elapsed), 10)
		b = append(b, `,"remote":"`...)
		b = append(b, remote...)
		return append(b, "\"}\n"...)
	}
	b = append(b, "time="...)
	b = now.Truncate(time.Millisecond).AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	b = append(b, " level="...)
	b = append(b, level.String()...)
	b = append(b, " msg=request request_id="...)
	b = append(b, id...)
	b = append(b, " method="...)
	b = append(b, method...)
	b = append(b, " route="...)
	b = append(b, route...)
	b = append(b, " path="...)
	b = append(b, path...)
	b = append(b, " status="...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, " duration="...)
	b = append(b, elapsed.String()...)
	b = append(b, " remote="...)
	b = append(b, remote...)
	return append(b, '\n')
}
