package summary_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveanalytics/analyticsd/internal/ingest"
	"github.com/liveanalytics/analyticsd/internal/redis"
	"github.com/liveanalytics/analyticsd/internal/testenv"
	"github.com/liveanalytics/analyticsd/storage"
	"github.com/liveanalytics/analyticsd/summary"
)

// openStore gives the test a migrated schema of its own with a few events.
func openStore(t *testing.T) *storage.DB {
	t.Helper()
	ctx := context.Background()
	db, err := storage.Open(ctx, storage.Options{URL: testenv.PostgresURL(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time {
		ts, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	err = db.InsertEvents(ctx, []ingest.Event{
		{UserID: "alice", EventType: "page_view", CreatedAt: at("2024-01-01T00:00:00Z")},
		{UserID: "alice", EventType: "click", CreatedAt: at("2024-01-01T10:00:00Z")},
		{UserID: "bob", EventType: "page_view", CreatedAt: at("2024-01-01T23:59:59.999Z")},
		{UserID: "carol", EventType: "purchase", CreatedAt: at("2024-01-02T00:00:00Z")},
	})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// countingStore counts the calls that reach the real store.
type countingStore struct {
	summary.Store
	calls atomic.Int64
	gate  chan struct{} // when set, calls wait for it to close
}

func (c *countingStore) Summary(ctx context.Context, r summary.Range) (summary.Summary, error) {
	c.calls.Add(1)
	if c.gate != nil {
		<-c.gate
	}
	return c.Store.Summary(ctx, r)
}

type fixture struct {
	store   *countingStore
	svc     *summary.Service
	reg     *prometheus.Registry
	rdb     redis.Client
	parser  summary.RangeParser
	metrics *summary.Metrics
}

func newFixture(t *testing.T, db *storage.DB, rdb redis.Client, prefix string) *fixture {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := summary.NewMetrics(reg)
	store := &countingStore{Store: db}
	cache := redis.NewCache(rdb, prefix, time.Minute, time.Hour)
	return &fixture{store: store, reg: reg, rdb: rdb, metrics: m,
		svc:    summary.NewService(store, cache, summary.ServiceOptions{Metrics: m}),
		parser: summary.RangeParser{MaxRange: 400 * 24 * time.Hour}}
}

func (f *fixture) get(t *testing.T, from, to string) summary.Result {
	t.Helper()
	r, err := f.parser.Parse(from, to)
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.svc.Get(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func (f *fixture) cacheCount(result string) float64 {
	mfs, _ := f.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "analytics_cache_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestCacheAsideHitAndSharedKey(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	f := newFixture(t, openStore(t), rdb, prefix)

	first := f.get(t, "2024-01-01T00:00:00Z", "2024-01-01T23:59:59.999Z")
	if first.Cached {
		t.Fatal("first call must miss the cache")
	}
	if first.Summary.TotalEvents != 3 || first.Summary.UniqueUsers != 2 {
		t.Fatalf("got %+v", first.Summary)
	}
	if got := first.Summary.EventsByType.Map(); got["page_view"] != 2 || got["click"] != 1 || len(got) != 2 {
		t.Fatalf("by type %v", got)
	}
	second := f.get(t, "2024-01-01T00:00:00Z", "2024-01-01T23:59:59.999Z")
	if !second.Cached {
		t.Fatal("second call must hit the cache")
	}
	// The same instants spelled with other offsets share the entry.
	third := f.get(t, "2024-01-01T02:00:00+02:00", "2024-01-01T18:59:59.999-05:00")
	if !third.Cached || third.Summary.TotalEvents != 3 {
		t.Fatalf("offset spelling missed the shared key: %+v", third)
	}
	if n := f.store.calls.Load(); n != 1 {
		t.Fatalf("store ran %d times, want 1", n)
	}
	if f.cacheCount("hit") != 2 || f.cacheCount("miss") != 1 {
		t.Fatalf("hit=%v miss=%v", f.cacheCount("hit"), f.cacheCount("miss"))
	}
	// The key in Redis is the canonical one.
	key := prefix + "summary:v1:2024-01-01T00:00:00.000Z:2024-01-01T23:59:59.999Z"
	ttl, err := rdb.TTL(context.Background(), key).Result()
	if err != nil || ttl <= 0 || ttl > time.Minute {
		t.Fatalf("key %s ttl %v err %v", key, ttl, err)
	}
}

func TestConcurrentMissesQueryOnce(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	f := newFixture(t, openStore(t), rdb, prefix)
	f.store.gate = make(chan struct{})

	const n = 20
	var wg sync.WaitGroup
	results := make(chan summary.Result, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results <- f.get(t, "2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z")
		}()
	}
	// Let every goroutine reach the service before the store answers.
	deadline := time.Now().Add(5 * time.Second)
	for f.cacheCount("miss") < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	close(f.store.gate)
	wg.Wait()
	close(results)
	for r := range results {
		if r.Summary.TotalEvents != 4 {
			t.Fatalf("got %+v", r.Summary)
		}
	}
	if c := f.store.calls.Load(); c != 1 {
		t.Fatalf("%d concurrent misses ran the store %d times, want 1", n, c)
	}
}

func TestRedisStoppedAndStarted(t *testing.T) {
	t.Parallel()
	srv := testenv.StartRedis(t)
	rdb, err := redis.NewClient(srv.URL(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	f := newFixture(t, openStore(t), rdb, "p:")

	if f.get(t, "2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z").Cached {
		t.Fatal("cold call cached")
	}
	srv.Stop()
	for i := range 3 {
		res := f.get(t, "2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z")
		if res.Cached || res.Summary.TotalEvents != 4 {
			t.Fatalf("call %d with Redis down: %+v", i, res)
		}
	}
	if f.cacheCount("error") < 3 {
		t.Fatalf("redis errors counted %v, want >= 3", f.cacheCount("error"))
	}
	srv.Start() // an empty Redis: the old entry is gone
	deadline := time.Now().Add(10 * time.Second)
	for {
		f.get(t, "2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z")
		if f.get(t, "2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z").Cached {
			break // recovered on its own
		}
		if time.Now().After(deadline) {
			t.Fatal("cache did not recover after Redis came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestPostgresDownServesCacheElseUnavailable(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	db := openStore(t)
	f := newFixture(t, db, rdb, prefix)
	f.get(t, "2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z")
	// Expire the fresh entry; only the stale copy remains.
	rdb.Del(context.Background(), prefix+"summary:v1:2024-01-01T00:00:00.000Z:2024-01-02T00:00:00.000Z")
	db.Close() // PostgreSQL is gone for this service

	res := f.get(t, "2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z")
	if !res.Cached || !res.Stale || res.Summary.TotalEvents != 4 {
		t.Fatalf("want the stale copy, got %+v", res)
	}
	if f.cacheCount("stale") != 1 {
		t.Fatalf("stale counted %v", f.cacheCount("stale"))
	}
}

func TestPostgresDownWithoutCacheIsUnavailable(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	db := openStore(t)
	f := newFixture(t, db, rdb, prefix)
	db.Close()
	r, _ := f.parser.Parse("2024-01-01T00:00:00Z", "2024-01-03T00:00:00Z")
	_, err := f.svc.Get(context.Background(), r)
	if !errors.Is(err, summary.ErrUnavailable) {
		t.Fatalf("want ErrUnavailable, got %v", err)
	}
}
