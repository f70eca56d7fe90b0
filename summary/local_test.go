package summary

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"
)

// countingCache is a Cache in a map that counts its reads.
type countingCache struct {
	mu    sync.Mutex
	m     map[string]Entry
	reads int
}

func (c *countingCache) Get(_ context.Context, k string) (Entry, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reads++
	e, ok := c.m[k]
	return e, ok, nil
}
func (c *countingCache) GetStale(ctx context.Context, k string) (Entry, bool, error) {
	return c.Get(ctx, k)
}
func (c *countingCache) Set(_ context.Context, k string, e Entry) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[k] = e
	return nil
}

// settableStore answers what it is told, counting its calls.
type settableStore struct {
	mu    sync.Mutex
	total int64
	calls int
}

func (s *settableStore) Summary(context.Context, Range) (Summary, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	return Summary{TotalEvents: s.total, UniqueUsers: 1, EventsByType: TypeCounts{{Type: "a", Count: s.total}}}, nil
}

func TestLocalTier(t *testing.T) {
	ctx := context.Background()
	clock := time.Date(2024, 5, 1, 12, 0, 1, 0, time.UTC) // 1 s into a 5 s interval
	cache := &countingCache{m: map[string]Entry{}}
	store := &settableStore{total: 10}
	svc := NewService(store, cache, ServiceOptions{LocalEntries: 2, RefreshInterval: 5 * time.Second, CacheTTL: time.Minute})
	svc.now = func() time.Time { return clock }
	r := Range{From: clock.Add(-time.Hour), To: clock}
	get := func() Result {
		t.Helper()
		res, err := svc.Get(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}

	first := get()
	if first.Cached || store.calls != 1 {
		t.Fatalf("first answer: cached=%v after %d store calls; want computed", first.Cached, store.calls)
	}
	reads := cache.reads
	second, third := get(), get()
	if !second.Cached || !third.Cached || cache.reads != reads || store.calls != 1 {
		t.Fatalf("hot answers: cached %v %v, %d cache reads, %d store calls; want memory only", second.Cached, third.Cached, cache.reads-reads, store.calls)
	}
	// The same bytes as an answer read from the cache (Redis) would be.
	fromCache := Result{Summary: first.Summary, Cached: true, ComputedAt: first.ComputedAt}
	if !bytes.Equal(second.Body(r), encodeBody(r, fromCache)) || &second.Body(r)[0] != &third.Body(r)[0] {
		t.Fatalf("body %q, want %q, encoded once", second.Body(r), encodeBody(r, fromCache))
	}

	// A newer snapshot of the range arrived: the next answer is re-read.
	cache.m[r.Key()] = Entry{Summary: Summary{TotalEvents: 11, EventsByType: TypeCounts{}}, ComputedAt: clock}
	svc.Invalidate(r.Key())
	if got := get(); got.Summary.TotalEvents != 11 || !got.Cached || cache.reads != reads+1 {
		t.Fatalf("after Invalidate: %+v, %d cache reads; want 11 from the cache", got, cache.reads-reads)
	}

	// The next refresh boundary ends the entry.
	cache.m[r.Key()] = Entry{Summary: Summary{TotalEvents: 12, EventsByType: TypeCounts{}}, ComputedAt: clock}
	clock = clock.Add(3900 * time.Millisecond) // 12:00:04.9
	if got := get(); got.Summary.TotalEvents != 11 {
		t.Fatalf("within the interval: %d, want 11 from memory", got.Summary.TotalEvents)
	}
	clock = clock.Add(100 * time.Millisecond) // 12:00:05
	if got := get(); got.Summary.TotalEvents != 12 {
		t.Fatalf("at the boundary: %d, want 12 from the cache", got.Summary.TotalEvents)
	}

	// Never kept longer than the cache would keep it.
	svc.local.ttl = 2 * time.Second
	r2 := Range{From: clock.Add(-2 * time.Hour), To: clock.Add(-2 * time.Second)}
	cache.m[r2.Key()] = Entry{Summary: Summary{TotalEvents: 5, EventsByType: TypeCounts{}}, ComputedAt: clock.Add(-1500 * time.Millisecond)}
	if res, _ := svc.Get(ctx, r2); !res.Cached {
		t.Fatal("cache hit not cached")
	}
	clock = clock.Add(600 * time.Millisecond)
	reads = cache.reads
	if _, _ = svc.Get(ctx, r2); cache.reads != reads+1 {
		t.Fatal("an entry outlived the cache's TTL in memory")
	}

	// Bounded: at most LocalEntries entries.
	for i := range 10 {
		rr := Range{From: clock.Add(-time.Duration(i+3) * time.Hour), To: clock}
		if _, err := svc.Get(ctx, rr); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(svc.local.m); n > 2 {
		t.Fatalf("%d entries in memory, bound 2", n)
	}
}

func TestLocalTierOffWithoutCache(t *testing.T) {
	store := &settableStore{total: 1}
	svc := NewService(store, nil, ServiceOptions{LocalEntries: 10, RefreshInterval: time.Second, CacheTTL: time.Minute})
	r := Range{From: time.Unix(0, 0), To: time.Unix(60, 0)}
	for range 2 {
		if res, _ := svc.Get(context.Background(), r); res.Cached {
			t.Fatal("no cache, yet an answer says cached")
		}
	}
	if store.calls != 2 {
		t.Fatalf("%d store calls, want 2", store.calls)
	}
}

// TestLiveAbsoluteRangeIsNotServedFromAnEarlierInterval: an absolute range
// that ends in the future keeps one cache key while its numbers change. A
// cached answer for it is used within the interval it was computed in,
// never after (the cache's TTL is a minute; the stream refreshes every
// interval, and the page and the stream must not disagree for a minute).
// Once the range has ended, an answer computed after its end is used
// across intervals as before.
func TestLiveAbsoluteRangeIsNotServedFromAnEarlierInterval(t *testing.T) {
	ctx := context.Background()
	clock := time.Date(2024, 5, 1, 12, 0, 1, 0, time.UTC)
	cache := &countingCache{m: map[string]Entry{}}
	store := &settableStore{total: 10}
	for _, local := range []int{0, 100} {
		svc := NewService(store, cache, ServiceOptions{LocalEntries: local, RefreshInterval: 5 * time.Second, CacheTTL: time.Minute})
		svc.now = func() time.Time { return clock }
		r := Range{From: clock.Add(-time.Hour), To: clock.Add(time.Hour)} // ends in an hour
		get := func(want int64, cached bool) {
			t.Helper()
			res, err := svc.Get(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			if res.Summary.TotalEvents != want || res.Cached != cached {
				t.Fatalf("local tier %d at %s: %d (cached %v), want %d (cached %v)", local, clock.Format("15:04:05.0"), res.Summary.TotalEvents, res.Cached, want, cached)
			}
		}
		store.total = 10
		clear(cache.m)
		get(10, false)
		store.total = 11
		clock = clock.Add(3 * time.Second) // 12:00:04, same interval
		get(10, true)
		clock = clock.Add(time.Second) // 12:00:05, the next one
		get(11, false)
		store.total = 12
		clock = clock.Add(4 * time.Second) // 12:00:09
		get(11, true)

		// After its end: computed once past it, cached from then on.
		clock = r.To.Add(time.Second)
		get(12, false)
		store.total = 13
		clock = clock.Add(30 * time.Second)
		get(12, true)
		clock = r.To.Add(-2 * time.Hour) // back, for the next round
	}
}

func TestLastModified(t *testing.T) {
	at := time.Date(2024, 5, 1, 14, 0, 1, 0, time.FixedZone("CEST", 2*3600))
	for _, res := range []Result{{ComputedAt: at}, {ComputedAt: at, body: &encodedBody{}}} {
		for range 2 {
			if got := res.LastModified(); got != "Wed, 01 May 2024 12:00:01 GMT" {
				t.Fatalf("LastModified = %q", got)
			}
		}
	}
}
