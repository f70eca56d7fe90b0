package storage

import (
	"context"
	"fmt"

	"golang.org/x/sync/errgroup"

	"github.com/liveanalytics/analyticsd/summary"
)

var _ summary.Store = (*DB)(nil)

// The three aggregates of the seed, inclusive of both ends. Each is an
// index-only scan of events_created_at_idx.
const (
	countSQL  = `SELECT count(*) FROM events WHERE created_at >= $1 AND created_at <= $2`
	uniqueSQL = `SELECT count(DISTINCT user_id) FROM events WHERE created_at >= $1 AND created_at <= $2`
	byTypeSQL = `SELECT event_type, count(*) FROM events WHERE created_at >= $1 AND created_at <= $2 GROUP BY event_type`
)

// Summary runs the three aggregates concurrently, each on its own
// connection, so the answer takes as long as the slowest of them.
func (db *DB) Summary(ctx context.Context, r summary.Range) (summary.Summary, error) {
	var s summary.Summary
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		return db.pool.QueryRow(ctx, countSQL, r.From, r.To).Scan(&s.TotalEvents)
	})
	g.Go(func() error {
		return db.pool.QueryRow(ctx, uniqueSQL, r.From, r.To).Scan(&s.UniqueUsers)
	})
	g.Go(func() error {
		rows, err := db.pool.Query(ctx, byTypeSQL, r.From, r.To)
		if err != nil {
			return err
		}
		defer rows.Close()
		tc := summary.TypeCounts{}
		for rows.Next() {
			var c summary.TypeCount
			if err := rows.Scan(&c.Type, &c.Count); err != nil {
				return err
			}
			tc = append(tc, c)
		}
		tc.Sort()
		s.EventsByType = tc
		return rows.Err()
	})
	if err := g.Wait(); err != nil {
		return summary.Summary{}, fmt.Errorf("storage: summary: %w", err)
	}
	return s, nil
}
