// Package stream keeps dashboards live: a broker keyed by the normalized
// range runs one refresh loop per live range (not per client), elects one
// refresher per range per interval across instances with a Redis lease,
// publishes versioned snapshots through a compare-and-set Lua script and
// Redis pub/sub, and fans them out over Server-Sent Events without ever
// blocking on a client.
package stream

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/liveanalytics/analyticsd/summary"
)

// Source computes summaries; *summary.Service is one.
type Source interface {
	Get(ctx context.Context, r summary.Range) (summary.Result, error)
	Refresh(ctx context.Context, r summary.Range) (summary.Result, error)
}

// Snapshot is one version of a range's summary as clients receive it.
type Snapshot struct {
	Version   int64
	Data      []byte // the summary endpoint's JSON body
	Published time.Time
}

// Errors of Subscribe.
var (
	ErrClosed         = errors.New("stream: broker is shutting down")
	ErrTooManyClients = errors.New("stream: too many clients")
	ErrTooManyRanges  = errors.New("stream: too many live ranges")
)

// Options configure a Broker. Zero values take the defaults in brackets.
type Options struct {
	Interval          time.Duration // refresh step [5s]
	Prefix            string        // Redis key prefix ["analytics:"]
	LeaseTTL          time.Duration // how long a refresh lease holds [Interval/2]
	Grace             time.Duration // a range outlives its last client by this [10s]
	MaxClients        int           // per instance [50000]
	MaxClientsPerAddr int           // per remote address [1000]
	MaxRanges         int           // live ranges per instance [1000]
	Heartbeat         time.Duration // comment on idle streams [15s]
	WriteTimeout      time.Duration // deadline of one write to a client [5s]
	Writers           int           // goroutines writing to detached streams [64]
	Logger            *slog.Logger
	Metrics           *Metrics
	Now               func() time.Time
}

// Broker owns the live ranges of one instance.
type Broker struct {
	src Source
	rdb redis.UniversalClient // nil: single-instance mode
	o   Options
	m   *Metrics
	ps  *redis.PubSub

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	token  string

	mu        sync.Mutex
	closed    bool
	ranges    map[string]*liveRange
	byChannel map[string]*liveRange
	clients   int
	perAddr   map[string]int

	// Detached (hijacked) streams, written by the writer pool.
	wq       chan *detached
	dmu      sync.Mutex
	detached map[*detached]struct{}
}

// New starts a broker. rdb may be nil for a single instance.
func New(src Source, rdb redis.UniversalClient, o Options) *Broker {
	if o.Interval <= 0 {
		o.Interval = 5 * time.Second
	}
	if o.Prefix == "" {
		o.Prefix = "analytics:"
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = o.Interval / 2
	}
	if o.Grace <= 0 {
		o.Grace = 10 * time.Second
	}
	if o.MaxClients <= 0 {
		o.MaxClients = 50_000
	}
	if o.MaxClientsPerAddr <= 0 {
		o.MaxClientsPerAddr = 1000
	}
	if o.MaxRanges <= 0 {
		o.MaxRanges = 1000
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = 15 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 5 * time.Second
	}
	if o.Writers <= 0 {
		o.Writers = 64
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	tok := make([]byte, 8)
	_, _ = rand.Read(tok)
	ctx, cancel := context.WithCancel(context.Background())
	b := &Broker{src: src, rdb: rdb, o: o, m: o.Metrics, ctx: ctx, cancel: cancel, token: hex.EncodeToString(tok),
		ranges: map[string]*liveRange{}, byChannel: map[string]*liveRange{}, perAddr: map[string]int{},
		wq: make(chan *detached, o.MaxClients), detached: map[*detached]struct{}{}}
	b.wg.Add(o.Writers + 1)
	for range o.Writers {
		go b.writer()
	}
	go b.heartbeats()
	if rdb != nil {
		b.ps = rdb.Subscribe(ctx)
		b.wg.Add(1)
		go b.receive()
	}
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
	if b.ps != nil {
		_ = b.ps.Close()
	}
	b.wg.Wait()
}

func (b *Broker) tick(t time.Time) int64 { return summary.Tick(t, b.o.Interval) }

func (b *Broker) tickTime(k int64) time.Time { return summary.TickTime(k, b.o.Interval) }

// Subscribe adds a client for spec. The client gets the current snapshot
// at once (Latest) and every newer one through Notify.
func (b *Broker) Subscribe(ctx context.Context, spec summary.Spec, addr string) (*Client, error) {
	now := b.o.Now()
	key := spec.Key()
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, ErrClosed
	}
	if b.clients >= b.o.MaxClients || b.perAddr[addr] >= b.o.MaxClientsPerAddr {
		b.mu.Unlock()
		b.m.rejected.WithLabelValues("clients").Inc()
		return nil, ErrTooManyClients
	}
	lr := b.ranges[key]
	isNew := lr == nil
	if isNew {
		if len(b.ranges) >= b.o.MaxRanges {
			b.mu.Unlock()
			b.m.rejected.WithLabelValues("ranges").Inc()
			return nil, ErrTooManyRanges
		}
		lr = newLiveRange(b, spec, now)
		b.ranges[key] = lr
		b.byChannel[lr.channel] = lr
		b.m.ranges.Set(float64(len(b.ranges)))
	} else if lr.dropTimer != nil {
		lr.dropTimer.Stop()
		lr.dropTimer = nil
	}
	c := &Client{b: b, lr: lr, addr: addr, notify: make(chan struct{}, 1), done: make(chan struct{})}
	lr.add(c)
	b.clients++
	b.perAddr[addr]++
	b.m.clients.Set(float64(b.clients))
	b.mu.Unlock()

	if isNew {
		if b.ps != nil {
			if err := b.ps.Subscribe(ctx, lr.channel); err != nil {
				b.o.Logger.Warn("stream: subscribe failed; this instance refreshes on its own until Redis answers", "err", err)
			}
		}
		if lr.live {
			b.wg.Add(1)
			go b.loop(lr)
		}
	}
	if lr.latestSnapshot() == nil {
		b.initial(ctx, lr)
	}
	return c, nil
}

