package stream

import (
	"context"
	"errors"
	"net"
	"strconv"
	"time"
)

// The one encoder of the event stream (text/event-stream, as the HTML
// standard defines it). Both write paths, Serve and the detached writer
// pool, use it.

// appendSnapshot appends a snapshot as a "summary" event whose id is its
// version, so that a reconnecting EventSource sends Last-Event-ID and gets
// no duplicate.
func appendSnapshot(dst []byte, s *Snapshot) []byte {
	dst = append(dst, "id: "...)
	dst = strconv.AppendInt(dst, s.Version, 10)
	dst = append(dst, "\nevent: summary\ndata: "...)
	dst = append(dst, s.Data...) // compact JSON: one line
	return append(dst, "\n\n"...)
}

// heartbeat is a comment line: it keeps proxies from closing an idle
// stream and lets a dead peer be noticed.
var heartbeat = []byte(": heartbeat\n\n")

// appendRetry appends the reconnection delay the client should use.
func appendRetry(dst []byte, d time.Duration) []byte {
	dst = append(dst, "retry: "...)
	dst = strconv.AppendInt(dst, d.Milliseconds(), 10)
	return append(dst, "\n\n"...)
}

// opening is what a new stream starts with, after head: the reconnection
// delay; unless the client has it (sent), the latest snapshot, marked
// stale while the range's refreshes fail; and then the failure's status.
// It returns the snapshot version and status sequence the client will
// have.
func (b *Broker) opening(head []byte, c *Client, sent int64) ([]byte, int64, int64) {
	buf := appendRetry(head, b.o.Retry)
	s, f := c.Latest(), c.currentStatus()
	if s != nil && s.Version != sent {
		if f != nil && f.delayed && f.last != nil && f.last.Version == s.Version {
			if stale := f.staleSnapshot(); stale != nil {
				s = stale
			}
		}
		buf = appendSnapshot(buf, s)
		sent = s.Version
	}
	var seq int64
	if f != nil {
		seq = f.seq
		if f.delayed {
			buf = appendStatus(buf, f)
		}
	}
	return buf, sent, seq
}

// Sink is an attached stream's response: Send writes p to the client and
// flushes it, or fails once the deadline passes.
type Sink interface {
	Send(p []byte, deadline time.Time) error
}

// Serve writes c's stream to sink until ctx ends (the client left), the
// broker ends the stream, or a write fails; then it closes c. sent is the
// version the client already has (Last-Event-ID), or -1. The response head
// must have been written.
func (b *Broker) Serve(ctx context.Context, c *Client, sink Sink, sent int64) {
	defer c.Close()
	send := func(p []byte) bool {
		if err := sink.Send(p, time.Now().Add(b.o.WriteTimeout)); err != nil {
			b.dropped(err)
			return false
		}
		return true
	}
	first, version, seq := b.opening(nil, c, sent)
	if !send(first) {
		return
	}
	if version != sent {
		b.m.deliveries.Inc()
		sent = version
	}
	hb := time.NewTicker(b.o.Heartbeat)
	defer hb.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.Done():
			// The broker closes (shutdown): say so, with the delay to
			// reconnect after, before the stream ends.
			send(b.farewell())
			return
		case <-c.Notify():
			frame, version, next := appendPending(nil, c, sent, seq)
			if frame == nil {
				continue
			}
			if !send(frame) {
				return
			}
			if version != sent {
				b.m.deliveries.Inc()
			}
			sent, seq = version, next
		case <-hb.C:
			if !send(heartbeat) {
				return
			}
		}
	}
}

// dropped counts a client cut because a write missed its deadline.
func (b *Broker) dropped(err error) {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		b.m.slow.Inc()
	}
}
