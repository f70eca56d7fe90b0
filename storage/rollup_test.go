package storage

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/liveanalytics/analyticsd/internal/testenv"
	"github.com/liveanalytics/analyticsd/summary"
)

func openTestDB(t *testing.T) *DB {
	t.Helper()
	ctx := context.Background()
	db, err := Open(ctx, Options{URL: testenv.PostgresURL(t), MaxConns: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return db
}

var testTypes = []string{"page_view", "click", "signup", "purchase", "Ünïcode type"}

// insertRandom inserts n events at times drawn by at, from a small user
// population so that users repeat across buckets.
func insertRandom(t testing.TB, db *DB, rng *rand.Rand, n int, at func() time.Time) {
	t.Helper()
	rows := make([][]any, n)
	for i := range rows {
		rows[i] = []any{fmt.Sprintf("user-%d", rng.IntN(700)), testTypes[rng.IntN(len(testTypes))], at()}
	}
	if _, err := copyEvents(context.Background(), db.pool, pgx.CopyFromRows(rows)); err != nil {
		t.Error(err)
	}
}

// compare answers ivs both ways inside one repeatable-read snapshot, so the
// two must agree exactly even while writers and the worker run.
func compare(t *testing.T, db *DB, eventType string, ivs []Interval) (planned int) {
	t.Helper()
	ctx := context.Background()
	tx, err := db.beginRead(ctx, db.pool)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // read-only
	got, err := db.aggregate(ctx, tx, eventType, ivs)
	if err != nil {
		t.Fatal(err)
	}
	want, err := naiveAggregate(ctx, tx, eventType, ivs)
	if err != nil {
		t.Fatal(err)
	}
	for i := range ivs {
		if !reflect.DeepEqual(got[i], want[i]) {
			debugMismatch(t, db, tx, ivs[i])
			t.Fatalf("interval [%s, %s) type %q:\nrollups %+v\nnaive   %+v",
				summary.FormatInstant(ivs[i].From), summary.FormatInstant(ivs[i].To), eventType, got[i], want[i])
		}
	}
	return len(ivs)
}

// randomInterval draws the shapes that break decompositions: sub-second
// edges, aligned edges, empty, single instants, before the data, long.
func randomInterval(rng *rand.Rand, first, now time.Time) Interval {
	span := now.Sub(first)
	point := func() time.Time {
		t := first.Add(time.Duration(rng.Int64N(int64(span)+int64(2*time.Hour))) - time.Hour)
		switch rng.IntN(6) {
		case 0:
			return t.Truncate(time.Minute)
		case 1:
			return t.Truncate(time.Hour)
		case 2:
			return Day.Trunc(t)
		case 3:
			return t.Truncate(time.Second)
		default:
			return t.Truncate(time.Microsecond)
		}
	}
	a, b := point(), point()
	if b.Before(a) {
		a, b = b, a
	}
	switch rng.IntN(10) {
	case 0:
		b = a // empty
	case 1:
		b = a.Add(time.Microsecond) // one instant (an inclusive range)
	case 2:
		a, b = first.Add(-48*time.Hour), first.Add(-time.Hour) // before the first event
	case 3:
		b = a.Add(time.Duration(rng.Int64N(int64(90 * time.Second)))) // around one minute
	}
	return Interval{From: a, To: b}
}

// TestRollupsEqualNaiveSQL is the property test of the issue: random
// ranges, answered from the rollups, equal the plain SQL aggregates — while
// late and concurrent inserts, deletes and updates happen and the worker
// runs, and again after it has caught up.
func TestRollupsEqualNaiveSQL(t *testing.T) {
	t.Parallel()
	db := openTestDB(t)
	ctx := context.Background()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	now := time.Now().UTC()
	first := now.Add(-4 * 24 * time.Hour)
	span := int64(now.Sub(first))
	randomTime := func() time.Time { return first.Add(time.Duration(rng.Int64N(span))).Truncate(time.Microsecond) }

	// Four days of history, partly on exact bucket boundaries.
	insertRandom(t, db, rng, 20_000, randomTime)
	insertRandom(t, db, rng, 500, func() time.Time { return randomTime().Truncate(time.Hour) })
	roller := db.NewRoller(RollupOptions{Interval: 20 * time.Millisecond, Chunk: 500})
	if err := roller.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	var days int
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM rollup_totals WHERE grain = 2`).Scan(&days); err != nil || days < 3 {
		t.Fatalf("after catching up: %d day buckets (%v), want at least 3", days, err)
	}

	// Now the worker runs while writers add late and live events, delete
	// and update, and the checks run concurrently.
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	t.Cleanup(func() { stop(); wg.Wait() }) // also when a check fails
	wg.Add(2)
	go func() {
		defer wg.Done()
		roller.Run(wctx)
	}()
	go func() {
		defer wg.Done()
		wrng := rand.New(rand.NewPCG(seed, 2))
		for i := 0; wctx.Err() == nil; i++ {
			switch i % 10 {
			case 7:
				if _, err := db.pool.Exec(ctx, `DELETE FROM events WHERE id IN (SELECT id FROM events ORDER BY random() LIMIT 5)`); err != nil {
					t.Error(err)
				}
			case 8:
				if _, err := db.pool.Exec(ctx, `UPDATE events SET created_at = created_at - interval '26 hours', event_type = 'moved'
					WHERE id IN (SELECT id FROM events ORDER BY random() LIMIT 3)`); err != nil {
					t.Error(err)
				}
			default: // live and late events, one batch of each
				insertRandom(t, db, wrng, 20, func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) })
				insertRandom(t, db, wrng, 5, func() time.Time {
					return first.Add(time.Duration(wrng.Int64N(span))).Truncate(time.Microsecond)
				})
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	checked := 0
	deadline := time.Now().Add(8 * time.Second)
	for i := 0; time.Now().Before(deadline) || i < 100; i++ {
		end := time.Now().UTC()
		typ := ""
		if rng.IntN(4) == 0 {
			typ = testTypes[rng.IntN(len(testTypes))]
		}
		ivs := []Interval{randomInterval(rng, first, end)}
		if rng.IntN(3) == 0 { // a time series: consecutive intervals
			step := time.Duration(1+rng.IntN(180)) * time.Minute
			from := ivs[0].From
			ivs = ivs[:0]
			for j := 0; j < 1+rng.IntN(30); j++ {
				ivs = append(ivs, Interval{From: from, To: from.Add(step)})
				from = from.Add(step)
			}
		}
		if rng.IntN(5) == 0 { // a range ending now
			ivs = []Interval{{From: end.Add(-time.Duration(rng.Int64N(int64(30 * time.Hour)))), To: end}}
		}
		checked += compare(t, db, typ, ivs)
	}
	stop()
	wg.Wait()
	if t.Failed() {
		return
	}

	// Quiet: the worker catches up, and outside any shared snapshot the
	// public API answers what plain SQL answers.
	if err := roller.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	for range 50 {
		iv := randomInterval(rng, first, time.Now().UTC())
		got, err := db.Aggregate(ctx, "", []Interval{iv})
		if err != nil {
			t.Fatal(err)
		}
		naive := &DB{pool: db.pool, read: db.pool, naive: true}
		want, err := naive.Aggregate(ctx, "", []Interval{iv})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("after catch-up [%s, %s): rollups %+v, naive %+v", iv.From, iv.To, got, want)
		}
	}
	var dirty int
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM rollup_dirty`).Scan(&dirty); err != nil || dirty != 0 {
		t.Fatalf("after catch-up: %d dirty marks (%v)", dirty, err)
	}
	t.Logf("compared %d intervals", checked)
}

// TestRollupsServeClosedRanges checks that a caught-up, closed range is
// answered from buckets, not from raw rows, and that the in-process
// bitmap cache makes the second query decode nothing.
func TestRollupsServeClosedRanges(t *testing.T) {
	t.Parallel()
	db := openTestDB(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 7))
	day := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	insertRandom(t, db, rng, 5_000, func() time.Time {
		return day.Add(time.Duration(rng.Int64N(int64(3 * 24 * time.Hour))))
	})
	roller := db.NewRoller(RollupOptions{Now: func() time.Time { return day.AddDate(0, 2, 0) }})
	if err := roller.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	iv := Interval{From: day, To: day.AddDate(0, 0, 3)}
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f, err := db.loadFreshness(ctx, tx, iv.From, iv.To)
	_ = tx.Rollback(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p := decompose(iv, f)
	if len(p.Raw) != 0 || len(p.Buckets) != 3 {
		t.Fatalf("three closed days: plan %+v, want 3 day buckets and nothing raw", p)
	}
	compare(t, db, "", []Interval{iv})
	compare(t, db, "click", []Interval{iv})
	n, _ := db.bitmaps.stats()
	if n != 3+3 {
		t.Fatalf("bitmap cache holds %d entries, want 6 (3 days, all types and clicks)", n)
	}
	compare(t, db, "", []Interval{iv})
	if n2, _ := db.bitmaps.stats(); n2 != n {
		t.Fatalf("second query decoded again: %d entries, then %d", n, n2)
	}

	// A late event on the middle day makes that day dirty; the answer
	// stays exact before and after the worker sees it.
	insertRandom(t, db, rng, 1, func() time.Time { return day.Add(36 * time.Hour) })
	compare(t, db, "", []Interval{iv})
	if err := roller.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	compare(t, db, "", []Interval{iv})

	// TRUNCATE empties the rollups.
	if _, err := db.pool.Exec(ctx, `TRUNCATE events`); err != nil {
		t.Fatal(err)
	}
	got, err := db.Aggregate(ctx, "", []Interval{iv})
	if err != nil || got[0].TotalEvents != 0 || got[0].UniqueUsers != 0 {
		t.Fatalf("after TRUNCATE: %+v, %v", got, err)
	}
}

func debugMismatch(t *testing.T, db *DB, tx pgx.Tx, iv Interval) {
	ctx := context.Background()
	f, _ := db.loadFreshness(ctx, tx, iv.From, iv.To)
	p := decompose(iv, f)
	for _, k := range p.Buckets {
		end := k.Grain.Next(k.time())
		var naive, roll int64
		_ = tx.QueryRow(ctx, `SELECT count(*) FROM events WHERE created_at >= $1 AND created_at < $2`, k.time(), end).Scan(&naive)
		_ = tx.QueryRow(ctx, `SELECT coalesce(sum(events),0) FROM rollup_totals WHERE grain = $1 AND bucket = $2`, int16(k.Grain), k.time()).Scan(&roll)
		if naive != roll {
			var mins int64
			_ = tx.QueryRow(ctx, `SELECT coalesce(sum(events),0) FROM rollup_totals WHERE grain = 0 AND bucket >= $1 AND bucket < $2`, k.time(), end).Scan(&mins)
			t.Logf("bucket %s %s: naive %d, rollup %d, sum of minute rows %d", k.Grain, k.time(), naive, roll, mins)
		}
	}
}

// TestOneWorkerAtATime runs three workers on one schema, as three
// instances would: one leads, and when it stops another takes over.
func TestOneWorkerAtATime(t *testing.T) {
	t.Parallel()
	db := openTestDB(t)
	rng := rand.New(rand.NewPCG(9, 9))
	day := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	insertRandom(t, db, rng, 2_000, func() time.Time { return day.Add(time.Duration(rng.Int64N(int64(48 * time.Hour)))) })
	type worker struct {
		m    *RollupMetrics
		stop context.CancelFunc
		done chan struct{}
	}
	var ws []*worker
	for range 3 {
		w := &worker{m: NewRollupMetrics(prometheus.NewRegistry()), done: make(chan struct{})}
		var ctx context.Context
		ctx, w.stop = context.WithCancel(context.Background())
		r := db.NewRoller(RollupOptions{Interval: 20 * time.Millisecond, Metrics: w.m})
		go func() { defer close(w.done); r.Run(ctx) }()
		ws = append(ws, w)
	}
	t.Cleanup(func() {
		for _, w := range ws {
			w.stop()
			<-w.done
		}
	})
	leaders := func() (n int, who *worker) {
		for _, w := range ws {
			if testutil.ToFloat64(w.m.leader) == 1 {
				n, who = n+1, w
			}
		}
		return
	}
	waitUntil := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatal(what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitUntil("no leader", func() bool { n, _ := leaders(); return n == 1 })
	var dirty int
	waitUntil("not caught up", func() bool {
		_ = db.pool.QueryRow(context.Background(), `SELECT count(*) FROM rollup_dirty`).Scan(&dirty)
		return dirty == 0
	})
	for range 20 { // stays one
		if n, _ := leaders(); n != 1 {
			t.Fatalf("%d leaders", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	_, first := leaders()
	first.stop()
	<-first.done
	waitUntil("no takeover", func() bool { n, w := leaders(); return n == 1 && w != first })
	insertRandom(t, db, rng, 10, func() time.Time { return day.Add(time.Hour) })
	waitUntil("the new leader does not roll up", func() bool {
		_ = db.pool.QueryRow(context.Background(), `SELECT count(*) FROM rollup_dirty`).Scan(&dirty)
		return dirty == 0
	})
	compare(t, db, "", []Interval{{From: day, To: day.AddDate(0, 0, 2)}})
}
