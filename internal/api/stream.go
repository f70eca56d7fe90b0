package api

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/liveanalytics/analyticsd/stream"
	"github.com/liveanalytics/analyticsd/summary"
)

// streamHandler serves GET /api/analytics/stream as Server-Sent Events;
// the broker writes the events.
type streamHandler struct {
	b      *stream.Broker
	parser summary.RangeParser
	// detach hands HTTP/1.1 streams to the broker's writer pool after the
	// headers. Off, or where the connection cannot be hijacked (HTTP/2),
	// each stream keeps its handler goroutine.
	detach bool
	// clientAddr names the client for the per-address limit.
	clientAddr func(*http.Request) string
}

// sseHeaders are the response headers of a stream, on both paths.
var sseHeaders = [][2]string{
	{"Content-Type", "text/event-stream"},
	{"Cache-Control", "no-cache"},
	{"X-Accel-Buffering", "no"}, // nginx: do not buffer
}

type connKey struct{}

// connContext is the http.Server's ConnContext: it lets the handler reach
// the TCP connection of a stream to size its kernel send buffer.
func connContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// streamSendBuffer bounds the kernel's send buffer of a stream
// connection. A snapshot is about a kilobyte, so a small buffer costs no
// throughput, keeps memory per idle client low, and makes a client that
// stopped reading hit the write deadline within a few snapshots instead of
// after megabytes of autotuned buffer.
const streamSendBuffer = 16 << 10

func (h *streamHandler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	spec, ok := parseSpec(w, req, h.parser)
	if !ok {
		return
	}
	c, err := h.b.Subscribe(req.Context(), spec, h.clientAddr(req))
	if err != nil {
		h.refuse(w, req, err)
		return
	}
	if tc, ok := req.Context().Value(connKey{}).(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(streamSendBuffer)
	}
	sent := int64(-1)
	if id, err := strconv.ParseInt(req.Header.Get("Last-Event-ID"), 10, 64); err == nil {
		sent = id // a reconnect that already has this version gets no duplicate
	}
	rc := http.NewResponseController(w)
	if h.detach && req.ProtoMajor == 1 {
		if nc, _, err := rc.Hijack(); err == nil {
			h.b.Detach(c, nc, detachedHead(requestID(req.Context())), sent)
			return
		}
	}
	for _, kv := range sseHeaders {
		w.Header().Set(kv[0], kv[1])
	}
	w.Header().Set("Connection", "keep-alive")
	w.WriteHeader(http.StatusOK)
	h.b.Serve(req.Context(), c, responseSink{w, rc}, sent)
}

// refuse answers a stream the broker did not take (over a limit, or
// shutting down). A standard EventSource fails for good on a status other
// than 200 or a type other than text/event-stream, and never retries; so
// a client that accepts text/event-stream (every EventSource sends that
// Accept header) gets a 200 stream holding a retry delay and a "refused"
// event with the error, and then the end of the stream, after which it
// reconnects by itself. Other clients get the JSON error: 429 for the
// per-address limit, 503 otherwise. Both carry Retry-After.
func (h *streamHandler) refuse(w http.ResponseWriter, req *http.Request, err error) {
	status, code := http.StatusServiceUnavailable, "unavailable"
	msg := "too many live streams on this server; retry later"
	switch {
	case errors.Is(err, stream.ErrTooManyRangesForAddr):
		status, code = http.StatusTooManyRequests, "rate_limited"
		msg = "this address has too many distinct live ranges open (STREAM_MAX_RANGES_PER_ADDR); close one, or follow a range it already has"
	case errors.Is(err, stream.ErrClosed):
		code, msg = stream.ShuttingDownCode, stream.ShuttingDownMessage
	}
	w.Header().Set("Retry-After", "10")
	if !acceptsEventStream(req) {
		writeError(w, req, status, code, msg)
		return
	}
	for _, kv := range sseHeaders {
		w.Header().Set(kv[0], kv[1])
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(h.b.Refusal(code, msg))
}

// acceptsEventStream reports whether the request's Accept header names
// text/event-stream.
func acceptsEventStream(req *http.Request) bool {
	for _, v := range req.Header.Values("Accept") {
		for _, part := range strings.Split(v, ",") {
			mt, _, _ := strings.Cut(part, ";")
			if strings.EqualFold(strings.TrimSpace(mt), "text/event-stream") {
				return true
			}
		}
	}
	return false
}

// detachedHead is the response head written on a hijacked connection. The
// body is delimited by the connection's end (Connection: close), as SSE
// over HTTP/1.1 allows. The middleware's headers never reach a hijacked
// connection, so the ones that matter are repeated here.
func detachedHead(requestID string) []byte {
	head := []byte("HTTP/1.1 200 OK\r\n")
	for _, kv := range sseHeaders {
		head = append(head, kv[0]+": "+kv[1]+"\r\n"...)
	}
	head = append(head, "X-Content-Type-Options: nosniff\r\nConnection: close\r\n"...)
	if requestID != "" {
		head = append(head, "X-Request-Id: "+requestID+"\r\n"...)
	}
	return append(head, "\r\n"...)
}

// responseSink is an attached stream: each send is written and flushed
// under a deadline.
type responseSink struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func (s responseSink) Send(p []byte, deadline time.Time) error {
	_ = s.rc.SetWriteDeadline(deadline)
	if _, err := s.w.Write(p); err != nil {
		return err
	}
	return s.rc.Flush()
}
