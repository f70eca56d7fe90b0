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
		if m.Version <= current {
			continue
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
