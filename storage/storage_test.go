package storage_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/liveanalytics/analyticsd/internal/testenv"
	"github.com/liveanalytics/analyticsd/storage"
)

func open(t *testing.T, url string) *storage.DB {
	t.Helper()
	db, err := storage.Open(context.Background(), storage.Options{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db
}

func TestConcurrentMigrationsApplyOnce(t *testing.T) {
	t.Parallel()
	url := testenv.PostgresURL(t)
	ctx := context.Background()
	if n, err := open(t, url).Pending(ctx); err != nil || n == 0 {
		t.Fatalf("fresh schema: pending %d, %v", n, err)
	}
	// Five instances starting at once: exactly one applies each migration.
	var wg sync.WaitGroup
	applied := make(chan int, 5)
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := open(t, url).Migrate(ctx)
			if err != nil {
				t.Error(err)
			}
			applied <- n
		}()
	}
	wg.Wait()
	close(applied)
	total := 0
	for n := range applied {
		total += n
	}
	db := open(t, url)
	var versions int
	if err := db.PoolForTest().QueryRow(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&versions); err != nil {
		t.Fatal(err)
	}
	if total != versions {
		t.Fatalf("applied %d in total, schema has %d versions", total, versions)
	}
	if n, err := db.Pending(ctx); err != nil || n != 0 {
		t.Fatalf("after migrate: pending %d, %v", n, err)
	}
}

func TestOpenCreatesMissingDatabase(t *testing.T) {
	t.Parallel()
	base := testenv.PostgresURL(t)
	name := testenv.RandomName("analyticsd_create_")
	url := replaceDatabase(t, base, name)
	ctx := context.Background()
	if _, err := storage.Open(ctx, storage.Options{URL: url}); err == nil {
		t.Fatal("without CreateDatabase a missing database is an error")
	}
	db, err := storage.Open(ctx, storage.Options{URL: url, CreateDatabase: true})
	if err != nil {
		t.Fatal(err)
	}
	var got string
	if err := db.PoolForTest().QueryRow(ctx, `SELECT current_database()`).Scan(&got); err != nil || got != name {
		t.Fatalf("current_database %q, %v", got, err)
	}
	db.Close()
	admin := open(t, base)
	if _, err := admin.PoolForTest().Exec(ctx, `DROP DATABASE `+name); err != nil {
		t.Fatal(err)
	}
}

