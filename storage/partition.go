package storage

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
)

// events is partitioned by range of created_at (migration 005). The rollup
// worker, which one instance runs at a time, creates the partitions ahead
// of time and drops the ones older than the raw retention; seeding creates
// the ones its history needs. All of them take this transaction lock, so
// that two of them never create or drop the same partition at once.
const partitionLockSQL = `SELECT pg_advisory_xact_lock(hashtext('analyticsd.partitions'), hashtext(current_schema()))`

// PartitionOptions configure the partitions of events and the retention.
// Zero values take the defaults in brackets.
type PartitionOptions struct {
	Grain           Grain         // [Month] Day or Month: the range of one partition
	Ahead           int           // [2] partitions created ahead of the current one
	RawRetention    time.Duration // [0: keep] partitions wholly older than this are dropped
	RollupRetention time.Duration // [0: forever] rollup buckets wholly older than this are deleted
}

func (o PartitionOptions) withDefaults() PartitionOptions {
	if o.Grain != Day {
		o.Grain = Month
	}
	if o.Ahead <= 0 {
		o.Ahead = 2
	}
	return o
}

// ParsePartitionGrain reads PARTITION_INTERVAL: "month" or "day".
func ParsePartitionGrain(s string) (Grain, error) {
	switch s {
	case "month":
		return Month, nil
	case "day":
		return Day, nil
	}
	return 0, fmt.Errorf("storage: partition interval %q: use month or day", s)
}

// ahead is the range the partitions must cover at now: the current one
// and Ahead more.
func (o PartitionOptions) ahead(now time.Time) (from, to time.Time) {
	to = now
	for range o.Ahead + 1 {
		to = o.Grain.Next(o.Grain.Trunc(to))
	}
	return now, to
}

// EnsureCurrentPartitions creates the current partition and the ones
// ahead, as the worker does every minute. The server calls it once before
// it serves: creating a partition locks the default one, which every
// summary reads, so it is better done before the first request than
// during.
func (db *DB) EnsureCurrentPartitions(ctx context.Context, o PartitionOptions) error {
	o = o.withDefaults()
	from, to := o.ahead(time.Now())
	_, err := db.EnsurePartitions(ctx, o.Grain, from, to)
	return err
}

// Partition is one partition of events. From nil means MINVALUE (a table
// that was attached whole), To nil is the default partition.
type Partition struct {
	Name    string
	From    *time.Time
	To      *time.Time
	Default bool
	Bytes   int64 // on disk, indexes included
}

const partitionsSQL = `SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT',
		CASE WHEN b[1] IS NULL OR b[1] = 'MINVALUE' THEN NULL ELSE trim(both '''' FROM b[1])::timestamptz END,
		CASE WHEN b[2] IS NULL OR b[2] = 'MAXVALUE' THEN NULL ELSE trim(both '''' FROM b[2])::timestamptz END,
		pg_total_relation_size(c.oid)
	FROM pg_inherits i
	JOIN pg_class c ON c.oid = i.inhrelid
	LEFT JOIN LATERAL regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \((.*)\) TO \((.*)\)') b ON true
	WHERE i.inhparent = 'events'::regclass`

// partitioned reports whether events is a partitioned table (migration
// 005 applied).
func partitioned(ctx context.Context, q pgx.Tx) (bool, error) {
	var kind string
	err := q.QueryRow(ctx, `SELECT relkind::text FROM pg_class WHERE oid = 'events'::regclass`).Scan(&kind)
	return kind == "p", err
}

func listPartitions(ctx context.Context, q pgx.Tx) ([]Partition, error) {
	rows, err := q.Query(ctx, partitionsSQL)
	if err != nil {
		return nil, err
	}
	var out []Partition
	var p Partition
	if _, err := pgx.ForEachRow(rows, []any{&p.Name, &p.Default, &p.From, &p.To, &p.Bytes}, func() error {
		out = append(out, p)
		p = Partition{}
		return nil
	}); err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		switch {
		case a.Default != b.Default:
			return b.Default
		case a.From == nil || b.From == nil:
			return a.From == nil && b.From != nil
		}
		return a.From.Before(*b.From)
	})
	return out, nil
}

// Partitions lists the partitions of events, oldest first, the default
// partition last; none before migration 005.
func (db *DB) Partitions(ctx context.Context) ([]Partition, error) {
	var out []Partition
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		ok, err := partitioned(ctx, tx)
		if err != nil || !ok {
			return err
		}
		out, err = listPartitions(ctx, tx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("storage: partitions: %w", err)
	}
	return out, nil
}

