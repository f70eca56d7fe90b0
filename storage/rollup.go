package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// The rollup worker recomputes dirty minutes from events and closed
// pending hours, days and months from their children. One worker runs at a
// time per schema, whichever instance holds this session advisory lock.
const (
	rollupTryLockSQL = `SELECT pg_try_advisory_lock(hashtext('analyticsd.rollup'), hashtext(current_schema()))`
	rollupUnlockSQL  = `SELECT pg_advisory_unlock(hashtext('analyticsd.rollup'), hashtext(current_schema()))`
)

// RollupOptions configure the worker. Zero values take the defaults in
// brackets.
type RollupOptions struct {
	Interval time.Duration // [1s] pause between runs when there is nothing left to do
	Chunk    int           // [1440] dirty-minute marks taken by the first transaction; later ones adapt (see adapt)
	Logger   *slog.Logger
	Metrics  *RollupMetrics
	Now      func() time.Time // [time.Now] decides which buckets have closed
	// Partitions: the worker creates partitions of events ahead of time
	// and applies the retention, every MaintainEvery [1m].
	Partitions    PartitionOptions
	MaintainEvery time.Duration
}

// RollupMetrics are the worker's Prometheus collectors.
type RollupMetrics struct {
	runs     *prometheus.CounterVec
	buckets  *prometheus.CounterVec
	duration prometheus.Histogram
	dirty    prometheus.Gauge
	lag      prometheus.Gauge
	leader   prometheus.Gauge
}

// NewRollupMetrics registers the worker's collectors on reg.
func NewRollupMetrics(reg prometheus.Registerer) *RollupMetrics {
	m := &RollupMetrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "analytics_rollup_runs_total",
			Help: "Rollup worker transactions by result (ok or error).",
		}, []string{"result"}),
		buckets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "analytics_rollup_buckets_total",
			Help: "Rollup buckets recomputed, by grain.",
		}, []string{"grain"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "analytics_rollup_run_duration_seconds",
			Help:    "Time of one rollup worker run.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		dirty: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "analytics_rollup_dirty_marks",
			Help: "Dirty-minute marks waiting for the rollup worker (as seen by the leader).",
		}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "analytics_rollup_lag_seconds",
			Help: "Age of the oldest dirty-minute mark (0 when the worker is caught up). Queries stay exact meanwhile; they read those minutes raw.",
		}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "analytics_rollup_leader",
			Help: "1 when this instance runs the rollup worker.",
		}),
	}
	for _, r := range []string{"ok", "error"} {
		m.runs.WithLabelValues(r)
	}
	for _, g := range Grains {
		m.buckets.WithLabelValues(g.String())
	}
	reg.MustRegister(m.runs, m.buckets, m.duration, m.dirty, m.lag, m.leader)
	return m
}

// Roller is the rollup worker.
type Roller struct {
	db *DB
	o  RollupOptions

	// Owned by the goroutine that runs the worker.
	chunk      int        // marks the next step takes
	maintained time.Time  // last maintain
	rawFrom    *time.Time // raw events before it are dropped: never recompute those minutes
}

// NewRoller builds the worker; Run starts it.
func (db *DB) NewRoller(o RollupOptions) *Roller {
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.Chunk <= 0 {
		o.Chunk = 1440
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = NewRollupMetrics(prometheus.NewRegistry())
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaintainEvery <= 0 {
		o.MaintainEvery = time.Minute
	}
	o.Partitions = o.Partitions.withDefaults()
	return &Roller{db: db, o: o, chunk: o.Chunk}
}

// stepTimeout bounds one worker step (one chunk of minutes and the
// parents); a stuck database connection is given up after it.
const stepTimeout = 2 * time.Minute

// Run works until ctx ends. It tries to become the worker every interval;
// once it holds the lock it keeps it (on one pooled connection) and rolls
// up whatever is dirty. On a database error it gives the lock up, so
// another instance may take over, and tries again an interval later.
func (r *Roller) Run(ctx context.Context) {
	var conn *pgxpool.Conn
	defer func() { r.resign(conn) }()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		if conn == nil {
			conn = r.lead(ctx)
		}
		wait := r.o.Interval
		if conn != nil {
			// A step is not cancelled half-way by shutdown: it finishes
			// its transaction (bounded), then the loop sees ctx is done.
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stepTimeout)
			var busy bool
			err := r.maintainDue(sctx, conn.Conn())
			if err == nil {
				busy, err = r.step(sctx, conn.Conn())
			}
			cancel()
			switch {
			case err != nil:
				r.o.Logger.Error("rollup worker failed; retrying", "err", err)
				r.resign(conn)
				conn = nil
			case busy:
				wait = 0
			}
		}
		timer.Reset(wait)
	}
}

