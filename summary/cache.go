package summary

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	b, err := c.rdb.Get(ctx, k).Bytes()
	if errors.Is(err, redis.Nil) {
		return Entry{}, false, nil
	}
	if err != nil {
		return Entry{}, false, fmt.Errorf("summary: cache get: %w", err)
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
		return fmt.Errorf("summary: cache set: %w", err)
	}
	return nil
}
