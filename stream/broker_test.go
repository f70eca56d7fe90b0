package stream_test

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveanalytics/analyticsd/internal/redis"
	"github.com/liveanalytics/analyticsd/internal/testenv"
	"github.com/liveanalytics/analyticsd/storage"
	"github.com/liveanalytics/analyticsd/stream"
	"github.com/liveanalytics/analyticsd/summary"
)

const interval = 400 * time.Millisecond

// countingSource is the real summary service over the real PostgreSQL and
// Redis, counting the refreshes that reach the database.
type countingSource struct {
	*summary.Service
	refreshes *atomic.Int64
	block     func(ctx context.Context) // optional: called before a refresh
}

func (c countingSource) Refresh(ctx context.Context, r summary.Range) (summary.Result, error) {
	if c.block != nil {
		c.block(ctx)
		if ctx.Err() != nil {
			return summary.Result{}, ctx.Err()
		}
	}
	c.refreshes.Add(1)
	return c.Service.Refresh(ctx, r)
}

type env struct {
	db     *storage.DB
	rdb    redis.Client
	prefix string
	parser summary.RangeParser
	// memory, when set, coordinates the brokers in process instead of
	// through Redis (the cache stays in Redis).
	memory *stream.Memory
}

func newEnv(t *testing.T) *env {
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
	if err := db.InsertRandom(ctx, 50, time.Now(), 10, nil); err != nil {
		t.Fatal(err)
	}
	rdb, prefix := testenv.Redis(t)
	return &env{db: db, rdb: rdb, prefix: prefix, parser: summary.RangeParser{Align: interval, MaxRange: 400 * 24 * time.Hour}}
}

func (e *env) broker(t *testing.T, refreshes *atomic.Int64, block func(context.Context)) *stream.Broker {
	t.Helper()
	return e.brokerWith(t, refreshes, block, nil)
}

// brokerWith is broker with its collectors (nil: private ones).
func (e *env) brokerWith(t *testing.T, refreshes *atomic.Int64, block func(context.Context), m *stream.Metrics) *stream.Broker {
	t.Helper()
	cache := redis.NewCache(e.rdb, e.prefix, time.Minute, 0)
	svc := summary.NewService(e.db, cache, summary.ServiceOptions{Metrics: summary.NewMetrics(prometheus.NewRegistry())})
	var coord stream.Coordinator = redis.NewCoordinator(e.rdb, e.prefix)
	if e.memory != nil {
		coord = e.memory
	}
	b := stream.New(countingSource{Service: svc, refreshes: refreshes, block: block}, coord,
		stream.Options{Interval: interval, Grace: time.Second, Metrics: m})
	t.Cleanup(b.Close)
	return b
}

// subscribe adds a client of the live range from..now to b.
func (e *env) subscribe(t *testing.T, b *stream.Broker, from string) *stream.Client {
	t.Helper()
	spec, err := e.parser.ParseSpec(from, "now")
	if err != nil {
		t.Fatal(err)
	}
	c, err := b.Subscribe(context.Background(), spec, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// collect records every version a client sees; the returned func gives a
// copy.
func collect(c *stream.Client, stop <-chan struct{}) func() []int64 {
	var mu sync.Mutex
	seen := []int64{}
	go func() {
		last := int64(-1)
		for {
			if s := c.Latest(); s != nil && s.Version != last {
				last = s.Version
				mu.Lock()
				seen = append(seen, s.Version)
				mu.Unlock()
			}
			select {
			case <-c.Notify():
			case <-stop:
				return
			}
		}
	}()
	return func() []int64 {
		mu.Lock()
		defer mu.Unlock()
		return append([]int64(nil), seen...)
	}
}

func TestBrokersShareOneRefreshPerRangePerInterval(t *testing.T) {
	// Not parallel: it counts refreshes against the wall clock.
	for _, c := range []struct {
		name   string
		n      int
		memory bool
	}{{"two", 2, false}, {"three", 3, false}, {"three in memory", 3, true}} {
		n := c.n
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			if c.memory {
				e.memory = stream.NewMemory()
			}
			var refreshes atomic.Int64
			ranges := []string{"now-1h", "now-2h"}
			stop := make(chan struct{})
			type sub struct {
				c    *stream.Client
				seen func() []int64
			}
			var subs []sub
			for range n {
				b := e.broker(t, &refreshes, nil)
				for _, from := range ranges {
					c := e.subscribe(t, b, from)
					subs = append(subs, sub{c, collect(c, stop)})
				}
			}
			// Count whole intervals: start at a boundary, stop at one.
			time.Sleep(time.Until(time.UnixMilli((time.Now().UnixMilli()/interval.Milliseconds() + 1) * interval.Milliseconds())))
			start := refreshes.Load()
			const T = 10
			time.Sleep(T * interval)
			got := refreshes.Load() - start
			close(stop)
			R := int64(len(ranges))
			// One refresh per range per interval, give or take the
			// intervals in flight at each end on a loaded machine; N
			// instances would be N×.
			if got < R*(T-2) || got > R*(T+2) {
				t.Fatalf("%d brokers, %d ranges, %d intervals: %d refreshes, want about %d (not %d)", n, R, T, got, R*T, int64(n)*R*T)
			}
			for i, s := range subs {
				v := s.seen()
				if len(v) < T-1 {
					t.Fatalf("client %d saw %d versions: %v", i, len(v), v)
				}
				for j := 1; j < len(v); j++ {
					if v[j] != v[j-1]+1 {
						t.Fatalf("client %d missed a version: %v", i, v)
					}
				}
			}
		})
	}
}