func TestStatementTimeoutIsSet(t *testing.T) {
	t.Parallel()
	db, err := storage.Open(context.Background(), storage.Options{URL: testenv.PostgresURL(t), StatementTimeout: 1234 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v string
	if err := db.PoolForTest().QueryRow(context.Background(), `SHOW statement_timeout`).Scan(&v); err != nil || v != "1234ms" {
		t.Fatalf("statement_timeout %q, %v", v, err)
	}
	if _, err := db.PoolForTest().Exec(context.Background(), `SELECT pg_sleep(3)`); err == nil {
		t.Fatal("a query longer than the statement timeout must be cancelled")
	}
}

func TestSeedIsRealistic(t *testing.T) {
	t.Parallel()
	db := open(t, testenv.PostgresURL(t))
	ctx := context.Background()
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	end := time.Date(2024, 6, 8, 0, 0, 0, 0, time.UTC)
	opts := storage.SeedOptions{Events: 30_000, Days: 7, Users: 500, End: end, Seed: 42, Workers: 3,
		Types: []storage.WeightedType{{"page_view", 8}, {"click", 3}, {"purchase", 1}}}
	st, err := db.Seed(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if st.Events != opts.Events {
		t.Fatalf("seeded %d, want %d", st.Events, opts.Events)
	}
	var n, users int64
	var minT, maxT time.Time
	q := `SELECT count(*), count(DISTINCT user_id), min(created_at), max(created_at) FROM events`
	if err := db.PoolForTest().QueryRow(ctx, q).Scan(&n, &users, &minT, &maxT); err != nil {
		t.Fatal(err)
	}
	if n != opts.Events || users > int64(opts.Users) || minT.Before(end.Add(-7*24*time.Hour)) || !maxT.Before(end) {
		t.Fatalf("count %d users %d span %s..%s", n, users, minT, maxT)
	}
	// Weighted types: page_view > click > purchase, nothing else.
	var pv, cl, pu, other int64
	err = db.PoolForTest().QueryRow(ctx, `SELECT
		count(*) FILTER (WHERE event_type = 'page_view'), count(*) FILTER (WHERE event_type = 'click'),
		count(*) FILTER (WHERE event_type = 'purchase'),
		count(*) FILTER (WHERE event_type NOT IN ('page_view', 'click', 'purchase')) FROM events`).Scan(&pv, &cl, &pu, &other)
	if err != nil || !(pv > cl && cl > pu && pu > 0 && other == 0) {
		t.Fatalf("types page_view %d click %d purchase %d other %d (%v)", pv, cl, pu, other, err)
	}
	// Skewed users: the busiest tenth of users makes far more than a tenth
	// of the events.
	var topShare float64
	err = db.PoolForTest().QueryRow(ctx, `WITH u AS (SELECT count(*) AS n FROM events GROUP BY user_id ORDER BY n DESC)
		SELECT (SELECT sum(n) FROM (SELECT n FROM u LIMIT (SELECT count(*) / 10 FROM u)) top)::float8 / (SELECT sum(n) FROM u)`).Scan(&topShare)
	if err != nil || topShare < 0.3 {
		t.Fatalf("top 10%% of users make %.2f of events (%v)", topShare, err)
	}
	// Day/night rhythm: the peak hour has at least three times the trough.
	var peak, trough int64
	err = db.PoolForTest().QueryRow(ctx, `SELECT
		count(*) FILTER (WHERE extract(hour FROM created_at AT TIME ZONE 'UTC') = 16),
		count(*) FILTER (WHERE extract(hour FROM created_at AT TIME ZONE 'UTC') = 4) FROM events`).Scan(&peak, &trough)
	if err != nil || peak < 3*trough {
		t.Fatalf("peak %d trough %d (%v)", peak, trough, err)
	}
	// Same seed, same data.
	db2 := open(t, testenv.PostgresURL(t))
	if _, err := db2.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := db2.Seed(ctx, opts); err != nil {
		t.Fatal(err)
	}
	fp := `SELECT sum(hashtext(user_id || event_type || created_at::text)::bigint) FROM events`
	var a, b int64
	if err := db.PoolForTest().QueryRow(ctx, fp).Scan(&a); err != nil {
		t.Fatal(err)
	}
	if err := db2.PoolForTest().QueryRow(ctx, fp).Scan(&b); err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Fatal("the same seed gave different data")
	}
}

func TestInsertRandomAndHasEvents(t *testing.T) {
	t.Parallel()
	db := open(t, testenv.PostgresURL(t))
	ctx := context.Background()
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if has, err := db.HasEvents(ctx); err != nil || has {
		t.Fatalf("empty table: %v %v", has, err)
	}
	at := time.Now()
	if err := db.InsertRandom(ctx, 7, at, 100, nil); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.PoolForTest().QueryRow(ctx, `SELECT count(*) FROM events WHERE created_at > $1 AND created_at <= $2`, at.Add(-time.Second), at).Scan(&n); err != nil || n != 7 {
		t.Fatalf("inserted %d in the second before at (%v)", n, err)
	}
	if has, _ := db.HasEvents(ctx); !has {
		t.Fatal("HasEvents false after insert")
	}
}

func TestParseTypes(t *testing.T) {
	good, err := storage.ParseTypes("page_view:60,click:2.5,purchase")
	if err != nil || len(good) != 3 || good[0].Weight != 60 || good[1].Weight != 2.5 || good[2].Weight != 1 {
		t.Fatalf("%v %v", good, err)
	}
	for _, bad := range []string{"", "Page", "a:0", "a:-1", "a:x", "a,a", "a b", "a:NaN", "a:Inf"} {
		if _, err := storage.ParseTypes(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzParseTypes(f *testing.F) {
	for _, s := range []string{"page_view:60,click:2.5,purchase", "a:0", "a,a", ":", "a:1e308,b:1e-300"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		types, err := storage.ParseTypes(s)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, ty := range types {
			if ty.Name == "" || len(ty.Name) > 100 || !(ty.Weight > 0) || seen[ty.Name] {
				t.Fatalf("%q accepted a bad type %+v", s, ty)
			}
			seen[ty.Name] = true
		}
	})
}
