package stream

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/liveanalytics/analyticsd/summary"
)

// liveRange is one normalized range with local clients.
type liveRange struct {
	key  string
	spec summary.Spec
	live bool

	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	clients map[*Client]struct{}
	latest  *Snapshot

	// The failure state (status.go): the newest status frame (nil until
	// the first failure), the last interval a delayed status went out for,
	// and when the current failure began.
	status   *statusFrame
	delayedK int64
	since    time.Time
	created  time.Time

	dropTimer *time.Timer // guarded by the broker's mu
	idleSince time.Time   // when the last client left; guarded by the broker's mu
}

func newLiveRange(parent context.Context, spec summary.Spec, now time.Time) *liveRange {
	lr := &liveRange{key: spec.Key(), spec: spec,
		// A range that ended in the past never changes: one snapshot,
		// then heartbeats only.
		live:    spec.Live(now),
		clients: map[*Client]struct{}{}, created: now, delayedK: math.MinInt64}
	lr.ctx, lr.cancel = context.WithCancel(parent)
	return lr
}

func (lr *liveRange) stop() { lr.cancel() }

func (lr *liveRange) add(c *Client) {
	lr.mu.Lock()
	lr.clients[c] = struct{}{}
	if lr.status != nil {
		c.status.Store(lr.status)
	}
	if lr.latest != nil {
		c.offer(lr.latest)
	}
	lr.mu.Unlock()
}

func (lr *liveRange) remove(c *Client) bool {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	if _, ok := lr.clients[c]; !ok {
		return false
	}
	delete(lr.clients, c)
	return true
}

func (lr *liveRange) empty() bool {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	return len(lr.clients) == 0
}

func (lr *liveRange) closeClients() {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	for c := range lr.clients {
		c.end()
	}
}

func (lr *liveRange) latestSnapshot() *Snapshot {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	return lr.latest
}

// deliver makes s the latest snapshot if it is newer, and offers it to
// every client. It never blocks: each client keeps only the latest.
func (lr *liveRange) deliver(s *Snapshot) bool {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	if lr.latest != nil && s.Version <= lr.latest.Version {
		return false
	}
	lr.latest = s
	lr.recovered()
	for c := range lr.clients {
		c.offer(s)
	}
	return true
}

// Client is one subscriber. It holds at most one pending snapshot: a newer
// one replaces an older one that was not written yet.
type Client struct {
	b      *Broker
	lr     *liveRange
	addr   string
	notify chan struct{}
	latest atomic.Pointer[Snapshot]
	status atomic.Pointer[statusFrame]
	done   chan struct{}
	once   sync.Once
	closed atomic.Bool
	det    atomic.Pointer[detached] // set once the stream is detached
}

func (c *Client) offer(s *Snapshot) {
	c.latest.Store(s)
	if d := c.det.Load(); d != nil {
		c.b.enqueue(d)
		return
	}
	select {
	case c.notify <- struct{}{}:
	default: // already signalled; the writer will take the newest
	}
}

// Notify signals that Latest changed.
func (c *Client) Notify() <-chan struct{} { return c.notify }

// Latest is the newest snapshot, or nil before the first one.
func (c *Client) Latest() *Snapshot { return c.latest.Load() }

// Done is closed when the broker ends the stream (shutdown).
func (c *Client) Done() <-chan struct{} { return c.done }

// Live reports whether the range still changes.
func (c *Client) Live() bool { return c.lr.live }

func (c *Client) end() { c.once.Do(func() { close(c.done) }) }

// Close unsubscribes the client.
func (c *Client) Close() {
	if c.closed.Swap(true) {
		return
	}
	c.end()
	c.b.release(c)
}