// lead returns a connection holding the worker lock, or nil.
func (r *Roller) lead(ctx context.Context) *pgxpool.Conn {
	conn, err := r.db.pool.Acquire(ctx)
	if err != nil {
		return nil
	}
	var ok bool
	if err := conn.QueryRow(ctx, rollupTryLockSQL).Scan(&ok); err != nil || !ok {
		conn.Release()
		return nil
	}
	r.o.Metrics.leader.Set(1)
	r.o.Logger.Info("this instance now runs the rollup worker")
	return conn
}

// resign unlocks and returns the connection; a connection that cannot
// unlock is closed, which ends its session and the lock with it.
func (r *Roller) resign(conn *pgxpool.Conn) {
	if conn == nil {
		return
	}
	r.o.Metrics.leader.Set(0)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := conn.Exec(ctx, rollupUnlockSQL); err != nil {
		_ = conn.Conn().Close(ctx)
	}
	conn.Release()
}

// ErrRollupBusy is returned by CatchUp when another instance runs the
// worker; that one will catch up.
var ErrRollupBusy = errors.New("storage: rollup: another instance runs the rollup worker")

// CatchUp takes the worker lock, then rolls up until nothing dirty and no
// closed pending bucket is left. Seeding, benchmarks and tests use it.
func (r *Roller) CatchUp(ctx context.Context) error {
	conn, err := r.db.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("storage: rollup: %w", err)
	}
	var ok bool
	if err := conn.QueryRow(ctx, rollupTryLockSQL).Scan(&ok); err != nil || !ok {
		conn.Release()
		if err != nil {
			return fmt.Errorf("storage: rollup: lock: %w", err)
		}
		return ErrRollupBusy
	}
	defer r.resign(conn)
	if err := r.maintain(ctx, conn.Conn()); err != nil {
		return err
	}
	for {
		busy, err := r.step(ctx, conn.Conn())
		if err != nil {
			return err
		}
		if !busy {
			// Rolled up: what the retention waited for may go now.
			return r.maintain(ctx, conn.Conn())
		}
	}
}

// maintainDue runs maintain when MaintainEvery has passed since the last.
func (r *Roller) maintainDue(ctx context.Context, conn *pgx.Conn) error {
	if time.Since(r.maintained) < r.o.MaintainEvery {
		return nil
	}
	return r.maintain(ctx, conn)
}

// maintain creates the partitions from the current one to Ahead ahead,
// drops raw partitions older than RawRetention, deletes rollups older than
// RollupRetention, and reads the raw horizon.
func (r *Roller) maintain(ctx context.Context, conn *pgx.Conn) error {
	r.maintained = time.Now()
	o := r.o.Partitions
	now := r.o.Now()
	from, to := o.ahead(now)
	n, err := ensurePartitions(ctx, conn, o.Grain, from, to)
	if err != nil {
		return fmt.Errorf("storage: partitions: %w", err)
	}
	m, err := adoptDefault(ctx, conn, o.Grain, o.Grain.Trunc(now))
	if err != nil {
		return fmt.Errorf("storage: partitions: %w", err)
	}
	n += m
	if n > 0 {
		r.o.Logger.Info("created partitions of events", "partitions", n)
	}
	if o.RawRetention > 0 {
		n, err := dropExpiredRaw(ctx, conn, now.Add(-o.RawRetention))
		if err != nil {
			return fmt.Errorf("storage: raw retention: %w", err)
		}
		if n > 0 {
			r.o.Logger.Info("dropped partitions of events older than the raw retention", "partitions", n)
		}
	}
	if o.RollupRetention > 0 {
		if err := expireRollups(ctx, conn, now.Add(-o.RollupRetention)); err != nil {
			return fmt.Errorf("storage: rollup retention: %w", err)
		}
	}
	ret, err := r.db.Retention(ctx)
	if err != nil {
		return err
	}
	r.rawFrom = ret.RawFrom
	return nil
}

