package stream

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/liveanalytics/analyticsd/summary"
)

// Broker owns the live ranges of one instance.
type Broker struct {
	src   Source
	coord Coordinator
	o     Options
	m     *Metrics

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	ranges  map[string]*liveRange
	clients int
	perAddr map[string]int
	// addrRanges counts, per address, its clients on each range it is on:
	// len(addrRanges[addr]) is what MaxRangesPerAddr bounds.
	addrRanges map[string]map[*liveRange]int

	// Detached (hijacked) streams, written by the writer pool.
	wq       chan *detached
	dmu      sync.Mutex
	detached map[*detached]struct{}

	// The refresh scheduler's state (schedule.go).
	s sched
}

// New starts a broker. coord shares refreshes with other instances; nil
// means this instance is alone (an in-process Memory coordinator).
func New(src Source, coord Coordinator, o Options) *Broker {
	o = o.withDefaults()
	if coord == nil {
		coord = NewMemory()
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &Broker{src: src, coord: coord, o: o, m: o.Metrics, ctx: ctx, cancel: cancel,
		ranges: map[string]*liveRange{}, perAddr: map[string]int{}, addrRanges: map[string]map[*liveRange]int{},
		wq: make(chan *detached, o.MaxClients), detached: map[*detached]struct{}{}, s: newSched()}
	b.wg.Add(o.Writers + o.Refreshers + 6)
	for range o.Writers {
		go b.writer()
	}
	for range o.Refreshers {
		go b.refresher()
	}
	go b.schedule()
	go b.publisher()
	go b.heartbeats()
	go b.census()
	go b.watch()
	go func() {
		defer b.wg.Done()
		coord.Listen(ctx, b.announced, b.resync)
	}()
	return b
}

// Close stops every loop and releases every client; it waits for the
// broker's goroutines to exit.
func (b *Broker) Close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	for _, lr := range b.ranges {
		lr.stop()
		lr.closeClients()
	}
	b.mu.Unlock()
	b.cancel()
	b.closeDetached()
	b.wg.Wait()
}

func (b *Broker) tick(t time.Time) int64 { return summary.Tick(t, b.o.Interval) }

func (b *Broker) tickTime(k int64) time.Time { return summary.TickTime(k, b.o.Interval) }

// Subscribe adds a client for spec, from the address addr (for the
// per-address limit). The client gets the current snapshot at once
// (Latest) and every newer one through Notify. The caller owns the client
// until it hands it to Serve or Detach, which close it when the stream ends.
func (b *Broker) Subscribe(ctx context.Context, spec summary.Spec, addr string) (*Client, error) {
	lr, isNew, c, evicted, err := b.admit(spec, addr)
	if err != nil {
		return nil, err
	}
	if evicted != nil {
		b.unwatch(evicted)
	}
	if isNew {
		if err := b.coord.Watch(ctx, lr.key); err != nil {
			b.o.Logger.Warn("stream: watch failed; this instance refreshes on its own until coordination answers", "err", err)
		}
	}
	if lr.latestSnapshot() == nil {
		b.initial(ctx, lr)
	}
	return c, nil
}

// admit checks the limits and registers a client, creating its range.
// At MaxRanges it makes room by evicting the range idle longest (no
// clients, in its grace period), which the caller must unwatch.
func (b *Broker) admit(spec summary.Spec, addr string) (lr *liveRange, isNew bool, c *Client, evicted *liveRange, err error) {
	key := spec.Key()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, false, nil, nil, ErrClosed
	}
	if b.clients >= b.o.MaxClients || b.perAddr[addr] >= b.o.MaxClientsPerAddr {
		b.m.reject(rejectClients)
		return nil, false, nil, nil, ErrTooManyClients
	}
	lr = b.ranges[key]
	isNew = lr == nil
	held := b.addrRanges[addr]
	if held[lr] == 0 && len(held) >= b.o.MaxRangesPerAddr {
		b.m.reject(rejectRangesPerAddr)
		return nil, false, nil, nil, ErrTooManyRangesForAddr
	}
	if isNew {
		if len(b.ranges) >= b.o.MaxRanges {
			if evicted = b.evictIdle(); evicted == nil {
				b.m.reject(rejectRanges)
				return nil, false, nil, nil, ErrTooManyRanges
			}
		}
		lr = newLiveRange(b.ctx, spec, b.o.Now())
		b.ranges[key] = lr
		b.m.ranges.Set(float64(len(b.ranges)))
	} else if lr.dropTimer != nil {
		lr.dropTimer.Stop()
		lr.dropTimer = nil
	}
	c = &Client{b: b, lr: lr, addr: addr, notify: make(chan struct{}, 1), done: make(chan struct{})}
	lr.add(c)
	b.clients++
	b.perAddr[addr]++
	if held == nil {
		held = map[*liveRange]int{}
		b.addrRanges[addr] = held
	}
	held[lr]++
	b.m.clients.Set(float64(b.clients))
	return lr, isNew, c, evicted, nil
}

