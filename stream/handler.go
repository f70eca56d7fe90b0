package stream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/liveanalytics/analyticsd/internal/httpx"
	"github.com/liveanalytics/analyticsd/summary"
)

// Handler serves GET /api/analytics/stream as Server-Sent Events.
type Handler struct {
	b            *Broker
	parser       summary.RangeParser
	heartbeat    time.Duration
	writeTimeout time.Duration
	retry        time.Duration
	sendBuffer   int
}

type connKey struct{}

// ConnContext is the http.Server's ConnContext: it lets the handler reach
// the TCP connection of a stream to size its kernel send buffer.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// streamSendBuffer bounds the kernel's send buffer of a stream
// connection. A snapshot is about a kilobyte, so a small buffer costs no
// throughput, keeps memory per idle client low, and makes a client that
// stopped reading hit the write deadline within a few snapshots instead of
// after megabytes of autotuned buffer.
const streamSendBuffer = 16 << 10

// NewHandler builds the SSE handler: heartbeat comments on idle streams,
// a deadline on every write.
func NewHandler(b *Broker, parser summary.RangeParser, heartbeat, writeTimeout time.Duration) *Handler {
	if heartbeat <= 0 {
		heartbeat = 15 * time.Second
	}
	if writeTimeout <= 0 {
		writeTimeout = 5 * time.Second
	}
	return &Handler{b: b, parser: parser, heartbeat: heartbeat, writeTimeout: writeTimeout, retry: 3 * time.Second, sendBuffer: streamSendBuffer}
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	spec, ok := summary.ParseSpecRequest(w, req, h.parser)
	if !ok {
		return
	}
	addr, _, _ := net.SplitHostPort(req.RemoteAddr)
	c, err := h.b.Subscribe(req.Context(), spec, addr)
	if err != nil {
		// EventSource retries a 503 only by reconnecting later; Retry-After
		// tells well-behaved clients and proxies how long to back off.
		w.Header().Set("Retry-After", "10")
		msg := "the server is shutting down; reconnect shortly"
		if !errors.Is(err, ErrClosed) {
			msg = "too many live streams on this server; retry later"
		}
		httpx.WriteError(w, req, http.StatusServiceUnavailable, "unavailable", msg)
		return
	}
	defer c.Close()
	if tc, ok := req.Context().Value(connKey{}).(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(h.sendBuffer)
	}

	rc := http.NewResponseController(w)
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("Connection", "keep-alive")
	hdr.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	write := func(s string) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(h.writeTimeout))
		if _, err := w.Write([]byte(s)); err != nil {
			h.dropped(err)
			return false
		}
		if err := rc.Flush(); err != nil {
			h.dropped(err)
			return false
		}
		return true
	}
	if !write("retry: " + strconv.FormatInt(h.retry.Milliseconds(), 10) + "\n\n") {
		return
	}
	sent := int64(-1)
	if id, err := strconv.ParseInt(req.Header.Get("Last-Event-ID"), 10, 64); err == nil {
		sent = id // a reconnect that already has this version gets no duplicate
	}
	send := func() bool {
		s := c.Latest()
		if s == nil || s.Version == sent {
			return true
		}
		if !write(fmt.Sprintf("id: %d\nevent: summary\ndata: %s\n\n", s.Version, s.Data)) {
			return false
		}
		sent = s.Version
		h.b.m.deliveries.Inc()
		return true
	}
	if !send() {
		return
	}
	hb := time.NewTicker(h.heartbeat)
	defer hb.Stop()
	for {
		select {
		case <-req.Context().Done():
			return
		case <-c.Done():
			return
		case <-c.Notify():
			if !send() {
				return
			}
		case <-hb.C:
			if !write(": heartbeat\n\n") {
				return
			}
		}
	}
}

func (h *Handler) dropped(err error) {
	var ne net.Error
	if errors.Is(err, http.ErrHandlerTimeout) || errors.As(err, &ne) && ne.Timeout() {
		h.b.m.slow.Inc()
	}
}