// step rolls up one chunk of dirty minutes and then the closed pending
// parents. busy reports that more dirty minutes are waiting.
func (r *Roller) step(ctx context.Context, conn *pgx.Conn) (busy bool, err error) {
	start := time.Now()
	defer func() {
		r.o.Metrics.duration.Observe(time.Since(start).Seconds())
		if err != nil {
			r.o.Metrics.runs.WithLabelValues("error").Inc()
		} else {
			r.o.Metrics.runs.WithLabelValues("ok").Inc()
		}
	}()
	for attempt := 0; ; attempt++ {
		var marks, events int
		marks, events, err = r.rollMinutes(ctx, conn)
		if err == nil {
			err = r.rollParents(ctx, conn)
		}
		if err != nil && isSerializationFailure(err) && attempt < 3 {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("storage: rollup: %w", err)
		}
		busy = marks >= r.chunk
		if busy {
			r.adapt(events)
		}
		break
	}
	var n int64
	var lag float64
	if err := conn.QueryRow(ctx, backlogSQL).Scan(&n, &lag); err == nil {
		r.o.Metrics.dirty.Set(float64(n))
		r.o.Metrics.lag.Set(lag)
	}
	return busy, nil
}

// stepEvents is about how many events one step of the worker reads: a
// dense history's minutes hold a few hundred events each, a sparse one's
// one or two, so a fixed count of minutes per step made a sparse year
// cost as many steps (each with its fixed costs) as a dense one.
const (
	stepEvents = 300_000
	maxChunk   = 1 << 17 // 91 days of minutes
)

// adapt sizes the next chunk of marks so that it holds about stepEvents
// events, judging by the last one (at most 8 times larger or 4 times
// smaller at once, never below the configured chunk).
func (r *Roller) adapt(events int) {
	f := float64(stepEvents) / float64(max(events, 1))
	f = min(max(f, 0.25), 8)
	r.chunk = min(max(int(float64(r.chunk)*f), r.o.Chunk), maxChunk)
}

func isSerializationFailure(err error) bool {
	return isCode(err, "40001") || isCode(err, "40P01")
}

// bucketAgg is one bucket being computed.
type bucketAgg struct {
	events int64
	users  *roaring.Bitmap
	types  map[string]*typeAgg
}

type typeAgg struct {
	events int64
	users  *roaring.Bitmap
	parts  []*roaring.Bitmap // children to OR, for parents
}

func newBucketAgg() *bucketAgg {
	return &bucketAgg{users: roaring.New(), types: map[string]*typeAgg{}}
}

func (a *bucketAgg) typ(name string) *typeAgg {
	t := a.types[name]
	if t == nil {
		t = &typeAgg{users: roaring.New()}
		a.types[name] = t
	}
	return t
}