// evictIdle forgets the range whose last client left longest ago (it
// would be dropped at the end of its grace period anyway), so that a
// full instance takes a new range instead of answering 503 while idle
// ranges wait out their grace. b.mu is held. It returns nil when every
// range has clients.
func (b *Broker) evictIdle() *liveRange {
	var oldest *liveRange
	for _, lr := range b.ranges {
		if lr.dropTimer != nil && (oldest == nil || lr.idleSince.Before(oldest.idleSince)) {
			oldest = lr
		}
	}
	if oldest == nil {
		return nil
	}
	oldest.dropTimer.Stop()
	oldest.dropTimer = nil
	delete(b.ranges, oldest.key)
	oldest.stop()
	b.m.evicted.Inc()
	return oldest
}

// unwatch stops announcements for a range this broker forgot, unless a
// new client has brought its key back meanwhile.
func (b *Broker) unwatch(lr *liveRange) {
	b.mu.Lock()
	back := b.ranges[lr.key] != nil
	b.mu.Unlock()
	if !back {
		_ = b.coord.Unwatch(b.ctx, lr.key)
	}
}

// initial gives a new range its first snapshot: the stored one when it is
// current, else one computed through the cache-aside service.
func (b *Broker) initial(ctx context.Context, lr *liveRange) {
	now := b.o.Now()
	version := lr.spec.Version(now, b.o.Interval)
	at := now
	if lr.live {
		at = b.tickTime(version)
	}
	stored, err := b.coord.Latest(ctx, lr.key)
	if err != nil {
		stored = nil
	}
	if stored != nil && stored.Version >= version {
		lr.deliver(stored)
		return
	}
	r := lr.spec.Resolve(at)
	res, err := b.src.Get(ctx, r)
	if err != nil {
		b.o.Logger.Warn("stream: initial snapshot failed", "range", lr.key, "err", err)
		if lr.live && ctx.Err() == nil {
			// An older snapshot is better than none: the client gets it
			// marked stale, with the status saying since when.
			if stored != nil {
				lr.deliver(stored)
			}
			if lr.delay(version, b.tickTime(version), ReasonStorage) {
				b.m.delayed(ReasonStorage)
			}
		}
		return
	}
	lr.deliver(&Snapshot{Version: version, Data: encode(r, res), Published: b.o.Now()})
}

// encode is a snapshot's data: the summary endpoint's body.
func encode(r summary.Range, res summary.Result) []byte {
	body, _ := json.Marshal(summary.NewResponse(r, res))
	return body
}

// release is called by Client.Close.
func (b *Broker) release(c *Client) {
	b.mu.Lock()
	defer b.mu.Unlock()
	lr := c.lr
	if !lr.remove(c) {
		return
	}
	b.clients--
	if b.perAddr[c.addr]--; b.perAddr[c.addr] <= 0 {
		delete(b.perAddr, c.addr)
	}
	if held := b.addrRanges[c.addr]; held != nil {
		if held[lr]--; held[lr] <= 0 {
			delete(held, lr)
		}
		if len(held) == 0 {
			delete(b.addrRanges, c.addr)
		}
	}
	b.m.clients.Set(float64(b.clients))
	if lr.empty() && !b.closed && b.ranges[lr.key] == lr {
		lr.idleSince = b.o.Now()
		lr.dropTimer = time.AfterFunc(b.o.Grace, func() { b.drop(lr) })
	}
}

// drop forgets a range whose last client left more than Grace ago.
func (b *Broker) drop(lr *liveRange) {
	b.mu.Lock()
	if b.closed || b.ranges[lr.key] != lr || !lr.empty() {
		b.mu.Unlock()
		return
	}
	delete(b.ranges, lr.key)
	b.m.ranges.Set(float64(len(b.ranges)))
	lr.stop()
	b.mu.Unlock()
	_ = b.coord.Unwatch(b.ctx, lr.key)
}

