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
	rows := make([][]any, len(events))
	for i, e := range events {
		rows[i] = []any{e.UserID, e.EventType, e.CreatedAt}
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"events"}, []string{"user_id", "event_type", "created_at"}, pgx.CopyFromRows(rows)); err != nil {
		return 0, false, fmt.Errorf("storage: ingest: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, false, fmt.Errorf("storage: ingest: %w", err)
	}
	db.expireIdempotency(ctx)
	return len(events), false, nil
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
