package storage_test

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveanalytics/analyticsd/internal/redis"
	"github.com/liveanalytics/analyticsd/storage"
	"github.com/liveanalytics/analyticsd/summary"
)

// benchDB opens BENCH_DATABASE_URL and makes sure it holds BENCH_EVENTS
// seeded events (default 1M) over 30 days, reseeding when the count differs.
// `make bench` sets both; docs/benchmarks.md has the 10M figures.
func benchDB(b *testing.B) (*storage.DB, time.Time) {
	b.Helper()
	url := os.Getenv("BENCH_DATABASE_URL")
	if url == "" {
		b.Skip("BENCH_DATABASE_URL is not set; run `make bench`")
	}
	want := int64(1_000_000)
	if v := os.Getenv("BENCH_EVENTS"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			b.Fatalf("BENCH_EVENTS: %v", err)
		}
		want = n
	}
	ctx := context.Background()
	db, err := storage.Open(ctx, storage.Options{URL: url, CreateDatabase: true, StatementTimeout: 5 * time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(db.Close)
	if _, err := db.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	var n int64
	var end time.Time
	if err := db.PoolForTest().QueryRow(ctx, `SELECT count(*), coalesce(max(created_at), now()) FROM events`).Scan(&n, &end); err != nil {
		b.Fatal(err)
	}
	if n != want {
		b.Logf("seeding %d events (found %d)", want, n)
		if err := db.TruncateEvents(ctx); err != nil {
			b.Fatal(err)
		}
		end = time.Now().UTC().Truncate(time.Hour)
		if _, err := db.Seed(ctx, storage.SeedOptions{Events: want, Days: 30, Users: int(want / 50), End: end, Seed: 1, Uniform: true}); err != nil {
			b.Fatal(err)
		}
	}
	// The rollups must be current, or the cold figures measure raw reads.
	if err := db.NewRoller(storage.RollupOptions{}).CatchUp(ctx); err != nil {
		b.Fatal(err)
	}
	return db, end
}

var benchRanges = []struct {
	name string
	span time.Duration
}{
	{"1h", time.Hour}, {"1d", 24 * time.Hour}, {"7d", 7 * 24 * time.Hour}, {"30d", 30 * 24 * time.Hour},
}

// BenchmarkSummaryCold is the store itself: the seed's three aggregates,
// run concurrently, with no cache.
func BenchmarkSummaryCold(b *testing.B) {
	db, end := benchDB(b)
	for _, br := range benchRanges {
		b.Run(br.name, func(b *testing.B) {
			r := summary.Range{From: end.Add(-br.span), To: end}
			for b.Loop() {
				if _, err := db.Summary(context.Background(), r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSummaryCached is the service answering from Redis.
func BenchmarkSummaryCached(b *testing.B) {
	db, end := benchDB(b)
	url := os.Getenv("BENCH_REDIS_URL")
	if url == "" {
		b.Skip("BENCH_REDIS_URL is not set; run `make bench`")
	}
	rdb, err := redis.NewClient(url, false)
	if err != nil {
		b.Fatal(err)
	}
	defer rdb.Close()
	svc := summary.NewService(db, redis.NewCache(rdb, "bench:"+strconv.FormatInt(time.Now().UnixNano(), 36)+":", time.Hour, 0),
		summary.ServiceOptions{Metrics: summary.NewMetrics(prometheus.NewRegistry()), QueryTimeout: 5 * time.Minute})
	for _, br := range benchRanges {
		b.Run(br.name, func(b *testing.B) {
			r := summary.Range{From: end.Add(-br.span), To: end}
			if _, err := svc.Get(context.Background(), r); err != nil { // fill the cache
				b.Fatal(err)
			}
			for b.Loop() {
				res, err := svc.Get(context.Background(), r)
				if err != nil || !res.Cached {
					b.Fatalf("cached=%v err=%v", res.Cached, err)
				}
			}
		})
	}
}

// BenchmarkSeriesCold is the 30-day hourly time series ending now, as the
// endpoint asks for it, in zones offset from UTC by whole hours, :30 and
// :45, with the in-process caches emptied before every run (a server's
// first call after a start).
func BenchmarkSeriesCold(b *testing.B) {
	db, _ := benchDB(b)
	for _, tz := range []string{"UTC", "Europe/Berlin", "Asia/Kolkata", "Asia/Kathmandu"} {
		b.Run(tz, func(b *testing.B) {
			loc, err := time.LoadLocation(tz)
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				b.StopTimer()
				db.ResetCaches()
				now := time.Now()
				b.StartTimer()
				r := summary.Range{From: now.Add(-30 * 24 * time.Hour), To: now}
				if _, err := summary.Series(context.Background(), db, r, summary.BucketHour, loc, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
