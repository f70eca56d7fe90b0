package storage

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// scanned is every relation a plan reads with a sequential scan.
func seqScans(t *testing.T, node map[string]any, out *[]string) {
	t.Helper()
	if node["Node Type"] == "Seq Scan" {
		rel, _ := node["Relation Name"].(string)
		*out = append(*out, rel)
	}
	if kids, ok := node["Plans"].([]any); ok {
		for _, k := range kids {
			seqScans(t, k.(map[string]any), out)
		}
	}
}

// guarded are the tables that grow with the data: a hot query must never
// read one of them whole.
func guarded(rel string) bool {
	return rel == "events" || strings.HasPrefix(rel, "events_") || strings.HasPrefix(rel, "rollup_totals") ||
		strings.HasPrefix(rel, "rollup_types") || rel == "user_dict"
}

// explainNoSeqScan fails when the plan of sql with args reads a guarded
// table sequentially.
func explainNoSeqScan(t *testing.T, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, name, sql string, args ...any) {
	t.Helper()
	var raw []byte
	if err := q.QueryRow(context.Background(), "EXPLAIN (FORMAT JSON) "+sql, args...).Scan(&raw); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var doc []map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var seq []string
	seqScans(t, doc[0]["Plan"].(map[string]any), &seq)
	for _, rel := range seq {
		if guarded(rel) {
			t.Errorf("%s: sequential scan of %s on a never-analyzed table:\n%s", name, rel, raw)
			return
		}
	}
}

// TestHotQueryPlansNeedNoStatistics bulk-loads events (no ANALYZE: the
// test server runs with autovacuum off, and a fresh schema was never
// analyzed), rolls them up, and checks that no hot query plans a
// sequential scan of events, the rollups or the dictionary: the summary's
// bucket and raw-edge queries (a summary and a time series), and the rollup
// worker's queries.
func TestHotQueryPlansNeedNoStatistics(t *testing.T) {
	t.Parallel()
	db := openTestDB(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(12, 12))
	now := time.Now().UTC()
	first := now.AddDate(0, 0, -30)
	width := int64(now.Sub(first))
	for range 4 {
		insertRandom(t, db, rng, 100_000, func() time.Time {
			return first.Add(time.Duration(rng.Int64N(width))).Truncate(time.Microsecond)
		})
	}
	if err := db.NewRoller(RollupOptions{Chunk: 20_000}).CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	// Fresh minutes the worker has not seen: read raw.
	insertRandom(t, db, rng, 2_000, func() time.Time { return now.Add(-time.Duration(rng.Int64N(int64(time.Hour)))) })
	var analyzed int
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_user_tables
		WHERE schemaname = current_schema() AND (last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL)`).Scan(&analyzed); err != nil || analyzed != 0 {
		t.Fatalf("%d tables were analyzed (%v): the test needs a never-analyzed schema", analyzed, err)
	}

	tx, err := db.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // read-only
	ragged := Interval{From: first.Add(90*time.Second + 250*time.Millisecond), To: now}
	var series []Interval
	for from := now.Add(-24 * time.Hour).Truncate(5 * time.Minute); from.Before(now); from = from.Add(5 * time.Minute) {
		series = append(series, Interval{From: from, To: from.Add(5 * time.Minute)})
	}
	for _, c := range []struct {
		name string
		ivs  []Interval
	}{{"30-day summary", []Interval{ragged}}, {"24 h series in 5-minute buckets", series}} {
		lo, hi := span(c.ivs)
		f, err := db.loadFreshness(ctx, tx, lo, hi)
		if err != nil {
			t.Fatal(err)
		}
		a := &aggregation{db: db, tx: tx, ivs: c.ivs}
		a.plan(f)
		if len(a.grains) == 0 || len(a.rawLo) == 0 {
			t.Fatalf("%s: %d buckets and %d raw intervals, want both", c.name, len(a.grains), len(a.rawLo))
		}
		explainNoSeqScan(t, tx, c.name+": bucket metas", totalsMetaSQL, a.grains, a.starts, a.known, a.want)
		explainNoSeqScan(t, tx, c.name+": bucket metas by type", typesMetaSQL, a.grains, a.starts, a.known, a.want, "click")
		explainNoSeqScan(t, tx, c.name+": bitmaps", totalsUsersSQL, a.grains, a.starts)
		explainNoSeqScan(t, tx, c.name+": bitmaps by type", typesUsersSQL, a.grains, a.starts, "click")
		explainNoSeqScan(t, tx, c.name+": raw edges", rawSQL, a.rawLo, a.rawHi, a.rawIdx, "")
		explainNoSeqScan(t, tx, c.name+": raw edges by type", rawSQL, a.rawLo, a.rawHi, a.rawIdx, "click")
		explainNoSeqScan(t, tx, c.name+": dirty minutes", dirtySQL, lo, hi)
		explainNoSeqScan(t, tx, c.name+": pending buckets", pendingSQL, lo, hi)
	}
	explainNoSeqScan(t, tx, "dictionary lookup", dictLookupSQL, []string{"user-1", "user-2"})

	// The worker: a day of minutes, and the parents of each grain.
	var minutes []time.Time
	for m := Day.Trunc(first.AddDate(0, 0, 3)); len(minutes) < 1440; m = m.Add(time.Minute) {
		minutes = append(minutes, m)
	}
	explainNoSeqScan(t, tx, "worker: new users", dictSQL, minutes)
	explainNoSeqScan(t, tx, "worker: minute events", minuteEventsSQL, minutes)
	explainNoSeqScan(t, tx, "worker: take dirty marks", takeDirtySQL, 1440)
	for _, g := range rollOrder {
		var starts, ends []time.Time
		for b := g.Trunc(first); b.Before(now); b = g.Next(b) {
			starts, ends = append(starts, b), append(ends, g.Next(b))
		}
		explainNoSeqScan(t, tx, "worker: "+g.String()+" children totals", childTotalsSQL, starts, ends, int16(g.child()))
		explainNoSeqScan(t, tx, "worker: "+g.String()+" children by type", childTypesSQL, starts, ends, int16(g.child()))
	}
}
