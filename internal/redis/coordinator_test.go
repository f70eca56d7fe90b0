package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/liveanalytics/analyticsd/internal/testenv"
	"github.com/liveanalytics/analyticsd/stream"
)

// received collects what a coordinator's Listen delivers.
type received struct {
	mu   sync.Mutex
	seen map[string][]int64
}

func listen(t *testing.T, c *Coordinator) *received {
	t.Helper()
	r := &received{seen: map[string][]int64{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Listen(ctx, func(key string, s *stream.Snapshot) {
			r.mu.Lock()
			r.seen[key] = append(r.seen[key], s.Version)
			r.mu.Unlock()
		}, func() {})
	}()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

func (r *received) waitFor(t *testing.T, key string, version int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r.mu.Lock()
		ok := slices.Contains(r.seen[key], version)
		r.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: version %d never delivered", key, version)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func snap(v int64) *stream.Snapshot {
	return &stream.Snapshot{Version: v, Data: []byte(`{"v":` + fmt.Sprint(v) + `}`), Published: time.UnixMilli(1700000000000 + v)}
}

// coordinate checks the whole contract between two instances a and b.
func coordinate(t *testing.T, a, b *Coordinator, keys []string) {
	ctx := context.Background()
	ra, rb := listen(t, a), listen(t, b)
	for _, k := range keys {
		for _, c := range []*Coordinator{a, b} {
			if err := c.Watch(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
	}
	time.Sleep(100 * time.Millisecond) // subscriptions reach the server
	leases(t, a, b, keys)
	for i, k := range keys {
		if err := a.Publish(ctx, k, snap(7), time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := b.Publish(ctx, k, snap(6), time.Minute); !errors.Is(err, stream.ErrFenced) {
			t.Fatalf("older publish: %v, want fenced", err)
		}
		rb.waitFor(t, k, 7)
		ra.waitFor(t, k, 7)
		if s, err := b.Latest(ctx, k); err != nil || s == nil || s.Version != 7 || string(s.Data) != `{"v":7}` {
			t.Fatalf("latest %d: %+v %v", i, s, err)
		}
	}
	// The same contract in one round trip for every range: newer
	// snapshots are stored and announced, older or equal ones fenced.
	pubs := make([]stream.Publication, len(keys))
	for i, k := range keys {
		pubs[i] = stream.Publication{Key: k, Snapshot: snap(8)}
	}
	for i, err := range a.PublishAll(ctx, pubs, time.Minute) {
		if err != nil {
			t.Fatalf("publish all %d: %v", i, err)
		}
	}
	for i, err := range b.PublishAll(ctx, append(pubs, stream.Publication{Key: keys[0], Snapshot: snap(7)}), time.Minute) {
		if !errors.Is(err, stream.ErrFenced) {
			t.Fatalf("publish all of as new or older %d: %v, want fenced", i, err)
		}
	}
	for _, k := range keys {
		rb.waitFor(t, k, 8)
		ra.waitFor(t, k, 8)
	}
	if err := b.Unwatch(ctx, keys[0]); err != nil {
		t.Fatal(err)
	}
}

// leases checks the batched leases of interval 7 of keys: a takes them
// all in one call, b loses them all and learns how long they hold, only
// the holder's renewal extends them.
func leases(t *testing.T, a, b *Coordinator, keys []string) {
	t.Helper()
	ctx := context.Background()
	refs := make([]stream.LeaseRef, len(keys))
	for i, k := range keys {
		refs[i] = stream.LeaseRef{Key: k, Interval: 7}
	}
	got, err := a.TryLeases(ctx, refs, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range got {
		if !l.Won || l.TTL != 2*time.Second {
			t.Fatalf("first lease of %s: %+v", keys[i], l)
		}
	}
	got, err = b.TryLeases(ctx, append(refs, stream.LeaseRef{Key: keys[0], Interval: 8}), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range got[:len(keys)] {
		if l.Won || l.TTL <= 0 || l.TTL > 2*time.Second {
			t.Fatalf("second lease of %s, interval 7: %+v, want lost with the holder's time left", keys[i], l)
		}
	}
	if l := got[len(keys)]; !l.Won {
		t.Fatalf("interval 8 is free: %+v", l)
	}
	ttl := func(r stream.LeaseRef) time.Duration {
		d, err := a.rdb.PTTL(ctx, a.lease(r.Key, r.Interval)).Result()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if err := b.RenewLeases(ctx, refs, time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, r := range refs {
		if d := ttl(r); d > 2*time.Second {
			t.Fatalf("a lease renewed by an instance that does not hold it: %v left", d)
		}
	}
	if err := a.RenewLeases(ctx, refs, time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, r := range refs {
		if d := ttl(r); d <= 2*time.Second {
			t.Fatalf("the holder's renewal did not extend %s: %v left", r.Key, d)
		}
	}
}

// TestRenewAfterScriptFlush: a Redis that lost its scripts (a restart,
// SCRIPT FLUSH) still renews leases and publishes: a pipeline of EVALSHA
// answered NOSCRIPT loads the script and runs again.
func TestRenewAfterScriptFlush(t *testing.T) {
	t.Parallel()
	srv := testenv.StartRedis(t)
	rdb, err := NewClient(srv.URL(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	ctx := context.Background()
	c := NewCoordinator(rdb, "flush:")
	refs := []stream.LeaseRef{{Key: "k", Interval: 1}}
	if got, err := c.TryLeases(ctx, refs, time.Second); err != nil || !got[0].Won {
		t.Fatalf("lease: %+v %v", got, err)
	}
	for range 2 {
		if err := rdb.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		if err := c.RenewLeases(ctx, refs, time.Minute); err != nil {
			t.Fatal(err)
		}
		if d := rdb.PTTL(ctx, c.lease("k", 1)).Val(); d <= time.Second {
			t.Fatalf("not renewed after SCRIPT FLUSH: %v left", d)
		}
	}
	for v := range int64(2) {
		if err := rdb.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		if errs := c.PublishAll(ctx, []stream.Publication{{Key: "k", Snapshot: snap(v)}}, time.Minute); errs[0] != nil {
			t.Fatalf("publish after SCRIPT FLUSH: %v", errs[0])
		}
		if s, err := c.Latest(ctx, "k"); err != nil || s == nil || s.Version != v {
			t.Fatalf("latest after SCRIPT FLUSH: %+v %v", s, err)
		}
	}
}

func TestCoordinatorOnOneNode(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	a, b := NewCoordinator(rdb, prefix), NewCoordinator(rdb, prefix)
	if a.Sharded() {
		t.Fatal("one node: classic pub/sub")
	}
	coordinate(t, a, b, []string{"now-3600000000us:now0us", "2024-01-01T00:00:00.000Z:2024-01-02T00:00:00.000Z:type=a%7Db"})
}

// TestShardedPubSubOnCluster runs the contract on a real three-node
// cluster and checks where the channels live: each is a shard channel on
// the one master that owns its slot, and no node has a classic channel,
// so an announcement reaches one shard instead of being broadcast.
func TestShardedPubSubOnCluster(t *testing.T) {
	t.Parallel()
	url := testenv.StartRedisCluster(t)
	rdb, err := NewClient(url, true)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	prefix := testenv.RandomName("c:") + ":"
	a, b := NewCoordinator(rdb, prefix), NewCoordinator(rdb, prefix)
	if !a.Sharded() {
		t.Fatal("cluster: sharded pub/sub")
	}
	var keys []string
	for i := range 24 {
		keys = append(keys, fmt.Sprintf("now-%dus:now0us", (i+1)*1_000_000))
	}
	coordinate(t, a, b, keys)

	ctx := context.Background()
	cluster := rdb.(*goredis.ClusterClient)
	owner := map[string]string{}
	for _, k := range keys[1:] { // keys[0] was unwatched by b, still watched by a
		node, err := cluster.MasterForKey(ctx, a.channel(k))
		if err != nil {
			t.Fatal(err)
		}
		owner[a.channel(k)] = node.Options().Addr
	}
	shards := map[string]bool{}
	var mu sync.Mutex // ForEachMaster runs the nodes concurrently
	err = cluster.ForEachMaster(ctx, func(ctx context.Context, node *goredis.Client) error {
		addr := node.Options().Addr
		sharded, err := node.Do(ctx, "PUBSUB", "SHARDCHANNELS", prefix+"*").StringSlice()
		if err != nil {
			return err
		}
		classic, err := node.PubSubChannels(ctx, prefix+"*").Result()
		if err != nil {
			return err
		}
		if len(classic) > 0 {
			return fmt.Errorf("%s has classic channels %v", addr, classic)
		}
		for _, ch := range sharded {
			if want, ok := owner[ch]; ok && want != addr {
				return fmt.Errorf("channel %s subscribed on %s, its slot is on %s", ch, addr, want)
			}
		}
		for ch, want := range owner {
			if want == addr && !slices.Contains(sharded, ch) {
				return fmt.Errorf("channel %s missing on its shard %s (has %v)", ch, addr, sharded)
			}
		}
		if len(sharded) > 0 {
			mu.Lock()
			shards[addr] = true
			mu.Unlock()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(shards) < 2 {
		t.Fatalf("24 ranges landed on %d shard(s); the test wants them spread", len(shards))
	}
}
