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
	b          *Broker
	parser     summary.RangeParser
	retry      time.Duration
	sendBuffer int
	// Detach hands HTTP/1.1 streams to the broker's writer pool after the
	// headers (see detached). Off, or where the connection cannot be
	// hijacked (HTTP/2), each stream keeps its handler goroutine.
	Detach bool
	// ClientAddr names the client for the per-address limit; the TCP
	// peer's host when nil (set it to trust a reverse proxy's header).
	ClientAddr func(*http.Request) string
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

// NewHandler builds the SSE handler. Heartbeats and write deadlines are
// the broker's (Options.Heartbeat, Options.WriteTimeout).
func NewHandler(b *Broker, parser summary.RangeParser) *Handler {
	return &Handler{b: b, parser: parser, retry: 3 * time.Second, sendBuffer: streamSendBuffer, Detach: true}
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	spec, ok := summary.ParseSpecRequest(w, req, h.parser)
	if !ok {
		return
	}
	addr, _, _ := net.SplitHostPort(req.RemoteAddr)
	if h.ClientAddr != nil {
		addr = h.ClientAddr(req)
	}
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
	if tc, ok := req.Context().Value(connKey{}).(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(h.sendBuffer)
	}
	sent := int64(-1)
	if id, err := strconv.ParseInt(req.Header.Get("Last-Event-ID"), 10, 64); err == nil {
		sent = id // a reconnect that already has this version gets no duplicate
	}
	rc := http.NewResponseController(w)
	if h.Detach && req.ProtoMajor == 1 {
		if nc, _, err := rc.Hijack(); err == nil {
			h.detach(c, nc, sent, httpx.RequestID(req.Context()))
			return
		}
	}
	defer c.Close()

	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("Connection", "keep-alive")
	hdr.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	write := func(s string) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(h.b.o.WriteTimeout))
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
	hb := time.NewTicker(h.b.o.Heartbeat)
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

// detach writes the response head and the first frames on the hijacked
// connection, then gives it to the broker. The body is delimited by the
// connection's end (Connection: close), as SSE over HTTP/1.1 allows.
func (h *Handler) detach(c *Client, nc net.Conn, sent int64, requestID string) {
	head := "HTTP/1.1 200 OK\r\n" +
		"Content-Type: text/event-stream\r\n" +
		"Cache-Control: no-cache\r\n" +
		"X-Accel-Buffering: no\r\n" +
		"X-Content-Type-Options: nosniff\r\n" +
		"Connection: close\r\n"
	if requestID != "" {
		head += "X-Request-Id: " + requestID + "\r\n"
	}
	buf := []byte(head + "\r\nretry: " + strconv.FormatInt(h.retry.Milliseconds(), 10) + "\n\n")
	version := sent
	if s := c.Latest(); s != nil && s.Version != sent {
		buf = fmt.Appendf(buf, "id: %d\nevent: summary\ndata: %s\n\n", s.Version, s.Data)
		version = s.Version
	}
	_ = nc.SetWriteDeadline(time.Now().Add(h.b.o.WriteTimeout))
	if _, err := nc.Write(buf); err != nil {
		h.dropped(err)
		_ = nc.Close()
		c.Close()
		return
	}
	if version != sent {
		h.b.m.deliveries.Inc()
	}
	h.b.detach(c, nc, version)
}
