// Package testenv gives integration tests their own slice of the real
// PostgreSQL and Redis: a fresh schema per test, a fresh key prefix per
// test, and private redis-server processes that a test may stop and start.
//
// Tests skip when TEST_DATABASE_URL / TEST_REDIS_URL are unset, unless CI is
// set: then a missing service fails the run instead of hiding it.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/redis/go-redis/v9"
)

// RandomName returns prefix followed by 12 random hex digits.
func RandomName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func require(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not set, and CI is: integration tests must run against the real service", name)
		}
		t.Skipf("%s is not set; run `make test` to start the services and set it", name)
	}
	return v
}

// PostgresURL returns a connection URL whose search_path is a new, empty
// schema that is dropped when the test ends. The test database is created
// when missing.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := require(t, "TEST_DATABASE_URL")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	var pgErr *pgconn.PgError
	if err != nil && asPgErr(err, &pgErr) && pgErr.Code == "3D000" {
		createDatabase(ctx, t, base)
		conn, err = pgx.Connect(ctx, base)
	}
	if err != nil {
		t.Fatalf("testenv: TEST_DATABASE_URL does not answer: %v", err)
	}
	defer conn.Close(ctx)
	schema := RandomName("t_")
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("testenv: create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Logf("testenv: drop schema %s: %v", schema, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Logf("testenv: drop schema %s: %v", schema, err)
		}
	})
	return WithParam(t, base, "search_path", schema)
}

// WithParam adds a run-time parameter to a URL or keyword/value DSN.
func WithParam(t testing.TB, dsn, key, value string) string {
	t.Helper()
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("testenv: bad TEST_DATABASE_URL: %v", err)
		}
		q := u.Query()
		q.Set(key, value)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " " + key + "=" + value
}

func createDatabase(ctx context.Context, t testing.TB, dsn string) {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatalf("testenv: bad TEST_DATABASE_URL: %v", err)
	}
	name := cfg.Database
	cfg.Database = "postgres"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("testenv: create database %s: %v", name, err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	// 42P04: it exists. 23505: another test created it at the same moment.
	if err != nil && !(asPgErr(err, &pgErr) && (pgErr.Code == "42P04" || pgErr.Code == "23505")) {
		t.Fatalf("testenv: create database %s: %v", name, err)
	}
}

func asPgErr(err error, target **pgconn.PgError) bool { return errors.As(err, target) }

// RedisURL returns TEST_REDIS_URL after checking that it answers.
func RedisURL(t testing.TB) string {
	t.Helper()
	u := require(t, "TEST_REDIS_URL")
	opt, err := redis.ParseURL(u)
	if err != nil {
		t.Fatalf("testenv: bad TEST_REDIS_URL: %v", err)
	}
	c := redis.NewClient(opt)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("testenv: TEST_REDIS_URL does not answer: %v", err)
	}
	return u
}

// KeyRoot is the start of every Redis key prefix the tests make:
// TEST_KEY_ROOT when set (make test gives each run its own, and checks at
// the end that nothing is left under it), else "test:".
func KeyRoot() string {
	if r := os.Getenv("TEST_KEY_ROOT"); r != "" {
		return r
	}
	return "test:"
}

// KeyPrefix returns a fresh Redis key prefix under KeyRoot for a server or
// client the test starts on TEST_REDIS_URL. Every key under it is deleted
// when the test ends, after the cleanups registered later (a server
// stopped by one of them writes nothing more).
func KeyPrefix(t testing.TB) string {
	t.Helper()
	opt, _ := redis.ParseURL(RedisURL(t))
	prefix := RandomName(KeyRoot()) + ":"
	t.Cleanup(func() {
		c := redis.NewClient(opt)
		defer c.Close()
		if err := DeleteKeys(c, prefix); err != nil {
			t.Errorf("testenv: delete the keys under %s: %v", prefix, err)
		}
	})
	return prefix
}

// DeleteKeys deletes every key that starts with prefix.
func DeleteKeys(c *redis.Client, prefix string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var batch []string
	for iter.Next(ctx) {
		if batch = append(batch, iter.Val()); len(batch) == 500 {
			if err := c.Unlink(ctx, batch...).Err(); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if err := iter.Err(); err != nil {
		return err
	}
	if len(batch) > 0 {
		return c.Unlink(ctx, batch...).Err()
	}
	return nil
}

// Redis returns a client of TEST_REDIS_URL and a fresh key prefix whose
// keys are deleted when the test ends.
func Redis(t testing.TB) (*redis.Client, string) {
	t.Helper()
	prefix := KeyPrefix(t)
	opt, _ := redis.ParseURL(RedisURL(t))
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c, prefix
}

// RoundTrips counts c's round trips to Redis from now on: one per command
// sent alone, one per pipeline (pub/sub connections excepted). Benchmarks
// and tests use it to show that work is batched.
func RoundTrips(c redis.UniversalClient) *atomic.Int64 {
	n := new(atomic.Int64)
	c.AddHook(roundTrips{n})
	return n
}

type roundTrips struct{ n *atomic.Int64 }

func (h roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}
