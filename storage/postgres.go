// Package storage is the PostgreSQL side of the server: the connection
// pool, schema migrations, the summary queries, and the synthetic data
// generator. It implements summary.Store.
package storage

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The defaults of Options' zero values, for callers that show or derive
// their own defaults from them.
const (
	DefaultMaxConns         = 10
	DefaultStatementTimeout = 30 * time.Second
	DefaultBitmapCacheBytes = 256 << 20 // 256 MiB
)

// Options configure the pool. Zero values take the defaults in brackets.
type Options struct {
	URL              string
	MaxConns         int32         // [DefaultMaxConns]
	MinConns         int32         // [0]
	ConnectTimeout   time.Duration // [5s]
	StatementTimeout time.Duration // [DefaultStatementTimeout]; a runaway query is cancelled by the server
	// CreateDatabase creates the database named in URL when it does not
	// exist and the role is allowed to.
	CreateDatabase bool
	// BitmapCacheBytes bounds the in-process cache of decoded rollup
	// bitmaps [DefaultBitmapCacheBytes]; negative disables it.
	BitmapCacheBytes int64
	// Naive answers summaries with the plain SQL aggregates instead of the
	// rollups (for comparison and as an escape hatch).
	Naive bool
	// ReadURL, when set, is a replica that answers summaries and time
	// series; writes, migrations and the rollup worker use URL.
	ReadURL string
}

// DB is the PostgreSQL store.
type DB struct {
	pool       *pgxpool.Pool
	read       *pgxpool.Pool // == pool without a replica
	bitmaps    *bitmapCache
	dict       *dictCache
	naive      bool
	lastExpiry atomic.Int64 // unix nanos of the last idempotency-key expiry
	// retentionReady: migration 005 is applied (it only ever becomes true).
	retentionReady atomic.Bool
}

// Open connects, creating the database first when asked and needed.
func Open(ctx context.Context, o Options) (*DB, error) {
	cfg, err := poolConfig(o)
	if err != nil {
		return nil, err
	}
	pool, err := connect(ctx, cfg)
	if err != nil && o.CreateDatabase && isCode(err, "3D000") { // invalid_catalog_name
		if cerr := createDatabase(ctx, cfg); cerr != nil {
			return nil, cerr
		}
		pool, err = connect(ctx, cfg)
	}
	if err != nil {
		return nil, err
	}
	db := &DB{pool: pool, read: pool, naive: o.Naive}
	if o.ReadURL != "" {
		ro := o
		ro.URL = o.ReadURL
		rcfg, err := poolConfig(ro)
		if err != nil {
			pool.Close()
			return nil, errors.New("storage: DATABASE_READ_URL is not a valid PostgreSQL URL or DSN")
		}
		if db.read, err = connect(ctx, rcfg); err != nil {
			pool.Close()
			return nil, fmt.Errorf("storage: read replica: %w", err)
		}
	}
	switch {
	case o.BitmapCacheBytes == 0:
		db.bitmaps = newBitmapCache(DefaultBitmapCacheBytes)
	case o.BitmapCacheBytes > 0:
		db.bitmaps = newBitmapCache(o.BitmapCacheBytes)
	}
	if db.bitmaps != nil {
		// About 100 bytes an entry: a sixth more memory than the bitmaps get
		// (400k users, 40 MB, by default).
		db.dict = newDictCache(int(max(db.bitmaps.max/640, 10_000)))
	}
	return db, nil
}

func poolConfig(o Options) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(o.URL)
	if err != nil {
		// pgx's message can echo the password; say only what is wrong.
		return nil, errors.New("storage: DATABASE_URL is not a valid PostgreSQL URL or DSN")
	}
	cfg.MaxConns = orDefault(o.MaxConns, DefaultMaxConns)
	cfg.MinConns = o.MinConns
	cfg.MaxConnLifetime = time.Hour
	cfg.MaxConnIdleTime = 5 * time.Minute
	cfg.HealthCheckPeriod = 30 * time.Second
	cfg.ConnConfig.ConnectTimeout = orDefault(o.ConnectTimeout, 5*time.Second)
	st := orDefault(o.StatementTimeout, DefaultStatementTimeout)
	if _, set := cfg.ConnConfig.RuntimeParams["statement_timeout"]; !set {
		cfg.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(st.Milliseconds(), 10)
	}
	// Every query here has array or range parameters whose size decides
	// the plan (one minute or a thousand); a cached generic plan chosen
	// for one size was measured 1000x slower on another.
	if _, set := cfg.ConnConfig.RuntimeParams["plan_cache_mode"]; !set {
		cfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_custom_plan"
	}
	// Range joins over unnest() get huge row estimates, which trip the
	// JIT compiler: 90 ms of compiling for a 0.2 ms query, measured.
	if _, set := cfg.ConnConfig.RuntimeParams["jit"]; !set {
		cfg.ConnConfig.RuntimeParams["jit"] = "off"
	}
	if _, set := cfg.ConnConfig.RuntimeParams["application_name"]; !set {
		cfg.ConnConfig.RuntimeParams["application_name"] = "analyticsd"
	}
	return cfg, nil
}

func connect(ctx context.Context, cfg *pgxpool.Config) (*pgxpool.Pool, error) {
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("storage: connect: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, cfg.ConnConfig.ConnectTimeout+time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("storage: connect to %s:%d/%s: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, err)
	}
	return pool, nil
}

// createDatabase connects to the maintenance database "postgres" with the
// same credentials and creates cfg's database.
func createDatabase(ctx context.Context, cfg *pgxpool.Config) error {
	name := cfg.ConnConfig.Database
	admin := cfg.ConnConfig.Copy()
	admin.Database = "postgres"
	conn, err := pgx.ConnectConfig(ctx, admin)
	if err != nil {
		return fmt.Errorf("storage: database %q does not exist and the maintenance database is unreachable: %w", name, err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	if err != nil && !isCode(err, "42P04") { // duplicate_database: another instance won the race
		return fmt.Errorf("storage: create database %q: %w", name, err)
	}
	return nil
}

// Close releases every connection.
func (db *DB) Close() {
	if db.read != db.pool {
		db.read.Close()
	}
	db.pool.Close()
}

// Ping checks that a connection can be acquired and used.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.pool.Ping(ctx); err != nil {
		return fmt.Errorf("storage: ping: %w", err)
	}
	if db.read != db.pool {
		if err := db.read.Ping(ctx); err != nil {
			return fmt.Errorf("storage: ping read replica: %w", err)
		}
	}
	return nil
}

func isCode(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
