package storage

import "github.com/jackc/pgx/v5/pgxpool"

// PoolForTest lets the external tests check what the store wrote with
// queries of their own.
func (db *DB) PoolForTest() *pgxpool.Pool { return db.pool }
