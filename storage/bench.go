package storage

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// What `analyticsd bench` does to its own database besides querying it:
// counting, emptying, sizing, switching the rollup trigger, and a scratch
// schema for the ingest measurements.

// CountEvents is the number of rows in events (a full scan).
func (db *DB) CountEvents(ctx context.Context) (int64, error) {
	var n int64
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&n); err != nil {
		return 0, fmt.Errorf("storage: count events: %w", err)
	}
	return n, nil
}

// TruncateEvents deletes every event; the truncate trigger empties the
// rollups with them.
func (db *DB) TruncateEvents(ctx context.Context) error {
	if _, err := db.pool.Exec(ctx, `TRUNCATE events`); err != nil {
		return fmt.Errorf("storage: truncate events: %w", err)
	}
	return nil
}

// SetRollupTrigger enables or disables the trigger that marks the minutes
// of inserted events dirty. While it is off, inserts do not reach the
// rollups and answers go stale: it is only for measuring what the trigger
// costs a COPY.
func (db *DB) SetRollupTrigger(ctx context.Context, enabled bool) error {
	act := "ENABLE"
	if !enabled {
		act = "DISABLE"
	}
	if _, err := db.pool.Exec(ctx, `ALTER TABLE events `+act+` TRIGGER events_rollup_insert`); err != nil {
		return fmt.Errorf("storage: %s rollup trigger: %w", act, err)
	}
	return nil
}

// Sizes returns the bytes on disk, indexes and TOAST included, of the
// rollup tables with the user dictionary, and of the events table (all
// its partitions).
func (db *DB) Sizes(ctx context.Context) (rollups, events int64, err error) {
	err = db.pool.QueryRow(ctx, `SELECT
		pg_total_relation_size('rollup_totals') + pg_total_relation_size('rollup_types') + pg_total_relation_size('user_dict'),
		(SELECT sum(pg_total_relation_size(c.oid))::bigint FROM pg_class c
			WHERE c.oid = 'events'::regclass OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'events'::regclass))`).Scan(&rollups, &events)
	if err != nil {
		return 0, 0, fmt.Errorf("storage: sizes: %w", err)
	}
	return rollups, events, nil
}

var schemaPrefix = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// ScratchSchema creates an empty schema, named prefix and a unique number,
// in the database dsn names. It returns dsn with search_path set to that
// schema, and drop, which drops the schema and everything in it (even
// after ctx is cancelled) and closes the connection that created it.
func ScratchSchema(ctx context.Context, dsn, prefix string) (scratchDSN string, drop func() error, err error) {
	if !schemaPrefix.MatchString(prefix) {
		return "", nil, fmt.Errorf("storage: scratch schema prefix %q: use a-z 0-9 _", prefix)
	}
	schema := prefix + strconv.FormatInt(time.Now().UnixNano(), 10)
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", nil, fmt.Errorf("storage: scratch schema: %w", err)
	}
	if _, err := admin.Exec(ctx, `CREATE SCHEMA `+schema); err != nil {
		admin.Close(context.WithoutCancel(ctx))
		return "", nil, fmt.Errorf("storage: scratch schema: %w", err)
	}
	drop = func() error {
		bg := context.WithoutCancel(ctx)
		defer admin.Close(bg)
		if _, err := admin.Exec(bg, `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			return fmt.Errorf("storage: drop scratch schema: %w", err)
		}
		return nil
	}
	return withSearchPath(dsn, schema), drop, nil
}

// withSearchPath adds search_path to a URL's query (or a DSN).
func withSearchPath(dsn, schema string) string {
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" {
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " search_path=" + schema
}

// WithDatabase replaces the database name of a PostgreSQL URL; a
// keyword/value DSN is returned as it is.
func WithDatabase(dsn, name string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		return dsn
	}
	u.Path = "/" + name
	return u.String()
}

// DatabaseName is the database a URL or DSN names, "" when it does not
// parse.
func DatabaseName(dsn string) string {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return ""
	}
	return cfg.Database
}
