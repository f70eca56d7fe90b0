package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/liveanalytics/analyticsd/internal/ingest"
)

var _ ingest.Writer = (*DB)(nil)

// IdempotencyTTL is how long an Idempotency-Key is remembered (the DELETE
// in expireIdempotency spells it too).
const IdempotencyTTL = 24 * time.Hour

// WriteEvents writes a validated batch with COPY in one transaction. With an
// idempotency key, a batch already written under the same key (of the same
// API key) is not written again: the first result is returned with
// replayed set, or ingest.ErrKeyReused when that batch had another body. A
// retry racing the first attempt waits for it on the key's row.
func (db *DB) WriteEvents(ctx context.Context, keyID, idemKey string, bodyHash []byte, events []ingest.Event) (accepted int, replayed bool, err error) {
	if err := db.checkRetention(ctx); err != nil {
		return 0, false, err
	}
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return 0, false, fmt.Errorf("storage: ingest: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after Commit it is a no-op
	if idemKey != "" {
		tag, err := tx.Exec(ctx, `INSERT INTO ingest_idempotency (key_id, idem_key, body_hash, accepted)
			VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`, keyID, idemKey, bodyHash, len(events))
		if err != nil {
			return 0, false, fmt.Errorf("storage: ingest: %w", err)
		}
		if tag.RowsAffected() == 0 {
			var hash []byte
			if err := tx.QueryRow(ctx, `SELECT body_hash, accepted FROM ingest_idempotency WHERE key_id = $1 AND idem_key = $2`,
				keyID, idemKey).Scan(&hash, &accepted); err != nil {
				return 0, false, fmt.Errorf("storage: ingest: %w", err)
			}
			if !bytes.Equal(hash, bodyHash) {
				return 0, false, ingest.ErrKeyReused
			}
			return accepted, true, nil
		}
	}
	if err := db.checkRawRetention(ctx, tx, events); err != nil {
		return 0, false, err
	}
	if _, err := copyEvents(ctx, tx, eventRows(events)); err != nil {
		if isCode(err, "23514") { // check_violation: the default partition's guard, the horizon moved meanwhile
			return 0, false, fmt.Errorf("%w: an event is older than the raw events kept", ingest.ErrBeforeRetention)
		}
		return 0, false, fmt.Errorf("storage: ingest: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, false, fmt.Errorf("storage: ingest: %w", err)
	}
	db.expireIdempotency(ctx)
	return len(events), false, nil
}

// checkRawRetention refuses a batch with an event before the raw horizon
// (its partition was dropped); the default partition's constraint would
// refuse it too, with a less helpful message.
func (db *DB) checkRawRetention(ctx context.Context, tx pgx.Tx, events []ingest.Event) error {
	if !db.retentionReady.Load() || len(events) == 0 {
		return nil
	}
	oldest := events[0].CreatedAt
	for _, e := range events[1:] {
		if e.CreatedAt.Before(oldest) {
			oldest = e.CreatedAt
		}
	}
	var rawFrom *time.Time
	if err := tx.QueryRow(ctx, `SELECT raw_from FROM retention`).Scan(&rawFrom); err != nil {
		return fmt.Errorf("storage: ingest: %w", err)
	}
	if rawFrom != nil && oldest.Before(*rawFrom) {
		return fmt.Errorf("%w: created_at %s is before %s, where raw events are kept from (RAW_RETENTION)",
			ingest.ErrBeforeRetention, oldest.UTC().Format(time.RFC3339Nano), rawFrom.UTC().Format(time.RFC3339))
	}
	return nil
}

// expireIdempotency forgets old keys, at most once a minute per instance.
func (db *DB) expireIdempotency(ctx context.Context) {
	now := time.Now().UnixNano()
	last := db.lastExpiry.Load()
	if now-last < int64(time.Minute) || !db.lastExpiry.CompareAndSwap(last, now) {
		return
	}
	_, err := db.pool.Exec(ctx, `DELETE FROM ingest_idempotency WHERE created_at < now() - interval '24 hours'`)
	if err != nil && !errors.Is(err, context.Canceled) {
		db.lastExpiry.Store(last) // try again next time
	}
}

// InsertEvents writes events as they are with one COPY, without an
// idempotency key: for fixtures and benchmarks, which measure a raw COPY
// with it.
func (db *DB) InsertEvents(ctx context.Context, events []ingest.Event) error {
	if _, err := copyEvents(ctx, db.pool, eventRows(events)); err != nil {
		return fmt.Errorf("storage: insert events: %w", err)
	}
	return nil
}

// copier is what can COPY: the pool, a connection or a transaction.
type copier interface {
	CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error)
}

// copyEvents is the one COPY into events; every source yields rows of
// user_id, event_type and created_at, in that order.
func copyEvents(ctx context.Context, c copier, src pgx.CopyFromSource) (int64, error) {
	return c.CopyFrom(ctx, pgx.Identifier{"events"}, []string{"user_id", "event_type", "created_at"}, src)
}

// eventRows is events as a COPY source.
func eventRows(events []ingest.Event) pgx.CopyFromSource {
	return pgx.CopyFromSlice(len(events), func(i int) ([]any, error) {
		e := events[i]
		return []any{e.UserID, e.EventType, e.CreatedAt}, nil
	})
}