func TestLeaderDiesMidRefresh(t *testing.T) {
	t.Parallel()
	for _, memory := range []bool{false, true} {
		t.Run(map[bool]string{false: "redis", true: "memory"}[memory], func(t *testing.T) {
			t.Parallel()
			leaderDies(t, memory)
		})
	}
}

// leaderDies kills the instance computing an interval and checks that
// another completes that interval.
func leaderDies(t *testing.T, memory bool) {
	e := newEnv(t)
	if memory {
		e.memory = stream.NewMemory()
	}
	var refreshes atomic.Int64
	var victim atomic.Pointer[stream.Broker]
	var blocked atomic.Int64 // the version whose leader was killed
	brokers := make([]*stream.Broker, 2)
	for i := range brokers {
		self := &brokers[i]
		brokers[i] = e.broker(t, &refreshes, func(ctx context.Context) {
			// The first refresh anywhere blocks until its broker dies.
			if victim.CompareAndSwap(nil, *self) {
				blocked.Store(time.Now().UnixMilli() / interval.Milliseconds())
				<-ctx.Done()
			}
		})
	}
	spec, _ := e.parser.ParseSpec("now-1h", "now")
	clients := make([]*stream.Client, 2)
	for i, b := range brokers {
		c, err := b.Subscribe(context.Background(), spec, "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		clients[i] = c
	}
	deadline := time.Now().Add(5 * time.Second)
	for victim.Load() == nil {
		if time.Now().After(deadline) {
			t.Fatal("no refresh started")
		}
		time.Sleep(5 * time.Millisecond)
	}
	dead := victim.Load()
	dead.Close() // the leader dies holding the lease for this interval
	survivor := clients[0]
	if brokers[0] == dead {
		survivor = clients[1]
	}
	k := blocked.Load()
	for {
		if s := survivor.Latest(); s != nil && s.Version >= k {
			if s.Version != k {
				// It may have moved on already; the interval must not be skipped.
				t.Logf("survivor at version %d (killed interval %d)", s.Version, k)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("interval %d never completed after its leader died", k)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestClosedBrokerRefusesAndEndsClients(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var n atomic.Int64
	b := e.broker(t, &n, nil)
	spec, _ := e.parser.ParseSpec("now-1h", "now")
	c, err := b.Subscribe(context.Background(), spec, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	select {
	case <-c.Done():
	case <-time.After(time.Second):
		t.Fatal("client not ended by Close")
	}
	if _, err := b.Subscribe(context.Background(), spec, "127.0.0.1"); err != stream.ErrClosed {
		t.Fatalf("subscribe after close: %v", err)
	}
}

func TestRedisStoppedAndStartedUnderLiveClients(t *testing.T) {
	// Not parallel: it counts refreshes against the wall clock.
	e := newEnv(t)
	srv := testenv.StartRedis(t)
	rdb, err := redis.NewClient(srv.URL(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	e.rdb = rdb
	var refreshes atomic.Int64
	brokers := []*stream.Broker{e.broker(t, &refreshes, nil), e.broker(t, &refreshes, nil)}
	spec, _ := e.parser.ParseSpec("now-1h", "now")
	var clients []*stream.Client
	for _, b := range brokers {
		c, err := b.Subscribe(context.Background(), spec, "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	advances := func(what string) {
		t.Helper()
		for i, c := range clients {
			start := int64(-1)
			if s := c.Latest(); s != nil {
				start = s.Version
			}
			deadline := time.Now().Add(5 * time.Second)
			for {
				if s := c.Latest(); s != nil && s.Version >= start+3 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: client %d stuck at version %d", what, i, start)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	advances("with redis")
	srv.Stop()
	advances("redis down: every instance refreshes on its own")
	srv.Start()
	// Back to one refresh per interval across both instances.
	deadline := time.Now().Add(10 * time.Second)
	for {
		time.Sleep(time.Until(time.UnixMilli((time.Now().UnixMilli()/interval.Milliseconds() + 1) * interval.Milliseconds())))
		before := refreshes.Load()
		time.Sleep(5 * interval)
		if n := refreshes.Load() - before; n <= 6 {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("after Redis returned: %d refreshes in 5 intervals, want about 5", n)
		}
	}
	advances("redis back")
}

func TestCloseLeaksNoGoroutines(t *testing.T) {
	e := newEnv(t)
	before := runtime.NumGoroutine()
	var n atomic.Int64
	b := stream.New(countingSource{Service: summary.NewService(e.db, nil, summary.ServiceOptions{Metrics: summary.NewMetrics(prometheus.NewRegistry())}), refreshes: &n},
		redis.NewCoordinator(e.rdb, e.prefix), stream.Options{Interval: interval})
	for _, from := range []string{"now-1h", "now-2h", "now-3h"} {
		spec, _ := e.parser.ParseSpec(from, "now")
		for range 10 {
			if _, err := b.Subscribe(context.Background(), spec, "127.0.0.1"); err != nil {
				t.Fatal(err)
			}
		}
	}
	time.Sleep(3 * interval)
	b.Close()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before, %d after Close:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestClusterRangesCountsEachRangeOnce: three live ranges spread over two
// brokers (one held by both) are three distinct ranges, through Redis and
// in memory: analytics_stream_cluster_ranges, read with max() over the
// instances, says 3 where the sum of analytics_stream_ranges says 4.
func TestClusterRangesCountsEachRangeOnce(t *testing.T) {
	t.Parallel()
	for _, memory := range []bool{false, true} {
		t.Run(map[bool]string{false: "redis", true: "memory"}[memory], func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			if memory {
				e.memory = stream.NewMemory()
			}
			var regs []*prometheus.Registry
			var brokers []*stream.Broker
			var refreshes atomic.Int64
			for range 2 {
				reg := prometheus.NewRegistry()
				regs, brokers = append(regs, reg), append(brokers, e.brokerWith(t, &refreshes, nil, stream.NewMetrics(reg)))
			}
			for _, s := range []struct {
				b    *stream.Broker
				from string
			}{{brokers[0], "now-1h"}, {brokers[0], "now-2h"}, {brokers[1], "now-2h"}, {brokers[1], "now-3h"}} {
				t.Cleanup(e.subscribe(t, s.b, s.from).Close)
			}
			var last [2]float64
			for deadline := time.Now().Add(20 * interval); ; {
				for i, reg := range regs {
					last[i] = gauge(t, reg, "analytics_stream_cluster_ranges")
				}
				if max(last[0], last[1]) == 3 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("analytics_stream_cluster_ranges on the two instances: %v, want a maximum of 3", last)
				}
				time.Sleep(interval / 4)
			}
			if got := gauge(t, regs[0], "analytics_stream_ranges") + gauge(t, regs[1], "analytics_stream_ranges"); got != 4 {
				t.Fatalf("sum of analytics_stream_ranges = %v, want 4", got)
			}
		})
	}
}

// gauge reads one unlabelled gauge from reg.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("%s not gathered", name)
	return 0
}

// TestAnnouncedSnapshotsInvalidateTheRangeKey checks the key a broker
// hands to Options.Invalidate when another instance's snapshot arrives:
// the key of the range the summary endpoint answers in that interval, so
// that an in-process copy of it is dropped.
func TestAnnouncedSnapshotsInvalidateTheRangeKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	mem := stream.NewMemory()
	var mu sync.Mutex
	invalidated := map[string]bool{}
	var refreshes atomic.Int64
	var clients []*stream.Client
	spec, _ := e.parser.ParseSpec("now-1h", "now")
	for range 2 {
		svc := summary.NewService(e.db, nil, summary.ServiceOptions{Metrics: summary.NewMetrics(prometheus.NewRegistry())})
		b := stream.New(countingSource{Service: svc, refreshes: &refreshes}, mem, stream.Options{Interval: interval, Grace: time.Second,
			Invalidate: func(key string) {
				mu.Lock()
				invalidated[key] = true
				mu.Unlock()
			}})
		t.Cleanup(b.Close)
		c, err := b.Subscribe(context.Background(), spec, "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := clients[0].Latest()
		if s != nil && refreshes.Load() >= 3 {
			want := spec.Resolve(summary.TickTime(s.Version, interval)).Key()
			mu.Lock()
			ok := invalidated[want]
			mu.Unlock()
			if ok {
				return
			}
		}
		if time.Now().After(deadline) {
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("latest snapshot %+v: its range key was never invalidated (got %v)", s, invalidated)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