// overlaps reports whether p holds any instant of [lo, hi).
func (p Partition) overlaps(lo, hi time.Time) bool {
	if p.Default {
		return false
	}
	return (p.From == nil || p.From.Before(hi)) && (p.To == nil || p.To.After(lo))
}

// EnsurePartitions creates the partitions of grain g that [from, to)
// needs and that no partition covers yet (a range partly covered, after a
// change of grain, is left to the default partition). Rows already in the
// default partition for a new range are moved into it. It returns how
// many it created; before migration 005 it does nothing.
func (db *DB) EnsurePartitions(ctx context.Context, g Grain, from, to time.Time) (int, error) {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("storage: partitions: %w", err)
	}
	defer conn.Release()
	n, err := ensurePartitions(ctx, conn.Conn(), g, from, to)
	if err != nil {
		return n, fmt.Errorf("storage: partitions: %w", err)
	}
	return n, nil
}

func ensurePartitions(ctx context.Context, conn *pgx.Conn, g Grain, from, to time.Time) (int, error) {
	if g != Day {
		g = Month
	}
	created := 0
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if ok, err := partitioned(ctx, tx); err != nil || !ok {
			return err
		}
		if _, err := tx.Exec(ctx, partitionLockSQL); err != nil {
			return err
		}
		// DDL waits for the readers of events; do not queue the readers
		// behind us for long: give up and try on the next round.
		if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '5s'`); err != nil {
			return err
		}
		parts, err := listPartitions(ctx, tx)
		if err != nil {
			return err
		}
		for lo := g.Trunc(from); lo.Before(to); lo = g.Next(lo) {
			hi := g.Next(lo)
			covered := false
			for _, p := range parts {
				if p.overlaps(lo, hi) {
					covered = true
					break
				}
			}
			if covered {
				continue
			}
			if err := createPartition(ctx, tx, lo, hi); err != nil {
				return err
			}
			parts = append(parts, Partition{From: &lo, To: &hi})
			created++
		}
		return nil
	})
	return created, err
}

// adoptDefault gives the default partition's rows before `before` (a
// backfill of old months through ingest) partitions of their own, month by
// month (at most 24 a call), so that retention can drop them later.
func adoptDefault(ctx context.Context, conn *pgx.Conn, g Grain, before time.Time) (int, error) {
	if g != Day {
		g = Month
	}
	var kind string
	if err := conn.QueryRow(ctx, `SELECT relkind::text FROM pg_class WHERE oid = 'events'::regclass`).Scan(&kind); err != nil || kind != "p" {
		return 0, err
	}
	created := 0
	cursor := time.Time{}
	for range 24 {
		var m *time.Time
		if err := conn.QueryRow(ctx, `SELECT min(created_at) FROM events_default WHERE created_at >= $1 AND created_at < $2`,
			cursor, before).Scan(&m); err != nil {
			return created, err
		}
		if m == nil || m.Year() < 1000 {
			return created, nil // nothing left (ancient timestamps stay in the default partition)
		}
		n, err := ensurePartitions(ctx, conn, g, *m, m.Add(time.Microsecond))
		if err != nil {
			return created, err
		}
		created += n
		cursor = g.Next(g.Trunc(*m))
	}
	return created, nil
}

// createPartition makes [lo, hi) a partition: a table with a CHECK of its
// range (so that ATTACH does not scan it), the default partition's rows of
// that range moved into it (deleted from the partition directly, so the
// rollup triggers on events do not see a change: the rows stay the same),
// then attached.
func createPartition(ctx context.Context, tx pgx.Tx, lo, hi time.Time) error {
	name := pgx.Identifier{"events_p" + lo.UTC().Format("20060102")}.Sanitize()
	stmts := []string{
		`CREATE TABLE ` + name + ` (LIKE events INCLUDING DEFAULTS)`,
		`ALTER TABLE ` + name + ` ADD CONSTRAINT ` + strings.Trim(name, `"`) + `_range CHECK (created_at >= $1 AND created_at < $2)`,
	}
	// ATTACH will want the default partition exclusively: take it before
	// touching its rows, or a writer that holds it and waits for one of
	// those rows deadlocks with us.
	if _, err := tx.Exec(ctx, `LOCK TABLE events_default IN ACCESS EXCLUSIVE MODE`); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, stmts[0]); err != nil {
		return err
	}
	// A constraint takes no parameters: literal bounds, in UTC.
	lit := func(t time.Time) string {
		return "'" + t.UTC().Format("2006-01-02 15:04:05.999999Z07:00") + "'::timestamptz"
	}
	check := strings.NewReplacer("$1", lit(lo), "$2", lit(hi)).Replace(stmts[1])
	if _, err := tx.Exec(ctx, check); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `WITH moved AS (
			DELETE FROM events_default WHERE created_at >= $1 AND created_at < $2
			RETURNING id, user_id, event_type, created_at)
		INSERT INTO `+name+` (id, user_id, event_type, created_at) SELECT * FROM moved`, lo, hi); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `ALTER TABLE events ATTACH PARTITION `+name+` FOR VALUES FROM (`+lit(lo)+`) TO (`+lit(hi)+`)`)
	return err
}

