package storage

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
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
			n, _, err := db.WriteEvents(sctx, "k", fmt.Sprint("batch-", i), []byte{byte(i)}, events)
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
