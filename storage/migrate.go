package storage

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/liveanalytics/analyticsd/migrations"
)

// The advisory lock is keyed by the schema too, so that tests (one schema
// each) migrate in parallel while instances sharing a schema take turns.
const lockSQL = `SELECT pg_advisory_lock(hashtext('analyticsd.migrate'), hashtext(current_schema()))`
const unlockSQL = `SELECT pg_advisory_unlock(hashtext('analyticsd.migrate'), hashtext(current_schema()))`

// Migrate applies every pending migration, each in its own transaction, and
// returns how many it applied. Many instances may call it at once: they
// serialize on an advisory lock and the later ones find nothing to do.
func (db *DB) Migrate(ctx context.Context) (int, error) {
	return db.migrateTo(ctx, 1<<30)
}

// migrateTo applies the pending migrations up to version last.
func (db *DB) migrateTo(ctx context.Context, last int) (int, error) {
	all, err := migrations.All()
	if err != nil {
		return 0, err
	}
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("storage: migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, lockSQL); err != nil {
		return 0, fmt.Errorf("storage: migrate: lock: %w", err)
	}
	// Unlock with a fresh context: ctx may be the reason we are leaving.
	defer conn.Exec(context.WithoutCancel(ctx), unlockSQL) //nolint:errcheck // the session ends the lock anyway

	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return 0, fmt.Errorf("storage: migrate: %w", err)
	}
	current, err := schemaVersion(ctx, conn.Conn())
	if err != nil {
		return 0, err
	}
	applied := 0
	for _, m := range all {
		if m.Version <= current || m.Version > last {
			continue
		}
		if prep := prepare[m.Version]; prep != nil {
			if err := prep(ctx, conn.Conn()); err != nil {
				return applied, fmt.Errorf("storage: migrate: before %s: %w", m.Name, err)
			}
		}
		err := pgx.BeginFunc(ctx, conn.Conn(), func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name)
			return err
		})
		if err != nil {
			return applied, fmt.Errorf("storage: migrate: %s: %w", m.Name, err)
		}
		applied++
	}
	return applied, nil
}

// prepare holds the steps that must run before a migration and outside
// any transaction, so that the transactional part holds its locks briefly.
var prepare = map[int]func(context.Context, *pgx.Conn) error{
	5: prepareEventPartitioning,
}

// prepareEventPartitioning readies a populated, unpartitioned events table
// to become one partition without a scan under lock: a CHECK constraint on
// its range is added NOT VALID (a moment's lock, no scan), then validated,
// which reads the whole table but lets readers and writers carry on
// (SHARE UPDATE EXCLUSIVE). Migration 005 then attaches the table, and
// ATTACH trusts the validated constraint. The bound is the first month
// boundary after both tomorrow and the newest event; ingest refuses events
// more than 5 minutes ahead, so no writer trips on it meanwhile. A
// constraint left validated by an interrupted run is kept.
func prepareEventPartitioning(ctx context.Context, conn *pgx.Conn) error {
	var kind string
	var validated *bool
	err := conn.QueryRow(ctx, `SELECT c.relkind::text, (SELECT convalidated FROM pg_constraint
			WHERE conrelid = c.oid AND conname = 'events_before_partitioning')
		FROM pg_class c WHERE c.oid = 'events'::regclass`).Scan(&kind, &validated)
	if err != nil || kind != "r" {
		return err
	}
	if validated != nil && *validated {
		return nil
	}
	var has bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM events)`).Scan(&has); err != nil || !has {
		return err // an empty table is replaced, not attached
	}
	var bound string
	if err := conn.QueryRow(ctx, `SELECT (date_trunc('month', greatest(now() + interval '1 day',
			(SELECT max(created_at) FROM events WHERE created_at < 'infinity')), 'UTC') + interval '1 month')::text`).Scan(&bound); err != nil {
		return err
	}
	for _, sql := range []string{
		`ALTER TABLE events DROP CONSTRAINT IF EXISTS events_before_partitioning`,
		`ALTER TABLE events ADD CONSTRAINT events_before_partitioning CHECK (created_at < '` + bound + `'::timestamptz) NOT VALID`,
		`ALTER TABLE events VALIDATE CONSTRAINT events_before_partitioning`,
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return err
		}
	}
	return nil
}

// Pending returns how many migrations the database lacks.
func (db *DB) Pending(ctx context.Context) (int, error) {
	all, err := migrations.All()
	if err != nil {
		return 0, err
	}
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("storage: pending: %w", err)
	}
	defer conn.Release()
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		return 0, fmt.Errorf("storage: pending: %w", err)
	}
	if !exists {
		return len(all), nil
	}
	current, err := schemaVersion(ctx, conn.Conn())
	if err != nil {
		return 0, err
	}
	n := 0
	for _, m := range all {
		if m.Version > current {
			n++
		}
	}
	return n, nil
}

func schemaVersion(ctx context.Context, conn *pgx.Conn) (int, error) {
	var v int
	if err := conn.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("storage: schema version: %w", err)
	}
	return v, nil
}