const (
	// A transaction's snapshot is its first statement's, so everything the
	// worker reads and writes in one step is consistent.
	takeDirtySQL = `DELETE FROM rollup_dirty WHERE minute IN
		(SELECT minute FROM rollup_dirty ORDER BY minute DESC LIMIT $1) RETURNING minute`
	// The chunk's rows are read first, by minute from the index, and only
	// then matched with the dictionary: left to itself the planner may
	// scan all events against the dictionary, per minute (measured: minutes
	// instead of milliseconds on 10M events).
	dictSQL = `WITH chunk AS MATERIALIZED (
			SELECT DISTINCT e.user_id
			FROM unnest($1::timestamptz[]) m(minute)
			CROSS JOIN LATERAL (SELECT user_id FROM events
				WHERE created_at >= m.minute AND created_at < m.minute + interval '1 minute' OFFSET 0) e)
		INSERT INTO user_dict (user_id)
		SELECT c.user_id FROM chunk c
		WHERE NOT EXISTS (SELECT 1 FROM user_dict d WHERE d.user_id = c.user_id OFFSET 0)
		ON CONFLICT (user_id) DO NOTHING`
	minuteEventsSQL = `WITH chunk AS MATERIALIZED (
			SELECT m.i, e.event_type, e.user_id
			FROM unnest($1::timestamptz[]) WITH ORDINALITY m(minute, i)
			CROSS JOIN LATERAL (SELECT event_type, user_id FROM events
				WHERE created_at >= m.minute AND created_at < m.minute + interval '1 minute' OFFSET 0) e)
		SELECT c.i, c.event_type, d.id FROM chunk c
		CROSS JOIN LATERAL (SELECT id FROM user_dict d WHERE d.user_id = c.user_id OFFSET 0) d`
)

