package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/liveanalytics/analyticsd/summary"
)

// Cache implements summary.Cache.
type Cache struct {
	rdb      Client
	prefix   string
	ttl      time.Duration
	staleTTL time.Duration
	// downUntil (unix nanos) is a one-second circuit breaker: after a
	// failure the cache answers errCacheDown at once instead of making
	// every request wait for Redis to refuse or time out again.
	downUntil atomic.Int64
}

// breakFor is how long the cache stays open after a Redis failure; the
// first call after it probes Redis again.
const breakFor = time.Second

var errCacheDown = errors.New("redis: cache: redis failed within the last second")

func (c *Cache) open() bool { return time.Now().UnixNano() < c.downUntil.Load() }

func (c *Cache) failed(err error) error {
	c.downUntil.Store(time.Now().Add(breakFor).UnixNano())
	return err
}

var _ summary.Cache = (*Cache)(nil)

// NewCache stores entries under prefix+"summary:v1:<from>:<to>" for
// ttl, and a stale copy under prefix+"summary:v1:stale:<from>:<to>" for
// staleTTL (zero: no stale copy).
func NewCache(rdb Client, prefix string, ttl, staleTTL time.Duration) *Cache {
	return &Cache{rdb: rdb, prefix: prefix, ttl: ttl, staleTTL: staleTTL}
}

// Key is the Redis key of a range's fresh entry.
func (c *Cache) Key(rangeKey string) string { return c.prefix + "summary:v1:" + rangeKey }

func (c *Cache) staleKey(rangeKey string) string {
	return c.prefix + "summary:v1:stale:" + rangeKey
}

// Get reads the fresh entry.
func (c *Cache) Get(ctx context.Context, key string) (summary.Entry, bool, error) {
	return c.get(ctx, c.Key(key))
}

// GetStale reads the long-lived copy.
func (c *Cache) GetStale(ctx context.Context, key string) (summary.Entry, bool, error) {
	if c.staleTTL <= 0 {
		return summary.Entry{}, false, nil
	}
	return c.get(ctx, c.staleKey(key))
}

func (c *Cache) get(ctx context.Context, k string) (summary.Entry, bool, error) {
	if c.open() {
		return summary.Entry{}, false, errCacheDown
	}
	b, err := c.rdb.Get(ctx, k).Bytes()
	if errors.Is(err, goredis.Nil) {
		return summary.Entry{}, false, nil
	}
	if err != nil {
		return summary.Entry{}, false, c.failed(fmt.Errorf("redis: cache get: %w", err))
	}
	var e summary.Entry
	if err := json.Unmarshal(b, &e); err != nil {
		// A value we cannot read is a miss; the next Set replaces it.
		return summary.Entry{}, false, nil
	}
	return e, true, nil
}

// Set writes the fresh entry and the stale copy in one round trip.
func (c *Cache) Set(ctx context.Context, key string, e summary.Entry) error {
	if c.open() {
		return errCacheDown
	}
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("redis: cache set: %w", err)
	}
	_, err = c.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		p.Set(ctx, c.Key(key), b, c.ttl)
		if c.staleTTL > 0 {
			p.Set(ctx, c.staleKey(key), b, c.staleTTL)
		}
		return nil
	})
	if err != nil {
		return c.failed(fmt.Errorf("redis: cache set: %w", err))
	}
	return nil
}

// DeletePrefix deletes every key under prefix (SCAN, not KEYS: it does
// not block Redis). For tests and benchmarks that must leave nothing.
func DeletePrefix(ctx context.Context, rdb Client, prefix string) error {
	del := func(ctx context.Context, c *goredis.Client) error {
		iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			if err := c.Del(ctx, iter.Val()).Err(); err != nil {
				return err
			}
		}
		return iter.Err()
	}
	if cc, ok := rdb.(*goredis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, del)
	}
	if c, ok := rdb.(*goredis.Client); ok {
		return del(ctx, c)
	}
	return errors.New("redis: delete prefix: unknown client kind")
}
