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
	countOnly(t, db, end)
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
	countOnly(t, db, end)
}

// countOnly: a cold hourly series over closed hours in whole-hour, :30
// and :45 zones reads one rollup row per hour and no bitmap (each point is
// a whole bucket of the grain that zone's hours fall on: its users_count
// answers), and still equals plain SQL (compare).
func countOnly(t *testing.T, db *DB, end time.Time) {
	t.Helper()
	for _, c := range []struct {
		tz    string
		grain Grain
	}{{"Europe/Berlin", Hour}, {"Asia/Kolkata", HourAt30}, {"Asia/Kathmandu", HourAt15}} {
		loc, err := time.LoadLocation(c.tz)
		if err != nil {
			t.Fatal(err)
		}
		points, err := summary.Buckets(end.Add(-48*time.Hour), end, summary.BucketHour, loc, summary.DefaultMaxPoints)
		if err != nil {
			t.Fatal(err)
		}
		var ivs []Interval
		for _, p := range points {
			if p.Interval.To.Sub(p.Interval.From) != time.Hour || p.Interval.To.After(end) {
				continue // a clipped edge
			}
			if b := p.Interval.From.UTC(); !c.grain.Trunc(b).Equal(b) {
				t.Fatalf("%s: the hour starting %s is not a %s bucket", c.tz, b, c.grain)
			}
			ivs = append(ivs, p.Interval)
		}
		var rows int
		if err := db.pool.QueryRow(context.Background(), `SELECT count(*) FROM rollup_totals
			WHERE grain = $1 AND bucket >= $2 AND bucket < $3 AND users_count IS NOT NULL`, int16(c.grain), ivs[0].From, ivs[len(ivs)-1].To).Scan(&rows); err != nil {
			t.Fatal(err)
		}
		if rows != len(ivs) {
			t.Fatalf("%s: %d of %d %s buckets have a row with users_count", c.tz, rows, len(ivs), c.grain)
		}
		for _, typ := range []string{"", "click"} {
			db.ResetCaches()
			compare(t, db, typ, ivs)
			if n, _ := db.BitmapCacheStats(); n != 0 {
				t.Fatalf("%s %q: a cold series of %d whole hours decoded %d bitmaps, want none", c.tz, typ, len(ivs), n)
			}
		}
	}
}
