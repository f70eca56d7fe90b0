package storage

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/liveanalytics/analyticsd/summary"
)

var (
	_ summary.Store      = (*DB)(nil)
	_ summary.Aggregator = (*DB)(nil)
)

// Summary answers the inclusive range r (and its event type filter).
func (db *DB) Summary(ctx context.Context, r summary.Range) (summary.Summary, error) {
	out, err := db.Aggregate(ctx, r.EventType, []Interval{{From: r.From, To: r.To.Add(time.Microsecond)}})
	if err != nil {
		return summary.Summary{}, err
	}
	return out[0], nil
}

// Aggregate answers every half-open interval exactly, all from one
// repeatable-read snapshot: from the rollups where they are current, from
// events where they are not, and for the edges shorter than a minute.
func (db *DB) Aggregate(ctx context.Context, eventType string, ivs []Interval) ([]summary.Summary, error) {
	if len(ivs) == 0 {
		return nil, nil
	}
	if err := db.checkRetention(ctx); err != nil {
		return nil, err
	}
	// On a replica too: a standby gives repeatable-read snapshots.
	tx, err := db.beginRead(ctx, db.read)
	if err != nil {
		return nil, fmt.Errorf("storage: summary: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read-only
	var out []summary.Summary
	if db.naive {
		out, err = naiveAggregate(ctx, tx, eventType, ivs)
	} else {
		out, err = db.aggregate(ctx, tx, eventType, ivs)
	}
	if err != nil {
		return nil, fmt.Errorf("storage: summary: %w", err)
	}
	return out, tx.Commit(ctx)
}

// The plain aggregates, half-open; each an index-only scan of
// events_created_at_idx. The rollups must always agree with them.
const (
	naiveCountSQL  = `SELECT count(*) FROM events WHERE created_at >= $1 AND created_at < $2 AND ($3 = '' OR event_type = $3)`
	naiveUniqueSQL = `SELECT count(DISTINCT user_id) FROM events WHERE created_at >= $1 AND created_at < $2 AND ($3 = '' OR event_type = $3)`
	naiveByTypeSQL = `SELECT event_type, count(*) FROM events WHERE created_at >= $1 AND created_at < $2 AND ($3 = '' OR event_type = $3) GROUP BY event_type`
)

func naiveAggregate(ctx context.Context, q pgx.Tx, eventType string, ivs []Interval) ([]summary.Summary, error) {
	return naiveAggregateSQL(ctx, q, eventType, ivs, func(sql string) string { return sql })
}

// naiveAggregateSQL is naiveAggregate with its queries passed through sql
// (tests read a shadow table with it).
func naiveAggregateSQL(ctx context.Context, q pgx.Tx, eventType string, ivs []Interval, sql func(string) string) ([]summary.Summary, error) {
	out := make([]summary.Summary, len(ivs))
	for i, iv := range ivs {
		s := &out[i]
		if err := q.QueryRow(ctx, sql(naiveCountSQL), iv.From, iv.To, eventType).Scan(&s.TotalEvents); err != nil {
			return nil, err
		}
		if err := q.QueryRow(ctx, sql(naiveUniqueSQL), iv.From, iv.To, eventType).Scan(&s.UniqueUsers); err != nil {
			return nil, err
		}
		rows, err := q.Query(ctx, sql(naiveByTypeSQL), iv.From, iv.To, eventType)
		if err != nil {
			return nil, err
		}
		var c summary.TypeCount
		s.EventsByType = summary.TypeCounts{}
		if _, err := pgx.ForEachRow(rows, []any{&c.Type, &c.Count}, func() error {
			s.EventsByType = append(s.EventsByType, c)
			return nil
		}); err != nil {
			return nil, err
		}
		s.EventsByType.Sort()
	}
	return out, nil
}

const (
	dirtySQL = `SELECT DISTINCT minute FROM rollup_dirty
		WHERE minute > $1::timestamptz - interval '1 minute' AND minute < $2 ORDER BY 1`
	pendingSQL = `SELECT grain, bucket FROM rollup_pending
		WHERE bucket > $1::timestamptz - interval '32 days' AND bucket < $2`
	// Every query below that takes arrays reads one index range or key per
	// element, by construction: a LATERAL subquery fenced with OFFSET 0 is
	// not flattened into a join, so the planner cannot trade the per-element
	// index scans for a hash join over a sequential scan, which it did on a
	// table that had never been analyzed (190 ms instead of 2 ms for a cold
	// 30-day summary on 2M rows). TestHotQueryPlansNeedNoStatistics holds it.
	//
	// The buckets' counts, and their user bitmaps unless the caller
	// already holds the bucket's current version (known, 0 for none) or
	// needs only its user count (want false: the bucket is a whole
	// interval, and its row has users_count): a cold query gets everything
	// in one pass over the buckets, a warm one no bitmap at all. A bitmap
	// left out is never read from its TOAST.
	totalsMetaSQL = `SELECT t.grain, t.bucket, t.version, t.events, t.users_count, t.type_names, t.type_counts,
			CASE WHEN t.version = k.known OR (NOT k.want AND t.users_count IS NOT NULL) THEN NULL ELSE t.users END
		FROM unnest($1::int2[], $2::timestamptz[], $3::int8[], $4::bool[]) k(grain, bucket, known, want)
		CROSS JOIN LATERAL (SELECT * FROM rollup_totals t
			WHERE t.grain = k.grain AND t.bucket = k.bucket OFFSET 0) t`
	typesMetaSQL = `SELECT t.grain, t.bucket, t.version, t.events, t.users_count,
			CASE WHEN t.version = k.known OR (NOT k.want AND t.users_count IS NOT NULL) THEN NULL ELSE t.users END
		FROM unnest($1::int2[], $2::timestamptz[], $3::int8[], $4::bool[]) k(grain, bucket, known, want)
		CROSS JOIN LATERAL (SELECT * FROM rollup_types t
			WHERE t.event_type = $5 AND t.grain = k.grain AND t.bucket = k.bucket OFFSET 0) t`
	// The bitmaps of buckets whose version was known but whose bitmap left
	// the cache before it was read (rare: a full cache evicting).
	totalsUsersSQL = `SELECT t.version, t.users, t.grain, t.bucket
		FROM unnest($1::int2[], $2::timestamptz[]) k(grain, bucket)
		CROSS JOIN LATERAL (SELECT * FROM rollup_totals t
			WHERE t.grain = k.grain AND t.bucket = k.bucket OFFSET 0) t`
	typesUsersSQL = `SELECT t.version, t.users, t.grain, t.bucket
		FROM unnest($1::int2[], $2::timestamptz[]) k(grain, bucket)
		CROSS JOIN LATERAL (SELECT * FROM rollup_types t
			WHERE t.event_type = $3 AND t.grain = k.grain AND t.bucket = k.bucket OFFSET 0) t`
	// Raw rows of the uncovered intervals, an index-only range scan per
	// interval. Their users are mapped to dictionary ids in Go (dictIDs):
	// joining the dictionary here either hashes all of it or looks up every
	// row (measured 7 ms for 50 rows, and 50 ms for 1,400 rows on a
	// 2M-user dictionary).
	rawSQL = `SELECT r.i, e.event_type, e.user_id
		FROM unnest($1::timestamptz[], $2::timestamptz[], $3::int4[]) r(lo, hi, i)
		CROSS JOIN LATERAL (SELECT event_type, user_id FROM events
			WHERE created_at >= r.lo AND created_at < r.hi AND ($4 = '' OR event_type = $4) OFFSET 0) e`
	dictLookupSQL = `SELECT d.user_id, d.id FROM unnest($1::text[]) u(name)
		CROSS JOIN LATERAL (SELECT user_id, id FROM user_dict WHERE user_id = u.name OFFSET 0) d`
)

type bucketMeta struct {
	version int64
	events  int64
	users   *int64 // users_count: nil for a row written before it existed
	names   []string
	counts  []int64
}

// aggregate is Aggregate on the rollups, inside tx, in as few round trips
// as the data allows: freshness, then bucket metas and raw rows together,
// then dictionary ids and bitmaps only for what the caches miss.
func (db *DB) aggregate(ctx context.Context, tx pgx.Tx, eventType string, ivs []Interval) ([]summary.Summary, error) {
	a := &aggregation{db: db, tx: tx, eventType: eventType, ivs: ivs}

	// 1. What is not current: dirty minutes and pending parents; and
	// where the raw events end (RAW_RETENTION): an edge inside the
	// dropped range moves out to the minute, which the rollups know.
	lo, hi := span(ivs)
	f, err := db.loadFreshness(ctx, tx, lo, hi)
	if err != nil {
		return nil, err
	}
	if f.rawFrom != nil {
		a.ivs = adjustToRetention(ivs, *f.rawFrom)
		a.adjusted = true
	}

	// 2. The plans, and the buckets and raw intervals they need.
	a.plan(f)

	// 3. The buckets' counts, versions and the bitmaps not cached, and the
	// raw rows, in one round trip.
	if err := a.loadMetasAndRaw(ctx); err != nil {
		return nil, err
	}

	// 4. The raw rows' users as dictionary ids; a user the worker has not
	// put in the dictionary yet (in this snapshot) stays a name. A cached
	// id is always right: the dictionary only grows, and an id newer than
	// this snapshot is in none of its bitmaps, so it counts once either way.
	if a.ids, err = db.dictIDs(ctx, tx, a.rawUsers); err != nil {
		return nil, err
	}

	// 5. The bitmaps neither read in step 3 nor still cached (rare).
	if err := a.loadBitmaps(ctx); err != nil {
		return nil, err
	}

	// 6. Combine.
	out := a.combine()
	if a.adjusted {
		for i := range out {
			if a.ivs[i] != ivs[i] {
				eff := a.ivs[i]
				out[i].Effective = &eff
			}
		}
	}
	return out, nil
}

// adjustToRetention moves the edges that fall inside the dropped raw range
// (before rawFrom) and are not on a minute out to the minute: From down,
// To up (never past rawFrom, which is on a minute).
func adjustToRetention(ivs []Interval, rawFrom time.Time) []Interval {
	out := make([]Interval, len(ivs))
	for i, iv := range ivs {
		if iv.From.Before(rawFrom) {
			iv.From = Minute.Trunc(iv.From)
		}
		if iv.To.Before(rawFrom) {
			iv.To = Minute.ceil(iv.To)
		}
		if !iv.From.Before(iv.To) && ivs[i].From.Before(ivs[i].To) {
			iv.To = Minute.Next(iv.From)
		}
		out[i] = iv
	}
	return out
}

// aggregation is the state of one aggregate call, filled in step by step.
type aggregation struct {
	db        *DB
	tx        pgx.Tx
	eventType string
	ivs       []Interval
	adjusted  bool // ivs were moved to retention (see adjustToRetention)

	// Step 2: a plan per interval; the distinct buckets they need, each
	// at its position in index (grains, starts and metas line up); and
	// the raw intervals, each with the index of its interval.
	plans  []plan
	index  map[bucketKey]int
	grains []int16
	starts []time.Time
	known  []int64 // the version whose bitmap is cached, or 0
	want   []bool  // the bitmap is needed (false: the bucket is a whole interval, its count will do)
	rawLo  []time.Time
	rawHi  []time.Time
	rawIdx []int32

	// Step 3: the buckets' metas (nil for a bucket without a row), and per
	// interval the raw rows' events, counts by type and users.
	metas      []*bucketMeta
	out        []summary.Summary
	typeCounts []map[string]int64
	rawUsers   []map[string]struct{}

	ids     map[string]uint32         // step 4
	bitmaps map[int64]*roaring.Bitmap // step 5, by version
}

// span is the smallest interval that holds all of ivs (not empty).
func span(ivs []Interval) (lo, hi time.Time) {
	lo, hi = ivs[0].From, ivs[0].To
	for _, iv := range ivs[1:] {
		if iv.From.Before(lo) {
			lo = iv.From
		}
		if iv.To.After(hi) {
			hi = iv.To
		}
	}
	return lo, hi
}

// plan decomposes each non-empty interval under f and collects the
// distinct buckets and the raw intervals of all the plans.
func (a *aggregation) plan(f *freshness) {
	a.plans = make([]plan, len(a.ivs))
	a.index = map[bucketKey]int{}
	for i, iv := range a.ivs {
		if !iv.From.Before(iv.To) {
			continue
		}
		a.plans[i] = decompose(iv, f)
		whole := a.plans[i].countOnly()
		for _, k := range a.plans[i].Buckets {
			j, ok := a.index[k]
			if !ok {
				j = len(a.grains)
				a.index[k] = j
				a.grains = append(a.grains, int16(k.Grain))
				a.starts = append(a.starts, k.time())
				a.known = append(a.known, a.db.bitmaps.known(bucketID{a.eventType, k}))
				a.want = append(a.want, false)
			}
			a.want[j] = a.want[j] || !whole
		}
		for _, r := range a.plans[i].Raw {
			a.rawLo, a.rawHi, a.rawIdx = append(a.rawLo, r.From), append(a.rawHi, r.To), append(a.rawIdx, int32(i))
		}
	}
}

// loadMetasAndRaw reads the buckets' metas and the raw rows in one batch.
func (a *aggregation) loadMetasAndRaw(ctx context.Context) error {
	a.metas = make([]*bucketMeta, len(a.grains))
	a.out = make([]summary.Summary, len(a.ivs))
	a.typeCounts = make([]map[string]int64, len(a.ivs))
	for i := range a.typeCounts {
		a.typeCounts[i] = map[string]int64{}
	}
	a.rawUsers = make([]map[string]struct{}, len(a.ivs))
	a.bitmaps = make(map[int64]*roaring.Bitmap, len(a.grains))
	batch := &pgx.Batch{}
	if len(a.grains) > 0 {
		if a.eventType == "" {
			batch.Queue(totalsMetaSQL, a.grains, a.starts, a.known, a.want).Query(a.scanMetas)
		} else {
			batch.Queue(typesMetaSQL, a.grains, a.starts, a.known, a.want, a.eventType).Query(a.scanMetas)
		}
	}
	if len(a.rawLo) > 0 {
		batch.Queue(rawSQL, a.rawLo, a.rawHi, a.rawIdx, a.eventType).Query(a.scanRaw)
	}
	if batch.Len() > 0 {
		return a.tx.SendBatch(ctx, batch).Close()
	}
	return nil
}

// scanMetas reads rows of totalsMetaSQL, or of typesMetaSQL with an event
// type, into metas, and decodes (and caches) the bitmaps they carry.
func (a *aggregation) scanMetas(rows pgx.Rows) error {
	for rows.Next() {
		var g int16
		var b time.Time
		var users []byte // its own buffer per row: FromBuffer keeps it
		m := &bucketMeta{}
		var err error
		if a.eventType == "" {
			err = rows.Scan(&g, &b, &m.version, &m.events, &m.users, &m.names, &m.counts, &users)
		} else {
			err = rows.Scan(&g, &b, &m.version, &m.events, &m.users, &users)
		}
		if err != nil {
			return err
		}
		k := bucketKey{Grain(g), b.UnixMicro()}
		a.metas[a.index[k]] = m
		if users != nil {
			bm, err := decodeBitmap(users)
			if err != nil {
				return err
			}
			a.bitmaps[m.version] = bm
			a.db.bitmaps.add(m.version, bucketID{a.eventType, k}, bm, int64(len(users))+64)
		}
	}
	return rows.Err()
}

// scanRaw counts rows of rawSQL into their intervals.
func (a *aggregation) scanRaw(rows pgx.Rows) error {
	var (
		i    int32
		typ  string
		user string
	)
	_, err := pgx.ForEachRow(rows, []any{&i, &typ, &user}, func() error {
		a.out[i].TotalEvents++
		a.typeCounts[i][typ]++
		if a.rawUsers[i] == nil {
			a.rawUsers[i] = map[string]struct{}{}
		}
		a.rawUsers[i][user] = struct{}{}
		return nil
	})
	return err
}

// loadBitmaps takes the buckets' user bitmaps from the cache, and reads
// and decodes the ones it misses (caching them) in one query.
func (a *aggregation) loadBitmaps(ctx context.Context) error {
	var missG []int16
	var missS []time.Time
	for j, m := range a.metas {
		if m == nil {
			continue // an empty bucket has no row
		}
		if _, ok := a.bitmaps[m.version]; ok {
			continue // read in step 3
		}
		if !a.want[j] && m.users != nil {
			continue // its count will do
		}
		if bm, ok := a.db.bitmaps.get(m.version); ok {
			a.bitmaps[m.version] = bm
			continue
		}
		missG, missS = append(missG, a.grains[j]), append(missS, a.starts[j])
	}
	if len(missG) == 0 {
		return nil
	}
	var rows pgx.Rows
	var err error
	if a.eventType == "" {
		rows, err = a.tx.Query(ctx, totalsUsersSQL, missG, missS)
	} else {
		rows, err = a.tx.Query(ctx, typesUsersSQL, missG, missS, a.eventType)
	}
	if err != nil {
		return err
	}
	var (
		version int64
		buf     []byte
		g       int16
		b       time.Time
	)
	_, err = pgx.ForEachRow(rows, []any{&version, &buf, &g, &b}, func() error {
		bm, err := decodeBitmap(buf)
		if err != nil {
			return err
		}
		a.bitmaps[version] = bm
		a.db.bitmaps.add(version, bucketID{a.eventType, bucketKey{Grain(g), b.UnixMicro()}}, bm, int64(len(buf))+64)
		buf = nil // FromBuffer keeps it; let the next row have its own
		return nil
	})
	return err
}

// combine adds each interval's buckets to its raw counts, and counts its
// users across bucket bitmaps, raw ids and raw names.
func (a *aggregation) combine() []summary.Summary {
	for i := range a.ivs {
		s := &a.out[i]
		var parts []*roaring.Bitmap
		var counted *int64 // the users of a whole-interval bucket, without its bitmap
		for _, k := range a.plans[i].Buckets {
			m := a.metas[a.index[k]]
			if m == nil {
				continue
			}
			s.TotalEvents += m.events
			if a.eventType == "" {
				for j, name := range m.names {
					a.typeCounts[i][name] += m.counts[j]
				}
			} else {
				a.typeCounts[i][a.eventType] += m.events
			}
			if bm, ok := a.bitmaps[m.version]; ok {
				parts = append(parts, bm)
			} else {
				counted = m.users // countOnly, and loadBitmaps skipped it
			}
		}
		var rawIDs []uint32
		var names int64
		for u := range a.rawUsers[i] {
			if id, ok := a.ids[u]; ok {
				rawIDs = append(rawIDs, id)
			} else {
				names++
			}
		}
		s.UniqueUsers = uniqueUsers(parts, rawIDs) + names
		if counted != nil {
			s.UniqueUsers = *counted
		}
		s.EventsByType = make(summary.TypeCounts, 0, len(a.typeCounts[i]))
		for name, n := range a.typeCounts[i] {
			if n > 0 {
				s.EventsByType = append(s.EventsByType, summary.TypeCount{Type: name, Count: n})
			}
		}
		s.EventsByType.Sort()
	}
	return a.out
}

// dictIDs maps the users of raw rows to dictionary ids, from the
// in-process cache, then from the dictionary (in tx) for the rest.
func (db *DB) dictIDs(ctx context.Context, tx pgx.Tx, users []map[string]struct{}) (map[string]uint32, error) {
	ids := map[string]uint32{}
	seen := map[string]bool{}
	var missing []string
	for _, set := range users {
		for u := range set {
			if seen[u] {
				continue
			}
			seen[u] = true
			if id, ok := db.dict.get(u); ok {
				ids[u] = id
			} else {
				missing = append(missing, u)
			}
		}
	}
	if len(missing) == 0 {
		return ids, nil
	}
	rows, err := tx.Query(ctx, dictLookupSQL, missing)
	if err != nil {
		return nil, err
	}
	var (
		u  string
		id int32
	)
	found := map[string]uint32{}
	if _, err := pgx.ForEachRow(rows, []any{&u, &id}, func() error {
		ids[u] = uint32(id)
		found[u] = uint32(id)
		return nil
	}); err != nil {
		return nil, err
	}
	db.dict.addAll(found)
	return ids, nil
}

// beginRead starts a summary's read-only repeatable-read transaction.
// After migration 005 it locks events in the same round trip, before the
// transaction has a snapshot (a batch would not do: parsing its first
// query takes the snapshot): dropping a partition waits for this reader,
// so the horizon the reader sees matches the partitions it will scan.
func (db *DB) beginRead(ctx context.Context, pool *pgxpool.Pool) (pgx.Tx, error) {
	o := pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
	if db.retentionReady.Load() {
		o.BeginQuery = `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; LOCK TABLE events IN ACCESS SHARE MODE`
	}
	return pool.BeginTx(ctx, o)
}

// loadFreshness reads which minutes and buckets around [lo, hi) are not
// current, and, after migration 005, the raw horizon (see beginRead).
func (db *DB) loadFreshness(ctx context.Context, tx pgx.Tx, lo, hi time.Time) (*freshness, error) {
	f := &freshness{pending: map[bucketKey]bool{}}
	batch := &pgx.Batch{}
	retention := db.retentionReady.Load()
	batch.Queue(dirtySQL, lo, hi).Query(func(rows pgx.Rows) error {
		var m time.Time
		_, err := pgx.ForEachRow(rows, []any{&m}, func() error {
			f.dirty = append(f.dirty, m.UnixMicro())
			return nil
		})
		return err
	})
	batch.Queue(pendingSQL, lo, hi).Query(func(rows pgx.Rows) error {
		var g int16
		var b time.Time
		_, err := pgx.ForEachRow(rows, []any{&g, &b}, func() error {
			f.pending[bucketKey{Grain(g), b.UnixMicro()}] = true
			return nil
		})
		return err
	})
	if retention {
		batch.Queue(`SELECT raw_from FROM retention`).QueryRow(func(row pgx.Row) error {
			return row.Scan(&f.rawFrom)
		})
	}
	if err := tx.SendBatch(ctx, batch).Close(); err != nil {
		return nil, err
	}
	if f.rawFrom != nil {
		// A minute below the horizon has no raw rows left: its rollup is
		// the answer (the worker never recomputes it).
		cut := sort.Search(len(f.dirty), func(i int) bool { return f.dirty[i] >= f.rawFrom.UnixMicro() })
		f.dirty = f.dirty[cut:]
	}
	return f, nil
}

// checkRetention notes once whether the schema has the retention table
// (migration 005), outside any snapshot.
func (db *DB) checkRetention(ctx context.Context) error {
	if db.retentionReady.Load() {
		return nil
	}
	var ok bool
	if err := db.read.QueryRow(ctx, `SELECT to_regclass('retention') IS NOT NULL`).Scan(&ok); err != nil {
		return fmt.Errorf("storage: summary: %w", err)
	}
	if ok {
		db.retentionReady.Store(true)
	}
	return nil
}

// uniqueUsers is the cardinality of the union of the (shared, read-only)
// bitmaps and the extra ids.
func uniqueUsers(parts []*roaring.Bitmap, extra []uint32) int64 {
	var union *roaring.Bitmap
	switch len(parts) {
	case 0:
		union = roaring.New()
	case 1:
		union = parts[0]
	default:
		union = roaring.FastOr(parts...)
	}
	if len(extra) == 0 {
		return int64(union.GetCardinality())
	}
	more := roaring.New()
	for _, id := range extra {
		if !union.Contains(id) {
			more.Add(id)
		}
	}
	return int64(union.GetCardinality() + more.GetCardinality())
}

// BitmapCacheStats returns the entries and bytes of the in-process bitmap
// cache.
func (db *DB) BitmapCacheStats() (entries int, bytes int64) { return db.bitmaps.stats() }

// ResetCaches empties the in-process bitmap and dictionary caches, so
// that the next query is cold (benchmarks).
func (db *DB) ResetCaches() {
	db.bitmaps.reset()
	db.dict.reset()
}
