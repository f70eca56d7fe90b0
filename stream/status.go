package stream

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/liveanalytics/analyticsd/summary"
)

// A live range never goes silent. While its refreshes fail, every
// instance holding it tells its own clients so, once per interval, with a
// "status" event; no instance depends on another for that, so a follower's
// clients hear it even when the leader's announcements stop. The first
// snapshot after the failure ends it with a status "ok".
//
// An instance learns that interval k of a range is lost in one of two
// ways: its own computation of k failed (the common case: when PostgreSQL
// refuses, every instance that takes the lease fails at once), or the
// watch loop finds, a grace period after k's deadline, that no snapshot
// of k arrived (a computation that hangs, a leader that stopped
// publishing).

// Reasons of a delayed status.
const (
	// ReasonStorage: this instance's computation failed.
	ReasonStorage = "storage_unavailable"
	// ReasonOverdue: no snapshot arrived within its interval and a grace
	// period (half an interval, at least two seconds) from any instance (a
	// computation that hangs, for example).
	ReasonOverdue = "refresh_overdue"
)

// statusFrame is a range's stream status as its clients receive it.
type statusFrame struct {
	seq     int64  // per range; a client writes each frame once
	delayed bool   // false: the "ok" that ends a failure
	data    []byte // the status event's JSON
	// last is, while delayed, the range's latest snapshot (nil: none);
	// clients that connect during the failure get it re-encoded with
	// "stale":true, made once, on first use, outside the range's lock.
	last      *Snapshot
	staleOnce sync.Once
	stale     *Snapshot
}

// staleSnapshot is f.last marked stale, or nil.
func (f *statusFrame) staleSnapshot() *Snapshot {
	f.staleOnce.Do(func() {
		if f.last != nil {
			f.stale = staleCopy(f.last)
		}
	})
	return f.stale
}

var okStatus = []byte(`{"state":"ok"}`)

// delayedStatus is the JSON of a delayed status.
type delayedStatus struct {
	State      string  `json:"state"`
	Since      string  `json:"since"`
	ComputedAt *string `json:"computedAt"` // null: no snapshot yet
	Reason     string  `json:"reason"`
}

// delay tells lr's clients that interval k has no snapshot, unless one
// arrived or they were told already for k or a later interval. since is
// when k was due, kept from the first interval of a failure to its end.
func (lr *liveRange) delay(k int64, since time.Time, reason string) bool {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	if lr.latest != nil && lr.latest.Version >= k || k <= lr.delayedK {
		return false
	}
	lr.delayedK = k
	prev := lr.status
	f := &statusFrame{seq: 1, delayed: true}
	if prev != nil {
		f.seq = prev.seq + 1
	}
	if prev == nil || !prev.delayed {
		lr.since = since
	}
	st := delayedStatus{State: "delayed", Since: summary.FormatComputedAt(lr.since), Reason: reason}
	if lr.latest != nil {
		f.last = lr.latest
		if at := computedAt(lr.latest.Data); at != "" {
			st.ComputedAt = &at
		}
	}
	f.data, _ = json.Marshal(st)
	lr.status = f
	for c := range lr.clients {
		c.offerStatus(f)
	}
	return true
}

// recovered ends a failure when a newer snapshot arrived; lr.mu is held.
// The clients are offered the "ok" before the snapshot, so that one
// wake-up writes both (snapshot first).
func (lr *liveRange) recovered() {
	if lr.status == nil || !lr.status.delayed {
		return
	}
	f := &statusFrame{seq: lr.status.seq + 1, data: okStatus}
	lr.status = f
	for c := range lr.clients {
		c.status.Store(f)
	}
}