// dropExpiredRaw drops, oldest first, the partitions whose whole range is
// older than cutoff and whose minutes are all rolled up (a partition with
// a dirty minute waits for the worker), records the new raw horizon in
// retention.raw_from, deletes the default partition's rows below it and
// makes the default partition refuse rows below it from now on, all in one
// transaction. It returns how many partitions it dropped.
func dropExpiredRaw(ctx context.Context, conn *pgx.Conn, cutoff time.Time) (int, error) {
	dropped := 0
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if ok, err := partitioned(ctx, tx); err != nil || !ok {
			return err
		}
		if _, err := tx.Exec(ctx, partitionLockSQL); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '5s'`); err != nil {
			return err
		}
		parts, err := listPartitions(ctx, tx)
		if err != nil {
			return err
		}
		var horizon time.Time
		locked := false
		for _, p := range parts {
			if p.Default || p.To == nil || p.To.After(cutoff) {
				break // oldest first: nothing later is older
			}
			name := pgx.Identifier{p.Name}.Sanitize()
			// No writer may add a row (and a dirty mark) between the check
			// and the drop. DROP locks the parent exclusively: lock it
			// first, as readers do (events, then its partitions), or a
			// reader and this deadlock.
			if !locked {
				if _, err := tx.Exec(ctx, `LOCK TABLE events IN ACCESS EXCLUSIVE MODE`); err != nil {
					return err
				}
				locked = true
			}
			var dirty bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM rollup_dirty WHERE minute < $1)`, *p.To).Scan(&dirty); err != nil {
				return err
			}
			if dirty {
				break
			}
			if _, err := tx.Exec(ctx, `DROP TABLE `+name); err != nil {
				return err
			}
			horizon = *p.To
			dropped++
		}
		if dropped == 0 {
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE retention SET raw_from = greatest(coalesce(raw_from, '-infinity'), $1)`, horizon); err != nil {
			return err
		}
		return guardDefault(ctx, tx, horizon)
	})
	return dropped, err
}

// guardDefault deletes the default partition's rows below the raw horizon
// (rolled up already: no dirty mark is left below it) and makes it refuse
// rows below it: an event for a dropped range would otherwise land there,
// and its minute would be recomputed from that one row.
func guardDefault(ctx context.Context, tx pgx.Tx, horizon time.Time) error {
	if _, err := tx.Exec(ctx, `DELETE FROM events_default WHERE created_at < $1`, horizon); err != nil {
		return err
	}
	lit := "'" + horizon.UTC().Format("2006-01-02 15:04:05.999999Z07:00") + "'::timestamptz"
	_, err := tx.Exec(ctx, `ALTER TABLE events_default DROP CONSTRAINT IF EXISTS events_default_raw_from,
		ADD CONSTRAINT events_default_raw_from CHECK (created_at >= `+lit+`)`)
	return err
}

// expireRollups deletes the rollup buckets that end at or before cutoff,
// and records it in retention.rollups_from.
func expireRollups(ctx context.Context, conn *pgx.Conn, cutoff time.Time) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, g := range Grains {
			end := g.Trunc(cutoff) // buckets before it end at or before cutoff
			for _, table := range []string{"rollup_totals", "rollup_types"} {
				if _, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE grain = $1 AND bucket < $2`, int16(g), end); err != nil {
					return err
				}
			}
		}
		_, err := tx.Exec(ctx, `UPDATE retention SET rollups_from = greatest(coalesce(rollups_from, '-infinity'), $1)`, Minute.Trunc(cutoff))
		return err
	})
}

// Retention is what the retention settings have removed so far: raw events
// before RawFrom, rollups before RollupsFrom (nil: nothing).
type Retention struct {
	RawFrom     *time.Time
	RollupsFrom *time.Time
}

// Retention reads the horizons (none before migration 005).
func (db *DB) Retention(ctx context.Context) (Retention, error) {
	var r Retention
	err := db.pool.QueryRow(ctx, `SELECT raw_from, rollups_from FROM retention`).Scan(&r.RawFrom, &r.RollupsFrom)
	if isCode(err, "42P01") { // undefined_table: before migration 005
		return Retention{}, nil
	}
	if err != nil {
		return Retention{}, fmt.Errorf("storage: retention: %w", err)
	}
	return r, nil
}

