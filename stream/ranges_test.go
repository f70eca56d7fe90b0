package stream_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveanalytics/analyticsd/internal/redis"
	"github.com/liveanalytics/analyticsd/internal/testenv"
	"github.com/liveanalytics/analyticsd/stream"
	"github.com/liveanalytics/analyticsd/summary"
)

// recordingSource is the real summary service, recording every range it
// refreshes: a live range refreshed for interval k is resolved at k's
// boundary, so each (range, interval) has its own key.
type recordingSource struct {
	*summary.Service
	mu   sync.Mutex
	seen map[string]int // resolved range key → refreshes
	at   map[string]time.Time
}

func (s *recordingSource) Refresh(ctx context.Context, r summary.Range) (summary.Result, error) {
	s.mu.Lock()
	s.seen[r.Key()]++
	s.at[r.Key()] = r.To
	s.mu.Unlock()
	return s.Service.Refresh(ctx, r)
}

// countingCoordinator counts the coordination calls that take leases.
type countingCoordinator struct {
	stream.Coordinator
	tries, renewals atomic.Int64
}

func (c *countingCoordinator) TryLeases(ctx context.Context, ls []stream.LeaseRef, ttl time.Duration) ([]stream.Lease, error) {
	c.tries.Add(1)
	return c.Coordinator.TryLeases(ctx, ls, ttl)
}

func (c *countingCoordinator) RenewLeases(ctx context.Context, ls []stream.LeaseRef, ttl time.Duration) error {
	c.renewals.Add(1)
	return c.Coordinator.RenewLeases(ctx, ls, ttl)
}

// TestManyRangesOneRefreshEach: 150 live ranges on two brokers sharing
// the real Redis, over the real store. Each range is computed exactly
// once per interval across both instances (no interval twice, none
// skipped), every client sees every version, and neither the lease calls
// per interval nor the broker's goroutines grow with the ranges: one
// scheduler, not a loop, a timer and a lease round trip per range.
func TestManyRangesOneRefreshEach(t *testing.T) {
	// Not parallel: it counts refreshes per interval.
	const (
		ranges = 150
		every  = time.Second
		T      = 5 // intervals checked
	)
	e := newEnv(t)
	parser := summary.RangeParser{Align: every, MaxRange: 400 * 24 * time.Hour}
	src := &recordingSource{seen: map[string]int{}, at: map[string]time.Time{}}
	cacheRDB, _ := testenv.Redis(t) // the cache on its own client: only coordination is counted
	src.Service = summary.NewService(e.db, redis.NewCache(cacheRDB, e.prefix, time.Minute, 0),
		summary.ServiceOptions{Metrics: summary.NewMetrics(prometheus.NewRegistry())})
	stop := make(chan struct{})
	defer close(stop)
	var coords []*countingCoordinator
	var seen []func() []int64
	growth := 0
	for range 2 {
		coord := &countingCoordinator{Coordinator: redis.NewCoordinator(e.rdb, e.prefix)}
		coords = append(coords, coord)
		b := stream.New(src, coord, stream.Options{Interval: every, Grace: time.Minute,
			MaxRanges: ranges, MaxRangesPerAddr: ranges})
		t.Cleanup(b.Close)
		before := runtime.NumGoroutine()
		for i := range ranges {
			spec, err := parser.ParseSpec(fmt.Sprintf("now-%dm", i+1), "now")
			if err != nil {
				t.Fatal(err)
			}
			c, err := b.Subscribe(context.Background(), spec, "127.0.0.1")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
			seen = append(seen, collect(c, stop))
		}
		growth = max(growth, runtime.NumGoroutine()-before-ranges) // less the collectors
	}
	// One goroutine per range would be 150 here; Redis subscription
	// receivers and timers of the runtime may add a few.
	if growth > 10 {
		t.Fatalf("%d ranges added %d goroutines to a broker", ranges, growth)
	}

	k1 := summary.Tick(time.Now(), every) + 2
	time.Sleep(time.Until(summary.TickTime(k1, every)))
	tries, renewals := coords[0].tries.Load()+coords[1].tries.Load(), coords[0].renewals.Load()+coords[1].renewals.Load()
	k2 := k1 + T
	time.Sleep(time.Until(summary.TickTime(k2, every)))
	tries = coords[0].tries.Load() + coords[1].tries.Load() - tries
	renewals = coords[0].renewals.Load() + coords[1].renewals.Load() - renewals
	// Per broker and interval: one lease round trip at the boundary, a
	// retry or two of the lost ones if the holders are slow, a few
	// renewals while computing, and on a loaded machine a few more for
	// the late refreshes (batched too): a handful, far from one per range.
	perInterval := float64(tries+renewals) / (2 * T)
	t.Logf("%d ranges: %.1f lease calls per broker per interval (%d tries, %d renewals)", ranges, perInterval, tries, renewals)
	if perInterval > ranges/10 {
		t.Fatalf("%d ranges: %.1f lease calls per broker per interval (%d tries, %d renewals in %d intervals)", ranges, perInterval, tries, renewals, T)
	}

	// Every client sees every version of the window.
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; i < len(seen); {
		v := seen[i]()
		if len(v) > 0 && v[len(v)-1] >= k2 {
			for k := k1; k <= k2; k++ {
				if !slices.Contains(v, k) {
					t.Fatalf("client %d missed version %d: %v", i, k, v)
				}
			}
			i++
			continue
		}
		if time.Now().After(deadline) {
			t.Fatalf("client %d stuck: %v", i, v)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Each range computed once per interval across both instances.
	src.mu.Lock()
	defer src.mu.Unlock()
	inWindow := 0
	for key, n := range src.seen {
		if n != 1 {
			t.Errorf("%s computed %d times", key, n)
		}
		if at := src.at[key]; !at.Before(summary.TickTime(k1, every)) && !at.After(summary.TickTime(k2, every)) {
			inWindow++
		}
	}
	if want := ranges * (T + 1); inWindow != want {
		t.Fatalf("intervals %d..%d: %d refreshes, want %d (%d ranges × %d intervals)", k1, k2, inWindow, want, ranges, T+1)
	}
}
