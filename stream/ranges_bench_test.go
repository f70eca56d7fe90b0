package stream_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/liveanalytics/analyticsd/internal/redis"
	"github.com/liveanalytics/analyticsd/internal/testenv"
	"github.com/liveanalytics/analyticsd/stream"
	"github.com/liveanalytics/analyticsd/summary"
)

// constSource answers every range at once with the same summary: the
// benchmark below measures the broker and its coordination, not the store
// (the fleet benchmark measures them together).
type constSource struct{}

func (constSource) Get(context.Context, summary.Range) (summary.Result, error) {
	return summary.Result{}, nil
}

func (constSource) Refresh(context.Context, summary.Range) (summary.Result, error) {
	return summary.Result{}, nil
}

// BenchmarkBrokerRanges: two brokers on the real Redis, each holding n
// live ranges with one client each; one op is one interval (2 s). It
// reports the Redis round trips per interval (both brokers), the time
// from the boundary until every client of both brokers has the new
// version (median), and the goroutines; allocs/op are per interval too.
//
//	go test -run '^$' -bench BrokerRanges -benchtime 5x ./stream/
func BenchmarkBrokerRanges(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("ranges=%d", n), func(b *testing.B) { benchRanges(b, n) })
	}
}

func benchRanges(b *testing.B, n int) {
	const every = 2 * time.Second
	rdb, prefix := testenv.Redis(b)
	rt := testenv.RoundTrips(rdb)
	parser := summary.RangeParser{Align: every, MaxRange: 400 * 24 * time.Hour}
	var clients []*stream.Client
	for range 2 {
		br := stream.New(constSource{}, redis.NewCoordinator(rdb, prefix), stream.Options{Interval: every, Grace: time.Minute,
			MaxRanges: n, MaxRangesPerAddr: n, MaxClients: 2 * n, MaxClientsPerAddr: 2 * n})
		b.Cleanup(br.Close)
		for i := range n {
			spec, err := parser.ParseSpec(fmt.Sprintf("now-%dm", i+1), "now")
			if err != nil {
				b.Fatal(err)
			}
			c, err := br.Subscribe(context.Background(), spec, "127.0.0.1")
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(c.Close)
			clients = append(clients, c)
		}
	}
	all := func(k int64) {
		for _, c := range clients {
			for s := c.Latest(); s == nil || s.Version < k; s = c.Latest() {
				time.Sleep(time.Millisecond)
			}
		}
	}
	k := summary.Tick(time.Now(), every) + 1
	all(k - 1)
	time.Sleep(time.Until(summary.TickTime(k, every)) - every/10)
	runtime.GC()
	start := rt.Load()
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		all(k + int64(i))
		lat = append(lat, time.Since(summary.TickTime(k+int64(i), every)))
	}
	time.Sleep(time.Until(summary.TickTime(k+int64(b.N), every)) - every/10)
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(rt.Load()-start)/float64(b.N), "roundtrips/interval")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "ms-to-all-clients")
	b.ReportMetric(float64(runtime.NumGoroutine()), "goroutines")
}
