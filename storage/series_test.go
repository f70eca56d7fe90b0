package storage

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/liveanalytics/analyticsd/summary"
)

// TestSeriesInZonesEqualNaiveSQL: hourly series over three days in zones
// offset from UTC by whole hours (Berlin), :30 (Kolkata) and :45
// (Kathmandu) equal plain SQL, cold (caches emptied), warm (every bitmap
// known: PostgreSQL sends none), and after late events rewrote some of
// the buckets the cache knows (their new versions must be read), with
// and without an event type.
func TestSeriesInZonesEqualNaiveSQL(t *testing.T) {
	t.Parallel()
	db := openTestDB(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	end := time.Now().UTC()
	from := end.Add(-72 * time.Hour)
	at := func() time.Time {
		return from.Add(time.Duration(rng.Int64N(int64(end.Sub(from))))).Truncate(time.Microsecond)
	}
	insertRandom(t, db, rng, 20_000, at)
	roller := db.NewRoller(RollupOptions{Interval: 20 * time.Millisecond, Chunk: 2000})
	if err := roller.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	check := func(what string) {
		t.Helper()
		for _, tz := range []string{"Europe/Berlin", "Asia/Kolkata", "Asia/Kathmandu"} {
			loc, err := time.LoadLocation(tz)
			if err != nil {
				t.Fatal(err)
			}
			points, err := summary.Buckets(from, end, summary.BucketHour, loc, summary.DefaultMaxPoints)
			if err != nil {
				t.Fatal(err)
			}
			ivs := make([]Interval, len(points))
			for i, p := range points {
				ivs[i] = p.Interval
			}
			for _, typ := range []string{"", "click"} {
				if what == "cold" {
					db.ResetCaches()
				}
				t.Run(what+"/"+tz+"/"+typ, func(t *testing.T) { compare(t, db, typ, ivs) })
			}
		}
	}
	check("cold")
	check("warm")
	var known int
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM rollup_totals WHERE grain = $1`, int16(Quarter)).Scan(&known); err != nil || known == 0 {
		t.Fatalf("%d quarter buckets (%v)", known, err)
	}
	// Late events in a few hours: their minutes, quarters, hours and days
	// are rewritten under new versions while the cache holds the old.
	for range 5 {
		h := at().Truncate(time.Hour)
		insertRandom(t, db, rng, 50, func() time.Time { return h.Add(time.Duration(rng.Int64N(int64(time.Hour)))) })
	}
	if err := roller.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	check("rewritten")
}