// rollMinutes recomputes one chunk of dirty minutes and marks their
// quarter-hours, hours, days and months pending. It returns how many marks it took.
func (r *Roller) rollMinutes(ctx context.Context, conn *pgx.Conn) (marks, events int, err error) {
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	if err != nil {
		return 0, 0, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after Commit it is a no-op
	rows, err := tx.Query(ctx, takeDirtySQL, r.chunk)
	if err != nil {
		return 0, 0, err
	}
	seen := map[time.Time]bool{}
	var minutes []time.Time
	for rows.Next() {
		var m time.Time
		if err := rows.Scan(&m); err != nil {
			rows.Close()
			return 0, 0, err
		}
		marks++
		m = m.UTC()
		if r.rawFrom != nil && m.Before(*r.rawFrom) {
			continue // its raw rows are dropped: the rollup is all there is
		}
		if !seen[m] {
			seen[m] = true
			minutes = append(minutes, m)
		}
	}
	if err := rows.Err(); err != nil {
		return 0, 0, err
	}
	if len(minutes) == 0 {
		return marks, 0, tx.Commit(ctx)
	}
	sort.Slice(minutes, func(i, j int) bool { return minutes[i].Before(minutes[j]) })
	if _, err := tx.Exec(ctx, dictSQL, minutes); err != nil {
		return 0, 0, err
	}
	aggs := make([]*bucketAgg, len(minutes))
	for i := range aggs {
		aggs[i] = newBucketAgg()
	}
	rows, err = tx.Query(ctx, minuteEventsSQL, minutes)
	if err != nil {
		return 0, 0, err
	}
	var (
		i   int64
		typ string
		id  int32
	)
	_, err = pgx.ForEachRow(rows, []any{&i, &typ, &id}, func() error {
		a := aggs[i-1]
		events++
		a.events++
		a.users.Add(uint32(id))
		t := a.typ(typ)
		t.events++
		t.users.Add(uint32(id))
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	if err := writeBuckets(ctx, tx, Minute, minutes, aggs); err != nil {
		return 0, 0, err
	}
	// Every ancestor is marked at once, not only the quarter: a reader must
	// not use a day whose hour is about to change.
	for _, g := range Grains[1:] {
		if err := markPending(ctx, tx, g, minutes); err != nil {
			return 0, 0, err
		}
	}
	r.o.Metrics.buckets.WithLabelValues(Minute.String()).Add(float64(len(minutes)))
	return marks, events, tx.Commit(ctx)
}

// markPending marks the grain-g parents of the children starts.
func markPending(ctx context.Context, tx pgx.Tx, g Grain, children []time.Time) error {
	seen := map[time.Time]bool{}
	var parents []time.Time
	for _, c := range children {
		p := g.Trunc(c)
		if !seen[p] {
			seen[p] = true
			parents = append(parents, p)
		}
	}
	_, err := tx.Exec(ctx, `INSERT INTO rollup_pending (grain, bucket)
		SELECT $1, b FROM unnest($2::timestamptz[]) b ON CONFLICT DO NOTHING`, int16(g), parents)
	return err
}

// writeBuckets replaces the rows of the given buckets; an empty bucket
// (no events) has no row.
func writeBuckets(ctx context.Context, tx pgx.Tx, g Grain, starts []time.Time, aggs []*bucketAgg) error {
	for _, table := range []string{"rollup_totals", "rollup_types"} {
		if _, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE grain = $1 AND bucket = ANY($2)`, int16(g), starts); err != nil {
			return err
		}
	}
	var totals, types [][]any
	for i, a := range aggs {
		if a.events == 0 {
			continue
		}
		users, err := encodeBitmap(a.users)
		if err != nil {
			return err
		}
		names := make([]string, 0, len(a.types))
		for name := range a.types {
			names = append(names, name)
		}
		sort.Strings(names)
		counts := make([]int64, len(names))
		for j, name := range names {
			t := a.types[name]
			counts[j] = t.events
			tu, err := encodeBitmap(t.users)
			if err != nil {
				return err
			}
			types = append(types, []any{int16(g), starts[i], name, t.events, tu, int64(t.users.GetCardinality())})
		}
		totals = append(totals, []any{int16(g), starts[i], a.events, users, names, counts, int64(a.users.GetCardinality())})
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"rollup_totals"},
		[]string{"grain", "bucket", "events", "users", "type_names", "type_counts", "users_count"}, pgx.CopyFromRows(totals)); err != nil {
		return err
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"rollup_types"},
		[]string{"grain", "bucket", "event_type", "events", "users", "users_count"}, pgx.CopyFromRows(types))
	return err
}

func encodeBitmap(bm *roaring.Bitmap) ([]byte, error) {
	bm.RunOptimize()
	return bm.ToBytes()
}

func decodeBitmap(b []byte) (*roaring.Bitmap, error) {
	bm := roaring.New()
	if _, err := bm.FromBuffer(b); err != nil {
		return nil, fmt.Errorf("storage: corrupt rollup bitmap: %w", err)
	}
	return bm, nil
}

// rollParents recomputes the pending hours, days and months that have
// closed, each from its children, finest grain first. A parent waits while
// one of its children is still pending, so it never reads a child that is
// about to change.
func (r *Roller) rollParents(ctx context.Context, conn *pgx.Conn) error {
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after Commit it is a no-op
	rows, err := tx.Query(ctx, `SELECT grain, bucket FROM rollup_pending`)
	if err != nil {
		return err
	}
	pending := map[bucketKey]bool{}
	var (
		g16 int16
		b   time.Time
	)
	if _, err := pgx.ForEachRow(rows, []any{&g16, &b}, func() error {
		pending[bucketKey{Grain(g16), b.UnixMicro()}] = true
		return nil
	}); err != nil {
		return err
	}
	if len(pending) == 0 {
		return tx.Commit(ctx)
	}
	now := r.o.Now()
	for _, g := range rollOrder {
		// The grain-g buckets with a pending child (minutes are never
		// pending: dirty minutes are handled by readers).
		waiting := map[int64]bool{}
		if g.child() > Minute {
			for k := range pending {
				if k.Grain == g.child() {
					waiting[g.Trunc(k.time()).UnixMicro()] = true
				}
			}
		}
		var todo []time.Time
		for k := range pending {
			if k.Grain != g {
				continue
			}
			start := k.time()
			end := g.Next(start)
			if end.After(now) || waiting[k.Start] {
				continue
			}
			todo = append(todo, start)
		}
		if len(todo) == 0 {
			continue
		}
		sort.Slice(todo, func(i, j int) bool { return todo[i].Before(todo[j]) })
		aggs, err := childAggregates(ctx, tx, g, todo)
		if err != nil {
			return err
		}
		if err := writeBuckets(ctx, tx, g, todo, aggs); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM rollup_pending WHERE grain = $1 AND bucket = ANY($2)`, int16(g), todo); err != nil {
			return err
		}
		for _, t := range todo {
			delete(pending, bucketKey{g, t.UnixMicro()})
		}
		for _, p := range g.parents() {
			if err := markPending(ctx, tx, p, todo); err != nil {
				return err
			}
			for _, t := range todo {
				pending[bucketKey{p, p.Trunc(t).UnixMicro()}] = true
			}
		}
		r.o.Metrics.buckets.WithLabelValues(g.String()).Add(float64(len(todo)))
	}
	return tx.Commit(ctx)
}

// The children of each parent, one index range per parent (see rawSQL on
// why LATERAL ... OFFSET 0). rollup_types is read by its (grain, bucket)
// index.
const (
	childTotalsSQL = `SELECT p.i, t.events, t.users
		FROM unnest($1::timestamptz[], $2::timestamptz[]) WITH ORDINALITY p(lo, hi, i)
		CROSS JOIN LATERAL (SELECT events, users FROM rollup_totals
			WHERE grain = $3 AND bucket >= p.lo AND bucket < p.hi OFFSET 0) t`
	childTypesSQL = `SELECT p.i, t.event_type, t.events, t.users
		FROM unnest($1::timestamptz[], $2::timestamptz[]) WITH ORDINALITY p(lo, hi, i)
		CROSS JOIN LATERAL (SELECT event_type, events, users FROM rollup_types
			WHERE grain = $3 AND bucket >= p.lo AND bucket < p.hi OFFSET 0) t`
)

// childAggregates computes grain-g buckets from their children.
func childAggregates(ctx context.Context, tx pgx.Tx, g Grain, starts []time.Time) ([]*bucketAgg, error) {
	ends := make([]time.Time, len(starts))
	for i, s := range starts {
		ends[i] = g.Next(s)
	}
	aggs := make([]*bucketAgg, len(starts))
	parts := make([][]*roaring.Bitmap, len(starts))
	for i := range aggs {
		aggs[i] = newBucketAgg()
	}
	rows, err := tx.Query(ctx, childTotalsSQL, starts, ends, int16(g.child()))
	if err != nil {
		return nil, err
	}
	var (
		i      int64
		events int64
		users  []byte
		name   string
	)
	if _, err := pgx.ForEachRow(rows, []any{&i, &events, &users}, func() error {
		bm, err := decodeBitmap(users)
		if err != nil {
			return err
		}
		aggs[i-1].events += events
		parts[i-1] = append(parts[i-1], bm)
		return nil
	}); err != nil {
		return nil, err
	}
	for j := range aggs {
		aggs[j].users = roaring.FastOr(parts[j]...)
	}
	rows, err = tx.Query(ctx, childTypesSQL, starts, ends, int16(g.child()))
	if err != nil {
		return nil, err
	}
	if _, err := pgx.ForEachRow(rows, []any{&i, &name, &events, &users}, func() error {
		bm, err := decodeBitmap(users)
		if err != nil {
			return err
		}
		t := aggs[i-1].typ(name)
		t.events += events
		t.parts = append(t.parts, bm)
		return nil
	}); err != nil {
		return nil, err
	}
	for _, a := range aggs {
		for _, t := range a.types {
			t.users = roaring.FastOr(t.parts...)
			t.parts = nil
		}
	}
	return aggs, nil
}

// backlogSQL counts the dirty-minute marks and the age of the oldest, in
// seconds.
const backlogSQL = `SELECT count(*), coalesce(extract(epoch FROM now() - min(marked_at)), 0) FROM rollup_dirty`

// RollupBacklog is how many dirty-minute marks wait for the worker and
// the age of the oldest.
func (db *DB) RollupBacklog(ctx context.Context) (int64, time.Duration, error) {
	var n int64
	var secs float64
	err := db.pool.QueryRow(ctx, backlogSQL).Scan(&n, &secs)
	if err != nil {
		return 0, 0, fmt.Errorf("storage: rollup backlog: %w", err)
	}
	return n, time.Duration(secs * float64(time.Second)), nil
}