// Footprint is what the database holds and since when.
type Footprint struct {
	Partitions   int        // partitions of events, the default one included
	RawBytes     int64      // events on disk, indexes included
	RollupBytes  int64      // rollup tables and the user dictionary
	OldestRaw    *time.Time // the oldest event (nil: none)
	OldestRollup *time.Time // the oldest minute bucket (nil: none)
	Retention    Retention  // what retention has removed so far
}

// Footprint measures the events and the rollups: a few catalog reads and
// two index lookups.
func (db *DB) Footprint(ctx context.Context) (Footprint, error) {
	var f Footprint
	parts, err := db.Partitions(ctx)
	if err != nil {
		return f, err
	}
	f.Partitions = len(parts)
	if f.Retention, err = db.Retention(ctx); err != nil {
		return f, err
	}
	err = db.pool.QueryRow(ctx, `SELECT
			(SELECT sum(pg_total_relation_size(c.oid))::bigint FROM pg_class c
				WHERE c.oid = 'events'::regclass OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'events'::regclass)),
			pg_total_relation_size('rollup_totals') + pg_total_relation_size('rollup_types') + pg_total_relation_size('user_dict'),
			(SELECT min(created_at) FROM events),
			(SELECT min(bucket) FROM rollup_totals WHERE grain = 0)`).Scan(&f.RawBytes, &f.RollupBytes, &f.OldestRaw, &f.OldestRollup)
	if err != nil {
		return f, fmt.Errorf("storage: footprint: %w", err)
	}
	return f, nil
}

// FootprintCollector exports the last Footprint that Run measured: a
// scrape does no database work (it used to, and a slow catalog read made
// /metrics slow for everyone polling it).
type FootprintCollector struct {
	db                                   *DB
	last                                 atomic.Pointer[Footprint]
	partitions, rawBytes, rollupBytes    *prometheus.Desc
	oldestRaw, oldestRollup, rawFrom, up *prometheus.Desc
}

// NewFootprintCollector returns the collector; register it once and Run it.
func (db *DB) NewFootprintCollector() *FootprintCollector {
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }
	return &FootprintCollector{db: db,
		partitions:   d("analytics_events_partitions", "Partitions of the events table, the default one included."),
		rawBytes:     d("analytics_events_bytes", "Bytes on disk of the raw events, indexes included."),
		rollupBytes:  d("analytics_rollup_bytes", "Bytes on disk of the rollup tables and the user dictionary."),
		oldestRaw:    d("analytics_events_oldest_timestamp_seconds", "created_at of the oldest raw event (0: none)."),
		oldestRollup: d("analytics_rollup_oldest_timestamp_seconds", "Start of the oldest minute rollup (0: none)."),
		rawFrom:      d("analytics_raw_retained_from_timestamp_seconds", "Raw events before this were dropped by RAW_RETENTION; older ranges come from the rollups (0: nothing dropped)."),
		up:           d("analytics_footprint_up", "1 when the last measurement of the footprint succeeded (every 30 s)."),
	}
}

// Run measures the footprint now and every interval until ctx ends.
func (c *FootprintCollector) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		mctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		f, err := c.db.Footprint(mctx)
		cancel()
		if err != nil {
			c.last.Store(nil)
		} else {
			c.last.Store(&f)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Describe implements prometheus.Collector.
func (c *FootprintCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.partitions, c.rawBytes, c.rollupBytes, c.oldestRaw, c.oldestRollup, c.rawFrom, c.up} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *FootprintCollector) Collect(ch chan<- prometheus.Metric) {
	f := c.last.Load()
	if f == nil {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ts := func(t *time.Time) float64 {
		if t == nil {
			return 0
		}
		return float64(t.UnixMicro()) / 1e6
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(c.partitions, prometheus.GaugeValue, float64(f.Partitions))
	ch <- prometheus.MustNewConstMetric(c.rawBytes, prometheus.GaugeValue, float64(f.RawBytes))
	ch <- prometheus.MustNewConstMetric(c.rollupBytes, prometheus.GaugeValue, float64(f.RollupBytes))
	ch <- prometheus.MustNewConstMetric(c.oldestRaw, prometheus.GaugeValue, ts(f.OldestRaw))
	ch <- prometheus.MustNewConstMetric(c.oldestRollup, prometheus.GaugeValue, ts(f.OldestRollup))
	ch <- prometheus.MustNewConstMetric(c.rawFrom, prometheus.GaugeValue, ts(f.Retention.RawFrom))
}