// computedAt reads the computedAt field of a snapshot's data: the last
// member of the summary body (summary.Response), found without decoding
// the whole body, which can be large, under the range's lock.
func computedAt(data []byte) string {
	const key = `"computedAt":"`
	i := bytes.LastIndex(data, []byte(key))
	if i < 0 {
		return ""
	}
	rest := data[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return string(rest[:j])
}

// staleCopy is s with "stale":true (and "cached":true, as the summary
// endpoint marks a stale answer), for a client that connects while the
// range's refreshes fail: the numbers are the last known, not current.
func staleCopy(s *Snapshot) *Snapshot {
	var r summary.Response
	if err := json.Unmarshal(s.Data, &r); err != nil {
		return nil
	}
	r.Stale, r.Cached = true, true
	data, err := json.Marshal(r)
	if err != nil {
		return nil
	}
	return &Snapshot{Version: s.Version, Data: data, Published: s.Published}
}

// offerStatus hands the client a status frame to write; lr.mu is held.
func (c *Client) offerStatus(f *statusFrame) {
	c.status.Store(f)
	if d := c.det.Load(); d != nil {
		c.b.enqueue(d)
		return
	}
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// currentStatus is the client's newest status frame, or nil.
func (c *Client) currentStatus() *statusFrame { return c.status.Load() }

// appendStatus appends a "status" event. It has no id: the client's
// Last-Event-ID stays the version of the snapshot it has.
func appendStatus(dst []byte, f *statusFrame) []byte {
	dst = append(dst, "event: status\ndata: "...)
	dst = append(dst, f.data...)
	return append(dst, "\n\n"...)
}

// appendPending appends what the client has not been written yet: the newest
// snapshot if newer than sent, then the newest status frame if newer than
// seq. It returns the new sent and seq.
func appendPending(dst []byte, c *Client, sent, seq int64) ([]byte, int64, int64) {
	if s := c.Latest(); s != nil && s.Version > sent {
		dst = appendSnapshot(dst, s)
		sent = s.Version
	}
	if f := c.currentStatus(); f != nil && f.seq > seq {
		dst = appendStatus(dst, f)
		seq = f.seq
	}
	return dst, sent, seq
}

// overdueGrace is how long after its deadline (the end of its interval)
// a snapshot may still arrive before the watch calls it overdue: half an
// interval, and at least two seconds, so that a refresh slowed down by load
// is not reported as a failure.
func (o Options) overdueGrace() time.Duration { return max(o.Interval/2, 2*time.Second) }

// watch marks, once per interval, every live range that has no snapshot
// of the last interval whose deadline passed more than overdueGrace ago
// as delayed: a computation that hangs fails nothing, and the clients
// must hear from the range all the same.
func (b *Broker) watch() {
	defer b.wg.Done()
	grace := b.o.overdueGrace()
	for {
		if _, ok := b.waitMidInterval(); !ok {
			return
		}
		// Interval k's deadline is the start of k+1.
		k := b.tick(b.o.Now().Add(-grace)) - 1
		due := b.tickTime(k)
		for _, lr := range b.liveRanges() {
			if !lr.created.After(due) && lr.delay(k, due, ReasonOverdue) {
				b.m.delayed(ReasonOverdue)
			}
		}
	}
}

// liveRanges are the ranges this instance refreshes.
func (b *Broker) liveRanges() []*liveRange {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]*liveRange, 0, len(b.ranges))
	for _, lr := range b.ranges {
		if lr.live {
			out = append(out, lr)
		}
	}
	return out
}

// Refusal is the whole body of a stream the server does not serve (over
// a limit, shutting down), as a 200 text/event-stream: a retry line, then
// an event "refused" with the error shape. A standard EventSource fails
// for good on any other status or content type; on this one it fires
// the event, sees the stream end, and reconnects after the retry delay.
// The delay is Options.Retry plus up to as much again at random, so that
// clients refused together do not return together.
func (b *Broker) Refusal(code, message string) []byte {
	buf := appendRetry(nil, b.o.Retry+rand.N(b.o.Retry))
	data, _ := json.Marshal(refusal{Error: refusalError{Code: code, Message: message}})
	buf = append(buf, "event: refused\ndata: "...)
	buf = append(buf, data...)
	return append(buf, "\n\n"...)
}

// refusal is the data of a "refused" event: the error shape of every
// other answer.
type refusal struct {
	Error refusalError `json:"error"`
}

type refusalError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// LastSummary is the newest snapshot of spec, from this instance's live
// range or the one stored for the instances, as a summary body, or nil
// when there is none: the summary endpoint's answer for a live range while
// the store fails. It is marked stale (with its computedAt) unless it is
// the snapshot of the current interval.
func (b *Broker) LastSummary(ctx context.Context, spec summary.Spec) []byte {
	var s *Snapshot
	b.mu.Lock()
	if lr := b.ranges[spec.Key()]; lr != nil {
		s = lr.latestSnapshot()
	}
	b.mu.Unlock()
	if s == nil {
		if stored, err := b.coord.Latest(ctx, spec.Key()); err == nil {
			s = stored
		}
	}
	if s == nil {
		return nil
	}
	if s.Version >= spec.Version(b.o.Now(), b.o.Interval) {
		return s.Data
	}
	if c := staleCopy(s); c != nil {
		return c.Data
	}
	return nil
}

// ShuttingDown is the code and message of the refusal a stream gets when
// the broker closes.
const (
	ShuttingDownCode    = "unavailable"
	ShuttingDownMessage = "the server is shutting down; reconnect shortly"
)

// farewell is the last frame of a stream the broker closes.
func (b *Broker) farewell() []byte { return b.Refusal(ShuttingDownCode, ShuttingDownMessage) }
