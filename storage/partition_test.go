package storage

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/liveanalytics/analyticsd/internal/ingest"
	"github.com/liveanalytics/analyticsd/internal/testenv"
	"github.com/liveanalytics/analyticsd/summary"
)

// TestMigrateToPartitionsWhileServing migrates a populated, unpartitioned
// events table (schema version 4) to the partitioned one while another
// instance keeps serving: ingest batches, summaries compared with plain SQL
// in one snapshot, a live range refreshed as a stream does (its total may
// never go back), and the rollup worker. Nothing fails, every acknowledged
// event is counted, and the old table became a partition without being
// rewritten (same file on disk).
func TestMigrateToPartitionsWhileServing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testenv.PostgresURL(t)
	db, err := Open(ctx, Options{URL: url, MaxConns: 12})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if _, err := db.migrateTo(ctx, 4); err != nil {
		t.Fatal(err)
	}
	// This build's rollup worker writes users_count (migration 6, which
	// adds it only if missing); the build that ran version 4 did not.
	if _, err := db.pool.Exec(ctx, `ALTER TABLE rollup_totals ADD COLUMN users_count bigint;
		ALTER TABLE rollup_types ADD COLUMN users_count bigint`); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(14, 14))
	now := time.Now().UTC()
	first := now.AddDate(0, 0, -70) // three calendar months
	width := int64(now.Sub(first))
	insertRandom(t, db, rng, 60_000, func() time.Time {
		return first.Add(time.Duration(rng.Int64N(width))).Truncate(time.Microsecond)
	})
	roller := db.NewRoller(RollupOptions{Interval: 20 * time.Millisecond})
	if err := roller.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	var filenode uint32
	if err := db.pool.QueryRow(ctx, `SELECT pg_relation_filenode('events')`).Scan(&filenode); err != nil {
		t.Fatal(err)
	}

	// The serving instance.
	sctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var acked, answers, refreshes atomic.Int64
	fail := func(what string, err error) {
		if sctx.Err() == nil {
			t.Errorf("%s while migrating: %v", what, err)
		}
	}
	t.Cleanup(func() { stop(); wg.Wait() })
	wg.Add(4)
	go func() {
		defer wg.Done()
		roller.Run(sctx)
	}()
	go func() { // ingest
		defer wg.Done()
		wrng := rand.New(rand.NewPCG(14, 15))
		for i := 0; sctx.Err() == nil; i++ {
			events := make([]ingest.Event, 20)
			for j := range events {
				events[j] = ingest.Event{UserID: fmt.Sprintf("user-%d", wrng.IntN(900)), EventType: "click",
					CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
			}
			n, _, err := db.WriteEvents(ctx, "k", fmt.Sprint("batch-", i), []byte{byte(i)}, events)
			if err != nil {
				fail("ingest", err)
				return
			}
			acked.Add(int64(n))
			time.Sleep(3 * time.Millisecond)
		}
	}()
	go func() { // summaries, exact in their snapshot
		defer wg.Done()
		qrng := rand.New(rand.NewPCG(14, 16))
		for sctx.Err() == nil {
			iv := randomInterval(qrng, first, time.Now().UTC())
			tx, err := db.pool.BeginTx(sctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
			if err != nil {
				fail("summary", err)
				return
			}
			got, err := db.aggregate(sctx, tx, "", []Interval{iv})
			if err == nil {
				var want []Interval
				want = append(want, iv)
				var naive []summary.Summary
				naive, err = naiveAggregate(sctx, tx, "", want)
				if err == nil && !reflect.DeepEqual(got, naive) {
					t.Errorf("while migrating [%s, %s): rollups %+v, plain SQL %+v", iv.From, iv.To, got, naive)
				}
			}
			_ = tx.Rollback(ctx)
			if err != nil {
				fail("summary", err)
				return
			}
			answers.Add(1)
		}
	}()
	go func() { // a live stream's refreshes: all time up to the far future
		defer wg.Done()
		live := []Interval{{From: first.Add(-time.Hour), To: now.AddDate(1, 0, 0)}}
		var last int64
		for sctx.Err() == nil {
			got, err := db.Aggregate(sctx, "", live)
			if err != nil {
				fail("stream refresh", err)
				return
			}
			if got[0].TotalEvents < last {
				t.Errorf("while migrating: the live total went back from %d to %d", last, got[0].TotalEvents)
			}
			last = got[0].TotalEvents
			refreshes.Add(1)
			time.Sleep(10 * time.Millisecond)
		}
	}()

	// Another instance migrates (a second pool, as another process).
	time.Sleep(200 * time.Millisecond)
	other, err := Open(ctx, Options{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	before := answers.Load()
	n, err := other.Migrate(ctx)
	if err != nil || n == 0 {
		t.Fatalf("migrate: %d applied, %v", n, err)
	}
	// Keep serving on the new schema for a while.
	for answers.Load() < before+40 || refreshes.Load() < 40 {
		if t.Failed() {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	wg.Wait()
	if t.Failed() {
		return
	}

	var kind string
	var node uint32
	var parent string
	if err := db.pool.QueryRow(ctx, `SELECT (SELECT relkind::text FROM pg_class WHERE oid = 'events'::regclass),
			pg_relation_filenode('events_unpartitioned'),
			(SELECT inhparent::regclass::text FROM pg_inherits WHERE inhrelid = 'events_unpartitioned'::regclass)`).Scan(&kind, &node, &parent); err != nil {
		t.Fatal(err)
	}
	if kind != "p" || parent != "events" || node != filenode {
		t.Fatalf("after migrating: events relkind %q, old table's parent %q, file %d (was %d): want a partitioned table holding the old one unrewritten",
			kind, parent, node, filenode)
	}
	if err := roller.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	var total int64
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&total); err != nil || total != 60_000+acked.Load() {
		t.Fatalf("events: %d (%v), want 60000 + %d acknowledged", total, err, acked.Load())
	}
	for range 30 {
		compare(t, db, "", []Interval{randomInterval(rng, first, time.Now().UTC())})
	}
	// New events keep their ids unique after the old table's.
	var dup int
	if err := db.pool.QueryRow(ctx, `SELECT count(*) - count(DISTINCT id) FROM events`).Scan(&dup); err != nil || dup != 0 {
		t.Fatalf("%d duplicate ids (%v)", dup, err)
	}
	t.Logf("%d summaries, %d refreshes, %d events acknowledged while migrating", answers.Load(), refreshes.Load(), acked.Load())
}

// TestRollupsAcrossPartitionsAndRetention is the property test across a
// partition boundary and the retention boundary. Daily partitions (one
// day's rows left in the default partition, which the worker gives a
// partition of its own, moving them), then, while the worker runs, a
// worker with a raw retention drops the oldest partitions; late and live
// events, deletes and updates keep coming above the horizon. Every answer,
// taken in one snapshot, equals plain SQL over a shadow copy of the events
// that keeps the dropped rows: plain SQL where raw rows exist, the answer
// before the drop where they do not. Events below the horizon are refused.
func TestRollupsAcrossPartitionsAndRetention(t *testing.T) {
	t.Parallel()
	db := openTestDB(t)
	ctx := context.Background()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 3))
	now := time.Now().UTC()
	today := Day.Trunc(now)
	first := today.AddDate(0, 0, -6).Add(5*time.Hour + 17*time.Second)
	width := int64(now.Sub(first))
	// Day partitions for the history, except the third day's.
	for d := today.AddDate(0, 0, -6); d.Before(today.AddDate(0, 0, 3)); d = d.AddDate(0, 0, 1) {
		if d.Equal(today.AddDate(0, 0, -4)) {
			continue
		}
		if _, err := db.EnsurePartitions(ctx, Day, d, d.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	insertRandom(t, db, rng, 15_000, func() time.Time { return first.Add(time.Duration(rng.Int64N(width))).Truncate(time.Microsecond) })
	insertRandom(t, db, rng, 300, func() time.Time { return first.Add(time.Duration(rng.Int64N(width))).Truncate(time.Hour) })
	day := func(n int) time.Time { return today.AddDate(0, 0, n) }
	var inDefault int
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM events_default`).Scan(&inDefault); err != nil || inDefault == 0 {
		t.Fatalf("default partition: %d rows (%v), want the third day's", inDefault, err)
	}
	if _, err := db.pool.Exec(ctx, `CREATE TABLE events_shadow AS SELECT * FROM events;
		CREATE INDEX ON events_shadow (created_at)`); err != nil {
		t.Fatal(err)
	}
	po := PartitionOptions{Grain: Day}
	roller := db.NewRoller(RollupOptions{Interval: 20 * time.Millisecond, Chunk: 500, Partitions: po})
	if err := roller.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.checkRetention(ctx); err != nil {
		t.Fatal(err)
	}

	// The raw retention will drop the days before day(-2): writers stay
	// above it, in events and the shadow alike.
	floor := day(-2)
	// The cutoff falls at noon of floor's day, whatever the time of day
	// now: every partition before floor goes, floor's stays.
	retention := now.Sub(floor.Add(12 * time.Hour))
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	t.Cleanup(func() { stop(); wg.Wait() })
	runWorker := func(r *Roller) (stop func()) {
		c, cancel := context.WithCancel(wctx)
		done := make(chan struct{})
		go func() { defer close(done); r.Run(c) }()
		return func() { cancel(); <-done }
	}
	stopA := runWorker(roller)
	wg.Add(1)
	go func() {
		defer wg.Done()
		wrng := rand.New(rand.NewPCG(seed, 4))
		above := int64(now.Sub(floor))
		for i := 0; wctx.Err() == nil; i++ {
			var err error
			switch i % 10 {
			case 7:
				_, err = db.pool.Exec(ctx, `WITH d AS (DELETE FROM events WHERE id IN
					(SELECT id FROM events WHERE created_at >= $1 ORDER BY random() LIMIT 5) RETURNING id)
					DELETE FROM events_shadow WHERE id IN (SELECT id FROM d)`, floor)
			case 8:
				_, err = db.pool.Exec(ctx, `WITH u AS (UPDATE events SET created_at = created_at - interval '26 hours', event_type = 'moved'
					WHERE id IN (SELECT id FROM events WHERE created_at >= $1 ORDER BY random() LIMIT 3) RETURNING id, created_at, event_type)
					UPDATE events_shadow s SET created_at = u.created_at, event_type = u.event_type FROM u WHERE s.id = u.id`, floor.Add(27*time.Hour))
			default:
				live := time.Now().UTC().Truncate(time.Microsecond)
				late := floor.Add(time.Duration(wrng.Int64N(above))).Truncate(time.Microsecond)
				_, err = db.pool.Exec(ctx, `WITH i AS (INSERT INTO events (user_id, event_type, created_at)
					SELECT 'user-' || (random() * 700)::int, $3, t FROM (VALUES ($1::timestamptz), ($2::timestamptz)) v(t)
					RETURNING *) INSERT INTO events_shadow SELECT * FROM i`, live, late, testTypes[wrng.IntN(len(testTypes))])
			}
			if err != nil && wctx.Err() == nil {
				t.Error(err)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()

	shadow := func(q string) string { return strings.ReplaceAll(q, "FROM events ", "FROM events_shadow ") }
	check := func() (adjusted int) {
		tx, err := db.beginRead(ctx, db.pool)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx) //nolint:errcheck // read-only
		typ := ""
		if rng.IntN(4) == 0 {
			typ = testTypes[rng.IntN(len(testTypes))]
		}
		ivs := []Interval{randomInterval(rng, first, time.Now().UTC())}
		if rng.IntN(3) == 0 { // a time series
			step := time.Duration(1+rng.IntN(600)) * time.Minute
			from := ivs[0].From
			ivs = ivs[:0]
			for j := 0; j < 1+rng.IntN(30); j++ {
				ivs = append(ivs, Interval{From: from, To: from.Add(step)})
				from = from.Add(step)
			}
		}
		got, err := db.aggregate(ctx, tx, typ, ivs)
		if err != nil {
			t.Fatal(err)
		}
		for i, iv := range ivs {
			eff := iv
			if got[i].Effective != nil {
				eff = *got[i].Effective
				adjusted++
			}
			want, err := naiveAggregateSQL(ctx, tx, typ, []Interval{eff}, shadow)
			if err != nil {
				t.Fatal(err)
			}
			g := got[i]
			g.Effective = nil
			if !reflect.DeepEqual(g, want[0]) {
				t.Fatalf("[%s, %s) (effective [%s, %s)) type %q:\nrollups %+v\nshadow  %+v", iv.From, iv.To, eff.From, eff.To, typ, g, want[0])
			}
		}
		return adjusted
	}
	for range 60 {
		check()
	}
	// The worker (its first maintenance) gave the third day a partition:
	// its rows moved out of the default partition.
	name := "events_p" + day(-4).Format("20060102")
	for wait := time.Now().Add(20 * time.Second); ; {
		var exists bool
		var left int
		if err := db.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL, (SELECT count(*) FROM events_default WHERE created_at < $2)`,
			name, day(1)).Scan(&exists, &left); err != nil {
			t.Fatal(err)
		}
		if exists && left == 0 {
			break
		}
		if time.Now().After(wait) {
			t.Fatalf("the worker did not give the third day its partition (%s: %v; %d rows left in the default partition)", name, exists, left)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for range 60 {
		check()
	}
	// Now a worker with the raw retention takes over.
	stopA()
	po.RawRetention = retention
	stopB := runWorker(db.NewRoller(RollupOptions{Interval: 20 * time.Millisecond, Chunk: 500, Partitions: po, MaintainEvery: 50 * time.Millisecond}))
	defer stopB()
	adjusted, checks := 0, 0
	deadline := time.Now().Add(6 * time.Second)
	for ; time.Now().Before(deadline) || checks < 150; checks++ {
		adjusted += check()
	}
	ret, err := db.Retention(ctx)
	if err != nil || ret.RawFrom == nil || !ret.RawFrom.Equal(floor) {
		t.Fatalf("retention: %+v, %v; want raw events from %s", ret, err, floor)
	}
	if adjusted == 0 {
		t.Errorf("no answer had an edge moved to the minute in %d checks", checks)
	}
	// Nothing below the horizon is written, by ingest or by anyone.
	_, _, err = db.WriteEvents(ctx, "k", "", nil, []ingest.Event{{UserID: "u", EventType: "late", CreatedAt: floor.Add(-time.Hour)}})
	if !errors.Is(err, ingest.ErrBeforeRetention) {
		t.Errorf("ingest below the horizon: %v, want ErrBeforeRetention", err)
	}
	if _, err := db.pool.Exec(ctx, `INSERT INTO events (user_id, event_type, created_at) VALUES ('u', 'late', $1)`, floor.Add(-time.Hour)); !isCode(err, "23514") {
		t.Errorf("insert below the horizon: %v, want a check violation", err)
	}
	var partitions, dropped int
	if err := db.pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE c.relname < 'events_p'||to_char($1::timestamptz AT TIME ZONE 'UTC', 'YYYYMMDD'))
		FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'events'::regclass AND c.relname LIKE 'events_p%'`, floor).Scan(&partitions, &dropped); err != nil || dropped != 0 {
		t.Fatalf("%d partitions older than the horizon left (%v)", dropped, err)
	}
	t.Logf("%d checks after the drop, %d with an edge moved to the minute; %d partitions left", checks, adjusted, partitions)
}

// TestRollupRetentionDeletesOldBuckets: ROLLUP_RETENTION deletes the
// buckets of every grain that end before it, keeps the rest, and records
// where the rollups start.
func TestRollupRetentionDeletesOldBuckets(t *testing.T) {
	t.Parallel()
	db := openTestDB(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(21, 21))
	now := time.Now().UTC()
	first := now.AddDate(0, -3, 0)
	width := int64(now.Sub(first))
	insertRandom(t, db, rng, 5_000, func() time.Time { return first.Add(time.Duration(rng.Int64N(width))) })
	if err := db.NewRoller(RollupOptions{}).CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	const keep = 40 * 24 * time.Hour
	if err := db.NewRoller(RollupOptions{Partitions: PartitionOptions{RawRetention: keep, RollupRetention: keep}}).CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	ret, err := db.Retention(ctx)
	if err != nil || ret.RollupsFrom == nil || ret.RawFrom == nil {
		t.Fatalf("retention %+v, %v", ret, err)
	}
	// The worker's clock ran on past now while the test seeded: the
	// cutoff is its now less keep, on the minute, so anywhere from the
	// minute of now-keep to the minute of the current time less keep.
	cutoff := *ret.RollupsFrom
	if lo, hi := Minute.Trunc(now.Add(-keep)), time.Now().Add(-keep); cutoff.Before(lo) || cutoff.After(hi) {
		t.Fatalf("rollups kept from %s, want between %s and %s", cutoff, lo, hi)
	}
	for _, g := range Grains {
		var old, kept int
		if err := db.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE bucket < $2), count(*) FILTER (WHERE bucket >= $3)
			FROM rollup_totals WHERE grain = $1`, int16(g), g.Trunc(cutoff), cutoff).Scan(&old, &kept); err != nil {
			t.Fatal(err)
		}
		if old != 0 || ((g <= Day || g >= HourAt30) && kept == 0) {
			t.Fatalf("%s buckets: %d before the retention left, %d after it kept", g, old, kept)
		}
	}
	// What is kept still answers exactly.
	iv := Interval{From: cutoff.Add(24 * time.Hour), To: now}
	got, err := db.Aggregate(ctx, "", []Interval{iv})
	if err != nil {
		t.Fatal(err)
	}
	naive := &DB{pool: db.pool, read: db.pool, naive: true}
	want, err := naive.Aggregate(ctx, "", []Interval{iv})
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("kept range: %+v, plain SQL %+v (%v)", got, want, err)
	}
}