// initial gives a new range its first snapshot: the one in Redis when it
// is current, else one computed through the cache-aside service.
func (b *Broker) initial(ctx context.Context, lr *liveRange) {
	now := b.o.Now()
	version := lr.spec.Version(now, b.o.Interval)
	at := now
	if lr.live {
		at = b.tickTime(version)
	}
	if b.rdb != nil {
		if s, err := b.readSnapshot(ctx, lr); err == nil && s != nil && s.Version >= version {
			lr.deliver(s)
			return
		}
	}
	r := lr.spec.Resolve(at)
	res, err := b.src.Get(ctx, r)
	if err != nil {
		b.o.Logger.Warn("stream: initial snapshot failed", "range", lr.key, "err", err)
		return
	}
	lr.deliver(&Snapshot{Version: version, Data: encode(r, res), Published: b.o.Now()})
}

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
	b.m.clients.Set(float64(b.clients))
	if lr.empty() && !b.closed && b.ranges[lr.key] == lr {
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
	delete(b.byChannel, lr.channel)
	b.m.ranges.Set(float64(len(b.ranges)))
	lr.stop()
	b.mu.Unlock()
	if b.ps != nil {
		_ = b.ps.Unsubscribe(b.ctx, lr.channel)
	}
}

// loop refreshes one live range at every interval boundary until the
// range is dropped or the broker closes. A refresh that ends after the
// next boundary is followed at once by the next interval's (late rather
// than skipped); only when more than one interval behind does the loop
// jump to the current one.
func (b *Broker) loop(lr *liveRange) {
	defer b.wg.Done()
	k := b.tick(b.o.Now()) + 1
	for {
		if cur := b.tick(b.o.Now()); k < cur {
			k = cur
		}
		timer := time.NewTimer(b.tickTime(k).Sub(b.o.Now()))
		select {
		case <-lr.ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		b.refresh(lr, k)
		k++
	}
}

// refresh makes sure interval k of lr gets exactly one snapshot across all
// instances: take the lease and compute, or wait for whoever holds it; if
// the holder dies its lease expires and another instance takes over.
func (b *Broker) refresh(lr *liveRange, k int64) {
	ctx := lr.ctx
	deadline := b.tickTime(k + 1)
	for {
		if s := lr.latestSnapshot(); s != nil && s.Version >= k {
			b.m.refreshes.WithLabelValues("follower").Inc()
			return
		}
		if b.o.Now().After(deadline) {
			b.o.Logger.Warn("stream: interval passed without a snapshot", "range", lr.key, "version", k)
			return
		}
		won, err := b.lease(ctx, lr, k)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			b.compute(ctx, lr, k, "local")
			return
		}
		if won {
			stop := b.keepLease(ctx, lr, k)
			b.compute(ctx, lr, k, "leader")
			stop()
			return
		}
		b.m.contention.Inc()
		arrived := lr.arrivedChan()
		wait := time.NewTimer(b.o.LeaseTTL / 4)
		select {
		case <-ctx.Done():
			wait.Stop()
			return
		case <-arrived:
		case <-wait.C:
		}
		wait.Stop()
	}
}

func (b *Broker) lease(ctx context.Context, lr *liveRange, k int64) (bool, error) {
	if b.rdb == nil {
		return false, errors.New("no redis")
	}
	key := lr.leasePrefix + strconv.FormatInt(k, 10)
	return b.rdb.SetNX(ctx, key, b.token, b.o.LeaseTTL).Result()
}

