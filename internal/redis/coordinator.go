package redis

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/liveanalytics/analyticsd/stream"
)

// Coordinator implements stream.Coordinator on Redis. A range's keys are
// prefix + "stream:{<range key>}:" + lease:<k> | snap | ch; the braces are
// a Redis Cluster hash tag, so one range's keys and channel share a slot
// and the compare-and-set script can touch them together. The census of
// interval k is the set prefix + "stream:census:<k>".
//
// On one node, snapshots are announced with PUBLISH on one subscription
// connection. On a Redis Cluster they travel by sharded pub/sub (SPUBLISH,
// SSUBSCRIBE; Redis 7): a message goes only to the shard that owns the
// range's slot, not to every node, and each instance keeps one
// subscription connection per shard it needs.
//
// A Coordinator serves one broker: its subscriptions close when Listen
// returns.
type Coordinator struct {
	rdb     Client
	prefix  string
	token   string // this instance's name on the leases it holds
	cluster *goredis.ClusterClient

	mu      sync.Mutex
	subs    map[string]*subscription // by shard address ("" on one node)
	shardOf map[string]string        // watched channel → shard address
	listen  *listener                // set while Listen runs
	wg      sync.WaitGroup           // receivers, owned by Listen
}

// subscription is one pub/sub connection and whether its receiver runs.
type subscription struct {
	ps      *goredis.PubSub
	running bool
}

// listener is what Listen hands its receivers.
type listener struct {
	ctx     context.Context
	deliver func(string, *stream.Snapshot)
	resync  func()
}

var _ stream.Coordinator = (*Coordinator)(nil)

// NewCoordinator coordinates through rdb under prefix.
func NewCoordinator(rdb Client, prefix string) *Coordinator {
	tok := make([]byte, 8)
	_, _ = rand.Read(tok)
	c := &Coordinator{rdb: rdb, prefix: prefix, token: hex.EncodeToString(tok),
		subs: map[string]*subscription{}, shardOf: map[string]string{}}
	c.cluster, _ = rdb.(*goredis.ClusterClient)
	return c
}

// Sharded reports whether snapshots travel by sharded pub/sub.
func (c *Coordinator) Sharded() bool { return c.cluster != nil }

func (c *Coordinator) base(key string) string    { return c.prefix + "stream:{" + key + "}:" }
func (c *Coordinator) channel(key string) string { return c.base(key) + "ch" }
func (c *Coordinator) lease(key string, k int64) string {
	return c.base(key) + "lease:" + strconv.FormatInt(k, 10)
}

// rangeKey is the range a channel announces.
func (c *Coordinator) rangeKey(channel string) (string, bool) {
	rest, ok := strings.CutPrefix(channel, c.prefix+"stream:{")
	if !ok {
		return "", false
	}
	return strings.CutSuffix(rest, "}:ch")
}

// TryLeases takes each lease with SET NX PX and reads its remaining
// time with PTTL, all in one pipeline: one round trip for every range due
// at a boundary. A loser learns when the holder's lease would lapse if it
// stopped renewing, and need not ask again before then.
func (c *Coordinator) TryLeases(ctx context.Context, leases []stream.LeaseRef, ttl time.Duration) ([]stream.Lease, error) {
	if len(leases) == 0 {
		return nil, nil
	}
	sets := make([]*goredis.BoolCmd, len(leases))
	ttls := make([]*goredis.DurationCmd, len(leases))
	_, err := c.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, l := range leases {
			key := c.lease(l.Key, l.Interval)
			sets[i] = p.SetNX(ctx, key, c.token, ttl)
			ttls[i] = p.PTTL(ctx, key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("redis: lease: %w", err)
	}
	out := make([]stream.Lease, len(leases))
	for i := range leases {
		if sets[i].Val() {
			out[i] = stream.Lease{Won: true, TTL: ttl}
			continue
		}
		// PTTL is -2 when the key expired between the two commands.
		out[i] = stream.Lease{TTL: max(ttls[i].Val(), 0)}
	}
	return out, nil
}

// renewScript extends a lease only for the instance that holds it.
var renewScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`)

// RenewLeases extends the leases this instance still holds, in one
// pipeline. The script is loaded once (EVALSHA falls back to EVAL only
// when Redis lost it, e.g. after a restart).
func (c *Coordinator) RenewLeases(ctx context.Context, leases []stream.LeaseRef, ttl time.Duration) error {
	if len(leases) == 0 {
		return nil
	}
	run := func() ([]goredis.Cmder, error) {
		return c.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for _, l := range leases {
				renewScript.EvalSha(ctx, p, []string{c.lease(l.Key, l.Interval)}, c.token, ttl.Milliseconds())
			}
			return nil
		})
	}
	_, err := run()
	if err != nil && goredis.HasErrorPrefix(err, "NOSCRIPT") {
		if err = renewScript.Load(ctx, c.rdb).Err(); err == nil {
			_, err = run()
		}
	}
	if err != nil {
		return fmt.Errorf("redis: renew: %w", err)
	}
	return nil
}

// casScript stores and announces a snapshot only if it is newer than the
// stored one, so a stalled old leader can never overwrite a newer snapshot.
// The stored value starts with the version and a newline. ARGV[5] is
// PUBLISH, or SPUBLISH on a cluster (the channel shares the key's slot).
var casScript = goredis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur then
  local v = tonumber(string.sub(cur, 1, string.find(cur, '\n') - 1))
  if v and v >= tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call(ARGV[5], ARGV[4], ARGV[2])
return 1`)