// compute runs the store for interval k and, as the leader, publishes the
// snapshot to the other instances.
func (b *Broker) compute(ctx context.Context, lr *liveRange, k int64, as role) {
	start := b.o.Now()
	r := lr.spec.Resolve(b.tickTime(k))
	res, err := b.src.Refresh(ctx, r)
	b.m.refreshDuration.Observe(b.o.Now().Sub(start).Seconds())
	if err != nil {
		if ctx.Err() == nil {
			b.o.Logger.Warn("stream: refresh failed", "range", lr.key, "version", k, "err", err)
			b.m.refreshed(roleError)
			if lr.delay(k, b.tickTime(k), ReasonStorage) {
				b.m.delayed(ReasonStorage)
			}
		}
		return
	}
	b.m.refreshed(as)
	s := &Snapshot{Version: k, Data: encode(r, res), Published: b.o.Now()}
	if as == roleLeader {
		b.publish(lr, s) // the publisher delivers it once published
		return
	}
	lr.deliver(s)
}

// published is the publisher's handling of one answer of PublishAll.
func (b *Broker) published(lr *liveRange, s *Snapshot, err error) {
	switch {
	case err == nil:
		b.m.publish(publishOK)
	case errors.Is(err, ErrFenced):
		b.m.publish(publishFenced)
		return // a newer snapshot exists; ours must not replace it
	default:
		b.m.publish(publishError)
	}
	lr.deliver(s)
}

// announced delivers a snapshot another instance (or this one) published.
func (b *Broker) announced(key string, s *Snapshot) {
	b.mu.Lock()
	lr := b.ranges[key]
	b.mu.Unlock()
	if lr != nil && lr.deliver(s) {
		b.arrived(lr, s.Version)
		b.m.lag.Observe(b.o.Now().Sub(s.Published).Seconds())
		if b.o.Invalidate != nil {
			b.o.Invalidate(lr.spec.Resolve(b.tickTime(s.Version)).Key())
		}
	}
}

// resync re-reads every range's stored snapshot after announcements may
// have been lost, so that a gap costs one interval at most.
func (b *Broker) resync() {
	b.mu.Lock()
	ranges := make([]*liveRange, 0, len(b.ranges))
	for _, lr := range b.ranges {
		ranges = append(ranges, lr)
	}
	b.mu.Unlock()
	for _, lr := range ranges {
		if s, err := b.coord.Latest(b.ctx, lr.key); err == nil && s != nil {
			lr.deliver(s)
		}
	}
}

// waitMidInterval sleeps until the middle of the current refresh interval,
// or of the next one when that has passed, and returns that interval;
// false when the broker closes. The background loops that look at every
// range once per interval (census, watch) run there, away from the
// boundaries where the refreshes are.
func (b *Broker) waitMidInterval() (int64, bool) {
	now := b.o.Now()
	k := b.tick(now)
	at := b.tickTime(k).Add(b.o.Interval / 2)
	if !at.After(now) {
		k++
		at = at.Add(b.o.Interval)
	}
	timer := time.NewTimer(at.Sub(now))
	defer timer.Stop()
	select {
	case <-b.ctx.Done():
		return 0, false
	case <-timer.C:
		return k, true
	}
}

// census counts the distinct live ranges of all instances once per
// interval, in its middle (away from the boundaries, when the instances
// are busy, and from small clock differences between them), for
// analytics_stream_cluster_ranges. When coordination fails the count is
// this instance's own.
func (b *Broker) census() {
	defer b.wg.Done()
	for {
		k, ok := b.waitMidInterval()
		if !ok {
			return
		}
		keys := b.liveKeys()
		n, err := b.coord.Census(b.ctx, k, keys, 3*b.o.Interval)
		if b.ctx.Err() != nil {
			return
		}
		if err != nil {
			n = len(keys)
		}
		b.m.clusterRanges.Set(float64(n))
	}
}

// liveKeys are the keys of the ranges this instance refreshes.
func (b *Broker) liveKeys() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	keys := make([]string, 0, len(b.ranges))
	for key, lr := range b.ranges {
		if lr.live {
			keys = append(keys, key)
		}
	}
	return keys
}

// Stats are counts for tests and the load generator.
type Stats struct{ Clients, Ranges int }

// Stats returns the current counts.
func (b *Broker) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return Stats{Clients: b.clients, Ranges: len(b.ranges)}
}