// renewScript extends a lease only for the instance that holds it.
var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`)

// keepLease renews the lease of interval k while the leader computes, so
// that a slow refresh is not duplicated by a follower: the lease lapses
// only when its holder stops renewing (it died or lost Redis). The
// returned func stops the renewal and waits for it.
func (b *Broker) keepLease(ctx context.Context, lr *liveRange, k int64) func() {
	key := lr.leasePrefix + strconv.FormatInt(k, 10)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(b.o.LeaseTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				_ = renewScript.Run(ctx, b.rdb, []string{key}, b.token, b.o.LeaseTTL.Milliseconds()).Err()
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// compute runs the store for interval k and publishes the snapshot.
func (b *Broker) compute(ctx context.Context, lr *liveRange, k int64, role string) {
	start := b.o.Now()
	r := lr.spec.Resolve(b.tickTime(k))
	res, err := b.src.Refresh(ctx, r)
	b.m.refreshDuration.Observe(b.o.Now().Sub(start).Seconds())
	if err != nil {
		if ctx.Err() == nil {
			b.o.Logger.Warn("stream: refresh failed", "range", lr.key, "version", k, "err", err)
			b.m.refreshes.WithLabelValues("error").Inc()
		}
		return
	}
	b.m.refreshes.WithLabelValues(role).Inc()
	s := &Snapshot{Version: k, Data: encode(r, res), Published: b.o.Now()}
	if role == "leader" {
		switch err := b.publish(ctx, lr, s); {
		case err == nil:
			b.m.publishes.WithLabelValues("published").Inc()
		case errors.Is(err, errFenced):
			b.m.publishes.WithLabelValues("fenced").Inc()
			return // a newer snapshot exists; ours must not replace it
		default:
			b.m.publishes.WithLabelValues("error").Inc()
		}
	}
	lr.deliver(s)
}

var errFenced = errors.New("stream: a newer snapshot is already stored")

// casScript stores and publishes a snapshot only if it is newer than the
// stored one, so a stalled old leader can never overwrite a newer snapshot.
// The stored value starts with the version and a newline.
var casScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur then
  local v = tonumber(string.sub(cur, 1, string.find(cur, '\n') - 1))
  if v and v >= tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[2])
return 1`)

func (b *Broker) publish(ctx context.Context, lr *liveRange, s *Snapshot) error {
	ttl := 10 * b.o.Interval
	n, err := casScript.Run(ctx, b.rdb, []string{lr.snapKey}, s.Version, marshalSnapshot(s), ttl.Milliseconds(), lr.channel).Int()
	if err != nil {
		return fmt.Errorf("stream: publish: %w", err)
	}
	if n == 0 {
		return errFenced
	}
	return nil
}

// marshalSnapshot is "<version>\n<published unix ms>\n<json>".
func marshalSnapshot(s *Snapshot) string {
	return strconv.FormatInt(s.Version, 10) + "\n" + strconv.FormatInt(s.Published.UnixMilli(), 10) + "\n" + string(s.Data)
}

func unmarshalSnapshot(p string) (*Snapshot, error) {
	parts := bytes.SplitN([]byte(p), []byte("\n"), 3)
	if len(parts) != 3 {
		return nil, errors.New("stream: malformed snapshot")
	}
	v, err1 := strconv.ParseInt(string(parts[0]), 10, 64)
	ms, err2 := strconv.ParseInt(string(parts[1]), 10, 64)
	if err1 != nil || err2 != nil || !json.Valid(parts[2]) {
		return nil, errors.New("stream: malformed snapshot")
	}
	return &Snapshot{Version: v, Published: time.UnixMilli(ms), Data: parts[2]}, nil
}

func (b *Broker) readSnapshot(ctx context.Context, lr *liveRange) (*Snapshot, error) {
	p, err := b.rdb.Get(ctx, lr.snapKey).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return unmarshalSnapshot(p)
}

// receive delivers published snapshots to local ranges. Pub/sub is
// at-most-once: after a reconnect every range re-reads the stored
// snapshot, so a message lost during the outage costs one interval at most.
func (b *Broker) receive() {
	defer b.wg.Done()
	resync := false
	for {
		msg, err := b.ps.Receive(b.ctx)
		if err != nil {
			if b.ctx.Err() != nil {
				return
			}
			resync = true
			select {
			case <-b.ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if resync {
				resync = false
				b.resync()
			}
		case *redis.Message:
			s, err := unmarshalSnapshot(m.Payload)
			if err != nil {
				continue
			}
			b.mu.Lock()
			lr := b.byChannel[m.Channel]
			b.mu.Unlock()
			if lr != nil && lr.deliver(s) {
				b.m.lag.Observe(b.o.Now().Sub(s.Published).Seconds())
			}
		}
	}
}

func (b *Broker) resync() {
	b.mu.Lock()
	ranges := make([]*liveRange, 0, len(b.ranges))
	for _, lr := range b.ranges {
		ranges = append(ranges, lr)
	}
	b.mu.Unlock()
	for _, lr := range ranges {
		if s, err := b.readSnapshot(b.ctx, lr); err == nil && s != nil {
			lr.deliver(s)
		}
	}
}

// Stats are counts for tests and the load generator.
type Stats struct{ Clients, Ranges int }

// Stats returns the current counts.
func (b *Broker) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return Stats{Clients: b.clients, Ranges: len(b.ranges)}
}