// Publish is the fenced compare-and-set publish.
func (c *Coordinator) Publish(ctx context.Context, key string, s *stream.Snapshot, ttl time.Duration) error {
	publish := "PUBLISH"
	if c.Sharded() {
		publish = "SPUBLISH"
	}
	n, err := casScript.Run(ctx, c.rdb, []string{c.base(key) + "snap"}, s.Version, marshalSnapshot(s), ttl.Milliseconds(), c.channel(key), publish).Int()
	if err != nil {
		return fmt.Errorf("redis: publish: %w", err)
	}
	if n == 0 {
		return stream.ErrFenced
	}
	return nil
}

// PublishAll is the fenced publish of many ranges in one pipeline.
func (c *Coordinator) PublishAll(ctx context.Context, ps []stream.Publication, ttl time.Duration) []error {
	publish := "PUBLISH"
	if c.Sharded() {
		publish = "SPUBLISH"
	}
	cmds := make([]*goredis.Cmd, len(ps))
	run := func() error {
		_, err := c.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for i, pub := range ps {
				cmds[i] = casScript.EvalSha(ctx, p, []string{c.base(pub.Key) + "snap"}, pub.Snapshot.Version,
					marshalSnapshot(pub.Snapshot), ttl.Milliseconds(), c.channel(pub.Key), publish)
			}
			return nil
		})
		return err
	}
	if err := run(); err != nil && goredis.HasErrorPrefix(err, "NOSCRIPT") {
		if casScript.Load(ctx, c.rdb).Err() == nil {
			_ = run()
		}
	}
	errs := make([]error, len(ps))
	for i, cmd := range cmds {
		switch n, err := cmd.Int(); {
		case err != nil:
			errs[i] = fmt.Errorf("redis: publish: %w", err)
		case n == 0:
			errs[i] = stream.ErrFenced
		}
	}
	return errs
}

// Latest reads the stored snapshot.
func (c *Coordinator) Latest(ctx context.Context, key string) (*stream.Snapshot, error) {
	p, err := c.rdb.Get(ctx, c.base(key)+"snap").Result()
	if errors.Is(err, goredis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("redis: latest: %w", err)
	}
	return unmarshalSnapshot(p)
}

// Census adds keys to interval k's set (one round trip: SADD, PEXPIRE,
// SCARD) and returns the set's size.
func (c *Coordinator) Census(ctx context.Context, k int64, keys []string, ttl time.Duration) (int, error) {
	set := c.prefix + "stream:census:" + strconv.FormatInt(k, 10)
	var card *goredis.IntCmd
	_, err := c.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		if len(keys) > 0 {
			members := make([]any, len(keys))
			for i, key := range keys {
				members[i] = key
			}
			p.SAdd(ctx, set, members...)
			p.PExpire(ctx, set, ttl)
		}
		card = p.SCard(ctx, set)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("redis: census: %w", err)
	}
	return int(card.Val()), nil
}

