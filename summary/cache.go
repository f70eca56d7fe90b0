package summary

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Entry is what the cache holds for one range.
type Entry struct {
	Summary    Summary   `json:"summary"`
	ComputedAt time.Time `json:"computedAt"`
}

// Cache stores computed summaries by canonical range key. Fresh entries
// expire after the cache TTL; a stale copy lives longer so that a
// PostgreSQL outage can still be answered.
type Cache interface {
	Get(ctx context.Context, key string) (Entry, bool, error)
	GetStale(ctx context.Context, key string) (Entry, bool, error)
	Set(ctx context.Context, key string, e Entry) error
}

// RedisCache implements Cache on Redis (one node or a cluster).
type RedisCache struct {
	rdb      redis.UniversalClient
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

var errCacheDown = errors.New("summary: cache: redis failed within the last second")

func (c *RedisCache) open() bool { return time.Now().UnixNano() < c.downUntil.Load() }

func (c *RedisCache) failed(err error) error {
	c.downUntil.Store(time.Now().Add(breakFor).UnixNano())
	return err
}

var _ Cache = (*RedisCache)(nil)

// NewRedisCache stores entries under prefix+"summary:v1:<from>:<to>" for
// ttl, and a stale copy under prefix+"summary:v1:stale:<from>:<to>" for
// staleTTL (zero: no stale copy).
func NewRedisCache(rdb redis.UniversalClient, prefix string, ttl, staleTTL time.Duration) *RedisCache {
	return &RedisCache{rdb: rdb, prefix: prefix, ttl: ttl, staleTTL: staleTTL}
}

// Key is the Redis key of a range's fresh entry.
func (c *RedisCache) Key(rangeKey string) string { return c.prefix + "summary:v1:" + rangeKey }

func (c *RedisCache) staleKey(rangeKey string) string {
	return c.prefix + "summary:v1:stale:" + rangeKey
}

// Get reads the fresh entry.
func (c *RedisCache) Get(ctx context.Context, key string) (Entry, bool, error) {
	return c.get(ctx, c.Key(key))
}

// GetStale reads the long-lived copy.
func (c *RedisCache) GetStale(ctx context.Context, key string) (Entry, bool, error) {
	if c.staleTTL <= 0 {
		return Entry{}, false, nil
	}
	return c.get(ctx, c.staleKey(key))
}

func (c *RedisCache) get(ctx context.Context, k string) (Entry, bool, error) {
	if c.open() {
		return Entry{}, false, errCacheDown
	}
	b, err := c.rdb.Get(ctx, k).Bytes()
	if errors.Is(err, redis.Nil) {
		return Entry{}, false, nil
	}
	if err != nil {
		return Entry{}, false, c.failed(fmt.Errorf("summary: cache get: %w", err))
	}
	var e Entry
	if err := json.Unmarshal(b, &e); err != nil {
		// A value we cannot read is a miss; the next Set replaces it.
		return Entry{}, false, nil
	}
	return e, true, nil
}

// Set writes the fresh entry and the stale copy in one round trip.
func (c *RedisCache) Set(ctx context.Context, key string, e Entry) error {
	if c.open() {
		return errCacheDown
	}
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("summary: cache set: %w", err)
	}
	_, err = c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, c.Key(key), b, c.ttl)
		if c.staleTTL > 0 {
			p.Set(ctx, c.staleKey(key), b, c.staleTTL)
		}
		return nil
	})
	if err != nil {
		return c.failed(fmt.Errorf("summary: cache set: %w", err))
	}
	return nil
}

// TuneClusterOptions is TuneRedisOptions for a Redis Cluster.
func TuneClusterOptions(opt *redis.ClusterOptions) *redis.ClusterOptions {
	opt.DialTimeout = time.Second
	opt.ReadTimeout = 500 * time.Millisecond
	opt.WriteTimeout = 500 * time.Millisecond
	opt.PoolTimeout = time.Second
	opt.MaxRetries = 1
	opt.DialerRetries = 1
	return opt
}

// TuneRedisOptions sets timeouts and retries for a cache that must fail
// fast: go-redis's defaults (3 retries, 5 dial attempts each, 5 s dial
// timeout) make every request wait seconds while Redis is down. One retry
// is kept so that the first command on a connection Redis closed (after a
// restart) is retried on a new one.
func TuneRedisOptions(opt *redis.Options) *redis.Options {
	opt.DialTimeout = time.Second
	opt.ReadTimeout = 500 * time.Millisecond
	opt.WriteTimeout = 500 * time.Millisecond
	opt.PoolTimeout = time.Second
	opt.MaxRetries = 1
	opt.DialerRetries = 1
	return opt
}