// Watch subscribes to the range's channel: on a cluster, on the
// connection to the shard that owns its slot.
func (c *Coordinator) Watch(ctx context.Context, key string) error {
	ch := c.channel(key)
	shard, open := "", c.rdb.Subscribe
	if c.cluster != nil {
		node, err := c.cluster.MasterForKey(ctx, ch)
		if err != nil {
			return fmt.Errorf("redis: watch: %w", err)
		}
		shard, open = node.Options().Addr, node.SSubscribe
	}
	c.mu.Lock()
	sub := c.subs[shard]
	if sub == nil {
		// No connection yet: the first (S)SUBSCRIBE opens it.
		sub = &subscription{ps: open(ctx)}
		c.subs[shard] = sub
	}
	c.shardOf[ch] = shard
	c.startReceiver(sub)
	c.mu.Unlock()
	if c.cluster != nil {
		return sub.ps.SSubscribe(ctx, ch)
	}
	return sub.ps.Subscribe(ctx, ch)
}

// Unwatch unsubscribes from the range's channel.
func (c *Coordinator) Unwatch(ctx context.Context, key string) error {
	ch := c.channel(key)
	c.mu.Lock()
	shard, ok := c.shardOf[ch]
	delete(c.shardOf, ch)
	sub := c.subs[shard]
	c.mu.Unlock()
	if !ok || sub == nil {
		return nil
	}
	if c.cluster != nil {
		return sub.ps.SUnsubscribe(ctx, ch)
	}
	return sub.ps.Unsubscribe(ctx, ch)
}

// Listen receives announcements on every subscription connection until
// ctx ends, then closes them. Pub/sub is at-most-once: after a reconnect
// (go-redis resubscribes) it calls resync, so a message lost during the
// outage costs one interval at most.
func (c *Coordinator) Listen(ctx context.Context, deliver func(string, *stream.Snapshot), resync func()) {
	c.mu.Lock()
	c.listen = &listener{ctx: ctx, deliver: deliver, resync: resync}
	for _, sub := range c.subs {
		c.startReceiver(sub)
	}
	c.mu.Unlock()
	<-ctx.Done()
	c.mu.Lock()
	for _, sub := range c.subs {
		_ = sub.ps.Close()
	}
	c.mu.Unlock()
	c.wg.Wait()
}

// startReceiver starts sub's receiver once Listen runs (c.mu held).
func (c *Coordinator) startReceiver(sub *subscription) {
	if c.listen == nil || sub.running || c.listen.ctx.Err() != nil {
		return
	}
	sub.running = true
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.receive(c.listen, sub.ps)
	}()
}

// receive reads one subscription connection until l.ctx ends.
func (c *Coordinator) receive(l *listener, ps *goredis.PubSub) {
	gap := false
	for {
		msg, err := ps.Receive(l.ctx)
		if err != nil {
			if l.ctx.Err() != nil {
				return
			}
			gap = true
			select {
			case <-l.ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		switch m := msg.(type) {
		case *goredis.Subscription:
			switch {
			case m.Kind == "sunsubscribe" && c.stillWatched(m.Channel):
				// The slot moved to another shard, which told us to go:
				// learn the new slot map, follow the channel, and re-read
				// what we may have missed.
				if key, ok := c.rangeKey(m.Channel); ok {
					c.cluster.ReloadState(l.ctx)
					select {
					case <-l.ctx.Done():
						return
					case <-time.After(100 * time.Millisecond):
					}
					_ = c.Watch(l.ctx, key)
					l.resync()
				}
			case gap:
				gap = false
				l.resync()
			}
		case *goredis.Message:
			key, ok := c.rangeKey(m.Channel)
			if !ok {
				continue
			}
			if s, err := unmarshalSnapshot(m.Payload); err == nil {
				l.deliver(key, s)
			}
		}
	}
}

// stillWatched reports whether channel is watched on its recorded shard.
func (c *Coordinator) stillWatched(channel string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.shardOf[channel]
	return ok
}

// marshalSnapshot is "<version>\n<published unix ms>\n<json>".
func marshalSnapshot(s *stream.Snapshot) string {
	return strconv.FormatInt(s.Version, 10) + "\n" + strconv.FormatInt(s.Published.UnixMilli(), 10) + "\n" + string(s.Data)
}

func unmarshalSnapshot(p string) (*stream.Snapshot, error) {
	parts := bytes.SplitN([]byte(p), []byte("\n"), 3)
	if len(parts) != 3 {
		return nil, errors.New("redis: malformed snapshot")
	}
	v, err1 := strconv.ParseInt(string(parts[0]), 10, 64)
	ms, err2 := strconv.ParseInt(string(parts[1]), 10, 64)
	if err1 != nil || err2 != nil || !json.Valid(parts[2]) {
		return nil, errors.New("redis: malformed snapshot")
	}
	return &stream.Snapshot{Version: v, Published: time.UnixMilli(ms), Data: parts[2]}, nil
}
